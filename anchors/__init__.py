"""Published reference results with their citations (installed as ``bench.anchors``).

The numbers live in the JSON files next to this module, copied unchanged from their sources;
``index.json`` says which file is which and how to cite it (see ``README.md``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["Curve", "PaperRow", "PaperBDRate", "published_curves", "paper_bdrate", "compass_paper_bdrate"]


@dataclass(frozen=True)
class Curve:
    """A published rate-distortion curve: mean bpp and mean PSNR-RGB / MS-SSIM-RGB over a dataset.

    ``ms_ssim`` is empty when the source publishes no MS-SSIM (the JPEG curve).
    """

    name: str
    bpp: list[float]
    psnr: list[float]
    ms_ssim: list[float]
    description: str
    citation: str
    dataset: str
    quality: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PaperRow:
    """One cell of the COMPASS paper's BD-rate tables."""

    layers: int  # 2 or 3 (BL + ELs)
    scale: float  # overall scale factor top/base (for 2 layers, the one inter-layer ratio)
    anchor: str  # "SHVC", "simulcast", "single-layer", "Mei et al. (NN spatially scalable)"
    bd_rate: float  # percent, negative = COMPASS saves bits


@dataclass(frozen=True)
class PaperBDRate:
    """The COMPASS paper's published BD-rate tables (COMPASS against each anchor)."""

    source: str
    dataset: str
    metric: str
    citation: str
    rows: list[PaperRow]
    total_params: float | None = None  # the paper's model size (BL + LIFF + RC), approximate
    codec: str = ""  # the registered codec whose runs the report compares with the tables
    # paper anchor -> the report role of the codec bench measures it with (None: none in bench), in
    # the order the report lists them
    anchor_roles: dict[str, str | None] = field(default_factory=dict)

    def lookup(self, layers: int, scale: float, anchor: str) -> float | None:
        """The published value for this configuration, or None when the paper has none."""
        for row in self.rows:
            if row.layers == layers and row.anchor == anchor and math.isclose(row.scale, scale, abs_tol=1e-6):
                return row.bd_rate
        return None

    def frame(self) -> Any:
        """The table as a pandas DataFrame (one row per layers × scale, one column per anchor)."""
        import pandas as pd

        long = pd.DataFrame([row.__dict__ for row in self.rows])
        return long.pivot_table(index=["layers", "scale"], columns="anchor", values="bd_rate", sort=False)


def _read_json(name: str) -> dict[str, Any]:
    try:
        text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"anchor data file {name!r} is missing from the bench.anchors package; "
            "reinstall bench (package-data must include *.json)"
        ) from None
    return json.loads(text)


def _floats(values: Any, what: str) -> list[float]:
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
        raise ValueError(f"{what}: expected a list of numbers, got {values!r}")
    return [float(v) for v in values]


@lru_cache(maxsize=None)
def _index() -> dict[str, Any]:
    return _read_json("index.json")


def published_curves(dataset: str | None = "kodak") -> dict[str, Curve]:
    """Published curves by name (``mbt2018-mean``, ``BPG-444``, ``JPEG``); ``dataset=None`` gives all."""
    curves: dict[str, Curve] = {}
    for entry in _index()["curves"]:
        if dataset is not None and entry["dataset"] != dataset:
            continue
        data = _read_json(entry["file"])
        results = data["results"]
        bpp = _floats(results["bpp"], f"{entry['file']} bpp")
        psnr = _floats(results["psnr-rgb"], f"{entry['file']} psnr-rgb")
        ms_ssim = _floats(results.get("ms-ssim-rgb", []), f"{entry['file']} ms-ssim-rgb")
        if len(psnr) != len(bpp) or (ms_ssim and len(ms_ssim) != len(bpp)):
            raise ValueError(f"{entry['file']}: bpp, psnr-rgb and ms-ssim-rgb have different lengths")
        curves[entry["key"]] = Curve(
            name=entry["key"],
            bpp=bpp,
            psnr=psnr,
            ms_ssim=ms_ssim,
            description=data.get("description", data.get("name", "")),
            citation=entry["citation"],
            dataset=entry["dataset"],
            quality=[int(q) for q in data.get("quality", [])],
        )
    return curves


def compass_paper_bdrate() -> PaperBDRate:
    """The COMPASS paper's (ICCV 2023) BD-rate tables for 2 and 3 layers on Kodak."""
    return paper_bdrate("compass-iccv2023")


@lru_cache(maxsize=None)  # read once: reports ask per record whether it is the paper's codec
def paper_bdrate(key: str | None = None) -> PaperBDRate:
    """A paper's published BD-rate tables by key in ``index.json`` (default: the first table); the
    index entry names the codec they are about (``codec``) and which report role measures each of
    the paper's anchors (``anchor_roles``)."""
    tables = _index()["tables"]
    entry = tables[0] if key is None else next(e for e in tables if e["key"] == key)
    data = _read_json(entry["file"])
    rows: list[PaperRow] = []
    for layers, key, scale_key in ((2, "two_layer", "scales"), (3, "three_layer", "scales_overall")):
        table = data[key]
        scales = _floats(table[scale_key], f"{entry['file']} {key}.{scale_key}")
        for anchor, values in table["vs"].items():
            values = _floats(values, f"{entry['file']} {key}.vs.{anchor}")
            if len(values) != len(scales):
                raise ValueError(
                    f"{entry['file']}: {key} vs {anchor} has {len(values)} values for {len(scales)} scales"
                )
            rows.extend(PaperRow(layers, s, anchor, v) for s, v in zip(scales, values))
    return PaperBDRate(
        source=data["source"],
        dataset=data["dataset"],
        metric=data["metric"],
        citation=entry["citation"],
        rows=rows,
        total_params=data.get("model", {}).get("total_params_approx"),
        codec=entry.get("codec", ""),
        anchor_roles=dict(entry.get("anchor_roles", {})),
    )
