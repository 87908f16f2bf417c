"""What bench tells VTM (``bench.codecs.vtm.config``): options, presets, layer geometry, EncoderApp
arguments and the configuration files. No binaries needed; the cfg files are compared with a VTM
source tree's when one is on this machine."""

from __future__ import annotations

import hashlib
import re

import pytest

from bench.codec import CodecError
from bench.codecs.vtm import config
from bench.codecs.vtm.build import INTRA_CFG as INTRA_CFG_PATH
from bench.codecs.vtm.build import vtm_version
from bench.codecs.vtm.config import (
    MULTI_LAYER_KEYS,
    SINGLE_LAYER_KEYS,
    SINGLE_LAYER_PRESETS,
    LayerGeometry,
    VtmOptions,
    check_geometry,
    layer_arguments,
    layers_config,
    parse_options,
    recon_argument,
    recon_file,
)
from bench.codecs.yuv import YuvFormat
from tests.codecs.vtm.helpers import cfg_items, cfg_values, vtm_source_trees


def single(arg: str | None) -> VtmOptions:
    return parse_options(arg, "vtm", SINGLE_LAYER_KEYS, SINGLE_LAYER_PRESETS)


def multi(arg: str | None) -> VtmOptions:
    return parse_options(arg, "vtm-ml", MULTI_LAYER_KEYS, {})


# ---------------------------------------------------------------------------------------------
# Options and presets


def test_defaults_are_444_with_equal_layer_qps() -> None:
    for arg in (None, "", "+"):
        assert single(arg) == VtmOptions(chroma="444", delta=0, offsets=None)
        assert multi(arg) == VtmOptions("444", 0, None)
    assert single(None).yuv == YuvFormat("444", 8)
    assert multi(None).layer_qps(37, 3) == [37, 37, 37]


def test_options_parse() -> None:
    assert single("chroma=420") == VtmOptions(chroma="420")
    assert single("chroma=420").yuv == YuvFormat("420", 8)
    assert single(" CHROMA = 420 ") == VtmOptions(chroma="420")  # keys are case-insensitive, spaces dropped
    assert multi("chroma=420+delta=2") == VtmOptions("420", 2, None)
    assert multi("delta=-3") == VtmOptions("444", -3, None)
    assert multi("offsets=0/-2/3") == VtmOptions("444", 0, (0, -2, 3))
    assert multi("delta=1+delta=4").delta == 4  # the last one wins


def test_layer_qps() -> None:
    assert VtmOptions(delta=2).layer_qps(27, 3) == [27, 29, 31]
    assert VtmOptions(delta=-5).layer_qps(40, 2) == [40, 35]
    assert VtmOptions(offsets=(0, -2, 3)).layer_qps(30, 3) == [30, 28, 33]
    assert VtmOptions(offsets=(0, 4, 9)).layer_qps(30, 2) == [30, 34]  # extra offsets are unused
    assert VtmOptions(delta=7, offsets=(0, 1)).layer_qps(20, 2) == [20, 21]  # offsets take precedence
    with pytest.raises(CodecError, match=r"offsets=\(0, 2\) name fewer QP offsets than the 3 layers"):
        VtmOptions(offsets=(0, 2)).layer_qps(30, 3)


def test_ctc_preset_and_options_after_it() -> None:
    preset = SINGLE_LAYER_PRESETS["ctc"]
    assert preset.qualities == (22, 27, 32, 37)
    assert "JVET-T2010" in preset.follows
    assert single("ctc") == VtmOptions(chroma="420")
    assert single("CTC") == VtmOptions(chroma="420")
    assert single("ctc+chroma=444") == VtmOptions(chroma="444")  # later options override the preset
    assert single("chroma=444+ctc") == VtmOptions(chroma="420")  # and the preset overrides earlier ones
    assert config.preset_in("ctc", SINGLE_LAYER_PRESETS) is preset
    assert config.preset_in("chroma=444+ctc", SINGLE_LAYER_PRESETS) is preset
    assert config.preset_in("chroma=420", SINGLE_LAYER_PRESETS) is None
    assert config.preset_in(None, SINGLE_LAYER_PRESETS) is None


