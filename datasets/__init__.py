"""Dataset definitions (installed as ``bench.datasets``)."""
