"""Export a trained mean-scale checkpoint into the weights zoo (CDF tables, half precision, hash name)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench import zoo
from bench.errors import TrainingError
from bench.train.checkpoint import load_checkpoint
from bench.train.common import as_text, config_from_args

MODEL = "mean-scale"
FORMATS = ("zoo", "official")  # official: the compass plugin's exporter (its PluginTrainer.exporters)


def _plugin_exporter(name: str) -> Any:
    """The ``export --format NAME`` a plugin's trainer brings; TrainingError when none does."""
    from bench.registry import plugin_trainers

    for trainer in plugin_trainers().values():
        if name in trainer.exporters:
            return trainer.exporters[name]
    raise TrainingError(f"no plugin exports --format {name}")


def _infer_sizes(state_dict: dict[str, torch.Tensor]) -> tuple[int, int]:
    # g_a ends in conv(N, M): its weight is (M, N, 5, 5).
    weight = state_dict["g_a.6.weight"]
    return int(weight.shape[1]), int(weight.shape[0])


def export_checkpoint(
    checkpoint: str | Path, quality: int, root: str | Path | None = None, force_lambda: bool = False,
    storage: str = "float16",
) -> Path:
    """Write the zoo file for ``quality`` from a ``bench.train mean-scale`` checkpoint."""
    if quality not in zoo.QUALITY_LAMBDAS:
        raise ValueError(f"quality must be one of {sorted(zoo.QUALITY_LAMBDAS)}, got {quality}")
    state = load_checkpoint(checkpoint)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{checkpoint} is not a `bench.train mean-scale` checkpoint (no 'model' entry)")
    state_dict = state["model"]
    train_config: dict[str, Any] = dict(state.get("config", {}))
    n, m = _infer_sizes(state_dict)
    if train_config.get("N", n) != n or train_config.get("M", m) != m:
        raise ValueError(f"{checkpoint}: config says N={train_config['N']} M={train_config['M']}, "
                         f"the weights are N={n} M={m}")
    lmbda = zoo.QUALITY_LAMBDAS[quality]
    trained = train_config.get("lmbda")
    if trained is not None and not math.isclose(trained, lmbda) and not force_lambda:
        matching = [q for q, value in zoo.QUALITY_LAMBDAS.items() if math.isclose(value, trained)]
        raise ValueError(f"{checkpoint} was trained with λ={trained} but quality {quality} is λ={lmbda}"
                         + (f"; use --quality {matching[0]}" if matching
                            else "; --force-lambda to export anyway"))

    model = zoo.build_mean_scale(n, m)
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
    reference = zoo.build_mean_scale(n, m)
    reference.load_state_dict(state["model"])
    reference.update(force=True)
    contents, path, _ = zoo.load_weights(MODEL, quality, root)
    stored = zoo.mean_scale_from_weights(contents, path)
    with Image.open(image_path) as opened:
        image = np.asarray(opened.convert("RGB"))
    (bpp32, psnr32), (bpp16, psnr16) = rd_point(reference.eval(), image), rd_point(stored, image)
    return (f"{Path(image_path).name}: float32 {bpp32:.5f} bpp {psnr32:.4f} dB, exported {bpp16:.5f} bpp "
            f"{psnr16:.4f} dB (Δbpp {100 * (bpp16 / bpp32 - 1):+.3f} %, ΔPSNR {psnr16 - psnr32:+.4f} dB)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="last.pt of a `bench.train mean-scale` run (--format official: of a joint "
                             "`bench.train compass` run)")
    parser.add_argument("--format", choices=("zoo", "official"), default="zoo",
                        help="zoo: a bench weights file (default); official: a COMPASS checkpoint in the "
                             "official code's format and layout (lambda_<λ>/best_model_updated.pth.tar in "
                             "--out-dir), for a COMPASS of the paper's size")
    parser.add_argument("--quality", type=int, required=True, choices=sorted(zoo.QUALITY_LAMBDAS),
                        help="zoo quality: "
                        + ", ".join(f"{q}=λ{v}" for q, v in zoo.QUALITY_LAMBDAS.items()))
    parser.add_argument("--out-dir", default=None,
                        help=f"zoo folder (default: ${zoo.ENV_VAR} or bench/weights)")
    parser.add_argument("--check-image", default=None,
                        help="an image (e.g. a Kodak PNG) on which to compare float32 and exported weights")
    parser.add_argument("--force-lambda", action="store_true",
                        help="export even when the checkpoint's λ is not the quality's λ")
    parser.add_argument("--storage", choices=zoo.STORAGES, default="float16",
                        help="convolution weights as float16 (default) or int8 with a scale per output "
                             "channel (half the size; check the RD cost with --check-image)")


@dataclass(frozen=True)
class ExportConfig:
    """``python -m bench.train export``: ``checkpoint`` (a mean-scale ``last.pt``; for ``format``
    official, a joint COMPASS one) into the zoo file of ``quality`` in ``out_dir`` (None: the zoo,
    ``$BENCH_WEIGHTS`` or bench/weights), or as the official COMPASS checkpoint in ``out_dir``.
    ``check_image``: an image on which to compare the float32 and exported weights;
    ``force_lambda``: export a checkpoint whose λ is not the quality's; ``storage``: float16 or int8.
    TrainingError for a bad value."""

    checkpoint: str
    quality: int
    format: str = "zoo"
    out_dir: str | None = None
    check_image: str | None = None
    force_lambda: bool = False
    storage: str = "float16"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise TrainingError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.quality not in zoo.QUALITY_LAMBDAS:
            raise TrainingError(f"--quality must be one of {sorted(zoo.QUALITY_LAMBDAS)}, got {self.quality}")
        if self.storage not in zoo.STORAGES:
            raise TrainingError(f"--storage must be one of {', '.join(zoo.STORAGES)}, got {self.storage!r}")
        for name in ("checkpoint", "out_dir", "check_image"):
            object.__setattr__(self, name, as_text(getattr(self, name)))


@dataclass(frozen=True)
class ExportResult:
    """What ``export`` wrote: the file and its size; for a zoo file also its parameter count, its
    config (``N``, ``M``, ``steps``, …), its convolutions' storage, its SHA-256 and, with
    ``check_image``, the float32-against-exported comparison line."""

    path: Path
    format: str
    file_bytes: int
    parameters: int | None = None
    config: dict[str, Any] | None = None
    storage: str | None = None
    sha256: str | None = None
    precision_check: str | None = None


def export(config: ExportConfig) -> ExportResult:
    """Export ``config.checkpoint`` as ``config.format`` says; TrainingError when it cannot be."""
    if config.format == "official":
        if not config.out_dir:
            raise TrainingError("export --format official needs --out-dir (the folder of lambda_* folders)")
        try:
            path = _plugin_exporter(config.format)(config.checkpoint, config.quality, config.out_dir)
        except (ValueError, FileNotFoundError) as error:
            raise TrainingError(f"export: {error}") from None
        return ExportResult(path, config.format, path.stat().st_size)
    try:
        path = export_checkpoint(config.checkpoint, config.quality, config.out_dir, config.force_lambda,
                                 config.storage)
    except (ValueError, FileNotFoundError) as error:
        raise TrainingError(f"export: {error}") from None
    contents, _, digest = zoo.load_weights(MODEL, config.quality, path.parent)
    model = zoo.mean_scale_from_weights(contents, path)
    check = (compare_precision(config.checkpoint, config.quality, path.parent, config.check_image)
             if config.check_image else None)
    return ExportResult(path, config.format, path.stat().st_size, sum(p.numel() for p in model.parameters()),
                        dict(contents["config"]), zoo.storage_of(contents["state_dict"]), digest, check)


def run(args: argparse.Namespace) -> None:
    """The command line: the config from the options, then the file and what it holds."""
    config = config_from_args(ExportConfig, args)
    result = export(config)
    if result.format == "official":
        print(f"{result.path}\n  {result.file_bytes / 1e6:.2f} MB, the official COMPASS format "
              f"(compass@official reads it with BENCH_OFFICIAL_COMPASS={config.out_dir})")
        return
    print(f"{result.path}\n  {result.file_bytes / 1e6:.2f} MB, {result.parameters:,} parameters "
          f"(N={result.config['N']}, M={result.config['M']}, step {result.config['steps']}, "
          f"{result.storage}), "
          f"sha256 {result.sha256}")
    if result.precision_check:
        print("  " + result.precision_check)
