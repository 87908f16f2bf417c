"""The ``compass`` codec: COMPASS behind bench's codec interface, one scalable bitstream per call.

Weights by source: ``compass`` / ``compass@bench`` use bench's zoo (``compass-q*`` files over the
zoo's ``mean-scale`` BL); ``compass@official`` uses the published checkpoints of the reference
code, dropped in a folder (``official.py`` says where and how they map onto bench's networks).

Determinism: torch's CPU convolutions give results that depend on the number of intra-op threads,
and the decoder must recompute exactly the entropy parameters (and, for the next layer, exactly the
reconstruction) that the encoder used. So, like the ``mean-scale`` plugin, all network work of
encode and decode runs with ``NETWORK_THREADS`` (1) intra-op threads on CPU, whatever the caller
set: bitstreams and decoded layers are bit-exact across runs and thread settings on one machine and
software stack. GPU runs are not bit-exact with CPU runs.

Timings: ``Encoded.timings`` and ``last_decode_timings`` split the codec's seconds into ``network``
and ``entropy`` and, beside them, per module (``split_timings``). The encoder's split includes the
decode of every layer that it runs to predict the next one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.codec import (
    Availability,
    BitstreamError,
    Codec,
    CodecError,
    CodecInfo,
    Encoded,
    SectionClock,
    check_image,
    weights_file_id,
)
from bench.codecs.compass import bitstream, official, residual
from bench.codecs.compass.complexity import layer_macs
from bench.codecs.compass.fuzzing import fuzz_setup
from bench.codecs.compass.liff import LiffConfig
from bench.codecs.compass.model import CompassConfig, CompassModel, bl_coded_size
from bench.codecs.compass.model import _unpack_strings as model_strings
from bench.codecs.mean_scale import plugin as mean_scale
from bench.codecs.mean_scale import weights as mean_scale_weights
from bench.determinism import NETWORK_THREADS, fixed_network_threads
from bench.hashing import sha256_file
from bench.images import DEFAULT_MAX_PIXELS
from bench.measuring.complexity import LayerComplexity, kmac_per_pixel, on_meta
from bench.registry import register_codec

QUALITIES = (1, 2, 3, 4)
BENCH_SOURCES = (None, "bench")
SOURCES = (*BENCH_SOURCES, "official")

TRAINING_HINT = (
    "train them with `python -m bench.train compass --stage liff --out runs/compass-liff`, "
    "`… --stage rc --quality Q --out runs/compass-rc-qQ`, "
    "`… --stage joint --quality Q --liff-from runs/compass-liff/last.pt "
    "--rc-from runs/compass-rc-qQ/last.pt --out runs/compass-qQ`, then "
    "`… --stage export --from runs/compass-qQ/last.pt` (writes bench/weights/compass-qQ-<sha8>.pth.tar); "
    "`…` is `python -m bench.train compass`"
)


def _weights_stem(path: Path) -> str:
    return path.name[: -len(".pth.tar")] if path.name.endswith(".pth.tar") else path.stem


def split_state(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state_dict`` under ``prefix.`` (``liff``, ``rc``), with the prefix removed."""
    return {k[len(prefix) + 1 :]: v for k, v in state_dict.items() if k.startswith(prefix + ".")}


