"""Runner: records from real x265 bitstreams, bit accounting, resume, failures, parallel workers."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bench.codec import Codec, CodecError, CodecInfo, Encoded
from bench.datasets import load_dataset
from bench.images import load_rgb
from bench.measuring.metrics import psnr_rgb
from bench.pyramid import build_pyramid
from bench.registry import _REGISTRY, create_codec, register_codec
from bench.running.runner import Job, execute, job_codec_time, plan_jobs, run_job
from bench.storage.records import Record
from bench.storage.store import RunStore
from tests.fake_codecs import RawCodec as _Raw


def run_job_json(job: Job) -> list[dict]:
    """``run_job``'s records in their ``records.jsonl`` form, as the assertions here read them."""
    return [record.to_json() for record in run_job(job)]

QUALITY = 32


def _jobs(folder: Path, codecs: Sequence[str], scales=((1.5,),), qualities=(QUALITY,)) -> list[Job]:
    dataset = load_dataset(str(folder))
    return plan_jobs(list(codecs), dataset.name, dataset.images, list(scales), "top",
                     {codec: list(qualities) for codec in codecs}, "cpu", 1)


def _essentials(records: list[dict]) -> list[tuple]:
    """What must not depend on how a run was executed (times do)."""
    return sorted((r["codec"], r["image"], tuple(r["scales"]), r["quality"], r["layer"], r["height"],
                   r["width"],
                   r["bits_layer"], r["bits_cum"], r["bpp"], r["psnr-rgb"], r["mode"]) for r in records)


def test_plan_covers_every_combination(make_image_folder) -> None:
    folder = make_image_folder(2)
    jobs = _jobs(folder, ["x265", "simulcast:x265"], scales=((1.5,), (1.33, 1.5)), qualities=(27, 37))
    assert len(jobs) == 2 * 2 * 2 * 2
    assert len({job.key for job in jobs}) == len(jobs)
    assert {job.image for job in jobs} == {"img00.png", "img01.png"}


def test_plan_starts_slow_external_codecs_first(make_image_folder) -> None:
    folder = make_image_folder(1)
    dataset = load_dataset(str(folder))
    jobs = plan_jobs(["x265", "shvc"], dataset.name, dataset.images, [(1.5,)], "top",
                     {"x265": [30], "shvc": [30]}, "cpu", 1)
    assert [job.codec for job in jobs] == ["shvc", "x265"]


def test_x265_single_layer_bits_equal_bitstream_bytes(make_image_folder, x265_ready) -> None:
    folder = make_image_folder(1, 48, 64)
    (job,) = _jobs(folder, ["x265"])
    records = run_job_json(job)
    layers = build_pyramid(load_rgb(folder / "img00.png"), (1.5,), "top")
    codec = create_codec("x265")
    assert [(r["layer"], r["height"], r["width"]) for r in records] == [(0, 32, 42), (1, 48, 64)]
    for r, layer in zip(records, layers, strict=True):
        encoded = codec.encode([layer], QUALITY)  # x265 here is deterministic (one thread)
        assert r["mode"] == "single" and r["num_layers"] == 2
        assert r["bits_layer"] == r["bits_cum"] == len(encoded.data) * 8
        assert r["bpp"] == pytest.approx(len(encoded.data) * 8 / (layer.shape[0] * layer.shape[1]), rel=1e-12)
        assert r["psnr-rgb"] == pytest.approx(psnr_rgb(layer, codec.decode(encoded.data)[0]), abs=1e-9)
        assert 25 < r["psnr-rgb"] < 60
        assert r["ms-ssim-rgb"] is None and "161" in r["extra"]["ms_ssim_note"]
        assert r["encode_time"] > 0 and r["decode_time"] > 0


def test_simulcast_bits_cum_sums_layer_chunks(make_image_folder, x265_ready) -> None:
    folder = make_image_folder(1, 48, 64)
    (job,) = _jobs(folder, ["simulcast:x265"], scales=((1.33, 1.5),))
    records = run_job_json(job)
    layers = build_pyramid(load_rgb(folder / "img00.png"), (1.33, 1.5), "top")
    encoded = create_codec("simulcast:x265").encode(layers, QUALITY)
    assert [r["layer"] for r in records] == [0, 1, 2]
    assert all(r["mode"] == "scalable" and r["num_layers"] == 3 for r in records)
    assert [r["bits_layer"] for r in records] == [n * 8 for n in encoded.layer_bytes]
    assert [r["bits_cum"] for r in records] == list(np.cumsum([r["bits_layer"] for r in records]))
    assert records[-1]["bits_cum"] == len(encoded.data) * 8  # the whole file, container headers included
    for r in records:
        assert r["bpp"] == pytest.approx(r["bits_cum"] / (r["height"] * r["width"]), rel=1e-12)
    # Simulcast's layer k costs at least the single-layer coding of the same image.
    single = create_codec("x265")
    for r, layer in zip(records, layers, strict=True):
        assert r["bits_layer"] > len(single.encode([layer], QUALITY).data) * 8


