"""Helpers the codec plugins build their ``bench fuzz`` seeds from (``CodecInfo.fuzz``).

Test images with enough texture that latents and residuals are not all zero, tiny random learned
models (the parsers and entropy decoders are the production code, only the networks are small, so
garbage decodes quickly), and CRC reseals for the stream formats several codecs share.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
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


def tiny_mean_scale_zoo(folder: Path) -> None:
    """Mean-scale weights for every quality, from one small random model, as a zoo in ``folder``."""
    import torch

    from bench import zoo
    from bench.codecs.mean_scale import weights as mean_scale_weights

    if len(zoo.available_qualities("mean-scale", folder)) == len(mean_scale_weights.QUALITY_LAMBDAS):
        return
    torch.manual_seed(0)
    model = mean_scale_weights.build_mean_scale(16, 24)
    with torch.no_grad():  # spread the latents over several integers, as in a trained model
        model.g_a[6].weight.mul_(100.0)
        model.h_a[4].weight.mul_(10.0)
    model.update(force=True)
    state = zoo.half_precision(model.state_dict(), zoo.precision_keys(model))
    for quality, lmbda in mean_scale_weights.QUALITY_LAMBDAS.items():
        config = {"model": "mean-scale", "N": 16, "M": 24, "quality": quality, "lmbda": lmbda,
                  "note": "tiny random model for bench fuzz", "format": zoo.FORMAT_VERSION}
        zoo.write_weights("mean-scale", quality, state, config, folder)


def use_tiny_mean_scale_zoo(workdir: Path) -> None:
    """Point this (fuzz worker) process's zoo at tiny random mean-scale weights under ``workdir``."""
    from bench import zoo

    folder = workdir / "zoo"
    tiny_mean_scale_zoo(folder)
    os.environ[zoo.ENV_VAR] = str(folder)


def reseal_tail_crc(data: bytes) -> bytes:
    """A stream whose last 4 bytes are the CRC32 of everything before them (mean-scale)."""
    if len(data) < 4:
        return data
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4]))


def mean_scale_bomb(stream: bytes, height: int, width: int) -> bytes:
    """A hostile mean-scale stream: ``stream``'s strings under a header claiming ``height`` x ``width``,
    its CRC resealed (a decompression bomb: a few hundred bytes that claim a giant picture)."""
    out = bytearray(stream)
    struct.pack_into(">HH", out, 6, height, width)  # after magic (4), version and quality (1 + 1)
    return reseal_tail_crc(bytes(out))


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
