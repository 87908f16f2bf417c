"""The ``vtm`` and ``vtm-ml`` codecs (``bench.codecs.vtm.plugin``): registration, specs, availability,
refusals, headers and the encoder's error paths without VTM (fake binaries); real encodes and
decodes when VTM is installed (``VTM_DIR``), skipped with the reason otherwise."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from bench import registry
from bench.codec import BitstreamError, CodecError
from bench.codecs import annexb
from bench.codecs.external import check_frame
from bench.codecs.simulcast import SimulcastCodec
from bench.codecs.vtm import plugin
from bench.codecs.vtm.config import LayerGeometry, VtmOptions
from bench.codecs.vtm.plugin import VtmCodec, VtmMultiLayerCodec, pack_header, unpack_header
from bench.codecs.yuv import YuvFormat
from bench.registry import create_codec
from tests.codecs.vtm.helpers import (
    SAMPLE,
    SAMPLE_DECODER_LOG,
    SAMPLE_LOG,
    SAMPLE_QP,
    SAMPLE_SIZES,
    SAMPLE_VERSION,
    needs_vtm,
    psnr,
    resize,
    sample_layers,
)

STREAM = SAMPLE.read_bytes()
SAMPLE_GEOMETRIES = [LayerGeometry(w, h) for w, h in SAMPLE_SIZES]
SAMPLE_DATA = pack_header("444", SAMPLE_GEOMETRIES) + STREAM  # what vtm-ml's encode returned
HEADER = 9  # vtm-ml's header of two layers: 1 + 4 * 2 bytes


def image(height: int, width: int) -> np.ndarray:
    return check_frame(height, width)


def fake_vtm(folder: Path, encoder: str = "exit 0", decoder: str = "exit 0", mode: int = 0o755,
             names: tuple[str, str] = ("EncoderAppStatic", "DecoderAppStatic")) -> Path:
    """A folder of stand-in VTM binaries: shell scripts running ``encoder`` and ``decoder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in zip(names, (encoder, decoder)):
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(mode)
    return folder


@pytest.fixture()
def no_vtm_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(plugin.ENV_VAR, raising=False)


# ---------------------------------------------------------------------------------------------
# Registration and declarations


def test_registered_codecs() -> None:
    single = create_codec("vtm:chroma=420@/nowhere")
    assert type(single) is VtmCodec and single.name == "vtm"
    assert not single.info.scalable and single.info.max_layers == 1 and not single.multi_layer
    assert single.spec == "vtm:chroma=420@/nowhere"
    assert single.info.default_qualities == (22, 27, 32, 37, 42, 47)
    assert single.info.family is None and registry.codec_family("vtm") == "vtm" and not single.info.anchors_every_family
    multi = create_codec("vtm-ml")
    assert type(multi) is VtmMultiLayerCodec and multi.name == "vtm-ml"
    assert multi.info.scalable and multi.multi_layer and multi.info.max_layers == 8
    assert not multi.info.prefix_decodable  # NAL units of the layers interleave: a cut file is no prefix
    assert multi.info.default_qualities == single.info.default_qualities
    # reports pair vtm-ml with VTM's single-layer codec and compare every scalable codec with it
    assert multi.info.family == "vtm" and registry.codec_family("vtm-ml:delta=2") == "vtm"
    assert (multi.info.report_role, multi.info.anchors_every_family) == ("vtm-ml", True)
    assert registry.codec_family("simulcast:vtm") == "vtm"


def test_declared_for_the_runner_and_bench_check() -> None:
    for codec in (VtmCodec(), VtmMultiLayerCodec()):
        assert codec.info.slow and registry.is_slow(codec.name)  # minutes per job: started first
        assert not codec.info.deterministic  # external software: compared with a tolerance
        assert codec.coding_threads(8) == 1  # VTM is single-threaded, whatever a run asks for
        assert codec.fingerprint() == {"external": "VTM"}
        assert codec.complexity([(48, 64)], 32) is None
    assert create_codec("simulcast:vtm").fingerprint() == {"external": "VTM"}
    assert VtmCodec.info.list_variants == ("vtm:ctc", "simulcast:vtm") and VtmMultiLayerCodec.info.list_variants == ()


