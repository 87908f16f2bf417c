"""Aggregate tables: per-quality means (CompressAI convention), per-image spread, cost."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from bench.storage.records import RecordExtra

GROUP = ["codec", "dataset", "scales_label", "anchor", "quality", "layer"]
# per-image metrics averaged beside PSNR-RGB (bench.measuring.rd_metrics)
YUV_AND_DB_COLUMNS = ("psnr_y", "psnr_yuv", "ms_ssim_db")

DATASET_LABELS = {
    "kodak": "Kodak Lossless True Color Image Suite",
    "clic": "CLIC 2020 pro-valid, 30-image subset",
}


def dataset_label(dataset: str) -> str:
    """Human label of a dataset name as recorded (a folder path is shown as given)."""
    return DATASET_LABELS.get(dataset, dataset)


def dataset_order(dataset: str) -> tuple[int, str]:
    """Sort key of datasets in reports: the known ones in their listed order (Kodak, the paper's
    dataset, first), then any folder by name."""
    known = list(DATASET_LABELS)
    return (known.index(dataset), "") if dataset in known else (len(known), dataset)


def is_kodak(dataset: str) -> bool:
    return dataset == "kodak" or Path(dataset).name.lower() == "kodak"


def aggregate(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (codec, dataset, scales, anchor, quality, layer): means over images.

    bpp and PSNR are averaged over images (CompressAI's convention: the mean of per-image PSNR, not
    the PSNR of the mean MSE). MS-SSIM ignores images where it is NaN (layer too small);
    ``ms_ssim_images`` says how many had one. ``psnr_std`` and ``bpp_std`` are the sample std over
    images (NaN for one image). ``psnr_y``, ``psnr_yuv`` and ``ms_ssim_db`` are means over images like
    PSNR-RGB (NaN for records written before the YUV metrics). ``size`` names the layer size(s) the
    images really have: ``height`` and ``width`` are means, which for a mix of portrait and landscape
    images is no image's size.
    """
    missing = {column: math.nan for column in YUV_AND_DB_COLUMNS if column not in records}
    grouped = records.assign(**missing).groupby(GROUP, sort=True, dropna=False)
    sizes = grouped.apply(lambda g: size_label(g["width"], g["height"]), include_groups=False).rename("size")
    summary = grouped.agg(
        mode=("mode", "first"),
        num_layers=("num_layers", "first"),
        images=("image", "nunique"),
        height=("height", "mean"),
        width=("width", "mean"),
        bpp=("bpp", "mean"),
        bpp_std=("bpp", lambda s: s.std(ddof=1)),
        psnr_rgb=("psnr_rgb", "mean"),
        psnr_std=("psnr_rgb", lambda s: s.std(ddof=1)),
        ms_ssim_rgb=("ms_ssim_rgb", "mean"),
        ms_ssim_images=("ms_ssim_rgb", "count"),
        encode_time=("encode_time", "mean"),
        decode_time=("decode_time", "mean"),
        **{column: (column, "mean") for column in YUV_AND_DB_COLUMNS},
    )
    return summary.join(sizes).reset_index()


def size_label(widths: pd.Series, heights: pd.Series) -> str:
    """``768×512`` when every image has that size; ``768×512 / 512×768`` for the same size in both
    orientations (Kodak); otherwise ``mixed, median W×H``."""
    pairs = sorted(set(zip(widths.astype(int), heights.astype(int))), reverse=True)
    if len(pairs) == 1:
        return f"{pairs[0][0]}×{pairs[0][1]}"
    if len(pairs) == 2 and pairs[0] == pairs[1][::-1]:
        return f"{pairs[0][0]}×{pairs[0][1]} / {pairs[1][0]}×{pairs[1][1]}"
    return f"mixed, median {widths.median():.0f}×{heights.median():.0f}"


# --- cost ----------------------------------------------------------------------------------------

