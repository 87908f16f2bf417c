"""``build_report``: CSV tables, RD plots and one page (Markdown and HTML) for some run directories."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bench import bdrate, ycbcr
from bench.anchors import paper_bdrate, published_curves
from bench.errors import ReportError
from bench.rd_metrics import DEFAULT_METRIC, METRICS, RDMetric
from bench.registry import rate_counts
from bench.report.bdtables import add_full_size_single_layer, bd_long, matrices, published_bd
from bench.report.glance import glance_tables
from bench.report.load import load_manifests, load_records
from bench.report.paper import PAPER_PROTOCOL, is_paper_codec, model_size_sentence, paper_comparison
from bench.report.plots import codec_colours, rd_plot, slug
from bench.report.tables import (
    DECODE_INTERNAL_PREFIX,
    INTERNAL_PREFIX,
    KMAC_COLUMNS,
    YUV_AND_DB_COLUMNS,
    aggregate,
    cost_by_layer,
    cost_table,
    count_text,
    dataset_label,
    dataset_order,
    is_kodak,
    prediction_table,
)

NICE = {
    "anchor": "pyramid",
    "scales_label": "scales",
    "psnr_rgb": "PSNR-RGB dB",
    "psnr_std": "PSNR std dB",
    "bpp_std": "bpp std",
    "ms_ssim_rgb": "MS-SSIM-RGB",
    "ms_ssim_images": "MS-SSIM images",
    "encode_time": "encode s",
    "decode_time": "decode s",
    "bd_rate": "BD-rate %",
    "bd_psnr": "BD-PSNR dB",
    "overlap_fraction": "overlap",
    "psnr_y": "PSNR-Y dB",
    "psnr_yuv": "PSNR-YUV dB",
    "ms_ssim_db": "MS-SSIM dB",
}


@dataclass
class Block:
    """One piece of the page, rendered both to Markdown and to HTML."""

    kind: str  # "h1".."h4", "p", "table", "img", "code"
    text: str = ""
    table: pd.DataFrame | None = None
    index: bool = False


def _fmt(frame: pd.DataFrame, formats: dict[str, str], names: dict[str, str] | None = None) -> pd.DataFrame:
    """Format numeric columns as text so both renderings show the same digits; NaN stays "NaN".
    ``names`` overrides column labels of ``NICE``."""
    out = frame.copy()
    for column, spec in formats.items():
        if column in out:
            out[column] = out[column].map(lambda v, spec=spec: "NaN" if pd.isna(v) else format(v, spec))
    return out.rename(columns=NICE | (names or {}))


def _markdown_table(table: pd.DataFrame, index: bool) -> str:
    if table.empty:
        return "_(none)_"

    # A "|" inside a cell would end the cell; numbers were formatted already, so tabulate must not
    # re-parse them (it would print 29.00 as 29).
    def escape(value: object) -> str:
        return str(value).replace("|", "\\|")

    table = table.map(escape).rename(columns=escape, index=escape)
    return table.to_markdown(index=index, disable_numparse=True)


def _markdown(blocks: list[Block]) -> str:
    parts = []
    for b in blocks:
        if b.kind.startswith("h"):
            parts.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            parts.append(b.text)
        elif b.kind == "table":
            parts.append(_markdown_table(b.table, b.index))
        elif b.kind == "img":
            parts.append(f"![{b.text}]({b.text})")
        elif b.kind == "code":
            parts.append("```json\n" + b.text + "\n```")
    return "\n\n".join(parts) + "\n"


def _html(blocks: list[Block], title: str) -> str:
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>",
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}",
        "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0 1.5em}",
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f0f0f0}",
        "img{max-width:100%}pre{background:#f6f6f6;padding:0.5em;overflow-x:auto;font-size:0.8em}",
        "</style></head><body>",
    ]
    for b in blocks:
        if b.kind.startswith("h"):
            parts.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "table":
            parts.append(
                b.table.to_html(index=b.index, border=0, na_rep="NaN")
                if not b.table.empty
                else "<p>(none)</p>"
            )
        elif b.kind == "img":
            parts.append(f"<p><img src='{html.escape(b.text)}' alt='{html.escape(b.text)}'></p>")
        elif b.kind == "code":
            parts.append(f"<details><summary>manifest</summary><pre>{html.escape(b.text)}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _group_title(dataset: str, protocol: str, label: str, layers: int, images: int) -> str:
    scales = "single layer" if label == "1 layer" else f"scales {label} ({layers} layers)"
    count = f"{images} image" + ("s" if images != 1 else "")
    return f"{dataset_label(dataset)} — {scales}, {protocol} anchoring, {count}"


SUMMARY_FORMATS = {
    "height": ".0f",
    "width": ".0f",
    "bpp": ".4f",
    "psnr_rgb": ".2f",
    "psnr_std": ".2f",
    "bpp_std": ".4f",
    "ms_ssim_rgb": ".4f",
    "encode_time": ".3g",
    "decode_time": ".3g",
    "psnr_y": ".2f",
    "psnr_yuv": ".2f",
    "ms_ssim_db": ".2f",
}
BD_FORMATS = {"bd_rate": "+.2f", "bd_psnr": "+.3f", "overlap_fraction": ".0%"}


def _method_text(metric: RDMetric, yuv_matrices: list[str], yuv_measured: bool) -> list[Block]:
    """The method; what is said about the quality metrics appears only where a run measured the YUV
    metrics or ``--metric`` chose one (the page of an older run stays as it was)."""
    blocks = [
        Block("h2", "Method"),
        Block(
            "p",
            "Rates are bits of all layers needed to decode the layer shown, per pixel of that layer "
            f"(bits_cum / (H·W)). Each curve point is the mean over images of bpp and of {metric.label} at one "
            "quality (CompressAI's convention); 'PSNR std' is the sample standard deviation over images.",
        ),
        Block(
            "p",
            f"BD-rate: Bjøntegaard delta with PCHIP interpolation (bjontegaard package, method "
            f"'{bdrate.METHOD}') of log-rate over the common {metric.axis} range, test codec (row) against "
            f"reference (column); negative means the test codec needs fewer bits. A value is given only "
            f"when each curve has at least {bdrate.MIN_POINTS} distinct points and the common {metric.axis} "
            f"range covers at least {bdrate.MIN_OVERLAP:.0%} of the shorter curve's range; otherwise the cell "
            f"is NaN with the reason (no extrapolation). A pair uses only images both codecs coded at all "
            f"their qualities.",
        ),
    ]
    if metric.name == DEFAULT_METRIC and not yuv_measured:
        return blocks
    text = (f"Quality metric of every BD-rate table and RD plot of this report (bench report --metric "
            f"{metric.name}): {metric.definition}.")
    if metric.name != DEFAULT_METRIC:
        text += (f" BD-PSNR columns are the BD of {metric.label}. The comparisons with the COMPASS paper and "
                 "the published curves stay on PSNR-RGB, as published.")
    if yuv_matrices:
        text += (" PSNR-Y, PSNR-U, PSNR-V and PSNR-YUV = (6·PSNR-Y + PSNR-U + PSNR-V) / 8: RGB to YCbCr with the "
                 + "; ".join(ycbcr.describe(m) for m in yuv_matrices) + ".")
    elif metric.yuv:
        text += f" No record of these runs carries {metric.label} (records written before it): its BD-rates are NaN."
    text += " MS-SSIM dB: −10·log10(1 − MS-SSIM-RGB) per image, then the mean over images."
    return [*blocks, Block("p", text)]


def _rate_accounting(codecs: Sequence[str]) -> list[Block]:
    """What each codec's rate counts besides picture data, as the codec declares it
    (``Codec.rate_counts``), so that headers and integrity bytes are visible beside the numbers."""
    rows = [(codec, text) for codec in codecs if (text := rate_counts(codec))]
    if not rows:
        return []
    return [
        Block("p", "Rate accounting: every byte of each codec's bitstream is counted, integrity bytes (CRCs, "
                   "picture hashes) included where the bitstream carries them; bench's own file envelope "
                   "(`bench encode`) is never counted. Besides the coded picture data, each rate holds:"),
        Block("table", table=pd.DataFrame(rows, columns=["codec", "rate also counts"])),
    ]


COST_SUMMARY_COLUMNS = {
    "codec": "codec",
    "dataset": "dataset",
    "scales_label": "scales",
    "anchor": "pyramid",
    "device": "device",
    "threads": "threads",
    "mode": "mode",
    "layers": "layers",
    "bitstreams": "images × qualities",
    "encode_s": "encode s (all layers)",
    "decode_s": "decode s (all layers)",
    "encode_kmac_per_pixel": "encode kMAC/px (all layers)",
    "decode_kmac_per_pixel": "decode kMAC/px (all layers)",
    "warmup_s": "warm-up s",
    "params": "params",
    "params_modules": "params per module",
    "peak_memory_mib": "peak RSS MiB",
    "cuda_peak_mib": "CUDA peak MiB",
    "model_mb": "model MB",
}
COST_LAYER_COLUMNS = {
    "codec": "codec",
    "dataset": "dataset",
    "scales_label": "scales",
    "anchor": "pyramid",
    "layer": "layer",
    "mode": "mode",
    "device": "device",
    "threads": "threads",
    "kpixels": "kpixels",
    "records": "images × qualities",
    "repeats": "repeats",
    "encode_s": "encode s",
    "decode_s": "decode s",
    "encode_kmac_per_pixel": "encode kMAC/px",
    "decode_kmac_per_pixel": "decode kMAC/px",
    "encode_split": "encode split (codec-internal)",
    "decode_split": "decode split (codec-internal)",
}
# Columns a run may not have at all (no learned codec, no GPU, single repeats): left out when empty.
OPTIONAL_COST = {"warmup_s", "params", "params_modules", "cuda_peak_mib", "model_mb", "encode_split", "decode_split",
                 *KMAC_COLUMNS}


def _split(row: pd.Series, prefix: str, total_column: str) -> str:
    """The codec's own timing of parts of a call against its wall time: ``network 0.21 s (93%)``."""
    parts = []
    for column, value in row.items():
        if str(column).startswith(prefix) and pd.notna(value):
            name = str(column)[len(prefix) : -len("_s")]
            if name.startswith("check_"):  # a self-check, outside the timed call (see bench.codec.Encoded)
                parts.append(f"{name} {value:.3g} s (not in the time)")
                continue
            share = f" ({value / row[total_column]:.0%})" if row[total_column] > 0 else ""
            parts.append(f"{name} {value:.3g} s{share}")
    return ", ".join(parts)


