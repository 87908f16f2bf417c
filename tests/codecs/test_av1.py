"""av1 (AV1 intra still picture, 4:4:4, libaom through ffmpeg): real encodes of small synthetic images."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from bench.codec import BitstreamError
from bench.codecs.av1 import Av1Codec, parse_y4m_444
from bench.codecs.still import ffmpeg_binary, ffmpeg_has_decoder
from bench.codecs.x265 import rgb_to_ycbcr, ycbcr_to_rgb
from tests.codecs.still_contract import MissingFfmpegEncoder, StillCodecContract, smooth_image

AVAILABILITY = Av1Codec().availability()
needs_av1 = pytest.mark.skipif(not AVAILABILITY.available, reason=f"av1 unavailable: {AVAILABILITY.reason}")


def obus(data: bytes) -> list[tuple[int, bytes]]:
    """(type, payload) of each OBU of a low-overhead AV1 stream (every OBU carries its size)."""
    units, position = [], 0
    while position < len(data):
        header = data[position]
        assert header & 0x02, "every OBU has obu_has_size_field set"
        position += 2 if header & 0x04 else 1  # an extension byte follows when its flag is set
        size = shift = 0
        while True:  # leb128
            byte = data[position]
            position += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        units.append(((header >> 3) & 0x0F, data[position : position + size]))
        position += size
    assert position == len(data)
    return units


class TestAv1Contract(StillCodecContract, MissingFfmpegEncoder):
    name = "av1"
    codec_class = Av1Codec
    default_qualities = (20, 30, 38, 46, 54, 61)
    quality_range = (0, 63)
    higher_is_better = False  # the quality is libaom's crf
    magic = b"\x12\x00\x0a"  # an empty temporal delimiter OBU, then the sequence header OBU
    ffmpeg_encoder = "libaom-av1"

    def reference_decode(self, data: bytes) -> np.ndarray:
        # libaom's own decoder, where the plugin prefers dav1d: AV1 decoding is bit-exact by
        # specification, so two decoders must give the same samples
        if not ffmpeg_has_decoder("libaom-av1"):
            pytest.skip("ffmpeg has no libaom-av1 decoder to compare with")
        height, width = 48, 64
        raw = subprocess.run(
            [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-c:v", "libaom-av1", "-f", "obu",
             "-i", "pipe:", "-f", "rawvideo", "-pix_fmt", "yuv444p", "pipe:"],
            input=data, capture_output=True, check=True,
        ).stdout  # fmt: skip
        ycc = np.frombuffer(raw, dtype=np.uint8).reshape(3, height, width).transpose(1, 2, 0)
        return ycbcr_to_rgb(ycc)


@needs_av1
def test_one_still_picture_in_profile_1() -> None:
    units = obus(Av1Codec().encode([smooth_image(48, 64)], 38).data)
    # temporal delimiter, sequence header, one frame: nothing else is counted
    assert [kind for kind, _ in units] == [2, 1, 6]
    sequence_header = units[1][1]
    assert sequence_header[0] >> 5 == 1  # seq_profile 1 (high): 8-bit 4:4:4
    assert sequence_header[0] >> 4 & 1 == 1  # still_picture
    assert sequence_header[0] >> 3 & 1 == 1  # reduced_still_picture_header: one key frame


@needs_av1
def test_crf_0_is_lossless_on_the_bt601_samples() -> None:
    # lossless AV1 returns exactly the YCbCr samples it was given, so the only loss left is the
    # numpy colour conversion shared with x265: no hidden range conversion by ffmpeg (which would
    # move black and white by ~16 levels)
    image = smooth_image(32, 48)
    image[:8] = 0
    image[-8:] = 255
    (decoded,) = Av1Codec().decode(Av1Codec().encode([image], 0).data)
    assert np.array_equal(decoded, ycbcr_to_rgb(rgb_to_ycbcr(image)))


def test_parse_y4m_444() -> None:
    planes = np.arange(2 * 3 * 3, dtype=np.uint8)
    header = b"YUV4MPEG2 W3 H2 F25:1 Ip A1:1 C444 XCOLORRANGE=FULL\nFRAME\n"
    ycc = parse_y4m_444(header + planes.tobytes())
    assert ycc.shape == (2, 3, 3) and ycc[1, 2].tolist() == [5, 11, 17]  # planar Y, Cb, Cr
    with pytest.raises(BitstreamError, match="not 8-bit 4:4:4"):
        parse_y4m_444(header.replace(b"C444", b"C444p10") + planes.tobytes())
    with pytest.raises(BitstreamError, match="not 8-bit 4:4:4"):
        parse_y4m_444(header.replace(b" C444", b"") + planes.tobytes())  # no C: 4:2:0 by default
    with pytest.raises(BitstreamError, match="expected one 3x2"):
        parse_y4m_444(header + planes.tobytes() * 2)  # a second frame
    with pytest.raises(BitstreamError, match="YUV4MPEG2"):
        parse_y4m_444(planes.tobytes())
