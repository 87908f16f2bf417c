"""Reading source images: what is expanded losslessly to RGB, and what is refused with a clear error."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.images import ImageError, load_rgb

from .conftest import synthetic_image


def _png_rgb16(path: Path, height: int, width: int, alpha: bool = False) -> None:
    """A 16-bit-per-sample RGB(A) PNG written by hand (PIL cannot write one)."""
    channels = 4 if alpha else 3
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 65536, (height, width, channels), dtype=np.uint16)
    if alpha:
        samples[..., 3] = 65535  # fully opaque: only the bit depth is wrong
    samples = samples.reshape(height, width * channels).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in samples)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour_type = 6 if alpha else 2
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_rgb_png_round_trip(tmp_path: Path) -> None:
    image = synthetic_image(12, 17, seed=1)
    Image.fromarray(image).save(tmp_path / "a.png")
    loaded = load_rgb(tmp_path / "a.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (12, 17, 3) and loaded.flags.c_contiguous
    np.testing.assert_array_equal(loaded, image)


def test_grayscale_expands_to_rgb(tmp_path: Path) -> None:
    gray = synthetic_image(10, 14)[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    loaded = load_rgb(tmp_path / "g.png")
    assert loaded.shape == (10, 14, 3)
    for channel in range(3):
        np.testing.assert_array_equal(loaded[..., channel], gray)


def test_palette_expands_to_rgb(tmp_path: Path) -> None:
    image = Image.fromarray(synthetic_image(10, 14)).quantize(colors=16)
    image.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(load_rgb(tmp_path / "p.png"), np.asarray(image.convert("RGB")))


def test_opaque_rgba_is_accepted(tmp_path: Path) -> None:
    rgb = synthetic_image(10, 14, seed=2)
    rgba = np.concatenate([rgb, np.full((10, 14, 1), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "o.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "o.png"), rgb)


def test_transparent_rgba_is_refused(tmp_path: Path) -> None:
    rgba = np.concatenate([synthetic_image(10, 14), np.full((10, 14, 1), 255, np.uint8)], axis=-1)
    rgba[3, 4, 3] = 254  # one pixel not fully opaque is enough
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    with pytest.raises(ImageError, match="transparent") as caught:
        load_rgb(tmp_path / "t.png")
    assert "t.png" in str(caught.value)


def test_palette_with_transparent_entry_is_refused(tmp_path: Path) -> None:
    image = Image.fromarray(synthetic_image(10, 14)).quantize(colors=8)
    index = np.asarray(image)[0, 0]
    image.save(tmp_path / "pt.png", transparency=int(index))
    with pytest.raises(ImageError, match="transparent"):
        load_rgb(tmp_path / "pt.png")


def test_16bit_grayscale_png_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / "g16.png")
    with pytest.raises(ImageError, match="8 bits"):
        load_rgb(tmp_path / "g16.png")


@pytest.mark.parametrize("alpha", [False, True], ids=["rgb48", "rgba64"])
def test_16bit_colour_png_is_refused(tmp_path: Path, alpha: bool) -> None:
    # PIL opens these as 8-bit "RGB"/"RGBA" and silently drops the low byte of every sample, so the
    # source would not be what the user gave: it must be refused like 16-bit grayscale.
    path = tmp_path / "c16.png"
    _png_rgb16(path, 8, 8, alpha=alpha)
    with pytest.raises(ImageError, match="8 bits"):
        load_rgb(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found"):
        load_rgb(tmp_path / "nope.png")


@pytest.mark.parametrize("content", [b"", b"garbage, not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_garbage_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="cannot read") as caught:
        load_rgb(path)
    assert "bad.png" in str(caught.value)


def test_truncated_png(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    Image.fromarray(synthetic_image(64, 64, seed=5)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageError, match="cut.png"):
        load_rgb(path)


def test_cmyk_is_refused_rather_than_converted(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 12), (10, 20, 30, 40)).save(path)
    with pytest.raises(ImageError, match="CMYK images are not supported"):
        load_rgb(path)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels but whose data holds a few bytes:
    reading its size is cheap, decoding it would fail (or allocate the claimed size first)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))


def test_a_picture_above_the_default_limit_is_refused_from_its_header(tmp_path: Path, monkeypatch) -> None:
    from bench.images import DEFAULT_MAX_PIXELS

    path = tmp_path / "large.png"
    _png_header_only(path, 3000, DEFAULT_MAX_PIXELS // 3000 + 1)

    def never(self, *args, **kwargs):
        raise AssertionError("the pixels were decoded before the size was checked")

    monkeypatch.setattr(Image.Image, "load", never)
    monkeypatch.setattr(Image.Image, "convert", never)
    with pytest.raises(ImageError, match=r"large\.png: 3000x2001 = 6\.0 MP is above the limit of 6,000,000 "
                                         r"pixels .*raise --max-pixels"):
        load_rgb(path)
    with pytest.raises(ImageError, match="above the limit of 100 pixels"):
        load_rgb(path, max_pixels=100)


def test_a_raised_limit_lets_a_picture_past_pillows_own_bomb_limit(tmp_path: Path) -> None:
    """Pillow refuses above 179 MP by itself; a user who raised --max-pixels gets past that check
    (this file then fails for its missing data, not its size), and the default refuses it with
    bench's message, not Pillow's."""
    from bench.images import image_size

    path = tmp_path / "huge.png"
    _png_header_only(path, 20_000, 10_000)  # 200 MP
    with pytest.raises(ImageError, match=r"20000x10000 = 200\.0 MP is above the limit"):
        load_rgb(path)
    assert image_size(path, max_pixels=None) == (20_000, 10_000)
    with pytest.raises(ImageError) as caught:
        load_rgb(path, max_pixels=300_000_000)
    assert "cannot read image" in str(caught.value) and "bomb" not in str(caught.value)


def test_a_picture_at_the_limit_is_read(tmp_path: Path) -> None:
    image = synthetic_image(20, 30, seed=4)
    Image.fromarray(image).save(tmp_path / "small.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "small.png", max_pixels=600), image)


@pytest.mark.parametrize("suffix", ["png", "gif", "tiff"])
def test_a_file_of_several_frames_is_refused(tmp_path: Path, suffix: str) -> None:
    frames = [Image.fromarray(synthetic_image(16, 16, seed=k)) for k in range(2)]
    if suffix == "gif":
        frames = [frame.convert("P") for frame in frames]
    path = tmp_path / f"animated.{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match=r"animated\.\w+: the file holds 2 frames .*single pictures"):
        load_rgb(path)
    single = tmp_path / f"single.{suffix}"
    frames[0].save(single)
    assert load_rgb(single).shape == (16, 16, 3)
