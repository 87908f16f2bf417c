"""Results on disk: ``records.jsonl`` (one record per line) and ``manifest.json`` per run directory.

A store parses ``records.jsonl`` once and keeps the result while the file's bytes stay the same, so
the steps of one run (its checks, its resume, its plan) that ask for the records share one parse.

Each finished job's records are appended with a single ``write`` and ``fsync``, so a killed run
loses at most the job in flight; a torn last line (a kill mid-write) is cut off when the store is
reopened. Only the parent process writes, so parallel workers never interleave records, and only
one process writes to a run folder at a time: ``open_for_writing`` takes the folder's writer lock
(``bench.storage.runlock``) before it touches anything, and ``close`` gives it up.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from bench.errors import StoreError
from bench.pyramid import format_scales
from bench.storage.records import DISK_NAMES, FLOAT_KEYS, Record, RecordExtra
from bench.storage.runlock import RunLock

RECORDS_FILE = "records.jsonl"
MANIFEST_FILE = "manifest.json"
JOB_KEY_FIELDS = ("codec", "dataset", "image", "scales", "anchor", "quality")


def job_key(record_or_job: Record | Mapping[str, Any]) -> str:
    """The identity of the job that produced a record (a ``Record`` or a record or job in JSON form):
    codec × dataset × image × scales × anchor × quality."""
    if isinstance(record_or_job, Record):
        values = [getattr(record_or_job, field) for field in JOB_KEY_FIELDS]
    else:
        values = [record_or_job[field] for field in JOB_KEY_FIELDS]
    values[3] = format_scales(values[3])
    return "|".join(str(v) for v in values)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _encode_float(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null / strings that load back as floats."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _encode_float(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode_float(v) for v in value]
    return value


# Fields that _encode_float may have written as "inf"/"-inf" strings.
FLOAT_FIELDS = FLOAT_KEYS


def _decode_floats(record: dict[str, Any]) -> dict[str, Any]:
    for name in FLOAT_FIELDS:
        if record.get(name) in ("inf", "-inf"):
            record[name] = float(record[name])
    return record


def _record_problem(record: Any) -> str | None:
    """Why ``record`` is not a bench record (None when its identity fields are sound)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    missing = [name for name in (*JOB_KEY_FIELDS, "layer", "num_layers") if name not in record]
    if missing:
        return f"missing {', '.join(missing)}"
    if not all(isinstance(record[name], str) for name in ("codec", "dataset", "image", "anchor")):
        return "codec, dataset, image and anchor must be strings"
    if not all(isinstance(record[name], int) and not isinstance(record[name], bool)
               for name in ("quality", "layer", "num_layers")):
        return "quality, layer and num_layers must be integers"
    scales = record["scales"]
    if not isinstance(scales, list) or not all(
        isinstance(s, (int, float)) and not isinstance(s, bool) for s in scales
    ):
        return "scales must be a list of numbers"
    if not 0 <= record["layer"] < record["num_layers"]:
        return f"layer {record['layer']} is outside 0..num_layers-1"
    return None


def _parse_line(line: bytes) -> dict[str, Any] | None:
    """A last line that lacks its newline, as a JSON object, or None when it is not one (cut off)."""
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def _extra_of(record: Record | Mapping[str, Any]) -> RecordExtra:
    """A record's ``extra``, typed; a record in its JSON form whose ``extra`` is no object has none."""
    if isinstance(record, Record):
        return record.extra
    extra = record.get("extra")
    return RecordExtra.from_json(extra) if isinstance(extra, Mapping) else RecordExtra()


def recorded_weights_id(record: Record | Mapping[str, Any]) -> str | None:
    """The ``extra.weights_id`` a record was made with (None: the codec has no weights, or the record
    predates weights ids). ``record`` is a ``Record`` or its JSON form."""
    value = _extra_of(record).weights_id
    return value if isinstance(value, str) and value else None


def _codec_quality(record: Record | Mapping[str, Any]) -> tuple[str, int]:
    return (record.codec, record.quality) if isinstance(record, Record) else (record["codec"], record["quality"])


