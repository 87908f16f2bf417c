"""`python -m bench.train crops`: a lossless, budget-bounded bank of training crops."""

from __future__ import annotations

import numpy as np
from PIL import Image

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
