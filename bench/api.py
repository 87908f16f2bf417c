"""bench from Python: every command of the command line as a function taking a typed config and
returning a typed result.

```python
from bench.api import RunConfig, report, run

result = run(RunConfig(codecs=["mean-scale", "x265", "simulcast:x265"], scales=["1.5"], limit=2))
print(result.summary.done, "jobs;", len(result.records()), "records in", result.out)
print(report([result.out], "reports").page)  # reports/report.md
```

``run`` validates the configuration (``RunConfig``) before any dataset or codec loads, then loads,
plans, writes the manifest and executes, holding the run folder's writer lock
(``RunStore.writing``); ``prepare`` and ``plan`` are its first steps on their own (what ``bench run
--dry-run`` prints). The other commands, imported when first named: ``encode_image`` and
``decode_file`` (``bench encode``/``decode``), ``check`` with ``CheckConfig`` (``bench check``),
``run_fuzz`` with ``FuzzConfig`` (``bench fuzz``), ``widen`` (``WidenConfig``) and ``export_weights``
(``ExportConfig``) of ``python -m bench.train``. What a codec's plugin folder brings is found
through the registry: ``trainer(NAME)`` (``python -m bench.train NAME``: mean-scale, compass) and
``command(NAME)`` (``bench NAME ...``: ``command("weights").function(command("weights").config("compressai"))``
fetches CompressAI's published weights; shm and vtm build reference software).
Errors are ``bench.errors.BenchError``s; nothing here prints or exits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from bench.codec import Codec, quality_problem
from bench.declared import MANIFEST_KEY, Declared
from bench.errors import UsageError
from bench.pyramid import format_scales
from bench.running.config import RunConfig
from bench.running.runner import Executor, Job, RunSummary, execute, plan_jobs
from bench.storage.records import Record
from bench.storage.store import Invocation, RunStore, check_weights, recorded_weights_id

# name -> (module, attribute): the commands beside run and report, imported on first use (training
# brings torch, fuzzing its workers)
_COMMANDS = {
    "encode_image": ("bench.tools.coding", "encode_image"), "EncodeResult": ("bench.tools.coding", "EncodeResult"),
    "decode_file": ("bench.tools.coding", "decode_file"), "DecodeResult": ("bench.tools.coding", "DecodeResult"),
    "check": ("bench.tools.check", "check"), "CheckConfig": ("bench.tools.check", "CheckConfig"),
    "CheckResult": ("bench.tools.check", "CheckResult"),
    "run_fuzz": ("bench.tools.fuzz", "run_fuzz"), "FuzzConfig": ("bench.tools.fuzz", "FuzzConfig"),
    "widen": ("bench.train.widen", "widen"), "WidenConfig": ("bench.train.widen", "WidenConfig"),
    "export_weights": ("bench.train.export", "export"), "ExportConfig": ("bench.train.export", "ExportConfig"),
}

__all__ = ["PreparedRun", "ReportResult", "RunConfig", "RunResult", "plan", "prepare", "report", "run",
           "command", "trainer", *_COMMANDS]


def trainer(name: str) -> Any:
    """The ``bench.registry.PluginTrainer`` a learned codec's plugin declares (``python -m bench.train
    NAME``): ``.train(.config(...))`` trains; UsageError naming the known ones otherwise."""
    from bench.registry import plugin_trainers

    found = plugin_trainers()
    if name not in found:
        raise UsageError(f"no plugin trains {name!r}; plugins with a trainer: {', '.join(sorted(found)) or 'none'}")
    return found[name]


def command(name: str) -> Any:
    """The ``bench.registry.PluginCommand`` a plugin declares (``bench NAME ...``): ``.function`` is
    the command as a function (of its ``.config`` class where it has one); UsageError naming the known
    ones otherwise."""
    from bench.registry import plugin_commands

    found = {declared.name: declared for declared in plugin_commands()}
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise UsageError(f"no plugin brings the command {name!r}; plugin commands: {known}")
    return found[name]


def __getattr__(name: str) -> Any:
    if name in _COMMANDS:
        import importlib

        module, attribute = _COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

ProgressFactory = Callable[[Iterable[Job], int], Any]


@dataclass
class PreparedRun:
    """A run's dataset, codecs and job list: everything ``run`` needs before it writes anything."""

    config: RunConfig
    dataset: Any  # bench.datasets.Dataset
    codecs: dict[str, Codec]  # every requested spec -> its instance, available or not
    unavailable: dict[str, str]  # spec -> why it cannot run here
    qualities: dict[str, list[int]]  # available spec -> the qualities it codes
    jobs: list[Job] = field(default_factory=list)

    @cached_property
    def store(self) -> RunStore:
        """The run folder. Every step of the run reads its records from this one store, which parses
        ``records.jsonl`` once (and again only if the file changes)."""
        return RunStore(self.config.out)

    @property
    def available(self) -> dict[str, Codec]:
        return {spec: codec for spec, codec in self.codecs.items() if spec not in self.unavailable}

    def manifest(self) -> Invocation:
        """This invocation's entry in the run folder's manifest."""
        config = self.config
        return Invocation(
            started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            argv=list(config.argv),
            dataset={"name": self.dataset.name, "label": self.dataset.label, "images": len(self.dataset.images)},
            scales=[format_scales(s) for s in config.scales],
            anchor=config.anchor,
            device=config.device,
            threads=config.coding_threads,
            repeats=config.repeats,
            jobs=config.jobs,
            scheduler=config.scheduler,
            yuv_matrix=config.yuv_matrix,
            codecs={
                # "declared": what reports pair this codec by (bench.declared), kept with the
                # records so that a report needs no plugin of the machine it runs on
                **{spec: {"available": True, "qualities": self.qualities[spec], "scalable": c.info.scalable,
                          "params": c.parameter_counts(), "weights": c.weights_info(),
                          MANIFEST_KEY: Declared.of_info(spec, c.info).to_json()}
                   for spec, c in self.available.items()},
                **{spec: {"available": False, "reason": reason} for spec, reason in self.unavailable.items()},
            },
        )


