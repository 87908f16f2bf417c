"""Layer pyramids: the K+1 layer images for a scale combination, exactly as harness.md defines them.

``top`` anchoring (default): the top layer is the source (H, W); layer k has size
``(int(H·a_k), int(W·a_k))`` with ``a_k = 1 / (s_{k+1}·…·s_K)``.
``base:F`` anchoring (the COMPASS paper's evaluation): layer k is ``F·s_1·…·s_k`` of the source,
``(int(W·f), int(H·f))``. Every layer below the source is resized directly from the source with PIL
bicubic (antialiased) and rounded to 8 bits. Pyramids are cached on disk keyed by the source content.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from bench.errors import PyramidError

MIN_LAYER_SIDE = 8  # smallest side any codec here accepts; below this a layer is meaningless


# A ratio as users write it: plain decimal digits. Python's float() also takes "1_5" (= 15), "1e1",
# "inf" and "nan"; a typo such as --scales 1_5 must be an error, not a ×15 pyramid.
_DECIMAL = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)")
SINGLE_LAYER = "1"  # --scales 1: no ratio at all, one layer that is the full picture


def parse_scales(text: str) -> tuple[float, ...]:
    """``"1.33,1.5"`` → (1.33, 1.5); every ratio must be a plain decimal number > 1.

    ``"1"`` alone (also ``"1.0"``) is the single-layer combination: no ratio, ``()``, one layer that
    is the source picture. Within a combination of several ratios a 1 stays an error (two layers of
    the same size)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise PyramidError("empty scale combination")
    for part in parts:
        if not _DECIMAL.fullmatch(part):
            raise PyramidError(f"scales must be comma-separated decimal numbers (e.g. 1.5,2), got {part!r} "
                               f"in {text!r}")
    scales = tuple(float(part) for part in parts)
    if scales == (1.0,):
        return ()
    for scale in scales:
        if not math.isfinite(scale) or scale <= 1:
            raise PyramidError(f"every inter-layer ratio must be > 1, got {scale:g} in {text!r} "
                               f"(--scales {SINGLE_LAYER} alone is a single-layer run)")
    return scales


def format_scales(scales: Sequence[float]) -> str:
    return ",".join(f"{s:g}" for s in scales)


@dataclass(frozen=True)
class Anchoring:
    kind: str  # "top" or "base"
    base_fraction: float = 0.25

    @classmethod
    def parse(cls, text: str) -> "Anchoring":
        if text == "top":
            return cls("top")
        if text == "base" or text.startswith("base:"):
            _, colon, fraction = text.partition(":")
            if colon and not fraction:
                raise PyramidError("base: needs a fraction, e.g. base:0.25 (or plain 'base' for 0.25)")
            try:
                value = float(fraction) if fraction else 0.25
            except ValueError:
                raise PyramidError(f"base fraction must be a number in (0, 1], got {fraction!r}") from None
            if not 0 < value <= 1:
                raise PyramidError(f"base fraction must be in (0, 1], got {value}")
            return cls("base", value)
        raise PyramidError(f"unknown anchoring {text!r}: use 'top' or 'base:F' (e.g. base:0.25)")

    def __str__(self) -> str:
        return "top" if self.kind == "top" else f"base:{self.base_fraction:g}"


def _exact(value: float) -> Fraction:
    """The decimal a ratio was written as (1.6 → 8/5), not its binary float (1.6000000000000000888…)."""
    return Fraction(repr(float(value)))


def layer_fractions(scales: Sequence[float], anchoring: Anchoring) -> list[Fraction]:
    """Size of each layer relative to the source, one exact product per layer (as specified).

    Exact rational arithmetic, because ``int()`` of a float product truncates values that are
    whole numbers on paper: 768 / (1.6·1.6) is 300, but 768·(1/2.56) in floats is 299.99999…"""
    ratios = [_exact(s) for s in scales]
    if anchoring.kind == "top":
        return [1 / math.prod(ratios[k:], start=Fraction(1)) for k in range(len(ratios) + 1)]
    base = _exact(anchoring.base_fraction)
    return [base * math.prod(ratios[:k], start=Fraction(1)) for k in range(len(ratios) + 1)]


def layer_sizes(height: int, width: int, scales: Sequence[float],
                anchoring: Anchoring | str = "top") -> list[tuple[int, int]]:
    """(height, width) of every layer, smallest first: ``(int(H·f), int(W·f))`` in exact arithmetic."""
    if isinstance(anchoring, str):
        anchoring = Anchoring.parse(anchoring)
    return [(int(height * f), int(width * f)) for f in layer_fractions(scales, anchoring)]


def check_sizes(sizes: list[tuple[int, int]], name: str, scales: Sequence[float]) -> None:
    for k, (h, w) in enumerate(sizes):
        if min(h, w) < MIN_LAYER_SIDE:
            raise PyramidError(
                f"{name}: layer {k} would be {w}x{h} for scales {format_scales(scales)}; every layer needs "
                f"at least {MIN_LAYER_SIDE} pixels per side (use a larger image or smaller ratios)"
            )
    for k in range(1, len(sizes)):
        if sizes[k][0] < sizes[k - 1][0] or sizes[k][1] < sizes[k - 1][1]:
            raise PyramidError(f"{name}: layer {k} {sizes[k]} is smaller than layer {k - 1} {sizes[k - 1]}")


def resize_bicubic(source: np.ndarray, height: int, width: int) -> np.ndarray:
    if (height, width) == source.shape[:2]:
        return source.copy()
    image = Image.fromarray(source).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def build_pyramid(source: np.ndarray, scales: Sequence[float], anchoring: Anchoring | str = "top",
                  name: str = "image") -> list[np.ndarray]:
    """The layer images (uint8 HxWx3), smallest first, each resized directly from ``source``."""
    if isinstance(anchoring, str):
        anchoring = Anchoring.parse(anchoring)
    sizes = layer_sizes(source.shape[0], source.shape[1], scales, anchoring)
    check_sizes(sizes, name, scales)
    return [resize_bicubic(source, h, w) for h, w in sizes]


def default_cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench")) / "pyramids"


def cached_pyramid(source: np.ndarray, scales: Sequence[float], anchoring: Anchoring | str = "top",
                   name: str = "image", cache_dir: Path | None = None) -> list[np.ndarray]:
    """``build_pyramid`` with an on-disk cache keyed by the source pixels, scales and anchoring."""
    anchoring = Anchoring.parse(anchoring) if isinstance(anchoring, str) else anchoring
    key = hashlib.sha256()
    key.update(np.ascontiguousarray(source).tobytes())
    # the sizes are part of the key, so a change in how sizes are computed never reuses old layers
    sizes = layer_sizes(source.shape[0], source.shape[1], scales, anchoring)
    key.update(repr((source.shape, tuple(scales), str(anchoring), sizes)).encode())
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    path = folder / f"{key.hexdigest()[:32]}.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                return [stored[f"layer{k}"] for k in range(len(scales) + 1)]
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            pass
    layers = build_pyramid(source, scales, anchoring, name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **{f"layer{k}": layer for k, layer in enumerate(layers)})
        os.replace(tmp, path)
    except OSError:
        pass  # caching is an optimisation; an unwritable cache must not stop a run
    return layers
