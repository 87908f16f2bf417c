"""RGB <-> planar YCbCr files for reference codecs that read and write raw YUV (SHM, HM).

Colour: the **BT.601 matrix, full range** (the JFIF/JPEG convention, also what ``bpgenc`` and the
``x265`` plugin use), generalised to B bits as in the HEVC VUI full-range equations::

    Y  = (2^B - 1)/255 * ( 0.299 R + 0.587 G + 0.114 B)
    Cb = (2^B - 1)/255 * (B - Y') / 1.772 + 2^(B-1)
    Cr = (2^B - 1)/255 * (R - Y') / 1.402 + 2^(B-1)

(Y' the 8-bit-scale luma), rounded and clipped to 0..2^B-1. The inverse applies the exact inverse
matrix and rounds/clips back to 8-bit RGB. At B = 8 this is bit-identical to the x265 plugin's
conversion, so SHVC and x265 curves differ only by the codec.

Chroma: ``444`` keeps full-resolution chroma. ``420`` averages each 2x2 block of the (unrounded)
chroma planes, i.e. chroma sited at the block centre, and upsamples back with the matching bilinear
filter (weights 3/4, 1/4, edges replicated). Both need even sizes for 4:2:0: ``pad_even`` replicates
the last row/column and the caller crops after decoding.

Files: planar Y, Cb, Cr; one byte per sample at 8 bits, little-endian uint16 above 8 bits (the
HM/SHM convention for ``InputBitDepth`` > 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB
# Rows: Y, Cb, Cr as functions of (R, G, B) on the 0..1 scale (chroma centred on 0).
RGB_TO_YCC = np.array(
    [
        [_KR, _KG, _KB],
        [-_KR / (2 * (1 - _KB)), -_KG / (2 * (1 - _KB)), 0.5],
        [0.5, -_KG / (2 * (1 - _KR)), -_KB / (2 * (1 - _KR))],
    ]
)
YCC_TO_RGB = np.linalg.inv(RGB_TO_YCC)

CHROMA_FORMATS = ("444", "420")
BIT_DEPTHS = (8, 10)


@dataclass(frozen=True)
class YuvFormat:
    """Chroma format (``"444"`` or ``"420"``) and bit depth (8 or 10) of a planar YUV file."""

    chroma: str = "444"
    bits: int = 8

    def __post_init__(self) -> None:
        if self.chroma not in CHROMA_FORMATS:
            raise ValueError(f"chroma format must be one of {CHROMA_FORMATS}, got {self.chroma!r}")
        if self.bits not in BIT_DEPTHS:
            raise ValueError(f"bit depth must be one of {BIT_DEPTHS}, got {self.bits!r}")

    @property
    def subsampling(self) -> int:
        """Chroma subsampling factor per dimension (SubWidthC = SubHeightC)."""
        return 2 if self.chroma == "420" else 1

    @property
    def bytes_per_sample(self) -> int:
        return 1 if self.bits == 8 else 2

    @property
    def max_value(self) -> int:
        return (1 << self.bits) - 1

    def chroma_size(self, height: int, width: int) -> tuple[int, int]:
        s = self.subsampling
        return height // s, width // s

    def frame_bytes(self, height: int, width: int) -> int:
        """Bytes of one frame of ``width`` x ``height`` luma samples (sizes must suit the format)."""
        ch, cw = self.chroma_size(height, width)
        return (height * width + 2 * ch * cw) * self.bytes_per_sample


def pad_even(image: np.ndarray) -> np.ndarray:
    """Replicate the last row/column of an (H, W, ...) array so that both sides are even."""
    pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
    if not (pad_h or pad_w):
        return image
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="edge")


def _downsample2(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _upsample2_axis(plane: np.ndarray, axis: int) -> np.ndarray:
    # Centre-sited samples: output 2i sits 1/4 before input i, output 2i+1 1/4 after it.
    padded = np.concatenate(
        [np.take(plane, [0], axis=axis), plane, np.take(plane, [-1], axis=axis)], axis=axis
    )
    n = plane.shape[axis]
    prev = np.take(padded, range(0, n), axis=axis)
    here = np.take(padded, range(1, n + 1), axis=axis)
    nxt = np.take(padded, range(2, n + 2), axis=axis)
    even = 0.25 * prev + 0.75 * here
    odd = 0.75 * here + 0.25 * nxt
    out = np.stack([even, odd], axis=axis + 1)
    shape = list(plane.shape)
    shape[axis] *= 2
    return out.reshape(shape)


def _upsample2(plane: np.ndarray) -> np.ndarray:
    return _upsample2_axis(_upsample2_axis(plane, 0), 1)


def rgb_to_planes(image: np.ndarray, fmt: YuvFormat) -> list[np.ndarray]:
    """RGB uint8 (H, W, 3) -> [Y, Cb, Cr] integer planes (uint16) in ``fmt``.

    For 4:2:0 the image must have even sides (see ``pad_even``).
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    height, width = image.shape[:2]
    if fmt.subsampling == 2 and (height % 2 or width % 2):
        raise ValueError(f"4:2:0 needs even sides, got {width}x{height}; pad with pad_even first")
    scale = fmt.max_value / 255.0
    ycc = (image.astype(np.float64) @ RGB_TO_YCC.T) * scale
    offset = float(1 << (fmt.bits - 1))
    planes = [ycc[..., 0], ycc[..., 1] + offset, ycc[..., 2] + offset]
    if fmt.subsampling == 2:
        planes = [planes[0]] + [_downsample2(p) for p in planes[1:]]
    return [np.clip(np.rint(p), 0, fmt.max_value).astype(np.uint16) for p in planes]