@dataclass
class RunResult:
    """What a run did: its summary (jobs run, skipped, failed, seconds) and where its records are."""

    summary: RunSummary
    out: Path
    unavailable: dict[str, str]

    @property
    def records_path(self) -> Path:
        return RunStore(self.out).records_path

    @property
    def records_note(self) -> str:
        """Where the records are, for the run's last line: a run whose every job failed (and that
        resumed no earlier records) wrote no file, and must not point at one."""
        path = self.records_path
        if path.is_file() and path.stat().st_size > 0:
            return f"records in {path}"
        return f"no records written ({path} does not exist)" if not path.exists() else f"no records in {path}"

    def records(self) -> list[Record]:
        """Every record of the run folder (earlier invocations included), typed."""
        return RunStore(self.out).typed_records()


def prepare(config: RunConfig, on_unavailable: Callable[[str, str], None] | None = None,
            require_available: bool = True) -> PreparedRun:
    """Load the dataset, create the codecs, check them against the configuration and plan the jobs.

    ``on_unavailable(spec, reason)`` hears about each codec that cannot run here as it is found (the
    command line prints it); with ``require_available`` a configuration none of whose codecs can
    run is an error."""
    from bench.datasets import load_dataset
    from bench.registry import create_codec

    dataset = load_dataset(config.dataset, config.data_root, config.limit)
    codecs: dict[str, Codec] = {}
    unavailable: dict[str, str] = {}
    for spec in config.codecs:
        codec = codecs[spec] = create_codec(spec, device=config.device)
        status = codec.availability()
        if not status.available:
            unavailable[spec] = status.reason
            if on_unavailable is not None:
                on_unavailable(spec, status.reason)
    available = {spec: codec for spec, codec in codecs.items() if spec not in unavailable}
    for spec, codec in available.items():
        limit = codec.info.max_layers
        if codec.info.scalable and limit is not None and any(len(s) + 1 > limit for s in config.scales):
            raise UsageError(f"{spec} codes at most {limit} layers; a scale combination asks for more")
    if require_available and not available:
        raise UsageError("none of the requested codecs is available here (see the reasons above)")
    qualities = {spec: config.qualities_for(spec, codec.info.default_qualities) for spec, codec in available.items()}
    for spec, codec in available.items():
        problems = [problem for q in qualities[spec] if (problem := quality_problem(codec, q))]
        if problems:
            raise UsageError(problems[0])
    prepared = PreparedRun(config, dataset, codecs, unavailable, qualities)
    _check_yuv_matrix(config, prepared.store)
    if available:
        _check_picture_sizes(dataset.images, config.max_pixels)
    prepared.jobs = plan_jobs(list(available), dataset.name, dataset.images, list(config.scales), config.anchor,
                              qualities, config.device, config.coding_threads, repeats=config.repeats,
                              yuv_matrix=config.yuv_matrix, max_pixels=config.max_pixels)
    return prepared


