"""COMPASS reports network and entropy-coding seconds apart, per module, for encode and decode,
without changing a single byte of what it codes."""

from __future__ import annotations

import time

import pytest
import torch

from bench.codec import BitstreamError
from bench.codecs.compass import residual
from bench.codecs.compass.model import _pack_strings
from bench.codecs.compass.plugin import MODULE_TIMINGS, CompassCodec
from bench.codecs.mean_scale import plugin as mean_scale
from tests.codecs.compass.helpers import pyramid, textured

KEYS = {"network", "entropy", *MODULE_TIMINGS}
# Timer resolution and the code between sections: what the sum of the parts may exceed the wall by.
SLACK_S = 0.005


def _timed_call(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def _check_split(timings: dict[str, float], wall: float) -> None:
    assert set(timings) == KEYS and all(value >= 0 for value in timings.values())
    network = timings["bl_network"] + timings["liff"] + timings["rc_network"]
    assert timings["network"] == pytest.approx(network)
    assert timings["entropy"] == pytest.approx(timings["bl_entropy"] + timings["rc_entropy"])
    assert timings["network"] + timings["entropy"] <= wall + SLACK_S


def test_encode_and_decode_split_time_by_module(tiny_model):
    codec = CompassCodec(models={2: tiny_model})
    layers = pyramid(textured(45, 67, seed=1), [1.33, 1.5])
    encoded, wall = _timed_call(lambda: codec.encode(layers, 2))
    _check_split(encoded.timings, wall)
    assert all(encoded.timings[key] > 0 for key in KEYS)  # every module ran for two ELs

    _, wall = _timed_call(lambda: codec.decode(encoded.data))
    _check_split(dict(codec.last_decode_timings), wall)
    assert all(codec.last_decode_timings[key] > 0 for key in KEYS)

    # the base layer alone runs neither LIFF nor RC
    _, wall = _timed_call(lambda: codec.decode(encoded.data, 1))
    base = dict(codec.last_decode_timings)
    _check_split(base, wall)
    assert base["bl_network"] > 0 and base["bl_entropy"] > 0
    assert base["liff"] == base["rc_network"] == base["rc_entropy"] == 0

    # every decode starts afresh: a failing one leaves no numbers of the previous call behind
    with pytest.raises(BitstreamError):
        codec.decode(encoded.data[:-3])
    assert codec.last_decode_timings == {}


def test_timed_coding_gives_the_payloads_of_the_plain_residual_path(tiny_model):
    # the recursion of COMPASS written out with residual.compress/decompress on the bare modules
    # (no timing wrappers; the BL padded whole to a multiple of 64 as the single-layer codec pads):
    # encode_layers must produce exactly these bytes and reconstructions
    layers = pyramid(textured(40, 52, seed=2), [1.2, 1.4])
    tensors = [torch.from_numpy(im.copy()).permute(2, 0, 1)[None].float() / 255 for im in layers]
    model, padding = tiny_model, tiny_model.padding
    expected, recon = [], None
    with torch.no_grad():
        for k, image in enumerate(tensors):
            size = tuple(image.shape[-2:])
            if k == 0:
                strings = residual.compress(model.bl, mean_scale.pad_image(image), padding)
                recon = residual.decompress(model.bl, *strings, (64, 64), padding)[..., : size[0], : size[1]]
            else:
                pred = model.liff(recon, size)
                strings = residual.compress(model.rc, image - pred, padding)
                recon = pred + residual.decompress(model.rc, *strings, size, padding)
            expected.append((_pack_strings(*strings), recon))
    payloads, recons = model.encode_layers(tensors)
    assert payloads == [payload for payload, _ in expected]
    assert all(torch.equal(a, b) for a, (_, b) in zip(recons, expected, strict=True))
    decoded = model.decode_layers(payloads, [im.shape[:2] for im in layers])
    assert all(torch.equal(a, b) for a, b in zip(decoded, recons, strict=True))

