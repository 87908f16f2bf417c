"""The learning curve of a mean-scale run: Kodak rate against the published model, per CPU-hour.

A trainer appends one validation point per ``--val-every`` steps to ``<out>/curve.jsonl``
(likelihood-estimated bpp and PSNR-RGB over the first ``--val-images`` Kodak images). One
point of one λ is not a curve, so each point is compared with CompressAI's published
mbt2018-mean curve (``../shared/reference/kodak-mbt2018-mean-mse.json``) at its own PSNR: the
published rate there comes from interpolating log-rate against PSNR (PCHIP, as BD-rate does),
and ``rate_vs_published`` is our rate over that one, minus 1. Over the four qualities this is
what a BD-rate averages; for one point it says how far that point is from the published curve.
CPU-hours are the CPU time the training steps got (``cpu_seconds``, measured by the process); points
written before it was recorded use training time (steps only) times the threads the run used.

    python -m bench.train curve ~/.cache/bench-train/ms-q3-bf16-c128 [RUN ...]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy.interpolate import PchipInterpolator

from bench.errors import TrainingError

REFERENCE = "kodak-mbt2018-mean-mse.json"


def published_curve(data_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(PSNR-RGB, bpp) of CompressAI's published mbt2018-mean on Kodak, sorted by PSNR."""
    path = data_root.parent / "reference" / REFERENCE
    if not path.is_file():
        raise TrainingError(f"the published curve is not at {path}")
    results = json.loads(path.read_text())["results"]
    order = np.argsort(results["psnr-rgb"])
    return np.asarray(results["psnr-rgb"])[order], np.asarray(results["bpp"])[order]


def rate_vs_published(bpp: float, psnr: float, reference: tuple[np.ndarray, np.ndarray]) -> float:
    """Our rate over the published rate at the same PSNR, minus 1 (NaN outside its PSNR range)."""
    psnrs, rates = reference
    if not psnrs[0] <= psnr <= psnrs[-1]:
        return math.nan
    published = math.exp(float(PchipInterpolator(psnrs, np.log(rates))(psnr)))
    return bpp / published - 1.0


def read_curve(run_dir: Path) -> list[dict]:
    path = run_dir / "curve.jsonl"
    if not path.is_file():
        raise TrainingError(f"no curve.jsonl in {run_dir} (a run validates every --val-every steps)")
    return current_branch([json.loads(line) for line in path.read_text().splitlines() if line.strip()])


def current_branch(points: list[dict]) -> list[dict]:
    """The points of the training history that ``last.pt`` continues. A run killed between two
    checkpoints resumes from the older one and validates those steps again: its new points replace
    the lost branch's points at the same or later steps."""
    kept: list[dict] = []
    for point in points:
        while kept and kept[-1]["step"] >= point["step"]:
            kept.pop()
        kept.append(point)
    return kept


def table(run_dir: Path, reference: tuple[np.ndarray, np.ndarray]) -> list[str]:
    lines = [f"{run_dir}", "   step  CPU-h   bpp     PSNR   vs published"]
    for point in read_curve(run_dir):
        cpu_hours = point.get("cpu_seconds", point["trained_seconds"] * point.get("threads", 1)) / 3600
        delta = rate_vs_published(point["bpp"], point["psnr"], reference)
        lines.append(f"{point['step']:7d}  {cpu_hours:5.2f}  {point['bpp']:.4f}  {point['psnr']:.2f}  "
                     f"{delta * 100:+7.1f} %  ({point.get('images', '?')} images, {point.get('precision', 'fp32')})")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="run folders holding curve.jsonl")
    parser.add_argument("--data-root", default=None,
                        help="folder holding kodak/ (the reference curve is in its ../reference/)")


def run(args: argparse.Namespace) -> None:
    reference = published_curve(Path(args.data_root))
    for run_dir in args.runs:
        print("\n".join(table(Path(run_dir), reference)))
