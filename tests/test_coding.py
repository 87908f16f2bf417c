"""bench.tools.coding: ``bench encode``/``bench decode`` as functions with typed results (no printing, no exit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.errors import ConfigError, EnvelopeError, UsageError
from bench.pyramid import Anchoring, build_pyramid
from bench.registry import _REGISTRY, register_codec
from bench.storage.envelope import unpack
from bench.tools.coding import DecodeResult, EncodeResult, decode_file, encode_image, layer_paths
from tests.fake_codecs import RawCodec

RAW = "test-coding-raw"


@pytest.fixture(autouse=True)
def raw_codec():
    register_codec(RAW)(RawCodec)  # lossless: decoded pixels must equal the coded ones exactly
    yield
    _REGISTRY.pop(RAW, None)


@pytest.fixture
def picture(tmp_path: Path) -> tuple[Path, np.ndarray]:
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    path = tmp_path / "picture.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def test_a_single_layer_round_trip(tmp_path: Path, picture) -> None:
    image, pixels = picture
    encoded = encode_image(image, tmp_path / "one.bin", RAW, 1)
    assert isinstance(encoded, EncodeResult)
    assert encoded.path == tmp_path / "one.bin" and encoded.codec == RAW and encoded.quality == 1
    assert encoded.sizes == ((24, 32),)
    assert encoded.layer_bytes == (4 + 24 * 32 * 3,)  # RawCodec: a 4-byte size header and the pixels
    assert encoded.file_bytes == (tmp_path / "one.bin").stat().st_size > encoded.layer_bytes[0]
    assert encoded.cumulative_bpp == ((4 + 24 * 32 * 3) * 8 / (24 * 32),)
    header = unpack((tmp_path / "one.bin").read_bytes()).header
    assert header["codec"] == RAW and header["sizes"] == [[24, 32]] and header["scales"] == ""

    decoded = decode_file(tmp_path / "one.bin", tmp_path / "out")
    assert isinstance(decoded, DecodeResult)
    assert decoded.paths == (tmp_path / "out_L0.png",) and decoded.sizes == ((24, 32),)
    assert decoded.codec == RAW and decoded.total_layers == 1
    np.testing.assert_array_equal(decoded.layers[0], pixels)
    np.testing.assert_array_equal(np.asarray(Image.open(decoded.paths[0])), pixels)


def test_a_scalable_round_trip_and_a_prefix_decode(tmp_path: Path, picture) -> None:
    image, pixels = picture
    spec = f"simulcast:{RAW}"
    encoded = encode_image(str(image), str(tmp_path / "two.bin"), spec, 1, scales="2", anchor="top")
    assert encoded.path == tmp_path / "two.bin" and encoded.sizes == ((12, 16), (24, 32))
    assert len(encoded.layer_bytes) == 2 and all(n > 4 + h * w * 3 for n, (h, w) in
                                                 zip(encoded.layer_bytes, encoded.sizes))
    base, top = encoded.layer_bytes
    assert encoded.cumulative_bpp == (base * 8 / (12 * 16), (base + top) * 8 / (24 * 32))
    header = unpack((tmp_path / "two.bin").read_bytes()).header
    assert (header["scales"], header["anchor"], header["layer_bytes"]) == ("2", "top", [base, top])

    expected = build_pyramid(pixels, (2.0,), Anchoring.parse("top"))
    full = decode_file(tmp_path / "two.bin", tmp_path / "full")
    assert full.paths == tuple(layer_paths(tmp_path / "full", 2)) and full.sizes == ((12, 16), (24, 32))
    assert full.total_layers == 2
    for layer, want in zip(full.layers, expected):
        np.testing.assert_array_equal(layer, want)
    base_only = decode_file(tmp_path / "two.bin", tmp_path / "base", layers=1)
    assert base_only.paths == (tmp_path / "base_L0.png",) and base_only.total_layers == 2
    np.testing.assert_array_equal(base_only.layers[0], expected[0])
    assert not (tmp_path / "base_L1.png").exists()


def test_bad_arguments_are_bench_errors_before_anything_is_written(tmp_path: Path, picture) -> None:
    image, _ = picture
    with pytest.raises(UsageError, match="single-layer codec; --scales needs a scalable codec"):
        encode_image(image, tmp_path / "x.bin", RAW, 1, scales="2")
    with pytest.raises(UsageError, match="is the input image"):
        encode_image(image, image, RAW, 1)
    with pytest.raises(UsageError, match="folder .* does not exist"):
        encode_image(image, tmp_path / "missing" / "x.bin", RAW, 1)
    with pytest.raises(ConfigError, match="use cpu or cuda"):
        encode_image(image, tmp_path / "x.bin", RAW, 1, device="gpu")
    assert not (tmp_path / "x.bin").exists()

    encode_image(image, tmp_path / "one.bin", RAW, 1)
    for kwargs, message in (({"layers": 0}, "at least 1, got 0"), ({"layers": 2}, "between 1 and 1"),
                            ({"max_pixels": 0}, "at least 1, got 0"), ({"codec": "jpeg"}, "not the file's codec")):
        with pytest.raises(UsageError, match=message):
            decode_file(tmp_path / "one.bin", tmp_path / "d", **kwargs)
    with pytest.raises(EnvelopeError, match="768 pixels, more than --max-pixels 767"):
        decode_file(tmp_path / "one.bin", tmp_path / "d", max_pixels=767)
    with pytest.raises(UsageError, match="no such bitstream file"):
        decode_file(tmp_path / "none.bin", tmp_path / "d")
    assert not list(tmp_path.glob("d_L*"))
    assert decode_file(tmp_path / "one.bin", tmp_path / "d", max_pixels=768).sizes == ((24, 32),)


def test_the_coding_module_names_no_codec() -> None:
    from tests.test_codec import NAMES, REPO, _code_lines

    assert [(n, line) for n, line in _code_lines(REPO / "bench" / "tools" / "coding.py") if NAMES.search(line)] == []
