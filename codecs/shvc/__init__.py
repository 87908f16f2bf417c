"""SHVC (scalable HEVC) through the SHM reference binaries, ``TAppEncoder`` / ``TAppDecoder``.

bench drives the real binaries; nothing here imitates them. Finding them: the directory given as
the spec's source (``shvc@/path/to/shm/bin``) or the environment variable ``SHM_DIR``, searched
itself and in its ``bin/`` for ``TAppEncoderStatic``/``TAppEncoder`` and
``TAppDecoderStatic``/``TAppDecoder``; a relative folder is made absolute when read (SHM runs in a
temporary folder). The folder is the user's alone: ``bench encode`` writes the spec without it and
``bench decode`` refuses a file that names one (``bench.registry.file_spec``; ``--codec`` gives it).
Tested with SHM-12.1 (HM-16.10).

Pipeline of one ``encode`` (all intra, one frame, ``FramesToBeEncoded 1``):

* Colour (see ``bench.codecs.yuv``): RGB -> YCbCr with the BT.601 matrix, full range, done in numpy.
  Default **4:4:4, 8 bit** (profiles ``main_444`` / ``scalable-main_444``), the same conversion as the
  ``x265`` plugin so that SHVC and (simulcast) x265 differ only by the codec. ``chroma=420`` codes
  4:2:0 (``main``/``scalable-main``), with ``bits=10`` at 10 bits (``main10``/``scalable-main10``,
  10-bit input being the SHVC common-test practice). SHM-12.1 has no 10-bit 4:4:4 scalable profile.
* Sizes: every layer is first padded to even sides by edge replication (the SHVC offsets below are
  signalled in units of 2 luma samples whatever the chroma format); SHM then pads to a multiple of
  the 8x8 minimum CU (``ConformanceMode 1``) and signals a conformance window. The decoder crops
  the window; bench crops its own padding using the layer sizes of the header (below).
* Inter-layer geometry: the resampling ratio is computed by SHM on the *coded* (padded) sizes, so
  each enhancement layer k signals, against layer k-1, a reference region that excludes the
  reference layer's padding (``RefRegion*Offset``) and a scaled reference region that excludes the
  current layer's padding (``ScaledRefLayer*Offset``), which makes the ratio the true one (1.33, 1.5,
  2.7, ...; for odd sizes within one sample of it). Ratios below 1 are refused.
* QPs: ``quality`` is the base-layer QP; layer k gets ``quality + k * delta`` (``delta=0`` by
  default: EL QP = BL QP, common SHVC practice) or ``quality + offsets[k]``.
* Bitstream: a header of ``1 + 4 * layers`` bytes (format code and layer count, then width and
  height of every layer as big-endian uint16), then the unmodified SHM Annex-B bitstream. Every byte
  is attributed to a layer by parsing the NAL units (``nuh_layer_id``; VPS and layer-0 parameter
  sets are the base layer's; the header too), so the first k layers' bytes are exactly the
  sub-bitstream a decoder of layer k-1 needs.
* Checks: for every k, ``TAppDecoder -lid k`` on the extracted sub-bitstream of layers 0..k must
  reproduce the encoder's reconstruction of each of those layers byte for byte and report the SEI
  picture hash (a CRC per plane, the cheapest hash HEVC has; it stays in the stream, so ``decode``
  detects damage too) as OK. ``decode(data, n)`` runs the decoder once more, on the sub-bitstream of
  layers 0..n-1, which writes all n layers (every layer is an output layer).

Spec arguments, ``+``-separated ``key=value`` pairs (commas separate codecs on the command line):
``shvc:delta=2``, ``shvc:chroma=420+bits=10``, ``shvc:offsets=0/2/3``. A preset name stands for a
recipe (``PRESETS``): ``shvc:ctc`` is the SHVC common test conditions' all-intra spatial
scalability (4:2:0 8-bit, EL QP = BL QP + 2, BL QPs 22/26/30/34 by default); options after it
override it (``shvc:ctc+delta=0``, the CTC's other EL QP set).

The command lines of the last encode/decode are kept in ``last_encode``/``last_decode`` (and logged
at debug level) so that a report can show exactly what ran.
"""

from __future__ import annotations

import logging
import math
import re
import struct
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bench.codec import Availability, BitstreamError, Codec, CodecError, CodecInfo, Encoded, check_image
from bench.codecs import annexb
from bench.codecs.annexb import NalUnit
from bench.codecs.external import (
    ToolLog,
    ToolResult,
    configured_folder,
    failure_message,
    find_executable,
    folder_availability,
    run_tool,
    tool_version,
)
from bench.codecs.yuv import (
    YuvFormat,
    bytes_to_planes,
    pad_even,
    planes_to_bytes,
    planes_to_rgb,
    rgb_to_planes,
)
from bench.images import DEFAULT_MAX_PIXELS
from bench.registry import register_codec

