"""jpeg2000 (lossy JPEG 2000 through Pillow's OpenJPEG): real encodes of small synthetic images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bench.codec import BitstreamError, CodecError
from bench.codecs.jpeg2000 import Jpeg2000Codec, resolution_levels, strip_comments
from tests.codecs.still_contract import MissingPillowLibrary, StillCodecContract, smooth_image
from tests.conftest import synthetic_image


def main_header(codestream: bytes) -> dict[int, bytes]:
    """Marker code (second byte) -> payload of each main-header segment between SOC and SOT."""
    segments, position = {}, 2
    while codestream[position : position + 2] != b"\xff\x90":
        code, length = codestream[position + 1], int.from_bytes(codestream[position + 2 : position + 4], "big")
        segments[code] = codestream[position + 4 : position + 2 + length]
        position += 2 + length
    return segments


class TestJpeg2000Contract(StillCodecContract, MissingPillowLibrary):
    name = "jpeg2000"
    codec_class = Jpeg2000Codec
    default_qualities = (300, 150, 80, 40, 24, 14)
    quality_range = (1, 1000)
    higher_is_better = False  # the quality is a compression ratio
    magic = b"\xff\x4f\xff\x51"  # SOC, then SIZ
    pillow_feature = "jpg_2000"

    def reference_decode(self, data: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_lossy_settings_in_the_main_header() -> None:
    data = Jpeg2000Codec().encode([smooth_image(48, 64)], 24).data
    header = main_header(data)
    siz, cod = header[0x51], header[0x52]
    assert int.from_bytes(siz[2:6], "big") == 64 and int.from_bytes(siz[6:10], "big") == 48  # Xsiz, Ysiz
    assert int.from_bytes(siz[34:36], "big") == 3  # three components, 8-bit each
    assert cod[1] == 0 and int.from_bytes(cod[2:4], "big") == 1  # LRCP, one quality layer
    assert cod[4] == 1  # multiple component transform: RGB -> YCbCr (ICT with the 9/7 wavelet)
    assert cod[5] == 5 and cod[6:8] == bytes([4, 4])  # 5 decompositions (6 levels), 64x64 code-blocks
    assert cod[9] == 0  # the irreversible 9/7 wavelet (1 would be the reversible 5/3)
    assert 0x64 not in header and b"OpenJPEG" not in data  # the comment segment is gone
    assert data.endswith(b"\xff\xd9")


def test_bytes_are_openjpeg_output_without_its_comment() -> None:
    image = smooth_image(48, 64)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG2000", no_jp2=True, irreversible=True, mct=1,
                                quality_mode="rates", quality_layers=[24], num_resolutions=6)  # fmt: skip
    raw = buffer.getvalue()
    comment = raw.index(b"\xff\x64")
    length = int.from_bytes(raw[comment + 2 : comment + 4], "big")
    assert b"Created by OpenJPEG" in raw[comment : comment + 2 + length]
    data = Jpeg2000Codec().encode([image], 24).data
    assert data == raw[:comment] + raw[comment + 2 + length :]


@pytest.mark.parametrize("ratio", [12, 24, 48])
def test_quality_is_a_compression_ratio(ratio: int) -> None:
    image = synthetic_image(128, 128, 4)
    target = image.size / ratio  # raw 24-bit bytes / ratio
    size = len(Jpeg2000Codec().encode([image], ratio).data)
    assert 0.8 * target < size <= target


def test_resolution_levels_fit_the_image() -> None:
    assert resolution_levels(512, 768) == 6 and resolution_levels(32, 40) == 6
    assert resolution_levels(31, 40) == 5  # 31 cannot be halved 5 times
    assert resolution_levels(1, 40) == 1 and resolution_levels(5, 3) == 2


def test_strip_comments() -> None:
    siz, com, cod = b"\xff\x51\x00\x04ab", b"\xff\x64\x00\x06\x00\x01hi", b"\xff\x52\x00\x03c"
    tile = b"\xff\x90\x00\x0a tile data \xff\xd9"
    assert strip_comments(b"\xff\x4f" + siz + com + cod + tile) == b"\xff\x4f" + siz + cod + tile
    assert strip_comments(b"\xff\x4f" + siz + tile) == b"\xff\x4f" + siz + tile
    with pytest.raises(CodecError, match="SOC"):
        strip_comments(siz + tile)
    with pytest.raises(CodecError, match="malformed"):
        strip_comments(b"\xff\x4f" + siz + b"\x00\x00")


def openjpeg_decodes(data: bytes) -> bool:
    try:
        Image.open(io.BytesIO(data)).load()
    except OSError:
        return False
    return True


def test_cut_streams_are_refused_though_openjpeg_decodes_some() -> None:
    codec = Jpeg2000Codec()
    data = codec.encode([synthetic_image(48, 64, 3)], 40).data
    cuts = [data[: len(data) * eighths // 8] for eighths in range(2, 8)]
    # OpenJPEG alone decodes some prefixes of the embedded stream (at a lower quality)
    assert any(openjpeg_decodes(cut) for cut in cuts)
    for cut in cuts:
        with pytest.raises(BitstreamError, match="EOC"):
            codec.decode(cut)
