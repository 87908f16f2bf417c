"""Latency measurement: synchronised timed calls, repeats with median and spread, determinism of
repeats, warm-up kept out of coding time and reported apart, codec-internal encode and decode
timings in records."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.codec import Codec, CodecInfo, Encoded, SectionClock
from bench.measuring.timing import NondeterministicCodecError, repeat, spread, timed
from bench.registry import _REGISTRY, register_codec
from bench.running import runner
from bench.running.runner import Job, RunSummary, execute, plan_jobs, run_job
from bench.storage.store import RunStore


def run_job_json(job: Job) -> list[dict]:
    """``run_job``'s records in their ``records.jsonl`` form, as the assertions here read them."""
    return [record.to_json() for record in run_job(job)]

SLEEP = 0.02


class _Sleepy(Codec):
    """Lossless raw codec that sleeps SLEEP seconds per encode and reports an internal timing."""

    info = CodecInfo(scalable=False, default_qualities=(1, 2))
    calls: list[str] = []

    def encode(self, layers, quality: int) -> Encoded:
        (image,) = layers
        time.sleep(SLEEP)
        self.calls.append(f"encode{image.shape[0]}x{image.shape[1]}")
        data = np.array(image.shape[:2], ">u2").tobytes() + image.tobytes()
        return Encoded(data, [len(data)], {"entropy": SLEEP / 2, "network": SLEEP / 4})

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        height, width = np.frombuffer(data[:4], ">u2")
        pixels = np.frombuffer(data[4 : 4 + int(height) * int(width) * 3], np.uint8)
        return [pixels.reshape(height, width, 3).copy()]


class _Drifting(_Sleepy):
    """Each encode appends a different trailing byte (which decode ignores): not deterministic."""

    counter = 0

    def encode(self, layers, quality: int) -> Encoded:
        _Drifting.counter += 1
        encoded = super().encode(layers, quality)
        data = encoded.data + bytes([_Drifting.counter % 256])
        return Encoded(data, [len(data)])


@pytest.fixture
def sleepy(monkeypatch: pytest.MonkeyPatch):
    register_codec("timing-sleepy")(_Sleepy)
    register_codec("timing-drifting")(_Drifting)
    monkeypatch.setattr(_Sleepy, "calls", [])
    yield
    for name in ("timing-sleepy", "timing-drifting"):
        _REGISTRY.pop(name, None)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "images"
    out.mkdir()
    rng = np.random.default_rng(3)
    for index in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(out / f"im{index}.png")
    return out


def _job(folder: Path, codec: str, quality: int = 1, repeats: int = 1, image: str = "im0.png") -> Job:
    return Job(codec, "images", image, str(folder / image), (2.0,), "top", quality, repeats=repeats)


def test_spread_median_quartiles_extremes() -> None:
    assert spread([5.0, 1.0, 3.0, 2.0, 4.0]) == {"n": 5, "median": 3.0, "min": 1.0, "max": 5.0, "q1": 2.0, "q3": 4.0}
    assert spread([0.5]) == {"n": 1, "median": 0.5, "min": 0.5, "max": 0.5, "q1": 0.5, "q3": 0.5}
    assert spread([1.0, 2.0])["median"] == 1.5
    with pytest.raises(ValueError):
        spread([])


