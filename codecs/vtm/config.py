"""What bench tells VTM: options of a spec, layer geometry, and the configuration files.

The coding tools are those of VTM's ``cfg/encoder_intra_vtm.cfg`` (the JVET common test conditions'
all-intra configuration), written out here so that a run does not depend on the cfg folder of an
installation; ``bench vtm build`` checks that the tree it builds holds the same file. Multi-layer
streams add the layer structure of ``cfg/multi-layer/two_layers.cfg`` generalised to K+1 layers:
layer k predicts from layer k-1 (``NumRefLayers``/``RefLayerIdx``), and output layer set i holds
layers 0..i, all of them output layers (``OlsModeIdc 1``), so one decoder run of set i writes every
layer it decodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from bench.codec import CodecError
from bench.codecs.yuv import YuvFormat

# VTM-23.13 cfg/encoder_intra_vtm.cfg, its key: value lines in order (comments dropped). Its
# SHA-256 is INTRA_CFG_SHA256; ``bench vtm build`` compares the tree's file with it.
INTRA_CFG_SHA256 = "5647353c1d7a5a64c4180afee1f7f5f902ada9198c08839baa972395a3dc1e34"
INTRA_CFG = """\
Profile : auto
MaxCUWidth : 64
MaxCUHeight : 64
IntraPeriod : 1
DecodingRefreshType : 1
GOPSize : 1
FastSearch : 1
SearchRange : 64
HadamardME : 1
FEN : 1
FDM : 1
QP : 32
MaxDeltaQP : 0
MaxCuDQPSubdiv : 0
DeltaQpRD : 0
RDOQ : 1
RDOQTS : 1
DeblockingFilterOffsetInPPS : 1
DeblockingFilterDisable : 0
DeblockingFilterBetaOffset_div2 : -2
DeblockingFilterTcOffset_div2 : -5
DeblockingFilterCbBetaOffset_div2 : -2
DeblockingFilterCbTcOffset_div2 : -5
DeblockingFilterCrBetaOffset_div2 : -2
DeblockingFilterCrTcOffset_div2 : -5
DeblockingFilterMetric : 0
InternalBitDepth : 10
SAO : 1
TransformSkip : 1
TransformSkipFast : 1
TransformSkipLog2MaxSize : 5
SAOLcuBoundary : 0
SEIDecodedPictureHash : 0
CbQpOffset : 0
CrQpOffset : 0
SameCQPTablesForAllChroma : 1
QpInValCb : 17 27 32 44
QpOutValCb : 17 29 34 41
TemporalSubsampleRatio : 8
ReWriteParamSets : 1
CTUSize : 128
LCTUFast : 1
DualITree : 1
MinQTLumaISlice : 8
MinQTChromaISliceInChromaSamples : 4
MinQTNonISlice : 8
MaxMTTHierarchyDepth : 3
MaxMTTHierarchyDepthISliceL : 3
MaxMTTHierarchyDepthISliceC : 3
MTS : 1
MTSIntraMaxCand : 4
MTSInterMaxCand : 4
SBT : 1
LFNST : 1
ISP : 1
Affine : 1
SbTMVP : 1
MaxNumMergeCand : 6
LMChroma : 1
DepQuant : 1
IMV : 1
ALF : 1
IBC : 0
AllowDisFracMMVD : 1
AffineAmvr : 0
LMCSEnable : 1
LMCSSignalType : 0
LMCSUpdateCtrl : 1
LMCSOffset : 2
MRL : 1
MIP : 1
JointCbCr : 1
ChromaTS : 1
PBIntraFast : 1
ISPFast : 1
FastMrg : 1
AMaxBT : 1
FastMIP : 1
FastLFNST : 1
AffineAmvrEncOpt : 0
ALFAllowPredefinedFilters : 1
ALFStrengthTargetLuma : 1.0
ALFStrengthTargetChroma : 1.0
CCALFStrengthTarget : 1.0
"""

MAX_LAYERS = 8  # EncoderApp's per-layer options are -l0 .. -l9; 8 as SHM, far more than bench runs
MIN_CU = 8  # VVC pictures are coded in multiples of max(8, MinCbSizeY); VTM pads to it (ConformanceWindowMode 1)
MAX_SIDE = 65535  # the header stores each side as uint16
MAX_RATIO = 8.0  # H.266 8.3.2: a reference picture may be up to 8x smaller than the picture predicted from it
LEVEL = "6.2"
# 2 = CRC: a 16-bit CRC per plane (~17 bytes per layer) lets the decoder confirm every picture, as
# SHVC's streams in bench do; MD5 would add ~40 bytes per layer to the rate.
PICTURE_HASH = 2

# Profiles (single layer, multi-layer) per chroma format; 8-bit input is coded at InternalBitDepth 10.
PROFILES = {"444": ("main_10_444", "multilayer_main_10_444"), "420": ("main_10", "multilayer_main_10")}
FORMAT_CODES = {"444": 0, "420": 1}
FORMATS_BY_CODE = {code: YuvFormat(chroma, 8) for chroma, code in FORMAT_CODES.items()}


@dataclass(frozen=True)
class VtmOptions:
    """What a spec argument selects: chroma format, and each layer's QP relative to the base layer's."""

    chroma: str = "444"
    delta: int = 0
    offsets: tuple[int, ...] | None = None

    @property
    def yuv(self) -> YuvFormat:
        return YuvFormat(self.chroma, 8)

    def layer_qps(self, quality: int, num_layers: int) -> list[int]:
        if self.offsets is not None:
            if len(self.offsets) < num_layers:
                raise CodecError(f"offsets={self.offsets} name fewer QP offsets than the {num_layers} layers")
            return [quality + self.offsets[k] for k in range(num_layers)]
        return [quality + k * self.delta for k in range(num_layers)]


@dataclass(frozen=True)
class Preset:
    """A named recipe: the options it stands for, the QPs a run codes unless told otherwise, and
    the published conditions it follows."""

    options: str
    qualities: tuple[int, ...]
    follows: str


# vtm:ctc is the JVET common test conditions' all-intra configuration as published: 4:2:0 (the
# CTC's sequences are 4:2:0), QPs 22/27/32/37 (JVET-T2010).
SINGLE_LAYER_PRESETS = {
    "ctc": Preset(options="chroma=420", qualities=(22, 27, 32, 37),
                  follows="JVET common test conditions (JVET-T2010), all intra: 4:2:0, QP 22/27/32/37"),
}
SINGLE_LAYER_KEYS = ("chroma",)
MULTI_LAYER_KEYS = ("chroma", "delta", "offsets")


def preset_in(arg: str | None, presets: Mapping[str, Preset]) -> Preset | None:
    """The last preset named in a spec argument, or None."""
    found = None
    for item in (arg or "").split("+"):
        found = presets.get(item.strip().lower(), found)
    return found


def parse_options(arg: str | None, codec: str, keys: Sequence[str], presets: Mapping[str, Preset]) -> VtmOptions:
    """Parse ``key=value[+key=value...]`` (``chroma`` 444|420, ``delta`` int, ``offsets``
    ``/``-separated ints) or a preset name; ValueError naming what is wrong."""
    items: list[str] = []
    for item in (arg or "").split("+"):
        preset = presets.get(item.strip().lower())
        items += preset.options.split("+") if preset else [item]
    values: dict[str, object] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            raise ValueError(f"{codec} option {item!r} is not key=value (e.g. {codec}:chroma=420)")
        if key not in keys:
            known = ", ".join([*keys, *(f"{name} (preset)" for name in presets)])
            raise ValueError(f"unknown {codec} option {key!r}; known: {known}")
        try:
            if key == "chroma":
                if value not in PROFILES:
                    raise ValueError
                values[key] = value
            elif key == "delta":
                values[key] = int(value)
            else:
                values[key] = tuple(int(v) for v in value.split("/"))
        except ValueError:
            raise ValueError(f"bad value {value!r} for {codec} option {key!r}") from None
    return VtmOptions(**values)  # type: ignore[arg-type]


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class LayerGeometry:
    """A layer's true size, the size written to the YUV file, and the size VTM codes it at.

    4:4:4 is written at its true size (VVC's conformance window counts single samples there); 4:2:0
    needs even sides, so the last row/column is repeated and cropped after decoding. VTM pads the
    written picture to a multiple of MIN_CU and signals the padding as the conformance window."""

    width: int
    height: int
    chroma: str = "444"

    @property
    def written_width(self) -> int:
        return self.width + self.width % 2 if self.chroma == "420" else self.width

    @property
    def written_height(self) -> int:
        return self.height + self.height % 2 if self.chroma == "420" else self.height

    @property
    def coded_width(self) -> int:
        return _ceil_to(self.written_width, MIN_CU)

    @property
    def coded_height(self) -> int:
        return _ceil_to(self.written_height, MIN_CU)

    @property
    def padded(self) -> bool:
        return (self.coded_width, self.coded_height) != (self.width, self.height)


def check_geometry(geometries: Sequence[LayerGeometry]) -> None:
    """CodecError unless there are 1..MAX_LAYERS layers, each at least as large as the one below and
    at most MAX_RATIO times larger: the ratios VVC's reference picture resampling allows."""
    if not 1 <= len(geometries) <= MAX_LAYERS:
        raise CodecError(f"VTM codes 1 to {MAX_LAYERS} layers here, got {len(geometries)}")
    for k, geo in enumerate(geometries):
        if geo.width > MAX_SIDE or geo.height > MAX_SIDE:
            raise CodecError(f"layer {k} is {geo.width}x{geo.height}; at most {MAX_SIDE} per side")
        if not k:
            continue
        below = geometries[k - 1]
        if geo.width < below.width or geo.height < below.height:
            raise CodecError(f"layer {k} ({geo.width}x{geo.height}) is smaller than layer {k - 1} "
                             f"({below.width}x{below.height}); bench's VVC layers grow")
        ratio = max(geo.written_width / below.written_width, geo.written_height / below.written_height)
        if ratio > MAX_RATIO:
            raise CodecError(f"layer {k} is {ratio:.2f}x layer {k - 1}: VVC's inter-layer prediction resamples "
                             f"by at most {MAX_RATIO:g}x (H.266 reference picture resampling), so vtm-ml cannot "
                             "code this ratio")


def common_arguments(options: VtmOptions, num_layers: int) -> list[str]:
    """EncoderApp arguments shared by every layer (after ``-c`` of the configuration files)."""
    single, multi = PROFILES[options.chroma]
    return [
        f"--InputChromaFormat={options.chroma}",
        f"--ChromaFormatIDC={options.chroma}",
        "--InputBitDepth=8",
        "--OutputBitDepth=8",  # the reconstruction bench measures, as a decoder writes it with -d 8
        "--FrameRate=1",
        "--FramesToBeEncoded=1",
        "--ConformanceWindowMode=1",
        f"--SEIDecodedPictureHash={PICTURE_HASH}",
        f"--Profile={single if num_layers == 1 else multi}",
        f"--Level={LEVEL}",
    ]


RECON_STEM = "rec"


def recon_file(k: int) -> str:
    """Where EncoderApp writes layer k's reconstruction for ``--ReconFile=rec.yuv``: in a
    multi-layer run it inserts the layer id before the extension (``rec0.yuv``, ``rec1.yuv``, ...),
    so a single-layer run is told ``rec0.yuv`` directly."""
    return f"{RECON_STEM}{k}.yuv"


def recon_argument(num_layers: int) -> str:
    return f"--ReconFile={RECON_STEM}.yuv" if num_layers > 1 else f"--ReconFile={recon_file(0)}"


def layer_arguments(k: int, geometry: LayerGeometry, qp: int, input_file: str, num_layers: int) -> list[str]:
    """EncoderApp arguments of layer ``k``: ``-l<k>`` before each when there are several layers."""
    own = [f"--InputFile={input_file}", f"--SourceWidth={geometry.written_width}",
           f"--SourceHeight={geometry.written_height}", f"--QP={qp}"]
    if num_layers == 1:
        return own
    return [part for argument in own for part in (f"-l{k}", argument)]


def layers_config(num_layers: int) -> str:
    """The multi-layer structure (second ``-c`` file): ``two_layers.cfg`` for ``num_layers`` layers."""
    lines = [
        "# bench: VVC multi-layer, layer k predicts from layer k-1 (after cfg/multi-layer/two_layers.cfg)",
        "MultiLayerEnabledFlag : 1",
        f"MaxLayers : {num_layers}",
        "MaxSublayers : 1",
        "DefaultPtlDpbHrdMaxTidFlag : 0",
        "AllIndependentLayersFlag : 0",
        "EachLayerIsAnOlsFlag : 0",
        "OlsModeIdc : 1",  # output layer set i = layers 0..i, every one of them output
        # one profile_tier_level per output layer set: VTM gives the SPS of layer i the level of
        # PTL i, and a layer without one is left at level "none", which its decoder refuses
        f"NumPTLsInVPS : {num_layers}",
    ]
    for k in range(num_layers):
        lines.append(f"LayerId{k} : {k}")
        if k:
            lines += [f"NumRefLayers{k} : 1", f"RefLayerIdx{k} : {k - 1}"]
    for i in range(num_layers):
        lines += [f"LevelPTL{i} : {LEVEL}", f"OlsPTLIdx{i} : {i}"]
    return "\n".join(lines) + "\n"
