"""``--scales 1`` and plain-decimal scales on the command line (issue #31 item 3, issue #27 7a)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--codecs", "x265,simulcast:x265", "--scales", "1"],
         "--scales 1 (a single-layer run of the full picture) is for single-layer codecs; "
         "scalable codec(s) simulcast:x265 code at least two layers"),
        (["--codecs", "x265", "--scales", "1_5"], "decimal numbers (e.g. 1.5,2), got '1_5'"),
        (["--codecs", "x265", "--scales", "1", "--anchor", "base:0.25"], "would code a smaller one"),
    ],
)
def test_scales_errors_are_one_line_before_any_job(capsys, tmp_path: Path, make_image_folder, extra,
                                                    message) -> None:
    folder = make_image_folder(1, 24, 32)
    status = main(["run", "--dataset", str(folder), "--out", str(tmp_path / "run"), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_scales_1_runs_a_single_layer_codec_and_its_report_compares_with_the_published_curves(
        tmp_path: Path, make_image_folder) -> None:
    """``--scales 1`` codes the full picture once; a Kodak given as a folder path (named kodak) still
    gets its BD-rates against the published Kodak curves (issue #31: they were dropped)."""
    import pandas as pd

    folder = make_image_folder(2, 64, 96, name="kodak")
    run = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg", "--scales", "1", "--dataset", str(folder), "--qualities", "20,60,90",
                 "--out", str(run), "--no-progress"]) == 0
    records = [line for line in (run / "records.jsonl").read_text().splitlines() if line]
    assert len(records) == 2 * 3
    assert all('"scales": []' in r and '"num_layers": 1' in r and '"width": 96' in r for r in records)
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out), "--bootstrap", "50"]) == 0
    published = pd.read_csv(out / "bdrate_published.csv")
    assert len(published) == 3 and set(published.dataset) == {str(folder)}  # one row per published curve
    assert set(published.scales) == {"1 layer"} and set(published.images) == {"2 of 24"}
    assert {"ci_low", "ci_high", "psnr_reason", "note"} <= set(published.columns)
    # a row without a BD-rate says why
    assert (published.bd_rate.notna() | published.reason.fillna("").astype(bool)).all()
