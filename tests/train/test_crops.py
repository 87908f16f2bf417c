"""`python -m bench.train crops`: a lossless, budget-bounded bank of training crops."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.errors import TrainingError
from bench.train.crops import write_crop_bank
from bench.train.data import CropSampler, list_training_images


def test_bank_is_lossless_round_robin_and_stays_under_budget(tmp_path):
    source = tmp_path / "train"
    source.mkdir()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8) for i in range(3)]
    for i, pixels in enumerate(images):
        Image.fromarray(pixels).save(source / f"{i}.png")
    Image.fromarray(images[0][:10, :10]).save(source / "tiny.png")  # smaller than a crop: skipped

    out = tmp_path / "bank"
    count, total = write_crop_bank(source, out, size=32, max_bytes=40_000, seed=0)
    files = sorted(out.glob("*.webp"))
    assert count == len(files) >= 3 and total == sum(f.stat().st_size for f in files) <= 40_000

    # every crop is a pixel-exact window of one source image (lossless), and the first three come
    # from three different images (round robin)
    def source_of(crop: np.ndarray) -> int:
        for index, pixels in enumerate(images):
            for top in range(pixels.shape[0] - 31):
                for left in range(pixels.shape[1] - 31):
                    if np.array_equal(pixels[top : top + 32, left : left + 32], crop):
                        return index
        raise AssertionError("crop is not a window of any source image")

    crops = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    assert sorted(source_of(c) for c in crops[:3]) == [0, 1, 2]
    assert all(c.shape == (32, 32, 3) for c in crops)

    # the training sampler reads the bank
    sampler = CropSampler(list_training_images(out), 32, seed=0)
    assert sampler.batch(2).shape == (2, 3, 32, 32)


def test_a_rebuilt_bank_replaces_the_old_one_and_a_too_small_budget_is_an_error(tmp_path):
    source = tmp_path / "train"
    source.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(source / "a.png")
    out = tmp_path / "bank"
    first, _ = write_crop_bank(source, out, size=32, max_bytes=60_000, seed=0)
    second, total = write_crop_bank(source, out, size=16, max_bytes=3_000, seed=1)
    files = sorted(out.glob("*.webp"))
    assert first > second == len(files) >= 1  # none of the 32² crops is left behind
    assert all(Image.open(f).size == (16, 16) for f in files)
    assert total <= 3_000

    with pytest.raises(TrainingError, match="more than the budget"):
        write_crop_bank(source, out, size=32, max_bytes=100, seed=0)
