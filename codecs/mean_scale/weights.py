"""mean-scale's weights: its quality table, and the loader of its zoo files (``bench.zoo`` finds and
verifies them; this module knows what is inside)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from bench import zoo

MODEL = "mean-scale"

# Quality -> λ of R + λ·255²·MSE: the four λs of COMPASS's base layer.
QUALITY_LAMBDAS: dict[int, float] = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.013}


def export_command(quality: int) -> str:
    """The command that produces the zoo file for ``quality``."""
    lmbda = QUALITY_LAMBDAS.get(quality, "<λ>")
    return f"python -m bench.train export --checkpoint checkpoints/ms-64x96-l{lmbda}/last.pt --quality {quality}"


def weights_path(quality: int, root: str | os.PathLike[str] | None = None) -> Path:
    """The mean-scale zoo file for ``quality`` (not yet verified)."""
    return zoo.find_weights(MODEL, quality, root, export_command(quality))


def build_mean_scale(n: int, m: int) -> torch.nn.Module:
    """CompressAI's MeanScaleHyperprior with N=``n``, M=``m`` channels, untrained."""
    from bench.compressai_import import import_compressai

    import_compressai()
    from compressai.models import MeanScaleHyperprior

    return MeanScaleHyperprior(N=n, M=m)


def mean_scale_from_weights(contents: dict[str, Any], path: Path | str = "weights") -> torch.nn.Module:
    """A ready MeanScaleHyperprior (float32, eval mode, stored CDF tables) from a file's contents."""
    config, state_dict = contents["config"], contents["state_dict"]
    try:
        model = build_mean_scale(int(config["N"]), int(config["M"]))
        model.load_state_dict(zoo.full_precision(state_dict))  # CompressAI resizes the CDF buffers to fit
    except (KeyError, RuntimeError, ValueError) as error:
        raise zoo.WeightsError(f"{path} does not fit MeanScaleHyperprior: {error}") from error
    for module_name in ("entropy_bottleneck", "gaussian_conditional"):
        module = getattr(model, module_name)
        if any(getattr(module, buffer).numel() == 0 for buffer in zoo.CDF_BUFFERS):
            raise zoo.WeightsError(f"{path} holds no {module_name} CDF tables; export it with bench.train export")
    return model.eval()


def load_mean_scale(
    quality: int, device: str = "cpu", root: str | os.PathLike[str] | None = None
) -> torch.nn.Module:
    """CompressAI's MeanScaleHyperprior with the zoo weights for ``quality``, ready to ``compress``."""
    contents, path, _ = zoo.load_weights(MODEL, quality, root, export_command(quality))
    return mean_scale_from_weights(contents, path).to(device)
