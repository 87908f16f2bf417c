"""VVC through the VTM reference binaries: ``vtm`` (single-layer intra) and ``vtm-ml`` (K+1 spatial
layers in one bitstream, inter-layer prediction by reference picture resampling).

bench drives the real binaries, ``EncoderApp`` and ``DecoderApp`` (VTM >= 23, which has per-layer
``-l<k>`` options and ``cfg/multi-layer``); nothing here imitates them. Finding them: the folder of
the spec's source (``vtm@/path/to/vtm/bin``) or ``$VTM_DIR``, searched itself and in its ``bin/``
for ``EncoderAppStatic``/``EncoderApp`` and ``DecoderAppStatic``/``DecoderApp``. A file never names
the folder (``bench.registry.file_spec``). ``bench vtm build SRC`` builds them.

One ``encode`` (all intra, one frame, the tools of ``cfg/encoder_intra_vtm.cfg``, ``config.py``):

* Colour: RGB -> YCbCr with the BT.601 matrix, full range (``bench.codecs.yuv``, the conversion of
  ``shvc``, ``hm`` and ``x265``), **4:4:4** by default (``main_10_444``/``multilayer_main_10_444``)
  or ``chroma=420`` (``main_10``/``multilayer_main_10``); 8-bit input coded at VTM's internal 10 bits,
  the reconstruction written at 8 bits, as a decoder writes it with ``-d 8``.
* Sizes: 4:4:4 layers are written at their true size; 4:2:0 layers are padded to even sides by
  edge replication and cropped after decoding. VTM pads to a multiple of 8 (``ConformanceWindowMode
  1``) and signals the padding as the conformance window, which the decoder crops. Inter-layer
  prediction resamples the reference layer's conformance window onto the current layer's (VVC's
  default scaling window), so the ratio is the ratio of the true sizes (4:4:4) or of the even sizes
  (4:2:0, within one sample of it). Ratios VVC cannot resample (a layer more than 8x the one below
  it) are refused with the reason; there is no fallback.
* QPs: ``quality`` is the base layer's QP; layer k gets ``quality + k * delta`` (default 0: EL QP =
  BL QP) or ``quality + offsets[k]``.
* Bitstream: a header of ``1 + 4 * layers`` bytes (format code and layer count, then each layer's
  width and height as big-endian uint16), then the unmodified VTM Annex-B stream. Every byte is
  attributed to a layer by its NAL units' ``nuh_layer_id`` (the VPS and the header to the base
  layer), so the first k layers' bytes are exactly the sub-bitstream a decoder of layer k-1 needs.
* Checks: for every k, ``DecoderApp -p k`` on the extracted sub-bitstream of layers 0..k must
  write each of those layers byte for byte as the encoder reconstructed it, and confirm its CRC
  picture hash (the SEI stays in the stream, so ``decode`` detects damage too).
"""

from __future__ import annotations

import logging
import re
import struct
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar, Mapping, Sequence

import numpy as np

from bench.codec import Availability, BitstreamError, Codec, CodecError, CodecInfo, Encoded, check_image
from bench.codecs import annexb
from bench.codecs.external import (
    ToolLog,
    configured_folder,
    failure_message,
    find_executable,
    folder_availability,
    last_lines,
    run_tool,
    tool_version,
)
from bench.codecs.vtm.config import (
    FORMAT_CODES,
    FORMATS_BY_CODE,
    INTRA_CFG,
    MAX_LAYERS,
    MULTI_LAYER_KEYS,
    SINGLE_LAYER_KEYS,
    SINGLE_LAYER_PRESETS,
    LayerGeometry,
    Preset,
    VtmOptions,
    check_geometry,
    common_arguments,
    layer_arguments,
    layers_config,
    parse_options,
    preset_in,
    recon_argument,
    recon_file,
)
from bench.codecs.yuv import YuvFormat, bytes_to_planes, pad_even, planes_to_bytes, planes_to_rgb, rgb_to_planes
from bench.images import DEFAULT_MAX_PIXELS
from bench.registry import register_codec

logger = logging.getLogger(__name__)

