"""WebP lossy (VP8 intra, libwebp through Pillow): the web's common still-image format.

* Coding: Pillow's WebP writer, i.e. the libwebp bundled with the Pillow wheel (its simple
  ``WebPEncode`` path for one frame), lossy, ``quality`` = libwebp's quality (0..100, higher is
  better), ``method=6`` (libwebp's slowest, best-compressing search, as ``cwebp -m 6``; the library
  default is 4). Lossy WebP is always YUV 4:2:0 (VP8 has no other format); colour is libwebp's own
  RGB -> YUV conversion (BT.601, limited range as VP8 defines it) and back. Pillow leaves libwebp's
  ``thread_level`` at 0 (one thread), and the lossy encoder has no randomness: the same image and
  quality give the same bytes.
* Bitstream: the complete RIFF file (12-byte RIFF/WEBP header, 8-byte ``VP8 `` chunk header, the VP8
  key frame); every byte is counted. No alpha, EXIF, ICC or XMP chunks are written.
* Decoding: Pillow's libwebp decoder on those bytes; a truncated or foreign file is a BitstreamError.

Default qualities 0, 10, 30, 50, 75, 90, measured on Kodak kodim01, 03, 07, 13, 19 and 23 (full
size, 768x512 or 512x768; means over the six): bpp 0.108 / 0.300 / 0.521 / 0.729 / 1.006 / 1.948 and
PSNR-RGB 25.55 / 29.00 / 31.36 / 33.18 / 35.14 / 39.76 dB. That spans the learned codecs' range
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

METHOD = 6  # 0 (fastest) .. 6 (best compression); see the module docstring


@register_codec("webp")
class WebpCodec(StillImageCodec):
    """Lossy WebP (libwebp via Pillow, method 6); quality = libwebp quality 0..100."""

    info = CodecInfo(
        description=("WebP lossy (VP8 intra, YUV 4:2:0), libwebp via Pillow, method 6, libwebp quality 0..100 as "
            "quality; rate = whole RIFF file (20 bytes of RIFF/chunk headers included)"),
        default_qualities=(0, 10, 30, 50, 75, 90),
        quality_range=(0, 100),
        quality_meaning="a libwebp quality (higher is better)",
        rate_counts="the whole RIFF file: 20 bytes of RIFF/WEBP and VP8 chunk headers, the VP8 frame header",
        fuzz=still_fuzz_setup,
    )

    max_side = 16383  # WebP stores each side in 14 bits

    def fingerprint(self, weights: Mapping[str, str] | None = None) -> dict[str, str]:
        return pillow_fingerprint("webp")

    def availability(self) -> Availability:
        return pillow_availability("webp", "libwebp")

    def _encode_image(self, image: np.ndarray, quality: int) -> bytes:
        return pillow_encode(image, "WEBP", quality=quality, method=METHOD, lossless=False)

    def _decode_image(self, data: bytes) -> np.ndarray:
        return pillow_decode(data, "WEBP")
