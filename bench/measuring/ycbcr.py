"""RGB → YCbCr for the YUV metrics (PSNR-Y, PSNR-YUV): a float conversion, never rounded.

The metrics convert the 8-bit RGB original and the 8-bit RGB reconstruction with the same matrix,
**full range at 8-bit scale** (no 16..235 head- and footroom), in float64::

    Y  = Kr·R + Kg·G + Kb·B                 (Kg = 1 − Kr − Kb; 0..255)
    Cb = (B − Y) / (2·(1 − Kb)) + 128       (0..255)
    Cr = (R − Y) / (2·(1 − Kr)) + 128       (0..255)

and PSNR uses peak 255 on every plane. Nothing is rounded or subsampled: the metric measures the
RGB reconstruction the codec returned, seen through a luma/chroma matrix, not the codec's own
YCbCr planes (which differ between codecs: x265 and SHM code BT.601 full range here, WebP BT.601
limited range, the learned codecs RGB).

Matrices (``YUV_MATRICES``): ``bt709`` (ITU-R BT.709: Kr 0.2126, Kb 0.0722), the default, as in
CompressAI (``compressai.transforms.functional.rgb2ycbcr``, which its video evaluation uses for
PSNR-YUV) and JPEG AI's common test conditions, so that PSNR-YUV here compares with published
learned-codec results; ``bt601`` (ITU-R BT.601: Kr 0.299, Kb 0.114), the matrix that x265 and SHVC
code in here (``bench.codecs.yuv``), for PSNR-Y on the luma those codecs optimise.
"""

from __future__ import annotations

import numpy as np

YUV_MATRICES: dict[str, tuple[float, float]] = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}  # (Kr, Kb)
DEFAULT_YUV_MATRIX = "bt709"
MATRIX_NAMES = {"bt709": "BT.709", "bt601": "BT.601"}
CHROMA_OFFSET = 128.0


def check_matrix(matrix: str) -> None:
    """ValueError unless ``matrix`` is one of ``YUV_MATRICES``."""
    if matrix not in YUV_MATRICES:
        raise ValueError(f"unknown YCbCr matrix {matrix!r}; known: {', '.join(YUV_MATRICES)}")


def rgb_to_ycbcr(image: np.ndarray, matrix: str = DEFAULT_YUV_MATRIX) -> np.ndarray:
    """An (H, W, 3) RGB image (0..255) as float64 (H, W, 3) Y, Cb, Cr, full range, unrounded."""
    check_matrix(matrix)
    kr, kb = YUV_MATRICES[matrix]
    rgb = np.asarray(image, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = kr * r + (1.0 - kr - kb) * g + kb * b
    cb = (b - y) / (2.0 * (1.0 - kb)) + CHROMA_OFFSET
    cr = (r - y) / (2.0 * (1.0 - kr)) + CHROMA_OFFSET
    return np.stack([y, cb, cr], axis=-1)


def describe(matrix: str) -> str:
    """What the YUV metrics measured, in words (for reports)."""
    check_matrix(matrix)
    kr, kb = YUV_MATRICES[matrix]
    return (f"{MATRIX_NAMES[matrix]} matrix (Kr {kr}, Kb {kb}), full range, 8-bit scale (peak 255), "
            "converted in float from the 8-bit RGB original and reconstruction, unrounded, 4:4:4")
