"""HEVC intra (x265 through ffmpeg): the conventional single-layer anchor that is always available.

Pipeline, all explicit so that the numbers are reproducible:

* Colour: RGB uint8 -> YCbCr 4:4:4 uint8 with the **BT.601 matrix, full range** (JFIF/JPEG
  convention, also what ``bpgenc`` uses by default, hence comparable to CompressAI's "BPG-444"
  anchor): ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cb = 128 + (B - Y) / 1.772``,
  ``Cr = 128 + (R - Y) / 1.402``, rounded and clipped to 0..255. Decoding applies the exact inverse
  matrix and rounds/clips back to RGB uint8. The conversion is done here in numpy, never by ffmpeg,
  and ffmpeg only ever sees raw ``yuv444p``; its 8-bit rounding is part of this codec's loss (as it is
  for BPG). The bitstream's VUI signals ``range=full``/``colormatrix=bt470bg`` so other decoders show
  it correctly.
* Coding: libx265, profile ``main444-8``, constant QP (the quality; lower is better), one frame,
  ``keyint=1`` (all intra), ``tune=psnr`` (no psycho-visual tuning: the benchmark measures PSNR),
  preset ``medium`` unless the spec names another (``x265:veryslow``). One worker thread
  (``pools=1``, ``frame-threads=1``) so the output is byte-identical across runs and machines'
  core counts. ``info=0`` drops x265's ~2 KB "encoder settings" SEI, which carries no picture data.
* Bitstream: a 4-byte header (width, height as big-endian uint16) followed by the raw HEVC Annex-B
  stream (VPS/SPS/PPS + one IDR slice). Every byte is counted in the rate.
* Sizes: x265 codes odd sizes natively (conformance window), but refuses sides below 16 pixels;
  smaller images are padded by edge replication to 16 and cropped after decoding.
"""

from __future__ import annotations

import functools
import re
import struct
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bench.codec import Availability, BitstreamError, Codec, CodecError, CodecInfo, Encoded, FuzzSetup, check_image
from bench.codecs.still import ffmpeg_availability, ffmpeg_binary, run_ffmpeg_command
from bench.codecs.yuv import YuvFormat, planes_to_rgb, rgb_to_planes
from bench.images import DEFAULT_MAX_PIXELS
from bench.registry import register_codec

_YUV444 = YuvFormat("444", 8)

MIN_SIDE = 16  # libx265 (via ffmpeg) rejects smaller pictures: "Image size is too small"
MAX_SIDE = 65535  # the header stores each side as uint16
_HEADER = struct.Struct(">HH")
PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow", "placebo",
)  # fmt: skip
DEFAULT_PRESET = "medium"


