"""Jobs and their execution: codec × image × scale combination × quality → per-layer records.

The parent process plans the jobs, skips those already in the run's records (resume), runs the rest
in-process or in a pool of worker processes, and is the only writer of records.
"""

from __future__ import annotations

import os
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from bench.codec import Codec
from bench.images import load_rgb
from bench.metrics import ms_ssim_rgb, psnr_rgb
from bench.pyramid import Anchoring, cached_pyramid
from bench.records import Record
from bench.registry import create_codec
from bench.store import RunStore, job_key

# External reference encoders are by far the slowest jobs: start them first so they do not
# become the tail of a parallel run.
SLOW_CODECS = ("shvc",)


@dataclass(frozen=True)
class Job:
    codec: str
    dataset: str
    image: str
    image_path: str
    scales: tuple[float, ...]
    anchor: str
    quality: int
    device: str = "cpu"
    threads: int = 1

    @property
    def key(self) -> str:
        return job_key(asdict(self) | {"scales": list(self.scales)})


def plan_jobs(codecs: Sequence[str], dataset_name: str, images: Sequence[Path],
              scale_sets: Sequence[tuple[float, ...]], anchor: str, qualities: dict[str, Sequence[int]],
              device: str, threads: int) -> list[Job]:
    jobs = [
        Job(codec, dataset_name, path.name, str(path), tuple(scales), anchor, int(quality), device, threads)
        for codec in codecs
        for scales in scale_sets
        for quality in qualities[codec]
        for path in images
    ]
    return sorted(jobs, key=lambda job: 0 if job.codec.split(":")[0] in SLOW_CODECS else 1)


_codec_cache: dict[tuple[str, str], Codec] = {}
_warmed_up: set[tuple[str, str]] = set()


def _codec_for(job: Job) -> Codec:
    key = (job.codec, job.device)
    if key not in _codec_cache:
        _codec_cache[key] = create_codec(job.codec, device=job.device)
    return _codec_cache[key]


def _timed(codec: Codec, function: Callable[[], Any]) -> tuple[Any, float]:
    codec.synchronize()
    start = time.perf_counter()
    result = function()
    codec.synchronize()
    return result, time.perf_counter() - start


def _warm_up(codec: Codec, layers: list[np.ndarray], quality: int) -> None:
    """One untimed encode/decode on small crops so that lazy loading is not counted as coding time."""
    key = (codec.spec, codec.device)
    if key in _warmed_up:
        return
    _warmed_up.add(key)
    side = 64
    crops = [np.ascontiguousarray(layer[: min(side * (k + 1), layer.shape[0]), : min(side * (k + 1), layer.shape[1])])
             for k, layer in enumerate(layers)]
    if not codec.scalable:
        crops = crops[:1]
    try:
        codec.decode(codec.encode(crops, quality).data)
    except Exception:  # noqa: BLE001 - the timed call reports real failures
        pass


