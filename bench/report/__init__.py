"""Report generation: tables, BD-rate tables, RD plots, Markdown/HTML page.

``build_report(run_dirs, out_dir)`` is the entry point. It joins four pieces, each usable alone:
``compute`` (``compute_tables``: every table, from the records, as ``ReportTables``), ``files``
(``write_table_files``: the CSVs and LaTeX), ``plots`` (``draw_plots``: RD and strip plots) and
``page`` (``page_blocks``, ``write_page``: report.md and report.html). The tables come from
``load`` (records from run directories), ``tables`` (aggregates, cost), ``bdtables`` (BD-rate pairs
and matrices), ``glance`` (the glance tables) and ``paper`` (COMPASS paper vs measured).
"""

from bench.report.compute import ReportTables, compute_tables
from bench.report.page import build_report

__all__ = ["ReportTables", "build_report", "compute_tables"]
