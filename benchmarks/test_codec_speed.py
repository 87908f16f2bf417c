"""Encode and decode speed of every available codec on a fixed image (256x256 crop of kodim23),
and decode speed on the whole 768x512 image.

Single-layer codecs code the crop; scalable ones code a two-layer pyramid (128x128 + 256x256,
scale 2). Each timed call is one whole encode or decode; one untimed warm-up round first, so model
loading and the first process start are not in the numbers. The byte count and PSNR are stored in
``extra_info`` so that a saved run also shows *what* was timed.
"""

from __future__ import annotations

import pytest

from bench.measuring.metrics import psnr_rgb
from bench.pyramid import build_pyramid

from .conftest import CODECS, available_codec, middle_quality

ROUNDS = 5


def _layers(codec, image):
    return build_pyramid(image, (2.0,), "top") if codec.scalable else [image]


def _describe(benchmark, codec, layers, encoded, quality) -> None:
    decoded = codec.decode(encoded.data)
    benchmark.extra_info.update({
        "codec": codec.spec, "quality": quality, "sizes": [list(layer.shape[:2]) for layer in layers],
        "bytes": len(encoded.data), "psnr_top": psnr_rgb(layers[-1], decoded[-1]),
    })


@pytest.mark.parametrize("spec", CODECS)
def test_encode(benchmark, spec: str, crop256) -> None:
    codec = available_codec(spec)
    quality = middle_quality(codec)
    layers = _layers(codec, crop256)
    benchmark.group = "encode 256x256"
    encoded = benchmark.pedantic(codec.encode, args=(layers, quality), rounds=ROUNDS, warmup_rounds=1)
    _describe(benchmark, codec, layers, encoded, quality)


@pytest.mark.parametrize("spec", CODECS)
def test_decode(benchmark, spec: str, crop256) -> None:
    codec = available_codec(spec)
    quality = middle_quality(codec)
    layers = _layers(codec, crop256)
    encoded = codec.encode(layers, quality)
    benchmark.group = "decode 256x256"
    decoded = benchmark.pedantic(codec.decode, args=(encoded.data,), rounds=ROUNDS, warmup_rounds=1)
    assert [d.shape for d in decoded] == [layer.shape for layer in layers]
    _describe(benchmark, codec, layers, encoded, quality)


@pytest.mark.parametrize("spec", CODECS)
def test_decode_768x512(benchmark, spec: str, kodim23) -> None:
    codec = available_codec(spec)
    quality = middle_quality(codec)
    layers = _layers(codec, kodim23)
    encoded = codec.encode(layers, quality)
    benchmark.group = "decode 768x512 (all layers)"
    decoded = benchmark.pedantic(codec.decode, args=(encoded.data,), rounds=3, warmup_rounds=1)
    assert decoded[-1].shape == kodim23.shape
    _describe(benchmark, codec, layers, encoded, quality)
