"""The file written by ``bench encode``: which codec made the bitstream, then the codec's own bytes.

Layout: 8-byte magic ``BENCHBS1``, 4-byte big-endian header length, a UTF-8 JSON header (codec spec,
quality, scales, anchoring, layer sizes, payload length and CRC32), then the payload. The envelope
lets ``bench decode`` pick the codec; the payload is exactly what the codec's ``encode`` returned
and what the bits in result records count.

For a codec whose layers are consecutive byte ranges of its bitstream (``CodecInfo.prefix_decodable``)
the header also holds each layer's byte count and CRC32, so a file cut after layer k (a receiver
that has only the first layers) still decodes layers 0..k, and damage is named by layer.
"""

from __future__ import annotations

import itertools
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from bench.errors import EnvelopeError

MAGIC = b"BENCHBS1"
MAX_HEADER = 64 * 1024


@dataclass
class Envelope:
    header: dict[str, Any]
    payload: bytes


def pack(header: dict[str, Any], payload: bytes, layer_bytes: list[int] | None = None) -> bytes:
    """The file; ``layer_bytes`` (consecutive per-layer byte counts) adds per-layer CRCs."""
    header = dict(header, payload_bytes=len(payload), payload_crc32=zlib.crc32(payload))
    if layer_bytes is not None:
        if sum(layer_bytes) != len(payload):
            raise ValueError(f"layer bytes {layer_bytes} do not add up to the payload's {len(payload)}")
        offsets = list(itertools.accumulate(layer_bytes, initial=0))
        header["layer_bytes"] = list(layer_bytes)
        header["layer_crc32"] = [zlib.crc32(payload[a:b]) for a, b in zip(offsets, offsets[1:])]
    text = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack(">I", len(text)) + text + payload


def unpack(data: bytes, num_layers: int | None = None) -> Envelope:
    """Header and payload, verified. With ``num_layers`` and per-layer CRCs in the header, only
    the first ``num_layers`` layers must be present and intact, and the payload returned is theirs."""
    if not data or not data.startswith(MAGIC[: len(data)]):
        raise EnvelopeError("not a bench bitstream file (bad magic); was it written by `bench encode`?")
    if len(data) < len(MAGIC) + 4:
        raise EnvelopeError(f"bench bitstream is truncated ({len(data)} bytes, inside its header)")
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
    sizes = header.get("sizes")
    if not isinstance(sizes, list) or not sizes or not all(
        isinstance(size, list) and len(size) == 2 and all(type(v) is int and v > 0 for v in size) for size in sizes
    ):
        raise EnvelopeError("bench bitstream header is corrupted (bad layer sizes)")
    payload = data[start + length :]
    if isinstance(header.get("layer_bytes"), list) and len(header["layer_bytes"]) != len(sizes):
        raise EnvelopeError("bench bitstream header is corrupted (layer sizes and layer bytes disagree)")
    layered = _layer_table(header)
    if layered is not None:
        return Envelope(header, _checked_layers(payload, layered, num_layers, header.get("payload_bytes")))
    expected = header.get("payload_bytes")
    if expected != len(payload):
        raise EnvelopeError(f"bitstream is truncated or has trailing bytes: payload has {len(payload)} bytes, "
                            f"header says {expected}")
    if zlib.crc32(payload) != header.get("payload_crc32"):
        raise EnvelopeError("bitstream payload is corrupted (CRC32 mismatch)")
    return Envelope(header, payload)


def _layer_table(header: dict[str, Any]) -> list[tuple[int, int]] | None:
    """(bytes, crc32) per layer, when the header has a valid table; None for a whole-payload check."""
    sizes, crcs = header.get("layer_bytes"), header.get("layer_crc32")
    if crcs is None:
        return None
    if (
        not isinstance(sizes, list)
        or not isinstance(crcs, list)
        or len(sizes) != len(crcs)
        or not all(type(v) is int and v >= 0 for v in sizes + crcs)
        or sum(sizes) != header.get("payload_bytes")
    ):
        raise EnvelopeError("bench bitstream header is corrupted (bad per-layer table)")
    return list(zip(sizes, crcs))


def _checked_layers(payload: bytes, table: list[tuple[int, int]], num_layers: int | None,
                    total_bytes: int) -> bytes:
    wanted = len(table) if num_layers is None else min(num_layers, len(table))
    end = 0
    for k, (size, crc) in enumerate(table[:wanted]):
        if len(payload) < end + size:
            hint = f"; its first {k} layer(s) are complete: decode them with --layers {k}" if k else ""
            raise EnvelopeError(
                f"bitstream is truncated in layer {k} (the file has {len(payload)} of {total_bytes} payload "
                f"bytes){hint}"
            )
        if zlib.crc32(payload[end : end + size]) != crc:
            raise EnvelopeError(f"layer {k} of the bitstream is corrupted (CRC32 mismatch)")
        end += size
    if wanted == len(table) and len(payload) != end:
        raise EnvelopeError(f"bitstream has {len(payload) - end} trailing bytes after its last layer")
    return payload[:end]