class _Failing(Codec):
    info = CodecInfo(scalable=False, default_qualities=(1,))

    def encode(self, layers, quality: int) -> Encoded:
        raise CodecError("deliberate failure for the test")

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        raise CodecError("never reached")


@pytest.fixture
def test_codecs():
    names = {"test-failing": _Failing, "test-raw": _Raw}
    for name, cls in names.items():
        register_codec(name)(cls)
    yield names
    for name in names:
        _REGISTRY.pop(name, None)


def test_failed_job_is_reported_and_not_recorded(make_image_folder, tmp_path: Path, test_codecs) -> None:
    folder = make_image_folder(2, 24, 32)
    (folder / "img01.png").write_bytes(b"damaged")  # an unreadable image fails only its own jobs
    jobs = _jobs(folder, ["test-failing", "test-raw"], qualities=(1,))
    store = RunStore(tmp_path / "run")
    store.open_for_writing()
    summary = execute(jobs, store)
    assert summary.planned == 4 and summary.done == 1 and summary.skipped == 0
    assert len(summary.failed) == 3
    errors = dict(summary.failed)
    assert "deliberate failure" in errors[f"test-failing|{folder}|img00.png|1.5|top|1"]
    assert "cannot read image" in errors[f"test-raw|{folder}|img01.png|1.5|top|1"]
    records = store.records()
    assert {(r["codec"], r["image"]) for r in records} == {("test-raw", "img00.png")}
    # The lossless codec: bits are exactly header + raw pixels; PSNR is infinite.
    assert [r["bits_layer"] for r in records] == [(4 + 16 * 21 * 3) * 8, (4 + 24 * 32 * 3) * 8]
    # A rerun retries only the failed jobs.
    again = execute(jobs, store)
    assert again.skipped == 1 and again.done == 0 and len(again.failed) == 3
    assert len(store.records()) == 2
    # Lossless layers read back from the store have PSNR inf (a float, not the string "inf").
    assert [r["psnr-rgb"] for r in store.records()] == [float("inf")] * 2


def test_jobs_give_records_and_their_codec_time_counts_every_repeat_once(make_image_folder, test_codecs) -> None:
    folder = make_image_folder(1, 24, 32)
    (job,) = _jobs(folder, ["test-raw"], qualities=(1,))
    job = dataclasses.replace(job, repeats=2)
    records = run_job(job)
    assert all(isinstance(r, Record) for r in records) and [r.layer for r in records] == [0, 1]
    seconds = records[0].extra.job_codec_s
    assert seconds is not None and seconds > 0 and records[1].extra.job_codec_s == seconds
    assert records[0].extra.repeats == 2 and records[0].extra.timing["encode"]["n"] == 2
    assert job_codec_time(records) == seconds
    assert job_codec_time(records, per_repeat=True) == pytest.approx(seconds / 2)  # what --dry-run scales
    assert run_job_json(job)[1]["extra"]["timing"]["repeats"] == 2  # the same records, in their JSON form
    # records that predate job_codec_s: one encode per scalable stream plus every prefix decode
    old = [dataclasses.replace(r, mode="scalable", encode_time=2.0, decode_time=0.5 * (k + 1), extra={})
           for k, r in enumerate(records)]
    assert job_codec_time(old) == pytest.approx(2.0 + 0.5 + 1.0) and job_codec_time([]) == 0.0


def test_resume_skips_finished_jobs(make_image_folder, tmp_path: Path, x265_ready) -> None:
    folder = make_image_folder(3, 24, 32)
    jobs = _jobs(folder, ["x265"])
    store = RunStore(tmp_path / "run")
    store.open_for_writing()
    first = execute(jobs[:2], store)
    assert (first.planned, first.skipped, first.done, first.failed) == (2, 0, 2, [])
    before = store.records_path.read_bytes()
    second = execute(jobs, store)
    assert (second.planned, second.skipped, second.done) == (3, 2, 1)
    assert store.records_path.read_bytes().startswith(before)  # old records untouched
    third = execute(jobs, store)
    assert (third.skipped, third.done) == (3, 0)
    keys = [(r["image"], r["layer"]) for r in store.records()]
    assert len(keys) == len(set(keys)) == 6


