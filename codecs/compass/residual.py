"""Mean-scale hyperprior coding with conv-layer-wise padding (COMPASS spec §3.2).

The residual-compression module RC is a plain CompressAI ``MeanScaleHyperprior``; what makes it
COMPASS's RC is *how* it is run: before every stride-2 convolution of the encoder and hyper-encoder
an odd height or width is padded by one row/column, and the matching transposed convolution of the
decoder crops it away again. Nothing is ever padded to a multiple of 64, so a 67×45 residual codes
5×3 latents, not 8×4. The decoder recomputes the whole size plan from the layer size alone, which
is why the bitstream header carries every layer's size.

The same functions run the frozen base layer (whole-image padded to a multiple of 64 by default, or
layer-wise as the public reference code does: see ``model.BL_PADDINGS``), so the functions below
take any CompressAI mean-scale hyperprior.

Choices the spec leaves open (ours, ``BENCH_PADDING``):
- the extra row/column goes at the *bottom/right* and is filled by replication (the reference code
  pads top/left; both are allowed by the method text);
- the hyper-latent z keeps CompressAI's training behaviour (additive noise); only y gets the
  straight-through rounding ŷ = round(y − μ) + μ that the spec prescribes for the decoder input.

``OFFICIAL_PADDING`` is the public reference code's scheme, needed to run its published weights
exactly (``compass@official``): the extra row/column goes at the *top/left*, and the hyper-encoder
pads before *every* conv, including its first, stride-1 one (so an odd-sized y is padded before
h_a[0], not h_a[0]'s output before h_a[2]); the hyper-decoder crops after each of its three convs.
Border pixels differ between the two schemes, so every function takes the scheme as ``padding``
and a decoder must use the encoder's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from bench.codecs.mean_scale.weights import build_mean_scale  # noqa: F401 - the RC (and a BL) is a mean-scale hyperprior

Size = tuple[int, int]
Cast = Callable[[], ContextManager]  # makes the context a training pass runs its transforms in


@dataclass(frozen=True)
class Padding:
    """A conv-layer-wise padding scheme (see the module docstring)."""

    name: str
    side: str  # "end": the extra row/column at the bottom/right; "start": at the top/left
    every_conv: bool  # pad before every analysis conv (stride 1 too), not only the stride-2 ones

    def __post_init__(self) -> None:
        if self.side not in ("start", "end"):
            raise ValueError(f"padding side must be 'start' or 'end', got {self.side!r}")


BENCH_PADDING = Padding("bench", "end", every_conv=False)
OFFICIAL_PADDING = Padding("official", "start", every_conv=True)
PADDINGS = {p.name: p for p in (BENCH_PADDING, OFFICIAL_PADDING)}


def _is_down(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and tuple(module.stride) == (2, 2)


def _is_up(module: nn.Module) -> bool:
    return isinstance(module, nn.ConvTranspose2d) and tuple(module.stride) == (2, 2)


def _pads_before(module: nn.Module, padding: Padding) -> bool:
    return isinstance(module, nn.Conv2d) if padding.every_conv else _is_down(module)


def _crops_after(module: nn.Module, padding: Padding) -> bool:
    if padding.every_conv:
        return isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))
    return _is_up(module)


def _pad_to_even(x: torch.Tensor, padding: Padding = BENCH_PADDING) -> torch.Tensor:
    """Replicate one row/column (at ``padding.side``) when the height/width is odd (never more)."""
    h, w = x.shape[-2:]
    if h % 2 == 0 and w % 2 == 0:
        return x
    if padding.side == "end":
        return F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.pad(x, (w % 2, 0, h % 2, 0), mode="replicate")


def _crop(x: torch.Tensor, size: Size, padding: Padding) -> torch.Tensor:
    h, w = size
    if padding.side == "end":
        return x[..., :h, :w]
    return x[..., x.shape[-2] - h :, x.shape[-1] - w :]


def _run_down(
    seq: nn.Sequential, x: torch.Tensor, padding: Padding = BENCH_PADDING
) -> tuple[torch.Tensor, list[Size]]:
    """Run an analysis stack; returns the output and the input size of every padded conv."""
    sizes: list[Size] = []
    for module in seq:
        if _pads_before(module, padding):
            sizes.append((x.shape[-2], x.shape[-1]))
            x = _pad_to_even(x, padding)
        x = module(x)
    return x, sizes


def _run_up(
    seq: nn.Sequential, x: torch.Tensor, sizes: list[Size], padding: Padding = BENCH_PADDING
) -> torch.Tensor:
    """Run a synthesis stack; the output of each cropping (transposed) conv is cropped to the size
    that the mirrored encoder conv had at its input (``sizes`` in encoder order)."""
    targets = list(reversed(sizes))
    crops = sum(1 for module in seq if _crops_after(module, padding))
    if crops != len(targets):
        raise ValueError(f"{crops} cropping convs but {len(targets)} recorded sizes")
    for module in seq:
        x = module(x)
        if _crops_after(module, padding):
            x = _crop(x, targets.pop(0), padding)
    return x


def _plan_stack(seq: nn.Sequential, h: int, w: int, padding: Padding) -> tuple[list[Size], Size]:
    """Input sizes of the padded convs of an analysis stack, and its output size. Every conv of a
    mean-scale hyperprior keeps an even size (k=5, p=2, stride 2 halves it; k=3, p=1 keeps it)."""
    sizes: list[Size] = []
    for module in seq:
        if _pads_before(module, padding):
            sizes.append((h, w))
            h, w = h + h % 2, w + w % 2
        if _is_down(module):
            h, w = h // 2, w // 2
    return sizes, (h, w)


def size_plan(
    height: int, width: int, model: nn.Module, padding: Padding = BENCH_PADDING
) -> dict[str, list[Size] | Size]:
    """Every intermediate size the decoder needs, from the image size alone.

    ``g``: input sizes of the encoder's padded convs; ``h``: those of the hyper-encoder;
    ``y``/``z``: latent sizes.
    """
    g_sizes, y_size = _plan_stack(model.g_a, height, width, padding)
    h_sizes, z_size = _plan_stack(model.h_a, *y_size, padding)
    return {"g": g_sizes, "h": h_sizes, "y": y_size, "z": z_size}


def analysis(
    model: nn.Module, x: torch.Tensor, padding: Padding = BENCH_PADDING
) -> tuple[torch.Tensor, list[Size]]:
    return _run_down(model.g_a, x, padding)


def hyper_analysis(
    model: nn.Module, y: torch.Tensor, padding: Padding = BENCH_PADDING
) -> tuple[torch.Tensor, list[Size]]:
    return _run_down(model.h_a, y, padding)


def synthesis(
    model: nn.Module, y_hat: torch.Tensor, g_sizes: list[Size], padding: Padding = BENCH_PADDING
) -> torch.Tensor:
    return _run_up(model.g_s, y_hat, g_sizes, padding)


def hyper_params(
    model: nn.Module, z_hat: torch.Tensor, h_sizes: list[Size], padding: Padding = BENCH_PADDING
) -> tuple[torch.Tensor, torch.Tensor]:
    scales, means = _run_up(model.h_s, z_hat, h_sizes, padding).chunk(2, 1)
    return scales, means


class _RoundSTE(torch.autograd.Function):
    """round() forward, identity backward (straight-through)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def forward(
    model: nn.Module, x: torch.Tensor, padding: Padding = BENCH_PADDING, cast: Cast = contextlib.nullcontext
) -> dict:
    """Training/validation pass with layer-wise padding.

    ``cast`` makes the context the four transforms run in (training passes bf16 autocast, see
    ``bench.train.precision``); their outputs are made fp32 before any entropy model sees them.

    The decoder always receives ŷ = round(y − μ) + μ (straight-through gradient), exactly what
    ``decompress`` reconstructs, so there is no train/test mismatch to propagate to the next layer;
    the likelihoods come from CompressAI's modules (noisy latents in train mode, rounded in eval).
    ``x_hat`` is not clamped: it is a residual for RC, and the recursion never clamps (spec §3.3).
    """
    with cast():
        y, g_sizes = analysis(model, x, padding)
    y = y.float()
    with cast():
        z, h_sizes = _run_down(model.h_a, y, padding)
    z_hat, z_likelihoods = model.entropy_bottleneck(z.float())
    with cast():
        scales, means = hyper_params(model, z_hat, h_sizes, padding)
    scales, means = scales.float(), means.float()
    _, y_likelihoods = model.gaussian_conditional(y, scales, means=means)
    y_hat = _RoundSTE.apply(y - means) + means
    with cast():
        x_hat = synthesis(model, y_hat, g_sizes, padding)
    x_hat = x_hat.float()
    return {
        "x_hat": x_hat,
        "likelihoods": {"y": y_likelihoods, "z": z_likelihoods},
        "y": y,
        "z": z,
        "y_hat": y_hat,
        "means": means,
    }


