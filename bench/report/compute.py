"""The report's tables, computed from run directories' records: the first of ``build_report``'s four
pieces (tables, files, plots, page). Nothing here writes a file or draws; the other pieces only read
what ``compute_tables`` returns, so each can be called, and tested, on its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from bench.anchors import published_curves
from bench.declared import Declarations
from bench.errors import ReportError
from bench.measuring import bdrate
from bench.measuring.rd_metrics import DEFAULT_METRIC, METRICS, RDMetric
from bench.pyramid import Anchoring, layer_fractions
from bench.report.bdtables import AVERAGES, add_full_size_single_layer, bd_tables, lead, matrices, published_bd
from bench.report.glance import glance_tables
from bench.report.load import load_manifests, load_records
from bench.report.paper import is_paper_codec, paper_comparison
from bench.report.tables import (
    aggregate,
    cost_by_layer,
    cost_table,
    dataset_label,
    dataset_order,
    is_kodak,
    params_by_module,
    prediction_table,
    timing_split,
)
from bench.report.weights import weights_table


@dataclass(frozen=True, eq=False)
class Section:
    """One comparison of the page (a dataset, pyramid protocol and scale combination): its RD curves
    and the BD-rate tables shown under its RD plot."""

    dataset: str
    protocol: str
    label: str  # the scales label, "1.5,1.6" or "1 layer"
    title: str  # the page's heading and the RD plot's title
    curves: pd.DataFrame  # aggregate rows (mean curves) of every codec and layer of the comparison
    focus: pd.DataFrame  # the contract's pairs (layers ≥ 1), BD-rates of the convention the tables lead with
    layer_matrices: tuple[tuple[int, pd.DataFrame], ...]  # (layer, every codec against every other)
    shows_published: bool  # the published full-size Kodak curves are drawn beside this one

    @property
    def key(self) -> tuple[str, str, str]:
        return self.dataset, self.protocol, self.label


@dataclass(frozen=True, eq=False)  # eq=False: comparing frames elementwise has no single truth value
class ReportTables:
    """Everything the report's files, plots and page are made from. The frames named after a CSV
    are that file's rows, exactly as written."""

    run_dirs: tuple[Path, ...]
    metric: RDMetric  # the quality axis of the BD-rate tables and RD plots
    bootstrap: int  # resamples of the BD-rate intervals (0: none)
    bd_average: str  # the BD-rate convention the tables lead with: "curves" or "images"
    records: pd.DataFrame  # every record of the runs (load_records)
    compared: pd.DataFrame  # records plus full-image single-layer records reused as top layers
    manifests: tuple[tuple[Path, dict[str, Any]], ...]
    declared: Declarations  # what each codec declared when it ran (its manifest), else what it declares here
    yuv_matrices: tuple[str, ...]  # the YCbCr matrices the records' YUV metrics were measured with
    yuv_measured: bool  # some record carries the YUV metrics
    images_per_dataset: pd.Series  # distinct images per dataset, in the report's dataset order
    summary: pd.DataFrame  # summary.csv: mean curves of the records as they are
    bdrate: pd.DataFrame  # bdrate.csv: every ordered codec pair of every comparison and layer
    focus: pd.DataFrame  # bdrate_focus.csv: the contract's pairs at layers ≥ 1
    per_image: pd.DataFrame  # bdrate_images.csv: each image's own BD-rate of every pair
    bd_shown: pd.DataFrame  # bdrate rows with bd_rate/ci_* of the convention the tables lead with
    sections: tuple[Section, ...]  # the page's comparisons, in page order
    costs: pd.DataFrame  # cost_summary.csv: per codec
    layer_costs: pd.DataFrame  # cost.csv: per codec and layer
    modules: pd.DataFrame  # params_modules.csv (written only when not empty)
    split: pd.DataFrame  # timing_split.csv (written only when not empty)
    prediction: pd.DataFrame  # prediction.csv (written only when not empty)
    paper: pd.DataFrame | None  # <paper codec>_paper.csv; None when no run holds the paper's codec
    glances: dict[str, pd.DataFrame]  # glance_<codec>.csv: each scalable codec's top layer at a glance
    published: pd.DataFrame | None  # bdrate_published.csv; None when no dataset is Kodak
    weights: pd.DataFrame  # weights.csv (written only when not empty): the learned records' weights

    @property
    def codecs(self) -> list[str]:
        """Every codec of the comparisons, sorted (the RD plots' colours follow this order)."""
        return sorted(self.compared["codec"].unique())

    @property
    def reused(self) -> list[str]:
        """The single-layer codecs whose full-image records stand in as top layers."""
        return sorted(set(self.compared.loc[self.compared["reused"], "codec"]))


def check_settings(metric: str, bootstrap: int, bd_average: str) -> None:
    """ReportError for a setting the report cannot use (before anything is read)."""
    if metric not in METRICS:
        raise ReportError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if bd_average not in AVERAGES:
        raise ReportError(f"unknown BD average {bd_average!r}; use {' or '.join(AVERAGES)}")
    if bootstrap < 0:
        raise ReportError(f"--bootstrap must be 0 (no intervals) or a number of resamples, got {bootstrap}")


def yuv_matrices(records: pd.DataFrame, metric: RDMetric) -> list[str]:
    """The YCbCr matrices the records' YUV metrics were measured with; ReportError when a YUV metric
    is asked of records measured with more than one (their curves would not be comparable)."""
    found = sorted({str(m) for m in records["yuv_matrix"] if isinstance(m, str)})
    if metric.yuv and len(found) > 1:
        raise ReportError(f"these runs measured {metric.label} with different YCbCr matrices ({', '.join(found)}); "
                          "report them apart")
    return found


