"""What a run measures and how it is summarised: distortion (``metrics``, with ``ycbcr``'s conversion),
the metrics a report can plot (``rd_metrics``), BD-rate (``bdrate``), wall-clock time (``timing``),
memory, model size and parameters (``cost``) and operation counts (``complexity``)."""
