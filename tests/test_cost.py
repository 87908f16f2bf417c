"""Cost measurement: peak memory (this process and child processes), model size on disk, parameter
counts, their way into records and the report's cost table; and the fast MS-SSIM the runner uses."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.codec import Codec, CodecInfo, Encoded
from bench.measuring.cost import ResourceProbe, model_bytes, parameter_summary
from bench.measuring.metrics import ms_ssim_rgb
from bench.registry import _REGISTRY, register_codec
from bench.running.runner import Job, run_job
from bench.storage.store import RunStore


def run_job_json(job: Job) -> list[dict]:
    """``run_job``'s records in their ``records.jsonl`` form, as the assertions here read them."""
    return [record.to_json() for record in run_job(job)]

linux_only = pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="RSS sampling reads /proc")


@linux_only
def test_probe_sees_a_transient_allocation_in_this_process() -> None:
    with ResourceProbe() as probe:
        block = np.ones(96 * 2**20, np.uint8)  # touched: resident
        time.sleep(0.06)
        del block
    result = probe.result()
    assert result["peak_rss_delta_mib"] >= 90
    assert result["peak_memory_mib"] >= 90
    assert result["memory_samples"] >= 3


@linux_only
def test_probe_with_nothing_allocated_reports_little() -> None:
    import multiprocessing

    multiprocessing.active_children()  # reap workers earlier tests left, or their exit would count here
    # a process that earlier tests started and that lives on (multiprocessing's resource tracker after
    # a spawn pool) is this process's child: the probe rightly counts it, so only its absence is checked
    tasks = Path("/proc/self/task").iterdir()
    children = any((task / "children").read_text().split() for task in tasks if (task / "children").exists())
    with ResourceProbe() as probe:
        time.sleep(0.03)
    result = probe.result()
    assert result["peak_memory_mib"] < 16
    assert "cuda_peak_mib" not in result
    assert children or "child_peak_rss_mib" not in result


@linux_only
def test_probe_sees_a_child_process_memory_and_cpu() -> None:
    script = "import time; b = bytearray(80 * 2**20); time.sleep(0.15)"
    with ResourceProbe() as probe:
        subprocess.run([sys.executable, "-c", script], check=True)
    result = probe.result()
    assert result["child_peak_rss_mib"] >= 80
    assert result["peak_memory_mib"] >= 80
    assert result["child_cpu_s"] > 0


def test_model_bytes_per_quality_in_both_description_styles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    monkeypatch.setenv("BENCH_WEIGHTS", str(zoo))
    (zoo / "ms-q1.pth.tar").write_bytes(b"x" * 100)
    (zoo / "ms-q2.pth.tar").write_bytes(b"x" * 250)
    mean_scale_style = {"source": "bench", "file": "ms-q1.pth.tar ms-q2.pth.tar", "qualities": "1 2"}
    assert model_bytes(mean_scale_style, 1) == 100
    assert model_bytes(mean_scale_style, 2) == 250
    assert model_bytes(mean_scale_style) == 350
    (tmp_path / "el-q2.pt").write_bytes(b"y" * 40)
    compass_style = {"file": f"q1: {zoo / 'ms-q1.pth.tar'}, q2: {tmp_path / 'el-q2.pt'}",
                     "bl_file": "q1: ms-q1.pth.tar, q2: ms-q2.pth.tar"}
    assert model_bytes(compass_style, 2) == 40 + 250  # the EL weights and the BL they sit on
    assert model_bytes({"file": "gone.pth"}, 1) is None
    assert model_bytes({}, 1) is None


def test_parameter_summary_adds_a_total() -> None:
    assert parameter_summary({"bl": 10, "liff": 5, "rc": 7}) == {"bl": 10, "liff": 5, "rc": 7, "total": 22}
    assert parameter_summary({"g_a": 3, "total": 3}) == {"g_a": 3, "total": 3}
    assert parameter_summary({}) is None


