"""``--precision``: bf16 transforms with fp32 entropy models, a clear fallback, and what is recorded."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from bench.codecs.compass import residual
from bench.codecs.compass.model import CONFIGS, CompassModel
from bench.codecs.mean_scale.train import forward_mixed, rate_distortion_loss
from bench.codecs.mean_scale.weights import build_mean_scale as build_model
from bench.train import precision as precision_module
from bench.train.curve import rate_vs_published, table
from bench.train.precision import PrecisionError, autocast, memory_format, resolve_precision

CPU = torch.device("cpu")
bf16_here = pytest.mark.skipif(bool(precision_module.bf16_problem(CPU)), reason="this CPU cannot run bf16")


def _image(seed: int = 0, size: int = 64) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    smooth = rng.random((1, 3, size // 8, size // 8)).astype(np.float32)
    return torch.nn.functional.interpolate(torch.from_numpy(smooth), size=(size, size), mode="bilinear")


def test_fp32_forward_is_the_models_own_forward():
    torch.manual_seed(0)
    model = build_model(16, 24).eval()
    x = _image()
    ours, theirs = forward_mixed(model, x, "fp32"), model(x)
    assert torch.equal(ours["x_hat"], theirs["x_hat"])
    for key in ("y", "z"):
        assert torch.equal(ours["likelihoods"][key], theirs["likelihoods"][key])


@bf16_here
def test_bf16_runs_the_transforms_in_bf16_and_the_entropy_models_in_fp32():
    torch.manual_seed(0)
    model = build_model(16, 24).eval().to(memory_format=torch.channels_last)
    x = _image().contiguous(memory_format=torch.channels_last)
    seen = {}
    hook = model.g_a.register_forward_hook(lambda m, i, o: seen.update(g_a=o.dtype))  # None keeps the output
    out = forward_mixed(model, x, "bf16")
    hook.remove()
    reference = forward_mixed(model, x, "fp32")
    assert seen["g_a"] == torch.bfloat16
    assert out["x_hat"].dtype == torch.float32
    assert all(lk.dtype == torch.float32 for lk in out["likelihoods"].values())
    # the same model in bf16 stays close: bf16 moves the output by its 8-bit mantissa, not more
    assert float((out["x_hat"] - reference["x_hat"]).abs().max()) < 0.05
    loss = rate_distortion_loss(out, x, 0.0067)
    loss["loss"].backward()
    assert model.g_a[0].weight.grad.dtype == torch.float32  # master weights and grads stay fp32


@bf16_here
def test_compass_forward_under_bf16_keeps_likelihoods_fp32():
    torch.manual_seed(0)
    bl = residual.build_mean_scale(8, 12)
    bl.update(force=True)
    model = CompassModel.build(bl, CONFIGS["tiny"]).train()
    layers = [_image(1, 16), _image(1, 32), _image(1, 48)]

    def cast():
        return autocast("bf16", CPU)

    outputs = model(layers, cast)["el"]
    assert len(outputs) == 2
    for out in outputs:
        assert out["x_hat"].dtype == torch.float32 and out["pred"].dtype == torch.float32
        assert all(lk.dtype == torch.float32 for lk in out["likelihoods"].values())


def test_an_unknown_precision_is_refused():
    with pytest.raises(PrecisionError, match="fp32, bf16"):
        resolve_precision("fp16", CPU)


def test_bf16_falls_back_to_fp32_with_a_message_or_fails_when_insisted(monkeypatch, capsys):
    monkeypatch.setattr(precision_module, "bf16_problem", lambda device: "no AMX here")
    assert resolve_precision("bf16", CPU) == "fp32"
    assert "falls back to fp32: no AMX here" in capsys.readouterr().out
    with pytest.raises(PrecisionError, match="no AMX here"):
        resolve_precision("bf16!", CPU)
    assert resolve_precision("fp32", CPU) == "fp32"


def test_memory_format_follows_precision():
    assert memory_format("bf16") == torch.channels_last
    assert memory_format("fp32") == torch.contiguous_format


def test_the_curve_compares_a_point_with_the_published_curve_at_its_psnr(tmp_path):
    reference = (np.array([27.0, 29.0, 31.0]), np.array([0.1, 0.2, 0.4]))
    # on a straight line in (PSNR, log-rate) PCHIP is that line: 30 dB lies at 0.2·√2 bpp
    assert rate_vs_published(0.2 * 2**0.5 * 1.5, 30.0, reference) == pytest.approx(0.5)
    assert np.isnan(rate_vs_published(0.3, 26.0, reference))  # outside the published range
    run = tmp_path / "run"
    run.mkdir()
    (run / "curve.jsonl").write_text(json.dumps(
        {"step": 1000, "trained_seconds": 1800.0, "threads": 2, "images": 24, "precision": "bf16",
         "bpp": 0.4, "psnr": 31.0}) + "\n")
    lines = table(run, reference)
    assert "1000   1.00  0.4000  31.00     +0.0 %" in lines[-1]
    # a point that measured its CPU time is placed by it, not by wall time × threads
    (run / "curve.jsonl").write_text(json.dumps(
        {"step": 1000, "trained_seconds": 1800.0, "cpu_seconds": 2160.0, "threads": 2, "images": 24,
         "precision": "bf16", "bpp": 0.4, "psnr": 31.0}) + "\n")
    assert "1000   0.60  0.4000  31.00" in table(run, reference)[-1]


def test_parsers_take_precision():
    from bench.codecs.compass import train as compass
    from bench.codecs.mean_scale import train as mean_scale

    for module, argv in ((compass, ["--stage", "rc"]), (mean_scale, [])):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        assert parser.parse_args([*argv, "--out", "x", "--precision", "bf16"]).precision == "bf16"


def test_the_curve_keeps_the_branch_that_a_resumed_run_continues(tmp_path):
    from bench.train.curve import read_curve

    run = tmp_path / "run"
    run.mkdir()
    # killed after validating steps 2000 and 4000, resumed from the checkpoint of step 3700
    steps_and_bpp = [(2000, 0.45), (4000, 0.44), (4000, 0.43), (6000, 0.42)]
    (run / "curve.jsonl").write_text("".join(
        json.dumps({"step": step, "trained_seconds": step / 10, "bpp": bpp, "psnr": 30.0}) + "\n"
        for step, bpp in steps_and_bpp))
    assert [(p["step"], p["bpp"]) for p in read_curve(run)] == [(2000, 0.45), (4000, 0.43), (6000, 0.42)]
