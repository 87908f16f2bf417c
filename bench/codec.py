"""The one interface every codec implements, learned or external, single-layer or scalable.

Images are ``numpy.ndarray`` of shape (H, W, 3), dtype uint8, RGB. A codec encodes a list of layer
images (smallest first) at one quality into bytes and decodes bytes back into the list of layer
reconstructions (uint8, the same sizes). A *scalable* codec decodes any prefix of its layers; a
*single-layer* codec takes exactly one image (the runner codes each pyramid layer on its own).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping, Sequence

import numpy as np

from bench.errors import BitstreamError, CodecError

if TYPE_CHECKING:
    from bench.measuring.complexity import LayerComplexity

__all__ = ["Availability", "BitstreamError", "Codec", "CodecError", "CodecInfo", "Encoded", "FuzzSetup", "SectionClock",
           "check_image", "quality_problem", "synchronize", "weights_file_id"]

# How a report names the records of a layered codec that is none of the contract's anchors.
SCALABLE_ROLE = "scalable"


@dataclass(frozen=True)
class Availability:
    """Whether a codec can run here; ``reason`` says why not (and how to fix it) when it cannot."""

    available: bool
    reason: str = ""

    @classmethod
    def ok(cls) -> "Availability":
        return cls(True, "")

    @classmethod
    def missing(cls, reason: str) -> "Availability":
        return cls(False, reason)


@dataclass
class Encoded:
    """A real bitstream and how its bytes split over the layers.

    ``layer_bytes[k]`` is the number of bytes of ``data`` that belong to layer k; they add up to
    ``len(data)``, with headers shared by all layers attributed to the base layer.
    ``timings`` holds optional codec-internal seconds (e.g. ``network``, ``entropy``) for the cost
    report; wall-clock encode time is measured by the runner. Keys starting with ``check_`` are
    self-checks inside ``encode`` that a user of the codec would not run (e.g. SHVC decoding its own
    stream to verify it): they are reported, but left out of the encode time.
    """

    data: bytes
    layer_bytes: list[int]
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if sum(self.layer_bytes) != len(self.data):
            raise ValueError(
                f"layer_bytes {self.layer_bytes} add up to {sum(self.layer_bytes)}, "
                f"not to the {len(self.data)} bytes of the bitstream"
            )


@dataclass
class FuzzSetup:
    """What ``bench fuzz`` needs to fuzz one codec's decoder (see ``CodecInfo.fuzz``).

    ``seeds`` are valid streams the codec made, which inputs are mutated from; ``layer_choices`` the
    ``num_layers`` a decode call may ask for (drawn per input); ``reseal`` recomputes a stream's CRCs
    after damage, so that the checks behind them are reached too; ``decode`` replaces
    ``codec.decode`` where the fuzzer needs a wrapper (e.g. to turn a codec's own time limit into a
    hang).
    """

    codec: "Codec"
    seeds: list[bytes]
    layer_choices: tuple[int | None, ...] = (None,)
    reseal: Callable[[bytes], bytes] | None = None
    decode: Callable[[bytes, int | None], Any] | None = None


@dataclass(frozen=True)
class CodecInfo:
    """What a codec declares about itself: data only, read by the runner, the reports, ``bench
    list`` and the fuzzer (the way timm's ``PretrainedCfg`` declares a model). A plugin sets it once
    on its class; a codec whose facts depend on its spec (``simulcast:INNER`` takes its inner
    codec's) builds its own in ``__init__``. Nothing here runs a codec."""

    description: str = ""
    scalable: bool = False
    # How many layers one bitstream can hold: None is any number; a single-layer codec holds 1.
    max_layers: int | None = None
    default_qualities: tuple[int, ...] = ()
    # True for codecs with one model per quality (learned codecs): only ``default_qualities`` exist.
    fixed_qualities: bool = False
    # The integer qualities a codec with a continuous scale takes, inclusive, and what they are
    # ("an HEVC QP"): ``quality_problem`` checks them before a run starts.
    quality_range: tuple[int, int] | None = None
    quality_meaning: str = "an integer"
    # Layer k's bytes are one consecutive range after layer k-1's (COMPASS chunks, the simulcast
    # container), so a file cut after layer k still decodes layers 0..k; not so for SHM's
    # interleaved NAL units.
    prefix_decodable: bool = False
    # False for a format that cannot tell a cut stream from a whole one (no length or CRC): decoding
    # a truncated stream then gives a damaged picture instead of a BitstreamError (the contract
    # tests hold every other codec to the error).
    detects_truncation: bool = True
    # What the rate counts beyond the coded picture data: headers, parameter sets, integrity bytes
    # (CRCs, picture hashes). Every byte of ``Encoded.data`` is counted; reports list this per codec
    # so that readers see which overhead each rate carries.
    rate_counts: str = ""
    # External reference encoders that take minutes per job: the runner starts their jobs first,
    # so that they do not become the tail of a parallel run.
    slow: bool = False
    # False for codecs whose bytes may differ between runs on the same machine (external reference
    # software): ``bench check`` then compares them with a tolerance, never exactly.
    deterministic: bool = True
    # The single-layer codec family a layered codec is built on (its BL codec), which reports pair
    # it with; None: the codec's own name.
    family: str | None = None
    # How reports name a layered codec's records: one of the contract's anchors (``simulcast``,
    # ``shvc``, ``vtm-ml``) or ``scalable`` (a codec under test).
    report_role: str = SCALABLE_ROLE
    # A conventional scalable anchor (SHVC, VVC multi-layer): every scalable codec is compared with
    # it, whatever its family.
    anchors_every_family: bool = False
    # Weights sources other than the default that ``bench list`` shows (``NAME@SOURCE``).
    published_sources: tuple[str, ...] = ()
    # The spec ``bench list`` shows when the bare name is not a complete spec (``simulcast:x265``),
    # and further specs it shows (presets, the simulcast a codec makes).
    list_spec: str | None = None
    list_variants: tuple[str, ...] = ()
    # ``bench fuzz``: ``fuzz(codec_class, workdir, time_limit)`` makes a codec instance and seeds in
    # the fuzz worker (None: the codec is not fuzzed); ``fuzz_cap`` is the most inputs per run unless
    # ``--uncapped`` (a decoder that starts a process per input).
    fuzz: Callable[[type["Codec"], Path, float], FuzzSetup] | None = None
    fuzz_cap: int | None = None

    def __post_init__(self) -> None:
        if not self.scalable:
            object.__setattr__(self, "max_layers", 1)


class Codec(ABC):
    """Base class of every codec plugin: the coding contract.

    A plugin is registered under ``name`` (``bench.registry.register_codec``), declares what it is in
    ``info`` (a ``CodecInfo``: data only) and implements ``encode``/``decode``. A codec that splits its
    decode time (e.g. ``network`` vs ``entropy``) assigns a fresh dict to ``last_decode_timings`` in
    every ``decode`` call, first thing (so that a failing call leaves no stale numbers); ``decode``
    returns pixels only, so this is the decode counterpart of ``Encoded.timings``. Codecs that do not
    split keep the empty default.

    The constructor receives the parts of the codec spec string
    ``NAME[:ARG][@SOURCE]`` (e.g. ``simulcast:x265``, ``mean-scale@compressai``) and the device.
    Construction must be cheap and must not fail when the codec is unavailable: heavy loading
    happens lazily, and ``availability()`` says whether the codec can run.

    No registered codec subclasses another: codecs that drive the same binaries or libraries share
    an unregistered frame (``ShmCodec`` for shvc and hm, ``VtmCodecBase`` for vtm and vtm-ml,
    ``StillImageCodec`` for the still-image codecs), and each declares its own ``info``, so none
    inherits, or has to undo, another codec's declarations.
    """

    name: ClassVar[str] = ""
    info: CodecInfo = CodecInfo()
    # read-only empty default: a codec replaces it per decode, never mutates it
    last_decode_timings: Mapping[str, float] = MappingProxyType({})

    def __init__(self, arg: str | None = None, source: str | None = None, device: str = "cpu") -> None:
        self.arg = arg
        self.source = source
        self.device = device

    @property
    def spec(self) -> str:
        """The spec string that recreates this codec through the registry."""
        text = self.name
        if self.arg:
            text += f":{self.arg}"
        if self.source:
            text += f"@{self.source}"
        return text

    def availability(self) -> Availability:
        return Availability.ok()

    @abstractmethod
    def encode(self, layers: Sequence[np.ndarray], quality: int) -> Encoded:
        """Code ``layers`` (smallest first) at ``quality`` into one bitstream."""

    @abstractmethod
    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        """Decode layers ``0..num_layers-1`` (all when None) from ``data``; uint8 HxWx3 each."""

    def encode_diagnostics(self) -> list[dict[str, float]]:
        """Per-layer numbers about the last ``encode`` call that are not rate or distortion (e.g. how
        good an inter-layer prediction was), one dict per layer (empty where there is nothing to
        say), or ``[]`` when the codec has none. The runner calls it after the timed encode, so a
        codec keeps what it needs during ``encode`` and computes the numbers here, off the clock."""
        return []

    def complexity(self, sizes: Sequence[tuple[int, int]], quality: int) -> "list[LayerComplexity] | None":
        """kMAC per pixel of every layer of one bitstream of layers of ``sizes`` (height, width;
        smallest first; one size for a single-layer codec) at ``quality``, encoder and decoder apart
        (``bench.measuring.complexity``): what this codec's encoder and decoder run for each layer, counted with
        torch's FlopCounterMode. None for codecs whose operations torch cannot count (external
        encoders). The runner caches the answer per (codec, quality, sizes)."""
        return None

    def parameter_counts(self) -> dict[str, int]:
        """Learned parameters per module (e.g. ``{"bl": …, "liff": …}``); empty for classic codecs."""
        return {}

    def weights_info(self) -> dict[str, str]:
        """Where the weights come from (``source``, ``file``, ``sha256``); empty when there are none."""
        return {}

    def weights_id(self, quality: int) -> str | None:
        """The SHA-256 (hex) of the weights this codec codes ``quality`` with; None for codecs without
        weights (or where none are present for ``quality``). Unlike ``weights_info``, it does not
        depend on which qualities happen to be loaded: the runner writes it into every record
        (``extra.weights_id``) and a resumed run refuses records made with other weights. Must not
        load a model to answer (hash the file)."""
        return None

    def weights_status(self) -> tuple[str, list[int]] | None:
        """Which weights the codec uses and the qualities present here, for ``bench list`` (None:
        the codec has no weights to report). Loads nothing."""
        return None

    def fingerprint(self, weights: Mapping[str, str] | None = None) -> dict[str, str]:
        """Everything this codec's exact output depends on besides bench's own code (``bench check``
        compares bytes exactly only when it is the baseline's). By default the numeric stack and the
        CPU, plus the weights' hash (``weights``: a record's ``extra.weights``, else ``weights_info()``)."""
        from bench.fingerprint import numeric_stack

        return numeric_stack(weights if weights is not None else self.weights_info())

    def coding_threads(self, requested: int) -> int:
        """How many CPU threads the codec codes with when the run asks for ``requested``: codecs that
        pin their thread count for bit-exact output (learned codecs on CPU, x265, SHM) say so, and
        records report this number, not the request."""
        return requested


def quality_problem(codec: Codec, quality: int) -> str | None:
    """Why ``quality`` is not one ``codec`` codes (checked before a run starts), or None: from what
    its ``info`` declares (the fixed qualities of one model per quality, or a range)."""
    info = codec.info
    if info.fixed_qualities and quality not in info.default_qualities:
        return f"{codec.spec} quality must be one of {list(info.default_qualities)}, got {quality}"
    if info.quality_range is not None:
        low, high = info.quality_range
        # bool is an int subclass; True as a quality is a caller's mistake, not quality 1
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not low <= quality <= high:
            return f"{codec.spec} quality is {info.quality_meaning} in {low}..{high}, got {quality!r}"
    return None


def synchronize(device: str) -> None:
    """Wait for queued work on ``device`` (CUDA) so that wall-clock timings are honest."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class SectionClock:
    """Codec-internal seconds per named section, for ``Encoded.timings``/``last_decode_timings``.

    ``with clock.section("entropy"): …`` adds the section's seconds to ``seconds["entropy"]``.
    Sections nest: an outer section counts only its own time, not that of sections inside it, so
    the keys never double-count and add up to at most the wall time of the call. On CUDA each
    section synchronises on entry and exit, so queued kernels are charged to the section that
    launched them rather than to whichever one first waits for them.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.seconds: dict[str, float] = {}
        self._cuda = device.startswith("cuda")
        self._inner: list[float] = []  # per open section: seconds spent in its nested sections

    def _synchronize(self) -> None:
        if self._cuda:
            import torch

            torch.cuda.synchronize()

    @contextmanager
    def section(self, key: str) -> Iterator[None]:
        self._synchronize()
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            self._synchronize()
            elapsed = time.perf_counter() - start
            inner = self._inner.pop()
            self.seconds[key] = self.seconds.get(key, 0.0) + elapsed - inner
            if self._inner:
                self._inner[-1] += elapsed


def check_image(image: np.ndarray) -> None:
    """Raise CodecError unless ``image`` is an HxWx3 uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", None)
        raise CodecError(f"expected an HxWx3 uint8 RGB image, got shape {shape} dtype {dtype}")


# weights_file_id's answers: (resolved path, inode, size, mtime) -> SHA-256 hex
_weights_file_ids: dict[tuple[str, int, int, int], str] = {}


def weights_file_id(path: Path, digest: Callable[[Path], str]) -> str:
    """``digest(path)``, a weights file's SHA-256 as its codec computes and checks it (e.g.
    ``bench.zoo.verify_hash``), hashed once per version of the file in this process: the answer is
    kept per path, inode, size and modification time, so a replaced file is hashed again. For
    ``Codec.weights_id``, which must not load a model."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _weights_file_ids:
        _weights_file_ids[key] = digest(path)
    return _weights_file_ids[key]
