"""simulcast:x265: independent layer coding in one CRC-checked layered container."""

from __future__ import annotations

import numpy as np
import pytest

from bench import container
from bench.codec import BitstreamError, CodecError
from bench.codecs.simulcast import SimulcastCodec
from bench.codecs.x265 import X265Codec
from bench.registry import create_codec

AVAILABILITY = X265Codec().availability()
needs_x265 = pytest.mark.skipif(not AVAILABILITY.available, reason=f"x265 unavailable: {AVAILABILITY.reason}")
SIZES = [(12, 20), (23, 37), (48, 64)]  # smallest first, odd and below x265's 16-pixel minimum


def pyramid() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    layers = []
    for height, width in SIZES:
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=-1)
        noise = rng.integers(-20, 21, (height, width, 3))
        layers.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return layers


@pytest.fixture(scope="module")
def codec() -> SimulcastCodec:
    return create_codec("simulcast:x265")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def encoded(codec: SimulcastCodec):
    if not AVAILABILITY.available:
        pytest.skip(f"x265 unavailable: {AVAILABILITY.reason}")
    return codec.encode(pyramid(), 32)


def test_delegates_to_inner(codec: SimulcastCodec) -> None:
    assert codec.info.scalable and codec.info.max_layers is None
    assert codec.spec == "simulcast:x265"
    assert codec.info.default_qualities == X265Codec.info.default_qualities
    assert codec.parameter_counts() == {}
    assert codec.availability() == AVAILABILITY


@needs_x265
def test_layer_bytes_are_independent_codings(encoded) -> None:
    assert len(encoded.layer_bytes) == 3
    assert sum(encoded.layer_bytes) == len(encoded.data)
    inner = X265Codec()
    alone = [len(inner.encode([layer], 32).data) for layer in pyramid()]
    assert max(alone) < 2**14  # so each varint length takes 1 or 2 bytes
    # Per layer: varint length + CRC32 + the inner bitstream; the 6-byte header goes to layer 0.
    expected = [size + (1 if size < 128 else 2) + 4 for size in alone]
    expected[0] += container.HEADER_SIZE
    assert encoded.layer_bytes == expected


@needs_x265
def test_decode_matches_inner_decode(codec: SimulcastCodec, encoded) -> None:
    inner = X265Codec()
    decoded = codec.decode(encoded.data)
    assert [image.shape for image in decoded] == [(h, w, 3) for h, w in SIZES]
    for layer, image in zip(pyramid(), decoded):
        assert np.array_equal(image, inner.decode(inner.encode([layer], 32).data)[0])


@needs_x265
@pytest.mark.parametrize("k", [1, 2, 3])
def test_prefix_decode_equals_full_decode(codec: SimulcastCodec, encoded, k: int) -> None:
    full = codec.decode(encoded.data)
    prefix = encoded.data[: sum(encoded.layer_bytes[:k])]
    partial = codec.decode(prefix, num_layers=k)
    assert len(partial) == k
    for a, b in zip(partial, full[:k]):
        assert np.array_equal(a, b)


@needs_x265
def test_truncated_container_names_the_layer(codec: SimulcastCodec, encoded) -> None:
    with pytest.raises(BitstreamError, match="layer 2"):
        codec.decode(encoded.data[:-1])
    with pytest.raises(BitstreamError, match="layer 1"):
        codec.decode(encoded.data[: encoded.layer_bytes[0] + 3], num_layers=2)
    with pytest.raises(BitstreamError, match="too short"):
        codec.decode(encoded.data[:4])


@needs_x265
def test_bit_flip_is_caught_by_crc(codec: SimulcastCodec, encoded) -> None:
    data = bytearray(encoded.data)
    data[encoded.layer_bytes[0] + 50] ^= 0x10  # inside layer 1's payload
    with pytest.raises(BitstreamError, match="layer 1.*CRC32"):
        codec.decode(bytes(data))
    # Layer 0 is intact, so a receiver that only wants it still decodes it.
    assert np.array_equal(codec.decode(bytes(data), num_layers=1)[0], codec.decode(encoded.data, 1)[0])
    magic = bytearray(encoded.data)
    magic[0] ^= 0x01
    with pytest.raises(BitstreamError, match="magic"):
        codec.decode(bytes(magic))


@needs_x265
def test_trailing_bytes_and_bad_layer_counts(codec: SimulcastCodec, encoded) -> None:
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        codec.decode(encoded.data + b"\x00")
    with pytest.raises(CodecError, match="holds 3 layers"):
        codec.decode(encoded.data, num_layers=4)
    with pytest.raises(CodecError, match="at least 1"):
        codec.decode(encoded.data, num_layers=0)


def test_missing_or_unknown_inner_codec_is_a_clear_error() -> None:
    missing = create_codec("simulcast")
    assert not missing.availability().available
    assert "simulcast:NAME" in missing.availability().reason
    unknown = create_codec("simulcast:no-such-codec")
    status = unknown.availability()
    assert not status.available and "unknown codec 'no-such-codec'" in status.reason
    with pytest.raises(CodecError, match="unknown codec 'no-such-codec'"):
        unknown.encode(pyramid(), 32)
    with pytest.raises(CodecError, match="simulcast:NAME"):
        missing.decode(b"SIMC\x01\x01")


def test_source_goes_to_the_inner_codec() -> None:
    codec = create_codec("simulcast:x265@somewhere")
    assert isinstance(codec, SimulcastCodec)
    assert codec.inner_spec == "x265@somewhere" and codec.inner.source == "somewhere"


def test_unavailable_inner_makes_simulcast_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg
    status = create_codec("simulcast:x265").availability()
    assert not status.available
    assert "inner codec x265 is unavailable" in status.reason and "ffmpeg not found" in status.reason


def test_container_round_trip_without_inner_codec() -> None:
    chunks = [b"", b"a" * 127, b"b" * 128, bytes(range(256)) * 70]
    data, layer_bytes = container.pack(b"TEST", 3, chunks)
    assert sum(layer_bytes) == len(data)
    assert layer_bytes[1:] == [1 + 4 + 127, 2 + 4 + 128, 3 + 4 + 17920]
    assert container.unpack(data, b"TEST", 3, "test") == chunks
    assert container.unpack(data[: sum(layer_bytes[:2])], b"TEST", 3, "test", count=2) == chunks[:2]
    with pytest.raises(BitstreamError, match="version"):
        container.unpack(data, b"TEST", 4, "test")


def test_decode_timings_of_the_inner_codec_are_summed_over_layers(
    codec: SimulcastCodec, encoded, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = codec._available_inner()
    real_decode = inner.decode

    def timed_decode(data: bytes, num_layers: int | None = None):
        inner.last_decode_timings = {"network": 0.25, "entropy": 0.5}
        return real_decode(data, num_layers)

    monkeypatch.setattr(inner, "decode", timed_decode)
    codec.decode(encoded.data, 2)
    assert codec.last_decode_timings == {"network": 0.5, "entropy": 1.0}
