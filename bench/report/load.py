"""Read run directories into one records table for the report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from bench.errors import ReportError, StoreError
from bench.measuring.metrics import ms_ssim_db
from bench.pyramid import format_scales
from bench.storage.records import NUMERIC_FIELDS, REQUIRED_KEYS, python_keys
from bench.storage.store import RunStore

REQUIRED = REQUIRED_KEYS
# A record is identified by these; a later run directory's record replaces an earlier one.
RECORD_KEY = ("codec", "dataset", "image", "scales_label", "anchor", "quality", "layer")
NUMERIC = NUMERIC_FIELDS


def scales_label(scales: Sequence[float]) -> str:
    """``[1.33, 1.5]`` -> ``"1.33,1.5"``; a single layer (no ratios) -> ``"1 layer"``."""
    return format_scales(scales) or "1 layer"


def _number(value: Any) -> float:
    # The store writes NaN as null and infinities as "inf"/"-inf" strings (JSON has neither).
    if value is None:
        return math.nan
    return float(value)


def load_records(run_dirs: Sequence[Path]) -> pd.DataFrame:
    """All records of ``run_dirs`` as a DataFrame (columns with ``_`` instead of ``-``; ``extra`` holds
    each record's ``RecordExtra``)."""
    rows: list[dict[str, Any]] = []
    for order, run_dir in enumerate(run_dirs):
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise ReportError(f"run directory {run_dir} does not exist")
        store = RunStore(run_dir)
        records = store.records()
        for number, record in enumerate(records, 1):
            missing = [name for name in REQUIRED if name not in record]
            if missing:
                raise ReportError(f"{run_dir}/records.jsonl record {number} lacks {', '.join(missing)}")
        try:  # the same parse, typed: the table's ``extra`` column holds RecordExtra objects
            typed = store.typed_records()
        except StoreError as error:
            raise ReportError(str(error)) from error
        for record, parsed in zip(records, typed):
            row = python_keys(record)
            row["scales"] = tuple(float(s) for s in row["scales"])
            row["scales_label"] = scales_label(row["scales"])
            row["run"] = str(run_dir)
            row["run_order"] = order
            row["extra"] = parsed.extra
            rows.append(row)
    if not rows:
        raise ReportError(f"no records in {', '.join(str(d) for d in run_dirs)}")
    frame = pd.DataFrame(rows)
    for name in NUMERIC:  # a field newer than some records: NaN there (all of them for older runs)
        frame[name] = frame[name].map(_number).astype(float) if name in frame else math.nan
    if "yuv_matrix" not in frame:
        frame["yuv_matrix"] = None
    # MS-SSIM dB follows from MS-SSIM: records written before the field get it from the one definition
    derived = frame["ms_ssim_rgb"].map(lambda v: _number(ms_ssim_db(None if math.isnan(v) else v)))
    frame["ms_ssim_db"] = frame["ms_ssim_db"].where(frame["ms_ssim_db"].notna(), derived)
    frame["quality"] = frame["quality"].astype(int)
    frame["layer"] = frame["layer"].astype(int)
    frame["num_layers"] = frame["num_layers"].astype(int)
    frame = frame.drop_duplicates(list(RECORD_KEY), keep="last").reset_index(drop=True)
    return frame


def load_manifests(run_dirs: Sequence[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Each run directory with its manifest (empty dict when it has none)."""
    return [(Path(d), RunStore(Path(d)).manifest()) for d in run_dirs]