logger = logging.getLogger(__name__)

ENV_VAR = "SHM_DIR"
ENCODER_NAMES = ("TAppEncoderStatic", "TAppEncoder")
DECODER_NAMES = ("TAppDecoderStatic", "TAppDecoder")
MAX_LAYERS = 8  # SHM's MAX_LAYERS; the decoder has -o0 .. -o7
MIN_CU = 8  # 64x64 CTU, MaxPartitionDepth 4 (pinned in the encoder config below)
MAX_SIDE = 65535  # the header stores each side as uint16
# NAL unit types the encoder log leaves out of a picture's bits: end of sequence/bitstream, SEI.
_NOT_IN_LOG_BITS = (36, 37, 39, 40)

# Profiles (whole bitstream, base layer, enhancement layers) per (chroma, bits).
_PROFILES = {
    ("444", 8): ("main_444", "main_444", "scalable-main_444"),
    ("420", 8): ("main", "main", "scalable-main"),
    ("420", 10): ("main10", "main10", "scalable-main10"),
}
_FORMAT_CODES = {("444", 8): 0, ("420", 8): 1, ("420", 10): 2}
_FORMATS_BY_CODE = {code: YuvFormat(*key) for key, code in _FORMAT_CODES.items()}

# All-intra coding tools: the values of SHM's cfg/encoder_intra_scalable.cfg, written out so that
# the run does not depend on the installation's cfg folder.
_INTRA_TOOLS = """\
MaxCUWidth{k} : 64
MaxCUHeight{k} : 64
MaxPartitionDepth{k} : 4
QuadtreeTULog2MaxSize{k} : 5
QuadtreeTULog2MinSize{k} : 2
QuadtreeTUMaxDepthIntra{k} : 3
QuadtreeTUMaxDepthInter{k} : 3
"""
_ENCODER_CFG = """\
# bench: all-intra SHVC, one frame (settings of SHM cfg/encoder_intra_scalable.cfg)
NumProfileTierLevel : 3
Profile0 : {p0}
Profile1 : {p1}
Profile2 : {p2}
Level0 : 6.2
Level1 : 6.2
Level2 : 6.2
DecodingRefreshType : 0
GOPSize : 1
FastSearch : 1
SearchRange : 64
HadamardME : 1
FEN : 1
FDM : 1
MaxDeltaQP : 0
DeltaQpRD : 0
RDOQ : 1
RDOQTS : 1
LoopFilterOffsetInPPS : 1
LoopFilterDisable : 0
LoopFilterBetaOffset_div2 : 0
LoopFilterTcOffset_div2 : 0
DeblockingFilterMetric : 0
AMP : 1
TransformSkip : 1
TransformSkipFast : 1
SAOLcuBoundary : 0
SliceMode : 0
SliceArgument : 1500
LFCrossSliceBoundaryFlag : 1
PCMEnabledFlag : 0
TileUniformSpacing : 0
NumTileColumnsMinus1 : 0
NumTileRowsMinus1 : 0
LFCrossTileBoundaryFlag : 1
"""


# ---------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class ShvcOptions:
    """What the spec argument selects: YUV format and the QP of each layer relative to the BL."""

    chroma: str = "444"
    bits: int = 8
    delta: int = 0
    offsets: tuple[int, ...] | None = None

    @property
    def yuv(self) -> YuvFormat:
        return YuvFormat(self.chroma, self.bits)

    def layer_qps(self, quality: int, num_layers: int) -> list[int]:
        if self.offsets is not None:
            if len(self.offsets) < num_layers:
                raise CodecError(f"offsets={self.offsets} name fewer QP offsets than the {num_layers} layers")
            return [quality + self.offsets[k] for k in range(num_layers)]
        return [quality + k * self.delta for k in range(num_layers)]


@dataclass(frozen=True)
class Preset:
    """A named recipe: the options it stands for, the base-layer QPs a run codes unless told
    otherwise, and the published conditions it follows."""

    options: str
    qualities: tuple[int, ...]
    follows: str


PRESETS = {
    # The SHVC common test conditions (JCT-VC "Common SHM test conditions and software reference
    # configurations", JCTVC-Q1009 and its earlier revisions) code spatial scalability (x2, x1.5)
    # 4:2:0 8-bit with BL QP 22/26/30/34 and EL QP = BL QP + dQP, dQP 0 and 2; all-intra is one of
    # their configurations (SHM's encoder_intra_scalable.cfg, which _ENCODER_CFG reproduces).
    "ctc": Preset(
        options="chroma=420+delta=2",
        qualities=(22, 26, 30, 34),
        follows="SHVC common test conditions (JCTVC-Q1009), all-intra spatial scalability: 4:2:0 8-bit, "
        "BL QP 22/26/30/34, EL QP = BL QP + 2 (their other set: shvc:ctc+delta=0)",
    ),
}
OPTION_KEYS = ("chroma", "bits", "delta", "offsets")


