"""The file written by ``bench encode``: which codec made the bitstream, then the codec's own bytes.

Layout: 8-byte magic ``BENCHBS1``, 4-byte big-endian header length, a UTF-8 JSON header (codec spec,
quality, scales, anchoring, layer sizes, payload length and CRC32), then the payload. The envelope
lets ``bench decode`` pick the codec; the payload is exactly what the codec's ``encode`` returned
and what the bits in result records count.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

MAGIC = b"BENCHBS1"
MAX_HEADER = 64 * 1024


class EnvelopeError(Exception):
    """The file is not a bench bitstream, or it is truncated or corrupted."""


@dataclass
class Envelope:
    header: dict[str, Any]
    payload: bytes


def pack(header: dict[str, Any], payload: bytes) -> bytes:
    header = dict(header, payload_bytes=len(payload), payload_crc32=zlib.crc32(payload))
    text = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack(">I", len(text)) + text + payload


def unpack(data: bytes) -> Envelope:
    if len(data) < len(MAGIC) + 4 or not data.startswith(MAGIC):
        raise EnvelopeError("not a bench bitstream file (bad magic); was it written by `bench encode`?")
    (length,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
    if length > MAX_HEADER or len(MAGIC) + 4 + length > len(data):
        raise EnvelopeError("bench bitstream header is truncated or corrupted")
    start = len(MAGIC) + 4
    try:
        header = json.loads(data[start : start + length].decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EnvelopeError("bench bitstream header is corrupted (not valid JSON)") from None
    if not isinstance(header, dict) or not isinstance(header.get("codec"), str) or not header["codec"]:
        raise EnvelopeError("bench bitstream header is corrupted (no codec name)")
    sizes = header.get("sizes", [])
    if not isinstance(sizes, list) or not all(
        isinstance(size, list) and len(size) == 2 and all(type(v) is int and v > 0 for v in size) for size in sizes
    ):
        raise EnvelopeError("bench bitstream header is corrupted (bad layer sizes)")
    payload = data[start + length :]
    expected = header.get("payload_bytes")
    if expected != len(payload):
        raise EnvelopeError(f"bitstream is truncated or has trailing bytes: payload has {len(payload)} bytes, "
                            f"header says {expected}")
    if zlib.crc32(payload) != header.get("payload_crc32"):
        raise EnvelopeError("bitstream payload is corrupted (CRC32 mismatch)")
    return Envelope(header, payload)