def _encode_split(row: pd.Series) -> str:
    return _split(row, INTERNAL_PREFIX, "encode_s")


def _decode_split(row: pd.Series) -> str:
    return _split(row, DECODE_INTERNAL_PREFIX, "decode_s")


# Run settings that, when one value holds for every cost row, are said once above the tables.
SHARED_COST = {
    "dataset": "dataset",
    "scales_label": "scales",
    "anchor": "pyramid",
    "device": "device",
    "threads": "threads",
}


def _shared_settings(frame: pd.DataFrame) -> dict[str, str]:
    """The SHARED_COST columns with one value in every row, as text."""
    shared = {}
    for column in SHARED_COST:
        values = frame[column].map(lambda v: "" if pd.isna(v) else str(v)).unique() if column in frame else []
        if len(values) == 1:
            shared[column] = Path(values[0]).name if column == "dataset" else values[0]
    return shared


def _cost_view(frame: pd.DataFrame, columns: dict[str, str], shared: dict[str, str]) -> pd.DataFrame:
    """The columns to show, formatted; shared settings and optional columns without a value left out."""
    view = frame.assign(dataset=frame["dataset"].map(lambda d: Path(str(d)).name))
    if "params" in view:
        view["params"] = view["params"].map(count_text)
    if "repeats" in view and (view["repeats"] == 1).all():
        view = view.drop(columns="repeats")  # the default: saying so once in the text is enough
    keep = [
        c
        for c in columns
        if c in view
        and c not in shared
        and not (c in OPTIONAL_COST and (view[c].isna() | (view[c] == "")).all())
    ]
    formats = {
        "encode_s": ".3g",
        "decode_s": ".3g",
        "warmup_s": ".3g",
        "peak_memory_mib": ".0f",
        "cuda_peak_mib": ".0f",
        "model_mb": ".2f",
        "kpixels": ".0f",
        "encode_kmac_per_pixel": ".1f",
        "decode_kmac_per_pixel": ".1f",
    }
    shown = view[keep].copy()
    for column, spec in formats.items():
        if column in shown:
            shown[column] = shown[column].map(lambda v, spec=spec: "" if pd.isna(v) else format(v, spec))
    return shown.rename(columns=columns)


