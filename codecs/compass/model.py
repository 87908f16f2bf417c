"""COMPASS: frozen base layer + K enhancement layers sharing one LIFF and one RC (spec §1–§3).

``CompassModel`` holds three modules: ``bl`` (a CompressAI mean-scale hyperprior, frozen),
``liff`` (inter-layer prediction) and ``rc`` (residual compression, a second mean-scale
hyperprior). Every EL runs the same two shared modules, recursively, for any number of layers and
any ratios: Ǐ_k = LIFF(Î_{k-1}, size_k), Î_k = Ǐ_k + RC(I_k − Ǐ_k). Nothing is clamped inside
the recursion; outputs and metrics clamp to [0, 1] (spec §3.3).

``encode_layers``/``decode_layers`` produce and consume one payload per layer (bytes); the
bitstream container (header, chunk framing, CRCs) lives in ``bitstream.py``. The encoder decodes
each layer from its own payload with the decoder's code before predicting the next layer, so both
sides feed LIFF the same Î_{k-1} and reconstruct bit-identical layers.

Both take an optional ``SectionClock`` that receives seconds per module and kind of work:
``bl_network``, ``bl_entropy`` (rANS coding and CDF index preparation of the BL), ``liff``,
``rc_network``, ``rc_entropy``.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import torch
from torch import nn

from bench.codec import SectionClock
from bench.codecs.compass import residual
from bench.codecs.compass.liff import LIFF, LiffConfig
from bench.codecs.mean_scale import plugin as mean_scale

# How the base layer is padded when coded inside COMPASS (``CompassConfig.bl_padding``; the spec
# prescribes the conv-layer-wise scheme for RC only and says the BL is the single-layer network):
# - "whole": replicate the bottom/right up to a multiple of 64 (``mean_scale.pad_image``), as the
#   single-layer ``mean-scale`` plugin (and CompressAI's evaluation) codes an image, so COMPASS's
#   layer 0 is the single-layer codec's own. bench's default: the BL was trained as a single-layer
#   codec on even-sized crops, and layer-wise padding of odd sizes costs it near the padded border
#   (kodim01 at 426×640, q3: 28.08 dB layer-wise vs 28.45 dB whole, same rate; the last 64 rows
#   27.2 vs 29.7 dB).
# - "layerwise": the RC's scheme (spec §3.2) for the BL too, as the public reference code does;
#   what ``compass@official`` uses to reproduce that code.
# The BL weights are fully convolutional, so this only changes border handling, never the network.
BL_PADDINGS = ("whole", "layerwise")


def bl_input(image: torch.Tensor, bl_padding: str) -> torch.Tensor:
    """What the BL's analysis transform gets for ``image`` (1x3xHxW) under ``bl_padding``."""
    return mean_scale.pad_image(image) if bl_padding == "whole" else image


def bl_coded_size(size: tuple[int, int], bl_padding: str) -> tuple[int, int]:
    """The size of ``bl_input`` for an image of ``size``: what the BL decoder reconstructs."""
    return (mean_scale.padded(size[0]), mean_scale.padded(size[1])) if bl_padding == "whole" else size


def base_layer_forward(
    bl: nn.Module, image: torch.Tensor, bl_padding: str, padding: residual.Padding = residual.BENCH_PADDING
) -> dict:
    """``residual.forward`` of the BL on ``bl_input(image)``, ``x_hat`` cropped back to the image size
    (training and validation; coding pads the same way)."""
    out = residual.forward(bl, bl_input(image, bl_padding), padding)
    out["x_hat"] = out["x_hat"][..., : image.shape[-2], : image.shape[-1]]
    return out


@dataclass(frozen=True)
class CompassConfig:
    """LIFF and RC sizes (the BL size comes from its own weights) and the layer-wise padding
    scheme of BL and RC (``residual.PADDINGS``: "bench", or "official" for the reference code's)."""

    liff: LiffConfig = field(default_factory=LiffConfig)
    rc_n: int = 128
    rc_m: int = 192
    padding: str = "bench"
    bl_padding: str = "whole"

    def __post_init__(self) -> None:
        if self.padding not in residual.PADDINGS:
            raise ValueError(f"unknown padding scheme {self.padding!r}; known: {sorted(residual.PADDINGS)}")
        if self.bl_padding not in BL_PADDINGS:
            raise ValueError(f"unknown BL padding {self.bl_padding!r}; known: {list(BL_PADDINGS)}")

    def to_dict(self) -> dict:
        return {"liff": self.liff.to_dict(), "rc_n": self.rc_n, "rc_m": self.rc_m, "padding": self.padding,
                "bl_padding": self.bl_padding}

    @classmethod
    def from_dict(cls, data: dict) -> "CompassConfig":
        # checkpoints written before the padding fields existed: bench's RC scheme, and the BL
        # padding is an inference choice that no weights depend on, so today's default
        return cls(LiffConfig(**data["liff"]), int(data["rc_n"]), int(data["rc_m"]),
                   str(data.get("padding", "bench")), str(data.get("bl_padding", "whole")))