def preset_in(arg: str | None, presets: Mapping[str, Preset] = PRESETS) -> Preset | None:
    """The last preset named in a spec argument, or None."""
    found = None
    for item in (arg or "").split("+"):
        found = presets.get(item.strip().lower(), found)
    return found


def parse_options(
    arg: str | None,
    codec: str = "shvc",
    keys: Sequence[str] = OPTION_KEYS,
    presets: Mapping[str, Preset] = PRESETS,
) -> ShvcOptions:
    """Parse ``key=value[+key=value...]``; keys ``chroma`` (444|420), ``bits`` (8|10), ``delta``
    (int) and ``offsets`` (``/``-separated ints, one per layer), or a preset name, which stands for
    its options (later items override them). ``codec`` names the codec in messages; ``keys`` and
    ``presets`` are what it accepts. ValueError on anything else."""
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
            raise ValueError(f"{codec} option {item!r} is not key=value (e.g. {codec}:chroma=420+bits=10)")
        try:
            if key not in keys:
                raise KeyError(key)
            if key == "chroma":
                if value not in ("444", "420"):
                    raise ValueError
                values[key] = value
            elif key in ("bits", "delta"):
                values[key] = int(value)
            elif key == "offsets":
                values[key] = tuple(int(v) for v in value.split("/"))
            else:
                raise KeyError(key)
        except KeyError:
            known = ", ".join([*keys, *(f"{name} (preset)" for name in presets)])
            raise ValueError(f"unknown {codec} option {key!r}; known: {known}") from None
        except ValueError:
            raise ValueError(f"bad value {value!r} for {codec} option {key!r}") from None
    options = ShvcOptions(**values)  # type: ignore[arg-type]
    if (options.chroma, options.bits) not in _PROFILES:
        raise ValueError(
            f"SHM has no scalable profile for {options.chroma} at {options.bits} bits; "
            f"choose chroma=444 (8-bit) or chroma=420 with bits=8 or 10"
        )
    return options


# ---------------------------------------------------------------------------------------------
# Geometry and configuration


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class LayerGeometry:
    """A layer's true size, the even size written to YUV and the coded size SHM pads it to."""

    width: int
    height: int

    @property
    def even_width(self) -> int:
        return self.width + self.width % 2

    @property
    def even_height(self) -> int:
        return self.height + self.height % 2

    @property
    def coded_width(self) -> int:
        return _ceil_to(self.even_width, MIN_CU)

    @property
    def coded_height(self) -> int:
        return _ceil_to(self.even_height, MIN_CU)


@dataclass(frozen=True)
class RefOffsets:
    """Inter-layer offsets of layer k against layer k-1, in luma samples (all even).

    ``ref_right``/``ref_bottom`` cut the reference layer's padding off its coded picture;
    ``scaled_right``/``scaled_bottom`` place that region in the current layer's coded picture so
    that the scaling ratio is the ratio of the true sizes (negative: the region reaches past the
    coded picture, which happens when the reference layer's own even-padding row is mapped).
    """

    ref_right: int
    ref_bottom: int
    scaled_right: int
    scaled_bottom: int

    @property
    def any(self) -> bool:
        return any((self.ref_right, self.ref_bottom, self.scaled_right, self.scaled_bottom))


def _round_even(value: float) -> int:
    return 2 * math.floor(value / 2 + 0.5)


def ref_offsets(ref: LayerGeometry, cur: LayerGeometry) -> RefOffsets:
    """Offsets that make SHM resample ``ref`` to ``cur`` at the ratio of their true sizes."""
    # The reference region is the even-padded picture (offsets come in units of 2 samples); the
    # scaled region is where those even_width columns land at the true ratio cur.width / ref.width.
    scaled_w = _round_even(ref.even_width * cur.width / ref.width)
    scaled_h = _round_even(ref.even_height * cur.height / ref.height)
    return RefOffsets(
        ref_right=ref.coded_width - ref.even_width,
        ref_bottom=ref.coded_height - ref.even_height,
        scaled_right=cur.coded_width - scaled_w,
        scaled_bottom=cur.coded_height - scaled_h,
    )


