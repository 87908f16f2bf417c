"""Shared fixtures for the harness tests: tiny synthetic images, image folders, a private pyramid
cache, and a skip when x265 (ffmpeg with libx265) is missing.

Every test writes below pytest's tmp dirs only; the pyramid cache is pointed there too (session-wide,
so ``bench run`` subprocesses and spawned workers inherit it), never at ``~/.cache`` or the repo.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets"


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Gradients plus noise: codes to a few hundred bytes, yet no two seeds give the same pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            x * 255 // max(width - 1, 1),
            y * 255 // max(height - 1, 1),
            (x + y) * 255 // max(width + height - 2, 1),
        ],
        axis=-1,
    )
    return np.clip(base + rng.integers(-25, 26, (height, width, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session", autouse=True)
def private_pyramid_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the on-disk pyramid cache out of the home directory for the whole session."""
    folder = tmp_path_factory.mktemp("bench-cache")
    old = os.environ.get("BENCH_CACHE")
    os.environ["BENCH_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("BENCH_CACHE", None)
    else:
        os.environ["BENCH_CACHE"] = old


@pytest.fixture
def make_image_folder(tmp_path: Path) -> Callable[..., Path]:
    """``make_image_folder(n, height, width, name=..., checksums=False)`` → a folder of PNGs."""

    def make(count: int, height: int = 48, width: int = 64, name: str = "images", checksums: bool = False,
             seed: int = 0) -> Path:
        folder = tmp_path / name
        folder.mkdir(parents=True)
        lines = []
        for index in range(count):
            path = folder / f"img{index:02d}.png"
            Image.fromarray(synthetic_image(height, width, seed + index)).save(path)
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}")
        if checksums:
            (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
        return folder

    return make


@pytest.fixture(scope="session")
def x265_ready() -> None:
    """Skip (with the codec's own reason) where ffmpeg/libx265 is not installed."""
    from bench.registry import create_codec

    status = create_codec("x265").availability()
    if not status.available:
        pytest.skip(f"x265 unavailable: {status.reason}")
