"""COMPASS (spec: ../shared/spec/compass-spec.md): ``liff`` (inter-layer prediction), ``residual``
(mean-scale coding with conv-layer-wise padding), ``model`` (BL + shared EL recursion),
``bitstream`` (the scalable file format) and ``plugin`` (the registered ``compass`` codec)."""

from bench.codecs.compass.plugin import CompassCodec

__all__ = ["CompassCodec"]
