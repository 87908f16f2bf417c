"""RD plots: bpp vs a quality metric (PSNR-RGB unless ``bench report --metric`` says otherwise), one
figure per (dataset, pyramid protocol, scale combination), and per-image BD-rate strip plots;
``draw_plots`` draws all of them from ``compute_tables``'s tables (the third of ``build_report``'s
four pieces)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from bench.anchors import published_curves  # noqa: E402
from bench.declared import REGISTERED, Declarations  # noqa: E402
from bench.measuring.rd_metrics import DEFAULT_METRIC, METRICS, RDMetric  # noqa: E402
from bench.report.compute import ReportTables, scales_of  # noqa: E402
from bench.report.glance import glance_keys, glance_references  # noqa: E402

# Marker and line style per layer; colour per codec.
LAYER_STYLES = [("o", ":"), ("s", "--"), ("^", "-"), ("D", "-."), ("v", (0, (5, 1))), ("P", (0, (1, 1)))]
PUBLISHED_STYLES = {"mbt2018-mean": ("x", "-"), "BPG-444": ("+", "--"), "JPEG": ("1", ":")}


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Write ``fig`` to ``path``; an SVG without its creation date and with element ids that do not
    change between runs, so the same records give the same report files."""
    metadata = {"Date": None} if path.suffix == ".svg" else None
    with matplotlib.rc_context({"svg.hashsalt": "bench-report"}):
        fig.savefig(path, bbox_inches="tight", metadata=metadata)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "x"


PUBLISHED_COLOUR = "0.35"


def _is_grey(colour: tuple) -> bool:
    red, green, blue = colour[:3]
    return max(red, green, blue) - min(red, green, blue) < 0.05


def codec_colours(codecs: list[str]) -> dict[str, tuple]:
    """A colour per codec from tab10/tab20 with their greys left out: grey is the published reference
    curves' colour, and a codec drawn in it (x265 was, as tab10's 8th) reads as a reference."""
    cmap = plt.get_cmap("tab10" if len(codecs) <= 8 else "tab20")
    palette = [cmap(i) for i in range(cmap.N) if not _is_grey(cmap(i))]
    return {codec: palette[i % len(palette)] for i, codec in enumerate(sorted(codecs))}


def strip_name(codec: str, dataset: str, anchor: str, label: str) -> str:
    """File name of the per-image strip plot of a glance-table row."""
    return f"strip_{slug(codec)}_{slug(Path(dataset).name)}_{slug(anchor)}_{slug(label)}.png"