# The paper's networks (spec §4: RDN 4 blocks × 4 convs, growth 32, G0 64, MLP 4×256; RC 128/192).
PAPER_CONFIG = CompassConfig(LiffConfig(), 128, 192)
# Sized to train on two CPU cores: same structure, fewer/narrower layers.
CPU_CONFIG = CompassConfig(
    LiffConfig(g0=32, rdb_blocks=2, rdb_convs=4, growth=16, mlp_hidden=128, mlp_layers=4), 64, 96
)
# Only for tests and smoke runs of the training command: seconds per step on any machine.
TINY_CONFIG = CompassConfig(
    LiffConfig(g0=8, rdb_blocks=1, rdb_convs=2, growth=4, mlp_hidden=16, mlp_layers=2), 8, 12
)
CONFIGS = {"cpu": CPU_CONFIG, "paper": PAPER_CONFIG, "tiny": TINY_CONFIG}
# The paper networks run exactly as the public reference code runs them (its padding scheme; LIFF
# and the mean-scale hyperpriors are layer for layer the same): what its published checkpoints need
# (``official.py``). Not a training config: bench trains with its own scheme.
OFFICIAL_CONFIG = CompassConfig(
    replace(PAPER_CONFIG.liff, nearest="grid_sample"), PAPER_CONFIG.rc_n, PAPER_CONFIG.rc_m, padding="official",
    bl_padding="layerwise"
)


def count_parameters(module: nn.Module) -> int:
    """Learned parameters (CompressAI's entropy-bottleneck quantiles count, CDF buffers do not)."""
    return sum(p.numel() for p in module.parameters())


def _pack_strings(y_string: bytes, z_string: bytes) -> bytes:
    return struct.pack(">I", len(z_string)) + z_string + y_string


def _unpack_strings(payload: bytes) -> tuple[bytes, bytes]:
    if len(payload) < 4:
        raise ValueError("payload shorter than its 4-byte z length")
    (z_len,) = struct.unpack(">I", payload[:4])
    if 4 + z_len > len(payload):
        raise ValueError(f"z string of {z_len} bytes does not fit in a {len(payload)}-byte payload")
    return payload[4 + z_len :], payload[4 : 4 + z_len]


class _TimedEntropyModel:
    """Forwards to a CompressAI entropy model, charging every method call to ``key`` of a clock."""

    def __init__(self, module: nn.Module, clock: SectionClock, key: str) -> None:
        self._module, self._clock, self._key = module, clock, key

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._module, name)
        if not callable(attribute):
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._clock.section(self._key):
                return attribute(*args, **kwargs)

        return timed


