"""Train COMPASS in stages: LIFF as arbitrary-scale SR, RC with bicubic prediction, then joint RD.

Stages (spec §5), each resumable from ``<out>/last.pt``:
- ``--stage liff``: LIFF alone as arbitrary-scale super-resolution (×1…×4, L1 loss) from clean,
  PIL-bicubic-downscaled crops.
- ``--stage rc``: RC alone, predicting every EL by bicubic upsampling of the previous
  reconstruction, over a frozen BL; loss Σ_k R_k + λ·255²·D_k over K=2 ELs.
- ``--stage joint``: LIFF + RC together over the frozen BL with the combined RD loss over K=2 ELs
  and one λ; the RC decoder (and so the next layer) gets ŷ = round(y − μ) + μ with a
  straight-through gradient, while the rate uses the noisy latents.
- ``--stage export``: a joint checkpoint → ``bench/weights/compass-q<Q>-<sha8>.pth.tar``.

Layer sizes are drawn per batch relative to the crop c (spec §5): BL int(0.25·c),
EL1 int(u₁·c) with u₁ ~ U(0.25, 0.5), EL2 int(u₂·c) with u₂ ~ U(0.5, 1.0); each layer is resized
directly from the crop with PIL bicubic (antialiased) and rounded to 8 bits, as the pyramid is.
Unlike the public reference code, the scale token always comes from the actual layer sizes and the
rounding offset μ is the same in training and inference (both slips are listed in spec §5).

Two choices beyond the spec, off by default and recorded in checkpoints and zoo files:
``--el1-range``/``--el2-range`` widen the drawn layer sizes (the spec's EL1 ∈ [0.25, 0.5]·c never
trains an EL directly over a BL at a ratio above 2, which 2-layer ratios like 2.8 use), and
``--freeze-rc`` fine-tunes LIFF alone through a fixed RC (the RD gradient still flows through the
RC), so a new zoo file differs from the old one only in LIFF's bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from bench.codecs.compass import residual
from bench.codecs.compass.liff import LIFF
from bench.codecs.compass.model import CONFIGS, CompassConfig, CompassModel, base_layer_forward
from bench.codecs.mean_scale import weights as mean_scale_weights
from bench.errors import TrainingError
from bench.hashing import sha256_file
from bench.registry import PluginTrainer
from bench.train.checkpoint import load_checkpoint, load_if_present, read_init_source, save_atomic, saved_arguments
from bench.train.common import TrainingOptions, add_common_arguments, config_from_args, psnr_from_mse
from bench.train.data import CropSampler, list_training_images
from bench.train.export import ExportConfig, ExportResult
from bench.train.precision import add_precision_argument, autocast, memory_format, resolve_precision
from bench.train.schedule import (
    PrefetchedBatches,
    Schedule,
    check_minutes,
    check_schedule_on_resume,
    close_loop,
    positive_minutes,
)

DEFAULT_LR = {"liff": 2e-4, "rc": 5e-4, "joint": 1e-4}
BL_FRACTION = 0.25
EL1_RANGE = (0.25, 0.5)
EL2_RANGE = (0.5, 1.0)


# ----------------------------------------------------------------------------- data
def resize_batch(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL bicubic (antialiased) resize of a Bx3xHxW [0, 1] batch, rounded to 8 bits."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x.clone()
    out = []
    for image in x:
        array = image.mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        resized = Image.fromarray(array).resize((size[1], size[0]), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1))
    return torch.stack(out).float().div(255.0).to(x.device)


def draw_layer_sizes(
    rng: np.random.Generator,
    crop: int,
    el1_range: tuple[float, float] = EL1_RANGE,
    el2_range: tuple[float, float] = EL2_RANGE,
) -> list[int]:
    """Side lengths of BL, EL1, EL2 for one batch (square crops give square layers)."""
    el1 = int(crop * rng.uniform(*el1_range))
    el2 = int(crop * rng.uniform(*el2_range))
    bl = int(crop * BL_FRACTION)
    return [max(bl, 1), max(el1, bl, 1), max(el2, el1, 1)]


def channel_pair(text: str) -> tuple[int, int]:
    """``--rc-size N,M``: two positive channel counts."""
    try:
        n, m = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,M (two channel counts, e.g. 128,192), got {text!r}") from None
    if n < 1 or m < 1:
        raise argparse.ArgumentTypeError(f"channel counts must be positive, got {text!r}")
    return n, m


def layer_range(text: str) -> tuple[float, float]:
    """``LO,HI``: a layer's side as a fraction of the crop, drawn uniformly per batch."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two fractions of the crop), got {text!r}") from None
    if not BL_FRACTION <= low <= high <= 1.0:
        raise argparse.ArgumentTypeError(f"need {BL_FRACTION} <= LO <= HI <= 1, got {text!r}")
    return low, high


def check_layer_ranges(el1_range: tuple[float, float], el2_range: tuple[float, float]) -> None:
    """EL2 must never be drawn smaller than EL1 (every ratio of a scale combination is > 1)."""
    if el2_range[0] < el1_range[1]:
        raise TrainingError(
            f"--el2-range starts at {el2_range[0]}, below the end of --el1-range {el1_range[1]}: "
            "EL2 could be drawn smaller than EL1"
        )


