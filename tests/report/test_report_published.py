"""BD-rate of full-size Kodak layers against the published curves (bench.report.bdtables.published_bd)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.anchors import published_curves
from bench.report.bdtables import published_bd


def _records(codec: str, bpp: list[float], psnr: list[float], *, layer: int, num_layers: int,
             anchor: str = "top", dataset: str = "kodak") -> list[dict]:
    return [
        {"codec": codec, "dataset": dataset, "anchor": anchor, "scales_label": "1.5", "layer": layer,
         "num_layers": num_layers, "image": f"kodim{i:02d}.png", "quality": q + 1,
         "bpp": b, "psnr_rgb": p}
        for i in range(1, 3) for q, (b, p) in enumerate(zip(bpp, psnr))
    ]


def test_a_curve_at_nine_tenths_of_the_published_rate_is_minus_ten_percent() -> None:
    mbt = published_curves()["mbt2018-mean"]
    top = _records("mine", [0.9 * b for b in mbt.bpp], list(mbt.psnr), layer=1, num_layers=2)
    lower = _records("mine", [1.0] * len(mbt.bpp), list(mbt.psnr), layer=0, num_layers=2)
    table = published_bd(pd.DataFrame(top + lower), {"mbt2018-mean": mbt})
    assert len(table) == 1  # only the full-size (top) layer is compared
    row = table.iloc[0]
    assert row["bd_rate"] == pytest.approx(-10.0, abs=1e-6)
    assert row["images"] == "2 of 24" and row["layer"] == 1


def test_base_anchoring_and_other_datasets_are_not_compared() -> None:
    mbt = published_curves()["mbt2018-mean"]
    rows = (_records("a", list(mbt.bpp), list(mbt.psnr), layer=1, num_layers=2, anchor="base:0.25")
            + _records("b", list(mbt.bpp), list(mbt.psnr), layer=1, num_layers=2, dataset="clic"))
    assert published_bd(pd.DataFrame(rows), {"mbt2018-mean": mbt}).empty


def test_no_overlap_is_nan_with_a_reason() -> None:
    mbt = published_curves()["mbt2018-mean"]
    table = published_bd(pd.DataFrame(_records("low", [0.01, 0.02], [10.0, 11.0], layer=0, num_layers=1)),
                         {"mbt2018-mean": mbt})
    assert math.isnan(table.iloc[0]["bd_rate"]) and table.iloc[0]["reason"]
