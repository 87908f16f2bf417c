"""VVC Annex-B byte streams (``bench.codecs.annexb`` with ``standard="vvc"``): NAL units, bytes per
``nuh_layer_id`` and sub-bitstreams, on the recorded two-layer VTM stream and on constructed
edge cases. No binaries needed."""

from __future__ import annotations

import pytest

from bench.codec import BitstreamError, CodecError
from bench.codecs import annexb
from bench.codecs.vtm.plugin import parse_encoder_log
from bench.errors import BenchError, exit_status
from tests.codecs.vtm.helpers import SAMPLE, SAMPLE_LOG

STREAM = SAMPLE.read_bytes()

# H.266 Table 5: the NAL unit types VTM writes for one all-intra picture
AUD, VPS, SPS, PPS, PREFIX_APS, IDR_N_LP, SUFFIX_SEI = 20, 14, 15, 16, 17, 8, 24


def nal(layer: int, nal_type: int, payload: bytes = b"\x80", temporal_id: int = 0, zero_byte: bool = False) -> bytes:
    """One NAL unit with its start code: ``forbidden_zero_bit(0) nuh_reserved_zero_bit(0)
    nuh_layer_id(6) nal_unit_type(5) nuh_temporal_id_plus1(3)``, then ``payload``."""
    header = bytes([layer & 0x3F, (nal_type << 3) | (temporal_id + 1)])
    return (b"\x00" if zero_byte else b"") + b"\x00\x00\x01" + header + payload


# ---------------------------------------------------------------------------------------------
# The recorded two-layer stream


def test_nal_units_of_the_recorded_stream() -> None:
    units = annexb.parse_nal_units(STREAM, "vvc")
    # access unit delimiter, VPS, then per layer SPS, PPS, ALF APS, the IDR slice and the suffix SEI
    # holding its CRC picture hash (layer 1's slice is a P slice predicted from layer 0: still IDR_N_LP)
    assert [(u.nal_type, u.layer_id) for u in units] == [
        (AUD, 0), (VPS, 0),
        (SPS, 0), (PPS, 0), (PREFIX_APS, 0), (IDR_N_LP, 0), (SUFFIX_SEI, 0),
        (SPS, 1), (PPS, 1), (PREFIX_APS, 1), (IDR_N_LP, 1), (SUFFIX_SEI, 1),
    ]  # fmt: skip
    assert [u.size for u in units] == [7, 23, 34, 21, 16, 107, 16, 35, 21, 16, 21, 16]
    assert all(u.temporal_id == 0 for u in units)
    assert units[0].start == 0 and units[-1].end == len(STREAM) == 333
    assert all(a.end == b.start for a, b in zip(units, units[1:]))  # every byte belongs to one unit
    assert all(STREAM[u.header - 3 : u.header] == b"\x00\x00\x01" for u in units)
    # VTM writes a zero_byte (4-byte start code) before parameter sets and the AUD, not before
    # slices and SEI
    assert [u.header - u.start for u in units] == [4, 4, 4, 4, 4, 3, 3, 4, 4, 4, 3, 3]
    assert [u.payload_size for u in units] == [u.size - (u.header - u.start) for u in units]


def test_layer_bytes_add_up_to_the_file() -> None:
    counts = annexb.layer_byte_counts(STREAM, 2, "vvc")
    assert counts == [224, 109]
    assert sum(counts) == len(STREAM) == SAMPLE.stat().st_size
    # more layers than the stream holds: the missing ones have no bytes
    assert annexb.layer_byte_counts(STREAM, 4, "vvc") == [224, 109, 0, 0]


def test_layer_bytes_agree_with_the_encoder_log() -> None:
    # VTM logs a picture's bits before it writes the suffix SEI with the picture's hash: its count
    # is the layer's bytes (start codes included) without that SEI, an independent check of the parser
    pictures = parse_encoder_log(SAMPLE_LOG.read_text())
    assert [(p.layer, p.bits) for p in pictures] == [(0, 1664), (1, 744)]
    units = annexb.parse_nal_units(STREAM, "vvc")
    counts = annexb.layer_byte_counts(STREAM, 2, "vvc")
    for picture in pictures:
        sei = sum(u.size for u in units if u.layer_id == picture.layer and u.nal_type == SUFFIX_SEI)
        assert sei == 16
        assert picture.bits == 8 * (counts[picture.layer] - sei)