def weights_mismatches(records: Iterable[Record | Mapping[str, Any]], current: Mapping[tuple[str, int], str | None]
                       ) -> dict[tuple[str, int], dict[str, int]]:
    """Records made with other weights than their codec has now: ``(codec spec, quality) -> {the
    records' weights id: how many records}`` for each pair of ``current`` (``(spec, quality) -> the
    id of the weights that spec codes that quality with now``, ``Codec.weights_id``) whose records
    carry another id. Pairs whose current id is None are not compared. Records without
    ``extra.weights_id`` (written before bench recorded it) are not checked either: there is nothing
    to compare them with, and refusing them would strand every older run folder."""
    found: dict[tuple[str, int], dict[str, int]] = {}
    for record in records:
        pair = _codec_quality(record)
        now = current.get(pair)
        old = recorded_weights_id(record)
        # old is None: a record written before bench recorded weights ids (or of a codec without
        # weights) is not checked; now is None: the codec names no weights for it here
        if now is None or old is None or old == now:
            continue
        counts = found.setdefault(pair, {})
        counts[old] = counts.get(old, 0) + 1
    return found


def check_weights(run_dir: Path, records: Iterable[Record | Mapping[str, Any]],
                  current: Mapping[tuple[str, int], str | None]) -> None:
    """StoreError when ``records`` (the records of ``run_dir``) hold records of a (codec spec,
    quality) of ``current`` made with other weights than ``current`` names (``weights_mismatches``):
    resuming would put two models on one RD curve. Reads and writes nothing itself."""
    mismatches = weights_mismatches(records, current)
    if not mismatches:
        return
    specs = list(dict.fromkeys(spec for spec, _ in mismatches))
    problems = []
    for spec in specs:
        pairs = sorted(pair for pair in mismatches if pair[0] == spec)
        parts = []
        for pair in pairs:
            counts = mismatches[pair]
            old = ", ".join(f"{count} with weights {digest[:8]}" for digest, count in sorted(counts.items()))
            parts.append(f"quality {pair[1]}: {old}, now {str(current[pair])[:8]}")
        qualities = ", ".join(str(quality) for _, quality in pairs)
        total = sum(sum(mismatches[pair].values()) for pair in pairs)
        how_many = f"{total} record{'s' if total != 1 else ''}"
        problems.append(f"{how_many} of {spec} at quality {qualities} ({'; '.join(parts)})")
    raise StoreError(
        f"{run_dir} holds records made with other weights than the codecs code with now: {'; '.join(problems)}. "
        f"Resuming would mix two models in one RD curve: give this run a new --out, or remove the records "
        f"of {', '.join(specs)} from {Path(run_dir) / RECORDS_FILE} to code them again with the new weights"
    )


@dataclass
class Invocation:
    """One invocation's entry in a run folder's manifest, as ``bench run`` and ``bench check`` write
    it (``RunStore.write_manifest`` adds ``records_before`` and ``environment``; keys in this order)."""

    started: str  # local time, e.g. 2024-01-01T12:00:00+0100
    argv: list[str]  # the command line (empty when run from Python)
    dataset: dict[str, Any]  # {"name", "label", "images": how many}
    scales: list[str]  # the scale combinations, as --scales takes them
    anchor: str  # pyramid protocol: "top" or "base:0.25"
    device: str
    threads: int  # torch threads per job
    repeats: int  # timed runs of every codec call
    jobs: int  # parallel jobs
    scheduler: str | None  # Dask scheduler address, None for a local run
    yuv_matrix: str  # of PSNR-Y/YUV (bench.measuring.ycbcr)
    # spec -> {"available": True, "qualities", "scalable", "params", "weights"} or {"available": False,
    # "reason"}; bench check adds "deterministic" and, for available codecs, "fingerprint"
    codecs: dict[str, dict[str, Any]]
    check: dict[str, Any] | None = None  # bench check: its fixed configuration (CheckConfig.describe())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["check"] is None:
            del data["check"]
        return data


