"""Operation counts of learned codecs: thousands of multiply-accumulates (kMAC) per pixel.

``count_macs(function)`` runs ``function`` under ``torch.utils.flop_counter.FlopCounterMode`` and
returns MACs. FlopCounterMode counts the FLOPs of convolutions (transposed ones included) and matrix
products (``mm``, ``addmm``, ``bmm``, ``baddbmm``, attention) as 2 FLOPs per multiply-accumulate, so
MACs = FLOPs / 2. Elementwise work (activations, GDN's square root and division, additions,
padding) and entropy coding are not in the count.

Counting must not cost a run's time, so codecs count on torch's ``meta`` device (``on_meta``,
``meta_input``): operations there compute shapes only, which is all FlopCounterMode needs. A
768×512 COMPASS layer counts in a fraction of a second, against seconds to run it. What each codec
runs per layer, in its encoder and in its decoder, is the codec's knowledge (``Codec.complexity``);
the runner caches the answer per codec, quality and layer sizes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

FLOPS_PER_MAC = 2  # FlopCounterMode's convention for convolutions and matrix products
META = torch.device("meta")


@dataclass(frozen=True)
class LayerComplexity:
    """kMAC per pixel of one layer: what the encoder and the decoder run for that layer alone (for a
    scalable codec's layer k, its own networks given layers 0..k-1), over the layer's pixels."""

    encode_kmac_per_pixel: float
    decode_kmac_per_pixel: float


def count_macs(function: Callable[[], Any]) -> tuple[int, Any]:
    """MACs of the convolutions and matrix products that ``function`` runs, and what it returns."""
    # no_grad, not inference_mode: FlopCounterMode's module tracker hooks tensors that need grad,
    # which fails on inference tensors
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        result = function()
    return counter.get_total_flops() // FLOPS_PER_MAC, result


def on_meta(module: nn.Module) -> nn.Module:
    """A copy of ``module`` on the meta device: same layers and shapes, no data, nothing computed."""
    copied = copy.deepcopy(module).to(META)
    copied.requires_grad_(False)  # nothing to train: FlopCounterMode then tracks no gradients
    return copied.eval()


def meta_input(height: int, width: int, channels: int = 3) -> torch.Tensor:
    """A 1×C×H×W input on the meta device."""
    return torch.empty(1, channels, height, width, device=META)


def kmac_per_pixel(macs: int, height: int, width: int) -> float:
    """Thousands of MACs per pixel of a ``height`` × ``width`` layer."""
    return macs / (height * width) / 1e3
