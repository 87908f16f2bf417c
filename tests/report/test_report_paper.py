"""The COMPASS paper's BD-rates beside a run's: matching rules and the caveats each row carries."""

from __future__ import annotations

import pandas as pd

from bench.report.paper import model_size_sentence, paper_comparison
from bench.storage.records import RecordExtra


def _records(scales: list[float]) -> list[dict]:
    return [{
        "codec": "compass", "dataset": "kodak", "anchor": "top", "scales_label": ",".join(f"{s:g}" for s in scales),
        "num_layers": len(scales) + 1, "scales": scales, "layer": len(scales),
        "extra": RecordExtra(params={"bl": 1_764_499, "liff": 290_816, "rc": 1_764_499, "total": 3_819_814}),
    }]


def test_rows_name_the_protocol_and_how_three_layers_are_matched_and_the_model_size_is_said():
    records = pd.DataFrame(_records([1.2]) + _records([1.5, 1.6]))
    table = paper_comparison(pd.DataFrame(), records)
    two = table[(table.scales_label == "1.2") & (table.paper_anchor == "simulcast")].iloc[0]
    assert two.paper_bd_rate == -44.04 and two.layer == 1
    assert "paper protocol is base:0.25" in two.note
    assert "3.82M parameters (BL, LIFF and RC), the paper's about 15.5M" in model_size_sentence(records)
    assert "overall scale" not in two.note
    three = table[(table.scales_label == "1.5,1.6") & (table.paper_anchor == "simulcast")].iloc[0]
    assert three.overall_scale == 2.4 and three.paper_bd_rate == -49.85
    assert "matched by overall scale" in three.note
