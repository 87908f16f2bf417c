"""Write a fixed bank of training crops: a small, self-contained training set for a remote machine.

A lent GPU machine sees only the repository and what a call carries (64 MiB in all), not
``../shared/datasets``. This draws random crops round-robin over every training image (so each
image contributes before any contributes twice), stores them as lossless WebP (8-bit RGB exactly
as read, about a quarter smaller than PNG) and stops at a byte budget. Point any trainer's
``--data-root`` at the folder holding the bank's ``train/``.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from bench.errors import TrainingError
from bench.train.common import folder_list
from bench.train.data import list_training_images


def write_crop_bank(source: Path, out: Path, size: int, max_bytes: int, seed: int,
                    folders: list[str] | None = None) -> tuple[int, int]:
    """Crops of ``size``² from the images under ``source`` into ``out``; returns (count, bytes)."""
    if not any(name in Image.registered_extensions() for name in (".webp",)):
        raise TrainingError("this Pillow cannot write WebP")
    rng = np.random.default_rng(seed)
    arrays = []
    for path in list_training_images(source, folders):
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
        if min(array.shape[:2]) >= size:
            arrays.append(array)
    if not arrays:
        raise TrainingError(f"no training image under {source} is at least {size}x{size}")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("crop*.webp"):  # a bank is rebuilt whole: no stale crops of another size or seed
        old.unlink()
    count = total = 0
    while True:
        for index in rng.permutation(len(arrays)):
            array = arrays[index]
            top = rng.integers(array.shape[0] - size + 1)
            left = rng.integers(array.shape[1] - size + 1)
            buffer = io.BytesIO()
            Image.fromarray(array[top : top + size, left : left + size]).save(
                buffer, "WEBP", lossless=True, quality=100, method=6
            )
            if total + buffer.tell() > max_bytes:
                if not count:
                    raise TrainingError(
                        f"a single {size}x{size} crop takes {buffer.tell()} bytes, more than the "
                        f"budget of {max_bytes}: raise --max-mib or lower --size"
                    )
                return count, total
            (out / f"crop{count:05d}.webp").write_bytes(buffer.getvalue())
            count += 1
            total += buffer.tell()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder for the bank (e.g. .devdata/train)")
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels")
    parser.add_argument("--max-mib", type=float, default=20.0, help="stop before the bank exceeds this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None,
                        help="folder holding train/ (default: $BENCH_DATA or ../shared/datasets)")
    parser.add_argument("--train-folders", type=folder_list, default=None, metavar="A,B",
                        help="crop these folders of train/ only (default: all of them)")


def run(args: argparse.Namespace) -> None:
    """The command line: the bank from the options, then how many crops it holds."""
    count, total = write_crop_bank(
        Path(args.data_root) / "train", Path(args.out), args.size, int(args.max_mib * 2**20), args.seed,
        args.train_folders,
    )
    print(f"{count} crops of {args.size}² in {args.out} ({total / 2**20:.1f} MiB)")
