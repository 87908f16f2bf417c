"""AV1 intra (libaom through ffmpeg, one still picture, 4:4:4): the newest video codec's intra coder.

Pipeline, all explicit so that the numbers are reproducible:

* Colour: RGB uint8 -> YCbCr 4:4:4 uint8 with the **BT.601 matrix, full range**, done here in numpy
  exactly as for the x265 anchor (``bench.codecs.x265.rgb_to_ycbcr``), so the two video codecs see the
  same samples and differ only by the codec; ffmpeg only ever sees raw ``yuv444p``. The sequence
  header signals full range and the BT.601 (``bt470bg``) matrix. Decoding applies the exact inverse.
* Coding: libaom-av1 via ffmpeg, ``-usage allintra -still-picture 1`` (libaom's still-image mode:
  one key frame, a still-picture sequence header), one frame, profile 1 (high, chosen by libaom for
  4:4:4; SVT-AV1 has no 4:4:4, hence libaom), constant quality ``-crf`` = the quality (libaom's
  cq-level 0..63, lower is better; 0 is lossless) with ``-b:v 0``, ``-cpu-used 4`` (measured
  on Kodak kodim01/07/19/23 at crf 28..58: ``avifenc``'s default speed 6 is 4x faster but costs
  +9.3 % BD-rate against 4; an anchor should be a codec's good setting, as x265's
  ``medium``), PSNR tuning (``-tune psnr``: the benchmark measures PSNR), one thread, no row
  multi-threading and one tile (``-threads 1 -row-mt 0 -tiles 1x1``), so the bytes do not depend on
  the machine's core count.
* Bitstream: the raw AV1 OBU stream (the "low overhead bitstream format" of AV1 Annex/Section 5,
  what ffmpeg's ``obu`` muxer writes): a 2-byte temporal delimiter, the sequence header OBU and one
  frame OBU. Every byte is counted; there is no AVIF/ISOBMFF box overhead (about 300 bytes more in
  an ``.avif`` file).
* Decoding: ffmpeg's ``obu`` demuxer and a conformant AV1 decoder (libdav1d when ffmpeg has it, else
  libaom's own decoder; AV1 decoding is bit-exact by specification, so both give the same pixels) to
  ``yuv4mpegpipe``, whose header states the decoded size; sizes come from the bitstream itself.

Default qualities crf 20, 30, 38, 46, 54, 61, measured on Kodak kodim01, 03, 07, 13, 19 and 23 (full
size, 768x512 or 512x768; means over the six): bpp 1.418 / 0.919 / 0.554 / 0.307 / 0.158 / 0.063 and
PSNR-RGB 39.73 / 36.75 / 33.76 / 31.01 / 28.59 / 26.03 dB. That spans the learned codecs' range
(about 25-31 dB) and x265's (its default QPs 47..22 give 27.0 to 42.4 dB on the same images), so
BD-rates against both are finite.
"""

from __future__ import annotations

import functools
import re
import subprocess
from typing import Mapping

import numpy as np

from bench.codec import Availability, BitstreamError, CodecError, CodecInfo
from bench.codecs.still import (
    StillImageCodec,
    ffmpeg_availability,
    ffmpeg_binary,
    ffmpeg_has_decoder,
    ffmpeg_version,
    run_ffmpeg,
    still_fuzz_setup,
)
from bench.codecs.x265 import rgb_to_ycbcr, ycbcr_to_rgb
from bench.registry import register_codec

ENCODER = "libaom-av1"
DECODERS = ("libdav1d", "libaom-av1")  # first one ffmpeg has is used
CPU_USED = 4
_Y4M_HEADER = re.compile(rb"YUV4MPEG2 ([^\n]*)\n")
_Y4M_FRAME = re.compile(rb"FRAME[^\n]*\n")


def parse_y4m_444(stream: bytes) -> np.ndarray:
    """The one 8-bit 4:4:4 frame of a YUV4MPEG2 stream as an (H, W, 3) YCbCr array."""
    header = _Y4M_HEADER.match(stream)
    if header is None:
        raise BitstreamError("AV1 decode did not produce a YUV4MPEG2 stream")
    fields = {field[:1]: field[1:] for field in header.group(1).split(b" ") if field}
    try:
        width, height = int(fields[b"W"]), int(fields[b"H"])
    except (KeyError, ValueError):
        raise BitstreamError(f"YUV4MPEG2 header without a size: {header.group(0)!r}") from None
    if fields.get(b"C") != b"444":  # "444p10" would be 10-bit; no C field means 4:2:0
        raise BitstreamError(f"AV1 stream decodes to chroma {fields.get(b'C')!r}, not 8-bit 4:4:4")
    frame = _Y4M_FRAME.match(stream, header.end())
    if frame is None:
        raise BitstreamError("YUV4MPEG2 stream holds no frame")
    size = width * height * 3
    planes = stream[frame.end() :]
    if len(planes) != size:
        raise BitstreamError(
            f"AV1 decode gave {len(planes)} bytes after the frame header, expected one {width}x{height} "
            f"4:4:4 frame ({size} bytes)"
        )
    return np.frombuffer(planes, dtype=np.uint8).reshape(3, height, width).transpose(1, 2, 0)


