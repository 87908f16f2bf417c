"""`python -m bench.train mean-scale` trains a few steps on tiny images and resumes exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ARGS = ["--lmbda", "0.0067", "--N", "16", "--M", "24", "--crop", "64", "--batch", "2", "--threads", "1",
        "--val-every", "2", "--val-images", "1",
        "--decay-fraction", "0"]  # no lr drop, so that 3 + 2 steps and 5 steps follow one schedule


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "train").mkdir()
    (root / "kodak").mkdir()
    for index in range(3):
        pixels = rng.integers(0, 256, (72, 80, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "train" / f"t{index}.png")
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / "kodak" / "kodim01.png")
    return root


def train(data_root: Path, out: Path, steps: int) -> str:
    command = [sys.executable, "-m", "bench.train", "mean-scale", *ARGS, "--steps", str(steps),
               "--data-root", str(data_root), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def load(out: Path) -> dict:
    return torch.load(out / "last.pt", map_location="cpu", weights_only=False)


def test_trains_checkpoints_validates_and_resumes_exactly(data_root, tmp_path):
    run = tmp_path / "run"
    log = train(data_root, run, 3)
    state = load(run)
    assert state["step"] == 3 and state["config"]["N"] == 16 and state["config"]["lmbda"] == 0.0067
    assert "step 2: kodak[:1]" in log and "bpp" in log and "dB" in log  # validation printed
    assert state["model"]["g_a.0.weight"].shape == (16, 3, 5, 5)

    log = train(data_root, run, 5)
    assert "resumed" in log and "at step 3" in log
    resumed = load(run)
    assert resumed["step"] == 5
    assert not torch.equal(resumed["model"]["g_a.0.weight"], state["model"]["g_a.0.weight"])

    # Killing after step 3 and resuming loses nothing: same weights as five steps in one go.
    straight = tmp_path / "straight"
    train(data_root, straight, 5)
    reference = load(straight)["model"]
    assert all(torch.equal(resumed["model"][key], reference[key]) for key in reference)
