"""Training throughput, fp32 against bf16 (``--precision``): one optimizer step of each trainer.

Each benchmark runs the trainers' own forward functions (``mean_scale.forward_mixed``,
``compass.rc_stage_forward``, ``CompassModel.forward`` and LIFF under the same cast) on fixed
crops of kodim23, then the loss, backward and an Adam step, on one thread, the way
``python -m bench.train`` trains on this CPU. Layer sizes are fixed (BL 32², EL1 48², EL2 128² of
a 128² crop) so that every round times the same shapes. bf16 skips with the reason on a machine
that cannot run it. Compare the two rows of a group: ``--benchmark-group-by=group``.

    python -m pytest benchmarks/test_train_speed.py --benchmark-only --benchmark-group-by=group
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.train.precision import PrecisionError, autocast, memory_format, resolve_precision

CROP = 128
BATCH = 8
LAYER_SIDES = (32, 48, 128)  # BL 0.25·c, EL1 0.375·c, EL2 c: inside the trainer's drawn ranges
ROUNDS = 5
PRECISIONS = ("fp32", "bf16")
LMBDA = 0.0067


@pytest.fixture(scope="module")
def batch(kodim23: np.ndarray) -> torch.Tensor:
    """Eight 128² crops of kodim23 on a grid (fixed, so every run times the same data)."""
    crops = [kodim23[r * CROP : (r + 1) * CROP, c * CROP : (c + 1) * CROP] for r in range(2) for c in range(4)]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0)


def _precision_or_skip(precision: str) -> str:
    try:
        resolved = resolve_precision(precision + "!", torch.device("cpu"))
    except PrecisionError as error:
        pytest.skip(str(error))
    torch.set_num_threads(1)
    return resolved


def _step_runner(params: list[torch.nn.Parameter], loss_of: Callable[[], torch.Tensor]) -> Callable[[], float]:
    optimizer = torch.optim.Adam([p for p in params if p.requires_grad], lr=1e-5)

    def step() -> float:
        optimizer.zero_grad()
        loss = loss_of()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def _run(benchmark, group: str, precision: str, step: Callable[[], float]) -> None:
    benchmark.group = group
    benchmark.extra_info.update({"precision": precision, "batch": BATCH, "crop": CROP, "threads": 1})
    loss = benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=1)
    assert np.isfinite(loss)


def _cast(precision: str) -> Callable:
    """The ``cast`` factory the trainers pass to COMPASS's forward functions."""
    return lambda: autocast(precision, torch.device("cpu"))


def _frozen_bl() -> torch.nn.Module:
    """An untrained 64/96 base layer with its CDF tables (the BL never trains inside COMPASS)."""
    from bench.codecs.mean_scale.weights import build_mean_scale

    bl = build_mean_scale(64, 96).eval()
    bl.update(force=True)
    return bl


def _pyramid(batch: torch.Tensor, channels: torch.memory_format) -> list[torch.Tensor]:
    from bench.codecs.compass.train import make_pyramid

    return [layer.contiguous(memory_format=channels) for layer in make_pyramid(batch, list(LAYER_SIDES))]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_mean_scale_step(benchmark, precision: str, batch: torch.Tensor) -> None:
    from bench.codecs.mean_scale.train import forward_mixed, rate_distortion_loss
    from bench.codecs.mean_scale.weights import build_mean_scale as build_model

    precision = _precision_or_skip(precision)
    channels = memory_format(precision)
    torch.manual_seed(0)
    model = build_model(64, 96).train().to(memory_format=channels)
    x = batch.contiguous(memory_format=channels)
    step = _step_runner(list(model.parameters()),
                        lambda: rate_distortion_loss(forward_mixed(model, x, precision), x, LMBDA)["loss"])
    _run(benchmark, "train step: mean-scale 64/96, 8x128²", precision, step)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_compass_rc_step(benchmark, precision: str, batch: torch.Tensor) -> None:
    from bench.codecs.compass import residual
    from bench.codecs.compass.model import CONFIGS
    from bench.codecs.compass.train import el_rd_loss, rc_stage_forward

    precision = _precision_or_skip(precision)
    channels = memory_format(precision)
    cfg = CONFIGS["cpu"]
    torch.manual_seed(0)
    bl = _frozen_bl()
    rc = residual.build_mean_scale(cfg.rc_n, cfg.rc_m).train().to(memory_format=channels)
    layers = _pyramid(batch, channels)
    step = _step_runner(list(rc.parameters()), lambda: el_rd_loss(
        rc_stage_forward(bl, rc, layers, cfg.bl_padding, _cast(precision)), layers[1:], LMBDA)["loss"])
    _run(benchmark, "train step: COMPASS RC stage (cpu config), 8x128²", precision, step)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_compass_joint_step(benchmark, precision: str, batch: torch.Tensor) -> None:
    from bench.codecs.compass.model import CONFIGS, CompassModel
    from bench.codecs.compass.train import el_rd_loss

    precision = _precision_or_skip(precision)
    channels = memory_format(precision)
    torch.manual_seed(0)
    model = CompassModel.build(_frozen_bl(), CONFIGS["cpu"]).train().to(memory_format=channels)
    layers = _pyramid(batch, channels)
    step = _step_runner(list(model.liff.parameters()) + list(model.rc.parameters()),
                        lambda: el_rd_loss(model(layers, _cast(precision))["el"], layers[1:], LMBDA)["loss"])
    _run(benchmark, "train step: COMPASS joint (LIFF + RC, cpu config), 8x128²", precision, step)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_liff_step(benchmark, precision: str, batch: torch.Tensor) -> None:
    from bench.codecs.compass.liff import LIFF
    from bench.codecs.compass.model import CONFIGS
    from bench.codecs.compass.train import resize_batch

    precision = _precision_or_skip(precision)
    channels = memory_format(precision)
    torch.manual_seed(0)
    liff = LIFF(CONFIGS["cpu"].liff).train().to(memory_format=channels)
    low = resize_batch(batch, (64, 64)).contiguous(memory_format=channels)  # ×2 super-resolution

    def loss() -> torch.Tensor:
        with autocast(precision, torch.device("cpu")):
            pred = liff(low, (CROP, CROP))
        return F.l1_loss(pred.float(), batch)

    step = _step_runner(list(liff.parameters()), loss)
    _run(benchmark, "train step: LIFF stage (cpu config), x2 to 8x128²", precision, step)
