"""`python -m bench.train widen`: a wider mean-scale model that computes what the trained one did."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from bench.codecs.mean_scale.weights import build_mean_scale as build_model
from bench.codecs.mean_scale.widen import widen_mean_scale
from bench.errors import TrainingError
from tests.codecs.mean_scale.test_train import data_root, load, train  # noqa: F401 (data_root is a fixture)


def _trained_like(n: int, m: int, seed: int = 0) -> torch.nn.Module:
    """A small model whose GDNs are not their diagonal initialisation, as after training."""
    torch.manual_seed(seed)
    model = build_model(n, m)
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "gamma_reparam"):
                gamma = 0.1 * torch.eye(module.gamma.shape[0]) + 0.05 * torch.rand_like(module.gamma)
                module.gamma.copy_(module.gamma_reparam.init(gamma))
                module.beta.copy_(module.beta_reparam.init(0.5 + torch.rand_like(module.beta)))
        model.entropy_bottleneck.quantiles.add_(torch.randn_like(model.entropy_bottleneck.quantiles) * 0.3)
    return model.eval()


def _bits(likelihoods: torch.Tensor) -> float:
    return float(-torch.log2(likelihoods).sum())


def test_the_wider_model_computes_the_same_reconstruction_and_rate():
    small = _trained_like(8, 12)
    wide = build_model(16, 24)
    wide.load_state_dict(widen_mean_scale(small.state_dict(), 16, 24, seed=1))
    wide.eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = small(x), wide(x)
        y_wide = wide.g_a(x)
    assert torch.allclose(a["x_hat"], b["x_hat"], atol=1e-5)
    assert torch.equal(y_wide[:, 12:], torch.zeros_like(y_wide[:, 12:]))  # new latents are written as 0 …
    assert _bits(b["likelihoods"]["y"][:, 12:]) < 1e-2  # … and cost no bits (3,072 elements)
    assert _bits(b["likelihoods"]["y"][:, :12]) == pytest.approx(_bits(a["likelihoods"]["y"]), rel=1e-4)
    assert _bits(b["likelihoods"]["z"][:, :8]) == pytest.approx(_bits(a["likelihoods"]["z"]), rel=1e-4)
    # new z channels hold the most predictable channel's median, coded with a copy of its density:
    # the cheapest value any channel could send, the same for every new element
    new_z = -torch.log2(b["likelihoods"]["z"][:, 8:])
    assert torch.allclose(new_z, new_z.flatten()[0].expand_as(new_z), atol=1e-4)
    eb = small.entropy_bottleneck
    with torch.no_grad():
        medians = eb.quantiles[:, 0, 1].reshape(8, 1, 1)
        _, median_bin = eb(medians.reshape(1, 8, 1, 1).clone())
    assert float(new_z.flatten()[0]) == pytest.approx(float((-torch.log2(median_bin)).min()), rel=1e-3)


def test_copies_get_different_outgoing_weights_so_training_can_separate_them():
    small = _trained_like(8, 12)
    state = widen_mean_scale(small.state_dict(), 16, 24, seed=1)
    w = state["g_a.2.weight"]  # (out, in): input channel 3 and its copy 11
    assert torch.equal(state["g_a.0.weight"][3], state["g_a.0.weight"][11])  # the copy itself
    assert not torch.allclose(w[:, 3], w[:, 11])
    assert torch.allclose(w[:8, 3] + w[:8, 11], small.state_dict()["g_a.2.weight"][:, 3], atol=1e-6)
    assert state["g_s.0.weight"][12:].abs().max() > 0  # g_s reads the new latents (small, not zero)


def test_a_file_without_a_mean_scale_model_is_refused_by_name(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"liff": {}, "rc": {}}, other)
    result = subprocess.run([sys.executable, "-m", "bench.train", "widen", "--from", str(other), "--out",
                             str(tmp_path / "w.pt")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "holds no mean-scale model" in result.stderr
    assert not (tmp_path / "w.pt").exists()


def test_widening_to_fewer_channels_is_refused():
    with pytest.raises(TrainingError, match="at least N=8 M=12"):
        widen_mean_scale(_trained_like(8, 12).state_dict(), 8, 8)


def test_cli_widens_a_checkpoint_that_training_then_starts_from(data_root, tmp_path):  # noqa: F811
    small = tmp_path / "small"
    train(data_root, small, 2)
    wide_file = tmp_path / "wide.pt"
    result = subprocess.run(
        [sys.executable, "-m", "bench.train", "widen", "--from", str(small / "last.pt"),
         "--N", "32", "--M", "48", "--out", str(wide_file)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    wide = tmp_path / "wide"
    log = train(data_root, wide, 1, "--N", "32", "--M", "48", "--init-from", str(wide_file))
    assert "initialised from" in log
    state = load(wide)
    assert state["step"] == 1 and state["config"]["N"] == 32
    assert state["model"]["g_a.6.weight"].shape[0] == 48
