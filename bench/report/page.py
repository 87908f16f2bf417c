"""``build_report``: CSV tables, RD plots and one page (Markdown and HTML) for some run directories."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bench import bdrate, ycbcr
from bench.anchors import paper_bdrate, published_curves
from bench.errors import ReportError
from bench.pyramid import Anchoring, layer_fractions
from bench.rd_metrics import DEFAULT_METRIC, METRICS, RDMetric
from bench.registry import rate_counts
from bench.report.bdtables import (
    AVERAGES,
    NOT_SIGNIFICANT,
    add_full_size_single_layer,
    bd_tables,
    ci_text,
    lead,
    matrices,
    published_bd,
)
from bench.report.glance import glance_keys, glance_tables
from bench.report.latex import write_latex
from bench.report.load import load_manifests, load_records
from bench.report.paper import PAPER_PROTOCOL, is_paper_codec, model_size_sentence, paper_comparison
from bench.report.plots import codec_colours, rd_plot, slug, strip_name, strip_plot
from bench.report.tables import (
    KMAC_COLUMNS,
    YUV_AND_DB_COLUMNS,
    aggregate,
    cost_by_layer,
    cost_table,
    count_text,
    dataset_label,
    dataset_order,
    is_kodak,
    params_by_module,
    prediction_table,
    timing_split,
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
            + "; a blank cell: the run lacks that reference there, or the curves overlap too little "
            "(bdrate.csv says which). per image: a strip plot of each image's own BD-rate against each "
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


def _scales_of(label: str) -> tuple[float, ...]:
    """The ratios of a scales label (``"1 layer"``: none)."""
    return () if label == "1 layer" else tuple(float(x) for x in str(label).split(","))


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


def _strip_plots(long: pd.DataFrame, per_image: pd.DataFrame, out_dir: Path, metric: RDMetric) -> dict[tuple, str]:
    """A strip plot of per-image BD-rates for each glance-table row (one strip per reference);
    ``{(codec, dataset, protocol, scales label): file name}``."""
    out: dict[tuple, str] = {}
    if long.empty or per_image.empty:
        return out
    from bench.report.glance import glance_references

    for codec, keys in glance_keys(long).items():
        references = glance_references(long, codec)
        for dataset, protocol, label in keys:
            top = len(_scales_of(label))
            where = ((long["codec"] == codec) & (long["dataset"] == dataset) & (long["anchor"] == protocol)
                     & (long["scales_label"] == label) & (long["layer"] == top))
            pairs = long[where].set_index("reference").reindex(
                [r for r in references if r in set(long.loc[where, "reference"])]).reset_index()
            images = per_image[(per_image["codec"] == codec) & (per_image["dataset"] == dataset)
                               & (per_image["anchor"] == protocol) & (per_image["scales_label"] == label)
                               & (per_image["layer"] == top)]
            name = strip_name(codec, dataset, protocol, label)
            title = (f"{codec}, top layer, {Path(dataset).name} {protocol} ×{label.replace(',', ', ×')}: "
                     f"per-image BD-rate ({metric.label})")
            strip_plot(images, pairs, title, out_dir / name)
            out[(codec, dataset, protocol, label)] = name
    return out


def _has_full_size_layer(protocol: str, scales: Sequence[float]) -> bool:
    """Whether one layer of the pyramid is the source itself: only then are the published full-size
    Kodak curves comparable (top anchoring always; base:F only when F·s1·…·sK reaches 1)."""
    try:
        return any(f == 1 for f in layer_fractions(scales, Anchoring.parse(protocol)))
    except ValueError:
        return False


def build_report(run_dirs: Sequence[Path], out_dir: Path, metric: str = DEFAULT_METRIC,
                 bootstrap: int = bdrate.DEFAULT_BOOTSTRAP, bd_average: str = "curves", latex: bool = False) -> Path:
    """Write tables (CSV), BD-rate tables, RD plots (PNG, SVG), report.md and report.html to
    ``out_dir``; return the path of ``report.md``. ``metric`` (``bench.rd_metrics``) is the quality
    axis of the BD-rate tables and RD plots; ``bootstrap`` the resamples of the BD-rate intervals (0:
    none); ``bd_average`` the convention tables lead with (``curves``: BD-rate of the mean curves,
    ``images``: mean of per-image BD-rates; both are in the CSVs); ``latex`` also writes the glance
    and per-layer BD tables as LaTeX (booktabs)."""
    if metric not in METRICS:
        raise ReportError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if bd_average not in AVERAGES:
        raise ReportError(f"unknown BD average {bd_average!r}; use {' or '.join(AVERAGES)}")
    if bootstrap < 0:
        raise ReportError(f"--bootstrap must be 0 (no intervals) or a number of resamples, got {bootstrap}")
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
    computed, per_image = bd_tables(compared, metric, bootstrap)
    # tables lead with the chosen convention; the CSVs keep both (bd_rate and bd_rate_images)
    long = lead(computed, bd_average)
    # the paper's tables and the published curves are PSNR-RGB: those comparisons stay on it
    long_rgb = long if metric == DEFAULT_METRIC else lead(bd_tables(compared, bootstrap=bootstrap)[0], bd_average)
    bd_names = {} if metric == DEFAULT_METRIC else {"bd_psnr": f"BD-{chosen.with_unit}"}
    costs = cost_table(records)
    layer_costs = cost_by_layer(records)
    summary.to_csv(out_dir / "summary.csv", index=False)
    computed.assign(metric=metric).to_csv(out_dir / "bdrate.csv", index=False)
    # the contract's BD-rates are per layer k ≥ 1 (layer 0 of a scalable codec is its BL plus
    # framing: that row stays in bdrate.csv)
    focus_rows = computed[computed["focus"].astype(bool) & (computed["layer"] >= 1)].assign(metric=metric)
    focus_rows.to_csv(out_dir / "bdrate_focus.csv", index=False)
    per_image.assign(metric=metric).to_csv(out_dir / "bdrate_images.csv", index=False)
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
    glances = glance_tables(long, paper if metric == DEFAULT_METRIC else None)
    for codec, table in glances.items():
        table.to_csv(out_dir / f"glance_{slug(codec)}.csv", index=False)
    strips = _strip_plots(long, per_image, out_dir, chosen)
    blocks += _glance_blocks(glances, strips, chosen, bd_average, bootstrap)
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
    blocks.append(Block("p", _bootstrap_text(bootstrap, bd_average)))
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
        # the published curves are PSNR-RGB, of the full-size picture: drawn where one layer is the source
        published = (is_kodak(dataset) and metric == DEFAULT_METRIC
                     and _has_full_size_layer(protocol, _scales_of(label)))
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
        blocks.append(Block("table", table=_focus_view(focus, bd_names)))
        for layer in sorted(group["layer"].unique()):
            key = (dataset, protocol, label, layer)
            if key in all_matrices:
                blocks.append(
                    Block("h4", f"Layer {layer}: BD-rate % of every codec (row) against every other (column)"
                          + on_metric)
                )
                blocks.append(Block("table", table=all_matrices[key], index=True))

    # Beside the BD-rate tables: what the bits cost in time, memory and size.
    modules = params_by_module(records)
    split = timing_split(layer_costs)
    if len(modules):
        modules.to_csv(out_dir / "params_modules.csv", index=False)
    if len(split):
        split.to_csv(out_dir / "timing_split.csv", index=False)
    blocks += _cost_blocks(costs, layer_costs, modules, split)

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
        against_published = published_bd(records, published_curves(), bootstrap)
        against_published.to_csv(out_dir / "bdrate_published.csv", index=False)
        if len(against_published):
            blocks.append(Block("p", "BD-rate (PCHIP, as above) of every full-size Kodak layer in the run "
                                     "(top anchoring, top layer) against the published curves, which are "
                                     "means over all 24 images: a run over fewer images is only indicative."))
            shown = against_published.assign(
                dataset=against_published["dataset"].map(lambda d: Path(d).name),
                ci=[ci_text(lo, hi) for lo, hi in zip(against_published["ci_low"], against_published["ci_high"])])
            columns = ["dataset", "codec", "scales", "layer", "images", "reference", "bd_rate", "ci", "bd_psnr",
                       "reason", "psnr_reason", "note"]
            blocks.append(Block("table", table=_fmt(shown[columns], BD_FORMATS,
                                                    {"ci": "95 % interval", "psnr_reason": "BD-PSNR NaN because"})))
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

    if latex:
        write_latex(out_dir, glances, focus_rows, bd_average)
    (out_dir / "report.md").write_text(_markdown(blocks), encoding="utf-8")
    (out_dir / "report.html").write_text(_html(blocks, "bench report"), encoding="utf-8")
    return out_dir / "report.md"
