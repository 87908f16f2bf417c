"""page_blocks and write_page alone: the page from tables and plot names, no plot drawn."""

from dataclasses import replace

import pytest

from bench.report import build_report
from bench.report.compute import compute_tables
from bench.report.files import write_table_files
from bench.report.page import _markdown, page_blocks, write_page
from bench.report.plots import ReportPlots, draw_plots

KEY = ("kodak", "top", "1.5")


@pytest.fixture(scope="module")
def tables(three_codec_run):
    return compute_tables([three_codec_run], bootstrap=0)


@pytest.fixture(scope="module")
def plots():
    """Names as draw_plots would return them; the page only links them."""
    return ReportPlots(rd={KEY: "rd_kodak_top_1.5.png"},
                       strips={("compass", "kodak", "top", "1.5"): "strip_compass_kodak_top_1.5.png"})


def headings(blocks):
    return [(b.kind, b.text) for b in blocks if b.kind.startswith("h")]


def test_headings_in_order(tables, plots):
    found = headings(page_blocks(tables, plots))
    section = tables.sections[0].title
    assert found == [
        ("h1", "bench report"),
        ("h2", "At a glance: compass's top layer against each reference"),
        ("h2", "Method"),
        ("h2", section),
        ("h3", "BD-rate against the contract's anchors"),
        ("h4", "Layer 0: BD-rate % of every codec (row) against every other (column)"),
        ("h4", "Layer 1: BD-rate % of every codec (row) against every other (column)"),
        ("h2", "Cost"),
        ("h3", "Median time per layer"),
        ("h2", "COMPASS paper (ICCV 2023) vs measured"),
        ("h3", "The paper's full tables (BD-rate %, Kodak)"),
        ("h2", "Aggregates per codec, scales, quality and layer"),
        ("h2", "Published reference curves"),
        ("h2", "Run manifests"),
    ]


def test_markdown_holds_the_tables_values_and_links(tables, plots):
    text = _markdown(page_blocks(tables, plots))
    assert "![rd_kodak_top_1.5.png](rd_kodak_top_1.5.png)" in text
    assert "[strip](strip_compass_kodak_top_1.5.png)" in text
    assert "-20.0 %" in text and "-27.3 %" in text  # the glance table
    assert "+10.00" in text and "-9.09" in text  # the focus table and the matrices
    assert "Grey lines: published mbt2018-mean" in text  # Kodak, top anchoring
    assert "No intervals (bench report --bootstrap 0)" in text
    assert '"git_commit": "abc123"' in text


def test_no_plot_and_no_paper_codec(tables, plots):
    text = _markdown(page_blocks(replace(tables, paper=None, published=None), replace(plots, rd={})))
    assert "No finite (bpp, PSNR) point to plot." in text and "![rd_" not in text
    assert "COMPASS paper" not in text and "Published reference curves" not in text


def test_another_metric_is_named(three_codec_run, plots):
    tables = compute_tables([three_codec_run], metric="ms-ssim-db", bootstrap=0)
    text = _markdown(page_blocks(tables, plots))
    assert "### BD-rate against the contract's anchors (MS-SSIM dB)" in text
    assert "BD-MS-SSIM dB" in text
    assert "Grey lines" not in text


def test_write_page(tables, plots, tmp_path):
    blocks = page_blocks(tables, plots)
    path = write_page(blocks, tmp_path / "out")
    assert path == tmp_path / "out" / "report.md"
    assert path.read_text(encoding="utf-8") == _markdown(blocks)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<h1>bench report</h1>" in html
    assert "<img src='rd_kodak_top_1.5.png'" in html


def test_build_report_is_the_four_pieces(three_codec_run, tmp_path):
    built = build_report([three_codec_run], tmp_path / "built", bootstrap=0)
    tables = compute_tables([three_codec_run], bootstrap=0)
    write_table_files(tables, tmp_path / "pieces")
    page = write_page(page_blocks(tables, draw_plots(tables, tmp_path / "pieces")), tmp_path / "pieces")
    assert sorted(p.name for p in (tmp_path / "built").iterdir()) == sorted(
        p.name for p in (tmp_path / "pieces").iterdir())
    for name in ("report.md", "report.html", "bdrate.csv", "summary.csv", "cost.csv"):
        assert (tmp_path / "built" / name).read_bytes() == (tmp_path / "pieces" / name).read_bytes(), name
    assert built.name == page.name == "report.md"
