import json
from pathlib import Path

import pytest

from bench.anchors import compass_paper_bdrate, published_curves

REFERENCE = Path("/work/shared/reference")


def test_published_curves_names_and_shapes():
    curves = published_curves()
    assert set(curves) == {"mbt2018-mean", "BPG-444", "JPEG"}
    for curve in curves.values():
        assert len(curve.bpp) == len(curve.psnr) > 1
        assert curve.ms_ssim == [] or len(curve.ms_ssim) == len(curve.bpp)
        assert curve.citation and curve.description and curve.dataset == "kodak"
        # published curves rise with rate
        assert all(b2 > b1 for b1, b2 in zip(curve.bpp, curve.bpp[1:]))
    assert curves["JPEG"].ms_ssim == []
    assert curves["mbt2018-mean"].quality == list(range(1, 9))
    assert curves["mbt2018-mean"].psnr[0] == pytest.approx(27.699473000769824)
    assert curves["BPG-444"].bpp[-1] == pytest.approx(4.703142801920573)
    assert "Minnen" in curves["mbt2018-mean"].citation
    assert "bellard.org" in curves["BPG-444"].citation


def test_other_dataset_has_no_curves():
    assert published_curves("clic") == {}
    assert set(published_curves(None)) == {"mbt2018-mean", "BPG-444", "JPEG"}


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="shared reference folder not present")
def test_data_files_are_unchanged_copies():
    package = Path(__import__("bench.anchors", fromlist=["x"]).__file__).parent
    for source in REFERENCE.glob("*.json"):
        assert json.loads((package / source.name).read_text()) == json.loads(source.read_text())


def test_compass_paper_tables():
    paper = compass_paper_bdrate()
    assert "ICCV 2023" in paper.source and "2309.07926" in paper.citation
    assert len(paper.rows) == 2 * 4 * 5
    assert paper.lookup(2, 1.2, "SHVC") == pytest.approx(-53.88)
    assert paper.lookup(3, 2.4, "SHVC") == pytest.approx(-58.33)
    assert paper.lookup(2, 2.0, "single-layer") == pytest.approx(8.8)
    assert paper.lookup(3, 4.0, "simulcast") == pytest.approx(-22.9)
    assert paper.lookup(2, 1.5, "SHVC") is None
    frame = paper.frame()
    assert frame.loc[(3, 4.0), "single-layer"] == pytest.approx(4.74)
    assert frame.shape == (10, 4)
