"""Report generation: tables, BD-rate tables, RD plots, Markdown/HTML page.

``build_report(run_dirs, out_dir)`` is the entry point; the modules hold its parts: ``load``
(records from run directories), ``tables`` (aggregates, cost), ``bdtables`` (BD-rate pairs and
matrices), ``paper`` (COMPASS paper vs measured), ``plots`` (RD plots), ``page`` (the page).
"""

from bench.report.page import build_report

__all__ = ["build_report"]
