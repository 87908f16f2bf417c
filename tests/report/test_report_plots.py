"""draw_plots alone: the RD and strip plots of a report's tables, and the names the page links."""

from dataclasses import replace

import pytest

from bench.report.compute import compute_tables
from bench.report.plots import draw_plots

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tables(three_codec_run):
    return compute_tables([three_codec_run], bootstrap=0)


def test_rd_and_strip_plots(tables, tmp_path):
    plots = draw_plots(tables, tmp_path)
    assert plots.rd == {("kodak", "top", "1.5"): "rd_kodak_top_1.5.png"}
    # compass's glance table has one row: one strip plot
    assert plots.strips == {("compass", "kodak", "top", "1.5"): "strip_compass_kodak_top_1.5.png"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "rd_kodak_top_1.5.png", "rd_kodak_top_1.5.svg", "strip_compass_kodak_top_1.5.png"]
    assert (tmp_path / "rd_kodak_top_1.5.png").read_bytes()[:8] == PNG
    assert (tmp_path / "strip_compass_kodak_top_1.5.png").read_bytes()[:8] == PNG


def test_nothing_to_draw(tables, tmp_path):
    (section,) = tables.sections
    blank = replace(section, curves=section.curves.assign(bpp=float("nan")))
    plots = draw_plots(replace(tables, sections=(blank,), per_image=tables.per_image.iloc[:0]), tmp_path)
    assert plots.rd == {section.key: None} and plots.strips == {}
    assert list(tmp_path.iterdir()) == []


def test_two_datasets_of_one_folder_name(tables, tmp_path):
    """Two datasets both called kodak (in two folders) each keep their own RD plot."""
    (section,) = tables.sections
    other = replace(section, dataset="elsewhere/kodak")
    plots = draw_plots(replace(tables, sections=(section, other), per_image=tables.per_image.iloc[:0]), tmp_path)
    assert plots.rd == {section.key: "rd_kodak_top_1.5.png", other.key: "rd_kodak_top_1.5_1.png"}
    assert (tmp_path / "rd_kodak_top_1.5_1.svg").is_file()


def test_the_same_figure_gives_the_same_svg_bytes(tmp_path) -> None:
    """No creation date and no random element ids: regenerating a report from the same records
    rewrites its SVG files unchanged (git shows no change)."""
    import matplotlib.pyplot as plt

    from bench.report.plots import save_figure

    written = []
    for name in ("one.svg", "two.svg"):
        fig, ax = plt.subplots()
        ax.plot([0.1, 0.2, 0.4], [28.0, 30.5, 33.0], marker="o")
        ax.set_xlim(0, 0.5)  # a clip path: its id was random per figure
        save_figure(fig, tmp_path / name)
        plt.close(fig)
        written.append((tmp_path / name).read_bytes())
    assert written[0] == written[1]
    assert b"<dc:date>" not in written[0] and b"clip-path" in written[0]
