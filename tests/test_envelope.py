"""The `bench encode` file envelope: round trip, and every damaged file ends in EnvelopeError."""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.storage.envelope import MAGIC, MAX_HEADER, EnvelopeError, pack, unpack

HEADER = {"codec": "simulcast:x265", "quality": 32, "scales": "1.5", "anchor": "top",
          "sizes": [[32, 42], [48, 64]], "layer_bytes": [3, 4]}


def test_round_trip_adds_length_and_crc() -> None:
    payload = bytes(range(7))
    envelope = unpack(pack(HEADER, payload))
    assert envelope.payload == payload
    assert envelope.header == dict(HEADER, payload_bytes=7, payload_crc32=zlib.crc32(payload))


def test_layout_is_magic_length_json_payload() -> None:
    data = pack({"codec": "x265"}, b"xyz")
    assert data.startswith(MAGIC)
    (length,) = struct.unpack(">I", data[8:12])
    assert json.loads(data[12 : 12 + length]) == {"codec": "x265", "payload_bytes": 3,
                                                  "payload_crc32": zlib.crc32(b"xyz")}
    assert data[12 + length :] == b"xyz"


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d[:5], "truncated"),  # a prefix of the magic: a cut file, not a foreign one
        (lambda d: b"", "bad magic"),
        (lambda d: b"PNG....." + d[8:], "bad magic"),
        (lambda d: d[:20], "truncated"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"\x00", "trailing"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "CRC32"),
        (lambda d: d[:8] + struct.pack(">I", MAX_HEADER + 1) + d[12:], "corrupted"),
        (lambda d: d[:12] + b"\xff" + d[13:], "not valid JSON"),
    ],
)
def test_damaged_files_raise_envelope_error(damage, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        unpack(damage(pack(HEADER, b"payload bytes")))


@pytest.mark.parametrize("header_json", [b"[1, 2]", b"\"text\"", b"42", b"null", b"{}",
                                         b'{"codec": 5}', b'{"codec": "x265", "sizes": 3}'])
def test_header_that_is_json_but_not_a_bench_header(header_json: bytes) -> None:
    """A CRC-consistent file whose header is valid JSON of the wrong shape must still be refused by
    the envelope, not crash the decoder later with KeyError/AttributeError/TypeError."""
    payload = b"abc"
    document = json.loads(header_json)
    if isinstance(document, dict):
        document.update(payload_bytes=len(payload), payload_crc32=zlib.crc32(payload))
        header_json = json.dumps(document).encode()
    data = MAGIC + struct.pack(">I", len(header_json)) + header_json + payload
    with pytest.raises(EnvelopeError):
        unpack(data)


@settings(max_examples=300, deadline=None, database=None)  # no .hypothesis/ in the repo
@given(
    payload=st.binary(max_size=64),
    cuts=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    truncate=st.integers(0, 400),
)
def test_fuzzed_files_return_or_raise_envelope_error(payload: bytes, cuts, truncate: int) -> None:
    data = bytearray(pack(HEADER, payload))
    for position, value in cuts:
        if position < len(data):
            data[position] = value
    data = bytes(data[: max(truncate, 0)] if truncate < len(data) else data)
    try:
        envelope = unpack(data)
    except EnvelopeError:
        return
    # What is accepted is self-consistent.
    assert len(envelope.payload) == envelope.header["payload_bytes"]
    assert zlib.crc32(envelope.payload) == envelope.header["payload_crc32"]
    assert isinstance(envelope.header["codec"], str)


def test_per_layer_table_allows_prefixes_and_names_the_damaged_layer() -> None:
    payload = b"base" + b"enhancement-one" + b"two"
    data = pack({"codec": "x", "sizes": [[2, 2], [3, 3], [4, 4]]}, payload, [4, 15, 3])
    assert unpack(data).payload == payload
    assert unpack(data, 2).payload == b"base" + b"enhancement-one"
    assert unpack(data[:-3], 2).payload == b"base" + b"enhancement-one"  # cut after layer 1
    with pytest.raises(EnvelopeError, match="truncated in layer 2.*--layers 2"):
        unpack(data[:-3])
    with pytest.raises(EnvelopeError, match="truncated in layer 0") as caught:
        unpack(data[:-20], 1)
    assert "--layers" not in str(caught.value)
    damaged = bytearray(data)
    damaged[-10] ^= 1  # inside layer 1
    assert unpack(bytes(damaged), 1).payload == b"base"
    with pytest.raises(EnvelopeError, match="layer 1 of the bitstream is corrupted"):
        unpack(bytes(damaged), 2)
    with pytest.raises(EnvelopeError, match="trailing bytes"):
        unpack(data + b"x")
    with pytest.raises(ValueError):
        pack({"codec": "x"}, payload, [1, 2])


def test_a_damaged_per_layer_table_is_a_clear_error() -> None:
    data = pack({"codec": "x", "sizes": [[2, 2], [3, 3]]}, b"abcdef", [2, 4])
    tampered = data.replace(b'"layer_bytes": [2, 4]', b'"layer_bytes": [3, 4]')
    with pytest.raises(EnvelopeError, match="bad per-layer table"):
        unpack(tampered)