def test_rate_counts_are_declared_and_true() -> None:
    single, multi = registry.rate_counts("vtm"), registry.rate_counts("vtm-ml")
    assert "5-byte size header" in single and "CRC picture-hash SEI" in single
    assert "1 + 4·layers byte size header" in multi and "per layer a CRC picture-hash SEI" in multi
    assert "VPS/SPS/PPS/APS" in single and "VPS/SPS/PPS/APS" in multi
    simulcast = registry.rate_counts("simulcast:vtm")
    assert simulcast.startswith("its container") and simulcast.endswith(f"each layer's bitstream: {single}")
    # what they claim: the header sizes, and ~17-byte hash SEIs (16 in the recorded stream)
    assert len(pack_header("444", [LayerGeometry(51, 75)])) == 5
    assert len(pack_header("420", [LayerGeometry(8 * k, 8 * k) for k in range(1, 4)])) == 1 + 4 * 3
    seis = [u.size for u in annexb.parse_nal_units(STREAM, "vvc") if u.nal_type == 24]
    assert seis == [16, 16]


def test_ctc_preset_brings_its_qps() -> None:
    ctc = create_codec("vtm:ctc")
    assert ctc.options == VtmOptions(chroma="420")
    assert ctc.info.default_qualities == (22, 27, 32, 37)
    assert create_codec("vtm:chroma=444+ctc").info.default_qualities == (22, 27, 32, 37)
    # per instance: the class's declaration stays
    assert VtmCodec().info.default_qualities == VtmCodec.info.default_qualities == (22, 27, 32, 37, 42, 47)
    assert create_codec("vtm:chroma=420").info.default_qualities == (22, 27, 32, 37, 42, 47)  # options alone: no preset
    assert create_codec("simulcast:vtm:ctc").info.default_qualities == (22, 27, 32, 37)


def test_spec_arguments_select_options() -> None:
    assert create_codec("vtm").options == VtmOptions("444", 0, None)
    assert create_codec("vtm-ml:chroma=420").options == VtmOptions("420", 0, None)
    multi = create_codec("vtm-ml:chroma=420+delta=2")
    assert multi.options == VtmOptions("420", 2, None) and multi.options.yuv == YuvFormat("420", 8)
    assert multi._layer_qps(30, 3) == [30, 32, 34]
    assert create_codec("vtm-ml:offsets=0/-3").options.layer_qps(37, 2) == [37, 34]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("vtm:chroma=422", "bad value '422' for vtm option 'chroma'"),
        ("vtm:delta=2", "unknown vtm option 'delta'; known: chroma, ctc (preset)"),
        ("vtm-ml:ctc", "vtm-ml option 'ctc' is not key=value (e.g. vtm-ml:chroma=420)"),
        ("vtm-ml:speed=fast", "unknown vtm-ml option 'speed'; known: chroma, delta, offsets"),
        ("simulcast:vtm:delta=1", "unknown vtm option 'delta'"),
    ],
)
def test_bad_options_make_the_codec_unavailable(spec: str, message: str, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv(plugin.ENV_VAR, str(fake_vtm(tmp_path / "bin")))  # binaries there: the options decide
    codec = create_codec(spec)
    status = codec.availability()
    assert not status.available and message in status.reason
    if not isinstance(codec, SimulcastCodec):
        with pytest.raises(CodecError, match=re.escape(message)):
            _ = codec.options


# ---------------------------------------------------------------------------------------------
# Availability and binaries


@pytest.mark.parametrize("name", ["vtm", "vtm-ml"])
def test_unavailable_without_vtm_dir(name: str, no_vtm_dir: None) -> None:
    status = create_codec(name).availability()
    assert not status.available and "\n" not in status.reason
    assert status.reason.startswith("VTM binaries not configured: build VTM (the VVC reference software, version 23")
    assert "`bench vtm build SRC`" in status.reason and "export VTM_DIR=/path/to/VTM/bin" in status.reason
    assert status.reason.endswith(f"(or name it: {name}@/path/to/VTM/bin)")
    with pytest.raises(CodecError, match=f"^{name} is unavailable: VTM binaries not configured"):
        create_codec(name).encode([image(16, 16)], 32)
    assert create_codec(name).version() is None
    simulcast = create_codec("simulcast:vtm").availability()
    assert simulcast.reason.startswith("inner codec vtm is unavailable: VTM binaries not configured")


def test_unavailable_with_an_empty_or_missing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugin.ENV_VAR, str(tmp_path))
    reason = VtmCodec().availability().reason
    assert reason.startswith(f"no executable EncoderAppStatic or EncoderApp and DecoderAppStatic or DecoderApp in "
                             f"{tmp_path} or {tmp_path}/bin: build VTM")
    fake_vtm(tmp_path, names=("EncoderApp", "Decoder"))  # the encoder alone is not enough
    assert VtmMultiLayerCodec().availability().reason.startswith(
        f"no executable DecoderAppStatic or DecoderApp in {tmp_path} or {tmp_path}/bin")
    monkeypatch.setenv(plugin.ENV_VAR, str(tmp_path / "nowhere"))
    assert VtmCodec().availability().reason.startswith(f"VTM folder {tmp_path}/nowhere does not exist: build VTM")


