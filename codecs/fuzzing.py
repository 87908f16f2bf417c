"""Helpers the codec plugins build their ``bench fuzz`` seeds from (``CodecInfo.fuzz``).

Test images with enough texture that latents and residuals are not all zero, CRC reseals for the
stream formats several codecs share, and a decode for codecs that run an external process. A
learned codec's tiny random models live in its own folder (``bench.codecs.mean_scale.fuzzing``).
"""

from __future__ import annotations

import struct
import zlib
from typing import Callable, Sequence

import numpy as np


def test_image(height: int, width: int, seed: int) -> np.ndarray:
    """Gradients plus noise: enough texture that latents and residuals are not all zero."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / max(width, 1), y * 255 / max(height, 1), (x + y) % 64 * 4], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def pyramid(top: np.ndarray, fractions: Sequence[float]) -> list[np.ndarray]:
    """Layers of ``top`` at ``fractions`` of its size (bicubic), smallest first."""
    from bench.pyramid import resize_bicubic

    height, width = top.shape[:2]
    return [resize_bicubic(top, int(height * f), int(width * f)) if f != 1 else top for f in fractions]


def reseal_tail_crc(data: bytes) -> bytes:
    """A stream whose last 4 bytes are the CRC32 of everything before them (mean-scale)."""
    if len(data) < 4:
        return data
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4]))


def hang_aware_decode(codec) -> Callable[[bytes, int | None], list[np.ndarray]]:  # noqa: ANN001 - a Codec
    """``codec.decode`` for a codec that runs an external process under its own time limit: a run
    stopped by that limit ("ran past") is the fuzzer's hang (TimeoutError), other errors stay."""
    from bench.codec import CodecError

    def decode(data: bytes, num_layers: int | None) -> list[np.ndarray]:
        try:
            return codec.decode(data, num_layers)
        except CodecError as error:
            if "ran past" in str(error):
                raise TimeoutError(str(error)) from error
            raise

    return decode