def rgb_to_ycbcr(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> full-range BT.601 YCbCr uint8 (H, W, 3) (shared with the SHVC plugin)."""
    return np.stack(rgb_to_planes(image, _YUV444), axis=-1).astype(np.uint8)


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Full-range BT.601 YCbCr uint8 (H, W, 3) -> RGB uint8 (H, W, 3)."""
    return planes_to_rgb([ycc[..., c] for c in range(3)], _YUV444)


def _command(stream: object, binary: str) -> list[str]:
    """The ffmpeg argument list for an ffmpeg-python ``stream``, quiet and never reading stdin."""
    import ffmpeg

    quiet = stream.global_args("-hide_banner", "-nostdin", "-loglevel", "error")  # type: ignore[attr-defined]
    return ffmpeg.compile(quiet, cmd=binary)


@functools.lru_cache(maxsize=1)
def x265_fingerprint() -> dict[str, str]:
    """ffmpeg's version line and the libx265 version it links (from x265's own banner)."""
    from bench.fingerprint import first_line

    binary = ffmpeg_binary()
    if binary is None:
        return {"ffmpeg": "missing"}
    info = {"ffmpeg": first_line([binary, "-hide_banner", "-version"]) or "unknown"}
    # x265 prints "HEVC encoder version X" at log level info; encode one 16x16 grey frame to see it.
    command = [binary, "-hide_banner", "-nostdin", "-loglevel", "info", "-f", "rawvideo", "-pix_fmt", "yuv444p",
               "-s", "16x16", "-i", "pipe:", "-frames:v", "1", "-c:v", "libx265", "-x265-params", "log-level=info",
               "-f", "null", "-"]
    try:
        result = subprocess.run(command, input=bytes(16 * 16 * 3), capture_output=True, timeout=60, check=False)
        match = re.search(rb"HEVC encoder version (\S+)", result.stderr)
        info["x265"] = match.group(1).decode() if match else "unknown"
        # x265 picks its assembly by CPU; the same version gave other bits on another host (16 of
        # 221,760 on kodim01 at QP 32), so the SIMD level and the host's flags are part of its output
        simd = re.search(rb"using cpu capabilities: (.+)", result.stderr)
        info["x265_simd"] = simd.group(1).decode().strip() if simd else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        info["x265"] = "unknown"
    from bench.fingerprint import cpu_flags_digest

    info["cpu_flags"] = cpu_flags_digest()
    return info


def _fuzz_setup(cls: type, workdir: Path, time_limit: float) -> FuzzSetup:
    from bench.codecs.fuzzing import hang_aware_decode, test_image
    from bench.errors import FuzzError

    codec = cls("ultrafast")
    status = codec.availability()
    if not status.available:
        raise FuzzError(f"x265 is unavailable here: {status.reason}")
    codec.timeout_s = max(1.0, 0.8 * time_limit)  # its own limit ends ffmpeg before the watchdog fires
    seeds = [codec.encode([test_image(24, 32, 6)], 37).data, codec.encode([test_image(12, 20, 7)], 45).data]
    return FuzzSetup(codec, seeds, decode=hang_aware_decode(codec))


@register_codec("x265")
class X265Codec(Codec):
    """HEVC intra 4:4:4 (libx265 via ffmpeg) at a constant QP; spec ``x265[:PRESET]``."""

    info = CodecInfo(
        description="HEVC intra, x265 main444-8 via ffmpeg, BT.601 full-range YCbCr 4:4:4, QP as quality",
        scalable=False,
        # JCT-VC's QPs 22-37 span ~32-42 dB on Kodak, above every learned codec here (~27-31 dB): 42 and
        # 47 extend the ladder down to ~27.5 dB so that a default run's BD-rates against learned codecs
        # have the PSNR overlap they need (measured on 4 Kodak images at x1.5: QP 42 29.8 dB, QP 47 27.5 dB)
        default_qualities=(22, 27, 32, 37, 42, 47),
        quality_range=(0, 51),
        quality_meaning="an HEVC QP",
        # The 4-byte header carries no length and HEVC's arithmetic-coded slice cannot tell where it was
        # cut: ffmpeg conceals a cut stream (adding a length would change every bitstream's size).
        detects_truncation=False,
        rate_counts="a 4-byte size header, then VPS/SPS/PPS and the IDR slice (no SEI, no picture hash)",
        fuzz=_fuzz_setup,
        fuzz_cap=500,  # ffmpeg starts for every fuzz input
    )

    timeout_s: float = 300.0  # per ffmpeg call; a 4K intra frame takes a few seconds
    # The largest picture ``decode`` accepts (``bench decode --max-pixels``), from the 4-byte header and
    # from the HEVC stream itself (ffmpeg's decoder limit): a hostile stream cannot make ffmpeg
    # allocate (and hand back) frames of any size its SPS claims. Pictures this instance encoded are
    # trusted.
    max_pixels: int = DEFAULT_MAX_PIXELS
    _encoded_pixels: int = 0

    def fingerprint(self, weights: Mapping[str, str] | None = None) -> dict[str, str]:
        return dict(x265_fingerprint())

    @property
    def preset(self) -> str:
        return self.arg or DEFAULT_PRESET

    def coding_threads(self, requested: int) -> int:
        return 1  # pools=1, frame-threads=1: byte-identical output on any machine

    def availability(self) -> Availability:
        if self.preset not in PRESETS:
            choices = ", ".join(PRESETS)
            return Availability.missing(f"unknown x265 preset {self.preset!r}; choose one of {choices}")
        try:
            import ffmpeg  # noqa: F401  (ffmpeg-python builds the command lines)
        except ImportError:
            return Availability.missing("Python package ffmpeg-python is missing: pip install ffmpeg-python")
        return ffmpeg_availability(["libx265"])

    def _binary(self) -> str:
        status = self.availability()
        if not status.available:
            raise CodecError(f"x265 is unavailable: {status.reason}")
        binary = ffmpeg_binary()
        assert binary is not None  # availability() checked it
        return binary

    def _run(self, args: list[str], data: bytes, what: str, error: type[CodecError]) -> bytes:
        return run_ffmpeg_command(args, data, what, error, self.timeout_s)

    def encode(self, layers: Sequence[np.ndarray], quality: int) -> Encoded:
        if len(layers) != 1:
            raise CodecError(f"x265 is single-layer: expected 1 image, got {len(layers)}")
        image = layers[0]
        check_image(image)
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 0 <= quality <= 51:
            raise CodecError(f"x265 quality is an HEVC QP in 0..51, got {quality}")
        height, width = image.shape[:2]
        if width > MAX_SIDE or height > MAX_SIDE:
            raise CodecError(f"image {width}x{height} is too large (at most {MAX_SIDE} per side)")
        binary = self._binary()
        import ffmpeg  # only now: availability() has said it is installed

        # Padding pixels are coded like any other and their bits count: honest for tiny layers.
        pad_h, pad_w = max(0, MIN_SIDE - height), max(0, MIN_SIDE - width)
        padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else image
        planar = np.ascontiguousarray(rgb_to_ycbcr(padded).transpose(2, 0, 1))  # yuv444p is planar
        x265_params = ":".join(
            [
                f"qp={int(quality)}",
                "keyint=1",
                "log-level=error",
                "pools=1",
                "frame-threads=1",
                "info=0",
                "range=full",
                "colormatrix=bt470bg",
            ]
        )
        stream = ffmpeg.input(
            "pipe:", format="rawvideo", pix_fmt="yuv444p", s=f"{padded.shape[1]}x{padded.shape[0]}"
        ).output(
            "pipe:",
            format="hevc",
            vcodec="libx265",
            preset=self.preset,
            tune="psnr",
            **{"profile:v": "main444-8", "frames:v": 1, "x265-params": x265_params},
        )
        hevc = self._run(_command(stream, binary), planar.tobytes(), "x265 encode", CodecError)
        if not hevc:
            raise CodecError("ffmpeg x265 encode produced no bytes")
        data = _HEADER.pack(width, height) + hevc
        self._encoded_pixels = max(self._encoded_pixels, padded.shape[0] * padded.shape[1])
        return Encoded(data=data, layer_bytes=[len(data)])

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        if num_layers not in (None, 1):
            raise CodecError(f"x265 is single-layer: cannot decode {num_layers} layers")
        if len(data) <= _HEADER.size:
            raise BitstreamError(f"x265 bitstream of {len(data)} bytes is too short")
        width, height = _HEADER.unpack_from(data)
        if width == 0 or height == 0:
            raise BitstreamError(f"x265 header names an empty image ({width}x{height})")
        coded_w, coded_h = max(width, MIN_SIDE), max(height, MIN_SIDE)
        limit = max(self.max_pixels, self._encoded_pixels)
        if coded_w * coded_h > limit:
            raise BitstreamError(f"x265 header claims a {width}x{height} picture, more than the limit of {limit} "
                                 "pixels (bench decode --max-pixels)")
        binary = self._binary()
        import ffmpeg  # only now: availability() has said it is installed
        # No output pix_fmt: ffmpeg must hand back the decoder's own yuv444p untouched (asking for
        # a format could make it convert); anything else shows up as a wrong byte count below.
        # At most 2 frames out: a damaged stream cannot make ffmpeg buffer unbounded output, and a
        # second frame still shows up as a wrong byte count. max_pixels: the decoder refuses an SPS
        # larger than the header's picture (the size this codec writes), before allocating for it;
        # ffmpeg checks the coded size, padded to 8 (HEVC's CU) and its width to its stride alignment.
        allowed = (coded_w + 128) * (coded_h + 128)
        stream = ffmpeg.input("pipe:", format="hevc", max_pixels=allowed).output(
            "pipe:", format="rawvideo", **{"frames:v": 2})
        raw = self._run(_command(stream, binary), data[_HEADER.size :], "HEVC decode", BitstreamError)
        expected = coded_w * coded_h * 3
        if len(raw) != expected:
            raise BitstreamError(
                f"HEVC decode gave {len(raw)} bytes, expected one {coded_w}x{coded_h} yuv444p frame "
                f"({expected} bytes): not an x265 4:4:4 bitstream of this size"
            )
        ycc = np.frombuffer(raw, dtype=np.uint8).reshape(3, coded_h, coded_w).transpose(1, 2, 0)
        return [ycbcr_to_rgb(ycc[:height, :width])]
