"""Tiny random COMPASS models and test images (shared by the COMPASS tests)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from bench.codecs.compass import residual
from bench.codecs.compass.model import TINY_CONFIG, CompassModel


def make_tiny_model(seed: int = 0, model_id: str = "test-tiny") -> CompassModel:
    torch.manual_seed(seed)
    bl = residual.build_mean_scale(8, 12)
    bl.update(force=True)
    model = CompassModel.build(bl, TINY_CONFIG, model_id=model_id)
    model.rc.update(force=True)
    return model.eval()


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth pattern plus noise: something a codec has to spend bits on."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(x / (5.0 + c) + c) * np.cos(y / (4.0 + c)) for c in range(3)], -1)
    return np.clip(base * 90 + 128 + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def pyramid(top: np.ndarray, ratios: list[float]) -> list[np.ndarray]:
    """Spec §1: layer k is int(H·a_k) × int(W·a_k), resized directly from the top with PIL bicubic."""
    h, w = top.shape[:2]
    layers = [top]
    factor = 1.0
    for ratio in reversed(ratios):
        factor /= ratio
        size = (int(w * factor), int(h * factor))
        layers.insert(0, np.asarray(Image.fromarray(top).resize(size, Image.BICUBIC)))
    return layers
