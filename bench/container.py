"""A small layered container: a header, then one length-prefixed, CRC32-checked chunk per layer.

Layout (all integers big-endian)::

    magic (4 bytes) | version (1 byte) | number of chunks (1 byte)
    then per chunk: length (LEB128 varint, 1-5 bytes) | CRC32 of the payload (4 bytes) | payload

Chunks come in layer order, so the first k chunks (a prefix of the bytes) are enough to decode k
layers: ``unpack`` reads only as many chunks as asked and ignores what follows them.
"""

from __future__ import annotations

import struct
import zlib
from typing import Callable, Sequence

from bench.codec import BitstreamError, CodecError

_HEAD = struct.Struct(">4sBB")
_CRC = struct.Struct(">I")
HEADER_SIZE = _HEAD.size
MAX_CHUNKS = 255
MAX_CHUNK_BYTES = 2**32 - 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    value = shift = 0
    for count in range(5):  # 5 * 7 bits cover MAX_CHUNK_BYTES
        if pos >= len(data):
            raise BitstreamError(f"{what}: truncated length field")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if count and byte == 0:  # only the shortest encoding is valid, so a flipped bit shows
                raise BitstreamError(f"{what}: malformed length field")
            return value, pos
    raise BitstreamError(f"{what}: malformed length field")


def pack(magic: bytes, version: int, chunks: Sequence[bytes]) -> tuple[bytes, list[int]]:
    """Return the container bytes and how many belong to each chunk (header counted in chunk 0)."""
    if len(magic) != 4:
        raise ValueError("container magic must be 4 bytes")
    if not 1 <= len(chunks) <= MAX_CHUNKS:
        raise CodecError(f"a container holds 1..{MAX_CHUNKS} layers, got {len(chunks)}")
    parts = [_HEAD.pack(magic, version, len(chunks))]
    layer_bytes = []
    for index, chunk in enumerate(chunks):
        if len(chunk) > MAX_CHUNK_BYTES:
            raise CodecError(f"layer {index} is {len(chunk)} bytes, more than a container chunk holds")
        framed = _varint(len(chunk)) + _CRC.pack(zlib.crc32(chunk)) + chunk
        parts.append(framed)
        layer_bytes.append(len(framed))
    layer_bytes[0] += _HEAD.size  # the shared header belongs to the base layer
    return b"".join(parts), layer_bytes


def read_header(data: bytes, magic: bytes, version: int, name: str) -> int:
    """Check the header and return the number of chunks the container says it holds."""
    if len(data) < _HEAD.size:
        raise BitstreamError(f"{name} bitstream of {len(data)} bytes is too short for its header")
    found_magic, found_version, count = _HEAD.unpack_from(data)
    if found_magic != magic:
        raise BitstreamError(f"not a {name} bitstream (magic {found_magic!r}, expected {magic!r})")
    if found_version != version:
        raise BitstreamError(f"{name} bitstream version {found_version} is not supported (want {version})")
    if count == 0:
        raise BitstreamError(f"{name} bitstream holds no layers")
    return count


def unpack(data: bytes, magic: bytes, version: int, name: str, count: int | None = None) -> list[bytes]:
    """Return the payloads of the first ``count`` chunks (all when None), each CRC-checked.

    With ``count`` None the container must end exactly after its last chunk; with a ``count``
    the bytes after chunk ``count`` are not read (a receiver may have only that prefix).
    """
    total = read_header(data, magic, version, name)
    wanted = total if count is None else count
    if not 1 <= wanted <= total:
        raise CodecError(f"{name} bitstream holds {total} layers, cannot decode {wanted}")
    pos = _HEAD.size
    payloads = []
    for index in range(wanted):
        what = f"{name} layer {index}"
        length, pos = _read_varint(data, pos, what)
        if pos + _CRC.size + length > len(data):
            raise BitstreamError(
                f"{what}: truncated (chunk of {length} bytes, {max(0, len(data) - pos - _CRC.size)} present)"
            )
        (crc,) = _CRC.unpack_from(data, pos)
        pos += _CRC.size
        payload = data[pos : pos + length]
        pos += length
        if zlib.crc32(payload) != crc:
            raise BitstreamError(f"{what}: CRC32 mismatch, the chunk is corrupted")
        payloads.append(payload)
    if count is None and pos != len(data):
        raise BitstreamError(f"{name} bitstream has {len(data) - pos} unexpected bytes after its last layer")
    return payloads


def reseal_container(data: bytes, inner: Callable[[bytes], bytes] | None = None) -> bytes:
    """Recompute the CRC of every chunk of a container stream that is complete (``inner`` reseals each
    chunk's own stream first): the fuzzer's way to get mutated bytes past the CRCs to the parsers."""
    out = bytearray(data)
    pos = HEADER_SIZE
    while pos < len(out):
        length = shift = 0
        for _ in range(5):
            if pos >= len(out):
                return bytes(out)
            byte = out[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        start, end = pos + 4, pos + 4 + length
        if end > len(out):
            return bytes(out)
        if inner is not None:
            payload = inner(bytes(out[start:end]))  # same length: only a CRC inside changes
            out[start:end] = payload
        out[pos:start] = struct.pack(">I", zlib.crc32(bytes(out[start:end])))
        pos = end
    return bytes(out)
