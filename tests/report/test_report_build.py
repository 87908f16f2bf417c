import math

import pandas as pd
import pytest

from bench.errors import ReportError
from bench.report import build_report

IMAGES = ("kodim01.png", "kodim02.png", "kodim03.png")


@pytest.fixture(scope="module")
def kodak_report(tmp_path_factory, make_records, write_run):
    """One Kodak run (top anchoring, scales 1.5) with known curves, plus a second run directory."""
    base = tmp_path_factory.mktemp("kodak")
    records = (
        make_records("x265", 1.0, "single", [1.5])
        + make_records("simulcast:x265", 1.1, "scalable", [1.5])
        # PSNR 20 dB above everything else: no overlap with any other codec
        + make_records("far-away", 1.0, "scalable", [1.5], psnr_offset=20.0)
        # only two of the three images: pairs with it must use those two
        + make_records("partial", 0.7, "scalable", [1.5], images=IMAGES[:2])
    )
    run1 = write_run(base / "run1", records, {"git_commit": "abc123", "args": ["run", "--scales", "1.5"]})
    # A second run directory: full-image x265 (scales []) and compass at the same top-anchored combination.
    # x265 full image: its layer-0 curve at rate x1.6 and PSNR +1.6 dB equals the synthetic layer-2 curve.
    second = make_records("x265", 1.6, "single", [], sizes=((72, 96),), psnr_offset=1.6) + make_records(
        "compass", 0.8, "scalable", [1.2, 1.25], sizes=((48, 64), (57, 76), (72, 96))
    )
    run2 = write_run(base / "run2", second, {"git_commit": "def456"})
    out = base / "report"
    path = build_report([run1, run2], out)
    return path, out


def bd(out, test, ref, layer, scales="1.5"):
    long = pd.read_csv(out / "bdrate.csv", dtype={"scales_label": str})
    row = long[
        (long.codec == test) & (long.reference == ref) & (long.layer == layer) & (long.scales_label == scales)
    ]
    assert len(row) == 1, row
    return row.iloc[0]


