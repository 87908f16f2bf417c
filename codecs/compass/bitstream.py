"""COMPASS scalable bitstream container (spec §6): one file, header, then one chunk per layer.

Layout (all integers big-endian)::

    header   "CMPS"  magic                       4 bytes
             version                             u8   (FORMAT_VERSION)
             quality                             u8
             model id length L, model id (ASCII) u8, L bytes   (names the weights, e.g. compass-q2-1a2b3c4d)
             number of layers K+1                u8
             K+1 × (height, width)               u16, u16
             CRC-32 of all header bytes above    u32
    chunk k  layer index k                       u8
             payload length n                    u32
             payload (the layer's entropy-coded strings)   n bytes
             CRC-32 of index, length and payload u32

Chunks appear in layer order, BL first. A file cut after chunk k is a valid stream of layers 0..k:
decoding reads the header and only the chunks it needs, so a prefix decode never touches (or
depends on) later chunks. Every failure is a ``BitstreamError`` that names what is wrong and in
which layer; sizes are checked against the format's limits here and against what the decoder may
allocate in ``plugin.CompassCodec.decode``, before anything is allocated for them.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Sequence

from bench.codec import BitstreamError, CodecError

MAGIC = b"CMPS"
FORMAT_VERSION = 1
MAX_LAYERS = 32
MAX_SIDE = 16384
# The format's own limit per layer (8192×8192). Not a safe decoding limit: decoding allocates ~1 KB per
# pixel, so the codec also bounds what a header may claim (``CompassCodec.max_pixels``, ``bench decode
# --max-pixels``), checks the strings present against it and estimates the memory before decoding.
MAX_PIXELS = 1 << 26
_CHUNK_HEAD = struct.Struct(">BI")
_CRC = struct.Struct(">I")


@dataclass(frozen=True)
class Header:
    quality: int
    model_id: str
    sizes: tuple[tuple[int, int], ...]  # (height, width) of every layer, smallest first
    version: int = FORMAT_VERSION

    @property
    def num_layers(self) -> int:
        return len(self.sizes)


def _check_sizes(sizes: Sequence[tuple[int, int]], error: type[Exception]) -> None:
    if not 1 <= len(sizes) <= MAX_LAYERS:
        raise error(f"number of layers {len(sizes)} is outside 1..{MAX_LAYERS}")
    for k, (h, w) in enumerate(sizes):
        if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and h * w <= MAX_PIXELS):
            raise error(
                f"layer {k}: size {h}x{w} is outside the supported range "
                f"(sides 1..{MAX_SIDE}, at most {MAX_PIXELS} pixels)"
            )


def encode_header(header: Header) -> bytes:
    model_id = header.model_id.encode("ascii")
    if len(model_id) > 255:
        raise CodecError(f"model id {header.model_id!r} is longer than 255 bytes")
    if not 0 <= header.quality <= 255:
        raise CodecError(f"quality {header.quality} does not fit in one byte")
    _check_sizes(header.sizes, CodecError)
    body = MAGIC + bytes([header.version, header.quality, len(model_id)]) + model_id
    body += bytes([len(header.sizes)]) + b"".join(struct.pack(">HH", h, w) for h, w in header.sizes)
    return body + _CRC.pack(zlib.crc32(body))


def encode_chunk(layer: int, payload: bytes) -> bytes:
    head = _CHUNK_HEAD.pack(layer, len(payload))
    return head + payload + _CRC.pack(zlib.crc32(head + payload))


def pack(header: Header, payloads: Sequence[bytes]) -> tuple[bytes, list[int]]:
    """The file and its bytes per layer (the header is attributed to the BL)."""
    if len(payloads) != header.num_layers:
        raise CodecError(f"{len(payloads)} payloads for a header of {header.num_layers} layers")
    head = encode_header(header)
    chunks = [encode_chunk(k, p) for k, p in enumerate(payloads)]
    layer_bytes = [len(c) for c in chunks]
    layer_bytes[0] += len(head)
    return head + b"".join(chunks), layer_bytes


def decode_header(data: bytes) -> tuple[Header, int]:
    """Parse and verify the header; returns it and the offset of the first chunk."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise BitstreamError(f"not a COMPASS bitstream: expected magic {MAGIC!r}, got {bytes(data[:4])!r}")
    if len(data) < 7:
        raise BitstreamError("truncated header (file ends after the magic)")
    version, quality, id_len = data[4], data[5], data[6]
    if version != FORMAT_VERSION:
        raise BitstreamError(
            f"format version {version} is not supported (this decoder reads {FORMAT_VERSION})"
        )
    pos = 7 + id_len
    if len(data) < pos + 1:
        raise BitstreamError("truncated header (inside the model id)")
    count = data[pos]
    end = pos + 1 + 4 * count
    if len(data) < end + _CRC.size:
        raise BitstreamError("truncated header (inside the layer sizes)")
    (crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(data[:end]) != crc:
        raise BitstreamError("header corrupted (CRC mismatch)")
    try:
        model_id = bytes(data[7:pos]).decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("header corrupted (model id is not ASCII)") from None
    sizes = tuple(struct.unpack_from(">HH", data, pos + 1 + 4 * k) for k in range(count))
    _check_sizes(sizes, BitstreamError)
    return Header(quality, model_id, sizes, version), end + _CRC.size


def decode_chunks(data: bytes, offset: int, count: int, expect_end: bool) -> list[bytes]:
    """Read and verify chunks 0..count-1 starting at ``offset``.

    ``expect_end``: the caller wants every layer, so bytes after the last chunk are an error.
    """
    payloads = []
    pos = offset
    for k in range(count):
        if len(data) - pos < _CHUNK_HEAD.size:
            raise BitstreamError(f"layer {k}: truncated (file ends before its chunk header)")
        index, length = _CHUNK_HEAD.unpack_from(data, pos)
        end = pos + _CHUNK_HEAD.size + length
        if len(data) < end + _CRC.size:
            raise BitstreamError(
                f"layer {k}: truncated or corrupted length (chunk says {length} payload bytes, "
                f"{max(len(data) - pos - _CHUNK_HEAD.size - _CRC.size, 0)} remain)"
            )
        (crc,) = _CRC.unpack_from(data, end)
        if zlib.crc32(data[pos:end]) != crc:
            raise BitstreamError(f"layer {k}: corrupted (CRC mismatch)")
        if index != k:
            raise BitstreamError(f"layer {k}: chunk is labelled as layer {index} (chunks out of order)")
        payloads.append(bytes(data[pos + _CHUNK_HEAD.size : end]))
        pos = end + _CRC.size
    if expect_end and pos != len(data):
        raise BitstreamError(f"{len(data) - pos} unexpected bytes after the last layer")
    return payloads


def unpack(data: bytes, num_layers: int | None = None) -> tuple[Header, list[bytes]]:
    """Header and the payloads of layers 0..num_layers-1 (all when None)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    header, offset = decode_header(data)
    if num_layers is None:
        num_layers = header.num_layers
    if not 1 <= num_layers <= header.num_layers:
        raise CodecError(f"asked for {num_layers} layers; this bitstream holds 1..{header.num_layers}")
    payloads = decode_chunks(data, offset, num_layers, expect_end=num_layers == header.num_layers)
    return header, payloads