def test_two_workers_give_the_same_records_as_one(make_image_folder, tmp_path: Path, x265_ready) -> None:
    folder = make_image_folder(2, 24, 32)
    jobs = _jobs(folder, ["x265", "simulcast:x265"])
    serial, parallel = RunStore(tmp_path / "serial"), RunStore(tmp_path / "parallel")
    serial.open_for_writing()
    parallel.open_for_writing()
    assert execute(jobs, serial, workers=1).done == 4
    summary = execute(jobs, parallel, workers=2)
    assert summary.done == 4 and summary.failed == []
    assert _essentials(parallel.records()) == _essentials(serial.records())
    assert len(parallel.records()) == 8


# --- kill -9 and resume: a real `python -m bench run` killed at random points ---------------------


def _complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_killed_runs_resume_to_the_records_of_an_uninterrupted_run(make_image_folder, tmp_path: Path,
                                                                   x265_ready) -> None:
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    from bench.cli import main

    folder = make_image_folder(10, 48, 64)
    args = ["run", "--codecs", "x265", "--dataset", str(folder), "--scales", "1.5", "--qualities", "32",
            "--no-progress", "--threads", "1"]
    started = time.perf_counter()
    assert main(args + ["--out", str(tmp_path / "clean")]) == 0
    seconds_per_job = (time.perf_counter() - started) / 10
    clean = RunStore(tmp_path / "clean").records()
    assert len(clean) == 20

    out = tmp_path / "killed"
    records_path = out / "records.jsonl"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    command = [sys.executable, "-m", "bench", *args, "--out", str(out)]
    kills = starts = 0
    while kills < 3 and _complete_lines(records_path) < len(clean):
        before = _complete_lines(records_path)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        starts += 1
        try:
            deadline = time.monotonic() + 60
            while process.poll() is None and _complete_lines(records_path) <= before:
                assert time.monotonic() < deadline, "bench run wrote no record within 60 s"
                time.sleep(0.01)
            # then a random point within the next job: mid-encode, mid-write, between jobs
            time.sleep(rng.uniform(0.0, 1.0) * seconds_per_job)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                kills += 1
        finally:
            process.wait(timeout=60)
    assert kills >= 2, f"the run finished before it could be killed twice (seed {seed})"

    final = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert "0 failed" in final.stdout
    store = RunStore(out)
    resumed = store.records()
    assert records_path.read_bytes().endswith(b"\n")
    keys = [(r["image"], r["layer"]) for r in resumed]
    assert len(keys) == len(set(keys)), f"duplicate records after {kills} kills (seed {seed})"
    assert _essentials(resumed) == _essentials(clean), f"seed {seed}"
    assert len(store.manifest()["invocations"]) == starts + 1


class _PredictingRaw(Codec):
    """Scalable raw layers; reports each EL's height as its made-up diagnostic."""

    info = CodecInfo(scalable=True, default_qualities=(1,))

    def encode(self, layers, quality: int) -> Encoded:
        self._last = [layer.shape for layer in layers]
        chunks = [_Raw().encode([layer], quality).data for layer in layers]
        return Encoded(b"".join(chunks), [len(c) for c in chunks])

    def encode_diagnostics(self) -> list[dict[str, float]]:
        return [{}] + [{"psnr_liff": float(shape[0]), "psnr_bicubic": 1.0} for shape in self._last[1:]]

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        out, offset = [], 0
        while offset < len(data) and (num_layers is None or len(out) < num_layers):
            height, width = np.frombuffer(data[offset:offset + 4], ">u2")
            size = 4 + int(height) * int(width) * 3
            out.extend(_Raw().decode(data[offset:offset + size]))
            offset += size
        return out


def test_encode_diagnostics_land_in_the_records_of_their_layer(make_image_folder, tmp_path: Path) -> None:
    register_codec("test-predicting")(_PredictingRaw)
    try:
        folder = make_image_folder(1, 24, 32)
        (job,) = _jobs(folder, ["test-predicting"], scales=((1.5,),), qualities=(1,))
        records = run_job_json(job)
    finally:
        _REGISTRY.pop("test-predicting", None)
    assert [r["layer"] for r in records] == [0, 1]
    assert "diagnostics" not in records[0]["extra"]  # the BL has no prediction
    assert records[1]["extra"]["diagnostics"] == {"psnr_liff": 24.0, "psnr_bicubic": 1.0}


def test_records_report_the_threads_a_codec_codes_with(make_image_folder, test_codecs, x265_ready) -> None:
    folder = make_image_folder(1, 48, 64)
    for spec, expected in (("test-raw", 2), ("x265", 1), ("simulcast:x265", 1)):
        (job,) = _jobs(folder, [spec])
        job = dataclasses.replace(job, threads=2)
        assert {r["threads"] for r in run_job_json(job)} == {expected}, spec
