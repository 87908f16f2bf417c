"""JPEG (ITU-T T.81 baseline, libjpeg-turbo through Pillow): the oldest conventional anchor.

* Coding: Pillow's JPEG writer, i.e. the libjpeg(-turbo) bundled with the Pillow wheel, called with
  ``quality`` = the IJG quality factor (1..100, higher is better; it scales the standard Annex K
  quantisation tables), ``subsampling=0`` (**4:4:4**: no chroma subsampling, like the x265 and av1
  anchors, so every anchor keeps full-resolution chroma and differences come from the coding tools),
  ``optimize=True`` (Huffman tables optimised for the image, as ``cjpeg -optimize``; lossless, so it
  only lowers the rate) and baseline sequential coding. Colour is libjpeg's own JFIF RGB -> YCbCr
  (BT.601 full range) and back; the slow-but-exact integer DCT is libjpeg's default both ways.
  libjpeg is single-threaded and has no randomness: the same image and quality give the same bytes.
* Bitstream: the complete JFIF file (SOI, the 18-byte JFIF APP0 segment, quantisation and Huffman
  tables, SOF, SOS, entropy-coded data, EOI): every byte is counted. Pillow writes no EXIF/ICC here.
* Decoding: Pillow's libjpeg decoder on those bytes; a truncated or foreign file is a BitstreamError.

Default qualities 5, 10, 20, 40, 70, 90, measured on Kodak kodim01, 03, 07, 13, 19 and 23 (full
size, 768x512 or 512x768; means over the six): bpp 0.196 / 0.321 / 0.535 / 0.866 / 1.421 / 2.779 and
PSNR-RGB 23.78 / 26.87 / 29.55 / 31.97 / 34.67 / 39.40 dB. That spans the learned codecs' range
(about 25-31 dB) and x265's (its default QPs 47..22 give 27.0 to 42.4 dB on the same images), so
BD-rates against both are finite.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from bench.codec import Availability, CodecInfo
from bench.codecs.still import (
    StillImageCodec,
    pillow_availability,
    pillow_decode,
    pillow_encode,
    pillow_fingerprint,
    still_fuzz_setup,
)
from bench.registry import register_codec


@register_codec("jpeg")
class JpegCodec(StillImageCodec):
    """Baseline JPEG 4:4:4 with optimised Huffman tables (libjpeg via Pillow); quality = IJG quality."""

    info = CodecInfo(
        description=("JPEG baseline, libjpeg(-turbo) via Pillow, YCbCr 4:4:4, optimised Huffman tables, "
            "IJG quality 1..100 as quality; rate = whole JFIF file (headers and tables included)"),
        default_qualities=(5, 10, 20, 40, 70, 90),
        quality_range=(1, 100),
        quality_meaning="an IJG quality factor (higher is better)",
        rate_counts="the whole JFIF file: markers, the 18-byte APP0 segment, quantisation and Huffman tables",
        fuzz=still_fuzz_setup,
    )

    max_side = 65500  # libjpeg's JPEG_MAX_DIMENSION

    def fingerprint(self, weights: Mapping[str, str] | None = None) -> dict[str, str]:
        return pillow_fingerprint("jpg", "libjpeg_turbo")

    def availability(self) -> Availability:
        return pillow_availability("jpg", "libjpeg")

    def _encode_image(self, image: np.ndarray, quality: int) -> bytes:
        return pillow_encode(image, "JPEG", quality=quality, subsampling=0, optimize=True, progressive=False)

    def _decode_image(self, data: bytes) -> np.ndarray:
        return pillow_decode(data, "JPEG")