def strip_plot(per_image: pd.DataFrame, pairs: pd.DataFrame, title: str, path: Path) -> Path:
    """One strip per reference: each image's own BD-rate of the pair (dots, the worst named), the
    mean of them (the ``images`` average, diamond) and the BD-rate of the mean curves with its 95 %
    bootstrap interval (bar). ``per_image``: bdrate_images rows of the pairs; ``pairs``: their
    bdrate.csv rows, in the order to draw."""
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.55 * max(len(pairs), 1)), dpi=100)
    jitter = np.random.default_rng(0)  # fixed: the same figure every time
    for y, pair in enumerate(pairs.itertuples()):
        values = per_image.loc[per_image["reference"] == pair.reference, ["image", "bd_rate"]].dropna()
        ax.scatter(values["bd_rate"], y + jitter.uniform(-0.15, 0.15, len(values)), s=14, color="tab:blue",
                   alpha=0.7, zorder=2, label="one image" if y == 0 else None)
        if pd.notna(pair.bd_rate):
            if pd.notna(getattr(pair, "ci_low", np.nan)):
                ax.plot([pair.ci_low, pair.ci_high], [y + 0.3, y + 0.3], color="black", linewidth=2,
                        label="curves: 95 % interval" if y == 0 else None)
            ax.scatter([pair.bd_rate], [y + 0.3], marker="|", s=200, color="black", zorder=3,
                       label="curves: BD-rate of the mean curves" if y == 0 else None)
        if pd.notna(getattr(pair, "bd_rate_images", np.nan)):
            ax.scatter([pair.bd_rate_images], [y], marker="D", s=40, color="tab:red", zorder=3,
                       label="images: mean of per-image BD-rates" if y == 0 else None)
        if len(values):
            worst = values.loc[values["bd_rate"].idxmax()]
            ax.annotate(str(worst["image"]), (worst["bd_rate"], y - 0.2), fontsize=7, ha="center", va="top")
    ax.axvline(0, color="0.5", linewidth=0.8)
    ax.set_yticks(range(len(pairs)), [f"vs {r}" for r in pairs["reference"]])
    ax.set_ylim(len(pairs) - 0.4, -0.6)
    ax.set_xlabel("BD-rate % (negative: fewer bits than the reference)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def rd_plot(
    summary: pd.DataFrame,
    title: str,
    out_stem: Path,
    colours: dict[str, tuple],
    published: bool,
    metric: RDMetric = METRICS[DEFAULT_METRIC],
) -> list[Path]:
    """Draw ``summary`` rows (one comparison: all codecs and layers) to ``out_stem``.png/.svg, the
    quality axis ``metric``'s column; ``published`` adds the published PSNR-RGB curves."""
    column = metric.column
    fig, ax = plt.subplots(figsize=(10, 6.2), dpi=110)
    layers = sorted(summary["layer"].unique())
    for (codec, layer), rows in summary.groupby(["codec", "layer"], sort=True):
        rows = rows.sort_values("bpp")
        marker, linestyle = LAYER_STYLES[int(layer) % len(LAYER_STYLES)]
        # Slightly transparent so that identical curves (simulcast's BL is its inner codec's) both show.
        ax.plot(
            rows["bpp"],
            rows[column],
            color=colours[codec],
            alpha=0.8,
            marker=marker,
            linestyle=linestyle,
            linewidth=1.6,
            markersize=5,
        )

    xmax = summary["bpp"].max() * 1.08
    ymin, ymax = summary[column].min(), summary[column].max()
    published_handles = []
    if published:
        for name, curve in published_curves().items():
            marker, linestyle = PUBLISHED_STYLES.get(name, (".", "-"))
            ax.plot(
                curve.bpp,
                curve.psnr,
                color=PUBLISHED_COLOUR,
                marker=marker,
                linestyle=linestyle,
                linewidth=1.0,
                markersize=6,
                alpha=0.8,
                zorder=1,
            )
            published_handles.append(
                Line2D(
                    [],
                    [],
                    color=PUBLISHED_COLOUR,
                    marker=marker,
                    linestyle=linestyle,
                    label=f"{name} (published, full-size Kodak)",
                )
            )
    ax.set_xlim(0, xmax)
    pad = max(0.5, 0.05 * (ymax - ymin))
    ax.set_ylim(ymin - pad, ymax + pad)
    ax.set_xlabel("bits per pixel of the layer shown (all layers needed to decode it)")
    ax.set_ylabel(metric.with_unit.replace(" dB", " (dB)"))
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)

    codec_handles = [
        Line2D([], [], color=colours[c], linewidth=3, label=c) for c in sorted(summary["codec"].unique())
    ]
    sizes = summary.groupby("layer")["size"].first()
    layer_handles = [
        Line2D(
            [],
            [],
            color="black",
            marker=LAYER_STYLES[int(k) % len(LAYER_STYLES)][0],
            linestyle=LAYER_STYLES[int(k) % len(LAYER_STYLES)][1],
            label=f"layer {k} ({sizes.loc[k]})",
        )
        for k in layers
    ]
    # Legends sit outside the axes so that curves are never hidden behind them.
    first = ax.legend(
        handles=codec_handles,
        title="codec",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=9,
        title_fontsize=9,
    )
    ax.add_artist(first)
    second = ax.legend(
        handles=layer_handles,
        title="layer (mean size)",
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        fontsize=9,
        title_fontsize=9,
    )
    if published_handles:
        ax.add_artist(second)
        ax.legend(
            handles=published_handles,
            title="reference",
            loc="lower left",
            bbox_to_anchor=(1.01, 0.0),
            fontsize=8,
            title_fontsize=9,
        )
    fig.tight_layout()
    paths = []
    for suffix in (".png", ".svg"):
        path = out_stem.parent / (out_stem.name + suffix)  # the stem may contain dots (1.5)
        save_figure(fig, path)
        paths.append(path)
    plt.close(fig)
    return paths


