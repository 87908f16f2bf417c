"""Conv-layer-wise padding: odd sizes pad by one row/column per stride-2 conv, never to 64."""

from __future__ import annotations

import math

import pytest
import torch

from bench.codecs.compass import residual


@pytest.fixture(scope="module")
def coder():
    torch.manual_seed(0)
    model = residual.build_mean_scale(8, 12)
    model.update(force=True)
    return model.eval()


def _stride2_inputs(model, seq_name: str) -> list:
    seen = []
    hooks = [
        m.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
        for m in getattr(model, seq_name)
        if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)
    ]
    return seen, hooks


@pytest.mark.parametrize("size", [(45, 67), (67, 45), (33, 17), (1, 1), (1, 9), (64, 64), (65, 129)])
def test_each_stride2_conv_sees_at_most_one_padded_row_and_column(coder, size):
    seen_g, hooks_g = _stride2_inputs(coder, "g_a")
    seen_h, hooks_h = _stride2_inputs(coder, "h_a")
    try:
        y, _ = residual.analysis(coder, torch.rand(1, 3, *size))
        residual._run_down(coder.h_a, y)
    finally:
        for hook in hooks_g + hooks_h:
            hook.remove()
    h, w = size
    expected = []
    for _ in range(4):
        expected.append((h + h % 2, w + w % 2))
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    assert seen_g == expected
    assert tuple(y.shape[-2:]) == (h, w)
    expected_h = []
    for _ in range(2):
        expected_h.append((h + h % 2, w + w % 2))
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    assert seen_h == expected_h


def test_latents_are_not_those_of_a_pad_to_64(coder):
    # 45x67: layer-wise padding gives 3x5 latents; padding the image to 64x128 would give 4x8
    out = residual.forward(coder, torch.rand(1, 3, 45, 67))
    assert tuple(out["y"].shape[-2:]) == (3, 5)
    assert tuple(out["z"].shape[-2:]) == (1, 2)
    plan = residual.size_plan(45, 67, coder)
    assert plan["y"] == (3, 5) and plan["z"] == (1, 2)
    assert plan["g"] == [(45, 67), (23, 34), (12, 17), (6, 9)]
    assert out["x_hat"].shape[-2:] == (45, 67)


@pytest.mark.parametrize("size", [(45, 67), (1, 1), (3, 130), (17, 2)])
def test_compress_decompress_round_trip_matches_forward(coder, size):
    torch.manual_seed(1)
    x = torch.rand(1, 3, *size) - 0.5  # residuals are signed
    y_string, z_string = residual.compress(coder, x)
    decoded = residual.decompress(coder, y_string, z_string, size)
    assert decoded.shape == (1, 3, *size)
    with torch.no_grad():
        expected = residual.forward(coder, x)["x_hat"]  # eval mode: ŷ = round(y − μ) + μ
    assert torch.allclose(decoded, expected, atol=1e-5)
    again = residual.decompress(coder, y_string, z_string, size)
    assert torch.equal(decoded, again)


def test_straight_through_rounding_in_training(coder):
    coder.train()
    try:
        x = torch.rand(1, 3, 20, 28, requires_grad=True)
        seen = []
        hook = coder.g_s[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
        try:
            out = residual.forward(coder, x)
        finally:
            hook.remove()
        # the decoder input is round(y − μ) + μ even in train mode (not y + noise) ...
        offsets = (seen[0] - out["means"]).detach()
        assert torch.allclose(offsets, offsets.round(), atol=1e-4)
        assert torch.equal(seen[0], out["y_hat"].detach())
        assert not torch.allclose(seen[0], out["y"].detach())
        # ... and gradients pass straight through the rounding
        out["x_hat"].sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        y_lik = out["likelihoods"]["y"]
        assert y_lik.shape == out["y"].shape and (y_lik > 0).all() and (y_lik <= 1).all()
    finally:
        coder.eval()