def test_crc_picture_hashes_are_in_the_stream() -> None:
    # the CRCs EncoderApp printed for each layer are the payload of that layer's suffix SEI
    pictures = SAMPLE_LOG.read_text()
    assert "[CRC:4da7,6568,ecaa]" in pictures and "[CRC:349d,7874,dfae]" in pictures
    seis = [u for u in annexb.parse_nal_units(STREAM, "vvc") if u.nal_type == SUFFIX_SEI]
    assert [STREAM[u.header + 2 : u.end] for u in seis] == [
        bytes.fromhex("840801004da76568ecaa80"),  # payloadType 132 (decoded picture hash), 8 bytes: CRC
        bytes.fromhex("84080100349d7874dfae80"),
    ]


def test_sub_bitstreams_are_the_counted_prefixes() -> None:
    counts = annexb.layer_byte_counts(STREAM, 2, "vvc")
    base = annexb.extract_layers(STREAM, 0, "vvc")
    assert len(base) == counts[0] and base == STREAM[:224]  # VTM writes layer 0 first
    assert {u.layer_id for u in annexb.parse_nal_units(base, "vvc")} == {0}
    assert annexb.layer_byte_counts(base, 1, "vvc") == [224]
    assert annexb.extract_layers(STREAM, 1, "vvc") == STREAM
    assert annexb.extract_layers(STREAM, 7, "vvc") == STREAM


def test_the_standard_decides_how_a_header_is_read() -> None:
    # VVC's AUD header 00 a1 read as HEVC is nal_unit_type 0 of layer 20
    hevc = annexb.parse_nal_units(STREAM, "hevc")
    assert (hevc[0].nal_type, hevc[0].layer_id) == (0, 20)
    with pytest.raises(BitstreamError, match="NAL unit of layer 20 in a 2-layer bitstream"):
        annexb.layer_byte_counts(STREAM, 2, "hevc")
    with pytest.raises(ValueError, match="unknown standard 'avc'; known: hevc, vvc"):
        annexb.parse_nal_units(STREAM, "avc")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Constructed streams and damage


def test_header_fields_of_constructed_units() -> None:
    stream = nal(0, VPS, zero_byte=True) + nal(5, SPS, b"\x12\x34\x80", temporal_id=2) + nal(63, IDR_N_LP)
    units = annexb.parse_nal_units(stream, "vvc")
    assert [(u.nal_type, u.layer_id, u.temporal_id) for u in units] == [(VPS, 0, 0), (SPS, 5, 2), (IDR_N_LP, 63, 0)]
    assert [(u.start, u.header, u.end) for u in units] == [(0, 4, 7), (7, 10, 15), (15, 18, 21)]


def test_vps_bytes_go_to_the_base_layer() -> None:
    stream = nal(0, SPS) + nal(1, VPS) + nal(1, SPS, b"\x11\x22\x80")
    assert annexb.layer_byte_counts(stream, 2, "vvc") == [6 + 6, 8]


def test_zero_bytes_before_a_start_code_belong_to_the_next_unit() -> None:
    stream = b"\x00\x00" + nal(0, VPS) + b"\x00\x00\x00" + nal(1, SPS)
    units = annexb.parse_nal_units(stream, "vvc")
    assert [(u.start, u.header, u.end) for u in units] == [(0, 5, 8), (8, 14, 17)]
    assert annexb.layer_byte_counts(stream, 2, "vvc") == [8, 9]
    # leading zeros of the whole stream are its first unit's
    assert annexb.layer_byte_counts(b"\x00\x00" + STREAM, 2, "vvc") == [226, 109]


def test_emulation_prevention_hides_start_codes_in_payloads() -> None:
    # 00 00 01 inside a payload is written 00 00 03 01: no new unit starts there
    stream = nal(0, IDR_N_LP, b"\x11\x00\x00\x03\x01\x22\x80") + nal(0, SUFFIX_SEI)
    assert [u.size for u in annexb.parse_nal_units(stream, "vvc")] == [12, 6]


