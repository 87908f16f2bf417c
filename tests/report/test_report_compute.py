"""compute_tables alone: the report's tables from records, without writing anything."""

import math

import pytest

from bench.errors import ReportError
from bench.report.compute import compute_tables, group_title, scales_of


@pytest.fixture(scope="module")
def tables(three_codec_run):
    return compute_tables([three_codec_run], bootstrap=0)


def bd_row(frame, codec, reference, layer):
    rows = frame[(frame["codec"] == codec) & (frame["reference"] == reference) & (frame["layer"] == layer)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_bdrate_rows_of_a_constructed_pair(tables):
    for layer in (0, 1):
        assert bd_row(tables.bdrate, "simulcast:x265", "x265", layer).bd_rate == pytest.approx(10.0, abs=1e-9)
        assert bd_row(tables.bdrate, "x265", "simulcast:x265", layer).bd_rate == pytest.approx(
            (1 / 1.1 - 1) * 100, abs=1e-9)
        assert bd_row(tables.bdrate, "compass", "x265", layer).bd_rate == pytest.approx(-20.0, abs=1e-9)
    # every ordered pair of the three codecs, at both layers
    assert len(tables.bdrate) == 3 * 2 * 2
    assert set(tables.bdrate["metric"]) == {"psnr-rgb"}
    # bootstrap 0: no interval
    assert tables.bdrate["ci_low"].isna().all()


def test_focus_is_the_contracts_pairs_above_layer_0(tables):
    assert set(tables.focus["layer"]) == {1}
    assert ("simulcast:x265", "x265") in set(zip(tables.focus["codec"], tables.focus["reference"]))
    # a single-layer codec is never the one tested
    assert "x265" not in set(tables.focus["codec"])
    assert tables.focus["focus"].astype(bool).all()


def test_sections_hold_each_comparison(tables):
    (section,) = tables.sections
    assert section.key == ("kodak", "top", "1.5")
    assert section.title == group_title("kodak", "top", "1.5", 2, 3)
    assert "scales 1.5 (2 layers), top anchoring, 3 images" in section.title
    assert section.shows_published  # Kodak, and top anchoring makes the top layer the source
    assert sorted(set(section.curves["codec"])) == ["compass", "simulcast:x265", "x265"]
    assert [layer for layer, _ in section.layer_matrices] == [0, 1]
    _, matrix = section.layer_matrices[1]
    assert matrix.loc["simulcast:x265", "x265"] == "+10.00"
    assert matrix.loc["compass", "x265"] == "-20.00"
    assert set(section.focus["layer"]) == {1}


def test_glance_paper_and_published(tables):
    assert list(tables.glances) == ["compass"]
    glance = tables.glances["compass"]
    assert glance.loc[0, "vs x265"] == "-20.0 %" and glance.loc[0, "vs simulcast:x265"] == "-27.3 %"
    assert tables.paper is not None  # compass is the paper's codec
    assert tables.published is not None and len(tables.published)  # Kodak: the published curves apply
    assert set(tables.published["codec"]) <= {"compass", "simulcast:x265", "x265"}


def test_what_the_page_is_told(tables, three_codec_run):
    assert tables.run_dirs == (three_codec_run,)
    assert tables.images_per_dataset.to_dict() == {"kodak": 3}
    assert tables.codecs == ["compass", "simulcast:x265", "x265"]
    assert tables.reused == []
    assert tables.manifests == ((three_codec_run, {"git_commit": "abc123", "args": ["run"]}),)
    assert tables.yuv_matrices == () and not tables.yuv_measured
    # nobody reported params per module, a timing split or a prediction
    assert tables.modules.empty and tables.split.empty and tables.prediction.empty
    assert set(tables.costs["codec"]) == {"compass", "simulcast:x265", "x265"}


def test_nothing_is_written(three_codec_run):
    before = sorted(p.name for p in three_codec_run.parent.rglob("*"))
    compute_tables([three_codec_run], bootstrap=0)
    assert sorted(p.name for p in three_codec_run.parent.rglob("*")) == before


def test_images_average_leads_the_shown_rows_only(three_codec_run):
    tables = compute_tables([three_codec_run], bootstrap=0, bd_average="images")
    row = bd_row(tables.bd_shown, "simulcast:x265", "x265", 1)
    assert row.bd_rate == row.bd_rate_images
    # bdrate.csv keeps the BD-rate of the mean curves in bd_rate
    assert tables.bdrate["bd_rate"].equals(compute_tables([three_codec_run], bootstrap=0).bdrate["bd_rate"])


def test_another_metric(three_codec_run):
    tables = compute_tables([three_codec_run], metric="ms-ssim-db", bootstrap=0)
    assert set(tables.bdrate["metric"]) == {"ms-ssim-db"}
    assert tables.metric.name == "ms-ssim-db"
    # the published curves are PSNR-RGB: not drawn on another metric
    assert not any(section.shows_published for section in tables.sections)
    # the synthetic layer 0 has no MS-SSIM: no BD-rate there
    assert math.isnan(bd_row(tables.bdrate, "simulcast:x265", "x265", 0).bd_rate)


@pytest.mark.parametrize("settings, message", [
    ({"metric": "psnr-q"}, "unknown metric"),
    ({"bd_average": "median"}, "unknown BD average"),
    ({"bootstrap": -1}, "--bootstrap must be 0"),
])
def test_refused_settings(tmp_path, settings, message):
    # refused before anything is read: the run directory need not exist
    with pytest.raises(ReportError, match=message):
        compute_tables([tmp_path / "missing"], **settings)


def test_scales_of():
    assert scales_of("1 layer") == () and scales_of("1.33,1.5") == (1.33, 1.5)
