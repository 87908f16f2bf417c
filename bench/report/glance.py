"""The report's first table: each scalable codec's top layer against every reference, one row per
(dataset, protocol, scale combination), with the published paper's figures beside it.

The full report has a BD-rate matrix per layer and scale combination; the question users bring is
answered by one cell of each (the top layer of the codec under test against each anchor), so this
table gathers those cells. Values come from the same ``bd_long`` frame as bdrate.csv."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench.codec import SCALABLE_ROLE
from bench.declared import REGISTERED, Declarations
from bench.measuring.bdrate import is_overlap_refusal
from bench.report.bdtables import interval_text
from bench.report.tables import dataset_order, is_kodak


def _layers(label: str) -> int:
    return len(str(label).split(",")) + 1


def _reference_order(test: str, reference: str, declared: Declarations) -> tuple[int, str, str]:
    """Conventional scalable anchors (SHVC) first, then other families, then the codec's own family
    (single-layer, simulcast) last, by name within each."""
    if declared.anchors_every_family(reference):
        group = 0
    elif declared.family(reference) != declared.family(test):
        group = 1
    else:
        group = 2
    return group, declared.family(reference), reference


def _protocol_order(row: tuple[str, str, str]) -> tuple:
    dataset, anchor, label = row
    scales = [float(s) for s in str(label).split(",")]
    return dataset_order(dataset), anchor != "top", len(scales), scales


def glance_keys(long: pd.DataFrame, declared: Declarations = REGISTERED) -> dict[str, list[tuple[str, str, str]]]:
    """``{codec: [(dataset, protocol, scales label), ...]}``: the rows of each codec's glance table,
    in their order (what the strip plots the table links to are drawn for)."""
    top = _top(long)
    return {codec: sorted({(r.dataset, r.anchor, r.scales_label) for r in rows.itertuples()}, key=_protocol_order)
            for codec, rows in top.groupby("codec", sort=True) if not declared.anchors_every_family(codec)}


def _top(long: pd.DataFrame) -> pd.DataFrame:
    if long.empty:
        return long
    return long[(long["role"] == SCALABLE_ROLE) & (long["layer"] == long["scales_label"].map(_layers) - 1)]


def glance_references(long: pd.DataFrame, codec: str, declared: Declarations = REGISTERED) -> list[str]:
    """The references of a codec's glance table, in column order."""
    top = _top(long)
    references = set(top.loc[top["codec"] == codec, "reference"])
    return sorted(references, key=lambda ref: _reference_order(codec, ref, declared))


def glance_tables(long: pd.DataFrame, paper: pd.DataFrame | None = None,
                  declared: Declarations = REGISTERED) -> dict[str, pd.DataFrame]:
    """``{scalable codec: table}`` for each scalable codec under test (not a conventional anchor)
    with a BD-rate at its top layer. Cells are BD-rate % with the 95 % bootstrap interval when
    ``long`` has one (``+46.5 % [+41.2, +52.0]``, ``(n.s.)`` when it contains 0); blank where the run
    lacks the reference, ``(overlap)`` where the curves overlap too little for a BD-rate and ``(no
    BD-rate)`` where another reason refused it (bdrate.csv says which); ``paper``
    (``paper_comparison``'s frame) adds a column with the paper's figures against its anchors for
    rows it reports."""
    out: dict[str, pd.DataFrame] = {}
    if long.empty:
        return out
    top = _top(long)
    for codec, keys in glance_keys(long, declared).items():
        rows = top[top["codec"] == codec]
        references = glance_references(long, codec, declared)
        cells = {(r.dataset, r.anchor, r.scales_label, r.reference): r for r in rows.itertuples()}
        table_rows = []
        for dataset, anchor, label in keys:
            row = {"dataset": dataset, "protocol": anchor, "scales": "×" + str(label).replace(",", ", ×")}
            for ref in references:
                row[f"vs {ref}"] = _cell(cells.get((dataset, anchor, label, ref)))
            if paper is not None and not paper.empty:
                row["paper"] = _paper_cell(paper, codec, dataset, anchor, label)
            table_rows.append(row)
        table = pd.DataFrame(table_rows)
        if "paper" in table and not table["paper"].astype(bool).any():
            table = table.drop(columns="paper")
        out[codec] = table
    return out


# What a pair the run has but could not give a BD-rate shows instead of a number; a blank cell is a
# pair the run lacks. A reader must not take the one for the other (bdrate.csv has the full reason).
TOO_LITTLE_OVERLAP = "(overlap)"
NO_BD_RATE = "(no BD-rate)"


def _cell(found: Any) -> str:
    """A row of ``bd_long`` (a named tuple) as its glance cell; None: the run lacks the pair."""
    if found is None:
        return ""
    bd_rate = found.bd_rate
    if pd.isna(bd_rate):
        return TOO_LITTLE_OVERLAP if is_overlap_refusal(getattr(found, "reason", "")) else NO_BD_RATE
    return interval_text(bd_rate, getattr(found, "ci_low", math.nan), getattr(found, "ci_high", math.nan))


def _paper_cell(paper: pd.DataFrame, codec: str, dataset: str, anchor: str, label: str) -> str:
    if not is_kodak(dataset):  # the paper's figures are Kodak's; beside another dataset they mislead
        return ""
    rows = paper[(paper["codec"] == codec) & (paper["dataset"] == dataset) & (paper["anchor"] == anchor)
                 & (paper["scales_label"] == label)]
    figures = rows.drop_duplicates("paper_anchor")
    return " / ".join(f"{r.paper_anchor} {r.paper_bd_rate:+.1f} %" for r in figures.itertuples())