def test_timed_synchronises_the_codecs_device_before_and_after(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.measuring.timing

    events: list[str] = []
    monkeypatch.setattr(bench.measuring.timing, "synchronize", lambda device: events.append(f"sync {device}"))
    codec = _Sleepy(device="cuda:1")

    def work() -> str:
        events.append("work")
        time.sleep(0.01)
        return "done"

    result, seconds = timed(codec, work)
    assert result == "done" and events == ["sync cuda:1", "work", "sync cuda:1"]
    assert 0.01 <= seconds < 0.5


def test_repeat_runs_n_times_and_rejects_a_changing_output() -> None:
    codec = _Sleepy()
    image = np.zeros((4, 6, 3), np.uint8)
    runs = repeat(codec, lambda: codec.encode([image], 1), 3, lambda a, b: a.data == b.data, "encode")
    assert len(runs.seconds) == 3 and all(s >= SLEEP for s in runs.seconds)
    assert runs.median == sorted(runs.seconds)[1] and runs.total == pytest.approx(sum(runs.seconds))
    assert runs.internal_median() == {"entropy": SLEEP / 2, "network": SLEEP / 4}
    drifting = _Drifting()
    with pytest.raises(NondeterministicCodecError, match="repeat 2.*--repeats 1"):
        repeat(drifting, lambda: drifting.encode([image], 1), 2, lambda a, b: a.data == b.data, "encode")
    with pytest.raises(ValueError):
        repeat(codec, lambda: None, 0, lambda a, b: True, "x")


def test_self_checks_inside_encode_are_reported_but_not_timed() -> None:
    def encode_then_verify() -> Encoded:
        time.sleep(SLEEP)  # coding
        began = time.perf_counter()
        time.sleep(4 * SLEEP)  # the codec decoding its own output to verify it
        return Encoded(b"x", [1], {"check_decode": time.perf_counter() - began, "network": SLEEP})

    runs = repeat(_Sleepy(), encode_then_verify, 2, lambda a, b: True, "encode")
    assert all(SLEEP <= s < 3 * SLEEP for s in runs.seconds)
    assert runs.internal_median()["check_decode"] >= 4 * SLEEP


def test_run_job_repeats_record_median_and_spread(sleepy, folder: Path) -> None:
    records = run_job_json(_job(folder, "timing-sleepy", repeats=3))
    assert [r["layer"] for r in records] == [0, 1]
    for r in records:
        timing = r["extra"]["timing"]
        assert timing["repeats"] == 3 and timing["encode"]["n"] == 3 and timing["decode"]["n"] == 3
        assert r["encode_time"] == timing["encode"]["median"] >= SLEEP
        assert timing["encode"]["min"] <= timing["encode"]["median"] <= timing["encode"]["max"]
        assert r["extra"]["timings"] == {"entropy": SLEEP / 2, "network": SLEEP / 4}
        assert r["psnr-rgb"] == float("inf")  # the raw codec is lossless: the first result is what is scored
    # 3 timed encodes per layer; a warm-up (once per process and quality) codes a crop of layer 0 only
    assert _Sleepy.calls.count("encode48x64") == 3 and _Sleepy.calls.count("encode24x32") in (3, 4)
    # the job's codec time covers every repeat of every call: 6 encodes of at least SLEEP each
    assert records[0]["extra"]["job_codec_s"] >= 6 * SLEEP


def test_single_run_has_no_spread_and_a_nondeterministic_codec_fails_with_repeats(sleepy, folder: Path) -> None:
    (r0, _) = run_job_json(_job(folder, "timing-sleepy"))
    assert "timing" not in r0["extra"] and r0["encode_time"] >= SLEEP
    run_job_json(_job(folder, "timing-drifting"))  # one run: nothing to compare, fine
    with pytest.raises(NondeterministicCodecError):
        run_job_json(_job(folder, "timing-drifting", quality=2, repeats=2))


def test_warm_up_is_reported_apart_once_per_quality(sleepy, folder: Path, tmp_path: Path) -> None:
    jobs = plan_jobs(["timing-sleepy"], "images", sorted(folder.glob("*.png")), [(2.0,)], "top",
                     {"timing-sleepy": [1, 2]}, "cpu", 1)
    store = RunStore(tmp_path / "run")
    store.open_for_writing()
    summary = execute(jobs, store)
    records = store.records()
    warmed = {(r["quality"], r["image"]) for r in records if "warmup_s" in r["extra"]}
    # This process warms each quality up once (earlier tests may have warmed quality 1 already).
    assert len({q for q, _ in warmed}) == len(warmed) and warmed
    assert summary.warmup_time == pytest.approx(
        sum(r["extra"]["warmup_s"] for r in records if "warmup_s" in r["extra"] and r["layer"] == 0))
    codec_time = sum(r["extra"]["job_codec_s"] for r in records if r["layer"] == 0)
    assert summary.codec_time == pytest.approx(codec_time)
    assert summary.codec_time >= len(jobs) * 2 * SLEEP  # two layers per job, each one encode
    assert summary.harness_time == pytest.approx(summary.wall_time - summary.codec_time - summary.warmup_time)
    assert 0 <= summary.harness_overhead < 1


def test_overhead_of_an_empty_summary_is_undefined() -> None:
    assert RunSummary(0, 0, 0, [], 0.0, 0.0).harness_overhead is None


def test_section_clock_charges_nested_sections_only_to_themselves() -> None:
    clock = SectionClock()
    start = time.perf_counter()
    with clock.section("network"):
        time.sleep(SLEEP)
        with clock.section("entropy"):
            time.sleep(SLEEP)
    with clock.section("entropy"):  # a key accumulates over its sections
        time.sleep(SLEEP)
    wall = time.perf_counter() - start
    assert set(clock.seconds) == {"network", "entropy"}
    assert SLEEP <= clock.seconds["network"] < 2 * SLEEP  # without the nested entropy section
    assert clock.seconds["entropy"] >= 2 * SLEEP
    assert clock.seconds["network"] + clock.seconds["entropy"] <= wall
    with pytest.raises(RuntimeError), clock.section("network"):  # a failing section still counts
        raise RuntimeError("boom")
    assert clock.seconds["network"] >= SLEEP


class _SplitDecoder(_Sleepy):
    """Reports a different decode split on every call (1, 2, 3, … seconds of ``entropy``)."""

    decodes = 0

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        self.last_decode_timings = {}
        layers = super().decode(data, num_layers)
        _SplitDecoder.decodes += 1
        self.last_decode_timings = {"entropy": float(_SplitDecoder.decodes), "network": 0.5}
        return layers


class _ScalableRaw(Codec):
    """Lossless scalable raw codec: layer after layer; decoding k layers reports k/10 s of entropy."""

    info = CodecInfo(scalable=True, default_qualities=(1,))

    def encode(self, layers, quality: int) -> Encoded:
        chunks = [np.array(im.shape[:2], ">u2").tobytes() + im.tobytes() for im in layers]
        return Encoded(b"".join(chunks), [len(c) for c in chunks])

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        self.last_decode_timings = {}
        out, offset = [], 0
        while offset < len(data) and (num_layers is None or len(out) < num_layers):
            height, width = (int(v) for v in np.frombuffer(data[offset : offset + 4], ">u2"))
            size = height * width * 3
            pixels = np.frombuffer(data[offset + 4 : offset + 4 + size], np.uint8)
            out.append(pixels.reshape(height, width, 3))
            offset += 4 + size
        self.last_decode_timings = {"entropy": len(out) / 10}
        return out


@pytest.fixture
def splitting(monkeypatch: pytest.MonkeyPatch):
    register_codec("timing-split-decoder")(_SplitDecoder)
    register_codec("timing-scalable-raw")(_ScalableRaw)
    monkeypatch.setattr(_SplitDecoder, "decodes", 0)
    # no warm-up decode: the decode calls counted below are then exactly the timed ones
    monkeypatch.setattr(runner, "_warm_up", lambda codec, layers, quality: None)
    yield
    for name in ("timing-split-decoder", "timing-scalable-raw"):
        _REGISTRY.pop(name, None)


def test_records_keep_the_median_decode_split_of_the_repeats(splitting, sleepy, folder: Path) -> None:
    records = run_job_json(_job(folder, "timing-split-decoder", repeats=3))
    # layer 0 is decoded by calls 1-3, layer 1 by calls 4-6: the medians are those of the 2nd and 5th
    assert [r["extra"]["decode_timings"] for r in records] == [
        {"entropy": 2.0, "network": 0.5}, {"entropy": 5.0, "network": 0.5}]
    assert records[0]["extra"]["timings"] == {"entropy": SLEEP / 2, "network": SLEEP / 4}  # encode, apart
    # a codec that does not split its decode gets no decode_timings at all
    assert all("decode_timings" not in r["extra"] for r in run_job_json(_job(folder, "timing-sleepy")))


def test_scalable_records_keep_the_decode_split_of_layers_0_to_k(splitting, folder: Path) -> None:
    records = run_job_json(_job(folder, "timing-scalable-raw"))
    assert [r["extra"]["decode_timings"] for r in records] == [{"entropy": 0.1}, {"entropy": 0.2}]
    assert all(r["psnr-rgb"] == float("inf") for r in records)


def test_codecs_that_do_not_split_decode_have_an_empty_read_only_default() -> None:
    codec = _Sleepy()
    assert dict(codec.last_decode_timings) == {}
    with pytest.raises(TypeError):
        codec.last_decode_timings["entropy"] = 1.0  # type: ignore[index]