# Writer locks this process holds, per run folder, with how many open stores share each: a process
# may open its own folder twice (a resume in the same interpreter), another process may not.
_held_locks: dict[Path, list[Any]] = {}


class RunStore:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.records_path = self.run_dir / RECORDS_FILE
        self.manifest_path = self.run_dir / MANIFEST_FILE
        self._writing = False
        # what the last records() call left out of the file (a torn last line), for readers to say
        self.torn_tail: str | None = None
        # the last parse of records.jsonl: (digest of its bytes, records, torn tail, typed records)
        self._parsed: tuple[bytes | None, list[dict[str, Any]], str | None, list[Record] | None] | None = None

    def open_for_writing(self) -> None:
        """Take the folder's writer lock (RunFolderBusyError when another run holds it), then cut a
        torn tail left by a killed run and check that the folder can be written."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot write results to {self.run_dir}: {error.strerror or error}") from error
        if not self._writing:
            self._lock()
        try:
            self._repair_torn_tail()
            probe = self.run_dir / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            self.close()
            raise StoreError(f"cannot write results to {self.run_dir}: {error.strerror or error}") from error

    def _lock(self) -> None:
        key = self.run_dir.resolve()
        entry = _held_locks.get(key)
        if entry is None:
            lock = RunLock(self.run_dir)
            try:
                lock.acquire()
            except OSError as error:
                raise StoreError(f"cannot lock {lock.path}: {error.strerror or error}") from error
            entry = _held_locks[key] = [lock, 0]
        entry[1] += 1
        self._writing = True

    def close(self) -> None:
        """Give up this store's share of the writer lock (the lock goes when no store holds it)."""
        if not self._writing:
            return
        self._writing = False
        key = self.run_dir.resolve()
        entry = _held_locks.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del _held_locks[key]
                entry[0].release()

    @contextmanager
    def writing(self) -> Iterator["RunStore"]:
        """``open_for_writing`` for the duration of a ``with`` block, then ``close``."""
        self.open_for_writing()
        try:
            yield self
        finally:
            self.close()

    def _repair_torn_tail(self) -> None:
        """Cut a torn last write (a killed run) back to the last whole job.

        A job writes all its records in one write, so a torn write leaves a partial last line and
        possibly whole lines of the same job before it: both go, or the redone job's records would
        sit beside them as duplicates. A last line that lacks only its newline (a file written or
        edited by something else) is a whole record: it stays, and gets its newline, so that the
        next job's records start a line of their own."""
        if not self.records_path.exists():
            return
        with open(self.records_path, "rb+") as handle:
            data = handle.read()
            if not data or data.endswith(b"\n"):
                return
            end = data.rfind(b"\n") + 1
            whole_tail = _parse_line(data[end:]) is not None
            lines = data[:end].splitlines(keepends=True) + ([data[end:]] if whole_tail else [])
            tail_key, expected, count, cut = None, 0, 0, len(data) if whole_tail else end
            for line in reversed(lines):
                try:
                    record = json.loads(line)
                    key = job_key(record)
                except (ValueError, KeyError, TypeError):
                    break
                if tail_key is None:
                    tail_key, expected = key, record.get("num_layers", 0)
                if key != tail_key:
                    break
                count += 1
                cut -= len(line)
            if tail_key is not None and count < expected:
                handle.truncate(cut)  # the last job is incomplete: all of it goes, and it is redone
            elif whole_tail:
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
            else:
                handle.truncate(end)

    def append(self, records: Iterable[Record | dict[str, Any]]) -> None:
        """Append one job's records (``Record``s, or records already in their JSON form) atomically:
        one write, then fsync."""
        payload = "".join(
            json.dumps(_encode_float(r.to_json() if isinstance(r, Record) else r), default=_json_default,
                       sort_keys=True) + "\n"
            for r in records
        ).encode()
        if not payload:
            return
        try:
            fd = os.open(self.records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                start = os.lseek(fd, 0, os.SEEK_END)
                try:
                    written = os.write(fd, payload)
                    if written != len(payload):
                        raise OSError(28, "short write (disk full?)")
                    os.fsync(fd)
                except OSError:
                    # Leave no part of this job behind: a partial job's complete lines would be
                    # kept by the torn-tail repair and duplicated when the job is redone.
                    os.ftruncate(fd, start)
                    raise
            finally:
                os.close(fd)
        except OSError as error:
            raise StoreError(f"cannot append records to {self.records_path}: {error.strerror or error}") from error

    def records(self) -> list[dict[str, Any]]:
        """Every record of the folder in its JSON form, in order. A last line without its newline
        that is a whole record is one; one that is not (a run killed mid-write) is left out, and
        ``torn_tail`` says so (None when nothing was left out): that job is redone when the run
        resumes. The file is parsed again only when its bytes changed since the last call: the
        dicts are this store's, so copy one before changing it."""
        return list(self._parse()[1])

    def _parse(self) -> tuple[bytes | None, list[dict[str, Any]], str | None, list[Record] | None]:
        """The records of the file as it is now: (digest of its bytes or None when there is none,
        records, torn tail, typed records or None until asked for), parsed when the bytes changed."""
        try:
            data = self.records_path.read_bytes()
        except FileNotFoundError:
            data = None
        digest = None if data is None else hashlib.blake2b(data, digest_size=20).digest()
        if self._parsed is None or self._parsed[0] != digest:
            self._parsed = (digest, *self._parse_bytes(data or b""), None)
        self.torn_tail = self._parsed[2]
        return self._parsed

    def _parse_bytes(self, data: bytes) -> tuple[list[dict[str, Any]], str | None]:
        out = []
        for number, line in enumerate(io.BytesIO(data), 1):
            if not line.endswith(b"\n"):
                record = _parse_line(line)
                if record is None:
                    return out, self._torn_text(number, len(line))
            else:
                try:
                    record = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
                    raise StoreError(f"{self.records_path}:{number}: not a bench record ({error})") from error
            problem = _record_problem(record)
            if problem:
                raise StoreError(f"{self.records_path}:{number}: not a bench record ({problem})")
            out.append(_decode_floats(record))
        return out, None

    def _torn_text(self, number: int, size: int) -> str:
        return (f"{self.records_path}:{number}: left out an incomplete last line ({size} bytes, a run killed "
                "mid-write); resuming the run redoes its job")

    def check_tail(self) -> str | None:
        """What ``records()`` would leave out of the file (``torn_tail``) without parsing the rest."""
        if not self.records_path.is_file():
            return None
        data = self.records_path.read_bytes()
        last = data[data.rfind(b"\n") + 1 :]
        if not last or _parse_line(last) is not None:
            return None
        return self._torn_text(data.count(b"\n") + 1, len(last))

    def typed_records(self) -> list[Record]:
        """``records()`` as ``Record`` objects (StoreError for a record that lacks a field, or whose
        ``extra`` is no object), from the same parse."""
        digest, records, torn_tail, typed = self._parse()
        if typed is None:
            typed = []
            for number, record in enumerate(records, 1):
                try:
                    typed.append(Record.from_json(record))
                except TypeError as error:
                    raise StoreError(f"{self.records_path}:{number}: not a bench record ({error})") from error
            self._parsed = (digest, records, torn_tail, typed)
        return list(typed)

    def completed_jobs(self) -> set[str]:
        """Jobs whose every layer record is present (a job writes all its records at once)."""
        counts: dict[str, int] = {}
        expected: dict[str, int] = {}
        for record in self._parse()[1]:
            key = job_key(record)
            counts[key] = counts.get(key, 0) + 1
            expected[key] = record["num_layers"]
        return {key for key, count in counts.items() if count >= expected[key]}

    def write_manifest(self, invocation: Invocation | Mapping[str, Any]) -> dict[str, Any]:
        """Add this invocation (an ``Invocation``, or an entry in its JSON form) to the manifest (runs
        that resume add one entry each).

        Each invocation keeps its own environment (git commit, packages, machine) and
        ``records_before``, the number of records already written when it started: records are
        appended in order, so the records of invocation i are lines records_before[i] + 1 to
        records_before[i + 1] of records.jsonl, and every record can be traced to the code that
        wrote it. The top-level ``environment`` is the latest invocation's."""
        manifest = self.manifest()
        environment = environment_info()
        manifest.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        # one record per line, and open_for_writing has cut any torn tail: count lines, parse nothing
        records_before = self.records_path.read_bytes().count(b"\n") if self.records_path.exists() else 0
        manifest.setdefault("invocations", []).append(
            {**(invocation.to_json() if isinstance(invocation, Invocation) else invocation),
             "records_before": records_before, "environment": environment}
        )
        manifest["environment"] = environment
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(_encode_float(manifest), indent=1, default=_json_default))
        os.replace(tmp, self.manifest_path)
        return manifest

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {}
        try:
            manifest = json.loads(self.manifest_path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise StoreError(f"{self.manifest_path} is not valid JSON ({error})") from error
        if not isinstance(manifest, dict) or not isinstance(manifest.get("invocations", []), list):
            raise StoreError(f"{self.manifest_path} is not a bench manifest (a JSON object with a list of invocations)")
        return manifest


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment_info() -> dict[str, Any]:
    packages = {}
    for name in ("torch", "compressai", "numpy", "pandas", "scipy", "bjontegaard", "pytorch-msssim", "pillow"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "packages": packages,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count()},
    }


