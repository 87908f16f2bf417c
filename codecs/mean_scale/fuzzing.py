"""mean-scale's ``bench fuzz`` set-up: a tiny random model as a whole zoo (the parser and the entropy
decoder are the production code, only the networks are small, so garbage decodes quickly), real
streams made with it, and decompression bombs. ``simulcast:mean-scale`` fuzzes over the same zoo."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from bench import zoo
from bench.codec import FuzzSetup
from bench.codecs.fuzzing import reseal_tail_crc, test_image
from bench.codecs.mean_scale.weights import QUALITY_LAMBDAS, build_mean_scale


def tiny_mean_scale_zoo(folder: Path) -> None:
    """Mean-scale weights for every quality, from one small random model, as a zoo in ``folder``."""
    import torch

    if len(zoo.available_qualities("mean-scale", folder)) == len(QUALITY_LAMBDAS):
        return
    torch.manual_seed(0)
    model = build_mean_scale(16, 24)
    with torch.no_grad():  # spread the latents over several integers, as in a trained model
        model.g_a[6].weight.mul_(100.0)
        model.h_a[4].weight.mul_(10.0)
    model.update(force=True)
    state = zoo.half_precision(model.state_dict(), zoo.precision_keys(model))
    for quality, lmbda in QUALITY_LAMBDAS.items():
        config = {"model": "mean-scale", "N": 16, "M": 24, "quality": quality, "lmbda": lmbda,
                  "note": "tiny random model for bench fuzz", "format": zoo.FORMAT_VERSION}
        zoo.write_weights("mean-scale", quality, state, config, folder)


def use_tiny_mean_scale_zoo(workdir: Path) -> None:
    """Point this (fuzz worker) process's zoo at tiny random mean-scale weights under ``workdir``."""
    folder = workdir / "zoo"
    tiny_mean_scale_zoo(folder)
    os.environ[zoo.ENV_VAR] = str(folder)


def mean_scale_bomb(stream: bytes, height: int, width: int) -> bytes:
    """A hostile mean-scale stream: ``stream``'s strings under a header claiming ``height`` x ``width``,
    its CRC resealed (a decompression bomb: a few hundred bytes that claim a giant picture)."""
    out = bytearray(stream)
    struct.pack_into(">HH", out, 6, height, width)  # after magic (4), version and quality (1 + 1)
    return reseal_tail_crc(bytes(out))


def fuzz_setup(cls: type, workdir: Path, time_limit: float) -> FuzzSetup:
    """``bench fuzz mean-scale``: the codec over a tiny random zoo, two real streams and two
    decompression bombs (issue 27: headers claiming 2048² and 4096² over a small picture's strings)."""
    use_tiny_mean_scale_zoo(workdir)
    codec = cls()
    seeds = [codec.encode([test_image(48, 64, 0)], 3).data, codec.encode([test_image(23, 37, 1)], 1).data]
    seeds += [mean_scale_bomb(seeds[0], 2048, 2048), mean_scale_bomb(seeds[1], 4096, 4096)]
    return FuzzSetup(codec, seeds, reseal=reseal_tail_crc)
