"""``build_report``: CSV tables, RD plots and one page (Markdown and HTML) for some run directories.

It joins four pieces, each usable alone: ``compute.compute_tables`` (the tables, no file written),
``files.write_table_files`` (the CSVs, LaTeX), ``plots.draw_plots`` (RD and strip plots) and, here,
``page_blocks`` with ``write_page`` (report.md, report.html)."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bench.anchors import paper_bdrate, published_curves
from bench.declared import Declarations
from bench.measuring import bdrate, ycbcr
from bench.measuring.rd_metrics import DEFAULT_METRIC, RDMetric
from bench.report.bdtables import NOT_SIGNIFICANT, ci_text
from bench.report.compute import ReportTables, Section, compute_tables
from bench.report.files import write_table_files
from bench.report.paper import PAPER_PROTOCOL, model_size_sentence
from bench.report.plots import ReportPlots, draw_plots
from bench.report.tables import KMAC_COLUMNS, YUV_AND_DB_COLUMNS, count_text, dataset_label
from bench.report.weights import mixed_curves, mixed_weights, weights_note

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
    css: str = ""  # an HTML class of the table (the glance table's numbers must not wrap)


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


_LINK = re.compile(r"\[([^\[\]]+)\]\(([^()\s]+)\)")


def _html_cell(value: object) -> str:
    """A cell as HTML: escaped, with a Markdown link ``[text](file)`` made an HTML link."""
    text = "NaN" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    return _LINK.sub(lambda m: f"<a href='{m.group(2)}'>{m.group(1)}</a>", html.escape(text, quote=False))


def _html_table(table: pd.DataFrame, index: bool, css: str) -> str:
    shown = table.map(_html_cell).rename(columns=lambda c: html.escape(str(c)))
    if index:
        shown.index = shown.index.map(lambda i: html.escape(str(i)))
    return shown.to_html(index=index, border=0, escape=False, classes=css or None)


def _html(blocks: list[Block], title: str) -> str:
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>",
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}",
        "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0 1.5em}",
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f0f0f0}",
        "img{max-width:100%}pre{background:#f6f6f6;padding:0.5em;overflow-x:auto;font-size:0.8em}",
        # a BD-rate and its interval read as one value: never broken over lines (the paper column may)
        # (the paper's figures, the last column, are text and may wrap)
        "table.glance td{white-space:nowrap}table.glance td:last-child{white-space:normal;min-width:14em}",
        "</style></head><body>",
    ]
    for b in blocks:
        if b.kind.startswith("h"):
            parts.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "table":
            parts.append(_html_table(b.table, b.index, b.css) if not b.table.empty else "<p>(none)</p>")
        elif b.kind == "img":
            parts.append(f"<p><img src='{html.escape(b.text)}' alt='{html.escape(b.text)}'></p>")
        elif b.kind == "code":
            parts.append(f"<details><summary>manifest</summary><pre>{html.escape(b.text)}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


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


def _rate_accounting(codecs: Sequence[str], declared: Declarations) -> list[Block]:
    """What each codec's rate counts besides picture data, as the codec declares it
    (``CodecInfo.rate_counts``), so that headers and integrity bytes are visible beside the numbers."""
    rows = [(codec, text) for codec in codecs if (text := declared(codec).rate_counts)]
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
}
# Columns a run may not have at all (no learned codec, no GPU, single repeats): left out when empty.
OPTIONAL_COST = {"warmup_s", "params", "cuda_peak_mib", "model_mb", *KMAC_COLUMNS}


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


def _split_view(split: pd.DataFrame, shared: dict[str, str]) -> pd.DataFrame:
    """The timing-split rows as a table: one part per row (they wrapped into 6–8 lines as one cell)."""
    view = split.assign(dataset=split["dataset"].map(lambda d: Path(str(d)).name),
                        median_s=split["median_s"].map(lambda v: f"{v:.3g}"),
                        share=[f"{v:.0%}" if in_call else "not in the time"
                               for v, in_call in zip(split["share"], split["in_call_time"])])
    keep = [c for c in [*COST_KEYS_SHOWN, "layer", "call", "part", "median_s", "share"] if c not in shared]
    return view[keep].rename(columns={"scales_label": "scales", "anchor": "pyramid", "median_s": "median s",
                                      "share": "share of the call"})


COST_KEYS_SHOWN = ["codec", "dataset", "scales_label", "anchor", "device", "threads"]


def _cost_blocks(costs: pd.DataFrame, layer_costs: pd.DataFrame, modules: pd.DataFrame,
                 split: pd.DataFrame) -> list[Block]:
    shared = _shared_settings(layer_costs)
    every_row = "; ".join(f"{SHARED_COST[c]} {v}" for c, v in shared.items())
    repeats = int(layer_costs["repeats"].max()) if len(layer_costs) else 1
    blocks = [
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
            "(per module in the table below and params_modules.csv). Peak RSS: the largest growth of "
            "resident memory during one job's codec "
            "calls, child processes included (their shared libraries count: an ffmpeg process is a few "
            "hundred MiB). CUDA peak: max allocated. Model MB: weights on disk for one quality. "
            + (_KMAC_TEXT if _has_kmac(costs) else "")
            + "All values are in cost_summary.csv.",
        ),
        Block("table", table=_cost_view(costs, COST_SUMMARY_COLUMNS, shared)),
    ]
    if len(modules):
        blocks += [
            Block("h3", "Parameters per module"),
            Block("p", "Parameters of each module the codec reports (extra.params), and its share of the "
                       "codec's total; in params_modules.csv."),
            Block("table", table=modules.assign(
                params=modules["params"].map(count_text),
                share=modules["share"].map(lambda v: "" if pd.isna(v) else f"{v:.0%}"))),
        ]
    blocks += [
        Block("h3", "Median time per layer"),
        Block(
            "p",
            "Median over images and qualities of one record's times. Scalable codec: encode s is the whole "
            "bitstream's encode (the same call for every layer) and decode s decodes layers 0..k. "
            "Single-layer codec: each layer is coded alone, so both times are that layer's own. kpixels: "
            "median pixels of the layer. "
            + ("" if len(split) else
               "No codec here reports a split of its encode time (e.g. network vs entropy coding). ")
            + "All values, params and memory included, are in cost.csv.",
        ),
        Block("table", table=_cost_view(layer_costs, COST_LAYER_COLUMNS, shared)),
    ]
    if len(split):
        blocks += [
            Block("h3", "Encode/decode split (codec-internal)"),
            Block("p", "The codec's own timing of parts of its encode/decode call (e.g. network vs entropy "
                       "coding): median seconds over images and qualities, and share of that call's median "
                       "time; a self-check (check_*) runs outside the timed call. In timing_split.csv."),
            Block("table", table=_split_view(split, shared)),
        ]
    return blocks


def _hidden_metric_columns(summary: pd.DataFrame, metric: str, yuv_measured: bool) -> list[str]:
    """The YUV and MS-SSIM dB columns the aggregates table leaves out: all of them for runs that did
    not measure the YUV metrics (unless ``--metric`` asks for one), else those without a value."""
    if metric == DEFAULT_METRIC and not yuv_measured:
        return list(YUV_AND_DB_COLUMNS)
    return [column for column in YUV_AND_DB_COLUMNS if summary[column].isna().all()]


def _glance_blocks(tables: dict[str, pd.DataFrame], strips: dict[tuple, str], metric: RDMetric,
                   average: str, bootstrap: int) -> list[Block]:
    blocks: list[Block] = []
    for codec, table in tables.items():
        blocks.append(Block("h2", f"At a glance: {codec}'s top layer against each reference"))
        convention = ("BD-rate of the mean curves (CompressAI's convention)" if average == "curves"
                      else "mean of the per-image BD-rates (JPEG AI's convention)")
        text = (
            f"BD-rate % ({metric.label}, PCHIP; {convention}) of {codec}'s top layer (its bits of all layers) "
            "against each reference at the same size, negative when it needs fewer bits"
            + (f", with its 95 % bootstrap interval over images in brackets ({bootstrap} resamples; "
               f"{NOT_SIGNIFICANT} when the interval contains 0: these images do not settle the sign)"
               if bootstrap else "")
            + "; a blank cell: the run lacks that reference there; (overlap): the curves overlap too little "
            "for a BD-rate; (no BD-rate): another reason (bdrate.csv says which). per image: a strip plot "
            "of each image's own BD-rate against each "
            "reference. The sections below hold every layer and every pair."
        )
        if "paper" in table:
            text += (" paper: the figures the paper reports for that scale combination against its anchors, "
                     f"in its protocol ({PAPER_PROTOCOL}), on Kodak rows only: the paper reports Kodak.")
        blocks.append(Block("p", text))
        shown = table.copy()
        links = [f"[strip]({strips[(codec, r.dataset, r.protocol, _label_of(r.scales))]})"
                 if (codec, r.dataset, r.protocol, _label_of(r.scales)) in strips else "" for r in shown.itertuples()]
        # before the paper's figures, which stay the last column (they may wrap in the HTML page)
        shown.insert(len(shown.columns) - ("paper" in shown), "per image", links)
        blocks.append(Block("table", table=shown, css="glance"))
    return blocks


def _label_of(scales_text: str) -> str:
    """The glance table's ``×1.5, ×1.6`` back to the scales label ``1.5,1.6``."""
    return str(scales_text).replace("×", "").replace(", ", ",")


