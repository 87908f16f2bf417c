"""Aggregate tables: per-quality means (CompressAI convention), per-image spread, cost."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

GROUP = ["codec", "dataset", "scales_label", "anchor", "quality", "layer"]

DATASET_LABELS = {
    "kodak": "Kodak Lossless True Color Image Suite",
    "clic": "CLIC 2020 pro-valid, 30-image subset",
}


def dataset_label(dataset: str) -> str:
    """Human label of a dataset name as recorded (a folder path is shown as given)."""
    return DATASET_LABELS.get(dataset, dataset)


def is_kodak(dataset: str) -> bool:
    return dataset == "kodak" or Path(dataset).name.lower() == "kodak"


def aggregate(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (codec, dataset, scales, anchor, quality, layer): means over images.

    bpp and PSNR are averaged over images (CompressAI's convention: the mean of per-image PSNR, not
    the PSNR of the mean MSE). MS-SSIM ignores images where it is NaN (layer too small);
    ``ms_ssim_images`` says how many had one. ``psnr_std`` is the sample std over images
    (NaN for one image).
    """
    grouped = records.groupby(GROUP, sort=True, dropna=False)
    summary = grouped.agg(
        mode=("mode", "first"),
        num_layers=("num_layers", "first"),
        images=("image", "nunique"),
        height=("height", "mean"),
        width=("width", "mean"),
        bpp=("bpp", "mean"),
        psnr_rgb=("psnr_rgb", "mean"),
        psnr_std=("psnr_rgb", lambda s: s.std(ddof=1)),
        ms_ssim_rgb=("ms_ssim_rgb", "mean"),
        ms_ssim_images=("ms_ssim_rgb", "count"),
        encode_time=("encode_time", "mean"),
        decode_time=("decode_time", "mean"),
    )
    return summary.reset_index()


def _params(extra: Any) -> float:
    value = extra.get("params") if isinstance(extra, dict) else None
    if isinstance(value, dict):  # per-module counts
        return float(sum(v for k, v in value.items() if k != "total" and isinstance(v, (int, float))))
    if isinstance(value, (int, float)):
        return float(value)
    return math.nan


def _peak_memory_mib(extra: Any) -> float:
    if not isinstance(extra, dict):
        return math.nan
    if isinstance(extra.get("peak_memory_bytes"), (int, float)):
        return extra["peak_memory_bytes"] / 2**20
    if isinstance(extra.get("peak_memory_mib"), (int, float)):
        return float(extra["peak_memory_mib"])
    return math.nan


def cost_table(records: pd.DataFrame) -> pd.DataFrame:
    """Mean time to encode / decode all layers of one image, per codec, scales and device.

    A scalable codec writes one bitstream: its encode time is the same on every layer record and
    its top layer's decode time covers layers 0..K. A single-layer codec codes every layer on its
    own, so its times are summed over the layers of an image and quality (what simulcast costs).
    """
    keys = ["codec", "dataset", "scales_label", "anchor", "device", "threads"]
    per_stream = []
    for key, rows in records.groupby([*keys, "image", "quality"], dropna=False):
        if (rows["mode"] == "scalable").all():
            top = rows.loc[rows["layer"].idxmax()]
            encode, decode = top["encode_time"], top["decode_time"]
        else:
            encode, decode = rows["encode_time"].sum(), rows["decode_time"].sum()
        per_stream.append(
            dict(
                zip([*keys, "image", "quality"], key),
                encode=encode,
                decode=decode,
                params=pd.Series([_params(e) for e in rows["extra"]]).max(),
                peak=pd.Series([_peak_memory_mib(e) for e in rows["extra"]]).max(),
                mode=rows["mode"].iloc[0],
            )
        )
    streams = pd.DataFrame(per_stream)
    table = streams.groupby(keys, dropna=False).agg(
        mode=("mode", "first"),
        bitstreams=("encode", "size"),
        encode_s=("encode", "mean"),
        decode_s=("decode", "mean"),
        params=("params", "max"),
        peak_memory_mib=("peak", "max"),
    )
    return table.reset_index()
