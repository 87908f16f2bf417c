"""The report's CSV files (and, when asked, its LaTeX tables), written from ``compute_tables``'s
tables: the second of ``build_report``'s four pieces."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.anchors import paper_bdrate
from bench.report.compute import ReportTables
from bench.report.latex import write_latex
from bench.report.plots import slug


def csv_files(tables: ReportTables) -> dict[str, pd.DataFrame]:
    """``{file name: rows}`` of every CSV the report writes. The optional tables (per-module params,
    timing split, inter-layer prediction, learned weights) have a file only when some codec reports them; the
    published-curve BD-rates one whenever a dataset is Kodak, even with no full-size layer to compare."""
    files = {
        "summary.csv": tables.summary,
        "bdrate.csv": tables.bdrate,
        "bdrate_focus.csv": tables.focus,
        "bdrate_images.csv": tables.per_image,
        "cost.csv": tables.layer_costs,
        "cost_summary.csv": tables.costs,
    }
    if tables.paper is not None:
        files[f"{paper_bdrate().codec}_paper.csv"] = tables.paper
    for codec, table in tables.glances.items():
        files[f"glance_{slug(codec)}.csv"] = table
    optional = {"params_modules.csv": tables.modules, "timing_split.csv": tables.split,
                "prediction.csv": tables.prediction, "weights.csv": tables.weights}
    files |= {name: frame for name, frame in optional.items() if len(frame)}
    if tables.published is not None:
        files["bdrate_published.csv"] = tables.published
    return files


def write_table_files(tables: ReportTables, out_dir: Path, latex: bool = False) -> list[Path]:
    """Write ``csv_files(tables)`` into ``out_dir`` and, with ``latex``, the glance and per-layer
    BD-rate tables as LaTeX into ``out_dir/latex``; return the paths written (the CSVs first, then
    the LaTeX tables and tables.tex, the document that inputs them)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in csv_files(tables).items():
        frame.to_csv(out_dir / name, index=False)
        written.append(out_dir / name)
    if latex:
        written += [*write_latex(out_dir, tables.glances, tables.focus, tables.bd_average),
                    out_dir / "latex" / "tables.tex"]
    return written
