"""Reading source images as 8-bit RGB, with a clear error for what bench cannot code faithfully."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench.errors import ImageError

__all__ = ["DEFAULT_MAX_PIXELS", "ImageError", "load_rgb"]

# The largest picture bench reads or decodes unless the user raises it (--max-pixels): about twice the
# largest dataset picture (CLIC 2020 pro-valid, 2048×1367 = 2.8 MP), far below what exhausts memory.
DEFAULT_MAX_PIXELS = 6_000_000


def load_rgb(path: Path) -> np.ndarray:
    """Return ``path`` as an HxWx3 uint8 array.

    Grayscale and palette images are expanded to RGB (lossless); an alpha channel that is fully
    opaque is dropped; real transparency, more than 8 bits per sample and other colour spaces
    (CMYK, …) are refused, because converting them silently would change what is being measured.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
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
            return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    except ImageError:
        raise
    except Exception as error:  # PIL raises many types for damaged files
        raise ImageError(f"{path}: cannot read image ({error})") from error
