"""Single-layer HEVC from SHM's own encoder and decoder (``hm``): the HM inside SHM, one layer.

SHM-12.1 is HM-16.10 with the scalable extensions on top; coding one layer with its encoder is HEVC
intra coding by the reference software, and its bitstream is plain HEVC (a single-layer decoder,
e.g. ffmpeg's, decodes it to the same pictures). ``hm`` is to ``shvc`` what ``x265`` is to a scalable
codec: the single-layer anchor built from the same encoder, so that ``shvc`` against
``simulcast:hm`` compares inter-layer prediction and nothing else (same tools, same colour handling,
same rate accounting).

Everything but the layer count is ``bench.codecs.shvc``: binaries from ``SHM_DIR`` (or
``hm@/path/to/SHM/bin``), BT.601 full-range YCbCr 4:4:4 8-bit by default, ``hm:chroma=420`` and
``hm:chroma=420+bits=10``, quality = QP, the same header (one layer), bits from the real bytes
(every NAL unit, parameter sets included), and the decoder's output checked against the encoder's
reconstruction on every encode. The SHVC-only options (``delta``, ``offsets``, presets) are refused.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bench.codec import BitstreamError, CodecError, CodecInfo, Encoded
from bench.codecs.shvc import ShmCodec, ShvcCodec, ShvcOptions, parse_options, unpack_header
from bench.registry import register_codec

OPTION_KEYS = ("chroma", "bits")


@register_codec("hm")
class HmCodec(ShmCodec):
    """HEVC all-intra through SHM with one layer; spec ``hm[:chroma=420[+bits=10]][@SHM_FOLDER]``."""

    info = CodecInfo(
        description=("HEVC all-intra via SHM's encoder and decoder with one layer (HM-16.10 inside SHM-12.1), "
                     "BT.601 full-range YCbCr (4:4:4 8-bit unless chroma=420[+bits=10]), QP as quality"),
        default_qualities=ShvcCodec.info.default_qualities,  # the QPs shvc's base layer runs at
        rate_counts=ShvcCodec.info.rate_counts,  # the same header and SEI, with one layer
        slow=True,  # minutes per job: the runner starts these first
        deterministic=False,  # external reference software: `bench check` compares with a tolerance
        list_variants=("simulcast:hm",),  # bench list shows the simulcast anchor this codec makes
    )

    def _parse_options(self) -> ShvcOptions:
        return parse_options(self.arg, codec=self.name, keys=OPTION_KEYS, presets={})

    def encode(self, layers: Sequence[np.ndarray], quality: int) -> Encoded:
        if len(layers) != 1:
            raise CodecError(
                f"hm codes exactly one image, got {len(layers)} layers (simulcast:hm codes each layer alone, "
                "shvc codes them together)"
            )
        return super().encode(layers, quality)

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        _, geometries, _ = unpack_header(data)
        if len(geometries) != 1:
            raise BitstreamError(f"not an hm bitstream: its header names {len(geometries)} layers (an shvc one?)")
        if num_layers not in (None, 1):
            raise CodecError(f"hm bitstreams hold one layer; cannot decode {num_layers}")
        return super().decode(data, num_layers)
