"""BD-rate of every codec against every other at the same layer images, plus the contract's pairs.

Curves compared at one (dataset, pyramid protocol, scales, layer) show the same layer images, so
any two codecs there can be compared. Each curve is the per-quality mean over images; a pair uses
only the images that both codecs have at all their qualities, so a partial run cannot bias it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from bench.codec import SCALABLE_ROLE
from bench.declared import REGISTERED, Declarations
from bench.errors import ReportError
from bench.measuring.bdrate import (
    DEFAULT_BOOTSTRAP,
    bd_rate,
    bd_rate_rows,
    percentile_interval,
    resample_counts,
    weighted_means,
)
from bench.measuring.rd_metrics import DEFAULT_METRIC, METRICS
from bench.report.tables import is_kodak

COMPARISON = ["dataset", "anchor", "scales_label", "layer"]
SINGLE_LAYER_ROLE = "single-layer"


def role(codec: str, mode: str, declared: Declarations = REGISTERED) -> str:
    """``single-layer`` for records of a layer coded alone, else what the codec declared
    (``CodecInfo.report_role``: one of the contract's anchors, or ``scalable`` for a codec under test)."""
    if mode == "single":
        return SINGLE_LAYER_ROLE
    return declared(codec).report_role


def family(codec: str, declared: Declarations = REGISTERED) -> str:
    """The single-layer codec family a codec declared (``CodecInfo.family``): a simulcast spec's is its
    inner codec's, a scalable codec's its BL codec's; an unknown codec is a family of its own."""
    return declared.family(codec)


def anchors_every_family(codec: str, declared: Declarations = REGISTERED) -> bool:
    """Whether the codec is a conventional scalable anchor that every scalable codec is compared with."""
    return declared.anchors_every_family(codec)


def is_focus_pair(test: str, test_role: str, ref: str, ref_role: str, declared: Declarations = REGISTERED) -> bool:
    """The comparisons harness.md asks for: a layered codec against the anchors of its family.

    A simulcast codec against its inner codec; a scalable codec under test against the single-layer
    and simulcast codecs of its BL family, and against a conventional scalable anchor (a codec that
    declares ``anchors_every_family``), which is itself compared with the codecs of its family.
    """
    if test == ref or test_role == SINGLE_LAYER_ROLE or ref_role == SCALABLE_ROLE:
        return False
    if declared.anchors_every_family(ref):
        return test_role == SCALABLE_ROLE
    return declared.family(test) == declared.family(ref)


def add_full_size_single_layer(records: pd.DataFrame) -> pd.DataFrame:
    """Reuse single-layer records of the full image as the top layer of top-anchored combinations.

    With ``top`` anchoring the top layer *is* the source, so a single-layer codec run without scale
    ratios (``scales=[]``) coded exactly that image. Its records are added under each top-anchored
    scale combination of the same dataset where that codec has no top-layer records of its own
    (column ``reused`` marks them).
    """
    records = records.assign(reused=False)
    full = records[
        (records["mode"] == "single") & (records["num_layers"] == 1) & (records["anchor"] == "top")
    ]
    if full.empty:
        return records
    added = []
    combos = records[(records["anchor"] == "top") & (records["num_layers"] > 1)]
    for (dataset, label), combo in combos.groupby(["dataset", "scales_label"]):
        top_layer = int(combo["num_layers"].iloc[0]) - 1
        present = set(combo.loc[combo["layer"] == top_layer, "codec"])
        for codec, rows in full[full["dataset"] == dataset].groupby("codec"):
            if codec in present:
                continue
            added.append(
                rows.assign(
                    scales_label=label,
                    scales=[combo["scales"].iloc[0]] * len(rows),
                    layer=top_layer,
                    num_layers=top_layer + 1,
                    reused=True,
                )
            )
    return pd.concat([records, *added], ignore_index=True) if added else records


def _complete_images(rows: pd.DataFrame) -> set[str]:
    """Images that this codec has at every one of its qualities."""
    qualities = rows["quality"].nunique()
    counts = rows.groupby("image")["quality"].nunique()
    return set(counts[counts == qualities].index)


def _curve(rows: pd.DataFrame, images: set[str], column: str = "psnr_rgb") -> pd.DataFrame:
    """(mean bpp, mean ``column``) per quality over ``images``."""
    return rows[rows["image"].isin(images)].groupby("quality")[["bpp", column]].mean()


@dataclass
class PerImage:
    """One codec's records in one comparison group as (image × quality) arrays, so that any subset or
    bootstrap resample of images is an index array and a matrix product (``bdrate.weighted_means``)."""

    images: dict[str, int]  # image -> row
    complete: set[str]  # images coded at every quality
    bpp: np.ndarray
    quality: np.ndarray

    @classmethod
    def of(cls, rows: pd.DataFrame, column: str) -> "PerImage":
        means = rows.groupby(["image", "quality"], sort=True)[["bpp", column]].mean()
        bpp = means["bpp"].unstack("quality")
        metric = means[column].unstack("quality")
        return cls({image: k for k, image in enumerate(bpp.index)}, set(bpp.index[bpp.notna().all(axis=1)]),
                   bpp.to_numpy(float), metric.to_numpy(float))

    def take(self, images: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = [self.images[image] for image in images]
        return self.bpp[rows], self.quality[rows]


def comparison_groups(records: pd.DataFrame) -> Iterator[tuple[tuple, pd.DataFrame]]:
    yield from records.groupby(COMPARISON, sort=True)


# Columns of bdrate.csv beside the pair's identity. ``bd_rate`` is CompressAI's convention (BD-rate of
# the mean curves); ``bd_rate_images`` the mean of per-image BD-rates (JPEG AI's CTC, many papers).
# ``ci_*`` are 95 % percentile bootstrap intervals of each; ``images_*`` describe the per-image values.
ESTIMATE_COLUMNS = [
    "bd_rate", "ci_low", "ci_high", "bd_psnr",
    "bd_rate_images", "ci_low_images", "ci_high_images",
    "images_median", "images_q1", "images_q3", "worst_image", "worst_image_bd_rate", "images_bd_ok",
]
AVERAGES = ("curves", "images")


@dataclass
class Interval:
    """What ``_bootstrap`` gives: the interval, and a note when some resamples had no BD-rate."""

    low: float = math.nan
    high: float = math.nan
    note: str = ""


def _interval(samples: np.ndarray, estimate: float) -> Interval:
    low, high, valid = percentile_interval(samples)
    note = ""
    if valid < samples.size:
        note = (f"interval from {valid} of {samples.size} resamples (the others' curves overlap too little)"
                if valid else "no resample has a BD-rate: no interval")
    return Interval(low, high, note) if math.isfinite(estimate) else Interval()


def bootstrap_pair(anchor: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                   resamples: int, estimate: float) -> Interval:
    """95 % percentile interval of the curve-average BD-rate, resampling images in pairs: resample b
    draws the same images (with replacement) for both codecs, then averages each codec's curve over
    them. ``anchor``/``test``: (bpp, quality) arrays, images × qualities, rows in the same image order.
    An anchor of one row without images (a published curve) stays fixed."""
    images = test[0].shape[0]
    if resamples <= 0 or images < 2 or not math.isfinite(estimate):
        return Interval()
    counts = resample_counts(images, resamples)
    test_curves = [weighted_means(counts, values) for values in test]
    anchor_curves = [weighted_means(counts, values) if values.shape[0] == images else values for values in anchor]
    return _interval(bd_rate_rows(*anchor_curves, *test_curves), estimate)


def _image_summary(names: list[str], values: np.ndarray, resamples: int) -> dict:
    """Mean of the per-image BD-rates (with its bootstrap interval), median, quartiles, worst image."""
    ok = np.isfinite(values)
    out: dict = dict(bd_rate_images=math.nan, ci_low_images=math.nan, ci_high_images=math.nan,
                     images_median=math.nan, images_q1=math.nan, images_q3=math.nan, worst_image="",
                     worst_image_bd_rate=math.nan, images_bd_ok=int(ok.sum()))
    if not ok.any():
        return out
    finite = values[ok]
    worst = int(np.nanargmax(np.where(ok, values, -np.inf)))  # the image where the test codec loses most
    q1, median, q3 = np.percentile(finite, [25, 50, 75])
    out.update(bd_rate_images=float(finite.mean()), images_median=float(median), images_q1=float(q1),
               images_q3=float(q3), worst_image=names[worst], worst_image_bd_rate=float(values[worst]))
    if resamples > 0 and values.size >= 2:
        counts = resample_counts(values.size, resamples)
        means = weighted_means(counts, np.where(ok, values, np.nan)[:, None])[:, 0]
        interval = _interval(means, out["bd_rate_images"])
        out.update(ci_low_images=interval.low, ci_high_images=interval.high)
    return out


def bd_tables(records: pd.DataFrame, metric: str = DEFAULT_METRIC, bootstrap: int = DEFAULT_BOOTSTRAP,
              declared: Declarations = REGISTERED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """BD-rate of every ordered codec pair in every comparison group (one row per pair), on the
    quality metric ``metric`` (``bench.measuring.rd_metrics``; ``bd_psnr`` is then the BD of that metric), with
    ``bootstrap`` resamples for the intervals (0: none), codecs paired by what they ``declared``; and
    each image's own BD-rate of every pair (bdrate_images.csv)."""
    column = METRICS[metric].column
    axis = METRICS[metric].axis
    rows, image_rows = [], []
    for key, group in comparison_groups(records):
        by_codec = {codec: g for codec, g in group.groupby("codec")}
        roles = {codec: role(codec, g["mode"].iloc[0], declared) for codec, g in by_codec.items()}
        arrays = {codec: PerImage.of(g, column) for codec, g in by_codec.items()}
        for test in by_codec:
            for ref in by_codec:
                if test == ref:
                    continue
                images = sorted(arrays[test].complete & arrays[ref].complete)
                base = dict(zip(COMPARISON, key))
                base.update(
                    codec=test,
                    role=roles[test],
                    reference=ref,
                    reference_role=roles[ref],
                    focus=is_focus_pair(test, roles[test], ref, roles[ref], declared),
                    images=len(images),
                )
                if not images:
                    rows.append(base | dict(bd_rate=math.nan, bd_psnr=math.nan, reason="no image coded by both",
                                            note=""))
                    continue
                anchor, tested = arrays[ref].take(images), arrays[test].take(images)
                ones = np.ones((1, len(images)))
                ref_curve = [weighted_means(ones, values)[0] for values in anchor]
                test_curve = [weighted_means(ones, values)[0] for values in tested]
                result = bd_rate(*ref_curve, *test_curve, axis)
                interval = bootstrap_pair(anchor, tested, bootstrap, result.bd_rate)
                per_image = bd_rate_rows(*anchor, *tested)
                notes = [result.note] if result.note else []
                if result.psnr_reason and pd.notna(result.bd_rate):
                    notes.append(f"BD-PSNR NaN: {result.psnr_reason}")
                if len(images) < max(len(arrays[test].complete), len(arrays[ref].complete)):
                    notes.append(f"on the {len(images)} images both codecs have")
                if interval.note:
                    notes.append(interval.note)
                rows.append(
                    base
                    | dict(
                        bd_rate=result.bd_rate,
                        ci_low=interval.low,
                        ci_high=interval.high,
                        bd_psnr=result.bd_psnr,
                        overlap_fraction=result.overlap_fraction,
                        points=f"{result.n_test}/{result.n_anchor}",
                        reason=result.reason,
                        psnr_reason=result.psnr_reason,
                        note="; ".join(notes),
                    )
                    | _image_summary(images, per_image, bootstrap)
                )
                image_rows.append(pd.DataFrame({**{k: v for k, v in base.items() if k != "images"},
                                                "image": images, "bd_rate": per_image}))
    columns = [
        *COMPARISON,
        "codec",
        "role",
        "reference",
        "reference_role",
        "focus",
        *ESTIMATE_COLUMNS[:4],
        "images",
        "points",
        "overlap_fraction",
        "reason",
        "psnr_reason",
        "note",
        *ESTIMATE_COLUMNS[4:],
    ]
    image_columns = [*COMPARISON, "codec", "role", "reference", "reference_role", "focus", "image", "bd_rate"]
    per_image_frame = (pd.concat(image_rows, ignore_index=True) if image_rows else pd.DataFrame()).reindex(
        columns=image_columns)
    return pd.DataFrame(rows).reindex(columns=columns), per_image_frame


def bd_long(records: pd.DataFrame, metric: str = DEFAULT_METRIC, bootstrap: int = DEFAULT_BOOTSTRAP) -> pd.DataFrame:
    """The pairs of ``bd_tables`` (bdrate.csv) without the per-image rows."""
    return bd_tables(records, metric, bootstrap)[0]


def lead(long: pd.DataFrame, average: str = "curves") -> pd.DataFrame:
    """``long`` with ``bd_rate``/``ci_low``/``ci_high`` holding the convention tables lead with:
    ``curves`` (as computed) or ``images`` (the mean of per-image BD-rates and its interval)."""
    if average not in AVERAGES:
        raise ReportError(f"unknown BD average {average!r}; use {' or '.join(AVERAGES)}")
    if average == "curves" or long.empty:
        return long
    return long.assign(bd_rate=long["bd_rate_images"], ci_low=long["ci_low_images"],
                       ci_high=long["ci_high_images"])


NOT_SIGNIFICANT = "(n.s.)"


def contains_zero(low: float, high: float) -> bool:
    """Whether an interval holds 0: the sign of the BD-rate is then not settled by these images."""
    return bool(pd.notna(low) and pd.notna(high) and low <= 0 <= high)


def ci_text(low: float, high: float) -> str:
    """``[+41.2, +52.0]``, with ``(n.s.)`` when it contains 0; '' without an interval."""
    if pd.isna(low) or pd.isna(high):
        return ""
    return f"[{low:+.1f}, {high:+.1f}]" + (f" {NOT_SIGNIFICANT}" if contains_zero(low, high) else "")


def interval_text(bd: float, low: float = math.nan, high: float = math.nan, digits: int = 1,
                  unit: str = " %") -> str:
    """``+46.5 % [+41.2, +52.0]``: the estimate and its interval (when there is one), with
    ``(n.s.)`` when the interval contains 0; '' for NaN."""
    if pd.isna(bd):
        return ""
    interval = ci_text(low, high)
    return f"{bd:+.{digits}f}{unit}" + (f" {interval}" if interval else "")


def cell(bd: float, reason: str, low: float = math.nan, high: float = math.nan) -> str:
    """A table cell: the BD-rate in percent with its interval, or NaN with the reason."""
    if pd.isna(bd):
        return f"NaN ({reason})" if reason else "NaN"
    return interval_text(bd, low, high, digits=2, unit="")


def matrices(long: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """Per comparison group: rows = test codec, columns = reference codec, cells = BD-rate %."""
    out = []
    if long.empty:
        return out
    for key, group in long.groupby(COMPARISON, sort=True):
        codecs = sorted(set(group["codec"]) | set(group["reference"]))
        table = pd.DataFrame("—", index=pd.Index(codecs, name="test \\ reference"), columns=codecs)
        for row in group.itertuples():
            table.loc[row.codec, row.reference] = cell(row.bd_rate, row.reason, getattr(row, "ci_low", math.nan),
                                                       getattr(row, "ci_high", math.nan))
        out.append((key, table))
    return out


KODAK_IMAGES = 24


def published_bd(records: pd.DataFrame, curves: dict, bootstrap: int = DEFAULT_BOOTSTRAP) -> pd.DataFrame:
    """BD-rate of every full-size Kodak layer in the run against the published Kodak curves.

    Only a layer that is the whole 768×512 source (top anchoring, top layer) is comparable with
    the published curves, which are means over all 24 Kodak images; a run over fewer images is
    compared all the same, and the ``images`` column says how many it covered. Kodak is Kodak by
    name or as a folder called kodak (``is_kodak``, the rule of the page and the plots). The interval
    resamples the run's images; the published curve is a fixed reference (its images are not
    available to resample).
    """
    full = records[
        records["dataset"].map(is_kodak)
        & (records["anchor"] == "top")
        & (records["layer"] == records["num_layers"] - 1)
    ]
    rows = []
    for (dataset, codec, scales), group in full.groupby(["dataset", "codec", "scales_label"], sort=True):
        arrays = PerImage.of(group, "psnr_rgb")
        images = sorted(arrays.complete)
        tested = arrays.take(images)
        ones = np.ones((1, len(images)))
        curve = [weighted_means(ones, values)[0] for values in tested]
        for name, published in curves.items():
            result = bd_rate(published.bpp, published.psnr, *curve)
            anchor = (np.asarray(published.bpp, float)[None], np.asarray(published.psnr, float)[None])
            interval = bootstrap_pair(anchor, tested, bootstrap, result.bd_rate)
            notes = [n for n in (result.note, interval.note) if n]
            if result.psnr_reason and pd.notna(result.bd_rate):
                notes.append(f"BD-PSNR NaN: {result.psnr_reason}")
            rows.append({
                "dataset": dataset, "codec": codec, "scales": scales, "layer": int(group["layer"].iloc[0]),
                "images": f"{len(images)} of {KODAK_IMAGES}", "reference": f"{name} (published)",
                "bd_rate": result.bd_rate, "ci_low": interval.low, "ci_high": interval.high,
                "bd_psnr": result.bd_psnr, "reason": result.reason, "psnr_reason": result.psnr_reason,
                "note": "; ".join(notes),
            })
    columns = ["dataset", "codec", "scales", "layer", "images", "reference", "bd_rate", "ci_low", "ci_high",
               "bd_psnr", "reason", "psnr_reason", "note"]
    return pd.DataFrame(rows).reindex(columns=columns)
