"""Shared plumbing of the conventional still-image anchors (jpeg, webp, jpeg2000, av1, jpegxl).

Each of those plugins codes one RGB image with a standard library and decodes it with the real
decoder of that format, so what they share is the part around the library call:

* ``StillImageCodec``: the single-layer ``Codec`` frame. It checks the input and the quality (an
  integer in the range its ``info`` declares; ``quality_problem`` refuses any other before a run
  starts), counts every byte the encoder wrote as layer 0 (the bitstream is the real file, container
  headers included), and checks that what the decoder returns is an 8-bit RGB image. Plugins
  implement ``_encode_image`` and ``_decode_image`` only.
* Pillow helpers (``pillow_availability``, ``pillow_encode``, ``pillow_decode``) for the formats
  Pillow's bundled libraries code in-process.
* ffmpeg helpers (``ffmpeg_availability``, ``ffmpeg_binary``, ``run_ffmpeg``) for the formats coded
  through ffmpeg's library wrappers, with the availability reason naming what is missing.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import warnings
from abc import abstractmethod
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from bench.codec import (
    Availability,
    BitstreamError,
    Codec,
    CodecError,
    Encoded,
    FuzzSetup,
    check_image,
    quality_problem,
)
from bench.codecs.external import failure_message, run_tool

FFMPEG_TIMEOUT_S = 300.0  # per ffmpeg call; one 4K still takes seconds, a hung process must not block a run
FFMPEG_INSTALL_HINT = "install a full build, e.g. apt-get install ffmpeg"


class StillImageCodec(Codec):
    """The frame of a single-layer codec of one RGB image at an integer quality in the
    ``info.quality_range`` it declares (``info.quality_meaning`` completes the sentence "<name> quality
    is ..." in error messages, e.g. "an IJG quality factor (higher is better)"). ``max_side`` is the
    format's largest picture side; ``timeout_s`` bounds each ffmpeg call of the plugins that run ffmpeg.
    """

    max_side: ClassVar[int] = 65535
    timeout_s: float = FFMPEG_TIMEOUT_S

    def coding_threads(self, requested: int) -> int:
        return 1  # every plugin pins one thread, so the bytes do not depend on the machine

    def _require_available(self) -> None:
        status = self.availability()
        if not status.available:
            raise CodecError(f"{self.name} is unavailable: {status.reason}")

    def encode(self, layers: Sequence[np.ndarray], quality: int) -> Encoded:
        if len(layers) != 1:
            raise CodecError(f"{self.name} is single-layer: expected 1 image, got {len(layers)}")
        image = layers[0]
        check_image(image)
        problem = quality_problem(self, quality)
        if problem is not None:
            raise CodecError(problem)
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            raise CodecError(f"cannot code an empty {width}x{height} image")
        if height > self.max_side or width > self.max_side:
            raise CodecError(f"image {width}x{height} is too large for {self.name} (at most {self.max_side} per side)")
        self._require_available()
        data = self._encode_image(np.ascontiguousarray(image), int(quality))
        if not data:
            raise CodecError(f"{self.name} encoder produced no bytes")
        return Encoded(data=data, layer_bytes=[len(data)])

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        if num_layers not in (None, 1):
            raise CodecError(f"{self.name} is single-layer: cannot decode {num_layers} layers")
        if not data:
            raise BitstreamError(f"{self.name} bitstream is empty")
        self._require_available()
        image = self._decode_image(bytes(data))
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
            raise BitstreamError(
                f"{self.name} decoder gave shape {image.shape} dtype {image.dtype}, not an 8-bit RGB image"
            )
        return [image]

    @abstractmethod
    def _encode_image(self, image: np.ndarray, quality: int) -> bytes:
        """The complete file for ``image`` (HxWx3 uint8, contiguous) at a validated ``quality``."""

    @abstractmethod
    def _decode_image(self, data: bytes) -> np.ndarray:
        """Decode the complete file ``data``; raise BitstreamError when it is not one."""


def still_fuzz_setup(cls: type[StillImageCodec], workdir: Path, time_limit: float) -> FuzzSetup:
    """Two small files at a middle default quality; the decoder is the real one, so ``bench fuzz``
    checks that damaged files end in a BitstreamError (never a crash or a hang of the library)."""
    from bench.codecs.fuzzing import hang_aware_decode, test_image
    from bench.errors import FuzzError

    codec = cls()
    status = codec.availability()
    if not status.available:
        raise FuzzError(f"{cls.name} is unavailable here: {status.reason}")
    codec.timeout_s = max(1.0, 0.8 * time_limit)  # its own limit ends ffmpeg before the watchdog fires
    qualities = cls.info.default_qualities
    quality = qualities[len(qualities) // 2]
    images = [test_image(24, 32, 6), test_image(12, 20, 7)]
    seeds = [codec.encode([image], quality).data for image in images]
    return FuzzSetup(codec, seeds, decode=hang_aware_decode(codec))


# -- Pillow -------------------------------------------------------------------------------------


def pillow_availability(feature: str, library: str) -> Availability:
    """Whether this Pillow was built with ``feature`` (``PIL.features`` name, e.g. ``"webp"``)."""
    try:
        from PIL import features
    except ImportError:
        return Availability.missing("Python package Pillow is missing: pip install pillow")
    if not features.check(feature):
        return Availability.missing(
            f"this Pillow has no {library} support (features.check({feature!r}) is False); "
            "install a Pillow wheel from PyPI, which bundles it"
        )
    return Availability.ok()


def pillow_fingerprint(*names: str) -> dict[str, str]:
    """Pillow's version and those of the libraries behind the ``PIL.features`` ``names`` (the bytes
    depend on all of them)."""
    try:
        import PIL
        from PIL import features
    except ImportError:
        return {"pillow": "missing"}
    return {"pillow": PIL.__version__, **{name: features.version(name) or "missing" for name in names}}


def pillow_encode(image: np.ndarray, format: str, **options: object) -> bytes:
    """``image`` saved by Pillow as ``format`` with ``options``: the file's bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    try:
        Image.fromarray(image, mode="RGB").save(buffer, format=format, **options)
    except (OSError, ValueError) as error:
        raise CodecError(f"Pillow {format} encode failed: {error}") from error
    return buffer.getvalue()


