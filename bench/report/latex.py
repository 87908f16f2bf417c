"""``bench report --latex``: the glance tables and the per-layer BD-rate tables as LaTeX (booktabs).

Each table is a ``tabular`` in a file of its own, to ``\\input`` into a paper (preamble:
``\\usepackage{booktabs}``); ``tables.tex`` is a standalone document holding all of them, which
compiles as it is. The cells are the CSVs' own values: a glance table is glance_<codec>.csv cell by
cell, a per-layer table the bdrate_focus.csv rows of one comparison and layer, so a number in a
paper can be traced back to the CSV it came from.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.bdtables import ci_text
from bench.report.plots import slug

# LaTeX's special characters in text; "×" and "−" are written as math so that pdflatex needs no
# Unicode font set-up
_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "×": r"$\times$", "−": "-",
    "…": r"\dots{}",
}


def escape(text: object) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def tabular(frame: pd.DataFrame, align: str, caption: str = "") -> str:
    """``frame`` as a booktabs tabular (text cells escaped), with the caption as a comment."""
    lines = [f"% {caption}"] if caption else []
    lines += [f"\\begin{{tabular}}{{{align}}}", r"\toprule",
              " & ".join(escape(c) for c in frame.columns) + r" \\", r"\midrule"]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(escape("" if pd.isna(v) else v) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


LAYER_COLUMNS = {"codec": "codec", "reference": "reference", "bd_rate": "BD-rate %", "ci": "95 % interval",
                 "bd_psnr": "BD-PSNR dB", "images": "images"}


def layer_table(rows: pd.DataFrame, average: str = "curves") -> pd.DataFrame:
    """The per-layer table of one comparison and layer, from its bdrate_focus.csv rows: the BD-rate of
    the convention the report leads with (``bd_rate`` or ``bd_rate_images``) and its interval."""
    suffix = "" if average == "curves" else "_images"
    return pd.DataFrame({
        "codec": rows["codec"],
        "reference": rows["reference"],
        "BD-rate %": rows[f"bd_rate{suffix}"].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}"),
        "95 % interval": [ci_text(lo, hi) for lo, hi in zip(rows[f"ci_low{suffix}"], rows[f"ci_high{suffix}"])],
        "BD-PSNR dB": rows["bd_psnr"].map(lambda v: "" if pd.isna(v) else f"{v:+.3f}"),
        "images": rows["images"].astype(int).astype(str),
    })


def layer_file(dataset: str, anchor: str, label: str, layer: int) -> str:
    return f"bdrate_{slug(Path(str(dataset)).name)}_{slug(anchor)}_{slug(str(label))}_L{int(layer)}.tex"


def write_latex(out_dir: Path, glances: dict[str, pd.DataFrame], focus: pd.DataFrame,
                average: str = "curves") -> list[Path]:
    """Write one .tex per glance table and per (comparison, layer) of ``focus`` (bdrate_focus.csv's
    rows), and tables.tex, a document that inputs them all; return the table files."""
    folder = Path(out_dir) / "latex"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for codec, table in glances.items():
        path = folder / f"glance_{slug(codec)}.tex"
        path.write_text(tabular(table, "lll" + "r" * (len(table.columns) - 3),
                                f"glance_{slug(codec)}.csv: {codec}'s top layer, BD-rate % [95 % interval]"))
        written.append(path)
    if len(focus):
        for (dataset, anchor, label, layer), rows in focus.groupby(["dataset", "anchor", "scales_label", "layer"],
                                                                   sort=True):
            path = folder / layer_file(dataset, anchor, label, layer)
            caption = (f"bdrate_focus.csv: {Path(str(dataset)).name}, {anchor}, scales {label}, layer {layer}, "
                       f"BD-rate ({average} average)")
            path.write_text(tabular(layer_table(rows, average), "llrlrr", caption))
            written.append(path)
    # \input names the file with its extension: the scales in a name (1.5) would read as one
    document = [r"\documentclass{article}", r"\usepackage[margin=1cm,landscape]{geometry}",
                r"\usepackage{booktabs}", r"\begin{document}", r"\small"]
    for path in written:
        document += [r"\noindent\texttt{" + escape(path.name) + r"}\\", r"\input{" + path.name + "}", r"\bigskip", ""]
    document.append(r"\end{document}")
    (folder / "tables.tex").write_text("\n".join(document) + "\n")
    return written
