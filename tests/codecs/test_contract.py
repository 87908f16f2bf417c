"""The codec contract, checked for every registered codec that is available here.

As timm and lm-evaluation-harness test every registered model or task, this suite takes the codec
list from the registry (``bench list``'s specs, ``NAME@SOURCE`` included), so a new codec gets these
tests by registering, without writing them. Per codec, on small synthetic images at one quality
(the codec's lowest default; learned codecs on CPU):

* a round trip gives uint8 RGB layers of the input sizes;
* ``layer_bytes`` add up to the bitstream, one entry per layer;
* a scalable codec decodes a prefix of its layers, the same pixels as the full decode;
* a prefix-decodable codec decodes the bytes of its first layers alone;
* garbage and a truncated bitstream end in ``BitstreamError``, nothing else;
* a deterministic codec (``CodecInfo.deterministic``) gives the same bytes twice.

Codecs unavailable here (no SHM binaries, no published weights) are skipped with their reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.codec import BitstreamError, Codec
from bench.registry import codec_class, codec_names, create_codec
from tests.conftest import synthetic_image

# Layer sizes: a 3-layer pyramid for scalable codecs (smallest first), a 64x64-ish image otherwise.
# Learned codecs pad to multiples of 64 internally; small odd sizes exercise that padding too.
SCALABLE_SIZES = ((32, 40), (48, 60), (64, 80))
SINGLE_SIZE = (48, 64)


def _registered_specs() -> list[str]:
    specs = []
    for name in codec_names():
        cls = codec_class(name)
        base = cls.info.list_spec or name
        # the bare spec, each published weights source, and the variants `bench list` names (presets
        # such as shvc:ctc and vtm:ctc, the simulcast a codec makes: simulcast:hm, simulcast:vtm)
        specs += [base, *(f"{base}@{source}" for source in cls.info.published_sources), *cls.info.list_variants]
    return list(dict.fromkeys(specs))


SPECS = _registered_specs()


@pytest.fixture(scope="module")
def coded() -> dict:
    """Per spec: the codec, its layers and one encode, made once for all the checks (or a skip reason)."""
    return {}


def _codec_and_stream(spec: str, cache: dict):
    if spec not in cache:
        codec = create_codec(spec)
        status = codec.availability()
        if not status.available:
            cache[spec] = status.reason
        else:
            sizes = SCALABLE_SIZES if codec.info.scalable else (SINGLE_SIZE,)
            layers = [synthetic_image(h, w, seed=k) for k, (h, w) in enumerate(sizes)]
            if codec.info.scalable and codec.info.max_layers is not None:
                layers = layers[-codec.info.max_layers:]
            quality = min(codec.info.default_qualities)
            cache[spec] = (codec, layers, quality, codec.encode(layers, quality))
    entry = cache[spec]
    if isinstance(entry, str):
        pytest.skip(f"{spec} unavailable here: {entry}")
    return entry


@pytest.mark.parametrize("spec", SPECS)
def test_round_trip_gives_layers_of_the_input_sizes(spec: str, coded: dict) -> None:
    codec, layers, _, encoded = _codec_and_stream(spec, coded)
    decoded = codec.decode(encoded.data)
    assert [d.shape for d in decoded] == [layer.shape for layer in layers]
    assert all(d.dtype == np.uint8 for d in decoded)
    # a lossy codec at its lowest quality still resembles its input (not a blank or shifted picture)
    for layer, recon in zip(layers, decoded):
        mse = np.mean((layer.astype(np.float64) - recon.astype(np.float64)) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-10)) > 15.0


@pytest.mark.parametrize("spec", SPECS)
def test_layer_bytes_add_up_to_the_bitstream(spec: str, coded: dict) -> None:
    _, layers, _, encoded = _codec_and_stream(spec, coded)
    assert len(encoded.layer_bytes) == len(layers)
    assert sum(encoded.layer_bytes) == len(encoded.data)
    assert all(size >= 0 for size in encoded.layer_bytes) and encoded.layer_bytes[0] > 0


@pytest.mark.parametrize("spec", SPECS)
def test_scalable_codec_decodes_a_prefix_of_its_layers(spec: str, coded: dict) -> None:
    codec, layers, _, encoded = _codec_and_stream(spec, coded)
    if not codec.info.scalable:
        pytest.skip(f"{spec} is single-layer")
    full = codec.decode(encoded.data)
    prefix = codec.decode(encoded.data, len(layers) - 1)
    assert len(prefix) == len(layers) - 1
    assert all(np.array_equal(a, b) for a, b in zip(prefix, full))
    if codec.info.prefix_decodable:  # the bytes of the first layers alone are enough
        first = sum(encoded.layer_bytes[: len(layers) - 1])
        alone = codec.decode(encoded.data[:first], len(layers) - 1)
        assert all(np.array_equal(a, b) for a, b in zip(alone, full))


@pytest.mark.parametrize("spec", SPECS)
def test_garbage_and_truncated_input_raise_bitstream_error(spec: str, coded: dict) -> None:
    codec, _, _, encoded = _codec_and_stream(spec, coded)
    garbage = np.random.default_rng(0).integers(0, 256, len(encoded.data), np.uint8).tobytes()
    for data in (garbage, b"", encoded.data[:3]):
        with pytest.raises(BitstreamError):
            codec.decode(data)
    if not codec.info.detects_truncation:
        pytest.skip(f"{spec} declares that its format cannot tell a cut stream (CodecInfo.detects_truncation)")
    for cut in (len(encoded.data) // 2, len(encoded.data) - 1):
        with pytest.raises(BitstreamError):
            codec.decode(encoded.data[:cut])


@pytest.mark.parametrize("spec", SPECS)
def test_deterministic_codec_gives_the_same_bytes_twice(spec: str, coded: dict) -> None:
    codec, layers, quality, encoded = _codec_and_stream(spec, coded)
    if not codec.info.deterministic:
        pytest.skip(f"{spec} declares itself not deterministic")
    again = codec.encode(layers, quality)
    assert again.data == encoded.data and again.layer_bytes == encoded.layer_bytes


def test_the_suite_covers_every_registered_codec() -> None:
    names = {spec.split(":")[0].split("@")[0] for spec in SPECS}
    assert names == set(codec_names())
    assert all(isinstance(create_codec(spec), Codec) for spec in SPECS)