def _check_picture_sizes(images: Sequence[Path], max_pixels: int) -> None:
    """ImageError, before any job runs, for a picture above ``max_pixels``, from its header alone:
    one picture too large for memory would otherwise fail (or exhaust memory) minutes into a run,
    once per codec and quality. Every job checks again as it reads its picture."""
    from bench.images import ImageError, check_size, image_size

    for path in images:
        try:
            width, height = image_size(path, max_pixels=None)
        except ImageError:
            continue  # unreadable: its jobs fail with the reason and the others run, as before
        check_size(path, width, height, max_pixels)


def _check_yuv_matrix(config: RunConfig, store: RunStore) -> None:
    """A run folder (``store``) measures PSNR-Y/YUV with one matrix: a resume skips finished jobs, so
    another matrix would leave records that cannot be compared with each other."""
    found = {r.yuv_matrix for r in store.typed_records()} - {None, config.yuv_matrix}
    if found:
        raise UsageError(f"{config.out} holds records with PSNR-YUV in {', '.join(sorted(found))}; "
                         f"--yuv-matrix {config.yuv_matrix} needs another --out")


def check_resumable_weights(prepared: PreparedRun) -> None:
    """StoreError when the run folder holds records of a planned codec and quality made with other
    weights than the codec codes that quality with now (``bench.storage.store.check_weights``): a resume
    would skip those jobs and mix two models in one RD curve. Reads the folder, writes nothing;
    hashes weights files only for the (spec, quality) pairs that the folder holds records of."""
    store = prepared.store
    records = store.typed_records()
    held = {(r.codec, r.quality) for r in records if recorded_weights_id(r) is not None}
    if not held:
        return
    current = {(spec, quality): codec.weights_id(quality)
               for spec, codec in prepared.available.items()
               for quality in prepared.qualities[spec] if (spec, quality) in held}
    check_weights(store.run_dir, records, current)


def plan(config: RunConfig, on_unavailable: Callable[[str, str], None] | None = None) -> Any:
    """The job plan and a time estimate from the run folder's records (``bench.running.planning.Plan``);
    nothing is written. StoreError, as ``run`` would raise, when the folder holds records made with
    other weights (``check_resumable_weights``)."""
    from bench.running.planning import make_plan

    prepared = prepare(config, on_unavailable)
    check_resumable_weights(prepared)
    return make_plan(prepared.jobs, prepared.store)


def execute_prepared(prepared: PreparedRun, manifest: Invocation | None = None,
                     progress: ProgressFactory | None = None, executor: Executor | None = None) -> RunSummary:
    """Write the manifest entry (``prepared.manifest()`` unless given) and run the jobs not yet in
    the run folder, holding its writer lock throughout. Before anything is written (the lock, the
    manifest, a torn tail's repair) it refuses a folder that holds records made with other weights
    (``check_resumable_weights``). The folder's records are parsed once for all of it (again only
    when the file changed in between, e.g. when taking the lock cut a torn tail)."""
    check_resumable_weights(prepared)
    store = prepared.store
    with store.writing():
        store.write_manifest(manifest if manifest is not None else prepared.manifest())
        return execute(prepared.jobs, store, workers=prepared.config.jobs, progress=progress, executor=executor)