STAGES = ("liff", "rc", "joint", "export")


@dataclass(frozen=True, kw_only=True)
class CompassTrainingConfig(TrainingOptions):
    """One ``python -m bench.train compass`` run or export, with the command line's options and defaults.

    ``stage``: liff, rc, joint (``train``) or export (``export``); ``config``: the network sizes
    (``bench.codecs.compass.model.CONFIGS``: cpu, paper, tiny); ``quality``: sets λ and takes the BL
    from the zoo's mean-scale file; ``lmbda``: λ instead; ``bl``: a mean-scale checkpoint as the BL
    instead; ``liff_from``/``rc_from``/``init_from``: initial weights of a fresh run;
    ``el1_range``/``el2_range``: EL sides as fractions of the crop; ``rc_size``: the RC's (N, M);
    ``out``: the run folder (``last.pt`` there is resumed); ``source``/``storage``/``export_dir``:
    export's joint checkpoint, convolution storage and zoo folder. TrainingError for a bad value.
    """

    command: ClassVar[str] = "compass"
    path_fields: ClassVar[tuple[str, ...]] = ("bl", "liff_from", "rc_from", "init_from", "out", "source",
                                              "export_dir")
    after_common: ClassVar[tuple[str, ...]] = ("val_crop",)

    stage: str
    config: str = "cpu"
    quality: int | None = None
    lmbda: float | None = None
    bl: str | None = None
    liff_from: str | None = None
    rc_from: str | None = None
    steps: int = 20000
    batch: int = 8
    crop: int = 128
    lr: float | None = None
    decay_fraction: float = 0.2
    decay_factor: float = 0.5
    minutes: float | None = None
    init_from: str | None = None
    rebase_bl: bool = False
    el1_range: tuple[float, float] = EL1_RANGE
    el2_range: tuple[float, float] = EL2_RANGE
    rc_size: tuple[int, int] | None = None
    freeze_rc: bool = False
    scale_min: float = 1.0
    scale_max: float = 4.0
    out: str | None = None
    precision: str = "fp32"
    source: str | None = None
    storage: str = "float16"
    export_dir: str | None = None
    val_crop: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage not in STAGES:
            raise TrainingError(f"--stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.config not in CONFIGS:
            raise TrainingError(f"--config must be one of {', '.join(sorted(CONFIGS))}, got {self.config!r}")
        qualities = sorted(mean_scale_weights.QUALITY_LAMBDAS)  # COMPASS's λ at a quality is its BL's
        if self.quality is not None and self.quality not in qualities:
            raise TrainingError(f"--quality must be one of {qualities}, got {self.quality}")
        check_minutes(self.minutes)
        for name, flag in (("el1_range", "--el1-range"), ("el2_range", "--el2-range")):
            low, high = (float(part) for part in getattr(self, name))
            if not BL_FRACTION <= low <= high <= 1.0:
                raise TrainingError(f"{flag}: need {BL_FRACTION} <= LO <= HI <= 1, got {low},{high}")
            object.__setattr__(self, name, (low, high))
        if self.rc_size is not None:
            n, m = (int(part) for part in self.rc_size)
            if n < 1 or m < 1:
                raise TrainingError(f"--rc-size: channel counts must be positive, got {n},{m}")
            object.__setattr__(self, "rc_size", (n, m))


def make_pyramid(x: torch.Tensor, sides: list[int]) -> list[torch.Tensor]:
    return [resize_batch(x, (s, s)) for s in sides]


# ----------------------------------------------------------------------------- losses
def bits_per_pixel(likelihoods: dict[str, torch.Tensor], num_pixels: int) -> torch.Tensor:
    return sum(torch.log(lk).sum() for lk in likelihoods.values()) / (-math.log(2) * num_pixels)


def bicubic_predict(previous: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(previous, size=size, mode="bicubic", align_corners=False)


def el_rd_loss(outputs: list[dict], targets: list[torch.Tensor], lmbda: float) -> dict[str, torch.Tensor]:
    """Σ_k R_k + λ·255²·D_k over the ELs (R_k in bpp of layer k, D_k the MSE of Î_k vs I_k)."""
    loss = torch.zeros((), device=targets[0].device)
    stats: dict[str, torch.Tensor] = {}
    for k, (out, target) in enumerate(zip(outputs, targets), start=1):
        pixels = target.shape[0] * target.shape[2] * target.shape[3]
        bpp = bits_per_pixel(out["likelihoods"], pixels)
        mse = F.mse_loss(out["x_hat"], target)
        loss = loss + bpp + lmbda * 255**2 * mse
        stats[f"bpp{k}"], stats[f"mse{k}"] = bpp.detach(), mse.detach()
    stats["loss"] = loss
    return stats


def rc_stage_forward(
    bl: torch.nn.Module, rc: torch.nn.Module, layers: list[torch.Tensor], bl_padding: str = "whole",
    cast: residual.Cast = contextlib.nullcontext,
) -> list[dict]:
    """The EL recursion with bicubic prediction in place of LIFF (RC pre-training); the BL is padded
    as ``CompassModel`` pads it (``bl_padding``); ``cast`` as in ``CompassModel.forward``."""
    with torch.no_grad():
        recon = base_layer_forward(bl, layers[0], bl_padding)["x_hat"]
    outputs = []
    for target in layers[1:]:
        pred = bicubic_predict(recon, tuple(target.shape[-2:]))
        out = residual.forward(rc, target - pred, cast=cast)
        recon = pred + out["x_hat"]
        outputs.append({"pred": pred, "x_hat": recon, "likelihoods": out["likelihoods"]})
    return outputs


# ----------------------------------------------------------------------------- base layer
def load_base_layer(config: CompassTrainingConfig) -> tuple[torch.nn.Module, str]:
    """The frozen BL (eval mode, CDF tables ready) and the sha256 of the file it came from."""
    if config.bl:
        path = Path(config.bl)
        state = load_checkpoint(path)
        state = state.get("model", state) if isinstance(state, dict) else state
        if not isinstance(state, dict) or "g_a.0.weight" not in state:
            raise TrainingError(f"--bl {path} holds no mean-scale model (a `bench.train mean-scale` checkpoint)")
        bl = residual.build_mean_scale(state["g_a.0.weight"].shape[0], state["g_a.6.weight"].shape[0])
        bl.load_state_dict(state)
        bl.update(force=True)
        digest = sha256_file(path)
    elif config.quality:
        from bench import zoo

        digest = zoo.verify_hash(mean_scale_weights.weights_path(config.quality))
        bl = mean_scale_weights.load_mean_scale(config.quality)
    else:
        raise TrainingError("this stage needs a base layer: --quality Q (zoo mean-scale) or --bl CHECKPOINT")
    bl.eval()
    for p in bl.parameters():
        p.requires_grad_(False)
    return bl, digest


def lmbda_of(config: CompassTrainingConfig) -> float:
    if config.lmbda is not None:
        return config.lmbda
    if config.quality:
        return mean_scale_weights.QUALITY_LAMBDAS[config.quality]
    raise TrainingError("this stage needs --quality Q (λ from the quality table) or --lmbda")


def _init_from_weights(source: str, quality: int | None, liff: LIFF | None, rc: torch.nn.Module | None,
                       bl_sha256: str | None, config_name: str | None = None, rebase_bl: bool = False) -> Path:
    """Initialise LIFF and RC from a COMPASS zoo file (``zoo`` = the zoo's file at --quality) or
    from a training checkpoint, to fine-tune committed weights (e.g. on a lent GPU).

    A zoo file's float16 convolutions are widened to float32 and its CDF tables load with the rest
    (training never uses them; export recomputes them). Weights trained over another BL, or of
    another network configuration than ``--config``, are refused with a message naming both."""
    from bench import zoo
    from bench.codecs.compass.plugin import split_state

    contents, path = read_init_source("compass", source, quality)
    if "state_dict" in contents:  # zoo format: {"state_dict": {"liff.*", "rc.*"}, "config": …}
        state = zoo.full_precision(contents["state_dict"])
        parts = {key: split_state(state, key) for key in ("liff", "rc")}
        trained_over = contents["config"].get("bl_sha256")
        source_config = contents["config"].get("config_name")
    else:  # a training checkpoint (last.pt)
        parts = {key: contents.get(key) for key in ("liff", "rc")}
        trained_over = contents.get("bl_sha256")
        source_config = contents.get("config_name")
    if bl_sha256 and trained_over and trained_over != bl_sha256:
        if not rebase_bl:
            raise TrainingError(
                f"{path} was trained over BL {trained_over[:8]}, not this run's {bl_sha256[:8]} "
                "(--rebase-bl fine-tunes it onto this BL, e.g. after retraining the mean-scale files)"
            )
        print(f"rebasing LIFF/RC trained over BL {trained_over[:8]} onto BL {bl_sha256[:8]}", flush=True)
    if config_name and source_config and source_config != config_name:
        raise TrainingError(f"{path} holds --config {source_config} networks, not this run's --config {config_name}")
    for key, module in (("liff", liff), ("rc", rc)):
        if module is None:
            continue
        if not parts.get(key):
            raise TrainingError(f"{path} holds no {key} weights")
        try:
            module.load_state_dict(parts[key])
        except RuntimeError as error:  # shapes or keys of another network size
            first = str(error).strip().splitlines()[:3]
            raise TrainingError(
                f"{path}: its {key} weights do not fit this run's networks: {' '.join(first)}"
            ) from None
    print(f"liff/rc initialised from {path}", flush=True)
    return Path(path)


_INIT_OPTIONS = {"init_from": "--init-from", "liff_from": "--liff-from", "rc_from": "--rc-from"}
_RUN_DEFINING_OPTIONS = {"el1_range": "--el1-range", "el2_range": "--el2-range", "freeze_rc": "--freeze-rc",
                         "rc_size": "--rc-size"}


def _check_resume_arguments(
    saved: dict[str, Any], init_source: str | None, config: CompassTrainingConfig, path: Path
) -> None:
    """A rerun resumes ``last.pt``, so the same command line must mean the same run: initial weights
    only apply to a fresh run (a different source is refused rather than silently ignored; for
    ``--init-from zoo`` that includes a zoo file exported since), and the schedule keeps its mode
    (``check_schedule_on_resume``)."""
    for key, flag in _INIT_OPTIONS.items():
        wanted, started_from = getattr(config, key), saved.get(key)
        if wanted and wanted != started_from:
            raise TrainingError(
                f"{path} exists and was started from {flag} {started_from}, not {wanted}: initial "
                f"weights only apply to a fresh run; use another --out (or drop {flag} to resume)"
            )
    if config.init_from == "zoo" and init_source and config.quality:
        from bench import zoo

        current = zoo.find_weights("compass", config.quality).name
        if current != init_source:
            raise TrainingError(
                f"{path} was started from the zoo's {init_source}; the zoo now holds {current}: "
                "initial weights only apply to a fresh run; use another --out"
            )
    today = saved_arguments(config)
    for key, flag in _RUN_DEFINING_OPTIONS.items():
        wanted = today.get(key)
        if key in saved and saved[key] != wanted:
            raise TrainingError(
                f"{path} exists and was trained with {flag} {saved[key]}, not {wanted}; use another --out"
            )
    check_schedule_on_resume(saved, config.steps, config.minutes, path)


def _load_part(path: str | None, key: str, module: torch.nn.Module) -> None:
    if not path:
        return
    state = load_checkpoint(path)
    if not isinstance(state, dict):
        raise TrainingError(f"{path} holds a {type(state).__name__}, not a training checkpoint")
    if state.get(key) is None:
        raise TrainingError(f"{path} holds no {key} weights (keys: {sorted(state)})")
    module.load_state_dict(state[key])
    print(f"{key} initialised from {path}", flush=True)


# ----------------------------------------------------------------------------- validation
def load_validation_images(folder: Path, count: int, crop: int) -> list[torch.Tensor]:
    """The first ``count`` PNGs of ``folder``, centre-cropped to at most crop×crop."""
    tensors = []
    for path in sorted(folder.glob("*.png"))[:count]:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
        h, w = array.shape[:2]
        side = min(crop, h, w)
        top, left = (h - side) // 2, (w - side) // 2
        crop_array = array[top : top + side, left : left + side].copy()
        tensors.append(torch.from_numpy(crop_array).permute(2, 0, 1)[None].float() / 255.0)
    return tensors


# Fixed, non-integer validation pyramid (fractions of the validation crop): ratios 1.6 and 2.5.
VAL_FRACTIONS = (0.25, 0.4, 1.0)


@torch.no_grad()
def validate(
    stage: str, modules: dict, bl: torch.nn.Module | None, images: list[torch.Tensor], bl_padding: str = "whole"
) -> dict[str, float]:
    """Eval-mode metrics: LIFF-vs-bicubic PSNR for ``liff``; per-EL bpp (likelihoods of rounded
    latents) and PSNR of prediction and reconstruction for ``rc``/``joint``."""
    sums: dict[str, list[float]] = {}
    for module in modules.values():
        module.eval()
    for x in images:
        side = x.shape[-1]
        sides = [max(1, int(side * f)) for f in VAL_FRACTIONS]
        layers = make_pyramid(x, sides)
        if stage == "liff":
            low, top = layers[1], layers[2]
            sr = modules["liff"](low, tuple(top.shape[-2:])).clamp(0, 1)
            bic = bicubic_predict(low, tuple(top.shape[-2:])).clamp(0, 1)
            sums.setdefault("psnr_liff", []).append(psnr_from_mse(float(F.mse_loss(sr, top))))
            sums.setdefault("psnr_bicubic", []).append(psnr_from_mse(float(F.mse_loss(bic, top))))
            continue
        if stage == "rc":
            outputs = rc_stage_forward(bl, modules["rc"], layers, bl_padding)
        else:
            outputs = modules["model"](layers)["el"]
        for k, (out, target) in enumerate(zip(outputs, layers[1:]), start=1):
            pixels = target.shape[2] * target.shape[3]
            sums.setdefault(f"bpp{k}", []).append(float(bits_per_pixel(out["likelihoods"], pixels)))
            sums.setdefault(f"psnr{k}", []).append(
                psnr_from_mse(float(F.mse_loss(out["x_hat"].clamp(0, 1), target)))
            )
            sums.setdefault(f"pred_psnr{k}", []).append(
                psnr_from_mse(float(F.mse_loss(out["pred"].clamp(0, 1), target)))
            )
    for module in modules.values():
        module.train()
    return {key: float(np.mean(values)) for key, values in sums.items()}


# ----------------------------------------------------------------------------- training
def train(config: CompassTrainingConfig) -> Path:
    """Train (or resume, from ``<out>/last.pt``) the stage ``config.stage`` until its schedule ends;
    returns the checkpoint's path."""
    # option conflicts first, before any network or data is loaded
    if not config.out:
        raise TrainingError("--out RUN_DIR is required")
    if config.stage in ("rc", "joint"):
        check_layer_ranges(config.el1_range, config.el2_range)
    if config.freeze_rc and config.stage != "joint":
        raise TrainingError("--freeze-rc applies to --stage joint only")
    torch.set_num_threads(config.threads)
    if config.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    precision = resolve_precision(config.precision, device)
    channels = memory_format(precision)

    def cast() -> Any:
        return autocast(precision, device)

    stage = config.stage
    cfg: CompassConfig = CONFIGS[config.config]
    if config.rc_size:  # e.g. an RC widened by `bench.train widen --model compass`
        cfg = dataclasses.replace(cfg, rc_n=config.rc_size[0], rc_m=config.rc_size[1])
    run_dir = Path(config.out)
    checkpoint_path = run_dir / "last.pt"
    lr_base = config.lr if config.lr is not None else DEFAULT_LR[stage]

    liff = LIFF(cfg.liff) if stage in ("liff", "joint") else None
    rc = residual.build_mean_scale(cfg.rc_n, cfg.rc_m) if stage in ("rc", "joint") else None
    bl, bl_sha256, lmbda = None, None, None
    if stage in ("rc", "joint"):
        bl, bl_sha256 = load_base_layer(config)
        lmbda = lmbda_of(config)

    # the modules that train (the BL stays frozen in eval mode: rounding, never noise)
    modules: dict[str, torch.nn.Module] = {}
    if stage == "liff":
        modules["liff"] = liff
    elif stage == "rc":
        modules["rc"] = rc
        bl.to(device)
    else:
        modules["model"] = CompassModel(bl, liff, rc, cfg)
    for module in modules.values():
        module.to(device, memory_format=channels).train()
    if config.freeze_rc:  # LIFF alone learns; the RD gradient still reaches it through the fixed RC
        rc.requires_grad_(False)
    trainable = [(n, p) for m in (liff, rc) if m is not None for n, p in m.named_parameters() if p.requires_grad]
    main_params = [p for n, p in trainable if not n.endswith(".quantiles")]
    aux_params = [p for n, p in trainable if n.endswith(".quantiles")]
    optimizer = torch.optim.Adam(main_params, lr=lr_base)
    aux_optimizer = torch.optim.Adam(aux_params, lr=1e-3) if aux_params else None
    training_images = list_training_images(Path(config.data_root) / "train", config.train_folders)
    sampler = CropSampler(training_images, config.crop, config.seed)
    size_rng = np.random.default_rng(config.seed + 1)
    step = 0
    trained_seconds = 0.0  # with --minutes, the schedule runs on training time instead of steps
    init_source = None  # the file --init-from resolved to (``zoo`` names whichever file is current)

    state = load_if_present(checkpoint_path)
    if state is not None:
        if state["stage"] != stage or state["config_name"] != config.config:
            raise TrainingError(
                f"{checkpoint_path} is a {state['stage']}/{state['config_name']} run, "
                f"not {stage}/{config.config}; use another --out"
            )
        # before any weights load: a run of other network sizes would fail on its shapes instead
        _check_resume_arguments(state.get("args", {}), state.get("init_source"), config, checkpoint_path)
        if liff is not None:
            liff.load_state_dict(state["liff"])
        if rc is not None:
            rc.load_state_dict(state["rc"])
        optimizer.load_state_dict(state["optimizer"])
        if aux_optimizer is not None:
            aux_optimizer.load_state_dict(state["aux_optimizer"])
        sampler.load_state_dict(state["sampler"])
        size_rng.bit_generator.state = state["size_rng"]
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
        trained_seconds = float(state.get("trained_seconds", 0.0))
        init_source = state.get("init_source")
        print(f"resumed {checkpoint_path} at step {step}", flush=True)
    else:
        if liff is not None:
            _load_part(config.liff_from, "liff", liff)
        if rc is not None:
            _load_part(config.rc_from, "rc", rc)
        if config.init_from:
            init_source = _init_from_weights(
                config.init_from, config.quality, liff, rc, bl_sha256, config.config, config.rebase_bl
            ).name

    def save() -> None:
        save_atomic(
            {
                "stage": stage,
                "config_name": config.config,
                "config": cfg.to_dict(),
                "liff": liff.state_dict() if liff is not None else None,
                "rc": rc.state_dict() if rc is not None else None,
                "optimizer": optimizer.state_dict(),
                "aux_optimizer": aux_optimizer.state_dict() if aux_optimizer is not None else None,
                "sampler": sampler.state_dict(),
                "size_rng": size_rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "trained_seconds": trained_seconds,
                "lmbda": lmbda,
                "quality": config.quality,
                "bl_sha256": bl_sha256,
                "init_source": init_source,
                "precision": precision,
                "args": saved_arguments(config),
            },
            checkpoint_path,
        )

    val_images = [
        v.to(device)
        for v in load_validation_images(Path(config.data_root) / "kodak", config.val_images, config.val_crop)
    ]
    schedule = Schedule(config.steps, config.minutes, config.decay_fraction)
    last_save, saved_step = time.monotonic(), step
    label = f"compass {stage}" + (f" λ={lmbda}" if lmbda is not None else "")
    bar = tqdm(total=config.steps if config.minutes is None else None, initial=step, desc=label, mininterval=5)

    def draw() -> Any:
        x = sampler.batch(config.batch)
        if stage == "liff":
            scale = size_rng.uniform(config.scale_min, config.scale_max)
            return x, scale, resize_batch(x, (max(1, round(config.crop / scale)),) * 2)
        return x, None, make_pyramid(x, draw_layer_sizes(size_rng, config.crop, config.el1_range, config.el2_range))

    def finished() -> bool:
        return schedule.finished(step, trained_seconds)

    def decayed() -> bool:
        return schedule.decayed(step, trained_seconds)

    def train_step() -> None:
        nonlocal step, trained_seconds
        started = time.monotonic()
        # paper schedule: lr, then lr·decay_factor for the last fraction of the steps (1e-4 → 5e-5)
        lr = lr_base * (config.decay_factor if decayed() else 1.0)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, scale, drawn = prefetch.next() if prefetch is not None else draw()
        x = x.to(device, non_blocking=True).contiguous(memory_format=channels)
        optimizer.zero_grad()
        if aux_optimizer is not None:
            aux_optimizer.zero_grad()
        if stage == "liff":
            low = drawn.to(device, non_blocking=True).contiguous(memory_format=channels)
            with cast():
                pred = liff(low, (config.crop, config.crop))
            pred = pred.float()
            loss = F.l1_loss(pred, x)
            postfix = {
                "l1": f"{loss.item():.4f}",
                "psnr": f"{psnr_from_mse(F.mse_loss(pred, x).item()):.2f}",
                "x": f"{scale:.2f}",
            }
        else:
            layers = [layer.to(device, non_blocking=True).contiguous(memory_format=channels) for layer in drawn]
            if stage == "rc":
                outputs = rc_stage_forward(bl, rc, layers, cfg.bl_padding, cast)
            else:
                outputs = modules["model"](layers, cast)["el"]
            stats = el_rd_loss(outputs, layers[1:], lmbda)
            loss = stats["loss"]
            postfix = {
                "loss": f"{loss.item():.3f}",
                "bpp": "/".join(f"{stats[f'bpp{k}'].item():.3f}" for k in (1, 2)),
                "psnr": "/".join(f"{psnr_from_mse(stats[f'mse{k}'].item()):.2f}" for k in (1, 2)),
            }
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        optimizer.step()
        if aux_optimizer is not None:
            rc.aux_loss().backward()
            aux_optimizer.step()
        step += 1
        trained_seconds += time.monotonic() - started
        bar.update(1)
        bar.set_postfix(**postfix, lr=f"{lr:.0e}")

    prefetch = PrefetchedBatches(draw, depth=4) if device.type != "cpu" and not finished() else None
    try:
        while not finished():
            train_step()
            if time.monotonic() - last_save > config.save_minutes * 60 or finished():
                save()
                last_save, saved_step = time.monotonic(), step
            if val_images and (step % config.val_every == 0 or finished()):
                metrics = validate(stage, modules, bl, val_images, cfg.bl_padding)
                tqdm.write(
                    f"step {step}: kodak[:{len(val_images)}] "
                    + " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
                )
    finally:
        close_loop(bar, prefetch)
    if step != saved_step or not checkpoint_path.exists():
        save()
    print(f"{stage}: {step} steps, {trained_seconds / 60:.1f} min of training", flush=True)
    return checkpoint_path


# ----------------------------------------------------------------------------- export
def load_joint(source: str | Path, quality: int | None) -> tuple[dict, int, str, torch.nn.ModuleDict]:
    """A joint checkpoint, checked for export: ``(state, quality, bl_sha256, {"liff", "rc"})``. The
    quality comes from ``quality`` or the checkpoint; TrainingError when it is not a joint checkpoint,
    names another quality, or was trained over another BL than the zoo's mean-scale file."""
    from bench import zoo

    state = load_checkpoint(source)
    if not isinstance(state, dict):
        raise TrainingError(f"{source} holds a {type(state).__name__}, not a training checkpoint")
    if state.get("stage") != "joint":
        raise TrainingError(f"{source} is a {state.get('stage')} checkpoint; export a joint one")
    chosen = quality or state.get("quality")
    if not chosen:
        raise TrainingError("the checkpoint was not trained with --quality; pass --quality Q")
    if state.get("quality") and quality and quality != state["quality"]:
        raise TrainingError(f"checkpoint was trained for quality {state['quality']}, not {quality}")
    bl_digest = zoo.verify_hash(mean_scale_weights.weights_path(chosen))
    if bl_digest != state.get("bl_sha256"):
        raise TrainingError(
            f"{source} was trained over BL {str(state.get('bl_sha256'))[:8]}, but the zoo's mean-scale "
            f"q{chosen} is {bl_digest[:8]}; the plugin would refuse these weights"
        )
    cfg = CompassConfig.from_dict(state["config"])
    parts = torch.nn.ModuleDict({"liff": LIFF(cfg.liff), "rc": residual.build_mean_scale(cfg.rc_n, cfg.rc_m)})
    parts["liff"].load_state_dict(state["liff"])
    parts["rc"].load_state_dict(state["rc"])
    return state, int(chosen), bl_digest, parts


def export(config: CompassTrainingConfig) -> Path:
    """Joint checkpoint → the zoo file ``compass-q<Q>-<sha8>.pth.tar`` that the plugin loads.

    Same format as the zoo's mean-scale files: ``{"state_dict", "config"}``, convolutions in
    float16, entropy models and GDN in float32, the RC's CDF tables computed here and stored.
    Refuses a checkpoint trained over another BL than the zoo's mean-scale file for that quality.
    """
    from bench import zoo

    if not config.source:
        raise TrainingError("--stage export needs --from RUN/last.pt (a joint checkpoint)")
    state, quality, bl_digest, parts = load_joint(config.source, config.quality)
    cfg = CompassConfig.from_dict(state["config"])
    saved_args = state.get("args", {})
    parts["rc"].update(force=True)  # the CDF tables the entropy coder uses, stored in the file
    exported = zoo.compact_precision(parts.state_dict(), zoo.precision_keys(parts), config.storage)
    file_config = {
        "model": "compass",
        "compass": cfg.to_dict(),
        "config_name": state["config_name"],
        "bl_sha256": bl_digest,
        "quality": int(quality),
        "lmbda": state["lmbda"],
        "steps": int(state["step"]),
        "checkpoint": f"{Path(config.source).parent.name}/{Path(config.source).name}",
        "train": {
            **{
                key: saved_args[key]
                for key in ("init_from", "el1_range", "el2_range", "freeze_rc", "crop", "batch", "lr")
                if key in saved_args
            },
            "init_source": state.get("init_source"),  # the file --init-from resolved to ('zoo' names no file)
            "precision": state.get("precision", "fp32"),  # of the last training run (older ones: fp32)
        },
        "float32_keys": sorted(k for k, v in exported.items() if v.dtype == torch.float32),
        "storage": config.storage,
        "format": zoo.FORMAT_VERSION,
    }
    return zoo.write_weights("compass", int(quality), exported, file_config, config.export_dir)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench import zoo

    parser.add_argument("--stage", required=True, choices=["liff", "rc", "joint", "export"])
    parser.add_argument(
        "--config",
        default="cpu",
        choices=sorted(CONFIGS),
        help="network sizes: cpu (default, trainable here) or paper (spec §4); tiny for tests",
    )
    parser.add_argument(
        "--quality",
        type=int,
        choices=sorted(mean_scale_weights.QUALITY_LAMBDAS),
        help="sets λ and takes the BL from the zoo's mean-scale at this quality",
    )
    parser.add_argument("--lmbda", type=float, help="λ in Σ R_k + λ·255²·D_k (default: from --quality)")
    parser.add_argument("--bl", help="mean-scale checkpoint for the frozen BL (instead of the zoo)")
    parser.add_argument("--liff-from", help="checkpoint whose LIFF initialises this run (e.g. a liff run)")
    parser.add_argument("--rc-from", help="checkpoint whose RC initialises this run (e.g. an rc run)")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128, help="training crop c (paper: 512)")
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"learning rate (default per stage: {DEFAULT_LR}); halved for the last fraction",
    )
    parser.add_argument("--decay-fraction", type=float, default=0.2)
    parser.add_argument("--decay-factor", type=float, default=0.5,
                        help="lr multiplier for the last --decay-fraction (paper: 0.5)")
    parser.add_argument("--minutes", type=positive_minutes, default=None,
                        help="train for this much training time instead of --steps (a lent GPU's lease); "
                             "the lr decays for the last --decay-fraction of it")
    parser.add_argument("--init-from", default=None,
                        help="fine-tune LIFF and RC from a COMPASS zoo file, 'zoo' (the zoo's file at "
                             "--quality) or a joint checkpoint; applies to a fresh run (a rerun resumes last.pt)")
    parser.add_argument("--rebase-bl", action="store_true",
                        help="with --init-from: accept LIFF/RC trained over another BL and fine-tune them onto "
                             "this run's BL (after the mean-scale files were retrained)")
    parser.add_argument("--el1-range", type=layer_range, default=EL1_RANGE, metavar="LO,HI",
                        help=f"joint/rc: EL1 side as a fraction of the crop (spec: {EL1_RANGE[0]},{EL1_RANGE[1]}; "
                             f"the BL is {BL_FRACTION})")
    parser.add_argument("--el2-range", type=layer_range, default=EL2_RANGE, metavar="LO,HI",
                        help=f"joint/rc: EL2 side as a fraction of the crop (spec: {EL2_RANGE[0]},{EL2_RANGE[1]})")
    parser.add_argument("--rc-size", type=channel_pair, default=None, metavar="N,M",
                        help="joint/rc: the RC's channels instead of --config's (its mean-scale N,M), e.g. "
                             "128,192 after `bench.train widen --model compass`")
    parser.add_argument("--freeze-rc", action="store_true",
                        help="joint: fine-tune LIFF only, through the fixed RC (the zoo file then changes "
                             "only in LIFF's bytes)")
    parser.add_argument("--scale-min", type=float, default=1.0, help="liff stage: smallest SR factor")
    parser.add_argument("--scale-max", type=float, default=4.0, help="liff stage: largest SR factor")
    parser.add_argument("--out", help="run folder; last.pt there is resumed")
    add_precision_argument(parser)
    parser.add_argument("--from", dest="source", help="export: the joint checkpoint to export")
    parser.add_argument("--storage", choices=zoo.STORAGES, default="float16",
                        help="export: convolution weights as float16 (default) or int8 with a scale per "
                             "output channel (half the size)")
    parser.add_argument(
        "--export-dir", default=None, help="export: zoo folder (default: $BENCH_WEIGHTS or bench/weights)"
    )
    add_common_arguments(parser)
    parser.add_argument("--val-crop", type=int, default=256)


