"""mean-scale: CompressAI's mean-scale hyperprior, the single-layer learned anchor and COMPASS's base
layer, with everything particular to it: ``plugin`` (the registered ``mean-scale`` codec, imported by
the registry's discovery), ``weights`` (its quality table and zoo loader), ``published``
(CompressAI's published weights in torch.hub's cache), ``fetch`` and ``command`` (``bench weights
fetch``), ``train``, ``export`` and ``widen`` (``python -m bench.train mean-scale``, its zoo exporter
and its Net2WiderNet widening, declared as a ``bench.registry.PluginTrainer``).

Nothing is imported here, so that ``bench``'s parser can read ``command`` without loading torch."""