def run(config: RunConfig, progress: ProgressFactory | None = None, executor: Executor | None = None,
        on_unavailable: Callable[[str, str], None] | None = None) -> RunResult:
    """Run ``config`` (resuming: jobs whose records the folder holds are skipped) and say what happened.

    ``progress(todo, total)`` may return a progress bar (``update``/``close``); ``executor`` runs the
    jobs elsewhere (default: local processes, or the Dask cluster ``config.scheduler`` names)."""
    prepared = prepare(config, on_unavailable)
    if executor is None and config.scheduler:  # reach the cluster before the run folder is touched
        from bench.running.distributed import DaskExecutor

        executor = DaskExecutor(config.scheduler)
        executor.connect()
    summary = execute_prepared(prepared, progress=progress, executor=executor)
    return RunResult(summary, config.out, prepared.unavailable)


@dataclass
class ReportResult:
    """Where a report was written: its page (Markdown; the HTML page is beside it), any CompressAI
    ``eval_model`` files, and the tables themselves as DataFrames (``ReportTables``: summary,
    BD-rates, costs, glance tables), so that Python callers need not read the CSVs back."""

    page: Path
    eval_model: list[Path] = field(default_factory=list)
    # what the reader left out, one line each (a torn last line of a killed run's records.jsonl)
    notes: list[str] = field(default_factory=list)
    tables: Any = None  # bench.report.ReportTables (typed loosely: the report imports pandas)


def report(run_dirs: Sequence[Path | str], out: Path | str = Path("reports"),
           eval_model_json: bool = False, metric: str = "psnr-rgb", bootstrap: int | None = None,
           bd_average: str = "curves", latex: bool = False) -> ReportResult:
    """Tables, BD-rate tables and RD plots of ``run_dirs`` into ``out``, BD-rates and RD plots on the
    quality ``metric`` (``bench.measuring.rd_metrics``: psnr-rgb, psnr-y, psnr-yuv, ms-ssim-db). With
    ``eval_model_json`` also CompressAI ``eval_model`` JSON files into ``out/eval_model``. ``bootstrap``:
    resamples of the BD-rate intervals (None: the default, 2000; 0: none); ``bd_average``: curves or
    images, the BD-rate convention the tables lead with; ``latex``: also LaTeX tables."""
    from bench.errors import ReportError
    from bench.report.compute import compute_tables
    from bench.report.files import write_table_files
    from bench.report.page import page_blocks, write_page
    from bench.report.plots import draw_plots
    from bench.storage.store import export_eval_model

    run_dirs = [Path(d) for d in dict.fromkeys(run_dirs)]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file; the report needs a folder")
    for run_dir in run_dirs:
        if not (run_dir / "records.jsonl").is_file():
            raise ReportError(f"{run_dir} holds no records.jsonl; run `bench run --out {run_dir} ...` first")
    notes = [note for run_dir in run_dirs if (note := RunStore(run_dir).check_tail())]
    from bench.measuring.bdrate import DEFAULT_BOOTSTRAP

    tables = compute_tables(run_dirs, metric, DEFAULT_BOOTSTRAP if bootstrap is None else bootstrap, bd_average)
    out.mkdir(parents=True, exist_ok=True)
    write_table_files(tables, out, latex)
    page = write_page(page_blocks(tables, draw_plots(tables, out)), out)
    files: list[Path] = []
    if eval_model_json:
        records = [r for run_dir in run_dirs for r in RunStore(run_dir).typed_records()]
        files = export_eval_model(records, out / "eval_model")
    return ReportResult(page, files, notes, tables)
