"""`python -m bench.train mean-scale` trains a few steps on tiny images and resumes exactly."""

from __future__ import annotations

import os
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


def train(data_root: Path, out: Path, steps: int, *extra: str, env: dict | None = None, ok: bool = True) -> str:
    command = [sys.executable, "-m", "bench.train", "mean-scale", *ARGS, "--steps", str(steps),
               "--data-root", str(data_root), "--out", str(out), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    assert (result.returncode == 0) == ok, result.stderr[-2000:]
    return result.stdout + result.stderr


def load(out: Path) -> dict:
    from bench.train.checkpoint import load_checkpoint

    return load_checkpoint(out / "last.pt")  # as the trainer resumes it: weights_only


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


def test_minutes_budget_and_a_rerun_of_a_finished_run_writes_nothing(data_root, tmp_path):
    run = tmp_path / "timed"
    log = train(data_root, run, 100_000, "--minutes", "0.003")  # ~0.2 s of training, not 100k steps
    state = load(run)
    assert 1 <= state["step"] < 100_000 and state["trained_seconds"] >= 0.18
    assert 0 < state["cpu_seconds"] <= 2 * state["trained_seconds"]  # one thread, plus a little for data
    assert "min of training" in log
    finished_at = (run / "last.pt").stat().st_mtime_ns
    assert "resumed" in train(data_root, run, 100_000, "--minutes", "0.003")
    assert (run / "last.pt").stat().st_mtime_ns == finished_at
    log = train(data_root, run, 100_000, ok=False)  # the same run on a --steps schedule: refused
    assert "schedule" in log and "Traceback" not in log
    assert "must be positive" in train(data_root, tmp_path / "never", 5, "--minutes", "0", ok=False)


def test_init_from_the_zoo_file_and_no_silent_switch_on_resume(data_root, tmp_path):
    from bench import zoo
    from bench.codecs.mean_scale import weights as ms_weights

    first = tmp_path / "first"
    train(data_root, first, 2)
    weights = tmp_path / "weights"
    model = ms_weights.build_mean_scale(16, 24)
    model.load_state_dict(load(first)["model"])
    model.update(force=True)
    zoo.write_weights("mean-scale", 3, zoo.half_precision(model.state_dict(), zoo.precision_keys(model)),
                      {"N": 16, "M": 24}, weights)
    env = {"BENCH_WEIGHTS": str(weights)}

    tuned = tmp_path / "tuned"
    log = train(data_root, tuned, 0, "--quality", "3", "--init-from", "zoo", env=env)
    assert "initialised from" in log
    exported = zoo.full_precision(zoo.load_weights("mean-scale", 3, root=weights)[0]["state_dict"])
    state = load(tuned)
    assert state["init_source"].startswith("mean-scale-q3-")
    assert torch.equal(state["model"]["g_a.0.weight"], exported["g_a.0.weight"])  # float16 → float32 exactly

    log = train(data_root, tuned, 1, "--init-from", str(first / "last.pt"), env=env, ok=False)
    assert "initial weights only apply to a fresh run" in log and "Traceback" not in log
    assert "needs --quality" in train(data_root, tmp_path / "x", 1, "--init-from", "zoo", ok=False)


def test_precision_is_recorded_in_the_checkpoint_and_the_exported_file(data_root, tmp_path):
    from bench.train.precision import bf16_problem

    run = tmp_path / "bf16"
    log = train(data_root, run, 2, "--precision", "bf16")
    expected = "fp32" if bf16_problem(torch.device("cpu")) else "bf16"
    assert load(run)["config"]["precision"] == expected
    assert ("falls back to fp32" in log) == (expected == "fp32")
    curve = [line for line in (run / "curve.jsonl").read_text().splitlines() if line]
    assert len(curve) == 1 and f'"precision": "{expected}"' in curve[0] and '"step": 2' in curve[0]
    from bench import zoo
    from bench.codecs.mean_scale.export import export_checkpoint

    exported = export_checkpoint(run / "last.pt", 3, tmp_path / "zoo", force_lambda=False)
    contents, _, _ = zoo.load_weights("mean-scale", 3, exported.parent)
    assert contents["config"]["train"]["precision"] == expected
