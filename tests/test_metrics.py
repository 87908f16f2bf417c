"""PSNR-RGB and MS-SSIM-RGB against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.metrics import MS_SSIM_MIN_SIDE, ms_ssim_rgb, psnr_rgb

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
