"""Export a trained mean-scale checkpoint into the weights zoo (CDF tables, half precision or int8,
hash name): the mean-scale trainer's ``python -m bench.train export --format zoo``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench import zoo
from bench.codecs.mean_scale.weights import MODEL, QUALITY_LAMBDAS, build_mean_scale, mean_scale_from_weights
from bench.train.checkpoint import load_checkpoint
from bench.train.export import ExportConfig, ExportResult


def _infer_sizes(state_dict: dict[str, torch.Tensor]) -> tuple[int, int]:
    # g_a ends in conv(N, M): its weight is (M, N, 5, 5).
    weight = state_dict["g_a.6.weight"]
    return int(weight.shape[1]), int(weight.shape[0])


def export_checkpoint(
    checkpoint: str | Path, quality: int, root: str | Path | None = None, force_lambda: bool = False,
    storage: str = "float16",
) -> Path:
    """Write the zoo file for ``quality`` from a ``bench.train mean-scale`` checkpoint."""
    if quality not in QUALITY_LAMBDAS:
        raise ValueError(f"quality must be one of {sorted(QUALITY_LAMBDAS)}, got {quality}")
    state = load_checkpoint(checkpoint)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{checkpoint} is not a `bench.train mean-scale` checkpoint (no 'model' entry)")
    state_dict = state["model"]
    train_config: dict[str, Any] = dict(state.get("config", {}))
    n, m = _infer_sizes(state_dict)
    if train_config.get("N", n) != n or train_config.get("M", m) != m:
        raise ValueError(f"{checkpoint}: config says N={train_config['N']} M={train_config['M']}, "
                         f"the weights are N={n} M={m}")
    lmbda = QUALITY_LAMBDAS[quality]
    trained = train_config.get("lmbda")
    if trained is not None and not math.isclose(trained, lmbda) and not force_lambda:
        matching = [q for q, value in QUALITY_LAMBDAS.items() if math.isclose(value, trained)]
        raise ValueError(f"{checkpoint} was trained with λ={trained} but quality {quality} is λ={lmbda}"
                         + (f"; use --quality {matching[0]}" if matching
                            else "; --force-lambda to export anyway"))

    model = build_mean_scale(n, m)
    model.load_state_dict(state_dict)
    model.update(force=True)  # the CDF tables the entropy coder uses, stored in the file
    keep = zoo.precision_keys(model)
    exported = zoo.compact_precision(model.state_dict(), keep, storage)
    config = {
        "model": MODEL,
        "N": n,
        "M": m,
        "quality": quality,
        "lmbda": lmbda if trained is None else float(trained),
        "steps": int(state.get("step", 0)),
        "train": {k: v for k, v in train_config.items() if k not in ("N", "M", "lmbda")},
        "checkpoint": f"{Path(checkpoint).parent.name}/{Path(checkpoint).name}",
        "float32_keys": sorted(k for k, v in exported.items() if v.dtype == torch.float32),
        "storage": storage,
        "format": zoo.FORMAT_VERSION,
    }
    return zoo.write_weights(MODEL, quality, exported, config, root)


def rd_point(model: torch.nn.Module, image: np.ndarray) -> tuple[float, float]:
    """(bpp of the rANS strings, PSNR of the 8-bit reconstruction) for one HxWx3 uint8 image."""
    height, width = image.shape[:2]
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0
    x = F.pad(x, (0, (-width) % 64, 0, (-height) % 64), mode="replicate")
    with torch.inference_mode():
        out = model.compress(x)
        x_hat = model.decompress(out["strings"], out["shape"])["x_hat"][..., :height, :width]
    bits = 8 * sum(len(strings[0]) for strings in out["strings"])
    reconstruction = x_hat.mul(255).round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
    mse = float(np.mean((reconstruction - image.astype(np.float64)) ** 2))
    return bits / (height * width), 10 * math.log10(255**2 / max(mse, 1e-12))


def compare_precision(
    checkpoint: str | Path, quality: int, root: str | Path | None, image_path: str | Path
) -> str:
    """One line comparing the checkpoint's float32 weights with the exported file on one image."""
    state = load_checkpoint(checkpoint)
    n, m = _infer_sizes(state["model"])
    reference = build_mean_scale(n, m)
    reference.load_state_dict(state["model"])
    reference.update(force=True)
    contents, path, _ = zoo.load_weights(MODEL, quality, root)
    stored = mean_scale_from_weights(contents, path)
    with Image.open(image_path) as opened:
        image = np.asarray(opened.convert("RGB"))
    (bpp32, psnr32), (bpp16, psnr16) = rd_point(reference.eval(), image), rd_point(stored, image)
    return (f"{Path(image_path).name}: float32 {bpp32:.5f} bpp {psnr32:.4f} dB, exported {bpp16:.5f} bpp "
            f"{psnr16:.4f} dB (Δbpp {100 * (bpp16 / bpp32 - 1):+.3f} %, ΔPSNR {psnr16 - psnr32:+.4f} dB)")


def export_zoo(config: ExportConfig) -> ExportResult:
    """The mean-scale trainer's ``export --format zoo``: ``config.checkpoint`` as the zoo file of
    ``config.quality``, read back and described (with ``check_image``: float32 against exported)."""
    if config.check_image and not Path(config.check_image).is_file():  # before anything is written
        raise FileNotFoundError(f"--check-image {config.check_image}: no such file")
    path = export_checkpoint(config.checkpoint, config.quality, config.out_dir, config.force_lambda, config.storage)
    contents, _, digest = zoo.load_weights(MODEL, config.quality, path.parent)
    model = mean_scale_from_weights(contents, path)
    check = (compare_precision(config.checkpoint, config.quality, path.parent, config.check_image)
             if config.check_image else None)
    return ExportResult(path, config.format, path.stat().st_size, sum(p.numel() for p in model.parameters()),
                        dict(contents["config"]), zoo.storage_of(contents["state_dict"]), digest, check)