def test_binaries_that_are_not_executable_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_vtm(tmp_path / "bin", mode=0o644)
    monkeypatch.setenv(plugin.ENV_VAR, str(tmp_path))
    status = VtmCodec().availability()
    assert not status.available
    assert status.reason.startswith(f"{tmp_path}/bin/EncoderAppStatic and {tmp_path}/bin/DecoderAppStatic are not "
                                    "executable (chmod +x")


def test_finds_binaries_in_the_folder_or_its_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_vtm(tmp_path / "bin", names=("EncoderApp", "DecoderApp"))
    monkeypatch.setenv(plugin.ENV_VAR, str(tmp_path))
    assert VtmCodec().availability().available
    assert VtmCodec().binaries() == (tmp_path / "bin" / "EncoderApp", tmp_path / "bin" / "DecoderApp")
    fake_vtm(tmp_path / "bin")  # the static builds are preferred
    assert VtmCodec().binaries() == (tmp_path / "bin" / "EncoderAppStatic", tmp_path / "bin" / "DecoderAppStatic")
    # a spec's folder wins over VTM_DIR
    other = fake_vtm(tmp_path / "other", names=("EncoderApp", "DecoderAppStatic"))
    assert create_codec(f"vtm-ml@{other}").binaries() == (other / "EncoderApp", other / "DecoderAppStatic")
    assert not create_codec(f"vtm@{tmp_path / 'elsewhere'}").availability().available


def test_a_relative_vtm_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the binaries run in a temporary folder, where a relative path would name nothing
    fake_vtm(tmp_path / "vtm" / "bin")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(plugin.ENV_VAR, "vtm")
    encoder, decoder = VtmCodec().binaries()
    assert encoder == tmp_path / "vtm" / "bin" / "EncoderAppStatic" and encoder.is_absolute()
    assert create_codec("vtm-ml@vtm/bin").binaries()[1] == decoder


def test_version_is_asked_of_the_decoder(tmp_path: Path, no_vtm_dir: None) -> None:
    folder = fake_vtm(tmp_path, decoder="echo; echo 'VVCSoftware: VTM Decoder Version 23.13 [Linux][GCC 12.2.0]'")
    assert VtmCodec(source=str(folder)).version() == "23.13"
    assert plugin.parse_version(SAMPLE_LOG.read_text()) == SAMPLE_VERSION == "23.13"
    assert plugin.parse_version(SAMPLE_DECODER_LOG.read_text()) == "23.13"
    assert VtmCodec(source=str(fake_vtm(tmp_path / "quiet"))).version() is None  # prints no version


# ---------------------------------------------------------------------------------------------
# Refusals before anything runs (no binaries)