_KMAC_TEXT = (
    "kMAC/px: thousands of multiply-accumulates per pixel of convolutions and matrix products (torch's "
    "FlopCounterMode, whose FLOPs are 2 MACs; elementwise operations and entropy coding not counted), "
    "as the codec declares what its encoder and decoder run (Codec.complexity; counted once per "
    "quality and layer sizes on the meta device); per codec: all layers of one image per pixel of the "
    "top layer, median over images and qualities; per layer: that layer's own networks per pixel of "
    "the layer. Empty for codecs torch cannot count (external encoders). "
)


def _has_kmac(frame: pd.DataFrame) -> bool:
    return any(column in frame and frame[column].notna().any() for column in KMAC_COLUMNS)


def _cost_blocks(costs: pd.DataFrame, layer_costs: pd.DataFrame) -> list[Block]:
    layers = layer_costs.assign(
        encode_split=layer_costs.apply(_encode_split, axis=1) if len(layer_costs) else "",
        decode_split=layer_costs.apply(_decode_split, axis=1) if len(layer_costs) else "",
    )
    shared = _shared_settings(layer_costs)
    every_row = "; ".join(f"{SHARED_COST[c]} {v}" for c, v in shared.items())
    repeats = int(layer_costs["repeats"].max()) if len(layer_costs) else 1
    return [
        Block("h2", "Cost"),
        Block(
            "p",
            (f"Every row: {every_row}. " if every_row else "")
            + "Per codec: medians over the coded images and qualities of the seconds to encode all layers "
            "of one image and to decode all of them (a scalable codec: one encode of the whole bitstream "
            "and one decode of layers 0..K; a single-layer codec: its per-layer calls added up). Times "
            "are wall-clock, synchronised with the device, warm-up excluded"
            + (
                "; where repeats > 1, each record holds the median of that many runs"
                if repeats > 1
                else ", one timed run per call"
            )
            + ". Warm-up: the untimed first call of a codec at a quality (model loading). Params: total "
            "and per module. Peak RSS: the largest growth of resident memory during one job's codec "
            "calls, child processes included (their shared libraries count: an ffmpeg process is a few "
            "hundred MiB). CUDA peak: max allocated. Model MB: weights on disk for one quality. "
            + (_KMAC_TEXT if _has_kmac(costs) else "")
            + "All values are in cost_summary.csv.",
        ),
        Block("table", table=_cost_view(costs, COST_SUMMARY_COLUMNS, shared)),
        Block("h3", "Median time per layer"),
        Block(
            "p",
            "Median over images and qualities of one record's times. Scalable codec: encode s is the whole "
            "bitstream's encode (the same call for every layer) and decode s decodes layers 0..k. "
            "Single-layer codec: each layer is coded alone, so both times are that layer's own. kpixels: "
            "median pixels of the layer. "
            + (
                "Encode/decode split: the codec's own timing of parts of its encode/decode call (e.g. "
                "network vs entropy coding), median seconds and share of that call's time. "
                if (layers["encode_split"] != "").any() or (layers["decode_split"] != "").any()
                else "No codec here reports a split of its encode time (e.g. network vs entropy coding). "
            )
            + "All values, params and memory included, are in cost.csv.",
        ),
        Block("table", table=_cost_view(layers, COST_LAYER_COLUMNS, shared)),
    ]


