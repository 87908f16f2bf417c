"""x265 (HEVC intra through ffmpeg): real encodes of small synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from bench.codec import BitstreamError, CodecError
from bench.codecs import x265 as x265_module
from bench.codecs.x265 import X265Codec, rgb_to_ycbcr, ycbcr_to_rgb
from bench.registry import create_codec

AVAILABILITY = X265Codec().availability()
needs_x265 = pytest.mark.skipif(not AVAILABILITY.available, reason=f"x265 unavailable: {AVAILABILITY.reason}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse > 0 else float("inf")


def smooth_image(height: int, width: int) -> np.ndarray:
    """Gradients and a low-frequency wave: easy to code, so a good codec reaches high PSNR."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 255 * x / max(width - 1, 1)
    green = 255 * y / max(height - 1, 1)
    blue = 127.5 + 100 * np.sin(2 * np.pi * x / width) * np.cos(2 * np.pi * y / height)
    return np.clip(np.rint(np.stack([red, green, blue], axis=-1)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def codec() -> X265Codec:
    return create_codec("x265")  # type: ignore[return-value]


def test_registered_single_layer(codec: X265Codec) -> None:
    assert isinstance(codec, X265Codec)
    assert codec.info.scalable is False and codec.info.max_layers == 1
    assert codec.info.default_qualities == (22, 27, 32, 37, 42, 47)


def test_colour_conversion_is_bt601_full_range() -> None:
    pixels = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]]], dtype=np.uint8)
    ycc = rgb_to_ycbcr(pixels)
    # Full range: white/black reach 255/0 (limited range would give 235/16); greys have neutral chroma.
    assert ycc[0, 0].tolist() == [255, 128, 128]
    assert ycc[0, 1].tolist() == [0, 128, 128]
    # BT.601: Y(red) = 0.299 * 255 = 76.2, Cr(red) = 128 + 127.5 -> 255 after clipping; Y(blue) = 29.07.
    assert ycc[0, 2].tolist() == [76, 85, 255]
    assert ycc[0, 3].tolist() == [29, 255, 107]
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    restored = ycbcr_to_rgb(rgb_to_ycbcr(image))
    assert np.abs(restored.astype(int) - image).max() <= 2
    assert psnr(restored, image) > 50


@needs_x265
def test_round_trip_shape_dtype_and_psnr(codec: X265Codec) -> None:
    image = smooth_image(48, 64)
    encoded = codec.encode([image], 22)
    (decoded,) = codec.decode(encoded.data)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert psnr(decoded, image) > 40


@needs_x265
def test_bits_are_the_real_bytes(codec: X265Codec) -> None:
    image = smooth_image(48, 64)
    encoded = codec.encode([image], 32)
    assert encoded.layer_bytes == [len(encoded.data)]
    # 4-byte size header, then an Annex-B stream starting with a VPS NAL unit (type 32).
    assert encoded.data[:4] == bytes([0, 64, 0, 48])
    assert encoded.data[4:8] == b"\x00\x00\x00\x01"
    assert (encoded.data[8] >> 1) & 0x3F == 32
    # info=0: x265's multi-kilobyte settings SEI must not inflate the rate.
    assert b"x265" not in encoded.data


@needs_x265
def test_lower_qp_gives_more_bytes_and_higher_psnr(codec: X265Codec) -> None:
    image = smooth_image(48, 64)
    results = []
    for qp in (22, 27, 32, 37):
        encoded = codec.encode([image], qp)
        results.append((len(encoded.data), psnr(codec.decode(encoded.data)[0], image)))
    sizes = [size for size, _ in results]
    qualities = [quality for _, quality in results]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4
    assert qualities == sorted(qualities, reverse=True)


@needs_x265
def test_deterministic(codec: X265Codec) -> None:
    image = np.random.default_rng(7).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    assert codec.encode([image], 27).data == codec.encode([image], 27).data


@needs_x265
def test_extremes_survive_without_range_conversion(codec: X265Codec) -> None:
    # A hidden limited<->full range conversion in ffmpeg would move black/white by ~16 levels.
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[16:] = 255
    (decoded,) = codec.decode(codec.encode([image], 12).data)
    assert np.abs(decoded.astype(int) - image).max() <= 3