ENV_VAR = "VTM_DIR"
ENCODER_NAMES = ("EncoderAppStatic", "EncoderApp")
DECODER_NAMES = ("DecoderAppStatic", "DecoderApp")
HOW = ("build VTM (the VVC reference software, version 23 or later, e.g. tag VTM-23.13: `bench vtm build "
       f"SRC`, see the README) and `export {ENV_VAR}=/path/to/VTM/bin`")

_FLOAT = r"([-+]?(?:\d+\.?\d*|inf|nan))"
_ENC_LINE = re.compile(
    r"^POC\s+\d+\s+LId:\s*(\d+)\s+TId:\s*\d+\s+\(.*?\bQP\s+(-?\d+)\s*\)\s+(\d+)\s+bits\s+"
    rf"\[Y\s+{_FLOAT}\s+dB\s+U\s+{_FLOAT}\s+dB\s+V\s+{_FLOAT}\s+dB\]",
    re.MULTILINE,
)
_DEC_LINE = re.compile(r"^POC\s+\d+\s+LId:\s*(\d+)\b.*?\[(?:MD5|CRC|Checksum):[0-9a-f,]*,?\(([^)]*)\)\]", re.MULTILINE)
_VERSION = re.compile(r"VTM (?:Encoder|Decoder) Version ([^\s\[]+)")


@dataclass(frozen=True)
class EncodedPicture:
    """One ``POC ... LId: k ...`` line of the encoder log."""

    layer: int
    qp: int
    bits: int
    psnr_y: float
    psnr_u: float
    psnr_v: float


def parse_encoder_log(text: str) -> list[EncodedPicture]:
    return [EncodedPicture(int(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4)), float(m.group(5)),
                           float(m.group(6))) for m in _ENC_LINE.finditer(text)]


def parse_decoder_hashes(text: str) -> dict[int, str]:
    """Layer -> picture-hash status the decoder printed ("OK", "***ERROR***", ...)."""
    return {int(m.group(1)): m.group(2) for m in _DEC_LINE.finditer(text)}


def parse_version(text: str) -> str | None:
    match = _VERSION.search(text)
    return match.group(1) if match else None


def pack_header(chroma: str, geometries: Sequence[LayerGeometry]) -> bytes:
    head = bytes([(FORMAT_CODES[chroma] << 4) | len(geometries)])
    return head + b"".join(struct.pack(">HH", g.width, g.height) for g in geometries)


def unpack_header(data: bytes, codec: str = "vtm") -> tuple[YuvFormat, list[LayerGeometry], int]:
    """(format, layer geometries, header size); BitstreamError on a damaged header."""
    if not data:
        raise BitstreamError(f"empty {codec} bitstream")
    code, n = data[0] >> 4, data[0] & 0x0F
    if code not in FORMATS_BY_CODE or not 1 <= n <= MAX_LAYERS:
        raise BitstreamError(f"not a bench {codec} bitstream (header byte 0x{data[0]:02x})")
    size = 1 + 4 * n
    if len(data) < size:
        raise BitstreamError(f"{codec} bitstream of {len(data)} bytes is shorter than its {size}-byte header")
    fmt = FORMATS_BY_CODE[code]
    geometries = [LayerGeometry(*struct.unpack_from(">HH", data, 1 + 4 * k), chroma=fmt.chroma) for k in range(n)]
    if any(g.width == 0 or g.height == 0 for g in geometries):
        raise BitstreamError(f"{codec} header names an empty layer: {geometries}")
    return fmt, geometries, size


def _recon_name(k: int, num_layers: int, stem: str) -> str:
    """The file DecoderApp writes layer k to for ``-o STEM.yuv``: ``STEM.layerK.yuv`` in a
    multi-layer stream (DecApp inserts the layer), ``STEM.yuv`` in a single-layer one."""
    return f"{stem}.yuv" if num_layers == 1 else f"{stem}.layer{k}.yuv"