class _Weighted(Codec):
    """A lossless codec with a tiny torch 'model', its weights file and per-module parameters."""

    info = CodecInfo(scalable=False, default_qualities=(1,))
    weights_path: Path

    def __init__(self, arg=None, source=None, device="cpu") -> None:
        super().__init__(arg, source, device)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 3, 1))

    def parameter_counts(self) -> dict[str, int]:
        return {f"layer{i}": sum(p.numel() for p in m.parameters()) for i, m in enumerate(self.net)}

    def weights_info(self) -> dict[str, str]:
        return {"source": "test", "file": str(self.weights_path)}

    def encode(self, layers, quality: int) -> Encoded:
        (image,) = layers
        scratch = np.ones((24 * 2**20,), np.uint8)  # 24 MiB working memory, touched, held long
        time.sleep(0.03)  # enough for the sampler (every 5 ms) to see it
        del scratch
        data = np.array(image.shape[:2], ">u2").tobytes() + image.tobytes()
        return Encoded(data, [len(data)])

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        height, width = np.frombuffer(data[:4], ">u2")
        return [np.frombuffer(data[4:], np.uint8).reshape(height, width, 3).copy()]


def test_records_carry_costs_and_the_report_cost_table_shows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"w" * 1234)
    monkeypatch.setattr(_Weighted, "weights_path", weights, raising=False)
    register_codec("cost-weighted")(_Weighted)
    try:
        image = tmp_path / "im.png"
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(image)
        records = run_job_json(Job("cost-weighted", "images", "im.png", str(image), (2.0,), "top", 1))
    finally:
        _REGISTRY.pop("cost-weighted", None)
    expected_params = {"layer0": 3 * 4 * 9 + 4, "layer1": 4 * 3 + 3}
    for r in records:
        extra = r["extra"]
        assert extra["params"] == {**expected_params, "total": sum(expected_params.values())}
        assert extra["model_bytes"] == 1234
        assert "job_codec_s" in extra
        if Path("/proc/self/statm").exists():
            assert extra["peak_memory_mib"] >= 20 and extra["memory_samples"] >= 2

    from bench.report.load import load_records
    from bench.report.tables import cost_table

    store = RunStore(tmp_path / "run")
    store.open_for_writing()
    store.append(records)
    table = cost_table(load_records([tmp_path / "run"])).set_index("codec")
    assert table.loc["cost-weighted", "params"] == sum(expected_params.values())
    if Path("/proc/self/statm").exists():
        assert table.loc["cost-weighted", "peak_memory_mib"] >= 20


# --- the float32 MS-SSIM the runner computes, against the reference implementation in float64 ---

def _reference_ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    from pytorch_msssim import ms_ssim

    x = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].double()
    y = torch.from_numpy(np.array(b)).permute(2, 0, 1)[None].double()
    return float(ms_ssim(x, y, data_range=255.0))


@pytest.mark.parametrize("shape", [(161, 170), (171, 233), (192, 256)])
@pytest.mark.parametrize("noise", [1, 8, 40])
def test_fast_ms_ssim_matches_pytorch_msssim_in_float64(shape: tuple[int, int], noise: int) -> None:
    rng = np.random.default_rng(noise)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    smooth = np.stack([x * 255 // shape[1], y * 255 // shape[0], (x * y) % 256], axis=-1)
    reference = np.clip(smooth + rng.integers(-30, 31, (*shape, 3)), 0, 255).astype(np.uint8)
    distorted = np.clip(reference.astype(int) + rng.integers(-noise, noise + 1, reference.shape), 0, 255)
    distorted = distorted.astype(np.uint8)
    value, note = ms_ssim_rgb(reference, distorted)
    assert note == ""
    assert value == pytest.approx(_reference_ms_ssim(reference, distorted), abs=1e-6)
    assert ms_ssim_rgb(reference, reference) == (1.0, "")