def run(args: argparse.Namespace) -> None:
    """The command line: the config from the options, then the checkpoint's or zoo file's path."""
    config = config_from_args(CompassTrainingConfig, args)
    print(export(config) if config.stage == "export" else train(config))


# ----------------------------------------------------------------------------- widen and official export
def widen_compass(contents: dict[str, Any], path: Path, config: Any) -> dict[str, Any]:
    """A joint-checkpoint-shaped file (``liff``, ``rc``, ``config``, ``config_name``, ``bl_sha256``)
    whose RC is widened, for ``bench.train compass --init-from FILE --rc-size N,M``: ``python -m
    bench.train widen --model compass`` (``config``: its ``WidenConfig``)."""
    from bench import zoo
    from bench.codecs.compass.plugin import split_state
    from bench.codecs.mean_scale.widen import mean_scale_state, widen_mean_scale

    if "state_dict" in contents:  # a zoo file
        state = zoo.full_precision(contents["state_dict"])
        liff, rc = split_state(state, "liff"), split_state(state, "rc")
        stored = contents.get("config", {})  # the zoo file's own config, not the widening's
        cfg, config_name, bl = stored.get("compass"), stored.get("config_name"), stored.get("bl_sha256")
    else:  # a joint checkpoint
        liff, rc = contents.get("liff"), contents.get("rc")
        cfg, config_name, bl = contents.get("config"), contents.get("config_name"), contents.get("bl_sha256")
    if not liff or not rc or cfg is None:
        raise TrainingError(f"{path} holds no COMPASS LIFF and RC (a COMPASS zoo file or a joint checkpoint)")
    rc = widen_mean_scale(mean_scale_state(rc, path), config.N, config.M, config.seed)
    widened = dataclasses.replace(CompassConfig.from_dict(cfg), rc_n=config.N, rc_m=config.M)
    return {"stage": "joint", "liff": liff, "rc": rc, "config": widened.to_dict(), "config_name": config_name,
            "bl_sha256": bl, "widened_from": path.name}


