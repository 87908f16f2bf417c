"""LIFF: the fast (refactored) path equals the formula; geometry and scale token use actual sizes."""

from __future__ import annotations

import pytest
import torch

from bench.codecs.compass.liff import LIFF, LiffConfig, axis_geometry

SMALL = LiffConfig(g0=8, rdb_blocks=1, rdb_convs=2, growth=4, mlp_hidden=16, mlp_layers=3, chunk_pixels=50)


def _liff(seed: int = 0, cfg: LiffConfig = SMALL) -> LIFF:
    torch.manual_seed(seed)
    return LIFF(cfg)


@pytest.mark.parametrize("size", [(13, 11), (7, 5), (19, 6), (3, 2), (16, 27)])
def test_fast_path_equals_direct_path_float64(size):
    liff = _liff().double()
    x = torch.rand(2, 3, 7, 5, dtype=torch.float64)
    fast, direct = liff(x, size), liff.forward_direct(x, size)
    assert fast.shape == (2, 3, *size)
    assert torch.allclose(fast, direct, rtol=0, atol=1e-12), (fast - direct).abs().max()


def test_fast_path_equals_direct_path_float32_trained_like_weights():
    # larger weights than the init, so the outputs are far from zero and the comparison means something
    liff = _liff(1)
    with torch.no_grad():
        for p in liff.mlp.parameters():
            p.mul_(3)
    x = torch.rand(1, 3, 16, 24)
    fast, direct = liff(x, (45, 67)), liff.forward_direct(x, (45, 67))
    assert direct.abs().mean() > 0.05
    assert torch.allclose(fast, direct, rtol=1e-4, atol=1e-4), (fast - direct).abs().max()


def test_gradients_of_both_paths_agree():
    liff = _liff(2).double()
    x = torch.rand(1, 3, 6, 5, dtype=torch.float64)
    grads = []
    for method in (liff.forward, liff.forward_direct):
        liff.zero_grad()
        method(x, (11, 9)).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in liff.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-10)


def test_output_does_not_depend_on_chunk_size():
    x = torch.rand(1, 3, 9, 13)
    outputs = []
    for chunk in (1, 17, 100, 100000):
        torch.manual_seed(3)
        liff = LIFF(LiffConfig(**{**SMALL.to_dict(), "chunk_pixels": chunk}))
        outputs.append(liff(x, (20, 31)))
    for out in outputs[1:]:
        assert torch.allclose(out, outputs[0], atol=1e-6)


def test_nearest_lookup_and_local_grid_match_brute_force():
    for n_prev, n in [(16, 45), (24, 67), (5, 5), (7, 3), (384, 768), (341, 768)]:
        geo = axis_geometry(n_prev, n)
        centres = -1 + (2 * torch.arange(n, dtype=torch.float64) + 1) / n
        prev_centres = -1 + (2 * torch.arange(n_prev, dtype=torch.float64) + 1) / n_prev
        distance = (centres[:, None] - prev_centres[None, :]).abs()
        best = distance.min(1).values
        chosen = distance[torch.arange(n), geo.index]
        assert torch.allclose(chosen, best, atol=1e-12)  # nearest (ties may go either way)
        expected = (centres - prev_centres[geo.index]) * n_prev
        assert torch.allclose(geo.offset.double(), expected, atol=1e-5)
        assert geo.offset.min() >= -1 and geo.offset.max() <= 1


def test_scale_token_comes_from_actual_sizes():
    # 16x24 → 45x67 is nominally ×2.7, but the token must be 2·16/45 and 2·24/67
    liff = _liff()
    seen = []
    hook = liff.mlp[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    try:
        liff.forward_direct(torch.rand(1, 3, 16, 24), (45, 67))
    finally:
        hook.remove()
    tokens = torch.cat(seen, 1)[0, :, -2:]
    assert torch.allclose(tokens[:, 0], torch.full_like(tokens[:, 0], 2 * 16 / 45))
    assert torch.allclose(tokens[:, 1], torch.full_like(tokens[:, 1], 2 * 24 / 67))
    assert axis_geometry(16, 45).scale == 2 * 16 / 45
    assert axis_geometry(24, 67).scale != pytest.approx(2 / 2.7, abs=1e-3)


def test_fast_path_sees_the_scale_token():
    # same input and output size, different previous-layer size ⇒ different token ⇒ different output
    liff = _liff()
    x = torch.rand(1, 3, 10, 10)
    a = liff(torch.nn.functional.interpolate(x, size=(10, 10)), (20, 20))
    b = liff.forward_direct(torch.nn.functional.interpolate(x, size=(10, 10)), (20, 20))
    assert torch.allclose(a, b, atol=1e-5)
    first = liff.mlp[0]
    with torch.no_grad():
        first.weight[:, -2:] += 1.0  # only the scale-token columns change
    assert not torch.allclose(liff(x, (20, 20)), a, atol=1e-4)


def test_paper_config_parameter_count():
    # spec §4: LIFF ≈ 1.45 M parameters in the paper configuration
    assert sum(p.numel() for p in LIFF(LiffConfig()).parameters()) == 1_448_320


def test_rejects_bad_input():
    liff = _liff()
    with pytest.raises(ValueError):
        liff(torch.rand(1, 4, 5, 5), (10, 10))
    with pytest.raises(ValueError):
        liff(torch.rand(1, 3, 5, 5), (0, 10))
