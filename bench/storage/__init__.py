"""What bench writes to disk and reads back: a run folder's records and manifest (``store``), the
record schema (``records``), the lock of a run folder's one writer (``runlock``) and the bitstream
file of ``bench encode`` (``envelope``)."""