def export_official(checkpoint: str | Path, quality: int, out_dir: str | Path) -> Path:
    """A joint ``bench.train compass`` checkpoint of the paper's size, with the zoo's mean-scale BL it
    was trained over, as the official COMPASS checkpoint ``out_dir/lambda_<λ>/best_model_updated.pth.tar``
    (what the reference code's ``eval.py`` and ``compass@official`` read)."""
    from bench import zoo
    from bench.codecs.compass import official

    state, quality, _, parts = load_joint(checkpoint, quality)  # the checks of `compass --stage export`
    contents, bl_path, _ = zoo.load_weights("mean-scale", quality, how_to=mean_scale_weights.export_command(quality))
    model = CompassModel(mean_scale_weights.mean_scale_from_weights(contents, bl_path), parts["liff"], parts["rc"],
                         CompassConfig.from_dict(state["config"]))
    try:
        return official.write_official(model, quality, out_dir)
    except official.OfficialCheckpointError as error:
        raise ValueError(str(error)) from None


# python -m bench.train compass, widen --model compass and export --format official
def _export_official(config: ExportConfig) -> ExportResult:
    """``python -m bench.train export --format official``: ``export_official`` of the options."""
    if not config.out_dir:
        raise TrainingError("export --format official needs --out-dir (the folder of lambda_* folders)")
    path = export_official(config.checkpoint, config.quality, config.out_dir)
    return ExportResult(path, config.format, path.stat().st_size,
                        note=f"the official COMPASS format (compass@official reads it with "
                             f"BENCH_OFFICIAL_COMPASS={config.out_dir})")


TRAINER = PluginTrainer(name="compass", help=(__doc__ or "").strip().splitlines()[0], add_arguments=add_arguments,
                        run=run, train=train, config=CompassTrainingConfig, widen=widen_compass,
                        exporters={"official": _export_official})