class VtmCodecBase(Codec):
    """The frame of the codecs that drive VTM's binaries (``vtm``: one layer, ``vtm-ml``: K+1 layers in
    one bitstream): options, binaries, the encoder run with its decode check of every layer prefix,
    and the decoder. Not registered; each codec declares its own ``info``, options and presets."""

    multi_layer: ClassVar[bool] = False
    option_keys: ClassVar[tuple[str, ...]] = SINGLE_LAYER_KEYS
    presets: ClassVar[Mapping[str, Preset]] = SINGLE_LAYER_PRESETS
    timeout_s: float = 3600.0  # per encoder run: VTM takes minutes for one 4:4:4 CLIC picture
    decode_timeout_s: float = 300.0
    max_pixels: int = DEFAULT_MAX_PIXELS  # the largest layer decode accepts from a header
    _encoded_pixels: int = 0

    def __init__(self, arg: str | None = None, source: str | None = None, device: str = "cpu") -> None:
        super().__init__(arg=arg, source=source, device=device)
        self.last_encode: ToolLog | None = None
        self.last_decode: ToolLog | None = None
        preset = preset_in(arg, self.presets)
        if preset is not None:  # a recipe brings its own QPs (an instance value: the spec decides)
            self.info = replace(self.info, default_qualities=preset.qualities)

    # -- setup -----------------------------------------------------------------------------------

    @property
    def options(self) -> VtmOptions:
        try:
            return parse_options(self.arg, self.name, self.option_keys, self.presets)
        except ValueError as error:
            raise CodecError(str(error)) from None

    def fingerprint(self, weights: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"external": "VTM"}

    def availability(self) -> Availability:
        try:
            parse_options(self.arg, self.name, self.option_keys, self.presets)
        except ValueError as error:
            return Availability.missing(str(error))
        return folder_availability(configured_folder(self.source, ENV_VAR), (ENCODER_NAMES, DECODER_NAMES), "VTM",
                                   f"{HOW} (or name it: {self.name}@/path/to/VTM/bin)")

    def binaries(self) -> tuple[Path, Path]:
        """(encoder, decoder); CodecError saying how to get them when they are missing."""
        status = self.availability()
        if not status.available:
            raise CodecError(f"{self.name} is unavailable: {status.reason}")
        folder = configured_folder(self.source, ENV_VAR)
        assert folder is not None  # availability() checked it
        encoder, decoder = find_executable(folder, ENCODER_NAMES), find_executable(folder, DECODER_NAMES)
        assert encoder is not None and decoder is not None
        return encoder, decoder

    def coding_threads(self, requested: int) -> int:
        return 1  # VTM's encoder and decoder are single-threaded

    # -- running ---------------------------------------------------------------------------------

    def _decode_layers(self, decoder: Path, stream: bytes, top: int, total: int, workdir: Path, log: ToolLog,
                       error: type[CodecError]) -> list[bytes]:
        """Decode the sub-bitstream of layers 0..top of a ``total``-layer ``stream``; each layer's YUV bytes."""
        sub = workdir / f"sub{top}.bit"
        sub.write_bytes(annexb.extract_layers(stream, top, "vvc"))
        stem = f"dec{top}"
        args = [str(decoder), "-b", sub.name, "-o", f"{stem}.yuv", "-d", "8"]
        if total > 1:
            args += ["-p", str(top)]
        result = run_tool(args, cwd=workdir, timeout=self.decode_timeout_s, what=f"VTM decoder, layers 0..{top}",
                          log=log)
        if result.returncode != 0:
            raise error(failure_message(decoder, f"VTM decoder, layers 0..{top}", result))
        hashes = parse_decoder_hashes(result.text)
        outputs = []
        for k in range(top + 1):
            if hashes.get(k) != "OK":
                raise error(f"DecoderApp did not confirm the picture hash of layer {k} (got {hashes.get(k)!r}): "
                            f"{result.text.strip()[-600:]}")
            out = workdir / _recon_name(k, total, stem)
            if not out.is_file():
                raise error(f"DecoderApp wrote no picture for layer {k} ({out.name})")
            outputs.append(out.read_bytes())
        return outputs

    def _check_layers(self, layers: Sequence[np.ndarray]) -> list[LayerGeometry]:
        if not layers:
            raise CodecError(f"{self.name} needs at least one layer image")
        if not self.multi_layer and len(layers) != 1:
            raise CodecError(f"vtm codes exactly one image, got {len(layers)} layers (simulcast:vtm codes each "
                             "layer alone, vtm-ml codes them together)")
        for image in layers:
            check_image(image)
        geometries = [LayerGeometry(im.shape[1], im.shape[0], self.options.chroma) for im in layers]
        check_geometry(geometries)
        return geometries

    def _layer_qps(self, quality: int, num_layers: int) -> list[int]:
        try:
            valid = not isinstance(quality, bool) and int(quality) == quality
        except (TypeError, ValueError, OverflowError):  # OverflowError: float("inf")
            valid = False
        if not valid:
            raise CodecError(f"{self.name} quality is an integer base-layer QP, got {quality!r}")
        qps = self.options.layer_qps(int(quality), num_layers)
        if any(not -12 <= qp <= 63 for qp in qps):  # 10-bit internal: QpBdOffset 12
            raise CodecError(f"layer QPs {qps} outside -12..63 (quality {quality}, {self.options})")
        return qps

    # -- codec interface ---------------------------------------------------------------------------

    def encode(self, layers: Sequence[np.ndarray], quality: int) -> Encoded:
        geometries = self._check_layers(layers)
        qps = self._layer_qps(quality, len(layers))
        options = self.options
        fmt = options.yuv
        n = len(layers)
        encoder, decoder = self.binaries()
        with tempfile.TemporaryDirectory(prefix="bench-vtm-") as tmp:
            workdir = Path(tmp)
            log = ToolLog(workdir=str(workdir))
            log.configs["intra.cfg"] = INTRA_CFG
            args = [str(encoder), "-c", "intra.cfg"]
            if n > 1:
                log.configs["layers.cfg"] = layers_config(n)
                args += ["-c", "layers.cfg"]
            for name, text in log.configs.items():
                (workdir / name).write_text(text)
            args += [*common_arguments(options, n), "--BitstreamFile=str.bit", recon_argument(n)]
            for k, (image, geometry, qp) in enumerate(zip(layers, geometries, qps)):
                written = pad_even(image) if fmt.chroma == "420" else image
                (workdir / f"layer{k}.yuv").write_bytes(planes_to_bytes(rgb_to_planes(written, fmt), fmt))
                args += layer_arguments(k, geometry, qp, f"layer{k}.yuv", n)
            result = run_tool(args, cwd=workdir, timeout=self.timeout_s, what="VTM encoder", log=log)
            self.last_encode = log
            if result.returncode != 0:
                raise CodecError(failure_message(encoder, "VTM encoder", result))
            log.version = parse_version(result.text)
            log.pictures = parse_encoder_log(result.text)
            if sorted(p.layer for p in log.pictures) != list(range(n)):
                raise CodecError(f"EncoderApp's log lacks a picture line per layer: {result.text.strip()[-800:]}")
            written = ["str.bit", *(recon_file(k) for k in range(n))]
            missing = [name for name in written if not (workdir / name).is_file()]
            if missing:
                raise CodecError(f"EncoderApp wrote no {', '.join(missing)}: {last_lines(result.text)}")
            stream = (workdir / "str.bit").read_bytes()
            counts = annexb.layer_byte_counts(stream, n, "vvc")
            if any(c == 0 for c in counts):
                raise CodecError(f"VTM bitstream has a layer without bytes: per-layer bytes {counts}")

            # The decoder must reproduce the encoder's reconstruction of every prefix exactly.
            began = time.perf_counter()
            recs = [(workdir / recon_file(k)).read_bytes() for k in range(n)]
            for top in range(n):
                decoded = self._decode_layers(decoder, stream, top, n, workdir, log, CodecError)
                for k, (got, want) in enumerate(zip(decoded, recs)):
                    if got != want:
                        raise CodecError(f"DecoderApp's layer {k} (of layers 0..{top}) differs from the encoder's "
                                         "reconstruction")
            verify_seconds = time.perf_counter() - began

        header = pack_header(fmt.chroma, geometries)
        counts[0] += len(header)
        self._encoded_pixels = max(self._encoded_pixels, *(g.width * g.height for g in geometries))
        return Encoded(data=header + stream, layer_bytes=counts,
                       timings={"vtm_encoder": result.seconds, "check_vtm_decode": verify_seconds})

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        fmt, geometries, header_size = unpack_header(data, self.name)
        total = len(geometries)
        if total > 1 and not self.multi_layer:
            raise BitstreamError(f"not a vtm bitstream: its header names {total} layers (a vtm-ml one?)")
        count = total if num_layers is None else num_layers
        if not 1 <= count <= total:
            raise CodecError(f"cannot decode {num_layers} layers from a {total}-layer {self.name} bitstream")
        limit = max(self.max_pixels, self._encoded_pixels)
        for k, geo in enumerate(geometries[:count]):
            if geo.width * geo.height > limit:
                raise BitstreamError(f"{self.name} layer {k} claims {geo.width}x{geo.height} pixels, more than the "
                                     f"limit of {limit} (bench decode --max-pixels)")
        stream = data[header_size:]
        annexb.layer_byte_counts(stream, total, "vvc")  # validates the NAL structure before the binary sees it
        _, decoder = self.binaries()
        images = []
        with tempfile.TemporaryDirectory(prefix="bench-vtm-") as tmp:
            workdir = Path(tmp)
            log = ToolLog(workdir=str(workdir))
            self.last_decode = log
            decoded = self._decode_layers(decoder, stream, count - 1, total, workdir, log, BitstreamError)
            for k, (geo, raw) in enumerate(zip(geometries, decoded)):
                try:
                    planes = bytes_to_planes(raw, geo.written_height, geo.written_width, fmt)
                except ValueError as error:
                    raise BitstreamError(f"layer {k}: {error}") from None
                images.append(planes_to_rgb(planes, fmt)[: geo.height, : geo.width])
        return images

    def version(self) -> str | None:
        """VTM's version (e.g. ``23.13``): of the last encode, else asked of the decoder; None when
        VTM is unavailable."""
        if self.last_encode is not None and self.last_encode.version:
            return self.last_encode.version
        if not self.availability().available:
            return None
        _, decoder = self.binaries()
        return tool_version(decoder, ["--help"], _VERSION)


