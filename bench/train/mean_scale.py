"""Train CompressAI's mean-scale hyperprior as a single-layer codec: loss R + λ·255²·MSE."""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from bench._compressai import import_compressai
from bench.train.checkpoint import load_if_present, save_atomic
from bench.train.common import add_common_arguments
from bench.train.data import CropSampler, list_training_images


def build_model(n: int, m: int) -> torch.nn.Module:
    import_compressai()
    from compressai.models import MeanScaleHyperprior

    return MeanScaleHyperprior(N=n, M=m)


def rate_distortion_loss(out: dict, target: torch.Tensor, lmbda: float) -> dict[str, torch.Tensor]:
    num_pixels = target.shape[0] * target.shape[2] * target.shape[3]
    bpp = sum(
        torch.log(likelihoods).sum() / (-math.log(2) * num_pixels)
        for likelihoods in out["likelihoods"].values()
    )
    mse = F.mse_loss(out["x_hat"], target)
    return {"loss": bpp + lmbda * 255**2 * mse, "bpp": bpp, "mse": mse}


def psnr_from_mse(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))


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


def load_validation_images(folder: Path, count: int) -> list[torch.Tensor]:
    paths = sorted(folder.glob("*.png"))[:count]
    tensors = []
    for path in paths:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
        tensors.append(torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 255.0)
    return tensors


def train(args: argparse.Namespace) -> Path:
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    run_dir = Path(args.out)
    checkpoint_path = run_dir / "last.pt"

    model = build_model(args.N, args.M).to(device)
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    optimizer = torch.optim.Adam(main_params, lr=args.lr)
    aux_optimizer = torch.optim.Adam(aux_params, lr=1e-3)
    sampler = CropSampler(list_training_images(Path(args.data_root) / "train"), args.crop, args.seed)
    step = 0

    state = load_if_present(checkpoint_path)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        aux_optimizer.load_state_dict(state["aux_optimizer"])
        sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
        print(f"resumed {checkpoint_path} at step {step}", flush=True)
    elif args.init_from:
        source = torch.load(args.init_from, map_location="cpu", weights_only=False)
        model.load_state_dict(source.get("model", source))
        print(f"initialised from {args.init_from}", flush=True)

    def save() -> None:
        save_atomic(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "aux_optimizer": aux_optimizer.state_dict(),
                "sampler": sampler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "config": {"N": args.N, "M": args.M, "lmbda": args.lmbda, "crop": args.crop,
                           "batch": args.batch, "lr": args.lr, "steps": args.steps},
            },
            checkpoint_path,
        )

    val_images = load_validation_images(Path(args.data_root) / "kodak", args.val_images)
    decay_at = int(args.steps * (1 - args.decay_fraction))
    last_save = time.monotonic()
    bar = tqdm(total=args.steps, initial=step, desc=f"mean-scale λ={args.lmbda}", mininterval=5)
    model.train()
    while step < args.steps:
        lr = args.lr * (0.1 if step >= decay_at else 1.0)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = sampler.batch(args.batch).to(device)
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        out = model(x)
        losses = rate_distortion_loss(out, x, args.lmbda)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        optimizer.step()
        aux_loss = model.aux_loss()
        aux_loss.backward()
        aux_optimizer.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{losses['loss'].item():.3f}", bpp=f"{losses['bpp'].item():.3f}",
                        psnr=f"{psnr_from_mse(losses['mse'].item()):.2f}", lr=f"{lr:.0e}")
        if time.monotonic() - last_save > args.save_minutes * 60 or step == args.steps:
            save()
            last_save = time.monotonic()
        if val_images and (step % args.val_every == 0 or step == args.steps):
            metrics = validate(model, val_images, args.lmbda)
            tqdm.write(f"step {step}: kodak[:{len(val_images)}] {metrics['bpp']:.4f} bpp "
                       f"{metrics['psnr']:.2f} dB (likelihood estimate)")
    bar.close()
    save()
    return checkpoint_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lmbda", type=float, required=True, help="λ in R + λ·255²·MSE")
    parser.add_argument("--N", type=int, default=64, help="channels N (paper: 128)")
    parser.add_argument("--M", type=int, default=96, help="latent channels M (paper: 192)")
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--decay-fraction", type=float, default=0.15,
                        help="last fraction of steps trained at lr/10")
    parser.add_argument("--init-from", help="checkpoint of a neighbouring λ to fine-tune from")
    parser.add_argument("--out", required=True, help="run folder; last.pt there is resumed")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> None:
    print(train(args))
