"""SHVC through SHM: configuration, YUV conversion and bitstream parsing always; real encodes when
the SHM binaries are installed (``SHM_DIR``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bench.codec import BitstreamError, CodecError
from bench.codecs import shvc
from bench.codecs import yuv as _yuv
from bench.codecs.shvc import LayerGeometry, ShvcCodec, ShvcOptions
from bench.registry import create_codec

DATA = Path(__file__).parents[1] / "data" / "shvc"
SAMPLE = (DATA / "sample_3layer_444_qp32.bit").read_bytes()
SAMPLE_SIZES = [(48, 32), (64, 42), (96, 64)]  # (width, height) of the recorded sample's layers

AVAILABILITY = ShvcCodec().availability()
needs_shm = pytest.mark.skipif(not AVAILABILITY.available, reason=f"SHM unavailable: {AVAILABILITY.reason}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse > 0 else float("inf")


def make_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients and a wave plus mild noise: natural-image-like statistics."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 255 * x / max(width - 1, 1)
    green = 255 * y / max(height - 1, 1)
    blue = 127.5 + 100 * np.sin(2 * np.pi * x / width) * np.cos(2 * np.pi * y / height)
    image = np.stack([red, green, blue], axis=-1) + rng.normal(0, 4, (height, width, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


def cfg_values(text: str) -> dict[str, str]:
    """``Key : value`` lines of an SHM config, comments dropped."""
    values = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(":")
            values[key.strip()] = value.strip()
    return values


# ---------------------------------------------------------------------------------------------
# Registration, options, availability


def test_registered_as_scalable() -> None:
    codec = create_codec("shvc:delta=2@/nowhere")
    assert isinstance(codec, ShvcCodec)
    assert codec.info.scalable and codec.info.max_layers == 8
    assert codec.info.default_qualities == (22, 27, 32, 37, 42, 47)
    assert codec.spec == "shvc:delta=2@/nowhere"


def test_options_parse_and_qps() -> None:
    assert shvc.parse_options(None) == ShvcOptions("444", 8, 0, None)
    options = shvc.parse_options("chroma=420+bits=10+delta=2")
    assert (options.chroma, options.bits, options.delta) == ("420", 10, 2)
    assert options.layer_qps(27, 3) == [27, 29, 31]
    assert shvc.parse_options("offsets=0/-2/3").layer_qps(30, 3) == [30, 28, 33]
    assert shvc.parse_options("").layer_qps(37, 2) == [37, 37]  # default: EL QP = BL QP
    with pytest.raises(CodecError, match="fewer"):
        shvc.parse_options("offsets=0/2").layer_qps(30, 3)


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("chroma=444+bits=10", "no scalable profile"),
        ("chroma=422", "bad value"),
        ("speed=fast", "unknown shvc option"),
        ("delta", "not key=value"),
        ("delta=two", "bad value"),
    ],
)
def test_bad_options_make_the_codec_unavailable(arg: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        shvc.parse_options(arg)
    status = ShvcCodec(arg=arg, source="/nowhere").availability()
    assert not status.available and message in status.reason


def test_unavailable_without_shm_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(shvc.ENV_VAR, raising=False)
    status = ShvcCodec().availability()
    assert not status.available
    assert "export SHM_DIR=" in status.reason and "\n" not in status.reason
    with pytest.raises(CodecError, match="unavailable"):
        ShvcCodec().encode([make_image(16, 16)], 32)


def test_finds_binaries_in_folder_or_its_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(shvc.ENV_VAR, str(tmp_path))
    assert "TAppEncoderStatic or TAppEncoder" in ShvcCodec().availability().reason
    (tmp_path / "bin").mkdir()
    for name in ("TAppEncoderStatic", "TAppDecoder"):
        path = tmp_path / "bin" / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    assert ShvcCodec().availability().available
    encoder, decoder = ShvcCodec().binaries()
    assert (encoder.name, decoder.name) == ("TAppEncoderStatic", "TAppDecoder")
    # The spec's source overrides the environment.
    assert not ShvcCodec(source=str(tmp_path / "elsewhere")).availability().available


# ---------------------------------------------------------------------------------------------
# Geometry and configuration


def test_geometry_pads_to_even_then_to_min_cu() -> None:
    geo = LayerGeometry(width=341, height=255)
    assert (geo.even_width, geo.even_height) == (342, 256)
    assert (geo.coded_width, geo.coded_height) == (344, 256)


def test_config_for_three_layer_pyramid_with_odd_sizes() -> None:
    # Kodak 768x512 with scales 1.33,1.5 (top anchoring): 384x256 -> 512x341 -> 768x512.
    geometries = [LayerGeometry(384, 256), LayerGeometry(512, 341), LayerGeometry(768, 512)]
    files = ["layer0.yuv", "layer1.yuv", "layer2.yuv"]
    for chroma, unit in (("444", 1), ("420", 2)):
        cfg = cfg_values(shvc.layer_config(geometries, ShvcOptions(chroma=chroma), files))
        assert cfg["NumLayers"] == "3" and cfg["InputChromaFormat"] == chroma
        assert [cfg[f"SourceWidth{k}"] for k in range(3)] == ["384", "512", "768"]
        assert [cfg[f"SourceHeight{k}"] for k in range(3)] == ["256", "342", "512"]  # 341 padded to even
        assert all(cfg[f"ConformanceMode{k}"] == "1" for k in range(3))
        assert [cfg[f"InputFile{k}"] for k in range(3)] == files
        assert (cfg["SamplePredRefLayerIds1"], cfg["SamplePredRefLayerIds2"]) == ("0", "1")
        # Layer 1: the 256 reference rows map to 342 of the 344 coded rows -> ratio 342/256.
        assert cfg["RefRegionOffsetPresentFlag1"] == "0"
        assert cfg["ScaledRefLayerOffsetPresentFlag1"] == "1"
        assert cfg["ScaledRefLayerBottomOffset1"] == str(2 // unit)
        assert cfg["ScaledRefLayerRightOffset1"] == "0"
        # Layer 2: layer 1's 342 even rows (coded 344) map to 342 * 512/341 = 513.5 -> 514 rows.
        assert cfg["RefRegionOffsetPresentFlag2"] == "1"
        assert cfg["RefRegionBottomOffset2"] == str(2 // unit)
        assert cfg["RefRegionRightOffset2"] == "0"
        assert cfg["ScaledRefLayerBottomOffset2"] == str(-2 // unit)
        assert cfg["RefLocationOffsetLayerId2"] == "1"
        # Layer sets 0..i with the top layer as output, BL profile 1, EL profile 2.
        assert cfg["NumLayerSets"] == cfg["NumOutputLayerSets"] == "3"
        assert cfg["DefaultTargetOutputLayerIdc"] == "0"  # all layers are output layers
        assert cfg["LayerSetLayerIdList2"] == "0 1 2"
        assert cfg["ListOfProfileTierLevelOls2"] == "1 2 2"
        assert (cfg["LayerPTLIndex0"], cfg["LayerPTLIndex2"]) == ("1", "2")
    assert "ProfileCompatibility7" in cfg_values(shvc.layer_config(geometries, ShvcOptions(), files))
    assert "ProfileCompatibility7" not in cfg


def test_config_has_no_offsets_when_sizes_need_none() -> None:
    geometries = [LayerGeometry(64, 48), LayerGeometry(128, 96)]
    cfg = cfg_values(shvc.layer_config(geometries, ShvcOptions(), ["a", "b"]))
    assert "NumRefLocationOffsets1" not in cfg and cfg["NumLayers"] == "2"


def test_ref_offsets_keep_the_true_ratio() -> None:
    ref, cur = LayerGeometry(512, 341), LayerGeometry(768, 512)
    offsets = shvc.ref_offsets(ref, cur)
    region = ref.coded_height - offsets.ref_bottom
    scaled = cur.coded_height - offsets.scaled_bottom
    assert region == 342 and scaled == 514
    assert abs(scaled / region - 512 / 341) < 2 / region  # within one sample of the true ratio
    values = (offsets.ref_right, offsets.ref_bottom, offsets.scaled_right, offsets.scaled_bottom)
    assert all(v % 2 == 0 for v in values)


def test_config_refuses_shrinking_layers_and_too_many() -> None:
    with pytest.raises(CodecError, match="ratios >= 1"):
        shvc.layer_config([LayerGeometry(64, 48), LayerGeometry(60, 96)], ShvcOptions(), ["a", "b"])
    with pytest.raises(CodecError, match="1 to 8 layers"):
        shvc.check_geometry([LayerGeometry(8, 8)] * 9)


def test_encoder_config_profiles() -> None:
    assert cfg_values(shvc.encoder_config(ShvcOptions()))["Profile2"] == "scalable-main_444"
    cfg = cfg_values(shvc.encoder_config(ShvcOptions(chroma="420", bits=10)))
    assert (cfg["Profile0"], cfg["Profile2"]) == ("main10", "scalable-main10")


# ---------------------------------------------------------------------------------------------
# YUV conversion


def test_bt601_full_range_values() -> None:
    pixels = np.array([[[255, 0, 0], [128, 128, 128], [0, 0, 255]]], dtype=np.uint8)
    y, cb, cr = _yuv.rgb_to_planes(pixels, _yuv.YuvFormat("444", 8))
    assert y.tolist() == [[76, 128, 29]]  # 0.299*255, grey, 0.114*255
    assert cb.tolist() == [[85, 128, 255]]
    assert cr.tolist() == [[255, 128, 107]]
    y10, cb10, _ = _yuv.rgb_to_planes(np.full((2, 2, 3), 255, np.uint8), _yuv.YuvFormat("420", 10))
    assert y10.tolist() == [[1023, 1023], [1023, 1023]] and cb10.tolist() == [[512]]


@pytest.mark.parametrize(
    ("chroma", "bits", "max_error", "min_psnr"),
    [("444", 8, 3, 45), ("444", 10, 0, 99), ("420", 8, 60, 30), ("420", 10, 60, 30)],
)
def test_yuv_round_trip(chroma: str, bits: int, max_error: int, min_psnr: float) -> None:
    fmt = _yuv.YuvFormat(chroma, bits)
    image = make_image(32, 48, seed=3)
    planes = _yuv.rgb_to_planes(image, fmt)
    data = _yuv.planes_to_bytes(planes, fmt)
    assert len(data) == fmt.frame_bytes(32, 48)
    back = _yuv.planes_to_rgb(_yuv.bytes_to_planes(data, 32, 48, fmt), fmt)
    error = np.abs(back.astype(int) - image.astype(int))
    assert error.max() <= max_error and psnr(image, back) >= min_psnr
    if chroma == "444":
        # 10-bit YCbCr holds 8-bit RGB exactly; 8-bit YCbCr loses a little to rounding.
        assert np.array_equal(back, image) == (bits == 10)


def test_420_on_smooth_image_is_close_and_grey_is_exact() -> None:
    fmt = _yuv.YuvFormat("420", 10)
    image = resize(make_image(64, 96, seed=1), 48, 32)
    grey = np.full((8, 12, 3), 77, np.uint8)
    assert np.array_equal(_yuv.planes_to_rgb(_yuv.rgb_to_planes(grey, fmt), fmt), grey)
    assert psnr(image, _yuv.planes_to_rgb(_yuv.rgb_to_planes(image, fmt), fmt)) > 33


def test_yuv_file_layout() -> None:
    fmt = _yuv.YuvFormat("420", 10)
    planes = [np.full((2, 4), 1023, np.uint16), np.full((1, 2), 512, np.uint16), np.zeros((1, 2), np.uint16)]
    data = _yuv.planes_to_bytes(planes, fmt)
    assert data == b"\xff\x03" * 8 + b"\x00\x02" * 2 + b"\x00\x00" * 2  # planar, little-endian
    with pytest.raises(ValueError, match="expected one 4x2"):
        _yuv.bytes_to_planes(data[:-1], 2, 4, fmt)
    with pytest.raises(ValueError, match="even sides"):
        _yuv.rgb_to_planes(np.zeros((3, 4, 3), np.uint8), fmt)


def test_pad_even_replicates_edges() -> None:
    image = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    padded = _yuv.pad_even(image)
    assert padded.shape == (4, 6, 3)
    assert np.array_equal(padded[:3, :5], image)
    assert np.array_equal(padded[3, :5], image[2]) and np.array_equal(padded[:3, 5], image[:, 4])
    even = np.zeros((4, 6, 3), np.uint8)
    assert _yuv.pad_even(even) is even


# ---------------------------------------------------------------------------------------------
# Bitstream and logs (recorded sample)


def test_nal_units_of_recorded_sample() -> None:
    units = shvc.parse_nal_units(SAMPLE)
    # VPS, SPS of each layer, then per layer PPS, IDR slice, suffix SEI (MD5), then end of bitstream.
    assert [(u.nal_type, u.layer_id) for u in units] == [
        (32, 0), (33, 0), (33, 1), (33, 2),
        (34, 0), (19, 0), (40, 0),
        (34, 1), (19, 1), (40, 1),
        (34, 2), (19, 2), (40, 2),
        (37, 0),
    ]  # fmt: skip
    assert units[0].start == 0 and units[-1].end == len(SAMPLE)
    assert all(a.end == b.start for a, b in zip(units, units[1:]))  # every byte belongs to one unit
    assert all(SAMPLE[u.header - 3 : u.header] == b"\x00\x00\x01" for u in units)


def test_byte_attribution_matches_the_encoder_log() -> None:
    counts = shvc.layer_byte_counts(SAMPLE, 3)
    assert sum(counts) == len(SAMPLE) == 1494
    assert counts == [542, 297, 655]  # VPS, SPSs of L0 and the end of bitstream go to the BL
    # SHM's own per-layer accounting (NAL units without start codes, SEI and end of stream), read
    # from the recorded log, agrees with the parser.
    pictures = shvc.parse_encoder_log((DATA / "sample_3layer_444_qp32.encoder.log").read_text())
    assert [p.bits for p in pictures] == [3720, 1832, 4696]
    assert shvc.log_bits_per_layer(SAMPLE, 3) == [p.bits for p in pictures]


def test_extracted_sub_bitstreams_are_the_counted_prefixes() -> None:
    counts = shvc.layer_byte_counts(SAMPLE, 3)
    for top in range(3):
        sub = shvc.extract_layers(SAMPLE, top)
        assert len(sub) == sum(counts[: top + 1])
        assert {u.layer_id for u in shvc.parse_nal_units(sub)} == set(range(top + 1))
    assert shvc.extract_layers(SAMPLE, 2) == SAMPLE


def test_bitstream_errors() -> None:
    with pytest.raises(BitstreamError, match="start code"):
        shvc.parse_nal_units(b"not a bitstream")
    with pytest.raises(BitstreamError, match="garbage"):
        shvc.parse_nal_units(b"\x07" + SAMPLE)
    with pytest.raises(BitstreamError, match="forbidden_zero_bit"):
        shvc.parse_nal_units(b"\x00\x00\x01\x80\x01\x00")
    with pytest.raises(BitstreamError, match="2-byte header"):
        shvc.parse_nal_units(SAMPLE + b"\x00\x00\x01\x40")
    with pytest.raises(BitstreamError, match="layer 2 in a 2-layer"):
        shvc.layer_byte_counts(SAMPLE, 2)


def test_header_round_trip_and_damage() -> None:
    geometries = [LayerGeometry(w, h) for w, h in [(341, 255), (512, 383)]]
    for fmt in (_yuv.YuvFormat("444", 8), _yuv.YuvFormat("420", 10)):
        header = shvc.pack_header(fmt, geometries)
        assert len(header) == 9
        assert shvc.unpack_header(header + SAMPLE) == (fmt, geometries, 9)
    with pytest.raises(BitstreamError, match="empty"):
        shvc.unpack_header(b"")
    with pytest.raises(BitstreamError, match="header byte 0xf2"):
        shvc.unpack_header(b"\xf2" + bytes(8))
    with pytest.raises(BitstreamError, match="shorter than its 9-byte header"):
        shvc.unpack_header(header[:5])
    with pytest.raises(BitstreamError, match="empty layer"):
        shvc.unpack_header(b"\x01\x00\x00\x00\x10")


def test_decode_rejects_damaged_input_before_running_anything() -> None:
    codec = ShvcCodec(source="/nowhere")  # unavailable: a damaged header must still be a BitstreamError
    with pytest.raises(BitstreamError):
        codec.decode(b"\x02\x00")
    header = shvc.pack_header(_yuv.YuvFormat(), [LayerGeometry(48, 32)] * 3)
    with pytest.raises(CodecError, match="cannot decode 4 layers"):
        codec.decode(header + SAMPLE, 4)
    with pytest.raises(BitstreamError, match="start code"):
        codec.decode(header + b"\x01\x02\x03\x04")


def test_encoder_log_parsing() -> None:
    text = (DATA / "sample_3layer_444_qp32.encoder.log").read_text()
    pictures = shvc.parse_encoder_log(text)
    assert [(p.layer, p.qp) for p in pictures] == [(0, 32), (1, 32), (2, 32)]
    assert [p.ratio for p in pictures] == [None, (1.33, 1.31), (1.5, 1.52)]
    assert pictures[0].psnr_y == pytest.approx(32.5821) and pictures[2].psnr_v == pytest.approx(36.3824)
    assert shvc.parse_version(text) == "12.1 (HM-16.10)"


def test_decoder_log_parsing() -> None:
    ok = shvc.parse_decoder_hashes((DATA / "sample_3layer_444_qp32.decoder_lid2.log").read_text())
    assert ok == {0: "OK", 1: "OK", 2: "OK"}
    bad = shvc.parse_decoder_hashes((DATA / "hash_mismatch.decoder.log").read_text())
    assert bad == {0: "OK", 1: "***ERROR***"}
    # what SHM-12.1 prints for the CRC hashes bench's encoder config asks for
    crc = (
        "POC    0 LId: 0 TId: 0 ( I-SLICE IDR_W_RADL, QP 32 ) [DT  0.000] [L0 ] [L1 ] [CRC:eec2,f724,d4a6,(OK)] \n"
        "POC    0 LId: 1 TId: 0 ( P-SLICE IDR_W_RADL, QP 32 ) [DT  0.000] [L0 0(0, {1.50, 1.50}x) ] [L1 ] "
        "[CRC:17f3,f770,5a93,(***ERROR***)] [rxCRC:17f3,f770,5a90] \n"
    )
    assert shvc.parse_decoder_hashes(crc) == {0: "OK", 1: "***ERROR***"}


def test_encoder_asks_for_crc_picture_hashes_not_md5() -> None:
    geometries = [shvc.LayerGeometry(width=64, height=43), shvc.LayerGeometry(width=96, height=64)]
    text = shvc.layer_config(geometries, shvc.ShvcOptions(), ["l0.yuv", "l1.yuv"])
    assert cfg_values(text)["SEIDecodedPictureHash"] == "2"


# ---------------------------------------------------------------------------------------------
# Real SHM runs (SHM_DIR)


@pytest.fixture(scope="module")
def pyramid3() -> list[np.ndarray]:
    top = make_image(64, 96, seed=5)
    return [resize(top, 48, 32), resize(top, 64, 43), top]  # ratios 1.33, 1.5 with an odd height


@pytest.mark.shm
@needs_shm
def test_two_layer_encode_decode() -> None:
    top = make_image(64, 96, seed=2)
    layers = [resize(top, 64, 43), top]
    codec = create_codec("shvc")
    encoded = codec.encode(layers, 32)
    assert sum(encoded.layer_bytes) == len(encoded.data) and all(b > 0 for b in encoded.layer_bytes)
    assert encoded.timings["shm_encoder"] > 0 and encoded.timings["check_shm_decode"] > 0
    # SEI: one CRC picture hash per layer (16 bytes each), not MD5 (58)
    sei = [u for u in shvc.parse_nal_units(encoded.data[9:]) if u.nal_type in (39, 40)]
    assert len(sei) == 2 and all(u.size <= 20 for u in sei)
    run = codec.last_encode
    assert run is not None and "-q0 32 -q1 32" in run.commands[0] and "-lid 1" in run.commands[-1]
    assert run.pictures[1].ratio is not None and abs(run.pictures[1].ratio[0] - 1.5) < 0.02
    stream = encoded.data[9:]
    assert shvc.log_bits_per_layer(stream, 2) == [p.bits for p in run.pictures]
    decoded = codec.decode(encoded.data)
    assert [d.shape for d in decoded] == [im.shape for im in layers]
    for image, rec in zip(layers, decoded):
        assert 28 < psnr(image, rec) < 50
    base_only = codec.decode(encoded.data, num_layers=1)
    assert len(base_only) == 1 and np.array_equal(base_only[0], decoded[0])
    # The base layer's bytes alone (header + its NAL units) decode the base layer.
    base_bytes = encoded.data[:9] + shvc.extract_layers(stream, 0)
    assert len(base_bytes) == encoded.layer_bytes[0]
    assert np.array_equal(codec.decode(base_bytes, 1)[0], decoded[0])


@pytest.mark.shm
@needs_shm
@pytest.mark.parametrize("arg", ["", "chroma=420+bits=10", "chroma=420+delta=2"])
def test_three_layer_odd_sizes(pyramid3: list[np.ndarray], arg: str) -> None:
    codec = create_codec("shvc" + (f":{arg}" if arg else ""))
    fine, coarse = codec.encode(pyramid3, 27), codec.encode(pyramid3, 37)
    for encoded in (fine, coarse):
        assert sum(encoded.layer_bytes) == len(encoded.data)
    assert all(f > c for f, c in zip(fine.layer_bytes, coarse.layer_bytes))
    qps = [p.qp for p in codec.last_encode.pictures]
    assert shvc.log_bits_per_layer(coarse.data[13:], 3) == [p.bits for p in codec.last_encode.pictures]
    assert qps == ([37, 39, 41] if "delta=2" in arg else [37, 37, 37])
    decoded = codec.decode(fine.data)
    assert [d.shape for d in decoded] == [im.shape for im in pyramid3]
    coarse_decoded = codec.decode(coarse.data)
    for image, rec, rough in zip(pyramid3, decoded, coarse_decoded):
        assert psnr(image, rec) > psnr(image, rough) > 24
    two = codec.decode(fine.data, 2)
    assert all(np.array_equal(a, b) for a, b in zip(two, decoded[:2]))


@pytest.mark.shm
@needs_shm
def test_damaged_enhancement_layer_is_caught(pyramid3: list[np.ndarray]) -> None:
    codec = create_codec("shvc")
    encoded = codec.encode(pyramid3[:2], 32)
    data = bytearray(encoded.data)
    slice_unit = [u for u in shvc.parse_nal_units(bytes(data[9:])) if u.layer_id == 1 and u.nal_type == 19][0]
    middle = 9 + (slice_unit.header + slice_unit.end) // 2
    data[middle] ^= 0x5A
    assert codec.decode(bytes(data), 1)[0].shape == pyramid3[0].shape  # the BL is untouched
    with pytest.raises(BitstreamError):
        codec.decode(bytes(data))


@pytest.mark.shm
@needs_shm
def test_version_and_bad_quality() -> None:
    codec = create_codec("shvc")
    assert re.fullmatch(r"\d+\.\d+ \(HM-\d+\.\d+\)", codec.version() or "")
    for quality in ("high", 31.5, None, 52):
        with pytest.raises(CodecError, match="quality|QP"):
            codec.encode([make_image(16, 16)], quality)  # type: ignore[arg-type]


@pytest.mark.shm
@needs_shm
def test_encoder_failure_is_a_codec_error(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = create_codec("shvc")
    monkeypatch.setattr(shvc, "_ENCODER_CFG", shvc._ENCODER_CFG + "NoSuchOption : 1\n")
    with pytest.raises(CodecError, match=r"TAppEncoder\w* \(SHM encoder\) failed with status"):
        codec.encode([make_image(16, 16)], 32)


# ---------------------------------------------------------------------------------------------
# The SHVC common-test-conditions preset


def test_ctc_preset_is_the_ctc_options_and_qps() -> None:
    codec = create_codec("shvc:ctc")
    assert codec.options == ShvcOptions(chroma="420", bits=8, delta=2)
    assert codec.options.layer_qps(22, 2) == [22, 24]
    assert codec.info.default_qualities == (22, 26, 30, 34)
    assert create_codec("shvc").info.default_qualities == (22, 27, 32, 37, 42, 47)  # the preset's QPs stay its own
    assert "JCTVC-Q1009" in shvc.PRESETS["ctc"].follows
    # options after the preset override it: the CTC's other EL QP set
    assert create_codec("shvc:ctc+delta=0").options == ShvcOptions(chroma="420", bits=8, delta=0)
    assert create_codec("shvc:CTC").info.default_qualities == (22, 26, 30, 34)
    assert "shvc:ctc" in ShvcCodec.info.list_variants
    assert "ctc (preset)" in ShvcCodec(arg="speed=1", source="/nowhere").availability().reason


def _fake_shm(folder: Path, mode: int = 0o755) -> None:
    folder.mkdir(parents=True)
    for name in ("TAppEncoderStatic", "TAppDecoderStatic"):
        path = folder / name
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(mode)


def test_a_relative_shm_dir_is_made_absolute_when_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SHM runs in a temporary folder: a relative SHM_DIR there names nothing (issue 27, defect 6)
    _fake_shm(tmp_path / "shm" / "bin")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(shvc.ENV_VAR, "shm")
    codec = ShvcCodec()
    assert codec.availability().available
    assert codec._folder() == tmp_path / "shm"
    encoder, decoder = codec.binaries()  # what runs in SHM's temporary folder
    assert encoder == tmp_path / "shm" / "bin" / "TAppEncoderStatic" and encoder.is_absolute()
    assert decoder == tmp_path / "shm" / "bin" / "TAppDecoderStatic"
    # a spec's relative source too
    assert create_codec("hm@shm").binaries()[0] == encoder


def test_binaries_that_are_not_executable_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_shm(tmp_path / "bin", mode=0o644)
    monkeypatch.setenv(shvc.ENV_VAR, str(tmp_path))
    status = ShvcCodec().availability()
    assert not status.available
    assert f"{tmp_path}/bin/TAppEncoderStatic and {tmp_path}/bin/TAppDecoderStatic are not executable" in status.reason
    monkeypatch.setenv(shvc.ENV_VAR, str(tmp_path / "nowhere"))
    assert f"SHM folder {tmp_path}/nowhere does not exist" in ShvcCodec().availability().reason


def test_decode_refuses_layers_above_max_pixels_before_running_anything() -> None:
    # issue 27: SHM would allocate and write YUV files for whatever a header claims
    fmt = ShvcOptions().yuv
    stream = b"\x00\x00\x01\x40\x01" + b"\x0c" * 8
    data = shvc.pack_header(fmt, [LayerGeometry(2048, 1536), LayerGeometry(4096, 4096)]) + stream
    codec = ShvcCodec()
    with pytest.raises(BitstreamError, match="layer 1 claims 4096x4096 pixels, more than the limit of 6000000"):
        codec.decode(data)
    codec.max_pixels = 1000
    with pytest.raises(BitstreamError, match="layer 0 claims 2048x1536 pixels, more than the limit of 1000"):
        codec.decode(data, 1)