@pytest.mark.parametrize(
    ("parse", "arg", "message"),
    [
        (single, "chroma=422", "bad value '422' for vtm option 'chroma'"),
        (single, "chroma=yuv", "bad value 'yuv' for vtm option 'chroma'"),
        (single, "speed=fast", "unknown vtm option 'speed'; known: chroma, ctc (preset)"),
        (single, "delta=2", "unknown vtm option 'delta'; known: chroma, ctc (preset)"),  # single layer
        (single, "offsets=0/2", "unknown vtm option 'offsets'"),
        (single, "chroma", "vtm option 'chroma' is not key=value (e.g. vtm:chroma=420)"),
        (single, "chroma=", "vtm option 'chroma=' is not key=value"),
        (multi, "delta=two", "bad value 'two' for vtm-ml option 'delta'"),
        (multi, "delta=1.5", "bad value '1.5' for vtm-ml option 'delta'"),
        (multi, "offsets=0/x", "bad value '0/x' for vtm-ml option 'offsets'"),
        (multi, "offsets=0//2", "bad value '0//2' for vtm-ml option 'offsets'"),
        (multi, "ctc", "vtm-ml option 'ctc' is not key=value"),  # the preset is vtm's, not vtm-ml's
        (multi, "bits=10", "unknown vtm-ml option 'bits'; known: chroma, delta, offsets"),
    ],
)
def test_bad_options_name_what_is_wrong(parse, arg: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse(arg)
    assert message in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Geometry


def test_444_is_written_at_its_true_size_and_coded_in_multiples_of_8() -> None:
    geo = LayerGeometry(51, 75)
    assert geo.chroma == "444"
    assert (geo.written_width, geo.written_height) == (51, 75)
    assert (geo.coded_width, geo.coded_height) == (56, 80)
    assert geo.padded
    exact = LayerGeometry(64, 48)
    assert (exact.written_width, exact.written_height, exact.coded_width, exact.coded_height) == (64, 48, 64, 48)
    assert not exact.padded


def test_420_is_written_at_even_sizes() -> None:
    geo = LayerGeometry(51, 75, chroma="420")
    assert (geo.written_width, geo.written_height) == (52, 76)
    assert (geo.coded_width, geo.coded_height) == (56, 80)
    edge = LayerGeometry(63, 47, "420")
    assert (edge.written_width, edge.written_height) == (64, 48)
    assert (edge.coded_width, edge.coded_height) == (64, 48)
    assert edge.padded  # cropped back to 63x47 after decoding
    assert (LayerGeometry(1, 1, "420").coded_width, LayerGeometry(1, 1, "420").written_height) == (8, 2)


@pytest.mark.parametrize("size", [(1, 1), (7, 9), (8, 8), (17, 33), (129, 65), (1920, 1080)])
def test_coded_sizes_are_the_smallest_multiple_of_8(size: tuple[int, int]) -> None:
    for chroma in ("444", "420"):
        geo = LayerGeometry(*size, chroma=chroma)
        for written, coded in ((geo.written_width, geo.coded_width), (geo.written_height, geo.coded_height)):
            assert coded % config.MIN_CU == 0 and written <= coded < written + config.MIN_CU


def test_check_geometry_accepts_growing_layers_up_to_8x() -> None:
    check_geometry([LayerGeometry(51, 75)])
    check_geometry([LayerGeometry(16, 16), LayerGeometry(16, 16)])  # equal sizes: ratio 1
    check_geometry([LayerGeometry(8, 6), LayerGeometry(64, 48)])  # exactly 8x
    check_geometry([LayerGeometry(8 + k, 8 + k) for k in range(config.MAX_LAYERS)])
    check_geometry([LayerGeometry(9, 9, "420"), LayerGeometry(80, 80, "420")])  # 10 -> 80 written: 8x


def test_check_geometry_refusals() -> None:
    with pytest.raises(CodecError, match="VTM codes 1 to 8 layers here, got 0"):
        check_geometry([])
    with pytest.raises(CodecError, match="VTM codes 1 to 8 layers here, got 9"):
        check_geometry([LayerGeometry(16 + k, 16 + k) for k in range(9)])
    with pytest.raises(CodecError, match=r"layer 1 \(60x96\) is smaller than layer 0 \(64x48\)"):
        check_geometry([LayerGeometry(64, 48), LayerGeometry(60, 96)])
    with pytest.raises(CodecError, match=r"layer 2 \(70x40\) is smaller than layer 1 \(70x50\)"):
        check_geometry([LayerGeometry(32, 24), LayerGeometry(70, 50), LayerGeometry(70, 40)])
    with pytest.raises(CodecError, match=r"layer 1 is 8\.12x layer 0.*at most 8x") as caught:
        check_geometry([LayerGeometry(8, 8), LayerGeometry(65, 64)])
    assert "reference picture resampling" in str(caught.value)
    with pytest.raises(CodecError, match=r"layer 2 is 9\.00x layer 1.*8x"):
        check_geometry([LayerGeometry(8, 8), LayerGeometry(16, 16), LayerGeometry(144, 16)])
    # 4:2:0 compares the written (even) sizes: 9x9 is written as 10x10, 82/10 > 8
    with pytest.raises(CodecError, match=r"8\.20x.*8x"):
        check_geometry([LayerGeometry(9, 9, "420"), LayerGeometry(81, 81, "420")])
    with pytest.raises(CodecError, match="at most 65535 per side"):
        check_geometry([LayerGeometry(65536, 8)])


# ---------------------------------------------------------------------------------------------
# EncoderApp arguments


def test_common_arguments() -> None:
    one = config.common_arguments(VtmOptions(), 1)
    assert "--Profile=main_10_444" in one and "--InputChromaFormat=444" in one and "--ChromaFormatIDC=444" in one
    assert {"--InputBitDepth=8", "--OutputBitDepth=8", "--FramesToBeEncoded=1", "--ConformanceWindowMode=1",
            "--SEIDecodedPictureHash=2", "--Level=6.2"} <= set(one)
    assert "--Profile=multilayer_main_10_444" in config.common_arguments(VtmOptions(), 2)
    ctc = config.common_arguments(VtmOptions(chroma="420"), 3)
    assert "--Profile=multilayer_main_10" in ctc and "--ChromaFormatIDC=420" in ctc
    assert "--Profile=main_10" in config.common_arguments(VtmOptions(chroma="420"), 1)


def test_layer_arguments_single_layer_have_no_prefix() -> None:
    args = layer_arguments(0, LayerGeometry(51, 75, "420"), 32, "layer0.yuv", 1)
    assert args == ["--InputFile=layer0.yuv", "--SourceWidth=52", "--SourceHeight=76", "--QP=32"]


def test_layer_arguments_of_several_layers_are_prefixed() -> None:
    args = layer_arguments(2, LayerGeometry(51, 75), 35, "layer2.yuv", 3)
    assert args == ["-l2", "--InputFile=layer2.yuv", "-l2", "--SourceWidth=51", "-l2", "--SourceHeight=75",
                    "-l2", "--QP=35"]
    assert layer_arguments(0, LayerGeometry(8, 8), 22, "a.yuv", 2)[:2] == ["-l0", "--InputFile=a.yuv"]


def test_recon_files() -> None:
    assert recon_file(0) == "rec0.yuv" and recon_file(3) == "rec3.yuv"
    assert recon_argument(1) == "--ReconFile=rec0.yuv"  # one layer: told the file it is read back from
    assert recon_argument(2) == recon_argument(8) == "--ReconFile=rec.yuv"  # EncoderApp adds the layer id


# ---------------------------------------------------------------------------------------------
# Configuration files


def test_layers_config_of_three_layers() -> None:
    text = layers_config(3)
    cfg = cfg_values(text)
    assert len(cfg_items(text)) == len(cfg)  # no key twice
    assert cfg["MultiLayerEnabledFlag"] == "1"
    assert cfg["MaxLayers"] == "3"
    assert cfg["MaxSublayers"] == "1"
    assert cfg["AllIndependentLayersFlag"] == "0" and cfg["EachLayerIsAnOlsFlag"] == "0"
    assert cfg["OlsModeIdc"] == "1"
    assert cfg["NumPTLsInVPS"] == "3"
    assert [cfg[f"LayerId{k}"] for k in range(3)] == ["0", "1", "2"]
    assert "NumRefLayers0" not in cfg and "RefLayerIdx0" not in cfg
    assert (cfg["NumRefLayers1"], cfg["RefLayerIdx1"]) == ("1", "0")
    assert (cfg["NumRefLayers2"], cfg["RefLayerIdx2"]) == ("1", "1")
    assert [cfg[f"LevelPTL{k}"] for k in range(3)] == ["6.2"] * 3
    assert cfg["LevelPTL2"] == config.LEVEL
    assert [cfg[f"OlsPTLIdx{k}"] for k in range(3)] == ["0", "1", "2"]
    assert "LayerId3" not in cfg and "OlsPTLIdx3" not in cfg


def test_layers_config_grows_with_the_layers() -> None:
    for n in (2, 5, config.MAX_LAYERS):
        cfg = cfg_values(layers_config(n))
        assert cfg["MaxLayers"] == cfg["NumPTLsInVPS"] == str(n)
        assert cfg[f"RefLayerIdx{n - 1}"] == str(n - 2) and f"LayerId{n}" not in cfg


def test_intra_cfg_is_vtm_23_13s_all_intra_configuration() -> None:
    cfg = cfg_values(config.INTRA_CFG)
    assert len(cfg) == len(cfg_items(config.INTRA_CFG)) == 84
    assert (cfg["IntraPeriod"], cfg["GOPSize"], cfg["CTUSize"], cfg["InternalBitDepth"]) == ("1", "1", "128", "10")
    assert (cfg["ALF"], cfg["LMCSEnable"], cfg["DepQuant"], cfg["SAO"]) == ("1", "1", "1", "1")
    assert "BitstreamFile" not in cfg and "ReconFile" not in cfg  # bench names them on the command line
    assert re.fullmatch("[0-9a-f]{64}", config.INTRA_CFG_SHA256)


TREES = vtm_source_trees()
TREES_23_13 = [root for root in TREES if vtm_version(root) == "23.13"]  # other releases may differ: a note


@pytest.mark.skipif(not TREES_23_13, reason="no VTM-23.13 source tree here (BENCH_VTM_SOURCE, or VTM_DIR/../src "
                                            "of a `bench vtm build`) to compare cfg/encoder_intra_vtm.cfg with")
def test_intra_cfg_equals_the_trees_file() -> None:
    for root in TREES_23_13:
        tree_text = (root / INTRA_CFG_PATH).read_text()
        # the tree's file, less the File I/O lines that bench sets per run, comments dropped
        expected = [item for item in cfg_items(tree_text) if item[0] not in ("BitstreamFile", "ReconFile")]
        assert cfg_items(config.INTRA_CFG) == expected, root
        if hashlib.sha256((root / INTRA_CFG_PATH).read_bytes()).hexdigest() == config.INTRA_CFG_SHA256:
            continue
        pytest.fail(f"{root / INTRA_CFG_PATH}: same key/value lines, but not the file INTRA_CFG_SHA256 names")


@pytest.mark.skipif(not [r for r in TREES if (r / "cfg/multi-layer/two_layers.cfg").is_file()],
                    reason="no VTM source tree with cfg/multi-layer/two_layers.cfg here")
def test_layers_config_follows_two_layers_cfg() -> None:
    root = next(r for r in TREES if (r / "cfg/multi-layer/two_layers.cfg").is_file())
    theirs = cfg_values((root / "cfg/multi-layer/two_layers.cfg").read_text())
    ours = cfg_values(layers_config(2))
    same = ("MultiLayerEnabledFlag", "MaxLayers", "DefaultPtlDpbHrdMaxTidFlag", "AllIndependentLayersFlag",
            "EachLayerIsAnOlsFlag", "NumPTLsInVPS", "LayerId0", "LayerId1", "NumRefLayers1", "RefLayerIdx1",
            "OlsPTLIdx0", "OlsPTLIdx1")
    assert {key: ours[key] for key in same} == {key: theirs[key] for key in same}
    # bench's deliberate differences: every layer of an OLS is output, one sub-layer (all intra)
    assert (theirs["OlsModeIdc"], ours["OlsModeIdc"]) == ("0", "1")
    assert ours["MaxSublayers"] == "1"
