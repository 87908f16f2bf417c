"""Train CompressAI's mean-scale hyperprior as a single-layer codec: loss R + λ·255²·MSE.

Declared as the mean-scale plugin's ``TRAINER`` (``python -m bench.train mean-scale``, ``bench.api
.trainer("mean-scale")``), with its widening (``widen``) and its zoo exporter (``export``)."""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from bench.codecs.mean_scale.export import export_zoo
from bench.codecs.mean_scale.weights import QUALITY_LAMBDAS, build_mean_scale
from bench.codecs.mean_scale.widen import widen_file
from bench.errors import TrainingError
from bench.registry import PluginTrainer
from bench.train.checkpoint import load_if_present, read_init_source, save_atomic, saved_arguments
from bench.train.common import TrainingOptions, add_common_arguments, config_from_args, psnr_from_mse
from bench.train.data import CropSampler, list_training_images
from bench.train.precision import add_precision_argument, autocast, memory_format, resolve_precision
from bench.train.schedule import (
    PrefetchedBatches,
    Schedule,
    check_minutes,
    check_schedule_on_resume,
    close_loop,
    positive_minutes,
)


@dataclass(frozen=True, kw_only=True)
class MeanScaleTrainingConfig(TrainingOptions):
    """One ``python -m bench.train mean-scale`` run, with the command line's options and defaults.

    ``lmbda``: λ in R + λ·255²·MSE (None: the λ of ``quality``; one of the two is needed);
    ``quality``: the zoo quality the run trains for (``--init-from zoo`` takes its file); ``N``/``M``:
    channels; ``steps`` or ``minutes`` of training time, the last ``decay_fraction`` of it at
    lr·``decay_factor``; ``init_from``: a checkpoint, a zoo file or ``zoo`` to start a fresh run
    from; ``out``: the run folder, whose ``last.pt`` is resumed; ``precision``: fp32, bf16 or bf16!.
    After construction ``lmbda`` is always set. TrainingError for a missing λ or a bad value.
    """

    command: ClassVar[str] = "mean-scale"
    path_fields: ClassVar[tuple[str, ...]] = ("init_from", "out")

    lmbda: float | None = None
    quality: int | None = None
    N: int = 64
    M: int = 96
    steps: int = 12000
    batch: int = 8
    crop: int = 128
    lr: float = 5e-4
    decay_fraction: float = 0.15
    decay_factor: float = 0.1
    minutes: float | None = None
    init_from: str | None = None
    out: str
    precision: str = "fp32"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quality is not None and self.quality not in QUALITY_LAMBDAS:
            raise TrainingError(f"--quality must be one of {sorted(QUALITY_LAMBDAS)}, got {self.quality}")
        check_minutes(self.minutes)
        if self.lmbda is None:
            if not self.quality:
                raise TrainingError("give --lmbda or --quality Q (λ of the zoo's quality Q)")
            object.__setattr__(self, "lmbda", QUALITY_LAMBDAS[self.quality])


def forward_mixed(model: torch.nn.Module, x: torch.Tensor, precision: str) -> dict:
    """``MeanScaleHyperprior.forward`` with the four transforms in ``precision`` and the entropy
    models in fp32 (see ``bench.train.precision``); under fp32 it computes what ``model(x)`` does."""
    cast = autocast(precision, x.device)
    with cast:
        y = model.g_a(x)
    y = y.float()
    with cast:
        z = model.h_a(y)
    z_hat, z_likelihoods = model.entropy_bottleneck(z.float())
    with cast:
        gaussian_params = model.h_s(z_hat)
    scales_hat, means_hat = gaussian_params.float().chunk(2, 1)
    y_hat, y_likelihoods = model.gaussian_conditional(y, scales_hat, means=means_hat)
    with cast:
        x_hat = model.g_s(y_hat)
    return {"x_hat": x_hat.float(), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}


def rate_distortion_loss(out: dict, target: torch.Tensor, lmbda: float) -> dict[str, torch.Tensor]:
    num_pixels = target.shape[0] * target.shape[2] * target.shape[3]
    bpp = sum(
        torch.log(likelihoods).sum() / (-math.log(2) * num_pixels)
        for likelihoods in out["likelihoods"].values()
    )
    mse = F.mse_loss(out["x_hat"], target)
    return {"loss": bpp + lmbda * 255**2 * mse, "bpp": bpp, "mse": mse}


