"""JPEG XL (ISO/IEC 18181, libjxl through ffmpeg): the newest conventional still-image codec.

* Coding: libjxl via ffmpeg's ``libjxl`` encoder (there are no ``cjxl``/``djxl`` binaries here),
  lossy VarDCT in libjxl's XYB colour space from the 8-bit sRGB input (``rgb24``; no conversion by
  ffmpeg), effort 7 (libjxl's and ``cjxl``'s default), one thread (``-threads 1``). ``quality`` is
  ``cjxl``'s quality scale (higher is better), turned into libjxl's Butteraugli distance here with
  libjxl's own mapping (``JxlEncoderDistanceFromQuality``, what ``cjxl -q`` uses since libjxl 0.9;
  the 0.7 library here predates that function): ``distance = 0.1 + (100 - q) * 0.09`` for q >= 30
  (q 90 is distance 1, "visually lossless"), ``53/3000 q^2 - 23/20 q + 25`` below, 0 (lossless,
  modular) at q 100. ffmpeg's wrapper accepts distances up to 15, so the lowest quality is 11
  (distance 14.5). The distance is passed explicitly (``-distance``), so the result does not depend
  on how an ffmpeg version maps its own ``-q:v``.
* Bitstream: the bare JPEG XL codestream (starts ``FF 0A``; no ISOBMFF container boxes, no EXIF/ICC):
  every byte is counted, its size header included.
* Decoding: libjxl's decoder via ffmpeg on those bytes (through a temporary file: ffmpeg 5.1 has no
  JPEG XL pipe demuxer) to 8-bit RGB ``pam``, whose header states the decoded size. libjxl
  encodes and reconstructs in floating point with CPU-specific SIMD code, so the codec's fingerprint
  (what ``bench check`` needs to match before it compares bytes exactly) names the CPU and its
  feature flags as well as ffmpeg and libjxl.

Default qualities 11, 40, 62, 78, 88, 94, measured on Kodak kodim01, 03, 07, 13, 19 and 23 (full
size, 768x512 or 512x768; means over the six): bpp 0.195 / 0.473 / 0.692 / 1.048 / 1.560 / 2.328 and
PSNR-RGB 26.63 / 30.19 / 32.53 / 34.98 / 37.43 / 40.20 dB. Quality 11 is the lowest ffmpeg allows
(see above), so the curve starts near 26.6 dB / 0.2 bpp: it still overlaps the learned codecs' range
(about 25-31 dB) and x265's (its default QPs 47..22 give 27.0 to 42.4 dB on the same images), so
BD-rates against both are finite. libjxl optimises Butteraugli, not PSNR (XYB, adaptive
quantisation; ffmpeg's wrapper exposes no PSNR tuning), so its PSNR-RGB curves sit below WebP's and
JPEG 2000's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import re
import tempfile
from typing import Mapping

import numpy as np

from bench.codec import Availability, BitstreamError, CodecError, CodecInfo
from bench.codecs.still import StillImageCodec, ffmpeg_availability, ffmpeg_version, run_ffmpeg, still_fuzz_setup
from bench.registry import register_codec

CODEC = "libjxl"  # ffmpeg's name of both the encoder and the decoder wrapper
EFFORT = 7
MAX_DISTANCE = 15.0  # the largest -distance ffmpeg's libjxl wrapper accepts
_PAM_HEADER = re.compile(rb"P7\n((?:[A-Z]+ [^\n]*\n)*)ENDHDR\n")


def quality_to_distance(quality: int) -> float:
    """cjxl's quality (0..100, higher is better) as a Butteraugli distance (lower is better), as
    libjxl's ``JxlEncoderDistanceFromQuality`` computes it."""
    if quality >= 100:
        return 0.0
    if quality >= 30:
        return 0.1 + (100 - quality) * 0.09
    return 53.0 / 3000.0 * quality * quality - 23.0 / 20.0 * quality + 25.0


