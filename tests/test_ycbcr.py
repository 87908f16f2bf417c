"""The metrics' RGB -> YCbCr conversion, PSNR-Y/U/V/YUV and MS-SSIM dB against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.measuring.metrics import ms_ssim_db, psnr_yuv
from bench.measuring.ycbcr import rgb_to_ycbcr


@pytest.mark.parametrize(("matrix", "expected"), [
    # RGB (200, 100, 50), full range, 8-bit scale, unrounded
    # BT.709: Y = .2126·200 + .7152·100 + .0722·50 = 117.65; Cb = (50 − Y)/1.8556 + 128; Cr = (200 − Y)/1.5748 + 128
    ("bt709", (117.65, 128 - 67.65 / 1.8556, 128 + 82.35 / 1.5748)),
    # BT.601: Y = .299·200 + .587·100 + .114·50 = 124.2; Cb = (50 − Y)/1.772 + 128; Cr = (200 − Y)/1.402 + 128
    ("bt601", (124.2, 128 - 74.2 / 1.772, 128 + 75.8 / 1.402)),
])
def test_conversion_matches_hand_computation(matrix: str, expected: tuple[float, float, float]) -> None:
    pixel = np.array([[[200, 100, 50]]], np.uint8)
    assert rgb_to_ycbcr(pixel, matrix)[0, 0] == pytest.approx(expected, abs=1e-9)
    assert rgb_to_ycbcr(np.full((1, 1, 3), 255, np.uint8), matrix)[0, 0] == pytest.approx((255, 128, 128))


def test_unknown_matrix_is_refused() -> None:
    with pytest.raises(ValueError, match="bt2020"):
        rgb_to_ycbcr(np.zeros((1, 1, 3), np.uint8), "bt2020")


def test_psnr_yuv_is_the_6_1_1_mean_of_the_planes() -> None:
    reference = np.full((8, 8, 3), 100, np.uint8)
    recon = reference.copy()
    recon[..., 1] += 6  # green off by 6 everywhere: each plane is off by a constant
    kr, kb = 0.2126, 0.0722
    kg = 1 - kr - kb
    dy, du, dv = kg * 6, kg * 6 / (2 * (1 - kb)), kg * 6 / (2 * (1 - kr))
    expected = [10 * math.log10(255**2 / d**2) for d in (dy, du, dv)]
    result = psnr_yuv(reference, recon, "bt709")
    assert (result.y, result.u, result.v) == pytest.approx(expected, abs=1e-9)
    assert result.yuv == pytest.approx((6 * expected[0] + expected[1] + expected[2]) / 8, abs=1e-9)
    assert result.y == pytest.approx(35.4792, abs=1e-4)  # 20·log10(255 / (0.7152·6))
    assert psnr_yuv(reference, recon, "bt601").y == pytest.approx(20 * math.log10(255 / (0.587 * 6)), abs=1e-9)
    assert psnr_yuv(reference, reference).yuv == math.inf


def test_ms_ssim_db() -> None:
    assert ms_ssim_db(0.99) == pytest.approx(20.0, abs=1e-9)
    assert ms_ssim_db(0.9) == pytest.approx(10.0, abs=1e-9)
    assert ms_ssim_db(1.0) == math.inf
    assert ms_ssim_db(None) is None