def test_geometry_refusals_name_the_ratio_and_why() -> None:
    multi = VtmMultiLayerCodec(source="/nowhere")
    with pytest.raises(CodecError) as caught:
        multi.encode([image(8, 8), image(72, 72)], 32)
    assert str(caught.value) == ("layer 1 is 9.00x layer 0: VVC's inter-layer prediction resamples by at most 8x "
                                 "(H.266 reference picture resampling), so vtm-ml cannot code this ratio")
    with pytest.raises(CodecError, match=r"^layer 2 is 8\.50x layer 1: .*at most 8x"):
        multi.encode([image(8, 8), image(16, 16), image(136, 16)], 32)
    with pytest.raises(CodecError, match=r"layer 1 \(60x96\) is smaller than layer 0 \(64x48\)"):
        multi.encode([image(48, 64), image(96, 60)], 32)
    with pytest.raises(CodecError, match="VTM codes 1 to 8 layers here, got 9"):
        multi.encode([image(8 + k, 8 + k) for k in range(9)], 32)
    with pytest.raises(CodecError, match="vtm-ml needs at least one layer image"):
        multi.encode([], 32)
    with pytest.raises(CodecError, match=r"expected an HxWx3 uint8 RGB image, got shape \(16, 16\)"):
        multi.encode([np.zeros((16, 16), np.uint8)], 32)
    single = VtmCodec(source="/nowhere")
    with pytest.raises(CodecError, match=r"vtm codes exactly one image, got 2 layers \(simulcast:vtm codes each"):
        single.encode([image(16, 16), image(32, 32)], 32)


def test_quality_refusals() -> None:
    codec = VtmMultiLayerCodec(arg="delta=5", source="/nowhere")
    for quality in ("high", 31.5, None, True, float("nan"), float("inf")):
        message = f"vtm-ml quality is an integer base-layer QP, got {re.escape(repr(quality))}"
        with pytest.raises(CodecError, match=message):
            codec.encode([image(16, 16)], quality)  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=r"layer QPs \[60, 65\] outside -12\.\.63"):
        codec.encode([image(16, 16), image(32, 32)], 60)
    with pytest.raises(CodecError, match=r"layer QPs \[-13\] outside -12\.\.63"):
        VtmCodec(source="/nowhere").encode([image(16, 16)], -13)
    with pytest.raises(CodecError, match="offsets=\\(0,\\) name fewer QP offsets than the 2 layers"):
        VtmMultiLayerCodec(arg="offsets=0", source="/nowhere").encode([image(16, 16), image(32, 32)], 30)
    assert codec._layer_qps(32.0, 2) == [32, 37]  # a float that is an integer is accepted  # type: ignore[arg-type]


def test_header_round_trip_and_damage() -> None:
    geometries = [LayerGeometry(51, 75), LayerGeometry(102, 150), LayerGeometry(65535, 1)]
    for chroma in ("444", "420"):
        header = pack_header(chroma, geometries)
        assert header[0] == {"444": 0x03, "420": 0x13}[chroma] and len(header) == 13
        fmt, got, size = unpack_header(header + STREAM)
        assert (fmt, size) == (YuvFormat(chroma, 8), 13)
        assert got == [LayerGeometry(g.width, g.height, chroma) for g in geometries]
    assert pack_header("444", SAMPLE_GEOMETRIES) == bytes.fromhex("02 0040 0030 0080 0060")
    with pytest.raises(BitstreamError, match="^empty vtm-ml bitstream$"):
        unpack_header(b"", "vtm-ml")
    for byte in (0x00, 0x09, 0x22, 0xF1):  # no layers, 9 layers, unknown formats
        with pytest.raises(BitstreamError, match=f"not a bench vtm bitstream \\(header byte 0x{byte:02x}\\)"):
            unpack_header(bytes([byte]) + bytes(40))
    with pytest.raises(BitstreamError, match="vtm bitstream of 6 bytes is shorter than its 9-byte header"):
        unpack_header(SAMPLE_DATA[:6])
    with pytest.raises(BitstreamError, match="vtm header names an empty layer"):
        unpack_header(b"\x01\x00\x10\x00\x00")


