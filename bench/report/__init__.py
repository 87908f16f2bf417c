"""Report generation: tables, BD-rate tables, RD plots, Markdown/HTML page."""