def check_geometry(geometries: Sequence[LayerGeometry]) -> None:
    """CodecError unless there are 1..8 layers, each at least as large as the one below."""
    if not 1 <= len(geometries) <= MAX_LAYERS:
        raise CodecError(f"SHM codes 1 to {MAX_LAYERS} layers, got {len(geometries)}")
    for k, geo in enumerate(geometries):
        if geo.width > MAX_SIDE or geo.height > MAX_SIDE:
            raise CodecError(f"layer {k} is {geo.width}x{geo.height}; at most {MAX_SIDE} per side")
        if k and (geo.width < geometries[k - 1].width or geo.height < geometries[k - 1].height):
            below = geometries[k - 1]
            raise CodecError(
                f"layer {k} ({geo.width}x{geo.height}) is smaller than layer {k - 1} "
                f"({below.width}x{below.height}); SHVC needs inter-layer ratios >= 1"
            )


def encoder_config(options: ShvcOptions) -> str:
    """The coding-tool configuration (first ``-c`` file)."""
    p0, p1, p2 = _PROFILES[(options.chroma, options.bits)]
    return _ENCODER_CFG.format(p0=p0, p1=p1, p2=p2)


def layer_config(
    geometries: Sequence[LayerGeometry], options: ShvcOptions, input_files: Sequence[str]
) -> str:
    """The layer description (second ``-c`` file): sizes, formats, references, offsets, layer sets."""
    check_geometry(geometries)
    n = len(geometries)
    sub = options.yuv.subsampling
    lines = [
        "# bench: layer description",
        f"NumLayers : {n}",
        "NonHEVCBase : 0",
        "ScalabilityMask1 : 0",
        "ScalabilityMask2 : 1",
        "ScalabilityMask3 : 0",
        "AdaptiveResolutionChange : 0",
        "SkipPictureAtArcSwitch : 0",
        "MaxTidRefPresentFlag : 1",
        "CrossLayerPictureTypeAlignFlag : 1",
        "CrossLayerIrapAlignFlag : 1",
        # 2 = CRC: a 16-bit CRC per plane (~16 bytes per layer) lets the decoder confirm every picture,
        # as the other codecs' CRC-32 chunks do; MD5 (1) would add ~58 bytes per layer to SHVC's rate
        "SEIDecodedPictureHash : 2",
        "FrameSkip : 0",
        "FramesToBeEncoded : 1",
        f"InputChromaFormat : {options.chroma}",
    ]
    for k, (geo, path) in enumerate(zip(geometries, input_files, strict=True)):
        lines += [
            "",
            f"# layer {k}: {geo.width}x{geo.height}, coded {geo.coded_width}x{geo.coded_height}",
            f"InputFile{k} : {path}",
            f"FrameRate{k} : 1",
            f"InputBitDepth{k} : {options.bits}",
            f"SourceWidth{k} : {geo.even_width}",
            f"SourceHeight{k} : {geo.even_height}",
            f"RepFormatIdx{k} : {k}",
            f"IntraPeriod{k} : 1",
            f"ConformanceMode{k} : 1",
            f"LayerPTLIndex{k} : {1 if k == 0 else 2}",
        ]
        lines += _INTRA_TOOLS.format(k=k).splitlines()
        if k < n - 1:
            lines.append(f"MaxTidIlRefPicsPlus1{k} : 7")
        if k == 0:
            continue
        lines += [
            f"NumSamplePredRefLayers{k} : 1",
            f"SamplePredRefLayerIds{k} : {k - 1}",
            f"NumMotionPredRefLayers{k} : 1",
            f"MotionPredRefLayerIds{k} : {k - 1}",
            f"NumActiveRefLayers{k} : 1",
            f"PredLayerIds{k} : 0",
        ]
        offsets = ref_offsets(geometries[k - 1], geo)
        if offsets.any:
            # SHM multiplies these by SubWidthC/SubHeightC and writes them in units of 2 samples.
            scaled_present = int(bool(offsets.scaled_right or offsets.scaled_bottom))
            region_present = int(bool(offsets.ref_right or offsets.ref_bottom))
            lines += [
                f"NumRefLocationOffsets{k} : 1",
                f"RefLocationOffsetLayerId{k} : {k - 1}",
                f"ScaledRefLayerOffsetPresentFlag{k} : {scaled_present}",
                f"ScaledRefLayerLeftOffset{k} : 0",
                f"ScaledRefLayerTopOffset{k} : 0",
                f"ScaledRefLayerRightOffset{k} : {offsets.scaled_right // sub}",
                f"ScaledRefLayerBottomOffset{k} : {offsets.scaled_bottom // sub}",
                f"RefRegionOffsetPresentFlag{k} : {region_present}",
                f"RefRegionLeftOffset{k} : 0",
                f"RefRegionTopOffset{k} : 0",
                f"RefRegionRightOffset{k} : {offsets.ref_right // sub}",
                f"RefRegionBottomOffset{k} : {offsets.ref_bottom // sub}",
            ]
    # Layer set i = layers 0..i; DefaultTargetOutputLayerIdc 0 makes every layer of a layer set an
    # output layer, so that one decoder run writes all the layers it decodes.
    lines += ["", f"NumLayerSets : {n}"]
    for i in range(1, n):
        lines += [
            f"NumLayerInIdList{i} : {i + 1}",
            f"LayerSetLayerIdList{i} : {' '.join(str(j) for j in range(i + 1))}",
        ]
    lines += ["NumAddLayerSets : 0", f"NumOutputLayerSets : {n}", "DefaultTargetOutputLayerIdc : 0"]
    if n > 2 and options.chroma == "444":
        # SHM-12.1's cfg check of layer sets with two or more ELs only knows the scalable-main
        # profiles and aborts for scalable-main_444. It reads the "compatible profile" list at the
        # index of the profile (7 = scalable-main), an entry no PTL structure of the bitstream
        # uses (there are 3), so this satisfies the check without changing a bit of the stream.
        lines.append("ProfileCompatibility7 : scalable-main")
    if n > 1:
        lines.append(f"NumOutputLayersInOutputLayerSet : {' '.join('1' for _ in range(1, n))}")
    for i in range(1, n):
        lines += [
            f"ListOfOutputLayers{i} : {i}",  # the top layer of layer set i (index within the set)
            f"ListOfProfileTierLevelOls{i} : 1 {' '.join('2' for _ in range(i))}",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Annex-B bitstream


def parse_nal_units(stream: bytes) -> list[NalUnit]:
    """Split an HEVC/SHVC Annex-B byte stream into NAL units; BitstreamError when it is not one."""
    return annexb.parse_nal_units(stream, "hevc")


def layer_byte_counts(stream: bytes, num_layers: int) -> list[int]:
    """Bytes of ``stream`` per layer by ``nuh_layer_id`` (VPS to the base layer); they add up to
    ``len(stream)``. BitstreamError when a NAL unit names a layer beyond ``num_layers``."""
    return annexb.layer_byte_counts(stream, num_layers, "hevc")


def log_bits_per_layer(stream: bytes, num_layers: int) -> list[int]:
    """What SHM's encoder log reports as each layer's picture bits, recomputed from the stream:
    the layer's NAL units without start codes, SEI and end-of-stream units (``TEncGOP``'s
    accounting). A cross-check of the NAL parsing against the encoder's own numbers."""
    bits = [0] * num_layers
    for unit in parse_nal_units(stream):
        if unit.nal_type not in _NOT_IN_LOG_BITS and unit.layer_id < num_layers:
            bits[unit.layer_id] += 8 * unit.payload_size
    return bits


def extract_layers(stream: bytes, top_layer: int) -> bytes:
    """The sub-bitstream of layers 0..``top_layer`` (NAL units with ``nuh_layer_id`` <= top_layer)."""
    return annexb.extract_layers(stream, top_layer, "hevc")


# ---------------------------------------------------------------------------------------------
# Header


def pack_header(fmt: YuvFormat, geometries: Sequence[LayerGeometry]) -> bytes:
    code = _FORMAT_CODES[(fmt.chroma, fmt.bits)]
    head = bytes([(code << 4) | len(geometries)])
    return head + b"".join(struct.pack(">HH", g.width, g.height) for g in geometries)


def unpack_header(data: bytes) -> tuple[YuvFormat, list[LayerGeometry], int]:
    """(format, layer geometries, header size); BitstreamError on a damaged header."""
    if not data:
        raise BitstreamError("empty shvc bitstream")
    code, n = data[0] >> 4, data[0] & 0x0F
    if code not in _FORMATS_BY_CODE or not 1 <= n <= MAX_LAYERS:
        raise BitstreamError(f"not a bench shvc bitstream (header byte 0x{data[0]:02x})")
    size = 1 + 4 * n
    if len(data) < size:
        raise BitstreamError(f"shvc bitstream of {len(data)} bytes is shorter than its {size}-byte header")
    geometries = [LayerGeometry(*struct.unpack_from(">HH", data, 1 + 4 * k)) for k in range(n)]
    if any(g.width == 0 or g.height == 0 for g in geometries):
        raise BitstreamError(f"shvc header names an empty layer: {geometries}")
    return _FORMATS_BY_CODE[code], geometries, size


# ---------------------------------------------------------------------------------------------
# Logs


@dataclass(frozen=True)
class EncodedPicture:
    """One ``POC ... LId: k ...`` line of the encoder log."""

    layer: int
    qp: int
    bits: int  # slices + SEI of this picture, without parameter sets
    psnr_y: float
    psnr_u: float
    psnr_v: float
    ratio: tuple[float, float] | None  # inter-layer scaling ratio SHM used, {x, y}


_FLOAT = r"([-+]?(?:\d+\.?\d*|inf|nan))"
_ENC_LINE = re.compile(
    r"^POC\s+\d+\s+LId:\s*(\d+)\s+TId:\s*\d+\s+\(.*?\bQP\s+(-?\d+)\s*\)\s+(\d+)\s+bits\s+"
    rf"\[Y\s+{_FLOAT}\s+dB\s+U\s+{_FLOAT}\s+dB\s+V\s+{_FLOAT}\s+dB\](.*)$",
    re.MULTILINE,
)
_RATIO = re.compile(r"\{\s*([\d.]+)\s*,\s*([\d.]+)\s*\}x")
_DEC_LINE = re.compile(
    r"^POC\s+\d+\s+LId:\s*(\d+)\b.*?\[(?:MD5|CRC|Checksum):[0-9a-f,]*,\(([^)]*)\)\]", re.MULTILINE
)
_VERSION = re.compile(r"SHM software: \w+ Version \[([^\]]+)\]")


def parse_encoder_log(text: str) -> list[EncodedPicture]:
    pictures = []
    for match in _ENC_LINE.finditer(text):
        ratio = _RATIO.search(match.group(7))
        pictures.append(
            EncodedPicture(
                layer=int(match.group(1)),
                qp=int(match.group(2)),
                bits=int(match.group(3)),
                psnr_y=float(match.group(4)),
                psnr_u=float(match.group(5)),
                psnr_v=float(match.group(6)),
                ratio=(float(ratio.group(1)), float(ratio.group(2))) if ratio else None,
            )
        )
    return pictures


def parse_decoder_hashes(text: str) -> dict[int, str]:
    """Layer -> picture-hash status the decoder printed ("OK", "***ERROR***" or "unk")."""
    return {int(m.group(1)): m.group(2) for m in _DEC_LINE.finditer(text)}


def parse_version(text: str) -> str | None:
    match = _VERSION.search(text)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------
# Binaries


# What one encode or decode ran (bench.codecs.external); the name is older than the shared type.
ShmRun = ToolLog


class ShmCodec(Codec):
    """The frame of the codecs that drive SHM's binaries (``shvc``, and ``hm`` with one layer): options,
    binaries, the encoder run with its decode check, and the decoder. Not registered; each codec
    declares its own ``info`` (an abstract frame for one set of binaries, as ``StillImageCodec`` is
    for still-image libraries: no codec inherits another codec's declarations)."""

    timeout_s: float = 1800.0  # per encoder run: 3 layers of a 4K picture take minutes
    decode_timeout_s: float = 300.0
    # The largest layer ``decode`` accepts from a header (``bench decode --max-pixels``): SHM allocates
    # and writes YUV files for what the stream claims. Pictures this instance encoded are trusted.
    max_pixels: int = DEFAULT_MAX_PIXELS
    _encoded_pixels: int = 0

    def fingerprint(self, weights: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"external": "SHM"}

    def __init__(self, arg: str | None = None, source: str | None = None, device: str = "cpu") -> None:
        super().__init__(arg=arg, source=source, device=device)
        self.last_encode: ShmRun | None = None
        self.last_decode: ShmRun | None = None

    # -- setup -----------------------------------------------------------------------------------

    def _parse_options(self) -> ShvcOptions:
        """The spec argument's options; ValueError naming the problem (a subclass narrows them)."""
        return parse_options(self.arg, codec=self.name)

    @property
    def options(self) -> ShvcOptions:
        try:
            return self._parse_options()
        except ValueError as error:
            raise CodecError(str(error)) from None

    def _folder(self) -> Path | None:
        return configured_folder(self.source, ENV_VAR)

    def binaries(self) -> tuple[Path, Path]:
        """(encoder, decoder); CodecError saying how to install them when they are missing."""
        status = self.availability()
        if not status.available:
            raise CodecError(f"{self.name} is unavailable: {status.reason}")
        folder = self._folder()
        assert folder is not None  # availability() checked it
        encoder, decoder = find_executable(folder, ENCODER_NAMES), find_executable(folder, DECODER_NAMES)
        assert encoder is not None and decoder is not None
        return encoder, decoder

    def coding_threads(self, requested: int) -> int:
        return 1  # the SHM reference encoder and decoder are single-threaded

    def availability(self) -> Availability:
        try:
            self._parse_options()
        except ValueError as error:
            return Availability.missing(str(error))
        how = (
            "build SHM (the SHVC reference software, e.g. tag SHM-12.1: `bench shm build SRC`, see the "
            f"README) and `export {ENV_VAR}=/path/to/SHM/bin` (or name it: {self.name}@/path/to/SHM/bin)"
        )
        return folder_availability(self._folder(), (ENCODER_NAMES, DECODER_NAMES), "SHM", how)

    # -- running ---------------------------------------------------------------------------------

    def _run(self, args: list[str], cwd: Path, timeout: float, what: str, run: ShmRun) -> ToolResult:
        return run_tool(args, cwd=cwd, timeout=timeout, what=f"SHM {what}", log=run)

    def _decode_layers(
        self, decoder: Path, stream: bytes, top: int, workdir: Path, run: ShmRun, error: type[CodecError]
    ) -> list[bytes]:
        """Decode the sub-bitstream of layers 0..top of ``stream``; the YUV bytes of each layer."""
        sub = workdir / f"sub{top}.bit"
        sub.write_bytes(extract_layers(stream, top))
        outputs = [workdir / f"dec{top}_{k}.yuv" for k in range(top + 1)]
        args = [str(decoder), "-b", sub.name, "-lid", str(top)]
        for k, out in enumerate(outputs):
            args += [f"-o{k}", out.name]
        result = self._run(args, workdir, self.decode_timeout_s, f"decoder, layers 0..{top}", run)
        text = result.text
        if result.returncode != 0:
            raise error(failure_message(decoder, f"SHM decoder, layers 0..{top}", result))
        hashes = parse_decoder_hashes(text)
        for k, out in enumerate(outputs):
            if hashes.get(k) != "OK":
                raise error(
                    f"TAppDecoder did not confirm the picture hash of layer {k} (got {hashes.get(k)!r}): "
                    f"{text.strip()[-600:]}"
                )
            if not out.is_file():
                raise error(f"TAppDecoder wrote no picture for layer {k}")
        return [out.read_bytes() for out in outputs]

    # -- codec interface ---------------------------------------------------------------------------

    def encode(self, layers: Sequence[np.ndarray], quality: int) -> Encoded:
        options = self.options
        if not layers:
            raise CodecError("shvc needs at least one layer image")
        for image in layers:
            check_image(image)
        geometries = [LayerGeometry(width=im.shape[1], height=im.shape[0]) for im in layers]
        check_geometry(geometries)
        try:
            valid = not isinstance(quality, bool) and int(quality) == quality
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise CodecError(f"shvc quality is an integer base-layer QP, got {quality!r}")
        qps = options.layer_qps(int(quality), len(layers))
        min_qp = -6 * (options.bits - 8)
        if any(not min_qp <= qp <= 51 for qp in qps):
            raise CodecError(f"layer QPs {qps} outside {min_qp}..51 (quality {quality}, {options})")
        encoder, decoder = self.binaries()
        fmt = options.yuv

        with tempfile.TemporaryDirectory(prefix="bench-shvc-") as tmp:
            workdir = Path(tmp)
            run = ShmRun(workdir=str(workdir))
            inputs = []
            for k, image in enumerate(layers):
                name = f"layer{k}.yuv"
                (workdir / name).write_bytes(planes_to_bytes(rgb_to_planes(pad_even(image), fmt), fmt))
                inputs.append(name)
            run.configs["encoder.cfg"] = encoder_config(options)
            run.configs["layers.cfg"] = layer_config(geometries, options, inputs)
            for name, text in run.configs.items():
                (workdir / name).write_text(text)

            args = [str(encoder), "-c", "encoder.cfg", "-c", "layers.cfg", "-b", "str.bit"]
            for k, qp in enumerate(qps):
                args += [f"-q{k}", str(qp)]
            for k in range(len(layers)):
                args += [f"-o{k}", f"rec{k}.yuv"]
            result = self._run(args, workdir, self.timeout_s, "encoder", run)
            text, encode_seconds = result.text, result.seconds
            self.last_encode = run
            if result.returncode != 0:
                raise CodecError(failure_message(encoder, "SHM encoder", result))
            run.version = parse_version(text)
            run.pictures = parse_encoder_log(text)
            if sorted(p.layer for p in run.pictures) != list(range(len(layers))):
                raise CodecError(f"TAppEncoder log lacks a picture line per layer: {text.strip()[-800:]}")
            stream = (workdir / "str.bit").read_bytes()
            counts = layer_byte_counts(stream, len(layers))
            if any(c == 0 for c in counts):
                raise CodecError(f"SHM bitstream has a layer without bytes: per-layer bytes {counts}")
            logged = [p.bits for p in sorted(run.pictures, key=lambda p: p.layer)]
            if log_bits_per_layer(stream, len(layers)) != logged:
                logger.warning(
                    "shvc: NAL parsing gives per-layer bits %s, the SHM log %s",
                    log_bits_per_layer(stream, len(layers)),
                    logged,
                )

            # The decoder must reproduce the encoder's reconstruction of every prefix exactly.
            began = time.perf_counter()
            recs = [(workdir / f"rec{k}.yuv").read_bytes() for k in range(len(layers))]
            for top in range(len(layers)):
                decoded = self._decode_layers(decoder, stream, top, workdir, run, CodecError)
                for k, (got, want) in enumerate(zip(decoded, recs)):
                    if got != want:
                        raise CodecError(
                            f"TAppDecoder's layer {k} (of layers 0..{top}) differs from the encoder's "
                            "reconstruction"
                        )
            verify_seconds = time.perf_counter() - began

        header = pack_header(fmt, geometries)
        counts[0] += len(header)
        self._encoded_pixels = max(self._encoded_pixels, *(g.width * g.height for g in geometries))
        return Encoded(
            data=header + stream,
            layer_bytes=counts,
            timings={"shm_encoder": encode_seconds, "check_shm_decode": verify_seconds},
        )

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        fmt, geometries, header_size = unpack_header(data)
        total = len(geometries)
        count = total if num_layers is None else num_layers
        if not 1 <= count <= total:
            raise CodecError(f"cannot decode {num_layers} layers from a {total}-layer shvc bitstream")
        limit = max(self.max_pixels, self._encoded_pixels)
        for k, geo in enumerate(geometries[:count]):
            if geo.width * geo.height > limit:
                raise BitstreamError(f"shvc layer {k} claims {geo.width}x{geo.height} pixels, more than the limit "
                                     f"of {limit} (bench decode --max-pixels)")
        stream = data[header_size:]
        layer_byte_counts(stream, total)  # validates the NAL structure before the binary sees it
        _, decoder = self.binaries()
        images = []
        with tempfile.TemporaryDirectory(prefix="bench-shvc-") as tmp:
            workdir = Path(tmp)
            run = ShmRun(workdir=str(workdir))
            self.last_decode = run
            decoded = self._decode_layers(decoder, stream, count - 1, workdir, run, BitstreamError)
            for k, (geo, raw) in enumerate(zip(geometries, decoded)):
                try:
                    planes = bytes_to_planes(raw, geo.even_height, geo.even_width, fmt)
                except ValueError as error:
                    raise BitstreamError(f"layer {k}: {error}") from None
                images.append(planes_to_rgb(planes, fmt)[: geo.height, : geo.width])
        return images

    def version(self) -> str | None:
        """SHM's version string (e.g. ``12.1 (HM-16.10)``): of the last encode, else asked of the
        decoder; None when SHM is unavailable."""
        if self.last_encode is not None and self.last_encode.version:
            return self.last_encode.version
        if not self.availability().available:
            return None
        _, decoder = self.binaries()
        return tool_version(decoder, ["--help"], _VERSION)


@register_codec("shvc")
class ShvcCodec(ShmCodec):
    """SHVC all-intra through SHM; spec ``shvc[:key=value+...][@SHM_FOLDER]``."""

    info = CodecInfo(
        description=("SHVC all-intra via the SHM reference binaries, BT.601 full-range YCbCr (4:4:4 8-bit unless "
                     "chroma=420[+bits=10]), base-layer QP as quality"),
        scalable=True,
        max_layers=MAX_LAYERS,
        # BL QPs: JCT-VC's 22-37 plus 42 and 47, which reach the learned codecs' PSNR range (as x265's)
        default_qualities=(22, 27, 32, 37, 42, 47),
        rate_counts=("a 1 + 4·layers byte size header, VPS/SPS/PPS, and per layer a CRC picture-hash SEI "
                     "(integrity, ~16 bytes) beside the slice data"),
        slow=True,  # minutes per job: the runner starts these first
        deterministic=False,  # external reference software: `bench check` compares with a tolerance
        # SHVC's single-layer anchor is its own encoder alone (SHVC CTC practice: HM and HM simulcast),
        # so that "against single-layer" measures the cost of scalability, not encoder differences
        family="hm",
        report_role="shvc",  # the contract's SHVC anchor
        anchors_every_family=True,  # every scalable codec is compared with SHVC
        list_variants=tuple(f"shvc:{name}" for name in PRESETS),  # bench list shows the presets
    )

    def __init__(self, arg: str | None = None, source: str | None = None, device: str = "cpu") -> None:
        super().__init__(arg=arg, source=source, device=device)
        preset = preset_in(arg)
        if preset is not None:  # a recipe brings its own QPs (an instance value: the spec decides)
            self.info = replace(self.info, default_qualities=preset.qualities)


# The single-layer HEVC anchor made from the same SHM binaries registers with this package.
from bench.codecs.shvc import hm  # noqa: E402,F401