def _yuv_matrices(records: pd.DataFrame, metric: RDMetric) -> list[str]:
    """The YCbCr matrices the records' YUV metrics were measured with; ReportError when a YUV metric
    is asked of records measured with more than one (their curves would not be comparable)."""
    matrices = sorted({str(m) for m in records["yuv_matrix"] if isinstance(m, str)})
    if metric.yuv and len(matrices) > 1:
        raise ReportError(f"these runs measured {metric.label} with different YCbCr matrices ({', '.join(matrices)}); "
                          "report them apart")
    return matrices


def _hidden_metric_columns(summary: pd.DataFrame, metric: str, yuv_measured: bool) -> list[str]:
    """The YUV and MS-SSIM dB columns the aggregates table leaves out: all of them for runs that did
    not measure the YUV metrics (unless ``--metric`` asks for one), else those without a value."""
    if metric == DEFAULT_METRIC and not yuv_measured:
        return list(YUV_AND_DB_COLUMNS)
    return [column for column in YUV_AND_DB_COLUMNS if summary[column].isna().all()]


def _glance_blocks(long: pd.DataFrame, paper: pd.DataFrame | None, metric: RDMetric) -> list[Block]:
    blocks: list[Block] = []
    for codec, table in glance_tables(long, paper).items():
        blocks.append(Block("h2", f"At a glance: {codec}'s top layer against each reference"))
        text = (
            f"BD-rate % ({metric.label}, PCHIP) of {codec}'s top layer (its bits of all layers) "
            "against each reference at the same size, negative when it needs fewer bits; a blank "
            "cell: the run lacks that reference there, or the curves overlap too little (bdrate.csv "
            "says which). The sections below hold every layer and every pair."
        )
        if "paper" in table:
            text += (" paper: the figures the paper reports for that scale combination against its anchors, "
                     f"in its protocol ({PAPER_PROTOCOL}), on Kodak rows only: the paper reports Kodak.")
        blocks.append(Block("p", text))
        blocks.append(Block("table", table=table))
    return blocks