def test_empty_and_start_code_free_input() -> None:
    for data in (b"", b"\x00", b"\x00\x00", b"\x00\x01\x00\xa1", b"not a bitstream"):
        with pytest.raises(BitstreamError, match=r"no Annex-B start code \(00 00 01\) found: .*VVC byte stream"):
            annexb.parse_nal_units(data, "vvc")
    with pytest.raises(BitstreamError, match="no Annex-B start code"):
        annexb.layer_byte_counts(b"", 1, "vvc")
    with pytest.raises(BitstreamError, match="no Annex-B start code"):
        annexb.extract_layers(b"", 0, "vvc")


def test_truncated_start_codes() -> None:
    # a 3-byte start code is enough: the first byte of the 4-byte one may go
    assert annexb.layer_byte_counts(STREAM[1:], 2, "vvc") == [223, 109]
    # two bytes gone leave "00 01 00 a1 88" before the next start code (the VPS's)
    with pytest.raises(BitstreamError, match="^5 bytes of garbage before the first start code$"):
        annexb.parse_nal_units(STREAM[2:], "vvc")
    with pytest.raises(BitstreamError, match="^1 bytes of garbage before the first start code$"):
        annexb.parse_nal_units(b"\x07" + STREAM, "vvc")
    # the stream cut inside layer 1's first start code (bytes 224..227): the zeros that are left
    # are trailing zero bytes of layer 0's last unit, and layer 1 has no bytes
    assert annexb.layer_byte_counts(STREAM[:227], 2, "vvc") == [227, 0]
    # cut after a start code, or inside the 2-byte header after it
    for cut in (228, 229):
        with pytest.raises(BitstreamError, match="^NAL unit at byte 224 is shorter than its 2-byte header$"):
            annexb.parse_nal_units(STREAM[:cut], "vvc")
    with pytest.raises(BitstreamError, match="NAL unit at byte 333 is shorter than its 2-byte header"):
        annexb.layer_byte_counts(STREAM + b"\x00\x00\x01", 2, "vvc")


def test_a_cut_inside_a_payload_is_not_seen_by_the_parser() -> None:
    # Annex B has no lengths: a stream cut inside a slice still parses. The CRC picture hash in the
    # suffix SEI (checked by DecoderApp, which bench requires) is what catches it.
    units = annexb.parse_nal_units(STREAM[:150], "vvc")
    assert [u.nal_type for u in units] == [AUD, VPS, SPS, PPS, PREFIX_APS, IDR_N_LP]
    assert units[-1].end == 150
    assert annexb.layer_byte_counts(STREAM[:150], 2, "vvc") == [150, 0]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"\x80\x71", "forbidden_zero_bit set"),
        (b"\x40\x71", "nuh_reserved_zero_bit set"),
        (b"\x00\x70", "nuh_temporal_id_plus1 = 0"),
    ],
)
def test_bad_headers(header: bytes, message: str) -> None:
    data = STREAM + b"\x00\x00\x01" + header + b"\x80"
    with pytest.raises(BitstreamError, match=f"^NAL unit at byte 333 has {message}$") as caught:
        annexb.parse_nal_units(data, "vvc")
    # the project's error for a damaged bitstream: a CodecError the command line prints as one line
    assert isinstance(caught.value, CodecError) and isinstance(caught.value, BenchError)
    assert exit_status(caught.value) == 2
    with pytest.raises(BitstreamError, match=message):
        annexb.layer_byte_counts(data, 2, "vvc")


def test_reserved_bit_is_vvcs_only() -> None:
    # 40 01 is HEVC's VPS header; in VVC the same first byte sets nuh_reserved_zero_bit
    data = b"\x00\x00\x01\x40\x01\x0c\x80"
    assert [(u.nal_type, u.layer_id) for u in annexb.parse_nal_units(data, "hevc")] == [(32, 0)]
    with pytest.raises(BitstreamError, match="nuh_reserved_zero_bit"):
        annexb.parse_nal_units(data, "vvc")


def test_units_of_layers_beyond_the_count_are_refused() -> None:
    with pytest.raises(BitstreamError, match="^NAL unit of layer 1 in a 1-layer bitstream$"):
        annexb.layer_byte_counts(STREAM, 1, "vvc")
    with pytest.raises(BitstreamError, match="NAL unit of layer 63 in a 8-layer bitstream"):
        annexb.layer_byte_counts(STREAM + nal(63, SPS), 8, "vvc")