def run_job(job: Job) -> list[dict[str, Any]]:
    """Run one job in this process and return its records (as JSON-ready dicts)."""
    import torch

    torch.set_num_threads(job.threads)
    codec = _codec_for(job)
    source = load_rgb(Path(job.image_path))
    layers = cached_pyramid(source, job.scales, job.anchor, name=job.image)
    _warm_up(codec, layers, job.quality)
    params = sum(v for k, v in codec.parameter_counts().items() if k != "total") or None
    extra_common: dict[str, Any] = {"params": params}
    if codec.weights_info():
        extra_common["weights"] = codec.weights_info()

    results = []  # (layer, bits_layer, bits_cum, recon, encode_time, decode_time, timings, mode)
    if codec.scalable:
        encoded, encode_time = _timed(codec, lambda: codec.encode(layers, job.quality))
        bits_cum = 0
        for k in range(len(layers)):
            decoded, decode_time = _timed(codec, lambda: codec.decode(encoded.data, k + 1))
            if len(decoded) != k + 1:
                raise RuntimeError(f"{job.codec} decoded {len(decoded)} layers when asked for {k + 1}")
            bits_layer = encoded.layer_bytes[k] * 8
            bits_cum += bits_layer
            results.append((k, bits_layer, bits_cum, decoded[k], encode_time, decode_time, encoded.timings, "scalable"))
    else:
        for k, layer in enumerate(layers):
            encoded, encode_time = _timed(codec, lambda: codec.encode([layer], job.quality))
            decoded, decode_time = _timed(codec, lambda: codec.decode(encoded.data, 1))
            bits = len(encoded.data) * 8
            results.append((k, bits, bits, decoded[0], encode_time, decode_time, encoded.timings, "single"))

    records = []
    for k, bits_layer, bits_cum, recon, encode_time, decode_time, timings, mode in results:
        target = layers[k]
        if recon.shape != target.shape or recon.dtype != np.uint8:
            raise RuntimeError(f"{job.codec} returned layer {k} as {recon.shape} {recon.dtype}, expected {target.shape} uint8")
        height, width = target.shape[:2]
        ms_ssim, ms_ssim_note = ms_ssim_rgb(target, recon)
        extra = dict(extra_common, timings=timings)
        if ms_ssim_note:
            extra["ms_ssim_note"] = ms_ssim_note
        records.append(Record(
            codec=job.codec, dataset=job.dataset, image=job.image, scales=list(job.scales),
            anchor=job.anchor, quality=job.quality, layer=k, num_layers=len(layers), height=height,
            width=width, bits_layer=bits_layer, bits_cum=bits_cum, bpp=bits_cum / (height * width),
            psnr_rgb=psnr_rgb(target, recon), ms_ssim_rgb=ms_ssim, encode_time=encode_time,
            decode_time=decode_time, mode=mode, device=job.device, threads=job.threads, extra=extra,
        ).to_json())
    return records


def run_job_safely(job: Job) -> JobOutcome:
    try:
        return job, run_job(job), None
    except Exception as error:  # noqa: BLE001 - reported per job; the run goes on
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        if os.environ.get("BENCH_DEBUG"):
            detail += "\n" + traceback.format_exc()
        return job, None, detail


@dataclass
class RunSummary:
    planned: int
    skipped: int
    done: int
    failed: list[tuple[str, str]]
    wall_time: float
    codec_time: float  # seconds spent inside codec calls, summed over finished jobs


JobOutcome = tuple[Job, "list[dict[str, Any]] | None", "str | None"]


class Executor(Protocol):
    """Runs jobs somewhere and yields each outcome (job, records or None, error or None) as it ends."""

    def run(self, jobs: Sequence[Job]) -> Iterator[JobOutcome]: ...


class LocalExecutor:
    """In this process (one worker) or in a pool of spawned worker processes."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers

    def run(self, jobs: Sequence[Job]) -> Iterator[JobOutcome]:
        if self.workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield run_job_safely(job)
            return
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn")) as pool:
            pending = {pool.submit(run_job_safely, job) for job in jobs}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()


def execute(jobs: Sequence[Job], store: RunStore, workers: int = 1,
            progress: Callable[[Iterable[Job], int], Any] | None = None,
            executor: Executor | None = None) -> RunSummary:
    """Run the jobs not yet in ``store``; append each finished job's records at once."""
    start = time.perf_counter()
    done_keys = store.completed_jobs()
    todo = [job for job in jobs if job.key not in done_keys]
    summary = RunSummary(len(jobs), len(jobs) - len(todo), 0, [], 0.0, 0.0)
    bar = progress(todo, len(todo)) if progress else None

    def finish(job: Job, records: list[dict[str, Any]] | None, error: str | None) -> None:
        if records is not None:
            store.append(records)
            summary.done += 1
            seen = set()
            for r in records:
                if r["mode"] == "scalable":
                    if "encode" not in seen:
                        summary.codec_time += r["encode_time"]
                        seen.add("encode")
                    summary.codec_time += r["decode_time"]
                else:
                    summary.codec_time += r["encode_time"] + r["decode_time"]
        else:
            summary.failed.append((job.key, error or "unknown error"))
        if bar is not None:
            bar.update(1)

    for outcome in (executor or LocalExecutor(workers)).run(todo):
        finish(*outcome)
    if bar is not None:
        bar.close()
    summary.wall_time = time.perf_counter() - start
    return summary


def anchor_text(anchor: str) -> str:
    return str(Anchoring.parse(anchor))