@dataclass(frozen=True)
class ReportPlots:
    """The file names of the plots drawn, as the page links them (relative to the report folder)."""

    rd: dict[tuple[str, str, str], str | None]  # {Section.key: RD plot .png}; None: no finite point to draw
    strips: dict[tuple[str, str, str, str], str]  # {(codec, dataset, protocol, scales label): strip plot .png}


def draw_strip_plots(shown: pd.DataFrame, per_image: pd.DataFrame, out_dir: Path, metric: RDMetric,
                     declared: Declarations = REGISTERED) -> dict[tuple[str, str, str, str], str]:
    """A strip plot of per-image BD-rates for each glance-table row (one strip per reference) of the
    BD-rate rows ``shown`` (``ReportTables.bd_shown``) and the images' own ``per_image`` BD-rates;
    ``{(codec, dataset, protocol, scales label): file name}``."""
    out: dict[tuple[str, str, str, str], str] = {}
    if shown.empty or per_image.empty:
        return out
    for codec, keys in glance_keys(shown, declared).items():
        references = glance_references(shown, codec, declared)
        for dataset, protocol, label in keys:
            top = len(scales_of(label))
            where = ((shown["codec"] == codec) & (shown["dataset"] == dataset) & (shown["anchor"] == protocol)
                     & (shown["scales_label"] == label) & (shown["layer"] == top))
            pairs = shown[where].set_index("reference").reindex(
                [r for r in references if r in set(shown.loc[where, "reference"])]).reset_index()
            images = per_image[(per_image["codec"] == codec) & (per_image["dataset"] == dataset)
                               & (per_image["anchor"] == protocol) & (per_image["scales_label"] == label)
                               & (per_image["layer"] == top)]
            name = strip_name(codec, dataset, protocol, label)
            title = (f"{codec}, top layer, {Path(dataset).name} {protocol} ×{label.replace(',', ', ×')}: "
                     f"per-image BD-rate ({metric.label})")
            strip_plot(images, pairs, title, out_dir / name)
            out[(codec, dataset, protocol, label)] = name
    return out


def draw_plots(tables: ReportTables, out_dir: Path) -> ReportPlots:
    """Draw the strip plots of the glance tables and one RD plot (PNG and SVG) per section of
    ``tables`` into ``out_dir``; return their file names for the page."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    strips = draw_strip_plots(tables.bd_shown, tables.per_image, out_dir, tables.metric, tables.declared)
    colours = codec_colours(tables.codecs)
    rd: dict[tuple[str, str, str], str | None] = {}
    stems: set[str] = set()
    for section in tables.sections:
        name = f"rd_{slug(Path(section.dataset).name)}_{slug(section.protocol)}_{slug(section.label)}"
        # two datasets of one folder name (kodak of two paths) must not overwrite each other's plot
        stem = out_dir / (name if name not in stems else f"{name}_{len(stems)}")
        stems.add(stem.name)
        curves = section.curves
        drawable = curves[np.isfinite(curves["bpp"]) & np.isfinite(curves[tables.metric.column])]
        if drawable.empty:
            rd[section.key] = None
            continue
        rd_plot(drawable, section.title, stem, colours, published=section.shows_published, metric=tables.metric)
        rd[section.key] = f"{stem.name}.png"
    return ReportPlots(rd, strips)