@needs_x265
@pytest.mark.parametrize("height,width", [(23, 37), (5, 3), (1, 40), (17, 16)])
def test_odd_and_tiny_sizes(codec: X265Codec, height: int, width: int) -> None:
    image = smooth_image(height, width)
    encoded = codec.encode([image], 22)
    (decoded,) = codec.decode(encoded.data)
    assert decoded.shape == (height, width, 3)
    assert psnr(decoded, image) > 35


@needs_x265
def test_bad_bytes_raise_bitstream_error(codec: X265Codec) -> None:
    encoded = codec.encode([smooth_image(48, 64)], 27)
    garbage = bytes([0, 64, 0, 48]) + np.random.default_rng(3).integers(0, 256, 500, dtype=np.uint8).tobytes()
    with pytest.raises(BitstreamError):
        codec.decode(garbage)
    with pytest.raises(BitstreamError):
        codec.decode(encoded.data[:3])
    with pytest.raises(BitstreamError):  # header names another size than the stream holds
        codec.decode(bytes([0, 32, 0, 48]) + encoded.data[4:])
    with pytest.raises(BitstreamError):
        codec.decode(bytes([0, 0, 0, 48]) + encoded.data[4:])


@needs_x265
def test_bad_input_raises_codec_error(codec: X265Codec) -> None:
    image = smooth_image(16, 16)
    with pytest.raises(CodecError, match="single-layer"):
        codec.encode([image, image], 27)
    with pytest.raises(CodecError, match="QP"):
        codec.encode([image], 52)
    with pytest.raises(CodecError, match="QP"):
        codec.encode([image], 27.5)  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="uint8"):
        codec.encode([image.astype(np.float32)], 27)


def test_unavailable_without_ffmpeg(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no ffmpeg anywhere on PATH
    codec = X265Codec()
    status = codec.availability()
    assert not status.available
    assert "ffmpeg not found" in status.reason and "apt-get install ffmpeg" in status.reason
    with pytest.raises(CodecError, match="ffmpeg not found"):
        codec.encode([smooth_image(16, 16)], 27)


def test_unavailable_without_libx265(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    fake = tmp_path / "ffmpeg"  # an ffmpeg whose encoder list has no libx265
    fake.write_text("#!/bin/sh\necho ' V....D libx264  libx264 H.264'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    status = X265Codec().availability()
    assert not status.available and "no libx265" in status.reason


def test_unknown_preset_is_unavailable() -> None:
    status = create_codec("x265:warpspeed").availability()
    assert not status.available and "warpspeed" in status.reason
    assert x265_module.DEFAULT_PRESET in x265_module.PRESETS


@needs_x265
def test_decode_bounds_the_picture_the_header_and_the_stream_claim() -> None:
    """Issue 27: a header claiming a giant picture is refused before ffmpeg runs, and an HEVC stream
    whose SPS is larger than its header's picture is refused by ffmpeg's decoder before it allocates."""
    coder = X265Codec("ultrafast")
    big = coder.encode([smooth_image(240, 320)], 40).data
    small = coder.encode([smooth_image(24, 32)], 40).data
    fresh = X265Codec("ultrafast")
    with pytest.raises(BitstreamError, match="claims a 4096x4096 picture, more than the limit of 6000000"):
        fresh.decode(bytes([16, 0, 16, 0]) + small[4:])
    # the 240x320 stream under a 24x32 header: ffmpeg's max_pixels stops it
    with pytest.raises(BitstreamError, match="exceeds specified max pixel count"):
        fresh.decode(small[:4] + big[4:])
    fresh.max_pixels = 320 * 240 - 1
    with pytest.raises(BitstreamError, match="more than the limit of 76799"):
        fresh.decode(big)
    assert coder.decode(big)[0].shape == (240, 320, 3)  # its own encode is trusted whatever the limit
    for height, width in ((17, 23), (16, 16), (37, 61)):
        data = coder.encode([smooth_image(height, width)], 40).data
        assert X265Codec("ultrafast").decode(data)[0].shape == (height, width, 3)