def parse_pam_rgb(stream: bytes) -> np.ndarray:
    """The one 8-bit RGB image of a PAM (P7) stream as an (H, W, 3) array."""
    header = _PAM_HEADER.match(stream)
    if header is None:
        raise BitstreamError("JPEG XL decode did not produce a PAM image")
    fields = dict(line.split(b" ", 1) for line in header.group(1).splitlines())
    if fields.get(b"DEPTH") != b"3" or fields.get(b"MAXVAL") != b"255" or fields.get(b"TUPLTYPE") != b"RGB":
        raise BitstreamError(f"JPEG XL stream decodes to {header.group(1)!r}, not 8-bit RGB")
    try:
        width, height = int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    except (KeyError, ValueError):
        raise BitstreamError(f"PAM header without a size: {header.group(1)!r}") from None
    pixels = stream[header.end() :]
    if len(pixels) != width * height * 3:
        raise BitstreamError(
            f"JPEG XL decode gave {len(pixels)} bytes of pixels, expected one {width}x{height} RGB image"
        )
    return np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, 3)


@functools.lru_cache(maxsize=1)
def libjxl_version() -> str:
    """The version of the system's libjxl (the one a distribution's ffmpeg links), as major.minor.patch."""
    path = ctypes.util.find_library("jxl")
    if path is None:
        return "unknown"
    try:
        number = ctypes.CDLL(path).JxlEncoderVersion()  # major * 1000000 + minor * 1000 + patch
    except (OSError, AttributeError):
        return "unknown"
    return f"{number // 1000000}.{number // 1000 % 1000}.{number % 1000}"


@register_codec("jpegxl")
class JpegXlCodec(StillImageCodec):
    """Lossy JPEG XL (libjxl via ffmpeg, effort 7); quality = cjxl quality 11..100."""

    info = CodecInfo(
        description=("JPEG XL lossy (VarDCT, XYB), libjxl via ffmpeg, effort 7, cjxl quality 11..100 as quality "
            "(mapped to a Butteraugli distance); rate = bare JPEG XL codestream (no container boxes)"),
        default_qualities=(11, 40, 62, 78, 88, 94),
        quality_range=(11, 100),
        quality_meaning="a cjxl quality (higher is better; 100 is lossless)",
        rate_counts="the bare codestream with its size header (no ISOBMFF container)",
        fuzz=still_fuzz_setup,
        fuzz_cap=500,  # ffmpeg starts for every fuzz input
    )

    max_side = 65535

    def fingerprint(self, weights: Mapping[str, str] | None = None) -> dict[str, str]:
        from bench.fingerprint import cpu_flags_digest, cpu_model

        # libjxl computes in floating point with CPU-specific SIMD paths, hence the CPU and its flags
        return {"ffmpeg": ffmpeg_version(), "libjxl": libjxl_version(), "cpu": cpu_model(),
                "cpu_flags": cpu_flags_digest()}

    def availability(self) -> Availability:
        return ffmpeg_availability([CODEC], [CODEC])

    def _encode_image(self, image: np.ndarray, quality: int) -> bytes:
        height, width = image.shape[:2]
        arguments = [
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-i", "pipe:",
            "-frames:v", "1",
            "-c:v", CODEC,
            "-distance", f"{quality_to_distance(quality):.6f}",
            "-effort", str(EFFORT),
            "-threads", "1",
            # what the input is (8-bit sRGB, full range), said rather than left to ffmpeg's guess
            "-color_range", "pc", "-color_primaries", "bt709", "-color_trc", "iec61966-2-1",
            "-f", "image2pipe", "pipe:",
        ]  # fmt: skip
        return run_ffmpeg(arguments, image.tobytes(), "JPEG XL encode", CodecError, self.timeout_s)

    def _decode_image(self, data: bytes) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="bench-jxl-") as folder:
            path = os.path.join(folder, "image.jxl")
            with open(path, "wb") as file:
                file.write(data)
            # At most 2 frames: a damaged file cannot make ffmpeg write unbounded output, and a
            # second frame shows up as a wrong byte count.
            arguments = [
                "-f", "image2", "-pattern_type", "none", "-c:v", CODEC, "-i", path,
                "-frames:v", "2", "-f", "image2pipe", "-c:v", "pam", "pipe:",
            ]  # fmt: skip
            stream = run_ffmpeg(arguments, b"", "JPEG XL decode", BitstreamError, self.timeout_s)
        return parse_pam_rgb(stream)
