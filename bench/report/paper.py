"""A paper's published BD-rates beside the ones measured in a run.

The paper's tables and the codec they are about come from the anchors package (``index.json``
names the codec and which report role measures each of the paper's anchors), so nothing here is
particular to one codec.
"""

from __future__ import annotations

import math

import pandas as pd

from bench.anchors import paper_bdrate
from bench.declared import REGISTERED, Declarations
from bench.registry import CodecSpec
from bench.report.tables import is_kodak
from bench.storage.records import RecordExtra

PAPER_PROTOCOL = "base:0.25"


def is_paper_codec(codec: str) -> bool:
    """Whether ``codec`` (a spec) is the codec the paper's tables are about."""
    return CodecSpec.parse(codec).name == paper_bdrate().codec


def measured_params(rows: pd.DataFrame) -> int | None:
    """Total parameters of the codec behind these records (``extra.params.total``), if recorded."""
    for extra in rows.get("extra", pd.Series(dtype=object)):
        params = extra.params if isinstance(extra, RecordExtra) else None
        total = params.get("total") if isinstance(params, dict) else None
        if isinstance(total, (int, float)):
            return int(total)
    return None


def model_size_sentence(records: pd.DataFrame, declared: Declarations = REGISTERED) -> str:
    """How the measured COMPASS's size compares with the paper's model (empty when unknown)."""
    paper = paper_bdrate()
    measured = records[records["codec"].map(is_paper_codec)]
    params = measured_params(measured) if not measured.empty else None
    if not params or not paper.total_params:
        return ""
    return (
        f"The measured COMPASS has {params / 1e6:.2f}M parameters (BL, LIFF and RC), the paper's "
        f"about {paper.total_params / 1e6:.1f}M: its networks, BL included, are smaller and trained far "
        f"less, which moves both its own curve and the {declared.family(paper.codec)} anchors built on the same BL."
    )


def paper_comparison(long: pd.DataFrame, records: pd.DataFrame, declared: Declarations = REGISTERED) -> pd.DataFrame:
    """Rows: each scale combination of a run of the paper's codec that the paper reports, × each
    paper anchor.

    The measured value is the codec at the top layer against the reference of the same role (and of
    the codec's BL family for the family-bound anchors, simulcast and single-layer); NaN when the
    run lacks it.
    """
    paper = paper_bdrate()
    rows = []
    codec_rows = records[records["codec"].map(is_paper_codec)]
    combos = codec_rows.groupby(["codec", "dataset", "anchor", "scales_label"], sort=True)
    for (codec, dataset, protocol, label), combo in combos:
        layers = int(combo["num_layers"].iloc[0])
        scale = round(math.prod(combo["scales"].iloc[0]), 3)
        top = layers - 1
        notes = []
        if not is_kodak(dataset):  # the same rule as the glance table's paper column
            notes.append("paper numbers are on Kodak")
        if protocol != PAPER_PROTOCOL:
            notes.append(f"paper protocol is {PAPER_PROTOCOL}")
        if layers >= 3:
            notes.append("matched by overall scale: the paper does not give its 3-layer ratios")

        for paper_anchor, role in paper.anchor_roles.items():
            published = paper.lookup(layers, scale, paper_anchor)
            if published is None:
                continue
            base = dict(
                codec=codec,
                dataset=dataset,
                anchor=protocol,
                scales_label=label,
                layers=layers,
                overall_scale=scale,
                layer=top,
                paper_anchor=paper_anchor,
                paper_bd_rate=published,
            )
            measured = pd.DataFrame()
            if role is not None and not long.empty:
                measured = long[
                    (long["codec"] == codec)
                    & (long["dataset"] == dataset)
                    & (long["anchor"] == protocol)
                    & (long["scales_label"] == label)
                    & (long["layer"] == top)
                    & (long["reference_role"] == role)
                ]
                # a family-bound anchor must be of the codec's own family (e.g. its BL codec)
                keep = [declared.anchors_every_family(ref) or declared.family(ref) == declared.family(codec)
                        for ref in measured["reference"]]
                measured = measured[keep] if keep else measured
            if measured.empty:
                why = "no implementation in bench" if role is None else "reference not in this run"
                note = "; ".join([why, *notes])
                rows.append(base | dict(reference="—", measured_bd_rate=math.nan, images=0, note=note))
            for m in measured.itertuples():
                rows.append(
                    base
                    | dict(
                        reference=m.reference,
                        measured_bd_rate=m.bd_rate,
                        images=m.images,
                        note="; ".join([x for x in [m.reason, m.note, *notes] if x]),
                    )
                )
    return pd.DataFrame(rows)
