"""JPEG 2000 (ITU-T T.800 Part 1, OpenJPEG through Pillow): the wavelet-based conventional anchor.

* Coding: Pillow's JPEG 2000 writer, i.e. the OpenJPEG bundled with the Pillow wheel, with the
  settings of lossy JPEG 2000 (what ``opj_compress -I -mct 1 -r RATIO`` does): the irreversible 9/7
  wavelet, the irreversible colour transform (RGB -> YCbCr, ``mct=1``; Pillow's default is none), one
  quality layer whose size OpenJPEG's rate allocation fits to ``quality`` = the **compression ratio**
  against the raw 24-bit image (1..1000, higher is smaller: ratio 48 targets 24/48 = 0.5 bpp; 1 keeps
  every bit-plane), one tile, 64x64 code-blocks, LRCP order and min(6, 1 + log2 of the short side)
  resolution levels (OpenJPEG's 6 where the image allows it; tiny images need fewer). OpenJPEG codes
  with one thread unless ``OPJ_NUM_THREADS`` says otherwise, and its code-blocks are coded
  independently, so the bytes never depend on the thread count.
* Bitstream: the raw J2K codestream (SOC, SIZ/COD/QCD main header, one tile-part, EOC), no JP2 box
  wrapper; every byte is counted. The one thing removed is OpenJPEG's 39-byte COM marker segment
  ("Created by OpenJPEG version ..."), a comment that carries no picture data (as the x265 plugin
  drops x265's settings SEI); what remains is a complete codestream that any decoder reads.
* Decoding: Pillow's OpenJPEG decoder on those bytes; a truncated (no final EOC marker, which
  OpenJPEG itself would tolerate) or foreign stream is a BitstreamError.

Default qualities: ratios 300, 150, 80, 40, 24, 14 (targets of 0.08 / 0.16 / 0.3 / 0.6 / 1.0 / 1.71
bpp), measured on Kodak kodim01, 03, 07, 13, 19 and 23 (full size, 768x512 or 512x768; means over
the six): bpp 0.079 / 0.158 / 0.298 / 0.598 / 0.999 / 1.713 (OpenJPEG meets the target within 1 %)
and PSNR-RGB 25.66 / 27.79 / 30.14 / 33.38 / 36.30 / 39.94 dB. That spans the learned codecs' range
(about 25-31 dB) and x265's (its default QPs 47..22 give 27.0 to 42.4 dB on the same images), so
BD-rates against both are finite.
"""

from __future__ import annotations

import struct
from typing import Mapping

import numpy as np

from bench.codec import Availability, BitstreamError, CodecError, CodecInfo
from bench.codecs.still import (
    StillImageCodec,
    pillow_availability,
    pillow_decode,
    pillow_encode,
    pillow_fingerprint,
    still_fuzz_setup,
)
from bench.registry import register_codec

MAX_RESOLUTIONS = 6  # OpenJPEG's default number of resolution levels (5 wavelet decompositions)
_SOC, _SOT, _COM, _EOC = b"\xff\x4f", b"\xff\x90", b"\xff\x64", b"\xff\xd9"
_LENGTH = struct.Struct(">H")


def resolution_levels(height: int, width: int) -> int:
    """Resolution levels for an image: 6, or fewer where the short side cannot be halved 5 times
    (OpenJPEG refuses more levels than the image has octaves)."""
    return max(1, min(MAX_RESOLUTIONS, min(height, width).bit_length()))


def strip_comments(codestream: bytes) -> bytes:
    """``codestream`` without the COM marker segments of its main header (SOC up to the first SOT)."""
    if not codestream.startswith(_SOC):
        raise CodecError("OpenJPEG output does not start with an SOC marker")
    kept = [_SOC]
    position = len(_SOC)
    while True:
        marker = codestream[position : position + 2]
        if marker == _SOT:
            break
        if len(marker) < 2 or marker[0] != 0xFF or position + 4 > len(codestream):
            raise CodecError(f"OpenJPEG main header is malformed at byte {position}")
        (length,) = _LENGTH.unpack_from(codestream, position + 2)  # counts itself, not the marker
        end = position + 2 + length
        if marker != _COM:
            kept.append(codestream[position:end])
        position = end
    kept.append(codestream[position:])
    return b"".join(kept)


@register_codec("jpeg2000")
class Jpeg2000Codec(StillImageCodec):
    """Lossy JPEG 2000 (OpenJPEG via Pillow, 9/7 wavelet + ICT); quality = compression ratio."""

    info = CodecInfo(
        description=("JPEG 2000 lossy, OpenJPEG via Pillow, 9/7 wavelet + irreversible colour transform, one layer, "
            "compression ratio vs 24 bpp as quality (higher = smaller); rate = whole J2K codestream "
            "(main header included, OpenJPEG's COM comment removed)"),
        default_qualities=(300, 150, 80, 40, 24, 14),
        quality_range=(1, 1000),
        quality_meaning="a compression ratio against 24-bit RGB (higher is smaller)",
        rate_counts="the raw codestream: main and tile-part headers (OpenJPEG's 39-byte comment removed)",
        fuzz=still_fuzz_setup,
    )

    max_side = 65535

    def fingerprint(self, weights: Mapping[str, str] | None = None) -> dict[str, str]:
        from bench.fingerprint import cpu_flags_digest

        # the 9/7 wavelet and the colour transform run in floating point, with SIMD where the CPU has it
        return {**pillow_fingerprint("jpg_2000"), "cpu_flags": cpu_flags_digest()}

    def availability(self) -> Availability:
        return pillow_availability("jpg_2000", "OpenJPEG (JPEG 2000)")

    def _encode_image(self, image: np.ndarray, quality: int) -> bytes:
        height, width = image.shape[:2]
        codestream = pillow_encode(
            image,
            "JPEG2000",
            no_jp2=True,
            irreversible=True,
            mct=1,
            quality_mode="rates",
            quality_layers=[quality],
            num_resolutions=resolution_levels(height, width),
        )
        return strip_comments(codestream)

    def _decode_image(self, data: bytes) -> np.ndarray:
        # A JPEG 2000 stream is embedded: OpenJPEG decodes a cut one at a lower quality without a
        # word. Every stream this codec writes ends in EOC, and FF D9 cannot occur inside coded data
        # (bit stuffing), so a stream without it was cut.
        if not data.endswith(_EOC):
            raise BitstreamError("JPEG 2000 codestream does not end with an EOC marker: it is truncated")
        return pillow_decode(data, "JPEG2000")