def test_decode_refuses_damage_before_running_anything() -> None:
    multi = VtmMultiLayerCodec(source="/nowhere")  # unavailable: damage must still be a BitstreamError
    with pytest.raises(BitstreamError, match="empty vtm-ml bitstream"):
        multi.decode(b"")
    with pytest.raises(BitstreamError, match="not a vtm bitstream: its header names 2 layers \\(a vtm-ml one\\?\\)"):
        VtmCodec(source="/nowhere").decode(SAMPLE_DATA)
    for count in (0, 3):
        with pytest.raises(CodecError, match=f"cannot decode {count} layers from a 2-layer vtm-ml bitstream"):
            multi.decode(SAMPLE_DATA, count)
    with pytest.raises(BitstreamError, match="no Annex-B start code"):
        multi.decode(SAMPLE_DATA[:HEADER] + b"\x01\x02\x03\x04")
    one_layer = pack_header("444", SAMPLE_GEOMETRIES[:1]) + STREAM  # a header that hides layer 1
    with pytest.raises(BitstreamError, match="NAL unit of layer 1 in a 1-layer bitstream"):
        multi.decode(one_layer)
    # an intact stream with no binaries is a missing tool, not damage
    with pytest.raises(CodecError, match="^vtm-ml is unavailable: VTM folder /nowhere does not exist") as caught:
        multi.decode(SAMPLE_DATA)
    assert not isinstance(caught.value, BitstreamError)


def test_decode_refuses_layers_above_max_pixels() -> None:
    data = pack_header("444", [LayerGeometry(2048, 1536), LayerGeometry(4096, 4096)]) + STREAM
    codec = VtmMultiLayerCodec(source="/nowhere")
    with pytest.raises(BitstreamError, match="vtm-ml layer 1 claims 4096x4096 pixels, more than the limit of 6000000"):
        codec.decode(data)
    codec.max_pixels = 1000
    with pytest.raises(BitstreamError, match="layer 0 claims 2048x1536 pixels, more than the limit of 1000"):
        codec.decode(data, 1)


# ---------------------------------------------------------------------------------------------
# What bench runs, through stand-in binaries


def test_encoder_command_line_and_failure(tmp_path: Path) -> None:
    folder = fake_vtm(tmp_path, encoder="echo 'intra.cfg:3 error: Unknown option' >&2; exit 1")
    codec = VtmMultiLayerCodec(arg="chroma=420+delta=2", source=str(folder))
    with pytest.raises(CodecError) as caught:
        codec.encode([image(25, 33), image(47, 65)], 30)
    assert str(caught.value) == ("EncoderAppStatic (VTM encoder) failed with status 1; its last lines:\n"
                                 "intra.cfg:3 error: Unknown option")
    run = codec.last_encode
    assert run is not None and len(run.commands) == 1 and set(run.configs) == {"intra.cfg", "layers.cfg"}
    args = shlex.split(run.commands[0])
    assert args[:5] == [str(folder / "EncoderAppStatic"), "-c", "intra.cfg", "-c", "layers.cfg"]
    assert {"--Profile=multilayer_main_10", "--ChromaFormatIDC=420", "--BitstreamFile=str.bit",
            "--ReconFile=rec.yuv"} <= set(args)
    # 4:2:0 layers are written at even sizes: 33x25 -> 34x26, 65x47 -> 66x48; layer 1 at QP + 2
    assert args[-16:] == ["-l0", "--InputFile=layer0.yuv", "-l0", "--SourceWidth=34", "-l0", "--SourceHeight=26",
                          "-l0", "--QP=30", "-l1", "--InputFile=layer1.yuv", "-l1", "--SourceWidth=66",
                          "-l1", "--SourceHeight=48", "-l1", "--QP=32"]
    single = VtmCodec(source=str(folder))
    with pytest.raises(CodecError, match="VTM encoder"):
        single.encode([image(25, 33)], 37)
    args = shlex.split(single.last_encode.commands[0])
    assert args[1:3] == ["-c", "intra.cfg"] and "-c" not in args[3:] and "--ReconFile=rec0.yuv" in args
    assert args[-4:] == ["--InputFile=layer0.yuv", "--SourceWidth=33", "--SourceHeight=25", "--QP=37"]


