"""jpeg (baseline JPEG 4:4:4 through Pillow's libjpeg): real encodes of small synthetic images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bench.codec import BitstreamError
from bench.codecs.jpeg import JpegCodec
from tests.codecs.still_contract import MissingPillowLibrary, StillCodecContract, smooth_image


def markers(data: bytes) -> dict[int, bytes]:
    """Marker code -> payload of each header segment before the entropy-coded data (SOS)."""
    segments, position = {}, 2  # after SOI
    while position < len(data):
        code, length = data[position + 1], int.from_bytes(data[position + 2 : position + 4], "big")
        segments[code] = data[position + 4 : position + 2 + length]
        if code == 0xDA:  # SOS: entropy-coded data follows
            break
        position += 2 + length
    return segments


class TestJpegContract(StillCodecContract, MissingPillowLibrary):
    name = "jpeg"
    codec_class = JpegCodec
    default_qualities = (5, 10, 20, 40, 70, 90)
    quality_range = (1, 100)
    higher_is_better = True
    magic = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"  # SOI, then the JFIF APP0 segment
    pillow_feature = "jpg"

    def reference_decode(self, data: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_baseline_444_with_optimised_huffman_tables() -> None:
    codec = JpegCodec()
    image = smooth_image(48, 64)
    data = codec.encode([image], 40).data
    segments = markers(data)
    assert 0xC0 in segments and 0xC2 not in segments  # SOF0 baseline, not progressive
    sof = segments[0xC0]
    assert sof[:5] == bytes([8, 0, 48, 0, 64])  # 8-bit precision, height 48, width 64
    # three components, each sampled 1x1: 4:4:4, no chroma subsampling
    assert sof[5] == 3 and [sof[6 + 3 * c + 1] for c in range(3)] == [0x11, 0x11, 0x11]
    assert data.endswith(b"\xff\xd9")  # EOI: the complete file is the bitstream
    # the bytes are exactly what Pillow's libjpeg writes with these settings, and optimize=True
    # (image-specific Huffman tables) makes them smaller than the standard tables
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=40, subsampling=0, optimize=True)
    assert buffer.getvalue() == data
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=40, subsampling=0)
    assert len(buffer.getvalue()) > len(data)


def test_quality_100_is_close_to_lossless() -> None:
    image = smooth_image(32, 32)
    (decoded,) = JpegCodec().decode(JpegCodec().encode([image], 100).data)
    assert np.abs(decoded.astype(int) - image).max() <= 4


def test_a_header_claiming_a_giant_image_is_refused_before_decoding() -> None:
    data = bytearray(JpegCodec().encode([smooth_image(48, 64)], 40).data)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (10000).to_bytes(2, "big") * 2  # 10000x10000: 100 M pixels
    with pytest.raises(BitstreamError, match="decompression bomb"):
        JpegCodec().decode(bytes(data))
