"""Training data: random crops from the training images in ``<data-root>/train`` (never Kodak/CLIC)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.errors import TrainingError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}


# The 328 pictures every model up to session 11 was trained on (the folders before the 950 photographs
# were added); ``--train-folders old`` selects them so those runs stay reproducible.
OLD_SET_FOLDERS = ("sun_hays80", "tecnick100", "urban100", "wikipedia_photos")
# Evaluation sets, which must never reach training (checked by content, not only by path).
EVALUATION_SETS = ("kodak", "clic")


def list_training_images(root: Path, folders: list[str] | None = None) -> list[Path]:
    """Every image under ``root`` (recursively), sorted so that seeds give the same crops.

    ``folders`` limits the set to those sub-folders of ``root`` (``["old"]`` means OLD_SET_FOLDERS).
    Any file that is, by path or by content, one of the evaluation pictures in ``root``'s sibling
    ``kodak/`` or ``clic/`` folders is refused.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"training image folder not found: {root}")
    roots = [root]
    if folders:
        names = [name for entry in folders for name in (OLD_SET_FOLDERS if entry == "old" else (entry,))]
        available = sorted(p.name for p in root.iterdir() if p.is_dir())
        unknown = [n for n in names if n not in available]
        if unknown or any("/" in n or n in ("", ".", "..") for n in names):
            raise TrainingError(f"no training folder {', '.join(unknown or names)} under {root}; "
                                    f"there are: {', '.join(available)}")
        roots = [root / name for name in dict.fromkeys(names)]
    paths = sorted({p for r in roots for p in r.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES})
    if not paths:
        raise FileNotFoundError(f"no training images under {root}")
    refuse_evaluation_images(paths, root.parent)
    return paths


def evaluation_hashes(data_root: Path) -> dict[str, str]:
    """SHA-256 → name of every evaluation picture listed in ``data_root/{kodak,clic}/SHA256SUMS``."""
    hashes = {}
    for name in EVALUATION_SETS:
        sums = data_root / name / "SHA256SUMS"
        if sums.is_file():
            for line in sums.read_text().splitlines():
                digest, _, filename = line.strip().partition("  ")
                if digest:
                    hashes[digest.lower()] = f"{name}/{filename.lstrip('*')}"
    return hashes


def refuse_evaluation_images(paths: list[Path], data_root: Path) -> None:
    """Raise TrainingError if any path lies in an evaluation folder or has an evaluation picture's bytes."""
    eval_dirs = [(data_root / name).resolve() for name in EVALUATION_SETS]
    known = evaluation_hashes(data_root)
    for path in paths:
        resolved = path.resolve()
        if any(resolved.is_relative_to(d) for d in eval_dirs):
            raise TrainingError(f"{path} is an evaluation picture (under {resolved.parent}): it cannot be trained on")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in known:
            raise TrainingError(f"{path} has the same bytes as the evaluation picture {known[digest]}: "
                             "it cannot be trained on")


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