POC_LINES = "\n".join(
    f"POC    0 LId:  {k} TId: 0 ( IDR_N_LP, I-SLICE, QP 32 )       1664 bits [Y 38.8403 dB    U 39.3171 dB    "
    f"V 39.3254 dB] [ET     1 ] [L0] [L1] [CRC:4da7,6568,ecaa]" for k in range(2)
)


def test_an_encoder_that_writes_nothing_is_caught(tmp_path: Path) -> None:
    silent = fake_vtm(tmp_path / "silent", encoder="echo 'VVCSoftware: VTM Encoder Version 23.13'")
    with pytest.raises(CodecError, match="EncoderApp's log lacks a picture line per layer: VVCSoftware"):
        VtmMultiLayerCodec(source=str(silent)).encode([image(16, 16), image(32, 32)], 32)
    lines = fake_vtm(tmp_path / "lines", encoder=f"cat <<'EOF'\n{POC_LINES}\nEOF")
    codec = VtmMultiLayerCodec(source=str(lines))
    with pytest.raises(CodecError, match="EncoderApp wrote no str.bit, rec0.yuv, rec1.yuv: POC"):
        codec.encode([image(16, 16), image(32, 32)], 32)
    assert [(p.layer, p.bits) for p in codec.last_encode.pictures] == [(0, 1664), (1, 1664)]
    with pytest.raises(CodecError, match="lacks a picture line per layer"):  # two lines are not one picture
        VtmCodec(source=str(lines)).encode([image(16, 16)], 32)


# ---------------------------------------------------------------------------------------------
# Logs (recorded sample)


def test_encoder_log_parsing() -> None:
    pictures = plugin.parse_encoder_log(SAMPLE_LOG.read_text())
    assert pictures == [
        plugin.EncodedPicture(layer=0, qp=SAMPLE_QP, bits=1664, psnr_y=38.8403, psnr_u=39.3171, psnr_v=39.3254),
        plugin.EncodedPicture(layer=1, qp=SAMPLE_QP, bits=744, psnr_y=38.9429, psnr_u=39.0752, psnr_v=39.1838),
    ]


def test_decoder_log_parsing() -> None:
    assert plugin.parse_decoder_hashes(SAMPLE_DECODER_LOG.read_text()) == {0: "OK", 1: "OK"}
    # DecoderApp's line when a hash does not match (and MD5 hashes, which bench does not ask for)
    text = ("POC    0 LId:  0 TId: 0 ( IDR_N_LP, I-SLICE, QP 32 ) [DT  0.000] [L0] [L1] [CRC:4da7,6568,ecaa,(OK)]\n"
            "POC    0 LId:  1 TId: 0 ( IDR_N_LP, P-SLICE, QP 32 ) [DT  0.001] [L0 0(0.50x, 0.50x).0] [L1] "
            "[CRC:349d,7874,dfaf,(***ERROR***)] [rxCRC:349d,7874,dfae]\n"
            "POC    0 LId:  2 TId: 0 ( IDR_N_LP, P-SLICE, QP 32 ) [DT  0.001] [L0] [L1] "
            "[MD5:0123456789abcdef0123456789abcdef,(OK)]\n")
    assert plugin.parse_decoder_hashes(text) == {0: "OK", 1: "***ERROR***", 2: "OK"}
    assert plugin.parse_decoder_hashes("POC    0 LId:  0 TId: 0 ( IDR_N_LP, I-SLICE, QP 32 ) [DT  0.000]") == {}


def test_decoder_output_names() -> None:
    assert plugin._recon_name(0, 1, "dec0") == "dec0.yuv"
    assert [plugin._recon_name(k, 3, "dec2") for k in range(3)] == ["dec2.layer0.yuv", "dec2.layer1.yuv",
                                                                     "dec2.layer2.yuv"]


