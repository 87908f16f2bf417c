"""Bootstrap intervals, per-image BD-rates, --bd-average, published curves by path, LaTeX tables
(issue #31)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.anchors import published_curves
from bench.cli import main
from bench.measuring.bdrate import resample_counts
from bench.report import build_report
from bench.report.bdtables import interval_text, published_bd
from bench.report.compute import has_full_size_layer
from bench.report.latex import layer_file
from bench.report.plots import PUBLISHED_COLOUR, codec_colours

IMAGES = tuple(f"kodim{i:02d}.png" for i in range(1, 9))
# image k of "varied" needs FACTORS[k] times the reference's bits at every PSNR
FACTORS = np.array([0.70, 0.75, 0.80, 0.85, 0.95, 1.00, 1.10, 1.30])
RESAMPLES = 400


@pytest.fixture(scope="module")
def varied(tmp_path_factory, make_records, write_run):
    """compass (scalable) against shvc; every image has the same curve, scaled in rate per image, so
    that every BD-rate has a closed form: per image (f_k − 1)·100, of the mean curves (mean f − 1)·100."""
    base = tmp_path_factory.mktemp("varied")
    records = []
    for image, factor in zip(IMAGES, FACTORS):
        # make_records numbers images from 0 within the tuple: one image each gives the same curve
        records += make_records("shvc", 1.0, "scalable", [1.5], images=(image,))
        records += make_records("compass", float(factor), "scalable", [1.5], images=(image,))
    run = write_run(base / "run", records)
    out = base / "report"
    build_report([run], out, bootstrap=RESAMPLES, latex=True)
    return run, out


def _pair(frame: pd.DataFrame, test: str, ref: str, layer: int = 1) -> pd.Series:
    rows = frame[(frame.codec == test) & (frame.reference == ref) & (frame.layer == layer)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_interval_is_the_percentile_bootstrap_of_paired_image_resamples(varied):
    _, out = varied
    row = _pair(pd.read_csv(out / "bdrate.csv"), "compass", "shvc")
    assert row.bd_rate == pytest.approx((FACTORS.mean() - 1) * 100, abs=1e-9)
    # resample b draws the same images for both codecs: its mean curve is (mean f over the draw)× shvc's
    counts = resample_counts(len(IMAGES), RESAMPLES)
    expected = np.percentile((counts @ FACTORS / len(IMAGES) - 1) * 100, [2.5, 97.5])
    assert (row.ci_low, row.ci_high) == pytest.approx(tuple(expected), abs=1e-9)
    assert row.ci_low < row.bd_rate < row.ci_high and row.ci_high - row.ci_low > 5  # holds it, not degenerate
    # the reverse pair is the same resamples seen from the other side
    reverse = _pair(pd.read_csv(out / "bdrate.csv"), "shvc", "compass")
    assert reverse.ci_low < reverse.bd_rate < reverse.ci_high


def test_per_image_bd_rates_and_their_summary(varied):
    _, out = varied
    images = pd.read_csv(out / "bdrate_images.csv")
    mine = images[(images.codec == "compass") & (images.reference == "shvc") & (images.layer == 1)]
    assert list(mine.image) == list(IMAGES)
    np.testing.assert_allclose(mine.bd_rate, (FACTORS - 1) * 100, atol=1e-9)
    row = _pair(pd.read_csv(out / "bdrate.csv"), "compass", "shvc")
    per_image = (FACTORS - 1) * 100
    assert row.bd_rate_images == pytest.approx(per_image.mean(), abs=1e-9)
    assert row.images_median == pytest.approx(np.median(per_image))
    assert (row.images_q1, row.images_q3) == pytest.approx(tuple(np.percentile(per_image, [25, 75])))
    assert row.worst_image == "kodim08.png" and row.worst_image_bd_rate == pytest.approx(30.0)
    assert row.ci_low_images < row.bd_rate_images < row.ci_high_images
    md = (out / "report.md").read_text()
    assert f"| {np.median(per_image):+.1f} " in md and "kodim08.png +30.0" in md  # median and worst image


def test_glance_cell_reads_estimate_and_interval_and_links_the_strip_plot(varied):
    _, out = varied
    row = _pair(pd.read_csv(out / "bdrate.csv"), "compass", "shvc")
    glance = pd.read_csv(out / "glance_compass.csv")
    cell = glance.loc[0, "vs shvc"]
    # images from -30 % to +30 %: 8 of them do not settle the sign of a -6.9 % mean
    assert row.ci_low < 0 < row.ci_high
    assert cell == f"{row.bd_rate:+.1f} % [{row.ci_low:+.1f}, {row.ci_high:+.1f}] (n.s.)"
    assert re.fullmatch(r"[+-]\d+\.\d % \[[+-]\d+\.\d, [+-]\d+\.\d\] \(n\.s\.\)", cell)
    md = (out / "report.md").read_text()
    assert "[strip](strip_compass_kodak_top_1.5.png)" in md
    assert (out / "strip_compass_kodak_top_1.5.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert "<a href='strip_compass_kodak_top_1.5.png'>strip</a>" in html and 'class="dataframe glance"' in html
    assert "95 % percentile bootstrap over images with 400 resamples" in md


def test_an_interval_holding_zero_is_marked_not_significant():
    assert interval_text(1.234, -0.8, 3.1) == "+1.2 % [-0.8, +3.1] (n.s.)"
    assert interval_text(-46.5, -52.0, -41.2) == "-46.5 % [-52.0, -41.2]"
    assert interval_text(5.0) == "+5.0 %" and interval_text(float("nan"), 1, 2) == ""


def test_bootstrap_0_turns_intervals_off_and_bd_average_images_leads_the_tables(varied, tmp_path):
    run, _ = varied
    out = tmp_path / "report"
    build_report([run], out, bootstrap=0, bd_average="images")
    table = pd.read_csv(out / "bdrate.csv")
    assert table.ci_low.isna().all() and table.ci_high.isna().all() and table.ci_low_images.isna().all()
    # both conventions stay in the CSV; the tables lead with the mean of per-image BD-rates
    row = _pair(table, "compass", "shvc")
    assert row.bd_rate == pytest.approx((FACTORS.mean() - 1) * 100)
    assert row.bd_rate_images == pytest.approx(((FACTORS - 1) * 100).mean())
    assert pd.read_csv(out / "glance_compass.csv").loc[0, "vs shvc"] == f"{row.bd_rate_images:+.1f} %"
    md = (out / "report.md").read_text()
    assert "No intervals (bench report --bootstrap 0)" in md and "--bd-average images" in md


def test_cli_report_options(varied, tmp_path, capsys):
    run, _ = varied
    assert main(["report", str(run), "--out", str(tmp_path / "r"), "--bootstrap", "50", "--bd-average", "images",
                 "--latex"]) == 0
    assert (tmp_path / "r" / "latex" / "tables.tex").is_file()
    for bad in (["--bootstrap", "-1"], ["--bootstrap", "x"], ["--bd-average", "median"]):
        with pytest.raises(SystemExit) as stop:
            main(["report", str(run), "--out", str(tmp_path / "r"), *bad])
        assert stop.value.code == 2
    assert "must be 0 (no intervals) or more" in capsys.readouterr().err


# --- LaTeX -----------------------------------------------------------------------------------------

def _latex_rows(path: Path) -> list[list[str]]:
    """The rows of a booktabs tabular (header first), cells unescaped."""
    lines = path.read_text().split("\\toprule")[1].split("\\bottomrule")[0].strip().splitlines()
    unescape = {r"\%": "%", r"\_": "_", r"$\times$": "×", r"\&": "&"}
    rows = []
    for line in lines:
        if line.strip() == "\\midrule":
            continue
        cells = [cell.strip() for cell in line.rstrip().removesuffix("\\\\").split(" & ")]
        for old, new in unescape.items():
            cells = [cell.replace(old, new) for cell in cells]
        rows.append(cells)
    return rows


def test_latex_glance_table_is_its_csv_cell_by_cell(varied):
    _, out = varied
    glance = pd.read_csv(out / "glance_compass.csv", dtype=str, keep_default_na=False)
    rows = _latex_rows(out / "latex" / "glance_compass.tex")
    assert rows[0] == list(glance.columns)
    assert rows[1:] == glance.values.tolist()


def test_latex_layer_tables_hold_the_focus_csv_rows_and_numbers(varied):
    _, out = varied
    focus = pd.read_csv(out / "bdrate_focus.csv", dtype={"scales_label": str})
    assert len(focus)
    for (dataset, anchor, label, layer), rows in focus.groupby(["dataset", "anchor", "scales_label", "layer"]):
        latex = _latex_rows(out / "latex" / layer_file(dataset, anchor, label, layer))
        assert latex[0] == ["codec", "reference", "BD-rate %", "95 % interval", "BD-PSNR dB", "images"]
        assert len(latex) - 1 == len(rows)
        for cells, row in zip(latex[1:], rows.itertuples()):
            assert cells[:2] == [row.codec, row.reference]
            assert float(cells[2]) == pytest.approx(row.bd_rate, abs=0.005)
            low, high = (float(x) for x in re.findall(r"[+-]\d+\.\d", cells[3]))
            assert (low, high) == pytest.approx((row.ci_low, row.ci_high), abs=0.05)
            assert float(cells[4]) == pytest.approx(row.bd_psnr, abs=0.0005) and int(cells[5]) == row.images


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_tables_compile(varied, tmp_path):
    _, out = varied
    folder = tmp_path / "latex"
    shutil.copytree(out / "latex", folder)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "tables.tex"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (folder / "tables.pdf").stat().st_size > 1000


# --- published curves, plots -----------------------------------------------------------------------

def _published_records(dataset: str, factor: float = 0.9) -> pd.DataFrame:
    mbt = published_curves()["mbt2018-mean"]
    return pd.DataFrame([
        {"codec": "jpeg", "dataset": dataset, "anchor": "top", "scales_label": "1 layer", "layer": 0,
         "num_layers": 1, "image": f"kodim{i:02d}.png", "quality": q, "bpp": b * factor * (1 + 0.05 * (i - 2)),
         "psnr_rgb": p}
        for i in range(1, 4) for q, (b, p) in enumerate(zip(mbt.bpp, mbt.psnr))
    ])


def test_published_bd_finds_kodak_given_as_a_folder_path_with_intervals_and_reasons():
    mbt = published_curves()["mbt2018-mean"]
    by_name = published_bd(_published_records("kodak"), {"mbt2018-mean": mbt}, bootstrap=200)
    by_path = published_bd(_published_records("../shared/datasets/kodak"), {"mbt2018-mean": mbt}, bootstrap=200)
    assert len(by_name) == len(by_path) == 1
    assert by_path.iloc[0]["bd_rate"] == pytest.approx(by_name.iloc[0]["bd_rate"])
    assert by_path.iloc[0]["dataset"] == "../shared/datasets/kodak" and by_path.iloc[0]["scales"] == "1 layer"
    row = by_name.iloc[0]
    # the mean rate factor is 0.9: -10 %; the interval resamples the 3 images, the published curve fixed
    assert row["bd_rate"] == pytest.approx(-10.0, abs=1e-6) and row["ci_low"] < -10 < row["ci_high"]
    assert {"psnr_reason", "note"} <= set(by_name.columns)


def test_published_bd_keeps_why_bd_psnr_is_blank():
    jpeg = published_curves()["JPEG"]
    # a curve whose rate range barely meets the published JPEG's: BD-rate yes, BD-PSNR no
    records = pd.DataFrame([
        {"codec": "hm", "dataset": "kodak", "anchor": "top", "scales_label": "1 layer", "layer": 0, "num_layers": 1,
         "image": "kodim01.png", "quality": q, "bpp": b, "psnr_rgb": p}
        for q, (b, p) in enumerate(zip([0.05, 0.06, 0.07, 0.08], [min(jpeg.psnr) + d for d in (1, 2, 3, 4)]))
    ])
    row = published_bd(records, {"JPEG": jpeg}, bootstrap=0).iloc[0]
    assert np.isnan(row["bd_psnr"]) and "rate" in row["psnr_reason"]


def test_published_curves_are_drawn_only_beside_a_full_size_layer():
    assert has_full_size_layer("top", (2.0,)) and has_full_size_layer("top", ())
    assert not has_full_size_layer("base:0.25", (2.0,)) and not has_full_size_layer("base:0.25", (1.33, 1.5))
    assert has_full_size_layer("base:0.25", (2.0, 2.0))  # 0.25·2·2 = 1: the top layer is the source


def test_no_codec_is_drawn_in_the_published_grey():
    names = ["compass", "hm", "jpeg", "mean-scale", "shvc", "shvc:ctc", "simulcast:hm", "simulcast:mean-scale",
             "x265", "webp"]
    for codecs in (names[:9], names):
        colours = codec_colours(codecs)
        assert len(set(colours.values())) == len(codecs)
        assert all(max(c[:3]) - min(c[:3]) > 0.05 for c in colours.values())  # none is a grey
    assert PUBLISHED_COLOUR == "0.35"
