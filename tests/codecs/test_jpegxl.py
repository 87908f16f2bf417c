"""jpegxl (lossy JPEG XL, libjxl through ffmpeg): real encodes of small synthetic images."""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.codec import BitstreamError
from bench.codecs.jpegxl import MAX_DISTANCE, JpegXlCodec, parse_pam_rgb, quality_to_distance
from bench.codecs.still import ffmpeg_binary
from tests.codecs.still_contract import MissingFfmpegEncoder, StillCodecContract, smooth_image

AVAILABILITY = JpegXlCodec().availability()
needs_jpegxl = pytest.mark.skipif(not AVAILABILITY.available, reason=f"jpegxl unavailable: {AVAILABILITY.reason}")


class TestJpegXlContract(StillCodecContract, MissingFfmpegEncoder):
    name = "jpegxl"
    codec_class = JpegXlCodec
    default_qualities = (11, 40, 62, 78, 88, 94)
    quality_range = (11, 100)
    higher_is_better = True
    magic = b"\xff\x0a"  # the bare codestream's signature
    ffmpeg_encoder = "libjxl"

    def reference_decode(self, data: bytes) -> np.ndarray:
        # libjxl through another output path: ffmpeg writes a PNG, Pillow reads it
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "in.jxl"
            path.write_bytes(data)
            png = subprocess.run(
                [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-c:v", "libjxl", "-i", str(path),
                 "-f", "image2pipe", "-c:v", "png", "-pix_fmt", "rgb24", "pipe:"],
                capture_output=True, check=True,
            ).stdout  # fmt: skip
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_quality_maps_to_cjxl_distances() -> None:
    assert quality_to_distance(100) == 0.0  # lossless
    assert quality_to_distance(90) == pytest.approx(1.0)  # "visually lossless"
    assert quality_to_distance(30) == pytest.approx(6.4)  # where the two pieces meet
    assert quality_to_distance(0) == 25.0 and quality_to_distance(20) == pytest.approx(9.0667, abs=1e-4)
    # the lowest quality is the last whose distance ffmpeg's wrapper accepts
    assert quality_to_distance(11) <= MAX_DISTANCE < quality_to_distance(10)
    assert JpegXlCodec.info.quality_range == (11, 100)


@needs_jpegxl
def test_quality_100_is_lossless() -> None:
    image = smooth_image(24, 40)
    (decoded,) = JpegXlCodec().decode(JpegXlCodec().encode([image], 100).data)
    assert np.array_equal(decoded, image)


def test_parse_pam_rgb() -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8)
    header = b"P7\nWIDTH 3\nHEIGHT 2\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n"
    image = parse_pam_rgb(header + pixels.tobytes())
    assert image.shape == (2, 3, 3) and image[1, 2].tolist() == [15, 16, 17]  # interleaved RGB
    alpha = header.replace(b"DEPTH 3", b"DEPTH 4").replace(b"RGB", b"RGB_ALPHA")
    with pytest.raises(BitstreamError, match="not 8-bit RGB"):
        parse_pam_rgb(alpha + pixels.tobytes())
    with pytest.raises(BitstreamError, match="not 8-bit RGB"):
        parse_pam_rgb(header.replace(b"MAXVAL 255", b"MAXVAL 65535") + pixels.tobytes())
    with pytest.raises(BitstreamError, match="expected one 3x2"):
        parse_pam_rgb(header + pixels.tobytes()[:-1])
    with pytest.raises(BitstreamError, match="PAM"):
        parse_pam_rgb(b"P6\n3 2\n255\n" + pixels.tobytes())