# ---------------------------------------------------------------------------------------------
# Real VTM runs (VTM_DIR)

@needs_vtm
@pytest.mark.vtm
def test_the_recorded_sample_decodes() -> None:
    codec = create_codec("vtm-ml")
    decoded = codec.decode(SAMPLE_DATA)
    assert [d.shape for d in decoded] == [(48, 64, 3), (96, 128, 3)]
    for layer, rec in zip(sample_layers(), decoded):
        assert 34 < psnr(layer, rec) < 37  # 35.1 dB each with VTM-23.13 (the picture's noise limits it)
    assert plugin.parse_decoder_hashes(codec.last_decode.logs[-1]) == {0: "OK", 1: "OK"}
    assert codec.last_decode.commands[-1].endswith("-b sub1.bit -o dec1.yuv -d 8 -p 1")
    base = codec.decode(SAMPLE_DATA, 1)
    assert len(base) == 1 and np.array_equal(base[0], decoded[0])
    # the base layer's bytes alone (header + its NAL units) decode it too
    alone = SAMPLE_DATA[:HEADER] + annexb.extract_layers(STREAM, 0, "vvc")
    assert len(alone) == HEADER + 224
    assert np.array_equal(codec.decode(alone, 1)[0], decoded[0])
    assert re.fullmatch(r"\d+\.\d+", codec.version() or "")


