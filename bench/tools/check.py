"""``python -m bench check``: the regression gate. Rerun a small fixed configuration, compare it with
the baseline committed in ``bench/baselines/check.json``, print what moved, exit 1 on a regression.

What is compared, per record (codec × image × scales × quality × layer): the layer's bits, PSNR-RGB
and MS-SSIM-RGB; and per scale combination and layer the BD-rate of the pairs in ``BD_PAIRS``.
How strictly depends on whether the codec can be expected to reproduce its bytes here:

* ``exact``: bits identical, PSNR and MS-SSIM within 1e-6. Used when the codec is deterministic and
  its *fingerprint* (``Codec.fingerprint``: what its output depends on, e.g. an external encoder's
  version; torch, CompressAI, weights hashes and the CPU for learned codecs) is the baseline's.
* ``cross-machine``: bits within 0.2 %, PSNR within 0.01 dB, MS-SSIM within 2e-4. Used when a
  deterministic codec's fingerprint differs from the baseline's (another CPU or build): measured
  between an Intel Xeon and an AMD EPYC, the committed configuration moved by at most 0.05 % bits,
  0.0055 dB and 4e-5 MS-SSIM (x265's SIMD paths, float rounding in the learned codecs), while these
  limits still catch any real regression the gate exists for (0.04 dB fails).
* ``tolerance``: bits within 2 %, PSNR within 0.05 dB, MS-SSIM within 0.002. Used for codecs that
  declare themselves not deterministic (``CodecInfo.deterministic``: external reference software).

Which mode a codec gets comes from its code and this run, never from the baseline's flags: a
fingerprint or ``deterministic`` flag in the baseline that differs from this run's is listed as a
change beside the values, and a fingerprint change buys at most the cross-machine limits (an edited
fingerprint once bought a codec the 2 % limits). BD-rates must stay within ``BD_MARGIN`` percentage
points in every mode.

The gate cannot pass on nothing: an empty baseline is an error, and it fails when it compares fewer
codecs or records than the baseline holds (a codec unavailable here, a record or BD-rate the run
lacks, or one the baseline lacks) unless the missing codec is unavailable with a reason and
``--allow-missing`` names it. ``--update`` rewrites the baseline deliberately, after a change that
is meant to move the numbers; it refuses to write one with fewer codecs or records than the one it
replaces unless ``--force``, and never writes an empty one.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bench.codec import Codec
from bench.errors import CheckError, UsageError
from bench.pyramid import format_scales
from bench.storage.records import Record

DEFAULT_BASELINE = Path(__file__).resolve().parents[1] / "baselines" / "check.json"
FORMAT = 1
EXACT = {"bits": 0.0, "psnr": 1e-6, "ms_ssim": 1e-6}
CROSS_MACHINE = {"bits": 0.002, "psnr": 0.01, "ms_ssim": 2e-4}
TOLERANCE = {"bits": 0.02, "psnr": 0.05, "ms_ssim": 0.002}  # bits: relative; others: absolute
LIMITS = {"exact": EXACT, "cross-machine": CROSS_MACHINE}
BD_MARGIN = 0.5  # percentage points


@dataclass(frozen=True)
class CheckConfig:
    """The fixed configuration that the baseline describes (changing it requires ``--update``)."""

    dataset: str = "kodak"
    limit: int = 2
    scales: tuple[str, ...] = ("1.5", "1.33,1.5")
    anchor: str = "top"
    qualities: dict[str, tuple[int, ...]] = field(default_factory=lambda: {
        "x265": (32, 37),
        "simulcast:x265": (32, 37),
        "mean-scale": (1, 4),
        "simulcast:mean-scale": (1, 4),
        "compass": (1, 4),
        "shvc": (32, 37),
    })
    bd_pairs: tuple[tuple[str, str], ...] = (  # (test, anchor)
        ("simulcast:x265", "x265"),
        ("simulcast:mean-scale", "mean-scale"),
        ("compass", "simulcast:mean-scale"),
        ("shvc", "simulcast:x265"),
    )

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        data["qualities"] = {k: list(v) for k, v in self.qualities.items()}
        data["scales"] = list(self.scales)
        data["bd_pairs"] = [list(p) for p in self.bd_pairs]
        return data


# --- running the configuration -------------------------------------------------------------------

@dataclass
class CheckRun:
    records: list[Record]
    codecs: dict[str, dict[str, Any]]  # spec -> {"available", "reason", "fingerprint", "deterministic"}
    failed: list[tuple[str, str]]
    wall_time: float
    codec_time: float
    warmup_time: float


def run_configuration(config: CheckConfig, out: Path, data_root: Path | None = None, jobs: int = 1) -> CheckRun:
    """Run every available codec of ``config`` into the run directory ``out`` (which must be empty)."""
    from bench.api import RunConfig, execute_prepared, prepare
    from bench.storage.store import RunStore

    store = RunStore(out)
    if store.records_path.exists():
        raise CheckError(f"{out} already holds records; `bench check` needs a fresh folder (or no --out)")
    prepared = prepare(RunConfig(codecs=list(config.qualities), scales=config.scales, dataset=config.dataset,
                                 data_root=data_root, limit=config.limit, qualities=config.qualities,
                                 anchor=config.anchor, device="cpu", threads=1, jobs=jobs, out=out),
                       require_available=False)
    codecs: dict[str, dict[str, Any]] = {}
    for spec, codec in prepared.codecs.items():
        entry: dict[str, Any] = {"available": spec not in prepared.unavailable,
                                 "deterministic": codec.info.deterministic}
        if entry["available"]:
            entry["fingerprint"] = codec.fingerprint()
        else:
            entry["reason"] = prepared.unavailable[spec]
        codecs[spec] = entry
    invocation = prepared.manifest()
    invocation.check = config.describe()
    for spec, entry in codecs.items():  # what the gate compares, beside what bench run records
        invocation.codecs[spec] = {**invocation.codecs.get(spec, {}), **entry}
    summary = execute_prepared(prepared, manifest=invocation)
    records = prepared.store.typed_records()
    for spec, codec in prepared.available.items():  # weights are known once a model is loaded: refresh
        codecs[spec]["fingerprint"] = _fingerprint_after_run(codec, records, codecs[spec]["fingerprint"])
    return CheckRun(records, codecs, summary.failed, summary.wall_time, summary.codec_time, summary.warmup_time)


def _fingerprint_after_run(codec: Codec, records: list[Record], before: dict[str, str]) -> dict[str, str]:
    weights = next((r.extra.weights for r in records if r.codec == codec.spec and r.extra.weights), None)
    return codec.fingerprint(weights) if weights else before


# --- summarising and comparing -------------------------------------------------------------------

def _row_key(record: Record) -> str:
    return f"{record.codec}|{record.image}|{format_scales(record.scales)}|{record.quality}|{record.layer}"


def summarise(run: CheckRun, config: CheckConfig) -> dict[str, Any]:
    """The baseline document for a run: per-record values, BD-rates, codec fingerprints."""
    rows = {}
    for r in sorted(run.records, key=_row_key):
        rows[_row_key(r)] = {"bits": r.bits_layer, "psnr": r.psnr_rgb, "ms_ssim": r.ms_ssim_rgb}
    return {
        "format": FORMAT,
        "config": config.describe(),
        "codecs": {spec: {k: v for k, v in entry.items() if k != "reason"}
                   for spec, entry in run.codecs.items() if entry["available"]},
        "records": rows,
        "bdrate": bd_rates(run.records, config),
    }


def bd_rates(records: list[Record], config: CheckConfig) -> dict[str, float | None]:
    """BD-rate (percent) of every configured pair, per scale combination and layer >= 1."""
    from bench.measuring.bdrate import bd_rate

    curves: dict[tuple[str, str, int], dict[int, list[tuple[float, float]]]] = {}
    for r in records:
        curves.setdefault((r.codec, format_scales(r.scales), r.layer), {}).setdefault(r.quality, []).append(
            (r.bpp, r.psnr_rgb))
    out: dict[str, float | None] = {}
    for test, anchor in config.bd_pairs:
        for (codec, scales, layer), points in sorted(curves.items()):
            if codec != test or layer < 1 or (anchor, scales, layer) not in curves:
                continue
            a, t = _mean_curve(curves[(anchor, scales, layer)]), _mean_curve(points)
            result = bd_rate(a[0], a[1], t[0], t[1])
            out[f"{test} vs {anchor}|{scales}|{layer}"] = result.bd_rate if result.ok else None
    return out


def _mean_curve(by_quality: dict[int, list[tuple[float, float]]]) -> tuple[list[float], list[float]]:
    qualities = sorted(by_quality)
    rate = [sum(p[0] for p in by_quality[q]) / len(by_quality[q]) for q in qualities]
    psnr = [sum(p[1] for p in by_quality[q]) / len(by_quality[q]) for q in qualities]
    return rate, psnr


@dataclass
class Moved:
    codec: str
    what: str  # record key without the codec, or the BD pair
    field: str
    baseline: Any
    now: Any
    limit: str
    failed: bool


@dataclass
class Comparison:
    moved: list[Moved] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # codec -> why (unavailable and --allow-missing)
    missing: dict[str, str] = field(default_factory=dict)  # codec of the baseline not compared -> why: a failure
    modes: dict[str, str] = field(default_factory=dict)  # codec -> "exact" / "tolerance (why)"
    new: list[str] = field(default_factory=list)  # codecs available now but not in the baseline
    not_run: dict[str, str] = field(default_factory=dict)  # unavailable now and not in the baseline either
    compared: dict[str, int] = field(default_factory=dict)

    @property
    def failures(self) -> list[Moved]:
        return [m for m in self.moved if m.failed]


def _differs(field_name: str, old: Any, new: Any, limits: dict[str, float]) -> tuple[bool, bool, str]:
    """(moved at all, beyond the limit, the limit as text) for one value."""
    if old is None or new is None or (isinstance(old, float) and math.isnan(old)):
        same = old == new or (old is None and new is None)
        return (not same, not same, "equal")
    if isinstance(old, float) and math.isinf(old) or isinstance(new, float) and math.isinf(new):
        return (old != new, old != new, "equal")
    delta = abs(new - old)
    if field_name == "bits":
        limit = limits["bits"] * abs(old)
        text = "exact" if limits["bits"] == 0 else f"{limits['bits']:.1%}"
    else:
        limit = limits[field_name]
        text = f"{limit:g}"
    return (delta != 0, delta > limit, text)


def compare(baseline: dict[str, Any], current: dict[str, Any], run: CheckRun,
            allow_missing: frozenset[str] | set[str] = frozenset()) -> Comparison:
    """What moved between ``baseline`` and this run (``current``, ``summarise(run)``). A codec of the
    baseline that did not run here is ``skipped`` when it is unavailable with a reason and
    ``allow_missing`` names it, else ``missing`` (a failure)."""
    result = Comparison()
    base_codecs, now_codecs = baseline.get("codecs", {}), run.codecs
    for spec, old in base_codecs.items():
        now = now_codecs.get(spec)
        reason = (now.get("reason") or "").strip() if now else ""
        if now is None or not now["available"]:
            if now is not None and reason and spec in allow_missing:
                result.skipped[spec] = reason
            else:
                why = f"unavailable here: {reason or 'no reason given'}" if now else "not in the configuration"
                result.missing[spec] = why
            continue
        # the mode follows the codec's code; the baseline's flags and fingerprint can only be reported
        result.modes[spec] = "exact" if now["deterministic"] else "tolerance (external reference software)"
        if old.get("deterministic", True) != now["deterministic"]:
            result.moved.append(Moved(spec, "codec", "deterministic", old.get("deterministic"), now["deterministic"],
                                      "reported", False))
        old_print, now_print = old.get("fingerprint") or {}, now.get("fingerprint") or {}
        for name in sorted(set(old_print) | set(now_print)):
            if old_print.get(name) != now_print.get(name):
                result.moved.append(Moved(spec, "codec", f"fingerprint {name}", old_print.get(name),
                                          now_print.get(name), "reported", False))
                if result.modes[spec] == "exact":
                    result.modes[spec] = "cross-machine"
    result.new = sorted(spec for spec, entry in now_codecs.items() if entry["available"] and spec not in base_codecs)
    result.not_run = {spec: entry.get("reason", "unavailable") for spec, entry in now_codecs.items()
                      if not entry["available"] and spec not in base_codecs}

    failed_jobs = {key.split("|")[0] for key, _ in run.failed}
    for key, old in baseline.get("records", {}).items():
        spec, rest = key.split("|", 1)
        if spec in result.skipped or spec in result.missing:
            continue
        if spec not in base_codecs:  # records without their codec's entry: nothing says how to compare
            result.moved.append(Moved(spec, rest, "record", "no codec entry", "-", "codec entry", True))
            continue
        limits = LIMITS.get(result.modes.get(spec, ""), TOLERANCE)
        new = current["records"].get(key)
        result.compared[spec] = result.compared.get(spec, 0) + 1
        if new is None:
            why = "job failed" if spec in failed_jobs else "missing"
            result.moved.append(Moved(spec, rest, "record", "present", why, "present", True))
            continue
        for name in ("bits", "psnr", "ms_ssim"):
            moved, beyond, limit = _differs(name, old[name], new[name], limits)
            if moved:
                result.moved.append(Moved(spec, rest, name, old[name], new[name], limit, beyond))
    for key in sorted(set(current["records"]) - set(baseline.get("records", {}))):
        spec, rest = key.split("|", 1)
        if spec in base_codecs:  # the baseline holds fewer records of a codec than the run makes
            result.moved.append(Moved(spec, rest, "record", "absent", "present", "in the baseline", True))
    checked = set(base_codecs) - set(result.skipped) - set(result.missing)
    for key in sorted(set(current["bdrate"]) - set(baseline.get("bdrate", {}))):
        test, anchor = key.split("|")[0].split(" vs ")
        if {test, anchor} <= checked:
            result.moved.append(Moved(test, key, "bd-rate %", "absent", current["bdrate"][key], "in the baseline",
                                      True))
    for key, old in baseline.get("bdrate", {}).items():
        pair = key.split("|")[0]
        test, anchor = pair.split(" vs ")
        if not {test, anchor} <= checked:
            continue
        new = current["bdrate"].get(key)
        if new is None or old is None:
            if new != old:
                result.moved.append(Moved(test, key, "bd-rate %", old, new, "defined", True))
            continue
        if new != old:
            result.moved.append(Moved(test, key, "bd-rate %", old, new, f"±{BD_MARGIN:g} pt",
                                      abs(new - old) > BD_MARGIN))
    return result


# --- output --------------------------------------------------------------------------------------

def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _delta_text(old: Any, new: Any, name: str) -> str:
    if not isinstance(old, (int, float)) or not isinstance(new, (int, float)):
        return ""
    if name == "bits" and old:
        return f"{new - old:+d} ({(new - old) / old:+.2%})"
    return f"{new - old:+.2e}"


def _short(reason: str, limit: int = 160) -> str:
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def render(comparison: Comparison, run: CheckRun) -> str:
    from tabulate import tabulate

    lines = []
    for spec, mode in comparison.modes.items():
        count = comparison.compared.get(spec, 0)
        moved = sum(1 for m in comparison.moved if m.codec == spec)
        failed = sum(1 for m in comparison.moved if m.codec == spec and m.failed)
        state = "FAIL" if failed else "ok"
        lines.append(f"  {spec:<22} {state:<4} {count} records, {moved} values moved, {failed} beyond limits; {mode}")
    for spec, why in comparison.missing.items():
        lines.append(f"  {spec:<22} FAIL in the baseline, {_short(why)} (--allow-missing {spec} to pass without "
                     "it where it is unavailable with a reason)")
    for spec, reason in comparison.skipped.items():
        lines.append(f"  {spec:<22} skip unavailable here (--allow-missing): {_short(reason)}")
    for spec, reason in comparison.not_run.items():
        lines.append(f"  {spec:<22} skip unavailable here and not in the baseline: {_short(reason)}")
    for spec in comparison.new:
        lines.append(f"  {spec:<22} new  not in the baseline (run `python -m bench check --update` to add it)")
    text = "codecs:\n" + "\n".join(lines)
    if comparison.moved:
        table = [[m.codec, m.what, m.field, _fmt(m.baseline), _fmt(m.now), _delta_text(m.baseline, m.now, m.field),
                  m.limit, "FAIL" if m.failed else ("changed" if m.limit == "reported" else "ok")]
                 for m in comparison.moved]
        shown = sorted(table, key=lambda row: (row[-1] != "FAIL", row[0], row[1]))
        text += "\n\nwhat moved (codec | image|scales|quality|layer, or BD pair|scales|layer):\n"
        text += tabulate(shown, headers=["codec", "where", "field", "baseline", "now", "change", "limit", "status"],
                         disable_numparse=True)
    else:
        text += "\n\nnothing moved."
    for key, error in run.failed:
        text += f"\nfailed job {key}: {error}"
    return text


# --- command line --------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE,
                        help="baseline file (default: bench/baselines/check.json)")
    parser.add_argument("--update", action="store_true", help="rewrite the baseline from this run (deliberately)")
    parser.add_argument("--strict", action="store_true",
                        help="a codec of the baseline that is unavailable here is a failure even when "
                             "--allow-missing names it")
    parser.add_argument("--allow-missing", action="append", default=[], metavar="SPECS",
                        help="comma list of codecs of the baseline that may be missing here, when they are "
                             "unavailable with a reason (e.g. shvc without SHM); any other missing codec fails")
    parser.add_argument("--force", action="store_true",
                        help="with --update: write the baseline even when it holds fewer codecs or records than "
                             "the one it replaces")
    parser.add_argument("--out", type=Path, help="keep the run in this folder (new, or holding no records.jsonl yet); "
                             "default: a temp folder")
    parser.add_argument("--data-root", type=Path,
                        help="folder holding kodak/ (default: $BENCH_DATA or ../shared/datasets)")
    parser.add_argument("--jobs", type=int, default=1, help="jobs run in parallel worker processes")


def load_baseline(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckError(f"no baseline at {path}; write one with `python -m bench check --update`")
    try:
        baseline = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckError(f"{path} is not a bench check baseline (not JSON: {error})") from None
    if not isinstance(baseline, dict) or baseline.get("format") != FORMAT:
        found = baseline.get("format") if isinstance(baseline, dict) else None
        raise CheckError(f"{path} has format {found}, expected {FORMAT}; rerun --update")
    if not isinstance(baseline.get("records"), dict) or not isinstance(baseline.get("codecs"), dict):
        raise CheckError(f"{path} is not a bench check baseline (no records or codecs object); rerun --update")
    if not baseline["records"] or not baseline["codecs"]:
        raise CheckError(f"{path} is an empty baseline ({len(baseline['codecs'])} codecs, "
                         f"{len(baseline['records'])} records): it would check nothing; write one with "
                         "`python -m bench check --update` where the codecs are available")
    return baseline


def _existing_size(path: Path) -> tuple[set[str], int] | None:
    """The codecs and record count of the baseline ``--update`` would replace (None: none readable)."""
    try:
        old = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(old, dict) or not isinstance(old.get("codecs"), dict) or not isinstance(old.get("records"), dict):
        return None
    return set(old["codecs"]), len(old["records"])


@dataclass
class CheckResult:
    """What ``bench check`` found: ``passed`` (a regression, a failed job or a refused ``--update`` is
    False), the run, the comparison with the baseline (None with ``update``), the baseline written
    (``update``), why it failed, and ``text``: what the command prints."""

    passed: bool
    run: CheckRun
    current: dict[str, Any]
    comparison: Comparison | None = None
    written: Path | None = None
    reasons: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def check(config: CheckConfig, baseline_path: Path, out: Path | None = None, data_root: Path | None = None,
          update: bool = False, strict: bool = False, jobs: int = 1,
          allow_missing: Sequence[str] = (), force: bool = False) -> CheckResult:
    """Run ``config`` and compare it with the baseline at ``baseline_path`` (or, with ``update``, write
    the baseline from it); print nothing. ``allow_missing``: codecs of the baseline that may be
    unavailable here (with a reason); ``strict``: an unavailable codec fails even so; ``force``: let
    ``update`` write a smaller baseline than the one it replaces. UsageError or CheckError when the
    check cannot be made (bad options, no baseline, another configuration's baseline)."""
    allowed = {spec.strip() for value in allow_missing for spec in value.split(",") if spec.strip()}
    unknown = sorted(allowed - set(config.qualities))
    if unknown:
        raise UsageError(f"--allow-missing names {', '.join(unknown)}, not in the check configuration "
                         f"({', '.join(config.qualities)})")
    if force and not update:
        raise UsageError("--force only applies to --update")
    baseline = None if update else load_baseline(baseline_path)  # before minutes of coding, not after
    temp = None
    if out is None:
        temp = tempfile.mkdtemp(prefix="bench-check-")
        out = Path(temp)
    try:
        run = run_configuration(config, out, data_root, jobs)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    current = summarise(run, config)
    overhead = (run.wall_time - run.codec_time - run.warmup_time) / run.wall_time if run.wall_time else 0.0
    result = CheckResult(passed=False, run=run, current=current)
    say = result.lines.append
    say(f"bench check: {len(run.records)} records from {len(current['codecs'])} codecs in {run.wall_time:.1f} s "
        f"(codecs {run.codec_time:.1f} s, warm-up {run.warmup_time:.1f} s, harness {overhead:.1%})")
    if update:
        if run.failed:
            for key, error in run.failed:
                say(f"failed job {key}: {error}")
            result.reasons.append("some jobs failed")
            say("bench check: baseline NOT updated: some jobs failed")
            return result
        refusal = _update_refusal(current, _existing_size(baseline_path) if baseline_path.is_file() else None, force)
        if refusal:
            result.reasons.append(refusal)
            say(f"bench check: baseline NOT updated: {refusal}")
            return result
        document = dict(current, written=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        baseline_path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        skipped = [spec for spec, entry in run.codecs.items() if not entry["available"]]
        unavailable = f"; not in it (unavailable): {', '.join(skipped)}" if skipped else ""
        say(f"bench check: baseline written to {baseline_path} ({len(current['records'])} records, "
            f"{len(current['bdrate'])} BD-rates){unavailable}")
        result.passed, result.written = True, baseline_path
        return result
    if baseline.get("config") != current["config"]:
        raise CheckError(f"{baseline_path} was written for another check configuration; if the change to "
                         "CheckConfig is deliberate, rerun with --update")
    comparison = compare(baseline, current, run, allowed)
    result.comparison = comparison
    say(render(comparison, run))
    failures = comparison.failures
    strict_skips = list(comparison.skipped) if strict else []
    reasons = result.reasons
    if comparison.missing:
        reasons.append(f"{len(comparison.missing)} codecs of the baseline not compared: "
                       f"{', '.join(comparison.missing)}")
    if failures:
        reasons.append(f"{len(failures)} values beyond their limits")
    if run.failed:
        reasons.append(f"{len(run.failed)} jobs failed")
    if strict_skips:
        reasons.append(f"--strict and unavailable: {', '.join(strict_skips)}")
    if reasons:
        other_build = sorted({m.codec for m in comparison.moved if m.field.startswith("fingerprint")})
        if failures and other_build:  # a possible cause, said once
            reasons.append(f"the fingerprints of {', '.join(other_build)} differ from the baseline's (another "
                           "machine or build), compared at the cross-machine limits; if these values are meant "
                           "to change, rewrite the baseline with --update")
        say(f"bench check: FAILED ({'; '.join(reasons)})")
        return result
    say("bench check: passed")
    result.passed = True
    return result


def _update_refusal(current: dict[str, Any], existing: tuple[set[str], int] | None, force: bool) -> str | None:
    """Why ``--update`` must not write ``current`` over the baseline of ``existing`` (codecs, record
    count), or None. An empty baseline is never written; a smaller one only with ``force``: a codec
    that is merely unavailable here would otherwise drop out of the gate for good."""
    if not current["records"] or not current["codecs"]:
        return (f"this run made {len(current['records'])} records of {len(current['codecs'])} codecs; an empty "
                "baseline would check nothing (are the tools and weights here?)")
    if existing is None or force:
        return None
    codecs, records = existing
    lost = sorted(codecs - set(current["codecs"]))
    if lost or len(current["records"]) < records:
        what = f"without {', '.join(lost)}" if lost else "with fewer records"
        return (f"the new baseline ({len(current['codecs'])} codecs, {len(current['records'])} records) would "
                f"replace one of {len(codecs)} codecs and {records} records {what}; add --force if that is meant")
    return None


def run(args: argparse.Namespace) -> int:
    """``bench check`` with parsed arguments: print what ``check`` found; the exit status (0 passed,
    1 not; a CheckError is the user's to fix)."""
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    result = check(CheckConfig(), args.baseline, args.out, args.data_root, args.update, args.strict, args.jobs,
                   allow_missing=args.allow_missing, force=args.force)
    print(result.text)
    return 0 if result.passed else 1