def _bootstrap_text(bootstrap: int, average: str) -> str:
    if not bootstrap:
        return "No intervals (bench report --bootstrap 0). " + _average_text(average)
    return (
        f"Intervals: 95 % percentile bootstrap over images with {bootstrap} resamples and a fixed seed "
        f"({bdrate.BOOTSTRAP_SEED}; bench report --bootstrap N, 0 for none). Each resample draws as many images "
        "as the pair has, with replacement, and the same images for both codecs (paired), averages each "
        "codec's curve over them and integrates the BD-rate as above; the interval is the 2.5th and 97.5th "
        "percentiles of the resampled BD-rates (ci_low, ci_high). Against a published curve only the run's "
        "images are resampled (the published curve is a fixed mean): nothing cancels the spread between images "
        "there, as it does when both codecs see the same draw, so those intervals are far wider. A resample "
        "whose curves overlap too little has no BD-rate and is left out (the note says how many were used). "
        "The interval says how much the figure depends on which images were picked, not how well the curves "
        "were interpolated; "
        f"{NOT_SIGNIFICANT} marks an interval that contains 0. " + _average_text(average)
    )


def _average_text(average: str) -> str:
    return (
        "Two averaging conventions are in the CSVs: bd_rate is the BD-rate of the mean curves (CompressAI: "
        "average bpp and quality over images, then one BD-rate), bd_rate_images the mean of each image's own "
        "BD-rate (JPEG AI's CTC and many papers; bdrate_images.csv holds every image's value, NaN where an "
        "image's curves overlap too little). Per pair the report also gives their median, quartiles (IQR) "
        "and the worst image (the largest BD-rate). "
        + ("Tables here lead with the mean curves (bench report --bd-average curves)."
           if average == "curves" else
           "Tables here lead with the mean of per-image BD-rates (bench report --bd-average images); its "
           "interval resamples those per-image values.")
    )