@functools.lru_cache(maxsize=1)
def libaom_version() -> str:
    """The libaom version ffmpeg links, from the banner its wrapper logs at level verbose."""
    binary = ffmpeg_binary()
    if binary is None:
        return "missing"
    command = [binary, "-hide_banner", "-nostdin", "-loglevel", "verbose", "-f", "rawvideo", "-pix_fmt", "yuv444p",
               "-s", "16x16", "-i", "pipe:", "-frames:v", "1", "-c:v", ENCODER, "-cpu-used", "8", "-f", "null", "-"]
    try:
        result = subprocess.run(command, input=bytes(16 * 16 * 3), capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(rb"\[libaom-av1 @ [^]]*\] (v\d\S*)", result.stderr)
    return match.group(1).decode() if match else "unknown"


@register_codec("av1")
class Av1Codec(StillImageCodec):
    """AV1 intra still picture 4:4:4 (libaom via ffmpeg, cpu-used 4); quality = libaom crf 0..63."""

    info = CodecInfo(
        description=("AV1 intra still picture, libaom via ffmpeg (allintra, cpu-used 4, tune psnr), BT.601 full-range "
            "YCbCr 4:4:4, crf 0..63 as quality; rate = raw OBU stream (temporal delimiter + sequence header "
            "+ frame OBU, no AVIF boxes)"),
        default_qualities=(20, 30, 38, 46, 54, 61),
        quality_range=(0, 63),
        quality_meaning="a libaom crf (cq-level, lower is better)",
        rate_counts="the raw OBU stream: temporal delimiter, sequence header OBU, frame OBU (no AVIF boxes)",
        fuzz=still_fuzz_setup,
        fuzz_cap=500,  # ffmpeg starts for every fuzz input
    )

    max_side = 65535  # AV1 codes each side in up to 16 bits

    def fingerprint(self, weights: Mapping[str, str] | None = None) -> dict[str, str]:
        # the decoder is not listed: AV1 decoding is bit-exact by specification
        return {"ffmpeg": ffmpeg_version(), "libaom": libaom_version()}

    def availability(self) -> Availability:
        return ffmpeg_availability([ENCODER], DECODERS)

    def _encode_image(self, image: np.ndarray, quality: int) -> bytes:
        height, width = image.shape[:2]
        planar = np.ascontiguousarray(rgb_to_ycbcr(image).transpose(2, 0, 1))  # yuv444p is planar
        arguments = [
            "-f", "rawvideo", "-pix_fmt", "yuv444p", "-s", f"{width}x{height}", "-i", "pipe:",
            "-frames:v", "1",
            "-c:v", ENCODER,
            "-usage", "allintra",
            "-still-picture", "1",
            "-cpu-used", str(CPU_USED),
            "-crf", str(quality), "-b:v", "0",
            "-tune", "psnr",
            "-threads", "1", "-row-mt", "0", "-tiles", "1x1",
            "-color_range", "pc", "-colorspace", "bt470bg",
            "-f", "obu", "pipe:",
        ]  # fmt: skip
        return run_ffmpeg(arguments, planar.tobytes(), "AV1 encode", CodecError, self.timeout_s)

    def _decode_image(self, data: bytes) -> np.ndarray:
        decoder = next((name for name in DECODERS if ffmpeg_has_decoder(name)), DECODERS[-1])
        # No output pix_fmt: ffmpeg must hand back the decoder's own yuv444p untouched (asking for a
        # format could make it convert); anything else fails the 4:4:4 check of the Y4M header.
        # At most 2 frames: a damaged stream cannot make ffmpeg write unbounded output, and a second
        # frame shows up as a wrong byte count.
        arguments = ["-c:v", decoder, "-f", "obu", "-i", "pipe:", "-frames:v", "2", "-f", "yuv4mpegpipe", "pipe:"]
        stream = run_ffmpeg(arguments, data, "AV1 decode", BitstreamError, self.timeout_s)
        return ycbcr_to_rgb(parse_y4m_444(stream))
