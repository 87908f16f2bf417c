"""The COMPASS paper's published BD-rates beside the ones measured in a run."""

from __future__ import annotations

import math

import pandas as pd

from bench.anchors import compass_paper_bdrate
from bench.registry import CodecSpec
from bench.report.bdtables import family

# Paper anchor -> the reference role measured by bench (Mei et al. has no implementation here).
PAPER_TO_ROLE = {"SHVC": "shvc", "simulcast": "simulcast", "single-layer": "single-layer"}
PAPER_PROTOCOL = "base:0.25"


def is_compass(codec: str) -> bool:
    return CodecSpec.parse(codec).name == "compass"


def measured_params(rows: pd.DataFrame) -> int | None:
    """Total parameters of the codec behind these records (``extra.params.total``), if recorded."""
    for extra in rows.get("extra", pd.Series(dtype=object)):
        total = extra.get("params", {}).get("total") if isinstance(extra, dict) else None
        if isinstance(total, (int, float)):
            return int(total)
    return None


def model_size_sentence(records: pd.DataFrame) -> str:
    """How the measured COMPASS's size compares with the paper's model (empty when unknown)."""
    paper = compass_paper_bdrate()
    compass = records[records["codec"].map(is_compass)]
    params = measured_params(compass) if not compass.empty else None
    if not params or not paper.total_params:
        return ""
    return (
        f"The measured COMPASS has {params / 1e6:.2f}M parameters (BL, LIFF and RC), the paper's "
        f"about {paper.total_params / 1e6:.1f}M: its networks, BL included, are smaller and trained far "
        "less, which moves both its own curve and the mean-scale anchors built on the same BL."
    )


def paper_comparison(long: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Rows: each scale combination of a compass run that the paper reports, × each paper anchor.

    The measured value is compass at the top layer against the reference of the same role (and of
    compass's BL family, mean-scale, for simulcast and single-layer); NaN when the run lacks it.
    """
    paper = compass_paper_bdrate()
    rows = []
    compass_rows = records[records["codec"].map(is_compass)]
    combos = compass_rows.groupby(["codec", "dataset", "anchor", "scales_label"], sort=True)
    for (codec, dataset, protocol, label), combo in combos:
        layers = int(combo["num_layers"].iloc[0])
        scale = round(math.prod(combo["scales"].iloc[0]), 3)
        top = layers - 1
        notes = []
        if dataset != "kodak":
            notes.append("paper numbers are on Kodak")
        if protocol != PAPER_PROTOCOL:
            notes.append(f"paper protocol is {PAPER_PROTOCOL}")
        if layers >= 3:
            notes.append("matched by overall scale: the paper does not give its 3-layer ratios")

        for paper_anchor in ("SHVC", "simulcast", "single-layer", "Mei et al. (NN spatially scalable)"):
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
            role = PAPER_TO_ROLE.get(paper_anchor)
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
                if role != "shvc":
                    measured = measured[measured["reference"].map(family) == family(codec)]
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
