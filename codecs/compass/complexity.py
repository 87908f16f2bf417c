"""What COMPASS's encoder and decoder run per layer, as MACs (``bench.measuring.complexity``).

Counted on a copy of the model on the meta device, through the same functions that code (layer-wise
padding plans included), so the count follows the code:

* decoder, layer 0: the BL's h_s and g_s (on the BL's coded size: padded to a multiple of 64 by
  default); layer k ≥ 1: LIFF from layer k-1's size to layer k's, then the RC's h_s and g_s.
* encoder, layer 0: the BL's g_a, h_a and h_s, then the layer's decode (h_s again, g_s), since
  the encoder reconstructs every layer exactly as the decoder will to predict the next one (bench's
  encoder does so for the top layer too); layer k ≥ 1: LIFF, the RC's g_a, h_a, h_s, then h_s and
  g_s likewise.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from bench.codecs.compass import residual
from bench.codecs.compass.model import CompassModel, bl_coded_size
from bench.measuring.complexity import count_macs, meta_input

Size = tuple[int, int]


def _hyperprior(model: nn.Module, size: Size, padding: residual.Padding) -> tuple[int, int]:
    """(encoder, decoder) MACs of one mean-scale hyperprior coding an image of ``size``: the
    encoder's analysis, hyper-analysis and hyper-synthesis; the decoder's hyper-synthesis and
    synthesis."""
    plan = residual.size_plan(size[0], size[1], model, padding)
    analysis, (y, _) = count_macs(lambda: residual.analysis(model, meta_input(*size), padding))
    hyper_analysis, (z, _) = count_macs(lambda: residual.hyper_analysis(model, y, padding))
    hyper_synthesis, _ = count_macs(lambda: residual.hyper_params(model, z, plan["h"], padding))
    synthesis, _ = count_macs(lambda: residual.synthesis(model, y, plan["g"], padding))
    return analysis + hyper_analysis + hyper_synthesis, hyper_synthesis + synthesis


def layer_macs(model: CompassModel, sizes: Sequence[Size]) -> list[tuple[int, int]]:
    """(encoder, decoder) MACs of every layer of ``sizes`` (smallest first); ``model`` on the meta
    device (``bench.measuring.complexity.on_meta``)."""
    out = []
    for k, size in enumerate(sizes):
        if k == 0:
            prediction = 0
            encoder, decoder = _hyperprior(model.bl, bl_coded_size(size, model.bl_padding), model.padding)
        else:
            prediction, _ = count_macs(lambda size=size, k=k: model.liff(meta_input(*sizes[k - 1]), size))
            encoder, decoder = _hyperprior(model.rc, size, model.padding)
        # the encoder predicts once and then decodes the layer it coded, as the decoder will
        out.append((prediction + encoder + decoder, prediction + decoder))
    return out
