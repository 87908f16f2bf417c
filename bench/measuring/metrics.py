"""Distortion metrics on 8-bit RGB images (harness.md): PSNR-RGB, MS-SSIM-RGB and its dB form, and
PSNR-Y/U/V/YUV through a float YCbCr conversion (``bench.measuring.ycbcr``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from bench.measuring.ycbcr import DEFAULT_YUV_MATRIX, check_matrix, rgb_to_ycbcr

# pytorch-msssim's 5-scale MS-SSIM with an 11-pixel window needs the smaller side > (11 - 1) * 2**4.
MS_SSIM_MIN_SIDE = 161
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # pytorch-msssim's (Wang et al. 2003)


# Every metric goes through the picture in bands of whole rows of about this many pixels, so that
# its memory is a few bytes per pixel plus a fixed amount, not float64/float32 planes of the whole
# picture (a 9000x9000 picture cost 17 GB that way, issue 27). Results do not depend on it.
BAND_PIXELS = 1 << 19


def _band_rows(width: int) -> int:
    return max(1, BAND_PIXELS // max(1, width))


def psnr_rgb(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """10·log10(255² / MSE) over R, G, B of two uint8 images (inf when identical)."""
    _check_pair(reference, reconstruction)
    # Integer squared errors summed in int64 are exact whatever the order, so the banded sum is the
    # float64 mean over the whole picture bit for bit (every partial sum is an integer below 2^53).
    total, rows = 0, _band_rows(reference.shape[1])
    for top in range(0, reference.shape[0], rows):
        error = reference[top : top + rows].astype(np.int64) - reconstruction[top : top + rows]
        total += int(np.dot(error.ravel(), error.ravel()))
    return _psnr(total / reference.size)


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
    same unrounded full-range ``matrix`` (``bench.measuring.ycbcr``)."""
    _check_pair(reference, reconstruction)
    check_matrix(matrix)
    sums, rows = np.zeros(3), _band_rows(reference.shape[1])
    for top in range(0, reference.shape[0], rows):  # float64 planes of one band at a time
        band = slice(top, top + rows)
        error = rgb_to_ycbcr(reference[band], matrix) - rgb_to_ycbcr(reconstruction[band], matrix)
        sums += np.einsum("hwc,hwc->c", error, error)
    pixels = reference.shape[0] * reference.shape[1]
    y, u, v = (_psnr(float(sums[c] / pixels)) for c in range(3))
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

    It goes through the picture in bands of rows (``BAND_PIXELS``), keeping only S and D of the next
    scale whole (6 bytes per pixel of the picture): each window position's value is computed as over
    the whole picture, and only the float64 sums are split.
    """
    _check_pair(reference, reconstruction)
    if min(reference.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None, f"smaller side {min(reference.shape[:2])} < {MS_SSIM_MIN_SIDE} needed by 5-scale MS-SSIM"

    def full_size(top: int, bottom: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.array(reference[top:bottom])).permute(2, 0, 1)[None].float()
        y = torch.from_numpy(np.array(reconstruction[top:bottom])).permute(2, 0, 1)[None].float()
        return x + y, x - y

    source: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]] = full_size
    height, width = reference.shape[:2]
    levels = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        last = level == len(MS_SSIM_WEIGHTS) - 1
        levels.append(torch.relu(_ssim_terms(source, height, width, last)))
        if not last:
            s, d = _pooled(source, height, width)
            height, width = s.shape[2:]
            source = lambda top, bottom, s=s, d=d: (s[:, :, top:bottom], d[:, :, top:bottom])  # noqa: E731
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64).view(-1, 1, 1)
    return float(torch.prod(torch.stack(levels) ** weights, 0).mean()), ""


_WINDOW_SIDE = 11


def _windows() -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.arange(_WINDOW_SIDE, dtype=torch.float32) - _WINDOW_SIDE // 2  # the library's window,
    window = torch.exp(-(coords**2) / (2 * 1.5**2))  # built as it builds it
    window /= window.sum()
    return (window.view(1, 1, 1, _WINDOW_SIDE).repeat(12, 1, 1, 1),
            window.view(1, 1, _WINDOW_SIDE, 1).repeat(12, 1, 1, 1))


def _ssim_terms(source: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]], height: int, width: int,
                last: bool) -> torch.Tensor:
    """Per channel (1, 3), the mean over the valid window positions of one scale of cs, or of
    luminance·cs at the ``last`` scale, from ``source(top, bottom)``: the rows of S and D.

    Bands of output rows read their rows plus the window's 10 below; the filtered value of a position
    is computed from the same inputs by the same convolution as over the whole picture (checked bit
    for bit), so only the float64 sums are split."""
    import torch.nn.functional as F

    horizontal, vertical = _windows()
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    out_rows = height - (_WINDOW_SIDE - 1)
    total = torch.zeros(1, 3, dtype=torch.float64)
    rows = _band_rows(width)
    for top in range(0, out_rows, rows):
        bottom = min(top + rows, out_rows)
        s, d = source(top, bottom + _WINDOW_SIDE - 1)
        stack = torch.cat([s, d, s * s, d * d], 1)
        # channels-last makes oneDNN's depthwise convolution several times faster on CPU
        stack = stack.contiguous(memory_format=torch.channels_last)
        mean_s, mean_d, square_s, square_d = F.conv2d(
            F.conv2d(stack, horizontal, groups=12), vertical, groups=12).split(3, 1)
        del stack
        var_s = square_s - mean_s * mean_s
        var_d = square_d - mean_d * mean_d
        cs = (var_s - var_d + 2 * c2) / (var_s + var_d + 2 * c2)
        if last:
            cs = cs * ((mean_s * mean_s - mean_d * mean_d + 2 * c1) / (mean_s * mean_s + mean_d * mean_d + 2 * c1))
        total += cs.sum((2, 3), dtype=torch.float64)
    return total / (out_rows * (width - (_WINDOW_SIDE - 1)))


def _pooled(source: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]], height: int, width: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """S and D of the next scale: pytorch-msssim's 2x2 average pooling with zero padding of odd
    sides (an odd side pairs rows 2i-1 and 2i), band by band. The means are exact in float32 (sums
    of four multiples of 4^-k below 1020, k < 5), so banding cannot change them."""
    import torch.nn.functional as F

    pad_rows, pad_cols = height % 2, width % 2
    out_height, out_width = (height + 1) // 2, (width + 1) // 2
    s_next = torch.empty(1, 3, out_height, out_width)
    d_next = torch.empty(1, 3, out_height, out_width)
    rows = max(1, BAND_PIXELS // (2 * width))
    for top in range(0, out_height, rows):
        bottom = min(top + rows, out_height)
        first, end = 2 * top - pad_rows, 2 * bottom - pad_rows  # input rows, with -1 and height as zeros
        s, d = source(max(first, 0), min(end, height))
        padding = (0, 0, max(0, -first), max(0, end - height))
        for plane, out in ((s, s_next), (d, d_next)):
            out[:, :, top:bottom] = F.avg_pool2d(F.pad(plane, padding), kernel_size=2, padding=[0, pad_cols])
    return s_next, d_next


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"reference {a.shape} and reconstruction {b.shape} differ in shape")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError("metrics are defined on 8-bit (uint8) images")