@needs_vtm
@pytest.mark.vtm
def test_a_damaged_enhancement_layer_is_caught() -> None:
    codec = create_codec("vtm-ml")
    data = bytearray(SAMPLE_DATA)
    slice_unit = [u for u in annexb.parse_nal_units(STREAM, "vvc") if u.layer_id == 1 and u.nal_type == 8][0]
    data[HEADER + (slice_unit.header + slice_unit.end) // 2] ^= 0x5A
    assert np.array_equal(codec.decode(bytes(data), 1)[0], codec.decode(SAMPLE_DATA, 1)[0])  # the BL is untouched
    damage = r"DecoderApp\w* \(VTM decoder, layers 0\.\.1\) failed|did not confirm the picture hash of layer 1"
    with pytest.raises(BitstreamError, match=damage):
        codec.decode(bytes(data))


@pytest.mark.slow
@pytest.mark.vtm
@needs_vtm
def test_encoding_the_sample_layers_again_gives_the_sample() -> None:
    codec = create_codec("vtm-ml")
    if codec.version() != SAMPLE_VERSION:
        pytest.skip(f"the sample was recorded with VTM {SAMPLE_VERSION}, this is VTM {codec.version()}")
    encoded = codec.encode(sample_layers(), SAMPLE_QP)
    # what bench tells VTM has not changed since the sample was recorded (else record it again:
    # see tests/codecs/vtm/helpers.py)
    assert encoded.data == SAMPLE_DATA
    assert encoded.layer_bytes == [HEADER + 224, 109]
    assert codec.last_encode.pictures == plugin.parse_encoder_log(SAMPLE_LOG.read_text())


@pytest.mark.slow
@pytest.mark.vtm
@needs_vtm
def test_tiny_two_layer_round_trip() -> None:
    top = image(48, 64)
    layers = [resize(top, 32, 24), top]
    codec = create_codec("vtm-ml")
    encoded = codec.encode(layers, 42)
    stream = encoded.data[HEADER:]
    assert encoded.data[:HEADER] == pack_header("444", [LayerGeometry(32, 24), LayerGeometry(64, 48)])
    counts = annexb.layer_byte_counts(stream, 2, "vvc")
    assert encoded.layer_bytes == [HEADER + counts[0], counts[1]] and all(c > 0 for c in counts)
    assert sum(encoded.layer_bytes) == len(encoded.data)
    assert encoded.timings["vtm_encoder"] > 0 and encoded.timings["check_vtm_decode"] > 0
    run = codec.last_encode
    assert [(p.layer, p.qp) for p in run.pictures] == [(0, 42), (1, 42)]
    # the encoder's own bit counts: each layer's bytes without its 16-byte hash SEI
    assert [p.bits for p in run.pictures] == [8 * (c - 16) for c in counts]
    # one encode, then the sub-bitstream of layers 0..k decoded and compared for each k
    assert len(run.commands) == 3 and run.commands[1].endswith("-p 0") and run.commands[2].endswith("-p 1")
    assert re.fullmatch(r"\d+\.\d+", run.version or "")
    decoded = codec.decode(encoded.data)
    assert [d.shape for d in decoded] == [(24, 32, 3), (48, 64, 3)]
    assert all(d.dtype == np.uint8 for d in decoded)
    for layer, rec in zip(layers, decoded):
        assert 27 < psnr(layer, rec) < 33  # 30.0 and 29.9 dB with VTM-23.13
    assert np.array_equal(codec.decode(encoded.data, 1)[0], decoded[0])


@pytest.mark.slow
@pytest.mark.vtm
@needs_vtm
@pytest.mark.parametrize(
    ("spec", "sizes", "qps", "written"),
    [
        ("vtm-ml", [(33, 25), (65, 47)], [37, 37], [(33, 25), (65, 47)]),
        ("vtm-ml:chroma=420+delta=2", [(33, 25), (65, 47)], [37, 39], [(34, 26), (66, 48)]),
        ("vtm:ctc", [(45, 31)], [37], [(46, 32)]),
    ],
)
def test_odd_sizes_are_padded_and_cropped(spec: str, sizes: list[tuple[int, int]], qps: list[int],
                                          written: list[tuple[int, int]]) -> None:
    top = image(sizes[-1][1], sizes[-1][0])
    layers = [resize(top, w, h) for w, h in sizes[:-1]] + [top]
    codec = create_codec(spec)
    encoded = codec.encode(layers, 37)
    assert sum(encoded.layer_bytes) == len(encoded.data) and all(b > 0 for b in encoded.layer_bytes)
    run = codec.last_encode
    assert [p.qp for p in run.pictures] == qps
    for k, (w, h) in enumerate(written):  # what VTM was given: 4:2:0 made even by repeating the edge
        layer = f"-l{k} " if len(sizes) > 1 else ""
        assert f"{layer}--SourceWidth={w} {layer}--SourceHeight={h}" in run.commands[0]
    decoded = codec.decode(encoded.data)
    assert [d.shape for d in decoded] == [(h, w, 3) for w, h in sizes]
    for layer, rec in zip(layers, decoded):
        assert 28 < psnr(layer, rec) < 37  # 30 to 35 dB with VTM-23.13


@pytest.mark.slow
@pytest.mark.vtm
@needs_vtm
def test_simulcast_of_vtm() -> None:
    top = image(32, 48)
    layers = [resize(top, 24, 16), top]
    codec = create_codec("simulcast:vtm")
    assert codec.availability().available
    encoded = codec.encode(layers, 42)
    assert sum(encoded.layer_bytes) == len(encoded.data) and len(encoded.layer_bytes) == 2
    decoded = codec.decode(encoded.data)
    assert [d.shape for d in decoded] == [(16, 24, 3), (32, 48, 3)]
    assert all(psnr(layer, rec) > 25 for layer, rec in zip(layers, decoded))
    first = sum(encoded.layer_bytes[:1])  # simulcast's layers are consecutive chunks
    assert np.array_equal(codec.decode(encoded.data[:first], 1)[0], decoded[0])


@pytest.mark.vtm
@needs_vtm
def test_encoder_failure_is_a_codec_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "INTRA_CFG", plugin.INTRA_CFG + "NoSuchOption : 1\n")
    with pytest.raises(CodecError, match=r"EncoderApp\w* \(VTM encoder\) failed with status 1; its last lines:\n"
                                         r"(.|\n)*Unknown option `NoSuchOption'"):
        create_codec("vtm").encode([image(16, 16)], 32)
