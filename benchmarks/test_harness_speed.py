"""Speed of the harness's own work: BD-rate, pyramid building, metrics (what a run spends outside
codec calls; see the harness overhead that ``bench run`` prints)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.measuring.bdrate import bd_rate
from bench.measuring.metrics import ms_ssim_rgb, psnr_rgb
from bench.pyramid import build_pyramid


@pytest.fixture(scope="module")
def published():
    try:
        from bench.anchors import published_curves
    except ImportError as error:
        pytest.skip(f"anchors not installed: {error}")
    curves = published_curves()
    if not {"mbt2018-mean", "BPG-444"} <= set(curves):
        pytest.skip("published mbt2018-mean / BPG-444 curves are missing")
    return curves["BPG-444"], curves["mbt2018-mean"]


def test_bd_rate_pchip(benchmark, published) -> None:
    anchor, test = published
    benchmark.group = "bd-rate"
    result = benchmark(bd_rate, anchor.bpp, anchor.psnr, test.bpp, test.psnr)
    assert result.ok and -10 < result.bd_rate < 0  # about -3.3 % (harness.md)


@pytest.mark.parametrize("scales", [(2.0,), (1.33, 1.5)], ids=["2", "1.33,1.5"])
def test_build_pyramid(benchmark, kodim23, scales) -> None:
    benchmark.group = "pyramid 768x512"
    layers = benchmark(build_pyramid, kodim23, scales, "top")
    assert layers[-1].shape == kodim23.shape and len(layers) == len(scales) + 1


@pytest.fixture(scope="module")
def noisy(kodim23) -> np.ndarray:
    noise = np.random.default_rng(0).integers(-6, 7, kodim23.shape)
    return np.clip(kodim23.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def test_psnr_768x512(benchmark, kodim23, noisy) -> None:
    benchmark.group = "metrics 768x512"
    assert 30 < benchmark(psnr_rgb, kodim23, noisy) < 40


def test_ms_ssim_768x512(benchmark, kodim23, noisy) -> None:
    import torch

    torch.set_num_threads(1)  # as the runner computes metrics
    benchmark.group = "metrics 768x512"
    value, _ = benchmark(ms_ssim_rgb, kodim23, noisy)
    assert 0.9 < value < 1.0
