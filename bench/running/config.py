"""What one ``bench run`` does, validated before any dataset or codec loads (``RunConfig``).

The command line builds a ``RunConfig`` from its arguments; a script or a notebook builds one
directly and hands it to ``bench.api.run``. Constructing it checks everything that can be checked
without loading a dataset or a codec (option ranges, scale and anchoring syntax, the device, which
codecs ``qualities`` names), so a typo costs no minutes of loading; what needs the codecs (their
availability, their layer limits and qualities) is checked by ``bench.api.prepare``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from numpy import format_float_positional

from bench.errors import ConfigError
from bench.images import DEFAULT_MAX_PIXELS
from bench.measuring.ycbcr import DEFAULT_YUV_MATRIX, YUV_MATRICES
from bench.pyramid import Anchoring, parse_scales

DEFAULT_RUN_DIR = Path("runs") / "main"
DEFAULT_SCALES = ("2",)

# (codec spec or None for every codec, qualities), applied in order: later entries win
QualityChoice = tuple["str | None", tuple[int, ...]]


def split_codecs(values: str | Sequence[str]) -> tuple[str, ...]:
    """Codec specs from comma lists (``"x265,compass"`` or several of them), each once, in order."""
    values = [values] if isinstance(values, str) else values
    specs: list[str] = []
    for value in values:
        for part in value.split(","):
            if part.strip() and part.strip() not in specs:
                specs.append(part.strip())
    return tuple(specs)


def parse_quality_options(values: Sequence[str], specs: Sequence[str]) -> tuple[QualityChoice, ...]:
    """``1,2`` (every codec) or ``x265=22,27`` (one codec) per value, as ``--qualities`` takes them."""
    choices: list[QualityChoice] = []
    for value in values:
        target, _, numbers = value.rpartition("=")
        try:
            qualities = tuple(dict.fromkeys(int(q) for q in numbers.split(",") if q.strip()))
        except ValueError:
            raise ConfigError(f"--qualities expects integers, got {value!r}") from None
        if not qualities:
            raise ConfigError(f"--qualities {value!r} names no quality")
        if target and target not in specs:
            raise ConfigError(f"--qualities names {target!r}, which is not in --codecs")
        choices.append((target or None, qualities))
    return tuple(choices)


def quality_mapping(qualities: Mapping[str, Sequence[int]], specs: Sequence[str]) -> tuple[QualityChoice, ...]:
    """``{spec: qualities}`` as quality choices; every spec must be one of ``specs``."""
    choices: list[QualityChoice] = []
    for spec, values in qualities.items():
        if spec not in specs:
            raise ConfigError(f"qualities name {spec!r}, which is not in codecs")
        chosen = tuple(dict.fromkeys(int(q) for q in values))
        if not chosen:
            raise ConfigError(f"qualities for {spec!r} name no quality")
        choices.append((spec, chosen))
    return tuple(choices)


def check_device(device: str) -> None:
    """``cpu``, or ``cuda``/``cuda:N`` where CUDA is available: ConfigError otherwise."""
    if device == "cpu":
        return
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigError(f"--device {device}: use cpu or cuda[:N]")
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is available here")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def _scale_set(scales: str | Sequence[float]) -> tuple[float, ...]:
    """One scale combination as ratios: text as ``--scales`` takes it, or numbers (``()`` or ``(1,)``:
    the single-layer combination)."""
    if isinstance(scales, str):
        return parse_scales(scales)
    ratios = tuple(float(x) for x in scales)
    if ratios in ((), (1.0,)):
        return ()
    # numbers go through the same checks as text, written as the shortest plain decimal that reads
    # back as the same float (repr may say 1e+20, which is no decimal a user types)
    return parse_scales(",".join(format_float_positional(x, trim="-") if math.isfinite(x) else str(x)
                                 for x in ratios))


def _check_single_layer(specs: Sequence[str], anchor: str) -> None:
    """``--scales 1`` codes the full picture as one layer: only single-layer codecs do that (a
    scalable codec with one layer is its base layer alone, not what it is benchmarked as), and only
    with top anchoring (base:F would code an F-size picture). What a codec is comes from its class's
    declaration (``CodecInfo.scalable``): no codec is created here."""
    from bench.registry import declared_class

    scalable = [spec for spec in specs if (cls := declared_class(spec)) is not None and cls.info.scalable]
    if scalable:
        raise ConfigError(f"--scales 1 (a single-layer run of the full picture) is for single-layer codecs; "
                          f"scalable codec(s) {', '.join(scalable)} code at least two layers: give them a "
                          f"ratio such as --scales 2, in a run of their own")
    if anchor != "top":
        raise ConfigError(f"--scales 1 codes the full picture; --anchor {anchor} would code a smaller one "
                          "(use --anchor top)")


@dataclass(frozen=True)
class RunConfig:
    """One run: codecs × dataset images × scale combinations × qualities, into the folder ``out``.

    ``codecs``: specs (``"x265"``, ``"simulcast:mean-scale"``, or comma lists of them);
    ``scales``: one scale combination per entry, as text (``"1.33,1.5"``) or ratios (``(1.33, 1.5)``);
    ``qualities``: ``None`` (each codec's own), ``--qualities``-style texts (``["1,2"]``,
    ``["x265=22,27"]``) or a mapping spec -> qualities; ``threads``: torch threads per job (None:
    cores / jobs, or 1 per job on a cluster); ``yuv_matrix``: the YCbCr matrix of PSNR-Y/YUV
    (``bench.measuring.ycbcr``); ``argv``: the command line the manifest records; ``max_pixels``: the largest
    picture read (None: ``bench.images.DEFAULT_MAX_PIXELS``).
    After construction every field is normalised: ``codecs`` a tuple of specs, ``scales`` a tuple of
    ratio tuples (duplicates dropped), ``anchor`` its canonical text, ``qualities`` a tuple of
    ``(spec or None, qualities)`` choices, ``out`` a Path.
    """

    codecs: Sequence[str]
    scales: Sequence[str | Sequence[float]] = DEFAULT_SCALES
    dataset: str = "kodak"
    data_root: Path | None = None
    limit: int | None = None
    qualities: Sequence[str] | Mapping[str, Sequence[int]] | None = None
    anchor: str = "top"
    device: str = "cpu"
    threads: int | None = None
    jobs: int = 1
    repeats: int = 1
    out: Path = DEFAULT_RUN_DIR
    scheduler: str | None = None
    yuv_matrix: str = DEFAULT_YUV_MATRIX
    argv: Sequence[str] = field(default=())
    # the largest picture a job reads (None: bench.images.DEFAULT_MAX_PIXELS); larger ones are refused
    # from their headers before anything runs (memory grows with the picture)
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        specs = split_codecs(self.codecs)
        if not specs:
            raise ConfigError("--codecs names no codec")
        # the same combination twice is one set of jobs (1.5 and 1.50 are the same ratio)
        scale_sets = tuple(dict.fromkeys(_scale_set(s) for s in (self.scales or DEFAULT_SCALES)))
        anchor = str(Anchoring.parse(self.anchor))
        if () in scale_sets:
            _check_single_layer(specs, anchor)
        if self.jobs < 1:
            raise ConfigError("--jobs must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")
        if self.repeats < 1:
            raise ConfigError("--repeats must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {self.limit}")
        if self.max_pixels is None:
            object.__setattr__(self, "max_pixels", DEFAULT_MAX_PIXELS)
        elif isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ConfigError(f"--max-pixels must be a whole number of at least 1, got {self.max_pixels!r}")
        check_device(self.device)
        if self.yuv_matrix not in YUV_MATRICES:
            raise ConfigError(f"--yuv-matrix {self.yuv_matrix}: use one of {', '.join(YUV_MATRICES)}")
        if isinstance(self.qualities, Mapping):
            choices = quality_mapping(self.qualities, specs)
        else:
            texts = [self.qualities] if isinstance(self.qualities, str) else list(self.qualities or [])
            choices = parse_quality_options(texts, specs)
        object.__setattr__(self, "codecs", specs)
        object.__setattr__(self, "scales", scale_sets)
        object.__setattr__(self, "anchor", anchor)
        object.__setattr__(self, "qualities", choices)
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "argv", tuple(self.argv))
        if self.data_root is not None:
            object.__setattr__(self, "data_root", Path(self.data_root))

    @property
    def coding_threads(self) -> int:
        """Torch threads per job: as asked, else one per job on a cluster (each worker thread runs a
        job), else the cores shared out over the parallel jobs."""
        if self.threads:
            return self.threads
        return 1 if self.scheduler else max(1, (os.cpu_count() or 1) // self.jobs)

    def qualities_for(self, spec: str, defaults: Sequence[int]) -> list[int]:
        """The qualities ``spec`` codes: its ``defaults`` unless a quality choice names it or all codecs."""
        chosen = list(defaults)
        for target, qualities in self.qualities:  # type: ignore[misc]  # normalised in __post_init__
            if target is None or target == spec:
                chosen = list(qualities)
        return chosen