def _means_by_quality(by_quality: dict[int, list[Record]], field: str) -> list[float | None]:
    """Mean over images of ``field`` at each quality (ascending), None where no record has it."""
    values = []
    for quality in sorted(by_quality):
        xs = [getattr(r, field) for r in by_quality[quality] if getattr(r, field) is not None]
        values.append(sum(xs) / len(xs) if xs else None)
    return values


# the YUV metrics and MS-SSIM dB, exported when measured (under their records.jsonl keys, DISK_NAMES)
YUV_EXPORT = ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ms_ssim_db")


def export_eval_model(records: Iterable[Record | dict[str, Any]], out_dir: Path) -> list[Path]:
    """CompressAI ``eval_model`` JSON per (codec, dataset, scales, anchor, layer): mean over images."""
    groups: dict[tuple, dict[int, list[Record]]] = {}
    for item in records:
        r = item if isinstance(item, Record) else Record.from_json(item)
        key = (r.codec, r.dataset, tuple(r.scales), r.anchor, r.layer)
        groups.setdefault(key, {}).setdefault(r.quality, []).append(r)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (codec, dataset, scales, anchor, layer), by_quality in sorted(groups.items(), key=str):
        qualities = sorted(by_quality)

        scale_text = format_scales(scales) or "1"
        doc = {
            "name": codec,
            "description": f"bench: {codec} on {Path(dataset).name}, scales {scale_text} ({anchor}), layer {layer}",
            "quality": qualities,
            "results": {  # CompressAI's keys
                DISK_NAMES["psnr_rgb"]: _means_by_quality(by_quality, "psnr_rgb"),
                DISK_NAMES["ms_ssim_rgb"]: _means_by_quality(by_quality, "ms_ssim_rgb"),
                "bpp": _means_by_quality(by_quality, "bpp"),
                "encoding_time": _means_by_quality(by_quality, "encode_time"),
                "decoding_time": _means_by_quality(by_quality, "decode_time"),
            },
        }
        if any(r.psnr_yuv is not None for rs in by_quality.values() for r in rs):
            # CompressAI's video evaluation spells its YUV metrics so; MS-SSIM dB as bench report --metric
            doc["results"].update({DISK_NAMES[name]: _means_by_quality(by_quality, name) for name in YUV_EXPORT})
            doc["yuv_matrix"] = next(r.yuv_matrix for rs in by_quality.values() for r in rs if r.yuv_matrix)
        safe = f"{codec}_{Path(dataset).name}_s{scale_text}_{anchor}_L{layer}".replace(":", "-").replace("/", "-")
        path = out_dir / f"{safe}.json"
        path.write_text(json.dumps(_encode_float(doc), indent=1))
        written.append(path)
    return written
