"""Mean-scale hyperprior coding with conv-layer-wise padding (COMPASS spec §3.2).

The residual-compression module RC is a plain CompressAI ``MeanScaleHyperprior``; what makes it
COMPASS's RC is *how* it is run: before every stride-2 convolution of the encoder and hyper-encoder
an odd height or width is padded by one row/column, and the matching transposed convolution of the
decoder crops it away again. Nothing is ever padded to a multiple of 64, so a 67×45 residual codes
5×3 latents, not 8×4. The decoder recomputes the whole size plan from the layer size alone, which
is why the bitstream header carries every layer's size.

The same functions run the frozen base layer (see ``model.BL_PADDING``), as the public reference
code does, so the functions below take any CompressAI mean-scale hyperprior.

Choices the spec leaves open (ours):
- the extra row/column goes at the *bottom/right* and is filled by replication (the reference code
  pads top/left; both are allowed by the method text);
- the hyper-latent z keeps CompressAI's training behaviour (additive noise); only y gets the
  straight-through rounding ŷ = round(y − μ) + μ that the spec prescribes for the decoder input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench._compressai import import_compressai

Size = tuple[int, int]


def build_mean_scale(n: int, m: int) -> nn.Module:
    """A fresh CompressAI ``MeanScaleHyperprior(N, M)`` (the RC module, or a BL for tests)."""
    import_compressai()
    from compressai.models import MeanScaleHyperprior

    return MeanScaleHyperprior(N=n, M=m)


def _is_down(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and tuple(module.stride) == (2, 2)


def _is_up(module: nn.Module) -> bool:
    return isinstance(module, nn.ConvTranspose2d) and tuple(module.stride) == (2, 2)


def _pad_to_even(x: torch.Tensor) -> torch.Tensor:
    """Replicate one row/column at the bottom/right when the height/width is odd (never more)."""
    h, w = x.shape[-2:]
    if h % 2 == 0 and w % 2 == 0:
        return x
    return F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")


def _run_down(seq: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, list[Size]]:
    """Run an analysis stack; returns the output and the input size of every stride-2 conv."""
    sizes: list[Size] = []
    for module in seq:
        if _is_down(module):
            sizes.append((x.shape[-2], x.shape[-1]))
            x = _pad_to_even(x)
        x = module(x)
    return x, sizes


def _run_up(seq: nn.Sequential, x: torch.Tensor, sizes: list[Size]) -> torch.Tensor:
    """Run a synthesis stack; each stride-2 transposed conv output is cropped to the size that the
    matching encoder conv had at its input (``sizes`` in encoder order)."""
    targets = list(reversed(sizes))
    ups = sum(1 for module in seq if _is_up(module))
    if ups != len(targets):
        raise ValueError(f"{ups} transposed convs but {len(targets)} recorded sizes")
    for module in seq:
        x = module(x)
        if _is_up(module):
            h, w = targets.pop(0)
            x = x[..., :h, :w]
    return x


def size_plan(height: int, width: int, model: nn.Module) -> dict[str, list[Size] | Size]:
    """Every intermediate size the decoder needs, from the image size alone.

    ``g``: input sizes of the encoder's stride-2 convs; ``h``: those of the hyper-encoder;
    ``y``/``z``: latent sizes. Each stride-2 conv (k=5, p=2) on an even input halves it exactly.
    """
    g_sizes: list[Size] = []
    h, w = height, width
    for module in model.g_a:
        if _is_down(module):
            g_sizes.append((h, w))
            h, w = math.ceil(h / 2), math.ceil(w / 2)
    y_size = (h, w)
    h_sizes: list[Size] = []
    for module in model.h_a:
        if _is_down(module):
            h_sizes.append((h, w))
            h, w = math.ceil(h / 2), math.ceil(w / 2)
    return {"g": g_sizes, "h": h_sizes, "y": y_size, "z": (h, w)}


def analysis(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[Size]]:
    return _run_down(model.g_a, x)


def synthesis(model: nn.Module, y_hat: torch.Tensor, g_sizes: list[Size]) -> torch.Tensor:
    return _run_up(model.g_s, y_hat, g_sizes)


def hyper_params(
    model: nn.Module, z_hat: torch.Tensor, h_sizes: list[Size]
) -> tuple[torch.Tensor, torch.Tensor]:
    scales, means = _run_up(model.h_s, z_hat, h_sizes).chunk(2, 1)
    return scales, means


class _RoundSTE(torch.autograd.Function):
    """round() forward, identity backward (straight-through)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def forward(model: nn.Module, x: torch.Tensor) -> dict:
    """Training/validation pass with layer-wise padding.

    The decoder always receives ŷ = round(y − μ) + μ (straight-through gradient), exactly what
    ``decompress`` reconstructs, so there is no train/test mismatch to propagate to the next layer;
    the likelihoods come from CompressAI's modules (noisy latents in train mode, rounded in eval).
    ``x_hat`` is not clamped: it is a residual for RC, and the recursion never clamps (spec §3.3).
    """
    y, g_sizes = analysis(model, x)
    z, h_sizes = _run_down(model.h_a, y)
    z_hat, z_likelihoods = model.entropy_bottleneck(z)
    scales, means = hyper_params(model, z_hat, h_sizes)
    _, y_likelihoods = model.gaussian_conditional(y, scales, means=means)
    y_hat = _RoundSTE.apply(y - means) + means
    x_hat = synthesis(model, y_hat, g_sizes)
    return {
        "x_hat": x_hat,
        "likelihoods": {"y": y_likelihoods, "z": z_likelihoods},
        "y": y,
        "z": z,
        "y_hat": y_hat,
        "means": means,
    }


@torch.no_grad()
def compress(model: nn.Module, x: torch.Tensor) -> tuple[bytes, bytes]:
    """Entropy-code one image (batch of 1) into its (y, z) strings; CDF tables must be updated."""
    if x.shape[0] != 1:
        raise ValueError("compress codes one image at a time")
    y, _ = analysis(model, x)
    z, h_sizes = _run_down(model.h_a, y)
    z_strings = model.entropy_bottleneck.compress(z)
    z_hat = model.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
    scales, means = hyper_params(model, z_hat, h_sizes)
    indexes = model.gaussian_conditional.build_indexes(scales)
    y_strings = model.gaussian_conditional.compress(y, indexes, means=means)
    return y_strings[0], z_strings[0]


@torch.no_grad()
def decompress(model: nn.Module, y_string: bytes, z_string: bytes, size: Size) -> torch.Tensor:
    """Decode the (y, z) strings of an image of ``size``; returns the unclamped reconstruction."""
    plan = size_plan(size[0], size[1], model)
    z_hat = model.entropy_bottleneck.decompress([z_string], plan["z"])
    scales, means = hyper_params(model, z_hat, plan["h"])  # type: ignore[arg-type]
    indexes = model.gaussian_conditional.build_indexes(scales)
    y_hat = model.gaussian_conditional.decompress([y_string], indexes, z_hat.dtype, means=means)
    x_hat = synthesis(model, y_hat, plan["g"])  # type: ignore[arg-type]
    if tuple(x_hat.shape[-2:]) != tuple(size):
        raise RuntimeError(f"decoded size {tuple(x_hat.shape[-2:])} differs from the plan {size}")
    return x_hat
