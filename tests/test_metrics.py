"""PSNR-RGB and MS-SSIM-RGB against hand computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.measuring.metrics import MS_SSIM_MIN_SIDE, ms_ssim_rgb, psnr_rgb

from .conftest import synthetic_image


def test_psnr_constant_offset_matches_hand_computation() -> None:
    reference = np.clip(synthetic_image(24, 40, seed=1), 0, 252).astype(np.uint8)
    shifted = reference + np.uint8(3)  # no wrap-around: every pixel <= 252
    # MSE = 3^2 = 9 on every sample of every channel.
    assert psnr_rgb(reference, shifted) == pytest.approx(10 * math.log10(255**2 / 9), abs=1e-12)
    assert psnr_rgb(shifted, reference) == pytest.approx(38.588378514, abs=1e-8)


def test_psnr_averages_over_all_three_channels() -> None:
    reference = np.full((10, 10, 3), 100, np.uint8)
    recon = reference.copy()
    recon[..., 1] += 6  # only green is off: MSE = 36 / 3 = 12 over R, G, B
    assert psnr_rgb(reference, recon) == pytest.approx(10 * math.log10(255**2 / 12), abs=1e-12)


def test_psnr_no_uint8_overflow() -> None:
    black = np.zeros((4, 4, 3), np.uint8)
    white = np.full((4, 4, 3), 255, np.uint8)
    assert psnr_rgb(black, white) == pytest.approx(0.0, abs=1e-12)  # MSE = 255^2
    assert psnr_rgb(white, white) == math.inf


def test_psnr_rejects_mismatched_or_non_8bit_input() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        psnr_rgb(a, np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        psnr_rgb(a, a.astype(np.float32))


def test_ms_ssim_identical_is_one_and_noise_lowers_it() -> None:
    reference = synthetic_image(MS_SSIM_MIN_SIDE, MS_SSIM_MIN_SIDE + 9, seed=2)
    value, reason = ms_ssim_rgb(reference, reference)
    assert reason == ""
    assert value == pytest.approx(1.0, abs=1e-9)
    noise = np.random.default_rng(3).integers(-20, 21, reference.shape)
    noisy = np.clip(reference.astype(int) + noise, 0, 255)
    worse, _ = ms_ssim_rgb(reference, noisy.astype(np.uint8))
    assert 0.5 < worse < 0.999


def test_ms_ssim_small_image_gives_none_with_reason() -> None:
    small = synthetic_image(MS_SSIM_MIN_SIDE - 1, 300)
    value, reason = ms_ssim_rgb(small, small)
    assert value is None
    assert str(MS_SSIM_MIN_SIDE - 1) in reason and str(MS_SSIM_MIN_SIDE) in reason


# --- bounded memory (issue 27): the banded metrics against the whole-picture ones they replace -------

def _old_psnr_rgb(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """bench.measuring.metrics.psnr_rgb before it went through bands: float64 planes of the whole picture."""
    mse = float(np.mean((reference.astype(np.float64) - reconstruction.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _old_psnr_yuv(reference: np.ndarray, reconstruction: np.ndarray, matrix: str) -> tuple[float, ...]:
    from bench.measuring.ycbcr import rgb_to_ycbcr

    error = rgb_to_ycbcr(reference, matrix) - rgb_to_ycbcr(reconstruction, matrix)
    planes = [float(np.mean(error[..., c] ** 2)) for c in range(3)]
    y, u, v = (math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse) for mse in planes)
    return y, u, v, (6 * y + u + v) / 8


def _old_ms_ssim_rgb(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """bench.measuring.metrics.ms_ssim_rgb before it went through bands (the whole picture at every scale)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(reference)).permute(2, 0, 1)[None].float()
    y = torch.from_numpy(np.array(reconstruction)).permute(2, 0, 1)[None].float()
    s, d = x + y, x - y
    coords = torch.arange(11, dtype=torch.float32) - 5
    window = torch.exp(-(coords**2) / (2 * 1.5**2))
    window /= window.sum()
    horizontal = window.view(1, 1, 1, 11).repeat(12, 1, 1, 1)
    vertical = window.view(1, 1, 11, 1).repeat(12, 1, 1, 1)
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    weights = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    levels = []
    for level in range(len(weights)):
        stack = torch.cat([s, d, s * s, d * d], 1).contiguous(memory_format=torch.channels_last)
        mean_s, mean_d, square_s, square_d = F.conv2d(
            F.conv2d(stack, horizontal, groups=12), vertical, groups=12).split(3, 1)
        var_s = square_s - mean_s * mean_s
        var_d = square_d - mean_d * mean_d
        cs = (var_s - var_d + 2 * c2) / (var_s + var_d + 2 * c2)
        if level < len(weights) - 1:
            levels.append(torch.relu(cs.mean((2, 3), dtype=torch.float64)))
            padding = [side % 2 for side in s.shape[2:]]
            s = F.avg_pool2d(s, kernel_size=2, padding=padding)
            d = F.avg_pool2d(d, kernel_size=2, padding=padding)
        else:
            luminance = (mean_s * mean_s - mean_d * mean_d + 2 * c1) / (mean_s * mean_s + mean_d * mean_d + 2 * c1)
            levels.append(torch.relu((luminance * cs).mean((2, 3), dtype=torch.float64)))
    w = torch.tensor(weights, dtype=torch.float64).view(-1, 1, 1)
    return float(torch.prod(torch.stack(levels) ** w, 0).mean())