# One cost row is one way of running a codec; device and threads are part of it because they change
# every time.
COST_KEYS = ["codec", "dataset", "scales_label", "anchor", "device", "threads"]
INTERNAL_PREFIX = "encode_internal_"
# Codec.complexity's counts in records (bench.measuring.complexity)
KMAC_COLUMNS = ("encode_kmac_per_pixel", "decode_kmac_per_pixel")
DECODE_INTERNAL_PREFIX = "decode_internal_"


def _run_settings(records: pd.DataFrame) -> pd.DataFrame:
    """Records written before device/threads were fields still group (as unknown settings)."""
    out = records
    for column, default in (("device", "unknown"), ("threads", math.nan)):
        if column not in out:
            out = out.assign(**{column: default})
    return out


def _number(extra: RecordExtra | dict[str, Any] | None, key: str) -> float:
    value = extra.get(key) if extra is not None else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _modules(extra: RecordExtra) -> dict[str, int]:
    """Per-module parameter counts of a record (``total`` excluded); {} when it has none."""
    value = extra.params
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if k != "total" and isinstance(v, (int, float))}


def _params(extra: RecordExtra) -> float:
    value: Any = extra.params
    if isinstance(value, dict):  # per-module counts; the codec's own total wins (modules may share)
        if isinstance(value.get("total"), (int, float)):
            return float(value["total"])
        return float(sum(_modules(extra).values())) if _modules(extra) else math.nan
    if isinstance(value, (int, float)):  # older records hold a bare count
        return float(value)
    return math.nan


def _peak_memory_mib(extra: RecordExtra) -> float:
    older = extra.get("peak_memory_bytes")  # the spelling of records before peak_memory_mib
    if isinstance(older, (int, float)):
        return older / 2**20
    return _number(extra, "peak_memory_mib")


def _repeats(extra: RecordExtra) -> int:
    timing = extra.timing
    repeats = timing.get("repeats") if isinstance(timing, dict) else None
    return int(repeats) if isinstance(repeats, int) else 1


def _internal(extra: RecordExtra, field: str = "timings") -> dict[str, float]:
    timings = extra.get(field)
    if not isinstance(timings, dict):
        return {}
    return {str(k): float(v) for k, v in timings.items() if isinstance(v, (int, float))}


def count_text(value: float) -> str:
    """A parameter count in three significant digits: 1764000 -> "1.76M", 2900 -> "2.9k"."""
    if pd.isna(value):
        return ""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def modules_text(modules: dict[str, int]) -> str:
    """``{"bl": 1764000, "liff": 290000}`` -> ``"bl 1.76M, liff 290k"`` (the codec's module order)."""
    return ", ".join(f"{name} {count_text(n)}" for name, n in modules.items())


def _cost_columns(rows: pd.DataFrame) -> dict[str, Any]:
    """What every record of a group says about the codec's size and memory (not its time)."""
    extras = list(rows["extra"])
    modules: dict[str, int] = {}
    for extra in extras:  # the same codec has the same modules; the largest count if not
        for name, n in _modules(extra).items():
            modules[name] = max(modules.get(name, 0), n)
    model_mb = pd.Series([_number(e, "model_bytes") for e in extras]) / 1e6
    return {
        "params": pd.Series([_params(e) for e in extras]).max(),
        "params_modules": modules_text(modules),
        "peak_memory_mib": pd.Series([_peak_memory_mib(e) for e in extras]).max(),
        "cuda_peak_mib": pd.Series([_number(e, "cuda_peak_mib") for e in extras]).max(),
        "model_mb": model_mb.max(),
    }


def params_by_module(records: pd.DataFrame) -> pd.DataFrame:
    """One row per codec and module: its parameter count (``extra.params``; the largest seen, as in
    the cost tables), in the codec's module order. Empty when no record has per-module counts."""
    rows = []
    for codec, group in records.groupby("codec", sort=True):
        modules: dict[str, int] = {}
        for extra in group["extra"]:
            for name, n in _modules(extra).items():
                modules[name] = max(modules.get(name, 0), n)
        total = pd.Series([_params(e) for e in group["extra"]]).max()
        rows += [{"codec": codec, "module": name, "params": n, "share": n / total if total else math.nan}
                 for name, n in modules.items()]
    return pd.DataFrame(rows, columns=["codec", "module", "params", "share"])


