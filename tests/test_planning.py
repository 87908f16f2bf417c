"""Job planning: plan rows in run order with done counts, time estimates from a run directory's
records (rate per pixel × pixels × repeats), 'unknown' without history, and ``run --dry-run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.datasets import load_dataset
from bench.running.planning import Plan, PlanRow, cost_rates, format_plan, format_seconds, job_pixels, make_plan
from bench.running.runner import Job, plan_jobs
from bench.storage.records import Record
from bench.storage.store import RunStore


def _record(image: str, quality: int, scales: list[float], layer: int, sizes: list[tuple[int, int]],
            extra: dict, codec: str = "x265", encode: float = 0.0, decode: float = 0.0,
            mode: str = "single") -> dict:
    height, width = sizes[layer]
    return {"codec": codec, "dataset": "d", "image": image, "scales": scales, "anchor": "top",
            "quality": quality, "layer": layer, "num_layers": len(sizes), "height": height, "width": width,
            "bits_layer": 8, "bits_cum": 8, "bpp": 0.1, "psnr-rgb": 30.0, "ms-ssim-rgb": None,
            "encode_time": encode, "decode_time": decode, "mode": mode, "device": "cpu", "threads": 1,
            "extra": extra}


def _jobs(folder: Path, codecs=("x265",), scale_sets=((2.0,),), qualities=(32, 37), repeats: int = 1):
    dataset = load_dataset(str(folder))
    jobs = plan_jobs(list(codecs), "d", dataset.images, list(scale_sets), "top",
                     {c: list(qualities) for c in codecs}, "cpu", 1)
    return [Job(**{**j.__dict__, "repeats": repeats}) for j in jobs] if repeats != 1 else jobs


def test_estimates_scale_a_per_pixel_rate_from_previous_records(make_image_folder, tmp_path) -> None:
    folder = make_image_folder(2, 48, 64)  # img00, img01
    store = RunStore(tmp_path / "run")
    store.open_for_writing()
    sizes = [(24, 32), (48, 64)]  # 768 + 3072 = 3840 pixels
    # One finished job: 3.84 s over its two timed repeats -> 1.92 s per repeat -> 0.5 ms per pixel.
    extra = {"job_codec_s": 3.84, "timing": {"repeats": 2}}
    store.append([_record("img00.png", 32, [2.0], k, sizes, extra) for k in range(2)])

    jobs = _jobs(folder, scale_sets=((2.0,), (1.5, 2.0)), repeats=3)
    plan = make_plan(jobs, store)
    assert plan.history_jobs == 1 and plan.unknown == []
    rows = {(row.scales, row.quality): row for row in plan.rows}
    assert [(r.jobs, r.done) for r in plan.rows] == [(2, 1), (2, 0), (2, 0), (2, 0)]
    rate = 1.92 / 3840
    # scales 2, q32: img01 only (img00 is done); 3 repeats each
    assert rows[((2.0,), 32)].estimate_s == pytest.approx(rate * 3840 * 3)
    assert rows[((2.0,), 37)].estimate_s == pytest.approx(rate * 3840 * 3 * 2)
    # Three layers have no history: the codec's rate over all layer counts, times their pixels:
    # 48x64 + 24x32 + 16x21 (top / 2, top / 3, truncated) = 3072 + 768 + 336.
    assert job_pixels(jobs[-1]) == 4176
    assert rows[((1.5, 2.0), 37)].estimate_s == pytest.approx(rate * 4176 * 3 * 2)
    assert plan.estimate_s == pytest.approx(rate * 3 * (3840 * 3 + 4176 * 4))


def test_rates_per_layer_count_and_from_records_without_job_seconds() -> None:
    two = [(24, 32), (48, 64)]
    three = [(16, 21), (24, 32), (48, 64)]
    records = [_record("a.png", 32, [2.0], k, two, {"job_codec_s": 1.0}) for k in range(2)]
    # An older scalable record set: one encode for the stream plus every prefix decode.
    records += [_record("a.png", 32, [1.5, 2.0], k, three, {}, codec="x265", encode=2.0, decode=0.5 * (k + 1),
                        mode="scalable") for k in range(3)]
    rates = cost_rates([Record.from_json(r) for r in records])
    assert rates[("x265", 2)] == (pytest.approx(1.0 / 3840), 1)
    assert rates[("x265", 3)] == (pytest.approx((2.0 + 0.5 + 1.0 + 1.5) / 4176), 1)
    assert rates[("x265", None)] == (pytest.approx(6.0 / (3840 + 4176)), 2)


def test_codec_without_history_is_unknown_and_slow_codecs_come_first(make_image_folder, tmp_path) -> None:
    folder = make_image_folder(1, 48, 64)
    store = RunStore(tmp_path / "run")
    store.open_for_writing()
    store.append([_record("img00.png", 99, [2.0], k, [(24, 32), (48, 64)], {"job_codec_s": 0.384})
                  for k in range(2)])
    jobs = _jobs(folder, codecs=("x265", "shvc"), qualities=(32,))
    plan = make_plan(jobs, store)
    assert [row.codec for row in plan.rows] == ["shvc", "x265"]  # the external encoder first
    assert plan.rows[0].estimate_s is None and plan.unknown == ["shvc"]
    assert plan.rows[1].estimate_s == pytest.approx(0.384)
    text = format_plan(plan, tmp_path / "run", workers=2)
    lines = text.splitlines()
    assert lines[2].split() == ["shvc", "2", "32", "1", "0", "1", "unknown"]
    assert lines[3].split() == ["x265", "2", "32", "1", "0", "1", "0.4", "s"]
    assert "2 jobs planned, 0 already in" in lines[-1]
    assert "estimated codec time 0.4 s for 1 of them (from 1 finished jobs" in lines[-1]
    assert "about 0.2 s with 2 parallel jobs" in lines[-1]
    assert "unknown for shvc (no previous records" in lines[-1]


def test_format_seconds() -> None:
    assert format_seconds(4.26) == "4.3 s"
    assert format_seconds(125) == "2m05s"
    assert format_seconds(7325) == "2h02m"


def test_dry_run_prints_the_plan_and_writes_nothing(make_image_folder, tmp_path, capsys, x265_ready) -> None:
    folder = make_image_folder(2, 48, 64)
    out = tmp_path / "run"
    args = ["run", "--codecs", "x265", "--dataset", str(folder), "--scales", "2", "--qualities", "32,37",
            "--out", str(out), "--no-progress"]
    assert main(args + ["--dry-run"]) == 0
    first = capsys.readouterr().out
    assert not out.exists()  # nothing created, nothing run
    assert "4 jobs planned, 0 already in" in first and "estimated time unknown" in first
    assert [line.split()[-1] for line in first.splitlines()[2:4]] == ["unknown", "unknown"]

    assert main(args[:-5] + ["--qualities", "32", "--out", str(out), "--no-progress"]) == 0  # run q32 only
    capsys.readouterr()
    records_before = (out / "records.jsonl").read_bytes()
    manifest_before = json.loads((out / "manifest.json").read_text())
    assert main(args + ["--dry-run"]) == 0
    second = capsys.readouterr().out
    rows = [line.split() for line in second.splitlines()[2:4]]
    assert rows[0][:6] == ["x265", "2", "32", "2", "2", "0"] and rows[0][6] == "-"
    assert rows[1][:6] == ["x265", "2", "37", "2", "0", "2"] and rows[1][6] != "unknown"
    assert "4 jobs planned, 2 already in" in second and "from 2 finished jobs" in second
    # The dry run left the run directory as it was (no manifest entry, no records).
    assert (out / "records.jsonl").read_bytes() == records_before
    assert json.loads((out / "manifest.json").read_text()) == manifest_before


def test_a_single_layer_combination_is_shown_as_scales_1() -> None:
    text = format_plan(Plan([PlanRow("jpeg", (), 5, jobs=24), PlanRow("x265", (1.5, 2.0), 22, jobs=24)], 0),
                       Path("runs/x"))
    rows = {line.split()[0]: line.split()[1] for line in text.splitlines()[2:4]}
    assert rows == {"jpeg": "1", "x265": "1.5,2"}  # what --scales takes back
