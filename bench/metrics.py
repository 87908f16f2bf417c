"""Distortion metrics on 8-bit RGB images (harness.md): PSNR-RGB, MS-SSIM-RGB and its dB form, and
PSNR-Y/U/V/YUV through a float YCbCr conversion (``bench.ycbcr``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from bench.ycbcr import DEFAULT_YUV_MATRIX, rgb_to_ycbcr

# pytorch-msssim's 5-scale MS-SSIM with an 11-pixel window needs the smaller side > (11 - 1) * 2**4.
MS_SSIM_MIN_SIDE = 161
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # pytorch-msssim's (Wang et al. 2003)


def psnr_rgb(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """10·log10(255² / MSE) over R, G, B of two uint8 images (inf when identical)."""
    _check_pair(reference, reconstruction)
    return _psnr(float(np.mean((reference.astype(np.float64) - reconstruction.astype(np.float64)) ** 2)))


# PSNR-YUV weights of Y, Cb, Cr (JVET/JCT-VC practice): PSNR_YUV = (6·PSNR_Y + PSNR_U + PSNR_V) / 8
YUV_WEIGHTS = (6, 1, 1)


@dataclass(frozen=True)
class YuvPsnr:
    """PSNR (dB, peak 255) of each plane and their 6:1:1 weighted mean; inf where a plane is exact."""

    y: float
    u: float
    v: float
    yuv: float


def _psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def psnr_yuv(reference: np.ndarray, reconstruction: np.ndarray, matrix: str = DEFAULT_YUV_MATRIX) -> YuvPsnr:
    """PSNR-Y, -U, -V and PSNR-YUV = (6·Y + U + V) / 8 of two uint8 RGB images, both converted with the
    same unrounded full-range ``matrix`` (``bench.ycbcr``)."""
    _check_pair(reference, reconstruction)
    error = rgb_to_ycbcr(reference, matrix) - rgb_to_ycbcr(reconstruction, matrix)
    y, u, v = (_psnr(float(np.mean(error[..., c] ** 2))) for c in range(3))
    weighted = (YUV_WEIGHTS[0] * y + YUV_WEIGHTS[1] * u + YUV_WEIGHTS[2] * v) / sum(YUV_WEIGHTS)
    return YuvPsnr(y, u, v, weighted)


def ms_ssim_db(ms_ssim: float | None) -> float | None:
    """MS-SSIM in dB, −10·log10(1 − MS-SSIM) (the usual log scale for RD curves; inf for 1, None
    where MS-SSIM is None, i.e. the layer is too small)."""
    if ms_ssim is None or (isinstance(ms_ssim, float) and math.isnan(ms_ssim)):
        return None
    return math.inf if ms_ssim >= 1.0 else -10 * math.log10(1.0 - ms_ssim)


def ms_ssim_rgb(reference: np.ndarray, reconstruction: np.ndarray) -> tuple[float | None, str]:
    """MS-SSIM over RGB (data range 255); (None, reason) when the image is too small for 5 scales.

    The definition is pytorch-msssim's ``ms_ssim`` (5 scales, 11-tap Gaussian window with
    sigma 1.5, K = (0.01, 0.03), its scale weights, average pooling with zero padding of odd sides,
    each channel separately, then the mean over R, G, B). It is computed here in float32, in about
    a twentieth of the time of the library in float64 (which was the runner's largest cost besides
    the codecs); values agree with the library in float64 to 3e-7 (tests/test_cost.py). With
    S = X + Y and D = X - Y, 2·cov(X, Y) = (var S - var D) / 2 and var X + var Y = (var S + var D) / 2:
    four filtered planes per channel instead of five, and identical images give D = 0, hence exactly 1.
    (Shifting S to shrink its squares would not help: the float32 window sums to 1 only to ~1e-7, so
    a shift moves the variances by shift² · 1e-7.)
    """
    import torch.nn.functional as F

    _check_pair(reference, reconstruction)
    if min(reference.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None, f"smaller side {min(reference.shape[:2])} < {MS_SSIM_MIN_SIDE} needed by 5-scale MS-SSIM"
    x = torch.from_numpy(np.array(reference)).permute(2, 0, 1)[None].float()
    y = torch.from_numpy(np.array(reconstruction)).permute(2, 0, 1)[None].float()
    s, d = x + y, x - y
    coords = torch.arange(11, dtype=torch.float32) - 5  # the library's window, built as it builds it
    window = torch.exp(-(coords**2) / (2 * 1.5**2))
    window /= window.sum()
    horizontal = window.view(1, 1, 1, 11).repeat(12, 1, 1, 1)
    vertical = window.view(1, 1, 11, 1).repeat(12, 1, 1, 1)
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    levels = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        stack = torch.cat([s, d, s * s, d * d], 1)
        # channels-last makes oneDNN's depthwise convolution several times faster on CPU
        stack = stack.contiguous(memory_format=torch.channels_last)
        mean_s, mean_d, square_s, square_d = F.conv2d(
            F.conv2d(stack, horizontal, groups=12), vertical, groups=12).split(3, 1)
        var_s = square_s - mean_s * mean_s
        var_d = square_d - mean_d * mean_d
        cs = (var_s - var_d + 2 * c2) / (var_s + var_d + 2 * c2)
        if level < len(MS_SSIM_WEIGHTS) - 1:
            levels.append(torch.relu(cs.mean((2, 3), dtype=torch.float64)))
            padding = [side % 2 for side in s.shape[2:]]
            s = F.avg_pool2d(s, kernel_size=2, padding=padding)
            d = F.avg_pool2d(d, kernel_size=2, padding=padding)
        else:
            luminance = (mean_s * mean_s - mean_d * mean_d + 2 * c1) / (mean_s * mean_s + mean_d * mean_d + 2 * c1)
            levels.append(torch.relu((luminance * cs).mean((2, 3), dtype=torch.float64)))
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64).view(-1, 1, 1)
    return float(torch.prod(torch.stack(levels) ** weights, 0).mean()), ""


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"reference {a.shape} and reconstruction {b.shape} differ in shape")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError("metrics are defined on 8-bit (uint8) images")