def load_zoo_model(quality: int, device: str = "cpu") -> tuple[CompassModel, dict[str, str]]:
    """COMPASS at ``quality`` from the zoo: its BL (mean-scale) plus the ``compass-q*`` weights.

    The file is ``{"state_dict": {"liff.*", "rc.*"}, "config": {"compass": …, "bl_sha256": …}}``
    in the zoo's format (convolutions in float16, entropy models and GDN in float32, the RC's CDF
    tables stored and used as they are). Weights trained on another BL file than the one the zoo
    holds for that quality are refused: the ELs only fit the BL they were trained over.
    """
    from bench import zoo

    contents, path, digest = zoo.load_weights("compass", quality, how_to=TRAINING_HINT)
    config = contents["config"]
    bl_path = mean_scale_weights.weights_path(quality)
    bl_digest = zoo.verify_hash(bl_path)
    if config.get("bl_sha256") != bl_digest:
        raise CodecError(
            f"{path.name} was trained on base-layer weights {str(config.get('bl_sha256'))[:8]}, but the "
            f"zoo's mean-scale q{quality} is {bl_path.name}; retrain COMPASS on that BL or restore the "
            "matching BL file"
        )
    bl = mean_scale_weights.load_mean_scale(quality)
    state = zoo.full_precision(contents["state_dict"])
    try:
        model = CompassModel.build(
            bl, CompassConfig.from_dict(config["compass"]), model_id=_weights_stem(path)
        )
        model.liff.load_state_dict(split_state(state, "liff"))
        model.rc.load_state_dict(split_state(state, "rc"))  # CompressAI resizes the CDF buffers to fit
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        raise CodecError(f"{path} does not fit the COMPASS model: {error}") from error
    for name in ("entropy_bottleneck", "gaussian_conditional"):
        if getattr(model.rc, name)._quantized_cdf.numel() == 0:
            raise CodecError(f"{path} holds no RC {name} CDF tables; export it with --stage export")
    model.to(device).eval()
    info = {"source": "bench zoo", "file": path.name, "sha256": digest, "bl_file": bl_path.name}
    return model, info


MODULE_TIMINGS = ("bl_network", "bl_entropy", "liff", "rc_network", "rc_entropy")


def split_timings(seconds: Mapping[str, float]) -> dict[str, float]:
    """``network`` (BL and RC transforms, LIFF) and ``entropy`` (BL and RC rANS coding) seconds,
    and the per-module seconds they add up from (``MODULE_TIMINGS``; 0 for modules that did not run,
    e.g. LIFF and RC for a base layer alone)."""
    modules = {key: float(seconds.get(key, 0.0)) for key in MODULE_TIMINGS}
    network = modules["bl_network"] + modules["liff"] + modules["rc_network"]
    return {"network": network, "entropy": modules["bl_entropy"] + modules["rc_entropy"], **modules}


