"""Annex-B byte streams of HEVC (SHVC) and VVC: NAL units, their layers, and sub-bitstreams.

Both standards frame NAL units with start codes (``00 00 01``, optionally after zero bytes) and
begin each with a two-byte header holding the NAL unit type, the layer id and the temporal id;
they differ only in how those fields are packed:

* HEVC (H.265 7.3.1.2): ``forbidden_zero_bit(1) nal_unit_type(6) nuh_layer_id(6) nuh_temporal_id_plus1(3)``;
* VVC (H.266 7.3.1.2): ``forbidden_zero_bit(1) nuh_reserved_zero_bit(1) nuh_layer_id(6) nal_unit_type(5)
  nuh_temporal_id_plus1(3)``.

Layered codecs (``shvc``, ``vtm-ml``) attribute every byte of a stream to a layer with this, and
cut the sub-bitstream a decoder of the first k layers needs. Everything here is a pure function of
the bytes: a stream that is not Annex-B raises ``BitstreamError`` before any binary sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bench.codec import BitstreamError

Standard = Literal["hevc", "vvc"]
STANDARDS: tuple[Standard, ...] = ("hevc", "vvc")

# Parameter sets shared by every layer: bytes a decoder of the base layer alone needs too.
VPS_TYPE = {"hevc": 32, "vvc": 14}

_START_CODE = re.compile(b"\x00\x00\x01")


@dataclass(frozen=True)
class NalUnit:
    """One NAL unit: bytes ``start:end`` of the stream, start code (and leading zeros) included;
    ``header`` is the offset of its 2-byte NAL unit header."""

    start: int
    header: int
    end: int
    nal_type: int
    layer_id: int
    temporal_id: int

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def payload_size(self) -> int:
        """NumBytesInNalUnit: the NAL unit without its start code."""
        return self.end - self.header


def _fields(header: bytes, standard: Standard) -> tuple[int, int, int]:
    """(nal_unit_type, nuh_layer_id, nuh_temporal_id_plus1) of a two-byte NAL unit header."""
    if standard == "hevc":
        return (header[0] >> 1) & 0x3F, ((header[0] & 0x01) << 5) | (header[1] >> 3), header[1] & 0x07
    return header[1] >> 3, header[0] & 0x3F, header[1] & 0x07


def parse_nal_units(stream: bytes, standard: Standard = "hevc") -> list[NalUnit]:
    """Split an Annex-B byte stream into NAL units; BitstreamError when it is not one."""
    if standard not in STANDARDS:
        raise ValueError(f"unknown standard {standard!r}; known: {', '.join(STANDARDS)}")
    name = {"hevc": "an HEVC/SHVC", "vvc": "a VVC"}[standard]
    prefixes = [m.start() for m in _START_CODE.finditer(stream)]
    if not prefixes:
        raise BitstreamError(f"no Annex-B start code (00 00 01) found: not {name} byte stream")
    # Zero bytes before a start code belong to that NAL unit (zero_byte / leading_zero_8bits); a
    # NAL unit never ends in 0x00 (rbsp_stop_one_bit, or 0x03 after cabac_zero_words).
    starts = []
    for pos in prefixes:
        begin = pos
        while begin > 0 and stream[begin - 1] == 0 and (not starts or begin - 1 >= starts[-1][1] + 5):
            begin -= 1
        starts.append((begin, pos))
    if any(stream[: starts[0][0]]):
        raise BitstreamError(f"{starts[0][0]} bytes of garbage before the first start code")
    units = []
    for i, (begin, pos) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(stream)
        header = stream[pos + 3 : pos + 5]
        if len(header) < 2 or pos + 5 > end:
            raise BitstreamError(f"NAL unit at byte {begin} is shorter than its 2-byte header")
        if header[0] & 0x80:
            raise BitstreamError(f"NAL unit at byte {begin} has forbidden_zero_bit set")
        if standard == "vvc" and header[0] & 0x40:
            raise BitstreamError(f"NAL unit at byte {begin} has nuh_reserved_zero_bit set")
        nal_type, layer_id, temporal_id_plus1 = _fields(header, standard)
        if temporal_id_plus1 == 0:
            raise BitstreamError(f"NAL unit at byte {begin} has nuh_temporal_id_plus1 = 0")
        units.append(NalUnit(start=begin, header=pos + 3, end=end, nal_type=nal_type, layer_id=layer_id,
                             temporal_id=temporal_id_plus1 - 1))
    return units


def layer_byte_counts(stream: bytes, num_layers: int, standard: Standard = "hevc") -> list[int]:
    """Bytes of ``stream`` per layer by ``nuh_layer_id`` (the VPS to the base layer); they add up to
    ``len(stream)``. BitstreamError when a NAL unit names a layer beyond ``num_layers``."""
    counts = [0] * num_layers
    for unit in parse_nal_units(stream, standard):
        layer = 0 if unit.nal_type == VPS_TYPE[standard] else unit.layer_id
        if layer >= num_layers:
            raise BitstreamError(f"NAL unit of layer {layer} in a {num_layers}-layer bitstream")
        counts[layer] += unit.size
    return counts


def extract_layers(stream: bytes, top_layer: int, standard: Standard = "hevc") -> bytes:
    """The sub-bitstream of layers 0..``top_layer`` (NAL units with ``nuh_layer_id`` <= top_layer)."""
    return b"".join(stream[u.start : u.end] for u in parse_nal_units(stream, standard) if u.layer_id <= top_layer)
