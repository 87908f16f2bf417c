"""Training data: random crops from the training images in ``<data-root>/train`` (never Kodak/CLIC)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}


def list_training_images(root: Path) -> list[Path]:
    """Every image under ``root`` (recursively), sorted so that seeds give the same crops."""
    if not root.is_dir():
        raise FileNotFoundError(f"training image folder not found: {root}")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no training images under {root}")
    return paths


class CropSampler:
    """Holds all training images in memory (uint8) and draws random flipped crops as batches."""

    def __init__(self, paths: list[Path], crop: int, seed: int) -> None:
        self.crop = crop
        self.images = []
        for path in paths:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
            if min(array.shape[:2]) >= crop:
                self.images.append(array)
        if not self.images:
            raise ValueError(f"no training image is at least {crop}x{crop} pixels")
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        crops = []
        for _ in range(size):
            image = self.images[self.rng.integers(len(self.images))]
            top = self.rng.integers(image.shape[0] - self.crop + 1)
            left = self.rng.integers(image.shape[1] - self.crop + 1)
            crop = image[top : top + self.crop, left : left + self.crop]
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            if self.rng.random() < 0.5:
                crop = crop[::-1]
            crops.append(np.ascontiguousarray(crop))
        stacked = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
        return stacked.float().div_(255.0)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
