"""Fixtures of the speed benchmarks (``python -m pytest benchmarks --benchmark-only``).

The fixed image is the 256x256 crop at the centre of Kodak's kodim23 from the shared data root
(``--data-root`` is not a pytest option: set ``BENCH_DATA`` to point elsewhere); the benchmarks
skip with the reason when it or a codec is missing, never substitute another input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.codec import Codec

# Every codec the benchmark knows; unavailable ones skip with their own reason.
CODECS = ("x265", "simulcast:x265", "mean-scale", "simulcast:mean-scale", "compass", "shvc")
CROP = 256


def _kodim23_path() -> Path:
    from bench.datasets import DatasetError, default_data_root

    try:
        root = default_data_root()
    except DatasetError as error:
        pytest.skip(f"no shared data root: {error}")
    path = Path(root) / "kodak" / "kodim23.png"
    if not path.is_file():
        pytest.skip(f"{path} is missing: set BENCH_DATA to the folder holding kodak/")
    return path


@pytest.fixture(scope="session")
def kodim23() -> np.ndarray:
    """The whole 768x512 kodim23 (RGB uint8)."""
    from bench.datasets import DatasetError, verify_checksums
    from bench.images import load_rgb

    path = _kodim23_path()
    try:  # the dataset's SHA256SUMS: never time a different file under the same name
        verify_checksums(path.parent, [path.name])
    except DatasetError as error:
        pytest.skip(str(error))
    return load_rgb(path)


@pytest.fixture(scope="session")
def crop256(kodim23: np.ndarray) -> np.ndarray:
    """The centred 256x256 crop of kodim23."""
    top, left = (kodim23.shape[0] - CROP) // 2, (kodim23.shape[1] - CROP) // 2
    return np.ascontiguousarray(kodim23[top : top + CROP, left : left + CROP])


def available_codec(spec: str) -> Codec:
    """The codec ``spec`` on CPU, or a skip with its reason."""
    from bench.registry import UnknownCodecError, create_codec

    try:
        codec = create_codec(spec)
    except UnknownCodecError as error:
        pytest.skip(str(error))
    status = codec.availability()
    if not status.available:
        pytest.skip(f"{spec} unavailable: {status.reason}")
    return codec


def middle_quality(codec: Codec) -> int:
    qualities = list(codec.default_qualities)
    return qualities[len(qualities) // 2]
