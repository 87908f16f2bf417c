"""Codec plugins, installed as ``bench.codecs`` (one module per codec; see bench.registry)."""
