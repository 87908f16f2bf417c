"""Distortion metrics on 8-bit RGB images (harness.md): PSNR-RGB and MS-SSIM-RGB."""

from __future__ import annotations

import math

import numpy as np
import torch

# pytorch-msssim's 5-scale MS-SSIM with an 11-pixel window needs the smaller side > (11 - 1) * 2**4.
MS_SSIM_MIN_SIDE = 161


def psnr_rgb(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """10·log10(255² / MSE) over R, G, B of two uint8 images (inf when identical)."""
    _check_pair(reference, reconstruction)
    mse = np.mean((reference.astype(np.float64) - reconstruction.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ms_ssim_rgb(reference: np.ndarray, reconstruction: np.ndarray) -> tuple[float | None, str]:
    """MS-SSIM over RGB (data range 255); (None, reason) when the image is too small for 5 scales."""
    from pytorch_msssim import ms_ssim

    _check_pair(reference, reconstruction)
    if min(reference.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None, f"smaller side {min(reference.shape[:2])} < {MS_SSIM_MIN_SIDE} needed by 5-scale MS-SSIM"
    a = torch.from_numpy(np.array(reference)).permute(2, 0, 1)[None].double()
    b = torch.from_numpy(np.array(reconstruction)).permute(2, 0, 1)[None].double()
    return float(ms_ssim(a, b, data_range=255.0)), ""


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"reference {a.shape} and reconstruction {b.shape} differ in shape")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError("metrics are defined on 8-bit (uint8) images")