@register_codec("vtm")
class VtmCodec(VtmCodecBase):
    """VVC all-intra through VTM, one layer; spec ``vtm[:chroma=420|ctc][@VTM_FOLDER]``."""

    info = CodecInfo(
        description=("VVC all-intra via the VTM reference binaries (cfg/encoder_intra_vtm.cfg), BT.601 full-range "
                     "YCbCr 4:4:4 unless chroma=420 (vtm:ctc), QP as quality"),
        # QPs: JVET's 22-37 and 42, 47, which reach the learned codecs' PSNR range (as hm's ladder does)
        default_qualities=(22, 27, 32, 37, 42, 47),
        rate_counts=("a 5-byte size header, VPS/SPS/PPS/APS, and a CRC picture-hash SEI (integrity, ~17 bytes) "
                     "beside the slice data"),
        slow=True,  # minutes per job: the runner starts these first
        deterministic=False,  # external reference software: `bench check` compares with a tolerance
        list_variants=("vtm:ctc", "simulcast:vtm"),
    )


@register_codec("vtm-ml")
class VtmMultiLayerCodec(VtmCodecBase):
    """Spatially scalable VVC, K+1 layers in one bitstream; spec ``vtm-ml[:chroma=420+delta=D][@VTM_FOLDER]``."""

    info = CodecInfo(
        description=("VVC multi-layer spatial scalability via VTM (all intra, inter-layer prediction by reference "
                     "picture resampling), BT.601 full-range YCbCr 4:4:4 unless chroma=420, base-layer QP as "
                     "quality"),
        scalable=True,
        max_layers=MAX_LAYERS,
        default_qualities=VtmCodec.info.default_qualities,
        rate_counts=("a 1 + 4·layers byte size header, VPS/SPS/PPS/APS, and per layer a CRC picture-hash SEI "
                     "(integrity, ~17 bytes) beside the slice data"),
        slow=True,
        deterministic=False,
        # VVC multi-layer's single-layer anchors are VTM itself (vtm, simulcast:vtm), so "against
        # single-layer" measures the cost of layering, not encoder differences (as shvc against hm).
        family="vtm",
        report_role="vtm-ml",  # a conventional scalable anchor, beside SHVC
        anchors_every_family=True,  # every scalable codec under test is compared with it
    )
    multi_layer = True
    option_keys = MULTI_LAYER_KEYS
    presets: ClassVar[Mapping[str, Preset]] = {}
