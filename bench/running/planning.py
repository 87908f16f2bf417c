"""What a run will do and roughly how long it will take (``bench run --dry-run``).

The plan is the job list ``bench.running.runner.plan_jobs`` made (slow external codecs first), summarised per
codec × scale combination × quality, with how many jobs the run directory already holds.

The time estimate comes from the records already in the run directory: for each codec and layer
count, codec seconds per pixel = (sum over finished jobs of their encode + decode seconds, per
timed repeat) / (sum of their pixels over all layers). A job still to run is estimated as that rate
× its own pixels over all layers (from the image header and the pyramid's layer sizes) × its
repeats. Seconds are per job as the runner measured them (``bench.running.runner.job_codec_time``: every
encode and prefix decode), so codec start-up, metrics and the harness come on top; a codec with no previous
record in the run directory is "unknown" rather than guessed. Rates measured on another machine or
with other ``--threads`` carry over only roughly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.pyramid import format_scales, layer_sizes
from bench.running.runner import Job, job_codec_time
from bench.storage.records import Record
from bench.storage.store import RunStore, job_key


@dataclass
class PlanRow:
    codec: str
    scales: tuple[float, ...]
    quality: int
    jobs: int = 0
    done: int = 0
    estimate_s: float | None = 0.0  # seconds of the jobs still to run; None when unknown

    @property
    def todo(self) -> int:
        return self.jobs - self.done


@dataclass
class Plan:
    rows: list[PlanRow]
    history_jobs: int  # finished jobs in the run directory that the estimate is based on
    unknown: list[str] = field(default_factory=list)  # codecs with jobs to run but no history

    @property
    def jobs(self) -> int:
        return sum(row.jobs for row in self.rows)

    @property
    def done(self) -> int:
        return sum(row.done for row in self.rows)

    @property
    def estimate_s(self) -> float:
        """Seconds of the jobs to run whose codec has history (the unknown ones are not in it)."""
        return sum(row.estimate_s or 0.0 for row in self.rows)


def cost_rates(records: Iterable[Record]) -> dict[tuple[str, int | None], tuple[float, int]]:
    """Seconds per pixel and job count, per (codec, layer count) and per (codec, None) over all counts."""
    jobs: dict[str, list[Record]] = {}
    for record in records:
        jobs.setdefault(job_key(record), []).append(record)
    sums: dict[tuple[str, int | None], list[float]] = {}
    for job_records in jobs.values():
        if len(job_records) < job_records[0].num_layers:
            continue  # an incomplete job (cannot happen with one write per job, but be safe)
        pixels = sum(r.height * r.width for r in job_records)
        seconds = job_codec_time(job_records, per_repeat=True)
        codec, layers = job_records[0].codec, job_records[0].num_layers
        for key in ((codec, layers), (codec, None)):
            entry = sums.setdefault(key, [0.0, 0, 0])
            entry[0] += seconds
            entry[1] += pixels
            entry[2] += 1
    return {key: (s / p, int(n)) for key, (s, p, n) in sums.items() if p > 0}


def job_pixels(job: Job, _sizes: dict[str, tuple[int, int]] | None = None) -> int | None:
    """Pixels over all of the job's layers, from the image header (None when it cannot be read)."""
    from PIL import Image

    cache = _sizes if _sizes is not None else {}
    if job.image_path not in cache:
        try:
            with Image.open(job.image_path) as image:
                width, height = image.size
        except (OSError, ValueError):
            return None
        cache[job.image_path] = (height, width)
    height, width = cache[job.image_path]
    return sum(h * w for h, w in layer_sizes(height, width, job.scales, job.anchor))


def make_plan(jobs: Sequence[Job], store: RunStore) -> Plan:
    """Rows per codec × scales × quality in job order (slow codecs first), with done counts and
    time estimates from the records in ``store``."""
    history = store.typed_records()
    done_keys = store.completed_jobs() if history else set()
    rates = cost_rates(history)
    rows: dict[tuple[str, tuple[float, ...], int], PlanRow] = {}
    sizes: dict[str, tuple[int, int]] = {}
    unknown: list[str] = []
    for job in jobs:
        group = (job.codec, job.scales, job.quality)
        row = rows.setdefault(group, PlanRow(*group))
        row.jobs += 1
        if job.key in done_keys:
            row.done += 1
            continue
        rate = rates.get((job.codec, len(job.scales) + 1)) or rates.get((job.codec, None))
        pixels = job_pixels(job, sizes)
        if rate is None or pixels is None or row.estimate_s is None:
            row.estimate_s = None
            if job.codec not in unknown:
                unknown.append(job.codec)
            continue
        row.estimate_s += rate[0] * pixels * max(1, getattr(job, "repeats", 1))
    finished = len({job_key(r) for r in history})
    return Plan(list(rows.values()), finished, unknown)


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_plan(plan: Plan, run_dir: Path, workers: int = 1) -> str:
    """The table and total that ``--dry-run`` prints."""
    from tabulate import tabulate

    table = []
    for row in plan.rows:
        if row.todo == 0:
            estimate = "-"
        else:
            estimate = "unknown" if row.estimate_s is None else format_seconds(row.estimate_s)
        table.append([row.codec, format_scales(row.scales) or "1", row.quality, row.jobs,
                      row.done, row.todo, estimate])
    lines = [tabulate(table, headers=["codec", "scales", "quality", "jobs", "done", "to run", "est. time"],
                      tablefmt="simple", disable_numparse=True)]
    todo = plan.jobs - plan.done
    total = f"{plan.jobs} jobs planned, {plan.done} already in {run_dir}, {todo} to run"
    if todo == 0:
        lines.append(total + "; nothing to do")
        return "\n".join(lines)
    known = todo - sum(row.todo for row in plan.rows if row.estimate_s is None)
    if known:
        estimate = (f"estimated codec time {format_seconds(plan.estimate_s)} for {known} of them "
                    f"(from {plan.history_jobs} finished jobs in the run directory)")
        if workers > 1:
            estimate += f", about {format_seconds(plan.estimate_s / workers)} with {workers} parallel jobs"
    else:
        estimate = "estimated time unknown"
    if plan.unknown:
        estimate += f"; unknown for {', '.join(plan.unknown)} (no previous records of it in {run_dir})"
    lines.append(f"{total}; {estimate}")
    return "\n".join(lines)
