"""The scalable file: prefixes decode, damage of any kind is a BitstreamError naming the problem."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from bench.codec import BitstreamError, CodecError
from bench.codecs.compass import bitstream
from bench.codecs.compass.plugin import CompassCodec
from tests.codecs.compass.helpers import pyramid, textured


@pytest.fixture(scope="module")
def encoded(tiny_model):
    codec = CompassCodec(models={2: tiny_model})
    layers = pyramid(textured(45, 67), [1.33, 1.5])
    enc = codec.encode(layers, 2)
    return codec, layers, enc


def _chunk_bounds(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every chunk, from the file's own framing."""
    header, pos = bitstream.decode_header(data)
    bounds = []
    for _ in range(header.num_layers):
        _, length = struct.unpack_from(">BI", data, pos)
        end = pos + 5 + length + 4
        bounds.append((pos, end))
        pos = end
    return bounds


def test_header_round_trip():
    header = bitstream.Header(3, "compass-q3-0123abcd", ((16, 24), (30, 44), (45, 67)))
    data, layer_bytes = bitstream.pack(header, [b"a", b"bc", b""])
    parsed, payloads = bitstream.unpack(data)
    assert parsed == header
    assert payloads == [b"a", b"bc", b""]
    assert sum(layer_bytes) == len(data)
    assert layer_bytes[1:] == [5 + 2 + 4, 5 + 0 + 4]


def test_layer_bytes_are_the_real_chunks(encoded):
    _, _, enc = encoded
    bounds = _chunk_bounds(enc.data)
    assert enc.layer_bytes[0] == bounds[0][1]  # header + BL chunk
    assert enc.layer_bytes[1:] == [end - start for start, end in bounds[1:]]
    assert bounds[-1][1] == len(enc.data)


def test_every_truncation_is_an_error_for_a_full_decode(encoded):
    codec, _, enc = encoded
    bounds = _chunk_bounds(enc.data)
    for cut in range(len(enc.data)):
        with pytest.raises(BitstreamError) as info:
            codec.decode(enc.data[:cut])
        # a cut inside chunk k names layer k; a cut before the chunks names the header/magic
        inside = [k for k, (start, end) in enumerate(bounds) if start <= cut < end]
        if inside:
            assert f"layer {inside[0]}" in str(info.value)
        else:
            assert "header" in str(info.value) or "magic" in str(info.value)


def test_prefix_file_decodes_its_layers_exactly(encoded):
    codec, _, enc = encoded
    full = codec.decode(enc.data)
    bounds = _chunk_bounds(enc.data)
    for k, (_, end) in enumerate(bounds):
        prefix = enc.data[:end]
        layers = codec.decode(prefix, k + 1)
        assert len(layers) == k + 1
        for a, b in zip(layers, full):
            assert np.array_equal(a, b)
    with pytest.raises(BitstreamError, match="layer 2"):
        codec.decode(enc.data[: bounds[1][1]])  # asks for all three layers


def test_every_single_bit_flip_is_detected(encoded):
    codec, _, enc = encoded
    bounds = _chunk_bounds(enc.data)
    for byte in range(len(enc.data)):
        for bit in range(8):
            damaged = bytearray(enc.data)
            damaged[byte] ^= 1 << bit
            with pytest.raises(BitstreamError) as info:
                codec.decode(bytes(damaged))
            inside = [k for k, (start, end) in enumerate(bounds) if start <= byte < end]
            if inside:
                assert f"layer {inside[0]}" in str(info.value)


def test_damage_after_a_prefix_does_not_affect_prefix_decoding(encoded):
    codec, _, enc = encoded
    bounds = _chunk_bounds(enc.data)
    damaged = bytearray(enc.data)
    damaged[bounds[2][0] + 7] ^= 0xFF  # inside layer 2's payload
    full = codec.decode(enc.data)
    prefix = codec.decode(bytes(damaged), 2)
    assert all(np.array_equal(a, b) for a, b in zip(prefix, full))
    with pytest.raises(BitstreamError, match="layer 2: corrupted"):
        codec.decode(bytes(damaged))


@pytest.mark.parametrize("data", [b"", b"CMP", b"\x89PNG\r\n\x1a\n" + bytes(100), bytes(range(256)), b"CMPS"])
def test_foreign_or_empty_input(data, tiny_model):
    with pytest.raises(BitstreamError):
        CompassCodec(models={2: tiny_model}).decode(data)


def test_trailing_bytes_and_other_model(encoded, tiny_model):
    codec, _, enc = encoded
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        codec.decode(enc.data + b"\x00")
    header, payloads = bitstream.unpack(enc.data)
    other = bitstream.Header(header.quality, "compass-q2-deadbeef", header.sizes)
    data, _ = bitstream.pack(other, payloads)
    with pytest.raises(BitstreamError, match="deadbeef"):
        codec.decode(data)
    unsupported = bytearray(enc.data)
    unsupported[4] = 9
    with pytest.raises(BitstreamError, match="version 9"):
        codec.decode(bytes(unsupported))


def _raw_header(sizes: list[tuple[int, int]], count: int | None = None) -> bytes:
    body = b"CMPS" + bytes([1, 2, 4]) + b"test" + bytes([len(sizes) if count is None else count])
    body += b"".join(struct.pack(">HH", h, w) for h, w in sizes)
    return body + struct.pack(">I", zlib.crc32(body))


@pytest.mark.parametrize("sizes", [[(0, 5)], [(60000, 60000)], [(16384, 16384)], [(5, 0), (8, 8)]])
def test_absurd_sizes_are_refused_before_allocation(sizes):
    with pytest.raises(BitstreamError, match="size"):
        bitstream.unpack(_raw_header(sizes) + bitstream.encode_chunk(0, b""))


def test_zero_layers_refused():
    with pytest.raises(BitstreamError, match="number of layers"):
        bitstream.unpack(_raw_header([]))


def test_chunk_labelled_with_the_wrong_layer():
    data = _raw_header([(4, 4), (8, 8)]) + bitstream.encode_chunk(1, b"x") + bitstream.encode_chunk(0, b"y")
    with pytest.raises(BitstreamError, match="layer 0: chunk is labelled as layer 1"):
        bitstream.unpack(data)


def test_layer_count_requests(encoded):
    codec, _, enc = encoded
    for bad in (0, 4, -1):
        with pytest.raises(CodecError):
            codec.decode(enc.data, bad)


def test_crc_valid_but_undecodable_payload_is_a_bitstream_error(tiny_model):
    codec = CompassCodec(models={2: tiny_model})
    header = bitstream.Header(2, tiny_model.model_id, ((8, 8),))
    data, _ = bitstream.pack(header, [b"\xff\xff\xff\xff"])  # z length beyond the payload
    with pytest.raises(BitstreamError, match="layer 0"):
        codec.decode(data)