def pillow_decode(data: bytes, format: str) -> np.ndarray:
    """Decode ``data`` with Pillow's ``format`` decoder only; an RGB uint8 array.

    Anything but a complete RGB file of that format is a BitstreamError: Pillow refuses truncated
    files by default, and a file that decodes to another mode is not one this codec wrote. So is a
    header claiming more pixels than Pillow's decompression-bomb limit (about 89 million), which
    Pillow itself would only warn about before allocating them: no benchmark image is that large.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[format]) as picture:
                picture.load()
                if picture.mode != "RGB":
                    raise BitstreamError(f"{format} file decodes to mode {picture.mode}, not RGB")
                return np.asarray(picture, dtype=np.uint8).copy()
    except BitstreamError:
        raise
    except Exception as error:  # OSError, SyntaxError, ValueError, the bomb warning, ... on bad input
        raise BitstreamError(f"Pillow cannot decode the {format} bitstream: {error}") from error


# -- ffmpeg -------------------------------------------------------------------------------------


def ffmpeg_binary() -> str | None:
    return shutil.which("ffmpeg")


@functools.lru_cache(maxsize=16)
def _ffmpeg_components(binary: str, kind: str) -> tuple[frozenset[str], str]:
    """Names in ``binary -encoders`` (kind ``encoders``) or ``-decoders``; an error text on failure."""
    try:
        result = subprocess.run(
            [binary, "-hide_banner", "-nostdin", f"-{kind}"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return frozenset(), f"running {binary} -{kind} failed: {error}"
    if result.returncode != 0:
        return frozenset(), f"{binary} -{kind} exited with status {result.returncode}"
    names = set()
    for line in result.stdout.decode(errors="replace").splitlines():
        fields = line.split()
        # rows look like " V....D libaom-av1   libaom AV1": six capability flags, then the name
        if len(fields) >= 2 and len(fields[0]) == 6 and fields[0][0] in "VAS" and fields[0] != "------":
            names.add(fields[1])
    return frozenset(names), ""


def ffmpeg_availability(encoders: Sequence[str], decoders: Sequence[str] = ()) -> Availability:
    """Available when ffmpeg is on PATH with every one of ``encoders`` and at least one of
    ``decoders`` (alternatives, e.g. libdav1d or libaom-av1 for AV1); the reason names what is not."""
    binary = ffmpeg_binary()
    if binary is None:
        return Availability.missing(
            "ffmpeg not found on PATH; install it (apt-get install ffmpeg, brew install ffmpeg, "
            "or conda install -c conda-forge ffmpeg)"
        )
    found, error = _ffmpeg_components(binary, "encoders")
    if error:
        return Availability.missing(error)
    for encoder in encoders:
        if encoder not in found:
            return Availability.missing(f"{binary} has no {encoder} encoder ({FFMPEG_INSTALL_HINT})")
    if decoders:
        found, error = _ffmpeg_components(binary, "decoders")
        if error:
            return Availability.missing(error)
        if not any(decoder in found for decoder in decoders):
            return Availability.missing(
                f"{binary} has none of the decoders {', '.join(decoders)} ({FFMPEG_INSTALL_HINT})"
            )
    return Availability.ok()


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """ffmpeg's version line (its library wrappers and default settings change between versions)."""
    from bench.fingerprint import first_line

    binary = ffmpeg_binary()
    return (first_line([binary, "-hide_banner", "-version"]) or "unknown") if binary else "missing"


def ffmpeg_has_decoder(decoder: str) -> bool:
    binary = ffmpeg_binary()
    return binary is not None and decoder in _ffmpeg_components(binary, "decoders")[0]


def run_ffmpeg(
    arguments: Sequence[str], data: bytes, what: str, error: type[CodecError], timeout_s: float = FFMPEG_TIMEOUT_S
) -> bytes:
    """Run ffmpeg (quiet, stdin = ``data``) with ``arguments``; its stdout. A failure raises ``error``
    (CodecError for an encode, BitstreamError for a decode of bytes that may be damaged)."""
    binary = ffmpeg_binary()
    if binary is None:
        raise CodecError("ffmpeg not found on PATH")
    command = [binary, "-hide_banner", "-nostdin", "-loglevel", "error", *arguments]
    return run_ffmpeg_command(command, data, what, error, timeout_s)


def run_ffmpeg_command(
    command: Sequence[str], data: bytes, what: str, error: type[CodecError], timeout_s: float
) -> bytes:
    """Run a complete ffmpeg ``command`` with stdin = ``data``; its stdout, or ``error`` naming the
    failure with ffmpeg's last lines (a run past ``timeout_s`` is a CodecError saying "ran past", the
    fuzzer's hang)."""
    result = run_tool(command, timeout=timeout_s, what=what, input=data)
    if result.returncode != 0:
        raise error(failure_message(command[0], what, result))
    return result.stdout