def planes_to_rgb(planes: list[np.ndarray], fmt: YuvFormat) -> np.ndarray:
    """[Y, Cb, Cr] integer planes in ``fmt`` -> RGB uint8 (H, W, 3)."""
    luma = planes[0].astype(np.float64)
    chroma = [p.astype(np.float64) for p in planes[1:]]
    if fmt.subsampling == 2:
        chroma = [_upsample2(p) for p in chroma]
    if any(c.shape != luma.shape for c in chroma):
        raise ValueError(f"chroma planes {[c.shape for c in chroma]} do not match luma {luma.shape}")
    offset = float(1 << (fmt.bits - 1))
    ycc = np.stack([luma, chroma[0] - offset, chroma[1] - offset], axis=-1) * (255.0 / fmt.max_value)
    rgb = ycc @ YCC_TO_RGB.T
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def planes_to_bytes(planes: list[np.ndarray], fmt: YuvFormat) -> bytes:
    """Serialise [Y, Cb, Cr] as one planar frame (uint8, or little-endian uint16 above 8 bits)."""
    dtype = np.uint8 if fmt.bytes_per_sample == 1 else np.dtype("<u2")
    return b"".join(np.ascontiguousarray(p, dtype=dtype).tobytes() for p in planes)


def bytes_to_planes(data: bytes, height: int, width: int, fmt: YuvFormat) -> list[np.ndarray]:
    """Parse one planar frame of ``width`` x ``height`` luma samples; ValueError on a size mismatch."""
    expected = fmt.frame_bytes(height, width)
    if len(data) != expected:
        raise ValueError(
            f"expected one {width}x{height} {fmt.chroma} {fmt.bits}-bit frame of {expected} bytes, "
            f"got {len(data)} bytes"
        )
    dtype = np.uint8 if fmt.bytes_per_sample == 1 else np.dtype("<u2")
    samples = np.frombuffer(data, dtype=dtype)
    ch, cw = fmt.chroma_size(height, width)
    sizes = [height * width, ch * cw, ch * cw]
    shapes = [(height, width), (ch, cw), (ch, cw)]
    planes, start = [], 0
    for size, shape in zip(sizes, shapes):
        planes.append(samples[start : start + size].reshape(shape).astype(np.uint16))
        start += size
    return planes
