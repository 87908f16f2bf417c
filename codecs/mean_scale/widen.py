"""Widen a trained mean-scale hyperprior to more channels (N, M) without changing what it computes
(``python -m bench.train widen``, whose ``--model mean-scale`` is ``widen_file``).

Why: the published mbt2018-mean q1–q4 models are N=128/M=192, four times the compute of the 64/96
size that trains fastest here. Training 128/192 from scratch on a CPU throws away the CPU-hours
already spent on 64/96. Net2WiderNet (Chen et al., ICLR 2016) widens a trained network into a
bigger one that computes the same function, so training the bigger one starts where the small one
stopped and only has to learn what the extra capacity adds.

How each kind of channel is widened:
- hidden channels (g_a/g_s between GDNs, h_a, h_s): every new channel copies an old one; the next
  layer's weights for the two copies are split as (½+ε)·w and (½−ε)·w with a random ε per weight,
  so their sum (and the function) is unchanged while the copies get different gradients and can
  drift apart. A GDN's γ is split the same way over its duplicated inputs (its γ ≥ 0 stays ≥ 0).
- new latent channels of y (M): g_a writes 0 to them and h_s predicts mean 0 and the smallest scale,
  so they cost no bits at evaluation; g_s reads them through small random weights, so training
  can start using them.
- new channels of z: h_a writes the median of z's most predictable old channel to them, and the
  entropy bottleneck models each with a copy of that channel's density (a fraction of a bit per
  element; training makes it less).

COMPASS's residual coder is the same network, so the compass plugin's ``--model compass`` widens a
COMPASS file's RC with ``widen_mean_scale`` (LIFF kept as it is) for ``bench.train compass --init-from
FILE --rc-size N,M``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench import zoo
from bench.codecs.mean_scale.weights import build_mean_scale
from bench.errors import TrainingError

SPLIT_NOISE = 0.1  # ε ~ U(−0.1, 0.1): copies' outgoing weights differ by up to ±20 % of each other
READ_NEW_LATENTS = 0.01  # g_s's weights for new y channels, relative to the std of its old ones


def _split(weight: torch.Tensor, dim: int, old: int, new: int, gen: torch.Generator) -> torch.Tensor:
    """Widen ``weight``'s input dimension ``dim`` from ``old`` to ``new`` channels, where input
    channel c ≥ old is a copy of c mod old: each group of copies shares the old weight as random
    fractions that add up to it (so the layer's output is unchanged)."""
    index = torch.arange(new) % old
    copies = torch.bincount(index, minlength=old).to(weight.dtype)
    widened = weight.index_select(dim, index)
    shape = [1] * weight.dim()
    shape[dim] = new
    share = (1.0 / copies[index]).reshape(shape)
    noise = (torch.rand(widened.shape, generator=gen, dtype=weight.dtype) * 2 - 1) * SPLIT_NOISE
    noise = noise - _group_mean(noise, dim, index, old)  # fractions of a group still sum to 1
    return widened * (share + noise * share)


def _group_mean(noise: torch.Tensor, dim: int, index: torch.Tensor, old: int) -> torch.Tensor:
    moved = noise.movedim(dim, 0)
    sums = torch.zeros((old,) + moved.shape[1:], dtype=noise.dtype).index_add_(0, index, moved)
    counts = torch.bincount(index, minlength=old).to(noise.dtype).reshape((old,) + (1,) * (moved.dim() - 1))
    return (sums / counts).index_select(0, index).movedim(0, dim)


def _duplicate(tensor: torch.Tensor, dim: int, old: int, new: int) -> torch.Tensor:
    """Output channel c ≥ old copies channel c mod old."""
    return tensor.index_select(dim, torch.arange(new) % old)


def _pad(tensor: torch.Tensor, dim: int, new: int, fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Append channels along ``dim`` up to ``new``, filled with ``fill`` (a scalar or a tensor of
    the appended part's shape)."""
    shape = list(tensor.shape)
    shape[dim] = new - tensor.shape[dim]
    extra = fill if isinstance(fill, torch.Tensor) else torch.full(shape, float(fill), dtype=tensor.dtype)
    return torch.cat([tensor, extra.to(tensor.dtype)], dim)


def _widen_gdn(state: dict, out: dict, prefix: str, old: int, new: int, gen: torch.Generator,
               reparam: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    beta_reparam, gamma_reparam = reparam
    beta = beta_reparam(state[f"{prefix}.beta"])
    gamma = gamma_reparam(state[f"{prefix}.gamma"])
    gamma = _split(_duplicate(gamma, 0, old, new), 1, old, new, gen).clamp_min(0)
    out[f"{prefix}.beta"] = beta_reparam.init(_duplicate(beta, 0, old, new))
    out[f"{prefix}.gamma"] = gamma_reparam.init(gamma)


def widen_mean_scale(state: dict[str, torch.Tensor], n: int, m: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A MeanScaleHyperprior(N=n, M=m) state dict computing what ``state`` (a smaller trained
    MeanScaleHyperprior) computes; see the module docstring for how."""
    n0, m0 = state["g_a.0.weight"].shape[0], state["g_a.6.weight"].shape[0]
    if n < n0 or m < m0:
        raise TrainingError(f"widening goes to at least N={n0} M={m0}, the trained size; asked for N={n} M={m}")
    gen = torch.Generator().manual_seed(seed)
    target = build_mean_scale(n, m)
    out = {key: value.clone() for key, value in target.state_dict().items()}
    shapes = {key: value.shape for key, value in out.items()}
    # CDF tables (``zoo.CDF_BUFFERS``) are left empty: training never reads them and export
    # recomputes them
    state = {key: value.float() for key, value in state.items() if not key.endswith(zoo.CDF_BUFFERS)}

    def conv(prefix: str, in_old: int, in_new: int, out_old: int, out_new: int, transposed: bool,
             split_in: bool = True) -> None:
        # Conv2d weights are (out, in, k, k); ConvTranspose2d weights are (in, out, k, k)
        w, b = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
        in_dim, out_dim = (0, 1) if transposed else (1, 0)
        if split_in:
            w = _split(w, in_dim, in_old, in_new, gen)
        w = _duplicate(w, out_dim, out_old, out_new)
        out[f"{prefix}.weight"], out[f"{prefix}.bias"] = w, _duplicate(b, 0, out_old, out_new)

    reparams = {}
    for name, module in target.named_modules():
        if hasattr(module, "beta_reparam"):
            reparams[name] = (module.beta_reparam, module.gamma_reparam)

    # g_a: 3 → N (GDN) N → N (GDN) N → N (GDN) N → M; new y channels are written as 0
    conv("g_a.0", 3, 3, n0, n, transposed=False, split_in=False)
    for i in (2, 4):
        conv(f"g_a.{i}", n0, n, n0, n, transposed=False)
    w = _split(state["g_a.6.weight"], 1, n0, n, gen)
    out["g_a.6.weight"] = _pad(w, 0, m)
    out["g_a.6.bias"] = _pad(state["g_a.6.bias"], 0, m)
    for i in (1, 3, 5):
        _widen_gdn(state, out, f"g_a.{i}", n0, n, gen, reparams[f"g_a.{i}"])

    # g_s: M → N (IGDN) … N → 3; new y channels are read through small random weights
    w = state["g_s.0.weight"]  # (M, N, k, k)
    reads = torch.randn((m - m0,) + w.shape[1:], generator=gen) * (READ_NEW_LATENTS * float(w.std()))
    out["g_s.0.weight"] = _duplicate(_pad(w, 0, m, reads), 1, n0, n)
    out["g_s.0.bias"] = _duplicate(state["g_s.0.bias"], 0, n0, n)
    for i in (2, 4):
        conv(f"g_s.{i}", n0, n, n0, n, transposed=True)
    conv("g_s.6", n0, n, 3, 3, transposed=True)
    for i in (1, 3, 5):
        _widen_gdn(state, out, f"g_s.{i}", n0, n, gen, reparams[f"g_s.{i}"])

    # z's new channels: the most predictable old channel's density, and its median as their value
    eb = "entropy_bottleneck"
    source = _most_predictable_channel(state, n0)
    pick = torch.cat([torch.arange(n0), torch.full((n - n0,), source)])
    for key in state:
        if key.startswith(f"{eb}.") and state[key].dim() > 0 and state[key].shape[0] == n0:
            out[key] = state[key].index_select(0, pick)
    median = state[f"{eb}.quantiles"][source, 0, 1]

    # h_a: M → N (LReLU) N → N (LReLU) N → N=z
    w = _pad(state["h_a.0.weight"], 1, m)  # new y channels are 0 anyway; read them with 0
    out["h_a.0.weight"] = _duplicate(w, 0, n0, n)
    out["h_a.0.bias"] = _duplicate(state["h_a.0.bias"], 0, n0, n)
    conv("h_a.2", n0, n, n0, n, transposed=False)
    w = _split(state["h_a.4.weight"], 1, n0, n, gen)
    out["h_a.4.weight"] = _pad(w, 0, n)
    out["h_a.4.bias"] = _pad(state["h_a.4.bias"], 0, n, float(median))

    # h_s: N → M (LReLU) M → 3M/2 (LReLU) 3M/2 → 2M = [scales, means]; new z channels read as 0
    w = _pad(state["h_s.0.weight"], 0, n)
    out["h_s.0.weight"] = _duplicate(w, 1, m0, m)
    out["h_s.0.bias"] = _duplicate(state["h_s.0.bias"], 0, m0, m)
    h0, h = m0 * 3 // 2, m * 3 // 2
    conv("h_s.2", m0, m, h0, h, transposed=True)
    w = _split(state["h_s.4.weight"], 1, h0, h, gen)  # (2·m0, h, k, k)
    b = state["h_s.4.bias"]
    scales_w, means_w = _pad(w[:m0], 0, m), _pad(w[m0:], 0, m)  # new y: scale 0 → the lower bound, mean 0
    out["h_s.4.weight"] = torch.cat([scales_w, means_w])
    out["h_s.4.bias"] = torch.cat([_pad(b[:m0], 0, m), _pad(b[m0:], 0, m)])

    missing = [key for key, value in out.items() if value.shape != shapes[key]]
    if missing:
        raise TrainingError(f"widening produced wrong shapes for {missing}")
    return out


def _most_predictable_channel(state: dict[str, torch.Tensor], n0: int) -> int:
    """The z channel whose density puts most mass in the unit bin around its median."""
    from bench.compressai_import import import_compressai

    import_compressai()
    from compressai.entropy_models import EntropyBottleneck

    eb = EntropyBottleneck(n0)
    prefix = "entropy_bottleneck."
    own = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    eb.load_state_dict(own, strict=False)  # without the CDF tables
    with torch.no_grad():
        median = eb.quantiles[:, 0, 1].reshape(n0, 1, 1)
        lower = eb._logits_cumulative(median - 0.5, stop_gradient=True)
        upper = eb._logits_cumulative(median + 0.5, stop_gradient=True)
        mass = (torch.sigmoid(upper) - torch.sigmoid(lower)).reshape(n0)
    return int(mass.argmax())


def mean_scale_state(state: Any, path: Path) -> dict[str, torch.Tensor]:
    """``state`` when it is a mean-scale model's state dict; TrainingError naming ``path`` when not."""
    if not isinstance(state, dict) or not {"g_a.0.weight", "g_a.6.weight", "h_s.4.weight"} <= set(state):
        raise TrainingError(f"{path} holds no mean-scale model (a `bench.train mean-scale` checkpoint or a "
                            "mean-scale zoo file)")
    return state


def widen_file(contents: dict[str, Any], path: Path, config: Any) -> dict[str, Any]:
    """The mean-scale trainer's ``widen`` (``python -m bench.train widen --model mean-scale``): the
    model in ``contents`` (a zoo file, a training checkpoint or a bare state dict, read from ``path``)
    widened to ``config.N``/``config.M`` with ``config.seed``, as a file for ``--init-from``."""
    if "state_dict" in contents:  # a zoo file
        state = zoo.full_precision(contents["state_dict"])
    else:  # a training checkpoint, or a bare state dict
        state = contents.get("model", contents)
    widened = widen_mean_scale(mean_scale_state(state, path), config.N, config.M, config.seed)
    return {"model": widened, "widened_from": path.name, "config": {"N": config.N, "M": config.M}}
