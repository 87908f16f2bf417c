"""BD-rate of every codec against every other at the same layer images, plus the contract's pairs.

Curves compared at one (dataset, pyramid protocol, scales, layer) show the same layer images, so
any two codecs there can be compared. Each curve is the per-quality mean over images; a pair uses
only the images that both codecs have at all their qualities, so a partial run cannot bias it.
"""

from __future__ import annotations

from typing import Iterator

import pandas as pd

from bench.bdrate import bd_rate
from bench.codec import SCALABLE_ROLE
from bench.rd_metrics import DEFAULT_METRIC, METRICS
from bench.registry import codec_family, declared_class

COMPARISON = ["dataset", "anchor", "scales_label", "layer"]
SINGLE_LAYER_ROLE = "single-layer"


def role(codec: str, mode: str) -> str:
    """``single-layer`` for records of a layer coded alone, else what the codec declares
    (``Codec.report_role``: one of the contract's anchors, or ``scalable`` for a codec under test)."""
    if mode == "single":
        return SINGLE_LAYER_ROLE
    cls = declared_class(codec)
    return cls.report_role if cls is not None else SCALABLE_ROLE


def family(codec: str) -> str:
    """The single-layer codec family a codec declares (``Codec.family``): a simulcast spec's is its
    inner codec's, a scalable codec's its BL codec's; an unregistered codec is a family of its own."""
    return codec_family(codec)


def anchors_every_family(codec: str) -> bool:
    """Whether the codec is a conventional scalable anchor that every scalable codec is compared with."""
    cls = declared_class(codec)
    return cls is not None and cls.anchors_every_family


def is_focus_pair(test: str, test_role: str, ref: str, ref_role: str) -> bool:
    """The comparisons harness.md asks for: a layered codec against the anchors of its family.

    A simulcast codec against its inner codec; a scalable codec under test against the single-layer
    and simulcast codecs of its BL family, and against a conventional scalable anchor (a codec that
    declares ``anchors_every_family``), which is itself compared with the codecs of its family.
    """
    if test == ref or test_role == SINGLE_LAYER_ROLE or ref_role == SCALABLE_ROLE:
        return False
    if anchors_every_family(ref):
        return test_role == SCALABLE_ROLE
    return family(test) == family(ref)


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


def comparison_groups(records: pd.DataFrame) -> Iterator[tuple[tuple, pd.DataFrame]]:
    yield from records.groupby(COMPARISON, sort=True)


def bd_long(records: pd.DataFrame, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """BD-rate of every ordered codec pair in every comparison group (one row per pair), on the
    quality metric ``metric`` (``bench.rd_metrics``; ``bd_psnr`` is then the BD of that metric)."""
    column = METRICS[metric].column
    rows = []
    for key, group in comparison_groups(records):
        by_codec = {codec: g for codec, g in group.groupby("codec")}
        roles = {codec: role(codec, g["mode"].iloc[0]) for codec, g in by_codec.items()}
        complete = {codec: _complete_images(g) for codec, g in by_codec.items()}
        for test, test_rows in by_codec.items():
            for ref, ref_rows in by_codec.items():
                if test == ref:
                    continue
                images = complete[test] & complete[ref]
                base = dict(zip(COMPARISON, key))
                base.update(
                    codec=test,
                    role=roles[test],
                    reference=ref,
                    reference_role=roles[ref],
                    focus=is_focus_pair(test, roles[test], ref, roles[ref]),
                    images=len(images),
                )
                if not images:
                    rows.append(
                        base
                        | dict(
                            bd_rate=float("nan"),
                            bd_psnr=float("nan"),
                            reason="no image coded by both",
                            note="",
                        )
                    )
                    continue
                ref_curve, test_curve = _curve(ref_rows, images, column), _curve(test_rows, images, column)
                result = bd_rate(ref_curve["bpp"], ref_curve[column], test_curve["bpp"], test_curve[column],
                                 METRICS[metric].axis)
                notes = [result.note] if result.note else []
                if result.psnr_reason and pd.notna(result.bd_rate):
                    notes.append(f"BD-PSNR NaN: {result.psnr_reason}")
                if len(images) < max(len(complete[test]), len(complete[ref])):
                    notes.append(f"on the {len(images)} images both codecs have")
                rows.append(
                    base
                    | dict(
                        bd_rate=result.bd_rate,
                        bd_psnr=result.bd_psnr,
                        overlap_fraction=result.overlap_fraction,
                        points=f"{result.n_test}/{result.n_anchor}",
                        reason=result.reason,
                        psnr_reason=result.psnr_reason,
                        note="; ".join(notes),
                    )
                )
    columns = [
        *COMPARISON,
        "codec",
        "role",
        "reference",
        "reference_role",
        "focus",
        "bd_rate",
        "bd_psnr",
        "images",
        "points",
        "overlap_fraction",
        "reason",
        "psnr_reason",
        "note",
    ]
    return pd.DataFrame(rows).reindex(columns=columns)


def cell(bd: float, reason: str) -> str:
    """A table cell: the BD-rate in percent, or NaN with the reason."""
    if pd.isna(bd):
        return f"NaN ({reason})" if reason else "NaN"
    return f"{bd:+.2f}"


def matrices(long: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """Per comparison group: rows = test codec, columns = reference codec, cells = BD-rate %."""
    out = []
    if long.empty:
        return out
    for key, group in long.groupby(COMPARISON, sort=True):
        codecs = sorted(set(group["codec"]) | set(group["reference"]))
        table = pd.DataFrame("—", index=pd.Index(codecs, name="test \\ reference"), columns=codecs)
        for row in group.itertuples():
            table.loc[row.codec, row.reference] = cell(row.bd_rate, row.reason)
        out.append((key, table))
    return out


KODAK_IMAGES = 24


def published_bd(records: pd.DataFrame, curves: dict) -> pd.DataFrame:
    """BD-rate of every full-size Kodak layer in the run against the published Kodak curves.

    Only a layer that is the whole 768×512 source (top anchoring, top layer) is comparable with
    the published curves, which are means over all 24 Kodak images; a run over fewer images is
    compared all the same, and the ``images`` column says how many it covered.
    """
    full = records[
        records["dataset"].map(lambda d: d == "kodak")
        & (records["anchor"] == "top")
        & (records["layer"] == records["num_layers"] - 1)
    ]
    rows = []
    for (codec, scales), group in full.groupby(["codec", "scales_label"], sort=True):
        images = _complete_images(group)
        curve = _curve(group, images)
        for name, published in curves.items():
            result = bd_rate(published.bpp, published.psnr, curve["bpp"], curve["psnr_rgb"])
            rows.append({
                "codec": codec, "scales": scales, "layer": int(group["layer"].iloc[0]),
                "images": f"{len(images)} of {KODAK_IMAGES}", "reference": f"{name} (published)",
                "bd_rate": result.bd_rate, "bd_psnr": result.bd_psnr, "reason": result.reason,
            })
    columns = ["codec", "scales", "layer", "images", "reference", "bd_rate", "bd_psnr", "reason"]
    return pd.DataFrame(rows).reindex(columns=columns)
