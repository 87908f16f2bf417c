"""``bench shm ...``: the SHVC plugin's command (building SHM), declared for the command line.

Imported by ``bench.registry.plugin_commands`` when the parser is built, so it stays cheap: the
build module (stdlib only) does the work."""

from __future__ import annotations

from bench.codecs.shvc import build
from bench.registry import PluginCommand

COMMAND = PluginCommand(
    name="shm",
    help="SHM, the SHVC reference software: build it from sources",
    add_arguments=build.add_arguments,
    run=build.run,
    function=build.build_shm,
)
