"""Jobs and their execution: codec × image × scale combination × quality → per-layer records.

The parent process plans the jobs, skips those already in the run's records (resume), runs the rest
in-process or in a pool of worker processes, and is the only writer of records.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from bench.codec import Codec, Encoded, synchronize
from bench.images import DEFAULT_MAX_PIXELS, load_rgb
from bench.measuring.complexity import LayerComplexity
from bench.measuring.cost import ResourceProbe, model_bytes, parameter_summary
from bench.measuring.metrics import ms_ssim_db, ms_ssim_rgb, psnr_rgb, psnr_yuv
from bench.measuring.timing import Repeated, repeat, spread
from bench.measuring.ycbcr import DEFAULT_YUV_MATRIX
from bench.pyramid import cached_pyramid
from bench.registry import create_codec, is_slow
from bench.storage.records import Record, RecordExtra
from bench.storage.store import RunStore, job_key


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
    repeats: int = 1  # timed runs of every codec call; records keep the median
    yuv_matrix: str = DEFAULT_YUV_MATRIX  # of PSNR-Y/YUV (bench.measuring.ycbcr); not part of the job's identity
    max_pixels: int = DEFAULT_MAX_PIXELS  # the largest picture it reads (bench.images); not part of its identity

    @property
    def key(self) -> str:
        return job_key(asdict(self) | {"scales": list(self.scales)})


def plan_jobs(codecs: Sequence[str], dataset_name: str, images: Sequence[Path],
              scale_sets: Sequence[tuple[float, ...]], anchor: str, qualities: dict[str, Sequence[int]],
              device: str, threads: int, repeats: int = 1, yuv_matrix: str = DEFAULT_YUV_MATRIX,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Job]:
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    jobs = [
        Job(codec, dataset_name, path.name, str(path), tuple(scales), anchor, int(quality), device, threads,
            repeats, yuv_matrix, max_pixels)
        for codec in codecs
        for scales in scale_sets
        for quality in qualities[codec]
        for path in images
    ]
    # codecs that declare themselves slow (external reference encoders) first, so that they do not
    # become the tail of a parallel run
    slow = {codec: is_slow(codec) for codec in codecs}
    return sorted(jobs, key=lambda job: 0 if slow[job.codec] else 1)


_codec_cache: dict[tuple[str, str], Codec] = {}
# Codec.complexity per (codec spec, device, quality, layer sizes): counted once per process
_complexity_cache: dict[tuple, "list[LayerComplexity] | None"] = {}
_warmed_up: set[tuple[str, str, int]] = set()

# Layer images of recent jobs, so that the qualities of one image do not decode its PNG again.
_LAYER_CACHE_BYTES = 256 * 2**20
_layer_cache: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()


def _codec_for(job: Job) -> Codec:
    key = (job.codec, job.device)
    if key not in _codec_cache:
        _codec_cache[key] = create_codec(job.codec, device=job.device)
    return _codec_cache[key]


def _layers_for(job: Job) -> list[np.ndarray]:
    """The job's pyramid, from memory when a recent job used the same image, scales and anchoring."""
    path = Path(job.image_path)
    stat = path.stat()
    # the limit too: a picture cached under a higher one must be refused again under a lower one
    key = (str(path), stat.st_mtime_ns, stat.st_size, tuple(job.scales), job.anchor, job.max_pixels)
    if key in _layer_cache:
        _layer_cache.move_to_end(key)
        return _layer_cache[key]
    layers = cached_pyramid(load_rgb(path, job.max_pixels), job.scales, job.anchor, name=job.image)
    for layer in layers:
        layer.setflags(write=False)  # shared between jobs: nobody may change it
    _layer_cache[key] = layers
    while len(_layer_cache) > 1 and sum(a.nbytes for v in _layer_cache.values() for a in v) > _LAYER_CACHE_BYTES:
        _layer_cache.popitem(last=False)
    return layers


def _warm_up(codec: Codec, layers: list[np.ndarray], quality: int) -> float | None:
    """One untimed encode/decode on small crops so that lazy loading is not counted as coding time.

    Once per quality: learned codecs load one model per quality, lazily. Returns the seconds it took
    (the codec's start-up cost, reported apart from coding time), or None when this process had
    already warmed the codec up at this quality.
    """
    key = (codec.spec, codec.device, quality)
    if key in _warmed_up:
        return None
    _warmed_up.add(key)
    side = 64
    crops = [np.ascontiguousarray(layer[: min(side * (k + 1), layer.shape[0]), : min(side * (k + 1), layer.shape[1])])
             for k, layer in enumerate(layers)]
    if not codec.info.scalable:
        crops = crops[:1]
    start = time.perf_counter()
    try:
        codec.decode(codec.encode(crops, quality).data)
    except Exception:  # noqa: BLE001 - the timed call reports real failures
        pass
    synchronize(codec.device)
    return time.perf_counter() - start