def _assert_same_as_before(reference: np.ndarray, reconstruction: np.ndarray) -> None:
    from bench.measuring.metrics import psnr_yuv

    assert psnr_rgb(reference, reconstruction) == _old_psnr_rgb(reference, reconstruction)  # exact sums
    for matrix in ("bt709", "bt601"):
        new = psnr_yuv(reference, reconstruction, matrix)
        assert (new.y, new.u, new.v, new.yuv) == pytest.approx(_old_psnr_yuv(reference, reconstruction, matrix),
                                                               abs=1e-9)
    value, _ = ms_ssim_rgb(reference, reconstruction)
    assert value == pytest.approx(_old_ms_ssim_rgb(reference, reconstruction), abs=1e-9)


@pytest.mark.parametrize("band_pixels", [1, 2_000, 1 << 19], ids=["one-row", "small", "default"])
@pytest.mark.parametrize("shape", [(171, 203), (200, 166), (177, 177)], ids=["odd-odd", "even-even", "square"])
def test_banded_metrics_equal_the_whole_picture_ones_on_random_pictures(monkeypatch, band_pixels, shape) -> None:
    import bench.measuring.metrics

    monkeypatch.setattr(bench.measuring.metrics, "BAND_PIXELS", band_pixels)
    rng = np.random.default_rng(shape[0] * 7 + band_pixels)
    reference = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    noisy = np.clip(reference.astype(int) + rng.integers(-30, 31, reference.shape), 0, 255).astype(np.uint8)
    _assert_same_as_before(reference, noisy)
    smooth = synthetic_image(*shape, seed=5)
    _assert_same_as_before(smooth, np.clip(smooth.astype(int) + 2, 0, 255).astype(np.uint8))


def test_banded_metrics_equal_the_whole_picture_ones_on_a_real_picture(monkeypatch, tmp_path: Path) -> None:
    import io

    from PIL import Image

    import bench.measuring.metrics
    from bench.images import load_rgb

    from .conftest import SHARED_DATA

    path = SHARED_DATA / "kodak" / "kodim23.png"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    picture = load_rgb(path)[:383, :509]  # odd sides: the pooling pads at every scale
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "JPEG", quality=30)  # a real codec's distortion
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    monkeypatch.setattr(bench.measuring.metrics, "BAND_PIXELS", 20_000)  # several bands at every scale
    _assert_same_as_before(picture, decoded)


def test_psnr_metrics_hold_one_band_not_the_picture_in_memory(monkeypatch) -> None:
    """numpy's allocations show in tracemalloc: the float64 planes of the whole picture (about 100
    bytes per pixel before) must be gone, whatever the picture's size."""
    import tracemalloc

    import bench.measuring.metrics
    from bench.measuring.metrics import psnr_yuv

    monkeypatch.setattr(bench.measuring.metrics, "BAND_PIXELS", 10_000)
    reference = synthetic_image(1200, 1000, seed=3)
    recon = np.clip(reference.astype(int) + 3, 0, 255).astype(np.uint8)
    for function in (psnr_rgb, psnr_yuv):
        tracemalloc.start()
        try:
            function(reference, recon)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 2 * reference.shape[0] * reference.shape[1], (function.__name__, peak)


def test_ms_ssim_filters_bands_of_rows_not_the_whole_picture(monkeypatch) -> None:
    """torch's allocations do not show in tracemalloc: count what each convolution is given instead."""
    import torch.nn.functional as F

    import bench.measuring.metrics

    monkeypatch.setattr(bench.measuring.metrics, "BAND_PIXELS", 10_000)
    largest = []
    conv2d = F.conv2d

    def counting(tensor, *args, **kwargs):
        largest.append(tensor.numel())
        return conv2d(tensor, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", counting)
    reference = synthetic_image(600, 500, seed=4)
    value, _ = ms_ssim_rgb(reference, np.clip(reference.astype(int) + 3, 0, 255).astype(np.uint8))
    assert value is not None and 0.9 < value < 1
    band_rows = 10_000 // 500 + 10  # output rows of a band and the window's 10 below
    assert max(largest) <= 12 * band_rows * 500
