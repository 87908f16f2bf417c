"""write_table_files alone: the CSVs (and LaTeX) of a report's tables."""

from dataclasses import replace

import pandas as pd
import pytest

from bench.report.compute import compute_tables
from bench.report.files import csv_files, write_table_files


@pytest.fixture(scope="module")
def tables(three_codec_run):
    return compute_tables([three_codec_run], bootstrap=0)


ALWAYS = {"summary.csv", "bdrate.csv", "bdrate_focus.csv", "bdrate_images.csv", "cost.csv", "cost_summary.csv"}


def test_file_names(tables):
    # compass: the paper's comparison and a glance table; Kodak: the published curves; no codec
    # reports params per module, a timing split or its prediction, so those files are not written
    assert set(csv_files(tables)) == ALWAYS | {"compass_paper.csv", "glance_compass.csv", "bdrate_published.csv"}


def test_optional_files_follow_the_tables(tables):
    bare = replace(tables, paper=None, glances={}, published=None)
    assert set(csv_files(bare)) == ALWAYS
    with_prediction = replace(bare, prediction=pd.DataFrame({"gain_db": [0.5]}))
    assert set(csv_files(with_prediction)) == ALWAYS | {"prediction.csv"}
    # an empty published table still has its file: the run has Kodak, none of it full-size
    assert "bdrate_published.csv" in csv_files(replace(bare, published=tables.published.iloc[:0]))


def test_written_files_hold_the_tables(tables, tmp_path):
    written = write_table_files(tables, tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(csv_files(tables))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(csv_files(tables))
    bdrate = pd.read_csv(tmp_path / "out" / "bdrate.csv")
    row = bdrate[(bdrate.codec == "simulcast:x265") & (bdrate.reference == "x265") & (bdrate.layer == 1)]
    assert row.bd_rate.item() == pytest.approx(10.0, abs=1e-9) and row.metric.item() == "psnr-rgb"
    focus = pd.read_csv(tmp_path / "out" / "bdrate_focus.csv")
    assert len(focus) == len(tables.focus) and set(focus.layer) == {1}
    glance = pd.read_csv(tmp_path / "out" / "glance_compass.csv", keep_default_na=False)
    assert glance["vs x265"].tolist() == ["-20.0 %"]


def test_latex_when_asked(tables, tmp_path):
    written = write_table_files(tables, tmp_path, latex=True)
    latex = {p.name for p in written if p.parent.name == "latex"}
    assert latex == {"glance_compass.tex", "bdrate_kodak_top_1.5_L1.tex", "tables.tex"}
    assert all(p.is_file() for p in written)
    assert "+10.00" in (tmp_path / "latex" / "bdrate_kodak_top_1.5_L1.tex").read_text()
    write_table_files(tables, tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere" / "latex").exists()