def to_tensor(image: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.array(image, copy=True)).to(device).permute(2, 0, 1)[None].float().div(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Output only: clamp to [0, 1], scale and round to 8 bits (the recursion never clamps)."""
    return x[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def check_payloads(model: CompassModel, payloads: Sequence[bytes], sizes: Sequence[tuple[int, int]]) -> None:
    """Refuse, before any network runs, layers whose strings cannot be those of their claimed size
    (rANS strings, and z strings at least ``mean_scale.min_hyper_bytes`` long) and a decode whose
    estimated peak memory exceeds what this process can get: a hostile header claims giant layers
    over a few bytes, and decoding allocates for the claim."""
    peak = 0
    for k, (payload, size) in enumerate(zip(payloads, sizes)):
        try:
            y_string, z_string = model_strings(payload)
        except ValueError as error:
            raise BitstreamError(f"layer {k}: {error}") from None
        coder = model.bl if k == 0 else model.rc
        coded = bl_coded_size(size, model.bl_padding) if k == 0 else size
        mean_scale.check_rans_string(y_string, f"layer {k}: y string")
        mean_scale.check_rans_string(z_string, f"layer {k}: z string")
        z_size = residual.size_plan(coded[0], coded[1], coder, model.padding)["z"]
        mean_scale.check_hyper_string(coder.entropy_bottleneck, z_string, z_size, f"layer {k}")  # type: ignore[arg-type]
        peak = max(peak, decode_bytes(model, k, size, sizes[k - 1] if k else None))
    height, width = max(sizes[: len(payloads)], key=lambda s: s[0] * s[1])
    mean_scale.check_memory(peak, f"a COMPASS layer of {width}x{height}")


def decode_bytes(model: CompassModel, k: int, size: tuple[int, int], below: tuple[int, int] | None) -> int:
    """Estimated peak bytes of decoding layer ``k`` of ``size`` (``below``: layer k-1's size): the
    BL's or RC's synthesis (``mean_scale.decode_bytes_per_pixel``), and for an EL LIFF's features of
    the layer below (G0 + C·G float32 channels, a few tensors alive), one query band (its target
    pixels and previous-layer rows, 4·hidden + 3 terms each, ``liff.LIFF.forward``) and the layers kept."""
    if k == 0:
        coded = bl_coded_size(size, model.bl_padding)
        return coded[0] * coded[1] * mean_scale.decode_bytes_per_pixel(model.bl)
    assert below is not None
    pixels, below_pixels = size[0] * size[1], below[0] * below[1]
    liff = model.config.liff if model.config is not None else LiffConfig()
    features = below_pixels * 4 * (liff.g0 + liff.rdb_convs * liff.growth) * 4
    band = (liff.chunk_pixels + 4 * (below[1] + 2)) * 4 * (4 * liff.mlp_hidden + 3) * 4
    kept = 4 * 3 * 4 * (pixels + below_pixels)  # previous layer, prediction, residual, reconstruction
    return pixels * mean_scale.decode_bytes_per_pixel(model.rc) + features + band + kept


@register_codec("compass")
class CompassCodec(Codec):
    info = CodecInfo(
        description=("COMPASS (Park, Lee, Kim, ICCV 2023): mean-scale BL, LIFF inter-layer prediction and "
            "residual coding shared by every EL; any number of layers, any ratios "
            "(compass@official: the published checkpoints)"),
        scalable=True,
        default_qualities=QUALITIES,
        fixed_qualities=True,  # one weights file per quality
        prefix_decodable=True,  # header + BL chunk, then one chunk per EL (bitstream.py)
        rate_counts=("a header on layer 0 (12 bytes with its CRC-32, the weights' name of ~19 bytes, 4 bytes per "
                       "layer size), then per layer a 5-byte chunk head and a CRC-32 (integrity, 4 bytes)"),
        family="mean-scale",  # its BL: reports pair it with mean-scale and simulcast:mean-scale
        published_sources=("official",),  # what `bench list` shows beside the default
        fuzz=fuzz_setup,
    )
    # Every @SOURCE names weights (none is a folder), so a bitstream file may name any (bench.registry).
    named_sources = ("bench", "official")
    # Decoding allocates for the sizes a header claims: the largest layer ``decode`` accepts (``bench
    # decode --max-pixels`` sets it). Layers this instance encoded itself are trusted.
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __init__(
        self,
        arg: str | None = None,
        source: str | None = None,
        device: str = "cpu",
        models: Mapping[int, CompassModel] | None = None,
    ) -> None:
        """``models`` injects ready models per quality (tests); otherwise weights come from the zoo."""
        super().__init__(arg, source, device)
        self._models: dict[int, CompassModel] = dict(models or {})
        self._injected = models is not None
        self._encoded_pixels = 0  # the largest layer encoded here: its decode is not a hostile claim
        self._info: dict[int, dict[str, str]] = {}
        self._meta_models: dict[int, torch.nn.Module] = {}  # shapes only, for ``complexity``
        # the last encode's layers, reconstructions and LIFF predictions, for ``encode_diagnostics``
        self._last_encode: tuple[list[np.ndarray], list[torch.Tensor], list[torch.Tensor]] | None = None

    # ----------------------------------------------------------------------------- weights
    def _model(self, quality: int) -> CompassModel:
        if quality not in self._models:
            if self.source not in SOURCES:
                raise CodecError(self.availability().reason)
            if self._injected or quality not in QUALITIES:
                known = sorted(self._models) if self._injected else list(QUALITIES)
                raise CodecError(f"compass has no quality {quality} (qualities: {known})")
            load = official.load_official_model if self.source == "official" else load_zoo_model
            self._models[quality], self._info[quality] = load(quality, self.device)
        return self._models[quality]

    def weights_status(self) -> tuple[str, list[int]]:
        """Where the weights come from and the qualities whose files are present (loads nothing)."""
        if self._injected:
            return "injected models", sorted(self._models)
        if self.source == "official":
            return f"official checkpoints ({official.folder()})", official.available_qualities()
        if self.source not in SOURCES:
            return f"unknown source {self.source!r}", []
        from bench import zoo

        bl = zoo.available_qualities("mean-scale")
        return f"bench zoo ({zoo.zoo_root()})", [q for q in zoo.available_qualities("compass") if q in bl]

    def availability(self) -> Availability:
        if self._injected:
            return Availability.ok()
        if self.source not in SOURCES:
            return Availability.missing(
                f"unknown weights source {self.source!r} for compass: 'bench' (the trained zoo) or "
                f"'official' (the published checkpoints in {official.folder()})"
            )
        if self.arg:
            return Availability.missing(f"compass takes no argument, got {self.arg!r}")
        if self.source == "official":
            present = official.available_qualities()
            missing = [q for q in QUALITIES if q not in present]
            if not present:
                return Availability.missing(official.missing_message(missing))
            if missing:  # usable at the qualities that are there
                return Availability(True, f"only qualities {present}; {official.missing_message(missing)}")
            return Availability.ok()
        try:
            from bench import zoo

            found = zoo.available_qualities("compass")
            with_bl = [q for q in found if q in zoo.available_qualities("mean-scale")]
        except (ImportError, CodecError, OSError) as error:
            return Availability.missing(f"the weights zoo (bench.zoo) cannot be read: {error}")
        if not found:
            return Availability.missing(f"no COMPASS weights (compass-q1..q4) in the zoo; {TRAINING_HINT}")
        if not with_bl:
            return Availability.missing(
                f"COMPASS weights for qualities {found} but no mean-scale base layer "
                "weights for them in the zoo"
            )
        return Availability.ok()

    def coding_threads(self, requested: int) -> int:
        return requested if self.device.startswith("cuda") else NETWORK_THREADS  # bench.determinism

    def parameter_counts(self) -> dict[str, int]:
        if not self._models:
            for q in QUALITIES:
                try:
                    self._model(q)
                    break
                except (CodecError, ImportError, OSError):
                    continue
        if not self._models:
            return {}
        return next(iter(self._models.values())).parameter_counts()

    def weights_info(self) -> dict[str, str]:
        if not self._info:
            return {}
        keys = dict.fromkeys(key for info in self._info.values() for key in info)
        return {
            key: ", ".join(f"q{q}: {info[key]}" for q, info in sorted(self._info.items()) if key in info)
            for key in keys
        }

    def weights_id(self, quality: int) -> str | None:
        """The SHA-256 of ``quality``'s weights file (``compass-qQ-*`` in the zoo, or the official
        checkpoint): the loaded model's, else the file's, hashed without loading it; None for injected
        models and where there is no file. A zoo file names the BL file it was trained on
        (``bl_sha256``) and loading refuses any other, so its hash identifies the BL too."""
        if quality in self._info:
            return self._info[quality].get("sha256")
        if self._injected or self.source not in SOURCES or self.arg or quality not in QUALITIES:
            return None
        if self.source == "official":
            if quality not in official.available_qualities():
                return None
            return weights_file_id(official.find_checkpoint(quality), sha256_file)
        from bench import zoo

        try:
            path = zoo.find_weights("compass", quality, how_to=TRAINING_HINT)
        except zoo.MissingWeightsError:
            return None
        return weights_file_id(path, zoo.verify_hash)

    def complexity(self, sizes: Sequence[tuple[int, int]], quality: int) -> list[LayerComplexity]:
        """kMAC/pixel per layer: the BL's hyperprior, or LIFF and the RC's for an EL; the encoder
        also decodes every layer it codes (``complexity.layer_macs``)."""
        if quality not in self._meta_models:
            self._meta_models[quality] = on_meta(self._model(quality))
        macs = layer_macs(self._meta_models[quality], sizes)  # type: ignore[arg-type]
        return [LayerComplexity(kmac_per_pixel(encoder, *size), kmac_per_pixel(decoder, *size))
                for (encoder, decoder), size in zip(macs, sizes, strict=True)]

    # ----------------------------------------------------------------------------- coding
    def encode(self, layers: Sequence[np.ndarray], quality: int) -> Encoded:
        self._last_encode = None  # a failing call leaves nothing stale for encode_diagnostics
        if not layers:
            raise CodecError("compass needs at least one layer")
        for image in layers:
            check_image(image)
        sizes = [(int(im.shape[0]), int(im.shape[1])) for im in layers]
        for k in range(1, len(sizes)):
            if sizes[k][0] < sizes[k - 1][0] or sizes[k][1] < sizes[k - 1][1]:
                raise CodecError(
                    f"layers must be ordered smallest first; layer {k} {sizes[k]} is smaller "
                    f"than layer {k - 1} {sizes[k - 1]}"
                )
        model = self._model(quality)
        self._encoded_pixels = max(self._encoded_pixels, *(h * w for h, w in sizes))
        header = bitstream.Header(quality, model.model_id, tuple(sizes))
        bitstream.encode_header(header)  # size/count limits checked before any network runs
        clock = SectionClock(self.device)
        predictions: list[torch.Tensor] = []
        with fixed_network_threads(self.device):
            payloads, recons = model.encode_layers([to_tensor(im, self.device) for im in layers], clock, predictions)
        self._last_encode = (list(layers), recons, predictions)
        data, layer_bytes = bitstream.pack(header, payloads)
        return Encoded(data, layer_bytes, split_timings(clock.seconds))

    def encode_diagnostics(self) -> list[dict[str, float]]:
        """Per EL k: PSNR (8-bit, RGB) of the LIFF prediction Ǐ_k that the last ``encode`` used and of
        bicubic upsampling of the same decoded Î_{k-1}: how much LIFF gains over interpolation.
        Layer 0 (the BL, no prediction) gets an empty dict."""
        if self._last_encode is None:
            return []
        layers, recons, predictions = self._last_encode
        self._last_encode = None  # the tensors are only kept for this one call
        report: list[dict[str, float]] = [{}]
        for k in range(1, len(layers)):
            size = tuple(layers[k].shape[:2])
            bicubic = F.interpolate(recons[k - 1], size=size, mode="bicubic", align_corners=False)
            report.append({"psnr_liff": _psnr(to_uint8(predictions[k - 1]), layers[k]),
                           "psnr_bicubic": _psnr(to_uint8(bicubic), layers[k])})
        return report

    def prediction_report(self, layers: Sequence[np.ndarray], quality: int) -> list[dict[str, float]]:
        """``encode_diagnostics`` of one encode of ``layers`` at ``quality``, as a list over the ELs
        with their layer index."""
        self.encode(layers, quality)
        return [{"layer": k, **numbers} for k, numbers in enumerate(self.encode_diagnostics()) if k > 0]

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        self.last_decode_timings = {}
        header, payloads = bitstream.unpack(data, num_layers)
        limit = max(self.max_pixels, self._encoded_pixels)
        for k, (h, w) in enumerate(header.sizes[: len(payloads)]):
            if h * w > limit:
                raise BitstreamError(f"layer {k} claims {w}x{h} pixels, more than the limit of {limit} "
                                     "(bench decode --max-pixels)")
        known = self._models if self._injected else QUALITIES
        if header.quality not in known:
            raise BitstreamError(f"bitstream names quality {header.quality}, which no COMPASS weights here have")
        model = self._model(header.quality)
        if header.model_id != model.model_id:
            raise BitstreamError(
                f"bitstream was encoded with {header.model_id!r}, but quality "
                f"{header.quality} here is {model.model_id!r}"
            )
        check_payloads(model, payloads, header.sizes)  # before any network runs
        out = []
        previous = None
        clock = SectionClock(self.device)
        for k, payload in enumerate(payloads):
            try:
                with fixed_network_threads(self.device):
                    previous = model.decode_layer(k, payload, header.sizes[k], previous, clock=clock)
            except (ValueError, RuntimeError, OverflowError) as error:
                raise BitstreamError(f"layer {k}: payload cannot be decoded ({error})") from error
            out.append(to_uint8(previous))
        self.last_decode_timings = split_timings(clock.seconds)
        return out