def _same_bytes(a: Encoded, b: Encoded) -> bool:
    return a.data == b.data and a.layer_bytes == b.layer_bytes


def _same_pixels(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


class _Decoded(list):
    """A decode call's layers, carrying the codec's split of that call (``Codec.last_decode_timings``)
    as ``timings``: ``repeat`` then gathers it from every run, as it does ``Encoded.timings``."""

    def __init__(self, layers: list[np.ndarray], timings: dict[str, float]) -> None:
        super().__init__(layers)
        self.timings = timings


def _decode(codec: Codec, data: bytes, num_layers: int) -> _Decoded:
    layers = codec.decode(data, num_layers)
    return _Decoded(layers, dict(codec.last_decode_timings))


@dataclass
class _Coded:
    """One layer's outcome before metrics: its bits, reconstruction and the timings that produced it."""

    layer: int
    bits_layer: int
    bits_cum: int
    recon: np.ndarray
    encode: Repeated
    decode: Repeated
    mode: str
    resources: dict[str, Any]
    diagnostics: dict[str, float] = field(default_factory=dict)


def _code_scalable(codec: Codec, layers: list[np.ndarray], job: Job) -> tuple[list[_Coded], float]:
    with ResourceProbe(job.device) as probe:
        encoded = repeat(codec, lambda: codec.encode(layers, job.quality), job.repeats, _same_bytes, "encode")
        diagnostics = codec.encode_diagnostics()  # off the clock, about the last (identical) encode
        decodes = []
        for k in range(len(layers)):
            decodes.append(repeat(codec, lambda k=k: _decode(codec, encoded.result.data, k + 1), job.repeats,
                                  _same_pixels, f"decode of layers 0..{k}"))
            if len(decodes[-1].result) != k + 1:
                raise RuntimeError(f"{job.codec} decoded {len(decodes[-1].result)} layers when asked for {k + 1}")
    coded, bits_cum = [], 0
    for k, decoded in enumerate(decodes):
        bits_layer = encoded.result.layer_bytes[k] * 8
        bits_cum += bits_layer
        coded.append(_Coded(k, bits_layer, bits_cum, decoded.result[k], encoded, decoded, "scalable", probe.result(),
                            diagnostics[k] if k < len(diagnostics) else {}))
    return coded, encoded.total + sum(d.total for d in decodes)


def _code_single(codec: Codec, layers: list[np.ndarray], job: Job) -> tuple[list[_Coded], float]:
    coded, seconds = [], 0.0
    with ResourceProbe(job.device) as probe:  # one probe per job: its peak is the largest layer's
        for k, layer in enumerate(layers):
            encoded = repeat(codec, lambda layer=layer: codec.encode([layer], job.quality), job.repeats,
                             _same_bytes, "encode")
            data = encoded.result.data
            decoded = repeat(codec, lambda data=data: _decode(codec, data, 1), job.repeats, _same_pixels, "decode")
            bits = len(data) * 8
            coded.append(_Coded(k, bits, bits, decoded.result[0], encoded, decoded, "single", {}))
            seconds += encoded.total + decoded.total
    for item in coded:
        item.resources = probe.result()
    return coded, seconds


def _complexity(codec: Codec, job: Job, layers: list[np.ndarray]) -> list[LayerComplexity | None]:
    """kMAC/pixel per layer as the codec counts it (None per layer where it cannot), from the cache
    after the first job with these sizes: a scalable codec counts its layers together, a
    single-layer codec each layer on its own (as the runner codes them)."""
    sizes = [(int(layer.shape[0]), int(layer.shape[1])) for layer in layers]
    streams = [sizes] if codec.info.scalable else [[size] for size in sizes]
    out: list[LayerComplexity | None] = []
    for stream in streams:
        key = (codec.spec, codec.device, job.quality, tuple(stream))
        if key not in _complexity_cache:
            _complexity_cache[key] = codec.complexity(stream, job.quality)
        counted = _complexity_cache[key]
        out.extend(counted if counted is not None else [None] * len(stream))
    return out


@contextmanager
def _metric_threads() -> Iterator[None]:
    """Metrics run on one torch thread: their values then do not depend on ``--threads`` (float
    reductions split over threads round differently), and on a busy two-core machine one thread
    was 2.5x faster than two for MS-SSIM (OpenMP threads wait on each other)."""
    import torch

    previous = torch.get_num_threads()
    if previous != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous != 1:
            torch.set_num_threads(previous)


def run_job(job: Job) -> list[Record]:
    """Run one job in this process and return its records, one per layer."""
    import torch

    torch.set_num_threads(job.threads)
    codec = _codec_for(job)
    layers = _layers_for(job)
    warmup = _warm_up(codec, layers, job.quality)
    coded, codec_seconds = (_code_scalable if codec.info.scalable else _code_single)(codec, layers, job)

    params = parameter_summary(codec.parameter_counts()) or None
    weights = codec.weights_info() or None
    job_extra = RecordExtra(
        job_codec_s=codec_seconds, warmup_s=warmup, params=params,
        weights=weights, model_bytes=model_bytes(weights, job.quality) if weights else None,
        # after coding: the id of the weights this job was coded with (the loaded model's); a resumed
        # run refuses records made with other weights (bench.api.check_resumable_weights)
        weights_id=codec.weights_id(job.quality),
    )

    complexity = _complexity(codec, job, layers)
    records = []
    with _metric_threads():
        for item in coded:
            target = layers[item.layer]
            recon = item.recon
            if recon.shape != target.shape or recon.dtype != np.uint8:
                raise RuntimeError(f"{job.codec} returned layer {item.layer} as {recon.shape} {recon.dtype}, "
                                   f"expected {target.shape} uint8")
            height, width = target.shape[:2]
            ms_ssim, ms_ssim_note = ms_ssim_rgb(target, recon)
            yuv = psnr_yuv(target, recon, job.yuv_matrix)
            kmac = complexity[item.layer]
            extra = replace(
                job_extra, timings=item.encode.internal_median(),
                # of the decode of layers 0..k (scalable)
                decode_timings=item.decode.internal_median() or None,
                timing={"repeats": job.repeats, "encode": spread(item.encode.seconds),
                        "decode": spread(item.decode.seconds)} if job.repeats > 1 else None,
                ms_ssim_note=ms_ssim_note or None, diagnostics=item.diagnostics or None,
            ).merged(item.resources)
            records.append(Record(
                codec=job.codec, dataset=job.dataset, image=job.image, scales=list(job.scales),
                anchor=job.anchor, quality=job.quality, layer=item.layer, num_layers=len(layers),
                height=height, width=width, bits_layer=item.bits_layer, bits_cum=item.bits_cum,
                bpp=item.bits_cum / (height * width), psnr_rgb=psnr_rgb(target, recon), ms_ssim_rgb=ms_ssim,
                encode_time=item.encode.median, decode_time=item.decode.median, mode=item.mode,
                device=job.device, threads=codec.coding_threads(job.threads),
                psnr_y=yuv.y, psnr_u=yuv.u, psnr_v=yuv.v, psnr_yuv=yuv.yuv, yuv_matrix=job.yuv_matrix,
                ms_ssim_db=ms_ssim_db(ms_ssim),
                encode_kmac_per_pixel=kmac.encode_kmac_per_pixel if kmac is not None else None,
                decode_kmac_per_pixel=kmac.decode_kmac_per_pixel if kmac is not None else None,
                extra=extra,
            ))
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
    warmup_time: float = 0.0  # codec start-up (first untimed call per process): neither coding nor harness

    @property
    def harness_time(self) -> float:
        """Seconds of wall time spent neither inside codec calls nor warming codecs up."""
        return max(0.0, self.wall_time - self.codec_time - self.warmup_time)

    @property
    def harness_overhead(self) -> float | None:
        """Share of wall time spent in the harness (a serial run's figure; workers overlap)."""
        return self.harness_time / self.wall_time if self.wall_time > 0 and self.done else None


JobOutcome = tuple[Job, "list[Record] | None", "str | None"]


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


def job_codec_time(records: Sequence[Record], per_repeat: bool = False) -> float:
    """Seconds inside codec calls of one finished job (its records): every timed repeat of every call
    (``extra.job_codec_s``), or with ``per_repeat`` the seconds of one timed run (the run's summary
    counts the former, ``bench run --dry-run``'s estimate the latter)."""
    if not records:
        return 0.0
    extra = records[0].extra
    repeats = extra.repeats if per_repeat else 1
    if extra.job_codec_s is not None:
        return float(extra.job_codec_s) / repeats
    # Records that predate job_codec_s: one encode per scalable stream plus every prefix decode;
    # single layers each (their times are medians: one timed run each).
    total, encoded = 0.0, False
    for record in records:
        if record.mode == "scalable":
            if not encoded:
                total += record.encode_time
                encoded = True
            total += record.decode_time
        else:
            total += record.encode_time + record.decode_time
    return total / repeats


def execute(jobs: Sequence[Job], store: RunStore, workers: int = 1,
            progress: Callable[[Iterable[Job], int], Any] | None = None,
            executor: Executor | None = None) -> RunSummary:
    """Run the jobs not yet in ``store``; append each finished job's records at once."""
    start = time.perf_counter()
    done_keys = store.completed_jobs()
    todo = [job for job in jobs if job.key not in done_keys]
    summary = RunSummary(len(jobs), len(jobs) - len(todo), 0, [], 0.0, 0.0)
    bar = progress(todo, len(todo)) if progress else None

    def finish(job: Job, records: list[Record] | None, error: str | None) -> None:
        if records is not None:
            store.append(records)
            summary.done += 1
            summary.codec_time += job_codec_time(records)
            summary.warmup_time += float((records[0].extra.warmup_s or 0.0) if records else 0.0)
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