def build_report(run_dirs: Sequence[Path], out_dir: Path, metric: str = DEFAULT_METRIC) -> Path:
    """Write tables (CSV), BD-rate tables, RD plots (PNG, SVG), report.md and report.html to
    ``out_dir``; return the path of ``report.md``. ``metric`` (``bench.rd_metrics``) is the quality
    axis of the BD-rate tables and RD plots."""
    if metric not in METRICS:
        raise ReportError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    chosen = METRICS[metric]
    run_dirs = [Path(d) for d in run_dirs]
    out_dir = Path(out_dir)
    records = load_records(run_dirs)
    yuv_matrices = _yuv_matrices(records, chosen)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = load_manifests(run_dirs)
    compared = add_full_size_single_layer(records)
    yuv_measured = bool(records["psnr_yuv"].notna().any())

    summary = aggregate(records)
    curves = aggregate(compared)
    long = bd_long(compared, metric)
    # the paper's tables and the published curves are PSNR-RGB: those comparisons stay on it
    long_rgb = long if metric == DEFAULT_METRIC else bd_long(compared)
    bd_names = {} if metric == DEFAULT_METRIC else {"bd_psnr": f"BD-{chosen.with_unit}"}
    costs = cost_table(records)
    layer_costs = cost_by_layer(records)
    summary.to_csv(out_dir / "summary.csv", index=False)
    long.assign(metric=metric).to_csv(out_dir / "bdrate.csv", index=False)
    # the contract's BD-rates are per layer k ≥ 1 (layer 0 of a scalable codec is its BL plus
    # framing: that row stays in bdrate.csv)
    long[long["focus"].astype(bool) & (long["layer"] >= 1)].assign(metric=metric).to_csv(
        out_dir / "bdrate_focus.csv", index=False)
    layer_costs.to_csv(out_dir / "cost.csv", index=False)
    costs.to_csv(out_dir / "cost_summary.csv", index=False)
    paper_codec = paper_bdrate().codec  # the codec a published paper's tables are about
    has_paper_codec = records["codec"].map(is_paper_codec).any()
    paper = paper_comparison(long_rgb, compared) if has_paper_codec else pd.DataFrame()
    if has_paper_codec:
        paper.to_csv(out_dir / f"{paper_codec}_paper.csv", index=False)

    blocks: list[Block] = [Block("h1", "bench report")]
    blocks.append(Block("p", "Runs: " + ", ".join(str(d) for d in run_dirs) + "."))
    datasets = records.groupby("dataset")["image"].nunique()
    datasets = datasets.reindex(sorted(datasets.index, key=dataset_order))
    blocks.append(
        Block(
            "table",
            table=pd.DataFrame(
                {"dataset": [dataset_label(d) for d in datasets.index], "images in this run": datasets.values}
            ),
        )
    )
    blocks += _glance_blocks(long, paper if metric == DEFAULT_METRIC else None, chosen)
    if compared["reused"].any():
        reused = sorted(set(compared.loc[compared["reused"], "codec"]))
        blocks.append(
            Block(
                "p",
                f"Single-layer full-image records of {', '.join(reused)} (scales [], top "
                "anchoring) are used as the top layer of every top-anchored scale combination, "
                "since that layer is the source image itself.",
            )
        )
    blocks += _method_text(chosen, yuv_matrices, yuv_measured)
    blocks += _rate_accounting(sorted(compared["codec"].unique()))

    colours = codec_colours(sorted(compared["codec"].unique()))
    group_keys = ["dataset", "anchor", "scales_label"]
    all_matrices = dict(matrices(long))
    stems: set[str] = set()
    sections = sorted(curves.groupby(group_keys, sort=True), key=lambda item: dataset_order(item[0][0]))
    for (dataset, protocol, label), group in sections:
        layers = int(group["num_layers"].max())
        images = compared.loc[
            (compared["dataset"] == dataset)
            & (compared["anchor"] == protocol)
            & (compared["scales_label"] == label),
            "image",
        ].nunique()
        title = _group_title(dataset, protocol, label, layers, images)
        blocks.append(Block("h2", title))
        name = f"rd_{slug(Path(dataset).name)}_{slug(protocol)}_{slug(label)}"
        stem = out_dir / (name if name not in stems else f"{name}_{len(stems)}")
        stems.add(stem.name)
        drawable = group[np.isfinite(group["bpp"]) & np.isfinite(group[chosen.column])]
        published = is_kodak(dataset) and metric == DEFAULT_METRIC  # the published curves are PSNR-RGB
        if drawable.empty:
            blocks.append(Block("p", f"No finite (bpp, {chosen.axis}) point to plot."))
        else:
            rd_plot(drawable, title, stem, colours, published=published, metric=chosen)
            blocks.append(Block("img", f"{stem.name}.png"))
        if published:
            blocks.append(
                Block(
                    "p",
                    "Grey lines: published mbt2018-mean, BPG-444 and JPEG results on full-size "
                    "Kodak images (CompressAI); they are comparable only to a layer that is the "
                    "full 768×512 image.",
                )
            )
        in_group = long[
            (long["dataset"] == dataset) & (long["anchor"] == protocol) & (long["scales_label"] == label)
        ]
        focus = in_group[in_group["focus"].astype(bool) & (in_group["layer"] >= 1)]
        on_metric = "" if metric == DEFAULT_METRIC else f" ({chosen.label})"
        blocks.append(Block("h3", "BD-rate against the contract's anchors" + on_metric))
        blocks.append(
            Block(
                "table",
                table=_fmt(
                    focus[
                        [
                            "layer",
                            "codec",
                            "reference",
                            "reference_role",
                            "bd_rate",
                            "bd_psnr",
                            "images",
                            "overlap_fraction",
                            "reason",
                            "note",
                        ]
                    ],
                    BD_FORMATS,
                    bd_names,
                ),
            )
        )
        for layer in sorted(group["layer"].unique()):
            key = (dataset, protocol, label, layer)
            if key in all_matrices:
                blocks.append(
                    Block("h4", f"Layer {layer}: BD-rate % of every codec (row) against every other (column)"
                          + on_metric)
                )
                blocks.append(Block("table", table=all_matrices[key], index=True))

    # Beside the BD-rate tables: what the bits cost in time, memory and size.
    blocks += _cost_blocks(costs, layer_costs)

    prediction = prediction_table(records)
    if len(prediction):
        prediction.to_csv(out_dir / "prediction.csv", index=False)
        blocks.append(Block("h2", "Inter-layer prediction"))
        blocks.append(
            Block(
                "p",
                "Per enhancement layer: PSNR (RGB, 8-bit) of the codec's prediction of the layer (COMPASS: "
                "LIFF) and of bicubic upsampling of the same decoded lower layer, means over images; "
                "gain dB is the mean per-image difference and images won counts the images where the "
                "prediction beat bicubic. Values are in prediction.csv.",
            )
        )
        shown = prediction.assign(dataset=prediction["dataset"].map(lambda d: Path(d).name))
        blocks.append(
            Block(
                "table",
                table=_fmt(shown, {"psnr_liff": ".2f", "psnr_bicubic": ".2f", "gain_db": "+.2f"}),
            )
        )

    if has_paper_codec:
        blocks.append(Block("h2", "COMPASS paper (ICCV 2023) vs measured"))
        blocks.append(
            Block(
                "p",
                paper_bdrate().citation + ". Published BD-rates of COMPASS at the top "
                f"layer; measured values are this run's {paper_codec} at its top layer against the "
                "reference of the same kind. The harness contract says the paper's evaluation "
                "uses base:0.25 anchoring; a note marks rows measured otherwise. "
                + model_size_sentence(records),
            )
        )
        if paper.empty:
            blocks.append(
                Block(
                    "p",
                    f"None of this run's {paper_codec} scale combinations is in the paper's tables "
                    "(2 layers: scale 1.2–2.8; 3 layers: overall scale 2.4–4.0).",
                )
            )
        else:
            blocks.append(
                Block(
                    "table",
                    table=_fmt(
                        paper.drop(columns=["dataset"]), {"paper_bd_rate": "+.2f", "measured_bd_rate": "+.2f"}
                    ),
                )
            )
        blocks.append(Block("h3", "The paper's full tables (BD-rate %, Kodak)"))
        full = paper_bdrate().frame().reset_index()
        blocks.append(Block("table", table=full.rename(columns={"scale": "overall scale"})))

    blocks.append(Block("h2", "Aggregates per codec, scales, quality and layer"))
    blocks.append(
        Block(
            "table",
            table=_fmt(
                summary.assign(dataset=summary["dataset"].map(lambda d: Path(d).name)).drop(
                    columns=["height", "width"]  # means; ``size`` names the real sizes
                    + _hidden_metric_columns(summary, metric, yuv_measured)
                ),
                SUMMARY_FORMATS,
            ),
        )
    )

    if any(is_kodak(d) for d in datasets.index):
        blocks.append(Block("h2", "Published reference curves"))
        against_published = published_bd(records, published_curves())
        against_published.to_csv(out_dir / "bdrate_published.csv", index=False)
        if len(against_published):
            blocks.append(Block("p", "BD-rate (PCHIP, as above) of every full-size Kodak layer in the run "
                                     "(top anchoring, top layer) against the published curves, which are "
                                     "means over all 24 images: a run over fewer images is only indicative."))
            blocks.append(Block("table", table=_fmt(against_published, BD_FORMATS)))
        blocks.append(
            Block(
                "table",
                table=pd.DataFrame(
                    [
                        {"curve": c.name, "points": len(c.bpp), "source": c.citation}
                        for c in published_curves().values()
                    ]
                ),
            )
        )
    blocks.append(Block("h2", "Run manifests"))
    for run_dir, manifest in manifests:
        blocks.append(Block("p", str(run_dir)))
        blocks.append(Block("code", json.dumps(manifest, indent=1, default=str) if manifest else "{}"))

    (out_dir / "report.md").write_text(_markdown(blocks), encoding="utf-8")
    (out_dir / "report.html").write_text(_html(blocks, "bench report"), encoding="utf-8")
    return out_dir / "report.md"