def test_report_files_exist(kodak_report):
    path, out = kodak_report
    assert path == out / "report.md"
    for name in ("report.md", "report.html", "summary.csv", "bdrate.csv", "bdrate_focus.csv", "cost.csv"):
        assert (out / name).stat().st_size > 0, name
    png = (out / "rd_kodak_top_1.5.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert (out / "rd_kodak_top_1.5.svg").read_text().lstrip().startswith("<?xml")


def test_known_bd_rate_in_tables(kodak_report):
    _, out = kodak_report
    for layer in (0, 1):
        assert bd(out, "simulcast:x265", "x265", layer).bd_rate == pytest.approx(10.0, abs=1e-9)
        assert bd(out, "x265", "simulcast:x265", layer).bd_rate == pytest.approx(
            (1 / 1.1 - 1) * 100, abs=1e-9
        )
    focus = pd.read_csv(out / "bdrate_focus.csv")
    pairs = set(zip(focus.codec, focus.reference))
    assert ("simulcast:x265", "x265") in pairs
    assert ("x265", "simulcast:x265") not in pairs  # a single-layer codec is never the tested one
    assert set(focus.layer) == {1}  # the contract's BD-rates are per layer k ≥ 1; layer 0 is in bdrate.csv
    assert 0 in set(pd.read_csv(out / "bdrate.csv").layer)
    md = (out / "report.md").read_text()
    assert "+10.00" in md and "-9.09" in md


def test_partial_codec_uses_common_images(kodak_report):
    _, out = kodak_report
    row = bd(out, "partial", "x265", 1)
    # per image the partial codec's rate is exactly 0.7x: over the two common images that is -30 %
    assert row.bd_rate == pytest.approx(-30.0, abs=1e-9)
    assert row.images == 2 and "2 images" in row.note


def test_nan_cell_shows_reason(kodak_report):
    _, out = kodak_report
    row = bd(out, "far-away", "x265", 1)
    assert math.isnan(row.bd_rate) and row.reason == "no PSNR overlap"
    assert "NaN (no PSNR overlap)" in (out / "report.md").read_text()


def test_full_image_single_layer_is_reused_as_top_layer(kodak_report):
    _, out = kodak_report
    # compass's top layer (layer 2 of scales 1.2,1.25) is the source; x265 coded it in run2 with scales [].
    row = bd(out, "compass", "x265", 2, scales="1.2,1.25")
    assert row.bd_rate == pytest.approx(-20.0, abs=1e-9)
    assert "used as the top layer" in (out / "report.md").read_text()


def test_markdown_and_html_content(kodak_report):
    _, out = kodak_report
    md = (out / "report.md").read_text()
    for codec in ("x265", "simulcast:x265", "far-away", "partial", "compass"):
        assert codec in md
    assert "![rd_kodak_top_1.5.png](rd_kodak_top_1.5.png)" in md
    assert "published, full-size Kodak" in md or "full-size Kodak" in md
    assert "abc123" in md and "def456" in md  # manifests
    assert "Kodak Lossless True Color Image Suite" in md
    assert "mbt2018-mean" in md and "bellard.org" in md  # published curves with citations
    html = (out / "report.html").read_text()
    assert "<img src='rd_kodak_top_1.5.png'" in html and html.count("<table") >= 5


def test_summary_csv_means(kodak_report):
    _, out = kodak_report
    summary = pd.read_csv(out / "summary.csv", dtype={"scales_label": str})
    row = summary[
        (summary.codec == "x265")
        & (summary.scales_label == "1.5")
        & (summary.quality == 2)
        & (summary.layer == 1)
    ].iloc[0]
    # synthetic curve: bpp = 0.1*1.6^q*(1+0.1 i)*(1+0.3 layer), psnr = 26+2.5q+0.5i+0.8 layer, i = 0,1,2
    assert row.bpp == pytest.approx(0.1 * 1.6**2 * 1.1 * 1.3)
    assert row.psnr_rgb == pytest.approx(26 + 5 + 0.5 + 0.8)
    assert row.psnr_std == pytest.approx(0.5)
    assert row.images == 3 and row.ms_ssim_rgb == pytest.approx(0.92)


@pytest.fixture(scope="module")
def paper_report(tmp_path_factory, make_records, write_run):
    base = tmp_path_factory.mktemp("paper")
    records = (
        make_records("compass", 0.8, "scalable", [1.2], anchor="base:0.25")
        + make_records("mean-scale", 1.0, "single", [1.2], anchor="base:0.25")
        + make_records("shvc", 1.6, "scalable", [1.2], anchor="base:0.25")
        + make_records("x265", 1.0, "single", [1.5], dataset="clic")
        + make_records("simulcast:x265", 1.2, "scalable", [1.5], dataset="clic")
    )
    run = write_run(base / "run", records)
    out = base / "report"
    build_report([run], out)
    return out


def test_compass_paper_table_beside_measured(paper_report):
    paper = pd.read_csv(paper_report / "compass_paper.csv")
    single = paper[paper.paper_anchor == "single-layer"].iloc[0]
    assert single.paper_bd_rate == pytest.approx(-8.19)
    assert single.reference == "mean-scale" and single.measured_bd_rate == pytest.approx(-20.0, abs=1e-9)
    shvc = paper[paper.paper_anchor == "SHVC"].iloc[0]
    assert shvc.paper_bd_rate == pytest.approx(-53.88)
    assert shvc.measured_bd_rate == pytest.approx((0.8 / 1.6 - 1) * 100, abs=1e-9)
    simulcast = paper[paper.paper_anchor == "simulcast"].iloc[0]
    assert math.isnan(simulcast.measured_bd_rate) and "not in this run" in simulcast.note
    md = (paper_report / "report.md").read_text()
    assert "COMPASS paper (ICCV 2023) vs measured" in md and "-53.88" in md


def test_clic_label_and_no_published_kodak_curves(paper_report):
    md = (paper_report / "report.md").read_text()
    assert "CLIC 2020 pro-valid, 30-image subset" in md
    assert (paper_report / "rd_clic_top_1.5.png").stat().st_size > 10_000
    clic_section = md.split("## CLIC 2020 pro-valid, 30-image subset")[1].split("\n## ")[0]
    assert "full-size Kodak" not in clic_section
    assert "+20.00" in clic_section  # simulcast:x265 vs x265 at rate x1.2


def test_missing_and_empty_run_dirs(tmp_path, write_run):
    with pytest.raises(ReportError, match="does not exist"):
        build_report([tmp_path / "nope"], tmp_path / "out")
    empty = write_run(tmp_path / "empty", [])
    with pytest.raises(ValueError, match="no records"):
        build_report([empty], tmp_path / "out")


def test_every_codec_declares_what_its_rate_counts_and_the_report_lists_it():
    from bench.registry import codec_names, rate_counts

    for name in codec_names():
        if name != "simulcast":
            assert rate_counts(name), f"{name} does not declare Codec.rate_counts"
    combined = rate_counts("simulcast:x265")
    assert combined.startswith("its container") and rate_counts("x265") in combined
    assert rate_counts("no-such-codec") == ""


def _glance(md: str, codec: str) -> list[dict[str, str]]:
    """The rows of the report's at-a-glance table of ``codec``, as {column: cell}."""
    section = md.split(f"## At a glance: {codec}'s top layer against each reference")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    split = lambda line: [cell.strip() for cell in line.strip().strip("|").split("|")]  # noqa: E731
    header = split(lines[0])
    return [dict(zip(header, split(line))) for line in lines[2:]]


def test_glance_gathers_the_top_layer_against_every_reference_with_the_papers_figures(paper_report):
    md = (paper_report / "report.md").read_text()
    assert md.index("## At a glance: compass") < md.index("## Method")  # first thing a reader sees
    [row] = _glance(md, "compass")
    # shvc (the conventional scalable anchor) comes before the codec's own family
    assert list(row) == ["dataset", "protocol", "scales", "vs shvc", "vs mean-scale", "per image", "paper"]
    # every image saves exactly 50 % / 20 %: every resample of images gives the same BD-rate
    assert row["vs shvc"] == "-50.0 % [-50.0, -50.0]" and row["vs mean-scale"] == "-20.0 % [-20.0, -20.0]"
    assert row["per image"] == "[strip](strip_compass_kodak_base-0.25_1.2.png)"
    assert row["protocol"] == "base:0.25" and row["scales"] == "×1.2" and "SHVC -53.9 %" in row["paper"]
    # anchors and simulcast codecs are references, not codecs under test
    assert "At a glance: shvc" not in md and "At a glance: simulcast" not in md


def test_glance_of_a_three_layer_run_uses_its_top_layer(kodak_report):
    path, _ = kodak_report
    [row] = _glance(path.read_text(), "compass")
    # compass's layer 2 is 0.8× the synthetic curve, which x265's full-image records equal
    assert row["scales"] == "×1.2, ×1.25" and row["vs x265"] == "-20.0 % [-20.0, -20.0]"
    assert "paper" not in row  # the paper has no ×1.2, ×1.25 row


def test_kodak_comes_before_clic_in_the_glance_the_dataset_table_and_the_sections(tmp_path, make_records, write_run):
    records = []
    for dataset, factor in (("clic", 0.9), ("kodak", 0.8)):
        records += make_records("compass", factor, "scalable", [2.0], dataset=dataset)
        records += make_records("mean-scale", 1.0, "single", [2.0], dataset=dataset)
    out = tmp_path / "report"
    build_report([write_run(tmp_path / "run", records)], out)
    md = (out / "report.md").read_text()
    rows = _glance(md, "compass")
    assert [row["dataset"] for row in rows] == ["kodak", "clic"]  # the paper's dataset first, not alphabetical
    assert [row["vs mean-scale"] for row in rows] == ["-20.0 % [-20.0, -20.0]", "-10.0 % [-10.0, -10.0]"]
    kodak, clic = "Kodak Lossless True Color Image Suite", "CLIC 2020 pro-valid, 30-image subset"
    assert md.index(f"| {kodak}") < md.index(f"| {clic}")
    assert md.index(f"## {kodak} —") < md.index(f"## {clic} —")


def test_glance_gives_the_papers_kodak_figures_on_kodak_rows_only(tmp_path, make_records, write_run):
    records = []
    for dataset in ("kodak", "clic"):
        records += make_records("compass", 0.8, "scalable", [2.0], dataset=dataset)
        records += make_records("shvc", 1.0, "scalable", [2.0], dataset=dataset)
    out = tmp_path / "report"
    build_report([write_run(tmp_path / "run", records)], out)
    kodak, clic = _glance((out / "report.md").read_text(), "compass")
    assert kodak["dataset"] == "kodak" and "SHVC -35.9 %" in kodak["paper"]
    assert clic["dataset"] == "clic" and clic["paper"] == "" and clic["vs shvc"].startswith("-20.0 % [")
    # the paper table keeps the CLIC row, saying where the paper's number comes from
    paper = pd.read_csv(out / "compass_paper.csv")
    clic_rows = paper[(paper.dataset == "clic") & (paper.paper_anchor == "SHVC")]
    assert not clic_rows.empty and clic_rows.note.str.contains("paper numbers are on Kodak").all()


def test_glance_tells_a_pair_refused_for_overlap_from_a_missing_one(tmp_path, make_records, write_run):
    # shvc's curve lies 9 dB above compass's: the run has the pair, but their PSNR ranges barely meet
    records = (make_records("compass", 0.8, "scalable", [2.0]) + make_records("mean-scale", 1.0, "single", [2.0])
               + make_records("shvc", 1.0, "scalable", [2.0], psnr_offset=9.0)
               + make_records("compass", 0.8, "scalable", [1.5]) + make_records("mean-scale", 1.0, "single", [1.5]))
    out = tmp_path / "report"
    build_report([write_run(tmp_path / "run", records)], out)
    x15, x2 = _glance((out / "report.md").read_text(), "compass")
    assert x2["scales"] == "×2" and x2["vs shvc"] == "(overlap)"
    assert x15["scales"] == "×1.5" and x15["vs shvc"] == ""  # no shvc record at ×1.5 at all
    assert x2["vs mean-scale"] == x15["vs mean-scale"] == "-20.0 % [-20.0, -20.0]"
    refused = pd.read_csv(out / "bdrate.csv").query("codec == 'compass' and reference == 'shvc' and layer == 1")
    assert refused.bd_rate.isna().all() and refused.reason.str.contains("overlap").all()
    assert pd.read_csv(out / "glance_compass.csv").set_index("scales").loc["×2", "vs shvc"] == "(overlap)"