FOCUS_COLUMNS = ["layer", "codec", "reference", "reference_role", "bd_rate", "ci", "bd_psnr", "images",
                 "images_median", "images_iqr", "worst", "overlap_fraction", "reason", "note"]


def _focus_view(focus: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """The contract's pairs of one comparison: the BD-rate (the chosen convention) with its interval,
    and how the per-image BD-rates spread (median, IQR, the worst image)."""
    def iqr(row: pd.Series) -> str:
        q1, q3 = row.get("images_q1"), row.get("images_q3")
        return "" if pd.isna(q1) else f"{q1:+.1f} … {q3:+.1f}"

    def worst(row: pd.Series) -> str:
        value = row.get("worst_image_bd_rate")
        return "" if pd.isna(value) else f"{row['worst_image']} {value:+.1f}"

    view = focus.assign(ci=[ci_text(lo, hi) for lo, hi in zip(focus["ci_low"], focus["ci_high"])],
                        images_iqr=focus.apply(iqr, axis=1) if len(focus) else "",
                        worst=focus.apply(worst, axis=1) if len(focus) else "")
    formats = BD_FORMATS | {"images_median": "+.1f"}
    labels = {"ci": "95 % interval", "images_median": "per-image median", "images_iqr": "per-image IQR",
              "worst": "worst image"} | names
    return _fmt(view.reindex(columns=FOCUS_COLUMNS), formats, labels)


def _head_blocks(tables: ReportTables, plots: ReportPlots, weights_warning: str | None) -> list[Block]:
    """The page's top: the runs and their datasets, the glance tables, the method."""
    datasets = tables.images_per_dataset
    blocks = [
        Block("h1", "bench report"),
        Block("p", "Runs: " + ", ".join(str(d) for d in tables.run_dirs) + "."),
        Block("table", table=pd.DataFrame({"dataset": [dataset_label(d) for d in datasets.index],
                                           "images in this run": datasets.values})),
        # rows that compare two models under one codec name need saying before any table shows them
        *([Block("p", weights_warning)] if weights_warning else []),
        *_glance_blocks(tables.glances, plots.strips, tables.metric, tables.bd_average, tables.bootstrap),
    ]
    if tables.reused:
        blocks.append(Block("p", f"Single-layer full-image records of {', '.join(tables.reused)} (scales [], top "
                                 "anchoring) are used as the top layer of every top-anchored scale combination, "
                                 "since that layer is the source image itself."))
    return [
        *blocks,
        *_method_text(tables.metric, list(tables.yuv_matrices), tables.yuv_measured),
        Block("p", _bootstrap_text(tables.bootstrap, tables.bd_average)),
        *_rate_accounting(tables.codecs, tables.declared),
    ]


def _section_blocks(section: Section, image: str | None, metric: RDMetric) -> list[Block]:
    """One comparison: its RD plot (``image``; None when nothing could be drawn) and BD-rate tables."""
    blocks = [Block("h2", section.title)]
    if image is None:
        blocks.append(Block("p", f"No finite (bpp, {metric.axis}) point to plot."))
    else:
        blocks.append(Block("img", image))
    if section.shows_published:
        blocks.append(Block("p", "Grey lines: published mbt2018-mean, BPG-444 and JPEG results on full-size "
                                 "Kodak images (CompressAI); they are comparable only to a layer that is the "
                                 "full 768×512 image."))
    on_metric = "" if metric.name == DEFAULT_METRIC else f" ({metric.label})"
    bd_names = {} if metric.name == DEFAULT_METRIC else {"bd_psnr": f"BD-{metric.with_unit}"}
    blocks += [Block("h3", "BD-rate against the contract's anchors" + on_metric),
               Block("table", table=_focus_view(section.focus, bd_names))]
    for layer, matrix in section.layer_matrices:
        blocks += [Block("h4", f"Layer {layer}: BD-rate % of every codec (row) against every other (column)"
                         + on_metric),
                   Block("table", table=matrix, index=True)]
    return blocks


def _prediction_blocks(prediction: pd.DataFrame) -> list[Block]:
    if not len(prediction):
        return []
    shown = prediction.assign(dataset=prediction["dataset"].map(lambda d: Path(d).name))
    return [
        Block("h2", "Inter-layer prediction"),
        Block("p", "Per enhancement layer: PSNR (RGB, 8-bit) of the codec's prediction of the layer (COMPASS: "
                   "LIFF) and of bicubic upsampling of the same decoded lower layer, means over images; "
                   "gain dB is the mean per-image difference and images won counts the images where the "
                   "prediction beat bicubic. Values are in prediction.csv."),
        Block("table", table=_fmt(shown, {"psnr_liff": ".2f", "psnr_bicubic": ".2f", "gain_db": "+.2f"})),
    ]


def _paper_blocks(paper: pd.DataFrame | None, records: pd.DataFrame, declared: Declarations) -> list[Block]:
    """The COMPASS paper's published BD-rates beside the measured ones (None: no run holds its codec)."""
    if paper is None:
        return []
    paper_codec = paper_bdrate().codec
    blocks = [
        Block("h2", "COMPASS paper (ICCV 2023) vs measured"),
        Block("p", paper_bdrate().citation + ". Published BD-rates of COMPASS at the top "
                   f"layer; measured values are this run's {paper_codec} at its top layer against the "
                   "reference of the same kind. The harness contract says the paper's evaluation "
                   "uses base:0.25 anchoring; a note marks rows measured otherwise. "
                   + model_size_sentence(records, declared)),
    ]
    if paper.empty:
        blocks.append(Block("p", f"None of this run's {paper_codec} scale combinations is in the paper's tables "
                                 "(2 layers: scale 1.2–2.8; 3 layers: overall scale 2.4–4.0)."))
    else:
        blocks.append(Block("table", table=_fmt(paper.drop(columns=["dataset"]),
                                                {"paper_bd_rate": "+.2f", "measured_bd_rate": "+.2f"})))
    full = paper_bdrate().frame().reset_index()
    return [*blocks, Block("h3", "The paper's full tables (BD-rate %, Kodak)"),
            Block("table", table=full.rename(columns={"scale": "overall scale"}))]


def _aggregate_blocks(tables: ReportTables) -> list[Block]:
    summary = tables.summary
    hidden = _hidden_metric_columns(summary, tables.metric.name, tables.yuv_measured)
    shown = summary.assign(dataset=summary["dataset"].map(lambda d: Path(d).name)).drop(
        columns=["height", "width"] + hidden)  # height and width are means; ``size`` names the real sizes
    return [Block("h2", "Aggregates per codec, scales, quality and layer"),
            Block("table", table=_fmt(shown, SUMMARY_FORMATS))]


def _published_blocks(published: pd.DataFrame | None) -> list[Block]:
    """The run's full-size Kodak layers against the published curves (None: no Kodak in the runs)."""
    if published is None:
        return []
    blocks = [Block("h2", "Published reference curves")]
    if len(published):
        blocks.append(Block("p", "BD-rate (PCHIP, as above) of every full-size Kodak layer in the run "
                                 "(top anchoring, top layer) against the published curves, which are "
                                 "means over all 24 images: a run over fewer images is only indicative."))
        shown = published.assign(dataset=published["dataset"].map(lambda d: Path(d).name),
                                 ci=[ci_text(lo, hi) for lo, hi in zip(published["ci_low"], published["ci_high"])])
        columns = ["dataset", "codec", "scales", "layer", "images", "reference", "bd_rate", "ci", "bd_psnr",
                   "reason", "psnr_reason", "note"]
        blocks.append(Block("table", table=_fmt(shown[columns], BD_FORMATS,
                                                {"ci": "95 % interval", "psnr_reason": "BD-PSNR NaN because"})))
    curves = [{"curve": c.name, "points": len(c.bpp), "source": c.citation} for c in published_curves().values()]
    return [*blocks, Block("table", table=pd.DataFrame(curves))]


def _weights_blocks(weights: pd.DataFrame, note: str) -> list[Block]:
    """Which weights file coded which learned records (weights.csv); nothing when no record names one."""
    if weights.empty:
        return []
    return [Block("h2", "Weights of the learned codecs"),
            Block("p", note + " sha256: the first 16 hex digits of the file's "
                       "SHA-256 (each record's extra.weights_id holds all of it)."),
            Block("table", table=weights)]


def _manifest_blocks(manifests: Sequence[tuple[Path, dict]]) -> list[Block]:
    blocks = [Block("h2", "Run manifests")]
    for run_dir, manifest in manifests:
        blocks += [Block("p", str(run_dir)),
                   Block("code", json.dumps(manifest, indent=1, default=str) if manifest else "{}")]
    return blocks


def page_blocks(tables: ReportTables, plots: ReportPlots) -> list[Block]:
    """The whole page, top to bottom, from the tables and the names of the plots drawn of them."""
    curves = mixed_curves(tables.records)  # read once: the head and the weights section both say it
    note = weights_note(tables.weights, curves)
    blocks = _head_blocks(tables, plots, note if curves or mixed_weights(tables.weights) else None)
    for section in tables.sections:
        blocks += _section_blocks(section, plots.rd.get(section.key), tables.metric)
    # Beside the BD-rate tables: what the bits cost in time, memory and size.
    blocks += _cost_blocks(tables.costs, tables.layer_costs, tables.modules, tables.split)
    blocks += _prediction_blocks(tables.prediction)
    blocks += _paper_blocks(tables.paper, tables.records, tables.declared)
    blocks += _aggregate_blocks(tables)
    blocks += _published_blocks(tables.published)
    blocks += _weights_blocks(tables.weights, note)
    return blocks + _manifest_blocks(tables.manifests)


def write_page(blocks: list[Block], out_dir: Path, title: str = "bench report") -> Path:
    """Write ``blocks`` as ``out_dir``/report.md and report.html; return the path of report.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.md").write_text(_markdown(blocks), encoding="utf-8")
    (out_dir / "report.html").write_text(_html(blocks, title), encoding="utf-8")
    return out_dir / "report.md"


def build_report(run_dirs: Sequence[Path], out_dir: Path, metric: str = DEFAULT_METRIC,
                 bootstrap: int = bdrate.DEFAULT_BOOTSTRAP, bd_average: str = "curves", latex: bool = False) -> Path:
    """Write tables (CSV), BD-rate tables, RD plots (PNG, SVG), report.md and report.html to
    ``out_dir``; return the path of ``report.md``. ``metric`` (``bench.measuring.rd_metrics``) is the quality
    axis of the BD-rate tables and RD plots; ``bootstrap`` the resamples of the BD-rate intervals (0:
    none); ``bd_average`` the convention tables lead with (``curves``: BD-rate of the mean curves,
    ``images``: mean of per-image BD-rates; both are in the CSVs); ``latex`` also writes the glance
    and per-layer BD tables as LaTeX (booktabs).

    Four pieces, each usable alone: ``compute_tables`` (which refuses a setting it cannot use before
    anything is read or written), ``write_table_files``, ``draw_plots`` and ``page_blocks``."""
    tables = compute_tables(run_dirs, metric, bootstrap, bd_average)
    write_table_files(tables, out_dir, latex)
    plots = draw_plots(tables, out_dir)
    return write_page(page_blocks(tables, plots), out_dir)
