"""Layer pyramids: sizes under both anchorings, PIL bicubic from the source, errors, the disk cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.pyramid import (
    MIN_LAYER_SIDE,
    Anchoring,
    PyramidError,
    build_pyramid,
    cached_pyramid,
    format_scales,
    layer_sizes,
    parse_scales,
)

from .conftest import synthetic_image


def test_base_anchoring_kodak_paper_protocol() -> None:
    # harness.md: the COMPASS paper's "2 layers x1.2" on Kodak (768x512) codes 192x128 and 230x153.
    sizes = layer_sizes(512, 768, (1.2,), "base:0.25")
    assert sizes == [(128, 192), (153, 230)]  # (height, width)


def test_top_anchoring_odd_source_non_integer_scales() -> None:
    # 767x511 source, ratios 1.33 then 1.5 (hand computed):
    #   a_0 = 1/(1.33*1.5) = 0.50125..: 511*a_0 = 256.14, 767*a_0 = 384.46
    #   a_1 = 1/1.5:                    511/1.5 = 340.67, 767/1.5 = 511.33
    sizes = layer_sizes(511, 767, (1.33, 1.5), "top")
    assert sizes == [(256, 384), (340, 511), (511, 767)]


def test_base_anchoring_odd_source_non_integer_scales() -> None:
    # f = 0.25, 0.25*1.33 = 0.3325, 0.3325*1.5 = 0.49875 of 767x511, truncated: never a full-size top layer.
    sizes = layer_sizes(511, 767, (1.33, 1.5), Anchoring.parse("base:0.25"))
    assert sizes == [(127, 191), (169, 255), (254, 382)]


def test_sizes_use_exact_arithmetic_where_floats_fall_just_short() -> None:
    # 768 / (1.6·1.6) = 300 exactly; in floats 768·(1/2.56) = 299.99999… and int() gave 299
    assert layer_sizes(768, 512, (1.6, 1.6))[0] == (300, 200)
    assert layer_sizes(1365, 2048, (1.2, 1.3))[0] == (875, 1312)  # 2048/1.56 = 1312.8; 1365/1.56 = 875
    assert layer_sizes(1360, 2040, (1.4,), "base:0.25")[1] == (476, 714)  # 0.35·1360 = 476 exactly
    assert layer_sizes(768, 512, (1.5, 1.6)) == [(320, 213), (480, 320), (768, 512)]


def test_top_anchoring_integer_ratios_on_odd_size() -> None:
    assert layer_sizes(49, 65, (2, 2)) == [(12, 16), (24, 32), (49, 65)]


def test_build_pyramid_uses_pil_bicubic_from_the_source_and_keeps_the_top() -> None:
    source = synthetic_image(51, 77, seed=3)
    layers = build_pyramid(source, (1.33, 1.5), "top")
    assert [layer.shape for layer in layers] == [(25, 38, 3), (34, 51, 3), (51, 77, 3)]
    assert all(layer.dtype == np.uint8 for layer in layers)
    np.testing.assert_array_equal(layers[-1], source)
    assert layers[-1] is not source  # a copy: a codec scribbling on it cannot damage the source
    for layer in layers[:-1]:
        height, width = layer.shape[:2]
        # Resized directly from the source (not from the layer above), PIL bicubic.
        expected = np.asarray(Image.fromarray(source).resize((width, height), Image.Resampling.BICUBIC))
        np.testing.assert_array_equal(layer, expected)
        other = np.asarray(Image.fromarray(source).resize((width, height), Image.Resampling.BILINEAR))
        assert not np.array_equal(layer, other)


def test_base_pyramid_resizes_every_layer_from_the_source() -> None:
    source = synthetic_image(64, 96, seed=4)
    layers = build_pyramid(source, (1.2,), "base:0.25")
    assert [layer.shape[:2] for layer in layers] == [(16, 24), (19, 28)]
    for layer in layers:
        height, width = layer.shape[:2]
        expected = np.asarray(Image.fromarray(source).resize((width, height), Image.Resampling.BICUBIC))
        np.testing.assert_array_equal(layer, expected)


@pytest.mark.parametrize("text", ["0.5", "1.5,1", "1,1.5", "1,1", "-2", "nan", "inf", "abc", "1.5,x", "", ",",
                                  "1_5", "1.5,2_0", "1e1", "0x2", "+2", "1.5.2"])
def test_bad_scales_rejected(text: str) -> None:
    with pytest.raises(PyramidError):
        parse_scales(text)


def test_underscore_is_not_read_as_digit_grouping() -> None:
    # float("1_5") == 15.0: a typo for 1.5 would have built a x15 pyramid (issue #27, 7a)
    with pytest.raises(PyramidError, match="decimal numbers.*'1_5'"):
        parse_scales("1_5")


@pytest.mark.parametrize("text", ["1", "1.0", " 1 "])
def test_scale_one_alone_is_the_single_layer_combination(text: str) -> None:
    assert parse_scales(text) == ()
    assert layer_sizes(512, 768, parse_scales(text)) == [(512, 768)]


def test_ratio_one_inside_a_combination_says_how_to_ask_for_one_layer() -> None:
    with pytest.raises(PyramidError, match="must be > 1, got 1 in '1.5,1'.*--scales 1 alone"):
        parse_scales("1.5,1")


def test_scales_parse_and_format() -> None:
    assert parse_scales("1.33,1.5") == (1.33, 1.5)
    assert parse_scales(" 2 , 1.2 ") == (2.0, 1.2)
    assert format_scales((1.33, 1.5)) == "1.33,1.5"
    assert format_scales((2.0,)) == "2"


@pytest.mark.parametrize("text", ["bottom", "base:0", "base:1.5", "base:-1", "base:abc", "basefoo", "base:"])
def test_bad_anchoring_rejected(text: str) -> None:
    with pytest.raises(PyramidError):
        Anchoring.parse(text)


def test_anchoring_text_round_trip() -> None:
    assert str(Anchoring.parse("top")) == "top"
    assert str(Anchoring.parse("base")) == "base:0.25"
    assert str(Anchoring.parse("base:0.5")) == "base:0.5"


def test_image_too_small_names_image_and_minimum() -> None:
    source = synthetic_image(20, 30)
    with pytest.raises(PyramidError) as caught:
        build_pyramid(source, (2, 2), "top", name="tiny.png")  # base layer would be 5x7
    message = str(caught.value)
    assert "tiny.png" in message
    assert str(MIN_LAYER_SIDE) in message and "7x5" in message
    # Just large enough: base layer exactly MIN_LAYER_SIDE pixels high.
    layers = build_pyramid(synthetic_image(4 * MIN_LAYER_SIDE, 40), (2, 2), "top", name="ok.png")
    assert layers[0].shape[:2] == (MIN_LAYER_SIDE, 10)


def test_cache_returns_identical_arrays_and_reuses_the_file(tmp_path: Path) -> None:
    source = synthetic_image(48, 64, seed=8)
    first = cached_pyramid(source, (1.5,), "top", cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = cached_pyramid(source, (1.5,), "top", cache_dir=tmp_path)
    assert files[0].stat().st_mtime_ns == stamp  # read back, not rebuilt
    assert len(first) == len(second) == 2
    for a, b, c in zip(first, second, build_pyramid(source, (1.5,), "top"), strict=True):
        assert a.dtype == b.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(b, c)
    # Another anchoring, other scales or other pixels are other cache entries.
    cached_pyramid(source, (1.5,), "base:0.5", cache_dir=tmp_path)
    cached_pyramid(source, (2,), "top", cache_dir=tmp_path)
    changed = source.copy()
    changed[0, 0, 0] ^= 1
    cached_pyramid(changed, (1.5,), "top", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 4
    assert not list(tmp_path.glob("*.tmp*"))  # no temporary files left behind


@pytest.mark.parametrize("damage", [b"", b"not a zip file at all", "truncate"])
def test_corrupt_cache_file_is_rebuilt(tmp_path: Path, damage) -> None:
    source = synthetic_image(48, 64, seed=9)
    expected = build_pyramid(source, (1.5,), "top")
    cached_pyramid(source, (1.5,), "top", cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(damage)
    layers = cached_pyramid(source, (1.5,), "top", cache_dir=tmp_path)
    for got, want in zip(layers, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    # The damaged entry was replaced by a good one.
    with np.load(path) as stored:
        np.testing.assert_array_equal(stored["layer0"], expected[0])


def test_unwritable_cache_does_not_stop_a_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    source = synthetic_image(48, 64)
    layers = cached_pyramid(source, (1.5,), "top", cache_dir=blocker / "sub")
    np.testing.assert_array_equal(layers[1], source)
