"""Reading source images as 8-bit RGB, with a clear error for what bench cannot code faithfully."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from bench.errors import ImageError

__all__ = ["DEFAULT_MAX_PIXELS", "ImageError", "check_size", "image_size", "load_rgb"]

# The largest picture bench reads or decodes unless the user raises it (--max-pixels): about twice the
# largest dataset picture (CLIC 2020 pro-valid, 2048×1367 = 2.8 MP), far below what exhausts memory.
DEFAULT_MAX_PIXELS = 6_000_000


# Image.MAX_IMAGE_PIXELS is process-wide: lifted only while a header is read, one reader at a time.
_HEADER_LOCK = threading.Lock()


@contextmanager
def _open_header(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` (reads the header, not the pixels) with Pillow's own size limit lifted: the
    caller checks the size against ``max_pixels`` itself, with a message that names the option, and
    a user who raised ``--max-pixels`` past Pillow's 179 MP must not be refused by Pillow instead."""
    with _HEADER_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with image:
        yield image


def check_size(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    """ImageError when a ``width`` x ``height`` picture is above ``max_pixels`` (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(f"{path}: {width}x{height} = {width * height / 1e6:.1f} MP is above the limit of "
                         f"{max_pixels:,} pixels ({max_pixels / 1e6:g} MP); raise --max-pixels to code it")


def image_size(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` of the picture at ``path`` from its header, without decoding its pixels;
    ImageError when it cannot be read or is above ``max_pixels`` (``check_size``)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        with _open_header(path) as image:
            width, height = image.size
    except Exception as error:  # PIL raises many types for damaged files
        raise ImageError(f"{path}: cannot read image ({error})") from error
    check_size(path, width, height, max_pixels)
    return width, height


def load_rgb(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return ``path`` as an HxWx3 uint8 array.

    Grayscale and palette images are expanded to RGB (lossless); an alpha channel that is fully
    opaque is dropped; real transparency, more than 8 bits per sample, other colour spaces
    (CMYK, …) and files of several frames (APNG, GIF, TIFF pages) are refused, because converting
    or choosing silently would change what is being measured. A picture above ``max_pixels`` (None:
    no limit) is refused from its header, before its pixels are decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        with _open_header(path) as image:
            check_size(path, *image.size, max_pixels)
            frames = getattr(image, "n_frames", 1)
            if frames > 1:  # coding frame 0 alone would benchmark a picture nobody chose
                raise ImageError(f"{path}: the file holds {frames} frames ({image.format}); bench codes "
                                 "single pictures: extract the frame to code as a PNG first")
            # PIL opens 16-bit RGB(A) PNGs as 8-bit "RGB"/"RGBA" and drops the low bytes; only the
            # decoder's raw mode (e.g. "RGB;16B"), known before load(), tells.
            wide = any(";16" in str(tile[3]) for tile in image.tile)
            image.load()
            mode = image.mode
            if wide or mode in ("I;16", "I;16B", "I;16L", "I", "F") or (image.info.get("bits", 8) > 8):
                raise ImageError(f"{path}: {mode} images with more than 8 bits per sample are not supported")
            if mode in ("CMYK", "YCbCr", "LAB", "HSV"):  # a colour conversion would be part of the result
                raise ImageError(f"{path}: {mode} images are not supported; convert to RGB first")
            if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
                rgba = np.asarray(image.convert("RGBA"))
                if (rgba[..., 3] != 255).any():
                    raise ImageError(f"{path}: the image has transparent pixels; bench codes opaque RGB only")
                return np.ascontiguousarray(rgba[..., :3])
            # an RGB image needs no convert(), which would be a second full copy in Pillow's memory
            return np.ascontiguousarray(np.asarray(image if mode == "RGB" else image.convert("RGB")))
    except ImageError:
        raise
    except Exception as error:  # PIL raises many types for damaged files
        raise ImageError(f"{path}: cannot read image ({error})") from error