def scales_of(label: str) -> tuple[float, ...]:
    """The ratios of a scales label (``"1 layer"``: none)."""
    return () if label == "1 layer" else tuple(float(x) for x in str(label).split(","))


def has_full_size_layer(protocol: str, scales: Sequence[float]) -> bool:
    """Whether one layer of the pyramid is the source itself: only then are the published full-size
    Kodak curves comparable (top anchoring always; base:F only when F·s1·…·sK reaches 1)."""
    try:
        return any(f == 1 for f in layer_fractions(scales, Anchoring.parse(protocol)))
    except ValueError:
        return False


def group_title(dataset: str, protocol: str, label: str, layers: int, images: int) -> str:
    scales = "single layer" if label == "1 layer" else f"scales {label} ({layers} layers)"
    count = f"{images} image" + ("s" if images != 1 else "")
    return f"{dataset_label(dataset)} — {scales}, {protocol} anchoring, {count}"


def _sections(curves: pd.DataFrame, compared: pd.DataFrame, shown: pd.DataFrame, metric: str) -> list[Section]:
    """One Section per (dataset, protocol, scales) of the mean curves, datasets in report order."""
    group_keys = ["dataset", "anchor", "scales_label"]
    all_matrices = dict(matrices(shown))
    out = []
    for (dataset, protocol, label), group in sorted(curves.groupby(group_keys, sort=True),
                                                    key=lambda item: dataset_order(item[0][0])):
        images = compared.loc[(compared["dataset"] == dataset) & (compared["anchor"] == protocol)
                              & (compared["scales_label"] == label), "image"].nunique()
        in_group = shown[(shown["dataset"] == dataset) & (shown["anchor"] == protocol)
                         & (shown["scales_label"] == label)]
        out.append(Section(
            dataset=dataset,
            protocol=protocol,
            label=label,
            title=group_title(dataset, protocol, label, int(group["num_layers"].max()), images),
            curves=group,
            focus=in_group[in_group["focus"].astype(bool) & (in_group["layer"] >= 1)],
            layer_matrices=tuple((layer, all_matrices[(dataset, protocol, label, layer)])
                                 for layer in sorted(group["layer"].unique())
                                 if (dataset, protocol, label, layer) in all_matrices),
            # the published curves are PSNR-RGB, of the full-size picture: drawn where one layer is the source
            shows_published=(is_kodak(dataset) and metric == DEFAULT_METRIC
                             and has_full_size_layer(protocol, scales_of(label))),
        ))
    return out


def compute_tables(run_dirs: Sequence[Path], metric: str = DEFAULT_METRIC,
                   bootstrap: int = bdrate.DEFAULT_BOOTSTRAP, bd_average: str = "curves") -> ReportTables:
    """Read the records of ``run_dirs`` and compute every table of the report (see ``build_report``
    for the settings); ReportError for an unknown setting or records the report cannot compare."""
    check_settings(metric, bootstrap, bd_average)
    chosen = METRICS[metric]
    run_dirs = tuple(Path(d) for d in run_dirs)
    records = load_records(run_dirs)
    manifests = tuple(load_manifests(run_dirs))
    declared = Declarations.of_manifests(manifests)  # what each codec declared when it ran
    matrices_used = yuv_matrices(records, chosen)
    compared = add_full_size_single_layer(records)

    computed, per_image = bd_tables(compared, metric, bootstrap, declared)
    # tables lead with the chosen convention; the CSVs keep both (bd_rate and bd_rate_images)
    shown = lead(computed, bd_average)
    has_paper_codec = bool(records["codec"].map(is_paper_codec).any())
    paper = pd.DataFrame()
    if has_paper_codec:
        # the paper's tables are PSNR-RGB: that comparison stays on it whatever the chosen metric
        shown_rgb = shown if metric == DEFAULT_METRIC else lead(
            bd_tables(compared, bootstrap=bootstrap, declared=declared)[0], bd_average)
        paper = paper_comparison(shown_rgb, compared, declared)
    datasets = records.groupby("dataset")["image"].nunique()
    datasets = datasets.reindex(sorted(datasets.index, key=dataset_order))
    layer_costs = cost_by_layer(records)
    return ReportTables(
        run_dirs=run_dirs,
        metric=chosen,
        bootstrap=bootstrap,
        bd_average=bd_average,
        records=records,
        compared=compared,
        manifests=manifests,
        declared=declared,
        yuv_matrices=tuple(matrices_used),
        yuv_measured=bool(records["psnr_yuv"].notna().any()),
        images_per_dataset=datasets,
        summary=aggregate(records),
        bdrate=computed.assign(metric=metric),
        # the contract's BD-rates are per layer k ≥ 1 (layer 0 of a scalable codec is its BL plus
        # framing: that row stays in bdrate.csv)
        focus=computed[computed["focus"].astype(bool) & (computed["layer"] >= 1)].assign(metric=metric),
        per_image=per_image.assign(metric=metric),
        bd_shown=shown,
        sections=tuple(_sections(aggregate(compared), compared, shown, metric)),
        costs=cost_table(records),
        layer_costs=layer_costs,
        modules=params_by_module(records),
        split=timing_split(layer_costs),
        prediction=prediction_table(records),
        paper=paper if has_paper_codec else None,
        # the paper's figures beside measured ones are PSNR-RGB: shown only when the tables are too
        glances=glance_tables(shown, paper if metric == DEFAULT_METRIC else None, declared),
        published=(published_bd(records, published_curves(), bootstrap)
                   if any(is_kodak(d) for d in datasets.index) else None),
        weights=weights_table(records),
    )
