"""webp (lossy WebP through Pillow's libwebp): real encodes of small synthetic images."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from bench.codecs.webp import METHOD, WebpCodec
from tests.codecs.still_contract import MissingPillowLibrary, StillCodecContract, smooth_image


class TestWebpContract(StillCodecContract, MissingPillowLibrary):
    name = "webp"
    codec_class = WebpCodec
    default_qualities = (0, 10, 30, 50, 75, 90)
    quality_range = (0, 100)
    higher_is_better = True
    magic = b"RIFF"
    # lossy WebP is 4:2:0 only: a 5x3 picture's two chroma samples cannot follow its colour
    # gradients, whatever the quality
    tiny_min_psnr = 15.0
    pillow_feature = "webp"

    def reference_decode(self, data: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_a_simple_lossy_riff_file() -> None:
    image = smooth_image(48, 64)
    data = WebpCodec().encode([image], 50).data
    # RIFF size, WEBP form, one lossy "VP8 " chunk (not VP8L lossless, not the VP8X extended format
    # with its extra chunks) that fills the file: 20 bytes of container headers in all
    assert data[8:16] == b"WEBPVP8 "
    assert int.from_bytes(data[4:8], "little") == len(data) - 8
    chunk = int.from_bytes(data[16:20], "little")
    assert 20 + chunk + (chunk & 1) == len(data)
    # the VP8 key frame header carries the size: 64x48
    assert data[23:26] == b"\x9d\x01\x2a"
    assert int.from_bytes(data[26:28], "little") & 0x3FFF == 64
    assert int.from_bytes(data[28:30], "little") & 0x3FFF == 48
    # exactly what Pillow's libwebp writes with these settings
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "WEBP", quality=50, method=METHOD)
    assert buffer.getvalue() == data
    assert METHOD == 6