def timing_split(layer_costs: pd.DataFrame) -> pd.DataFrame:
    """The codec-internal timing splits of ``cost_by_layer`` one part per row: ``call`` (encode or
    decode), ``part``, its median seconds and its share of the call's median time (NaN for a
    self-check, ``check_*``, which runs outside the timed call)."""
    rows = []
    for _, row in layer_costs.iterrows():
        for call, prefix in (("encode", INTERNAL_PREFIX), ("decode", DECODE_INTERNAL_PREFIX)):
            total = row[f"{call}_s"]
            for column, value in row.items():
                if not (str(column).startswith(prefix) and str(column).endswith("_s")) or pd.isna(value):
                    continue
                part = str(column)[len(prefix):-len("_s")]
                in_call = not part.startswith("check_")
                rows.append({**{k: row[k] for k in [*COST_KEYS, "layer"]}, "call": call, "part": part,
                             "median_s": float(value),
                             "share": float(value) / total if in_call and total > 0 else math.nan,
                             "in_call_time": in_call})
    return pd.DataFrame(rows, columns=[*COST_KEYS, "layer", "call", "part", "median_s", "share", "in_call_time"])


def cost_by_layer(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (codec, dataset, scales, anchor, device, threads, layer): median times over images.

    ``encode_s`` and ``decode_s`` are medians over the layer's records (every image and quality) of
    what the record says: for a scalable codec the encode of the whole bitstream and the decode of
    layers 0..k; for a single-layer codec the encode and the decode of that layer alone. With
    ``--repeats`` > 1 each record's time is already the median of its repeats (``repeats`` column).
    ``encode_internal_<key>_s`` are medians of the codec's own split of the encode call
    (``extra.timings``, e.g. network vs entropy), present when the codec reports one;
    ``decode_internal_<key>_s`` likewise for the decode call (``extra.decode_timings``). Params, peak
    memory (the largest of the jobs that coded the layer: one job codes all layers of an image),
    CUDA peak and model size come from ``extra``.
    """
    records = _run_settings(records)
    rows = []
    for key, group in records.groupby([*COST_KEYS, "layer"], sort=True, dropna=False):
        splits = {
            prefix: [_internal(e, field) for e in group["extra"]]
            for prefix, field in ((INTERNAL_PREFIX, "timings"), (DECODE_INTERNAL_PREFIX, "decode_timings"))
        }
        row = dict(zip([*COST_KEYS, "layer"], key))
        row.update(
            mode=group["mode"].iloc[0],
            records=len(group),
            images=group["image"].nunique(),
            kpixels=float((group["height"] * group["width"]).median() / 1e3),
            repeats=max(_repeats(e) for e in group["extra"]),
            encode_s=float(group["encode_time"].median()),
            decode_s=float(group["decode_time"].median()),
            **{column: _median(group, column) for column in KMAC_COLUMNS},
        )
        for prefix, internal in splits.items():
            for name in sorted({name for timings in internal for name in timings}):
                row[f"{prefix}{name}_s"] = float(pd.Series([t.get(name, math.nan) for t in internal]).median())
        row.update(_cost_columns(group))
        rows.append(row)
    return pd.DataFrame(rows)


def cost_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per codec, dataset, scales, anchor, device and threads: what one image costs.

    ``encode_s``/``decode_s`` are medians over coded images and qualities of the time to encode
    all layers of an image and to decode all of them. A scalable codec writes one bitstream: its
    encode time is the same on every layer record and its top layer's decode time covers layers
    0..K. A single-layer codec codes every layer on its own, so its times are summed over the
    layers of an image and quality (what simulcast costs). ``warmup_s`` is the median untimed
    first call (model loading), kept out of the times; size and memory columns as in
    ``cost_by_layer``.
    """
    records = _run_settings(records)
    rows = []
    for key, group in records.groupby(COST_KEYS, sort=True, dropna=False):
        streams = [_stream_cost(stream) for _, stream in group.groupby(["image", "quality"], sort=True)]
        encode, decode, warmup = (pd.Series(column, dtype=float) for column in zip(*streams))
        kmacs = [_stream_kmac(stream) for _, stream in group.groupby(["image", "quality"], sort=True)]
        row = dict(zip(COST_KEYS, key))
        row.update(
            mode=group["mode"].iloc[0],
            layers=int(group["num_layers"].max()),
            bitstreams=len(streams),
            encode_s=float(encode.median()),
            decode_s=float(decode.median()),
            warmup_s=float(warmup.median()),
            **{column: float(pd.Series([k[column] for k in kmacs], dtype=float).median())
               for column in KMAC_COLUMNS},
        )
        row.update(_cost_columns(group))
        rows.append(row)
    return pd.DataFrame(rows)


def _median(rows: pd.DataFrame, column: str) -> float:
    return float(rows[column].median()) if column in rows else math.nan


def _stream_kmac(rows: pd.DataFrame) -> dict[str, float]:
    """kMAC per pixel of the top layer to code (decode) all layers of one image at one quality: each
    layer's own kMAC/pixel times its pixels, summed, over the top layer's pixels (NaN when a layer
    has no count)."""
    top = rows.loc[rows["layer"].idxmax()]
    pixels = rows["height"] * rows["width"]
    return {column: float((rows[column] * pixels).sum(min_count=len(rows)) / (top["height"] * top["width"]))
            if column in rows else math.nan for column in KMAC_COLUMNS}


def _stream_cost(rows: pd.DataFrame) -> tuple[float, float, float]:
    """Encode and decode seconds of all layers of one image at one quality, and its warm-up."""
    if (rows["mode"] == "scalable").all():
        top = rows.loc[rows["layer"].idxmax()]
        encode, decode = float(top["encode_time"]), float(top["decode_time"])
    else:
        encode, decode = float(rows["encode_time"].sum()), float(rows["decode_time"].sum())
    return encode, decode, float(pd.Series([_number(e, "warmup_s") for e in rows["extra"]]).max())


# --- inter-layer prediction ----------------------------------------------------------------------


def _diagnostic(extra: RecordExtra, name: str) -> float:
    return _number(extra.diagnostics if isinstance(extra.diagnostics, dict) else None, name)


PREDICTION_COLUMNS = ["psnr_liff", "psnr_bicubic"]


def prediction_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per (codec, dataset, scales, anchor, quality, layer): mean over images of the PSNR of the
    codec's inter-layer prediction and of bicubic upsampling of the same decoded lower layer (the
    ``diagnostics`` a codec such as COMPASS reports per EL), their mean per-image gain, and how many
    images won. Empty when no record carries them."""
    values = {
        name: records["extra"].map(lambda extra, name=name: _diagnostic(extra, name))
        for name in PREDICTION_COLUMNS
    }
    rows = records.assign(**values).dropna(subset=PREDICTION_COLUMNS)
    if rows.empty:
        return pd.DataFrame(columns=[*GROUP, "images", *PREDICTION_COLUMNS, "gain_db", "images_won"])
    rows = rows.assign(
        gain_db=rows["psnr_liff"] - rows["psnr_bicubic"], won=rows["psnr_liff"] > rows["psnr_bicubic"]
    )
    table = rows.groupby(GROUP, sort=True).agg(
        images=("image", "nunique"),
        psnr_liff=("psnr_liff", "mean"),
        psnr_bicubic=("psnr_bicubic", "mean"),
        gain_db=("gain_db", "mean"),
        images_won=("won", "sum"),
    )
    return table.reset_index()
