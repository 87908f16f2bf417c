"""``bench weights fetch ...``: the mean-scale plugin's command (downloading CompressAI's published
weights), declared for the command line and for ``bench.api.command("weights")``.

Imported by ``bench.registry.plugin_commands`` when the parser is built, so it stays cheap: the
fetch module imports the standard library only until it runs."""

from __future__ import annotations

from bench.codecs.mean_scale import fetch
from bench.registry import PluginCommand

COMMAND = PluginCommand(
    name="weights",
    help="download published weights (the one command that downloads)",
    add_arguments=fetch.add_arguments,
    run=fetch.run,
    function=fetch.fetch_weights,
    config=fetch.FetchConfig,
)
