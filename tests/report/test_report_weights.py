"""The report's account of which weights coded its learned records (weights.csv, the page's section,
and the warning when a curve or a codec name covers two models)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.report import build_report
from bench.report.compute import compute_tables
from bench.report.weights import mixed_curves, mixed_weights, weights_file, weights_note, weights_table

OLD = "aa11bb22" + "0" * 56
NEW = "cc33dd44" + "1" * 56


def _with_weights(records: list[dict], weights_id: str, images: tuple[str, ...] | None = None) -> list[dict]:
    """``records`` marked as coded with the file ``compass-q<k>-<id[:8]>``, every quality the same
    file for brevity (only where ``images`` lists the record's image, when given)."""
    out = []
    for record in records:
        record = dict(record)
        if images is None or record["image"] in images:
            record["extra"] = {**record.get("extra", {}), "weights_id": weights_id,
                               "weights": {"file": f"q{record['quality']}: compass-q{record['quality']}-"
                                                   f"{weights_id[:8]}.pth.tar", "source": "bench zoo"}}
        out.append(record)
    return out


def test_weights_file_picks_the_name_with_the_hash():
    info = {"file": "mean-scale-q1-aa11bb22.pth.tar mean-scale-q2-cc33dd44.pth.tar"}
    assert weights_file(info, NEW) == "mean-scale-q2-cc33dd44.pth.tar"
    assert weights_file({"file": "q3: compass-q3-aa11bb22.pth.tar"}, OLD) == "compass-q3-aa11bb22.pth.tar"
    # a file named without its hash: the text as recorded; no file at all: empty
    assert weights_file({"file": "custom.pth"}, OLD) == "custom.pth"
    assert weights_file(None, OLD) == ""


def test_one_model_per_codec_quality(make_records, write_run, tmp_path):
    records = _with_weights(make_records("compass", 1.0, "scalable", [1.5]), OLD) + make_records(
        "x265", 1.0, "single", [1.5])
    tables = compute_tables([write_run(tmp_path / "run", records)], bootstrap=0)
    table = tables.weights
    # x265 has no weights: only compass's four qualities, each with its 3 images × 2 layers
    assert list(table["codec"]) == ["compass"] * 4
    assert list(table["quality"]) == [1, 2, 3, 4]
    assert list(table["records"]) == [6] * 4
    assert list(table["weights file"]) == [f"compass-q{q}-aa11bb22.pth.tar" for q in (1, 2, 3, 4)]
    assert set(table["sha256"]) == {OLD[:16]}
    assert set(table["datasets"]) == {"Kodak Lossless True Color Image Suite"}
    assert mixed_weights(table) == [] and mixed_curves(tables.records) == []
    assert weights_note(table, []).startswith("Each learned codec quality was coded with one set")


def test_two_models_on_two_datasets_are_named_but_not_a_mixed_curve(make_records, write_run, tmp_path):
    kodak = _with_weights(make_records("compass", 1.0, "scalable", [1.5]), NEW)
    clic = _with_weights(make_records("compass", 1.0, "scalable", [1.5], dataset="clic"), OLD)
    tables = compute_tables([write_run(tmp_path / "kodak", kodak), write_run(tmp_path / "clic", clic)], bootstrap=0)
    assert mixed_curves(tables.records) == []
    assert mixed_weights(tables.weights) == [("compass", q, 2) for q in (1, 2, 3, 4)]
    rows = tables.weights[tables.weights["quality"] == 2].set_index("sha256")
    assert rows.loc[NEW[:16], "datasets"] == "Kodak Lossless True Color Image Suite"
    assert rows.loc[OLD[:16], "datasets"].startswith("CLIC")
    assert rows.loc[OLD[:16], "runs"] == str(tmp_path / "clic")
    note = weights_note(tables.weights, mixed_curves(tables.records))
    assert "compass at quality 1 (2 files), 2 (2 files), 3 (2 files), 4 (2 files)" in note
    assert "every curve holds one model" in note


def test_a_curve_of_two_models_is_a_warning_on_the_page(make_records, write_run, tmp_path):
    # kodim01 was coded with the new files, the other two images with the old ones: every point of
    # the curve averages two models
    records = _with_weights(_with_weights(make_records("compass", 1.0, "scalable", [1.5]), OLD), NEW,
                            images=("kodim01.png",))
    run = write_run(tmp_path / "run", records + make_records("x265", 1.0, "single", [1.5]))
    tables = compute_tables([run], bootstrap=0)
    assert mixed_curves(tables.records) == [
        f"compass, Kodak Lossless True Color Image Suite, top, 1.5, quality {q}" for q in (1, 2, 3, 4)]
    report = build_report([run], tmp_path / "out", bootstrap=0)
    page = Path(report).read_text()
    head = page.split("## At a glance")[0]
    assert "Warning: these curve points average records coded with different weights" in head
    assert "## Weights of the learned codecs" in page
    written = pd.read_csv(tmp_path / "out" / "weights.csv")
    assert len(written) == 8 and set(written["records"]) == {2, 4}  # per quality: 1 image new, 2 old, 2 layers


def test_no_learned_records_no_section(make_records, write_run, tmp_path):
    run = write_run(tmp_path / "run", make_records("x265", 1.0, "single", [1.5]))
    assert weights_table(compute_tables([run], bootstrap=0).records).empty
    report = build_report([run], tmp_path / "out", bootstrap=0)
    assert "Weights of the learned codecs" not in Path(report).read_text()
    assert not (tmp_path / "out" / "weights.csv").exists()


@pytest.mark.parametrize("weights_id", ["", None])
def test_records_without_an_id_are_left_out(make_records, write_run, tmp_path, weights_id):
    records = [dict(r, extra={"weights_id": weights_id}) for r in make_records("compass", 1.0, "scalable", [1.5])]
    tables = compute_tables([write_run(tmp_path / "run", records)], bootstrap=0)
    assert tables.weights.empty
