"""The committed COMPASS weights (bench/weights/compass-q*): they load, code real Kodak content
bit-exactly, and their LIFF predicts better than bicubic upsampling of the same reconstruction."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from bench import zoo
from bench.codecs.compass.plugin import QUALITIES, CompassCodec
from bench.datasets import load_dataset
from bench.images import load_rgb
from bench.pyramid import build_pyramid
from bench.registry import create_codec
from tests.codecs.compass.helpers import pyramid


@pytest.fixture(scope="module")
def kodak():
    return {path.name: path for path in load_dataset("kodak").images}


@pytest.fixture(scope="module")
def kodak_crop(kodak) -> np.ndarray:
    # an odd-sized crop with texture and edges (the lighthouse and fence of kodim19)
    return load_rgb(kodak["kodim19.png"])[101:340, 37:290].copy()


@pytest.fixture(scope="module")
def codec() -> CompassCodec:
    return CompassCodec()


def test_every_quality_has_weights_over_the_zoo_base_layer(codec):
    assert zoo.available_qualities("compass") == list(QUALITIES)
    assert codec.availability().available
    counts = codec.parameter_counts()
    # the BL is the zoo's mean-scale model (N=128/M=192 since session 10), under a smaller CPU-config RC
    assert counts["bl"] == create_codec("mean-scale").parameter_counts()["total"]
    assert counts["bl"] > counts["rc"] > counts["liff"] > 0
    assert counts["total"] == counts["bl"] + counts["rc"] + counts["liff"]


@pytest.mark.parametrize("quality", [1, 4])
def test_round_trip_of_a_kodak_crop_is_bit_exact_and_prefix_decodable(codec, kodak_crop, quality):
    layers = pyramid(kodak_crop, [1.5, 1.6])
    encoded = codec.encode(layers, quality)
    assert encoded.data == codec.encode(layers, quality).data
    full = codec.decode(encoded.data)
    prefix = codec.decode(encoded.data[: sum(encoded.layer_bytes[:2])], 2)
    assert all(np.array_equal(a, b) for a, b in zip(prefix, full[:2]))
    assert [im.shape for im in full] == [im.shape for im in layers]


def test_higher_quality_spends_more_bits_for_a_better_top_layer(codec, kodak_crop):
    layers = pyramid(kodak_crop, [2.0])
    low, high = codec.encode(layers, 1), codec.encode(layers, 4)
    assert len(high.data) > len(low.data)

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        return 10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))

    assert psnr(codec.decode(high.data)[1], layers[1]) > psnr(codec.decode(low.data)[1], layers[1]) + 1.0


@pytest.mark.parametrize("ratio", [1.5, 2.7])
def test_liff_predicts_better_than_bicubic_on_kodak(codec, kodak, ratio):
    image = load_rgb(kodak["kodim23.png"])
    layers = build_pyramid(image, [ratio])
    (report,) = codec.prediction_report(layers, 3)
    assert report["psnr_liff"] > report["psnr_bicubic"]


def test_base_layer_is_the_single_layer_codecs_own(codec, kodak):
    # the BL is padded whole, as the mean-scale plugin pads: COMPASS's layer 0 decodes to exactly
    # the pixels that single-layer mean-scale gives at the same quality (only the framing differs)
    layers = build_pyramid(load_rgb(kodak["kodim01.png"]), [1.2])  # 426×640: not a multiple of 64
    single = create_codec("mean-scale")
    compass_layer0 = codec.decode(codec.encode(layers, 2).data, 1)[0]
    assert np.array_equal(compass_layer0, single.decode(single.encode([layers[0]], 2).data)[0])


def test_weights_id_is_the_compass_files_sha256_without_loading_a_model():
    codec = CompassCodec()
    for quality in QUALITIES:
        path = zoo.find_weights("compass", quality)
        assert codec.weights_id(quality) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert codec._models == {} and codec.weights_id(9) is None
