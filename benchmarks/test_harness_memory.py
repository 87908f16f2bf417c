"""Peak memory of the harness's own work on a large picture: reading it, building its pyramid and
measuring every metric of every layer (``bench.running.runner.run_job``), per pixel of the picture.

A 9000x9000 PNG once took 17.2 GB in ``bench run`` (about 210 bytes per pixel, nearly all of it the
metrics' float planes of the whole picture; issue 27); the goal is at most ``GOAL_BYTES_PER_PIXEL``.
The job runs in a fresh process, with a codec that does no work of its own (its "bitstream" is 16
bytes, its reconstruction the picture with the lowest bit flipped: the one array any codec must
return), so that the peak is the harness's: the growth of the process's peak resident memory over
what it held before the job (Linux's VmHWM, reset through /proc/self/clear_refs), divided by the
picture's pixels. The picture is synthetic (gradients and noise), 6000x6000 unless
``BENCH_MEMORY_SIDE`` says otherwise, coded with the default scale 2 (two layers).

Run it alone: ``python -m pytest benchmarks/test_harness_memory.py --benchmark-only -s``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

GOAL_BYTES_PER_PIXEL = 40
SIDE = int(os.environ.get("BENCH_MEMORY_SIDE", "6000"))


def _status(field: str) -> int:
    """A ``/proc/self/status`` size in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _measure(path: str, side: int) -> dict:
    """In the child process: run one job on ``path`` and return its peak memory growth."""
    import torch

    from bench.codec import Codec, Encoded
    from bench.registry import register_codec
    from bench.running.runner import Job, run_job

    class _Free(Codec):
        """Costs (almost) nothing: what is measured is the harness around it."""

        scalable = False
        default_qualities = (1,)

        def encode(self, layers, quality: int) -> Encoded:
            self._last = layers[0]  # a reference, not a copy
            return Encoded(b"\0" * 16, [16])

        def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
            return [np.bitwise_xor(self._last, np.uint8(1))]

    register_codec("memory-probe")(_Free)
    torch.set_num_threads(1)
    job = Job("memory-probe", "synthetic", Path(path).name, path, (2.0,), "top", 1, max_pixels=side * side)
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS: the peak from here on
    records = [record.to_json() for record in run_job(job)]
    peak = _status("VmHWM")
    return {"pixels": side * side, "before": before, "peak": peak, "growth": peak - before,
            "bytes_per_pixel": (peak - before) / (side * side), "layers": len(records),
            "psnr_top": records[-1]["psnr-rgb"], "ms_ssim_top": records[-1]["ms-ssim-rgb"]}


@pytest.fixture(scope="module")
def large_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SIDE x SIDE RGB PNG: gradients and noise, written quickly (compression level 1)."""
    from PIL import Image

    path = tmp_path_factory.mktemp("large") / f"synthetic-{SIDE}.png"
    rng = np.random.default_rng(0)
    ramp = (np.arange(SIDE, dtype=np.uint16) * 200 // SIDE).astype(np.uint8)
    picture = np.empty((SIDE, SIDE, 3), np.uint8)
    for top in range(0, SIDE, 500):  # in bands: the parent process stays small too
        rows = slice(top, top + 500)
        band = picture[rows]
        band[..., 0] = ramp[None, :]
        band[..., 1] = ramp[rows, None]
        band[..., 2] = 100
        band += rng.integers(0, 50, band.shape, dtype=np.uint8)
    Image.fromarray(picture).save(path, compress_level=1)
    return path


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_peak_rss_per_pixel_of_the_harness(benchmark, large_png: Path, tmp_path: Path) -> None:
    environment = dict(os.environ, BENCH_CACHE=str(tmp_path / "cache"))  # a fresh pyramid cache
    command = [sys.executable, "-m", "benchmarks.test_harness_memory", str(large_png), str(SIDE)]
    root = Path(__file__).resolve().parents[1]

    def run() -> dict:
        done = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    benchmark.group = f"harness memory {SIDE}x{SIDE}"
    result = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(f"\nharness peak RSS growth on a {SIDE}x{SIDE} picture: {result['growth'] / 2**20:.0f} MiB, "
          f"{result['bytes_per_pixel']:.1f} bytes/pixel ({result['bytes_per_pixel']:.1f} MB per Mpx; "
          f"goal <= {GOAL_BYTES_PER_PIXEL})")
    assert result["layers"] == 2 and 0.9 < result["ms_ssim_top"] < 1
    assert result["bytes_per_pixel"] <= GOAL_BYTES_PER_PIXEL


if __name__ == "__main__":  # the child process of the benchmark
    print(json.dumps(_measure(sys.argv[1], int(sys.argv[2]))))
