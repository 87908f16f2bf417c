"""Which weights the learned records of a report were coded with (``weights.csv`` and the page's
"Weights" section). A report may gather run folders made at different times; a learned codec whose
zoo changed in between then shows curves of two models under one name, and only the records'
``extra.weights_id`` can tell. This table makes that visible instead of leaving it to the manifests."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from bench.report.tables import dataset_label, dataset_order

COLUMNS = ["codec", "quality", "weights file", "sha256", "datasets", "runs", "records"]


def weights_file(info: Mapping[str, Any] | None, weights_id: str) -> str:
    """The file name in ``info["file"]`` (``Codec.weights_info``: one name, or several separated by
    spaces, each maybe led by ``q<k>:``) whose content hash prefix is ``weights_id``'s (the zoo names
    files ``<model>-q<k>-<first 8 hex of sha256>``); the whole ``file`` text when none is, "" when
    there is none."""
    text = str((info or {}).get("file") or "")
    names = [token for token in text.split() if not token.endswith(":")]
    for name in names:
        if weights_id[:8] in name:
            return name
    return text


def weights_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (codec, quality, weights) of the records that carry a weights id: the file, the
    first 16 hex digits of its SHA-256, the datasets and run folders holding such records, and how
    many. Empty (with the columns) when no record names its weights."""
    rows: dict[tuple[str, int, str], dict[str, Any]] = {}
    for codec, quality, dataset, run, extra, weights_id in zip(
            records["codec"], records["quality"], records["dataset"], records["run"], records["extra"],
            _weights_ids(records)):
        if weights_id is None:
            continue
        key = (str(codec), int(quality), weights_id)
        row = rows.setdefault(key, {"file": weights_file(extra.get("weights"), weights_id),
                                    "datasets": set(), "runs": set(), "records": 0})
        row["datasets"].add(str(dataset))
        row["runs"].add(str(run))
        row["records"] += 1
    table = pd.DataFrame([
        {"codec": codec, "quality": quality, "weights file": row["file"], "sha256": weights_id[:16],
         "datasets": ", ".join(dataset_label(d) for d in sorted(row["datasets"], key=dataset_order)),
         "runs": ", ".join(sorted(row["runs"])), "records": row["records"]}
        for (codec, quality, weights_id), row in sorted(rows.items())], columns=COLUMNS)
    return table


def _weights_ids(records: pd.DataFrame) -> pd.Series:
    """Each record's weights id, None where it names none (as ``bench.storage.store.recorded_weights_id``
    reads it: a non-empty string or nothing)."""
    ids = (extra.get("weights_id") if extra is not None else None for extra in records["extra"])
    return pd.Series([i if isinstance(i, str) and i else None for i in ids], index=records.index, dtype=object)


def mixed_curves(records: pd.DataFrame) -> list[str]:
    """Each curve point (codec, dataset, protocol, scales, quality) whose records were coded with more
    than one set of weights, as ``"codec, Dataset, protocol, scales, quality q"``: its mean averages
    two models."""
    ids = _weights_ids(records)
    keys = ["codec", "dataset", "anchor", "scales_label", "quality"]
    frame = records.loc[ids.notna(), keys].assign(weights_id=ids[ids.notna()])
    if frame.empty:
        return []
    counts = frame.groupby(keys)["weights_id"].nunique()
    return [f"{codec}, {dataset_label(dataset)}, {anchor}, {label}, quality {quality}"
            for (codec, dataset, anchor, label, quality), n in counts.items() if n > 1]


def mixed_weights(table: pd.DataFrame) -> list[tuple[str, int, int]]:
    """``(codec, quality, how many weights)`` for each codec quality of ``weights_table`` coded with
    more than one set of weights across the report's records."""
    if table.empty:
        return []
    counts = table.groupby(["codec", "quality"])["sha256"].nunique()
    return [(str(codec), int(quality), int(n)) for (codec, quality), n in counts.items() if n > 1]


def weights_note(table: pd.DataFrame, curves: list[str]) -> str:
    """The page's sentence above the table: whether a curve mixes models (``curves``, as
    ``mixed_curves`` of the same records gives them), or a codec's datasets or runs differ in the
    weights they were coded with, or neither."""
    if curves:
        return ("Warning: these curve points average records coded with different weights, so they mix "
                "two models: " + "; ".join(curves) + ". Report those run folders apart.")
    mixed = mixed_weights(table)
    if mixed:
        by_codec: dict[str, list[str]] = {}
        for codec, quality, n in mixed:
            by_codec.setdefault(codec, []).append(f"{quality} ({n} files)")
        listed = "; ".join(f"{codec} at quality {', '.join(qualities)}" for codec, qualities in by_codec.items())
        return ("Some learned codec qualities were coded with different weights in different datasets, "
                f"protocols or run folders ({listed}); every curve holds one model, and the rows below say "
                "which records each file made: a comparison across those rows compares two models.")
    return "Each learned codec quality was coded with one set of weights in every record of this report."
