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


def _official_index(n_prev: int, n: int) -> torch.Tensor:
    """The previous-layer column the official COMPASS code reads for each target column, written
    the way that code computes it: make_coord's float32 centres of a 1×n target and of the 1×n_prev
    feature grid, the target centres clamped to ±(1 − 1e-6), the feature centres sampled with
    F.grid_sample(mode="nearest", align_corners=False) on (y, x) flipped to (x, y); the index is
    whichever feature centre came back."""

    def make_coord(shape):
        seqs = []
        for size in shape:
            r = (1 - -1) / (2 * size)
            seqs.append(-1 + r + (2 * r) * torch.arange(size).float())
        return torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)

    feature_coord = make_coord((1, n_prev)).permute(2, 0, 1).unsqueeze(0)  # 1 × 2 × 1 × n_prev
    target = make_coord((1, n)).clamp_(-1 + 1e-6, 1 - 1e-6).view(1, -1, 2)
    q_coord = torch.nn.functional.grid_sample(feature_coord, target.flip(-1).unsqueeze(1), mode="nearest",
                                              align_corners=False)[0, :, 0, :]  # 2 × n
    centres = make_coord((1, n_prev))[0, :, 1]
    return (q_coord[1][:, None] == centres[None, :]).float().argmax(1)


@pytest.mark.parametrize("n_prev,n", [(512, 768), (2, 3), (6, 9), (342, 513), (512, 1024), (341, 512)])
def test_the_grid_sample_rule_is_the_official_lookup_on_ties(n_prev, n):
    ties = [i for i in range(n) if (2 * i + 1) * n_prev % (2 * n) == 0]  # centre half-way between two
    official = _official_index(n_prev, n)
    assert torch.equal(axis_geometry(n_prev, n, nearest="grid_sample").index, official)
    exact = axis_geometry(n_prev, n).index
    differ = torch.nonzero(exact != official).flatten().tolist()
    assert set(differ) <= set(ties)  # the two rules only ever disagree on a tie
    if (n_prev, n) == (512, 768):  # every Kodak image at ×1.5: a third of the columns, all the other way
        assert len(ties) == 256 and differ == ties
    if n == 2 * n_prev or n_prev % 2:  # exact ×2 and odd previous sizes have no ties
        assert ties == [] and differ == []


def test_the_grid_sample_rule_keeps_both_paths_equal_and_changes_only_tie_pixels():
    torch.manual_seed(0)
    official = LIFF(LiffConfig(**{**SMALL.to_dict(), "nearest": "grid_sample"})).double()
    bench = LIFF(SMALL).double()
    bench.load_state_dict(official.state_dict())
    x = torch.rand(1, 3, 6, 8, dtype=torch.float64)
    with torch.no_grad():
        fast, direct = official(x, (9, 12)), official.forward_direct(x, (9, 12))
        ours = bench(x, (9, 12))
    assert torch.allclose(fast, direct, atol=1e-10)
    tie_rows = {i for i in range(9) if (2 * i + 1) * 6 % 18 == 0}  # 6 → 9: row 1, 4, 7
    tie_cols = {i for i in range(12) if (2 * i + 1) * 8 % 24 == 0}  # 8 → 12: column 1, 4, 7, 10
    changed = (fast - ours).abs().amax(1)[0] > 1e-12
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert changed.any()
    assert all(r in tie_rows or c in tie_cols for r, c in zip(rows.tolist(), cols.tolist()))


def test_the_nearest_rule_is_declared_and_default_files_do_not_change():
    from bench.codecs.compass.model import OFFICIAL_CONFIG, PAPER_CONFIG

    assert OFFICIAL_CONFIG.liff.nearest == "grid_sample" and PAPER_CONFIG.liff.nearest == "exact"
    assert "nearest" not in PAPER_CONFIG.liff.to_dict()  # exported files read back as before
    assert OFFICIAL_CONFIG.liff.to_dict()["nearest"] == "grid_sample"
    with pytest.raises(ValueError, match="unknown nearest rule"):
        LiffConfig(nearest="bilinear")