@torch.no_grad()
def compress(model: nn.Module, x: torch.Tensor, padding: Padding = BENCH_PADDING) -> tuple[bytes, bytes]:
    """Entropy-code one image (batch of 1) into its (y, z) strings; CDF tables must be updated."""
    if x.shape[0] != 1:
        raise ValueError("compress codes one image at a time")
    y, _ = analysis(model, x, padding)
    z, h_sizes = _run_down(model.h_a, y, padding)
    z_strings = model.entropy_bottleneck.compress(z)
    z_hat = model.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
    scales, means = hyper_params(model, z_hat, h_sizes, padding)
    indexes = model.gaussian_conditional.build_indexes(scales)
    y_strings = model.gaussian_conditional.compress(y, indexes, means=means)
    return y_strings[0], z_strings[0]


@torch.no_grad()
def decompress(
    model: nn.Module, y_string: bytes, z_string: bytes, size: Size, padding: Padding = BENCH_PADDING
) -> torch.Tensor:
    """Decode the (y, z) strings of an image of ``size``; returns the unclamped reconstruction."""
    plan = size_plan(size[0], size[1], model, padding)
    z_hat = model.entropy_bottleneck.decompress([z_string], plan["z"])
    scales, means = hyper_params(model, z_hat, plan["h"], padding)  # type: ignore[arg-type]
    indexes = model.gaussian_conditional.build_indexes(scales)
    y_hat = model.gaussian_conditional.decompress([y_string], indexes, z_hat.dtype, means=means)
    x_hat = synthesis(model, y_hat, plan["g"], padding)  # type: ignore[arg-type]
    if tuple(x_hat.shape[-2:]) != tuple(size):
        raise RuntimeError(f"decoded size {tuple(x_hat.shape[-2:])} differs from the plan {size}")
    return x_hat