class _TimedCoder:
    """A mean-scale hyperprior as ``residual.compress``/``decompress`` see it, with its entropy
    models timed. Wrapping, rather than re-running those functions' steps here, keeps one coding
    path: the padding plan and call order stay in ``residual`` alone, and the bytes cannot drift."""

    def __init__(self, model: nn.Module, clock: SectionClock, key: str) -> None:
        self._model = model
        self.entropy_bottleneck = _TimedEntropyModel(model.entropy_bottleneck, clock, key)
        self.gaussian_conditional = _TimedEntropyModel(model.gaussian_conditional, clock, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def _timed(clock: SectionClock, module: nn.Module, name: str, code: Callable[..., Any], *args: Any) -> Any:
    """``code(module, *args)`` with its entropy coding charged to ``{name}_entropy`` and everything
    else (transforms, padding) to ``{name}_network``."""
    with clock.section(f"{name}_network"):
        return code(_TimedCoder(module, clock, f"{name}_entropy"), *args)


class CompassModel(nn.Module):
    def __init__(
        self,
        bl: nn.Module,
        liff: LIFF,
        rc: nn.Module,
        config: CompassConfig | None = None,
        model_id: str = "unnamed",
    ) -> None:
        super().__init__()
        self.bl = bl
        self.liff = liff
        self.rc = rc
        self.config = config
        self.model_id = model_id  # written into every bitstream header; decoding checks it
        for p in self.bl.parameters():  # the BL is never trained inside COMPASS
            p.requires_grad_(False)
        self.padding = residual.PADDINGS[config.padding if config is not None else "bench"]
        self.bl_padding = config.bl_padding if config is not None else "whole"


    @classmethod
    def build(cls, bl: nn.Module, config: CompassConfig, model_id: str = "unnamed") -> "CompassModel":
        return cls(
            bl, LIFF(config.liff), residual.build_mean_scale(config.rc_n, config.rc_m), config, model_id
        )

    def train(self, mode: bool = True) -> "CompassModel":
        super().train(mode)
        self.bl.eval()  # frozen: eval-mode quantisation (rounding), never noise
        return self

    def parameter_counts(self) -> dict[str, int]:
        counts = {
            "bl": count_parameters(self.bl),
            "liff": count_parameters(self.liff),
            "rc": count_parameters(self.rc),
        }
        counts["total"] = sum(counts.values())
        return counts

    # --------------------------------------------------------------------------- training
    def forward(self, layers: Sequence[torch.Tensor], cast: residual.Cast = contextlib.nullcontext) -> dict:
        """Differentiable pass over layers 0..K (smallest first, each Bx3xHxW in [0, 1]).

        The BL is run frozen under no_grad (its rounded reconstruction, as the decoder sees it, in
        fp32 whatever ``cast``); each EL returns its prediction, reconstruction and RC likelihoods
        for the RD loss. ``cast`` makes the context LIFF and the RC's transforms run in (training's
        bf16 autocast); LIFF's prediction is made fp32 before it meets the RC.
        """
        with torch.no_grad():
            bl_out = base_layer_forward(self.bl, layers[0], self.bl_padding, self.padding)
        recon = bl_out["x_hat"]
        outputs = {"bl": bl_out, "el": []}
        for target in layers[1:]:
            with cast():
                pred = self.liff(recon, (target.shape[-2], target.shape[-1]))
            pred = pred.float()
            rc_out = residual.forward(self.rc, target - pred, self.padding, cast)
            recon = pred + rc_out["x_hat"]
            outputs["el"].append({"pred": pred, "x_hat": recon, "likelihoods": rc_out["likelihoods"]})
        return outputs

    # --------------------------------------------------------------------------- coding
    @torch.no_grad()
    def encode_layers(
        self,
        layers: Sequence[torch.Tensor],
        clock: SectionClock | None = None,
        predictions: list[torch.Tensor] | None = None,
    ) -> tuple[list[bytes], list[torch.Tensor]]:
        """Code every layer (1x3xHxW tensors, smallest first) into one payload each.

        Returns the payloads and the reconstructions (unclamped) that a decoder will produce.
        ``predictions``, when given, receives the LIFF prediction Ǐ_k of every EL (k ≥ 1), so that
        callers can judge the prediction without running LIFF again.
        """
        clock = clock if clock is not None else SectionClock()
        payloads: list[bytes] = []
        recons: list[torch.Tensor] = []
        recon = None
        for k, image in enumerate(layers):
            size = (image.shape[-2], image.shape[-1])
            pred = None
            if k == 0:
                with clock.section("bl_network"):
                    padded = bl_input(image, self.bl_padding)
                strings = _timed(clock, self.bl, "bl", residual.compress, padded, self.padding)
            else:
                with clock.section("liff"):
                    pred = self.liff(recon, size)
                if predictions is not None:
                    predictions.append(pred)
                with clock.section("rc_network"):
                    residue = image - pred
                strings = _timed(clock, self.rc, "rc", residual.compress, residue, self.padding)
            payload = _pack_strings(*strings)
            # decode exactly as the decoder will, so the next prediction starts from the same Î
            # (the decoder's LIFF call on the same Î_{k-1} gives this very ``pred``)
            recon = self.decode_layer(k, payload, size, recon, pred, clock)
            payloads.append(payload)
            recons.append(recon)
        return payloads, recons

    @torch.no_grad()
    def decode_layers(
        self, payloads: Sequence[bytes], sizes: Sequence[tuple[int, int]]
    ) -> list[torch.Tensor]:
        """Decode layers 0..len(payloads)-1 (unclamped 1x3xHxW tensors)."""
        recons: list[torch.Tensor] = []
        recon = None
        for k, (payload, size) in enumerate(zip(payloads, sizes)):
            recon = self.decode_layer(k, payload, size, recon)
            recons.append(recon)
        return recons

    @torch.no_grad()
    def decode_layer(
        self,
        k: int,
        payload: bytes,
        size: tuple[int, int],
        previous: torch.Tensor | None,
        pred: torch.Tensor | None = None,
        clock: SectionClock | None = None,
    ) -> torch.Tensor:
        """Layer k from its payload and the (unclamped) reconstruction of layer k-1.

        ``pred``: LIFF(previous, size) when the caller (the encoder) has it already.
        """
        clock = clock if clock is not None else SectionClock()
        y_string, z_string = _unpack_strings(payload)
        if k == 0:
            coded = bl_coded_size(size, self.bl_padding)
            x_hat = _timed(clock, self.bl, "bl", residual.decompress, y_string, z_string, coded, self.padding)
            return x_hat[..., : size[0], : size[1]]
        if pred is None:
            if previous is None:
                raise ValueError(f"layer {k} needs the reconstruction of layer {k - 1}")
            with clock.section("liff"):
                pred = self.liff(previous, size)
        residue = _timed(clock, self.rc, "rc", residual.decompress, y_string, z_string, size, self.padding)
        with clock.section("rc_network"):
            return pred + residue


def config_summary() -> dict[str, dict[str, int]]:
    """Parameter counts of LIFF and RC in both configs (the BL is counted from its weights)."""
    out = {}
    for name, cfg in CONFIGS.items():
        liff = count_parameters(LIFF(cfg.liff))
        rc = count_parameters(residual.build_mean_scale(cfg.rc_n, cfg.rc_m))
        out[name] = {"liff": liff, "rc": rc}
    return out