def _pad64(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[2:]
    return F.pad(x, (0, (-w) % 64, 0, (-h) % 64), mode="replicate")


@torch.no_grad()
def validate(model: torch.nn.Module, images: list[torch.Tensor], lmbda: float) -> dict[str, float]:
    """Rate from the likelihoods (noise-free, rounded latents) and PSNR of the cropped output."""
    model.eval()
    bpps, psnrs = [], []
    for x in images:
        out = model(_pad64(x))
        h, w = x.shape[2:]
        bits = sum(-torch.log2(lk).sum() for lk in out["likelihoods"].values())
        bpps.append(float(bits) / (h * w))
        psnrs.append(psnr_from_mse(float(F.mse_loss(out["x_hat"][..., :h, :w].clamp(0, 1), x))))
    model.train()
    return {"bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))}


def append_curve_point(path: Path, point: dict) -> None:
    """One validation point per line (the learning curve: Kodak rate and PSNR against training time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(point) + "\n")


def load_validation_images(folder: Path, count: int) -> list[torch.Tensor]:
    paths = sorted(folder.glob("*.png"))[:count]
    tensors = []
    for path in paths:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
        tensors.append(torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 255.0)
    return tensors


def _initial_weights(source: str, quality: int | None) -> tuple[dict[str, torch.Tensor], Path]:
    """The state dict to fine-tune from: ``zoo`` (the zoo's file at --quality), a zoo file
    (float16 convolutions widened to float32) or a training checkpoint."""
    from bench import zoo

    contents, path = read_init_source("mean-scale", source, quality)
    if "state_dict" in contents:
        return zoo.full_precision(contents["state_dict"]), path
    return contents.get("model", contents), path


def train(config: MeanScaleTrainingConfig) -> Path:
    """Train (or resume, from ``<out>/last.pt``) until the schedule ends; returns the checkpoint's path."""
    torch.set_num_threads(config.threads)
    if config.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    run_dir = Path(config.out)
    checkpoint_path = run_dir / "last.pt"

    precision = resolve_precision(config.precision, device)
    model = build_mean_scale(config.N, config.M).to(device)
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    optimizer = torch.optim.Adam(main_params, lr=config.lr)
    aux_optimizer = torch.optim.Adam(aux_params, lr=1e-3)
    training_images = list_training_images(Path(config.data_root) / "train", config.train_folders)
    sampler = CropSampler(training_images, config.crop, config.seed)
    step = 0
    trained_seconds = 0.0
    # CPU time the steps really got (all threads): on a shared machine wall time × threads overstates
    # it, and the learning curves are compared per CPU-hour
    cpu_seconds = 0.0
    init_source = None

    state = load_if_present(checkpoint_path)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        aux_optimizer.load_state_dict(state["aux_optimizer"])
        sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
        trained_seconds = float(state.get("trained_seconds", 0.0))
        cpu_seconds = float(state.get("cpu_seconds", 0.0))
        init_source = state.get("init_source")
        saved_args = state.get("args", {})
        if config.init_from and config.init_from != saved_args.get("init_from", config.init_from):
            raise TrainingError(
                f"{checkpoint_path} exists and was started from --init-from {saved_args.get('init_from')}, "
                f"not {config.init_from}: initial weights only apply to a fresh run; use another --out"
            )
        check_schedule_on_resume(saved_args, config.steps, config.minutes, checkpoint_path)
        saved_precision = state.get("config", {}).get("precision", "fp32")
        if saved_precision != precision:
            print(f"note: {checkpoint_path} trained in {saved_precision} so far; continuing in {precision}",
                  flush=True)
        print(f"resumed {checkpoint_path} at step {step}", flush=True)
    elif config.init_from:
        weights, path = _initial_weights(config.init_from, config.quality)
        try:
            model.load_state_dict(weights)
        except RuntimeError as error:
            first = " ".join(str(error).strip().splitlines()[:3])
            raise TrainingError(f"{path} does not fit N={config.N} M={config.M}: {first}") from None
        init_source = path.name
        print(f"initialised from {path}", flush=True)

    def save() -> None:
        save_atomic(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "aux_optimizer": aux_optimizer.state_dict(),
                "sampler": sampler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "trained_seconds": trained_seconds,
                "cpu_seconds": cpu_seconds,
                "init_source": init_source,
                "config": {"N": config.N, "M": config.M, "lmbda": config.lmbda, "crop": config.crop,
                           "batch": config.batch, "lr": config.lr, "steps": config.steps, "minutes": config.minutes,
                           "precision": precision},
                "args": saved_arguments(config),
            },
            checkpoint_path,
        )

    val_images = load_validation_images(Path(config.data_root) / "kodak", config.val_images)
    schedule = Schedule(config.steps, config.minutes, config.decay_fraction)
    last_save, saved_step = time.monotonic(), step
    model = model.to(memory_format=memory_format(precision))
    curve_path = run_dir / "curve.jsonl"
    bar = tqdm(total=config.steps if config.minutes is None else None, initial=step,
               desc=f"mean-scale λ={config.lmbda}", mininterval=5)
    model.train()

    def draw() -> torch.Tensor:
        return sampler.batch(config.batch)

    done = schedule.finished(step, trained_seconds)
    prefetch = PrefetchedBatches(draw, depth=4) if device.type != "cpu" and not done else None
    try:
        while not schedule.finished(step, trained_seconds):
            started, started_cpu = time.monotonic(), time.process_time()
            lr = config.lr * (config.decay_factor if schedule.decayed(step, trained_seconds) else 1.0)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = (prefetch.next() if prefetch is not None else draw()).to(device, non_blocking=True)
            x = x.contiguous(memory_format=memory_format(precision))
            optimizer.zero_grad()
            aux_optimizer.zero_grad()
            out = forward_mixed(model, x, precision)
            losses = rate_distortion_loss(out, x, config.lmbda)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(main_params, 1.0)
            optimizer.step()
            aux_loss = model.aux_loss()
            aux_loss.backward()
            aux_optimizer.step()
            step += 1
            trained_seconds += time.monotonic() - started
            cpu_seconds += time.process_time() - started_cpu
            bar.update(1)
            bar.set_postfix(loss=f"{losses['loss'].item():.3f}", bpp=f"{losses['bpp'].item():.3f}",
                            psnr=f"{psnr_from_mse(losses['mse'].item()):.2f}", lr=f"{lr:.0e}")
            finished = schedule.finished(step, trained_seconds)
            if time.monotonic() - last_save > config.save_minutes * 60 or finished:
                save()
                last_save, saved_step = time.monotonic(), step
            if val_images and (step % config.val_every == 0 or finished):
                metrics = validate(model, [v.to(device) for v in val_images], config.lmbda)
                tqdm.write(f"step {step}: kodak[:{len(val_images)}] {metrics['bpp']:.4f} bpp "
                           f"{metrics['psnr']:.2f} dB (likelihood estimate)")
                append_curve_point(curve_path, {"step": step, "trained_seconds": round(trained_seconds, 1),
                                                "cpu_seconds": round(cpu_seconds, 1),
                                                "precision": precision, "threads": config.threads,
                                                "images": len(val_images), **metrics})
    finally:
        close_loop(bar, prefetch)
    if step != saved_step or not checkpoint_path.exists():
        save()
    print(f"mean-scale: {step} steps, {trained_seconds / 60:.1f} min of training", flush=True)
    return checkpoint_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lmbda", type=float, help="λ in R + λ·255²·MSE (default: from --quality)")
    parser.add_argument("--quality", type=int, choices=sorted(QUALITY_LAMBDAS),
                        help="the zoo quality this run trains for: sets λ, and --init-from zoo takes its file")
    parser.add_argument("--N", type=int, default=64, help="channels N (paper: 128)")
    parser.add_argument("--M", type=int, default=96, help="latent channels M (paper: 192)")
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--decay-fraction", type=float, default=0.15,
                        help="last fraction of the steps (or of --minutes) trained at lr·--decay-factor")
    parser.add_argument("--decay-factor", type=float, default=0.1)
    parser.add_argument("--minutes", type=positive_minutes, default=None,
                        help="train for this much training time instead of --steps (a lent GPU's lease)")
    parser.add_argument("--init-from",
                        help="fine-tune from a checkpoint (e.g. of a neighbouring λ), a zoo file, or 'zoo' "
                             "(the zoo's file at --quality); applies to a fresh run (a rerun resumes last.pt)")
    parser.add_argument("--out", required=True, help="run folder; last.pt there is resumed")
    add_precision_argument(parser)
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """The command line: the config from the options, then the checkpoint's path."""
    print(train(config_from_args(MeanScaleTrainingConfig, args)))


TRAINER = PluginTrainer(name="mean-scale", help=(__doc__ or "").strip().splitlines()[0], add_arguments=add_arguments,
                        run=run, train=train, config=MeanScaleTrainingConfig, widen=widen_file,
                        exporters={"zoo": export_zoo})
