"""``bench fuzz`` for COMPASS: a tiny random model (the bitstream parser and entropy decoders are the
production code, only the networks are small) and a reseal of the stream's CRCs after damage."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from bench.codec import FuzzSetup


def reseal(data: bytes) -> bytes:
    """Recompute the header CRC and every complete chunk's CRC of a COMPASS stream (bitstream.py)."""
    out = bytearray(data)
    if len(out) < 7:
        return data
    pos = 7 + out[6]
    if len(out) < pos + 1:
        return data
    end = pos + 1 + 4 * out[pos]
    if len(out) < end + 4:
        return data
    out[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(out[:end])))
    pos = end + 4
    while len(out) - pos >= 5:
        (length,) = struct.unpack_from(">I", out, pos + 1)
        chunk_end = pos + 5 + length
        if len(out) < chunk_end + 4:
            break
        out[chunk_end : chunk_end + 4] = struct.pack(">I", zlib.crc32(bytes(out[pos:chunk_end])))
        pos = chunk_end + 4
    return bytes(out)


def bomb(data: bytes, height: int, width: int) -> bytes:
    """A hostile COMPASS stream: ``data``'s chunks under a header whose top layer claims ``height`` x
    ``width`` (the layers below it scaled alike), resealed: a decompression bomb."""
    out = bytearray(data)
    pos = 7 + out[6]
    count = out[pos]
    for k in range(count):
        share = (k + 1) / count
        struct.pack_into(">HH", out, pos + 1 + 4 * k, max(1, int(height * share)), max(1, int(width * share)))
    return reseal(bytes(out))


def tiny_codec(codec_class: type) -> object:
    """A COMPASS codec at quality 2 over a tiny random BL and the tiny LIFF/RC configuration."""
    import torch

    from bench.codecs.compass import residual
    from bench.codecs.compass.model import TINY_CONFIG, CompassModel

    torch.manual_seed(0)
    bl = residual.build_mean_scale(8, 12)
    with torch.no_grad():  # non-trivial latents, as in a trained base layer
        bl.g_a[6].weight.mul_(100.0)
    bl.update(force=True)
    model = CompassModel.build(bl, TINY_CONFIG, model_id="fuzz-tiny").eval()
    model.rc.update(force=True)
    return codec_class(models={2: model})


def fuzz_setup(codec_class: type, workdir: Path, time_limit: float) -> FuzzSetup:
    """``CodecInfo.fuzz`` of compass: a tiny model's streams (the fuzzer needs no zoo)."""
    from bench.codecs.fuzzing import pyramid, test_image

    codec = tiny_codec(codec_class)
    seeds = [codec.encode(pyramid(test_image(48, 64, 4), (0.5, 0.75, 1)), 2).data,
             codec.encode(pyramid(test_image(40, 40, 5), (0.6, 1)), 2).data]
    # decompression bombs (issue 27): headers claiming 2048² and 4096² over a small picture's chunks
    seeds += [bomb(seeds[1], 2048, 2048), bomb(seeds[0], 4096, 4096)]
    return FuzzSetup(codec, seeds, layer_choices=(None, None, 1, 2), reseal=reseal)
