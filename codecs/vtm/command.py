"""``bench vtm ...``: the VTM plugin's command (building VTM), declared for the command line."""

from __future__ import annotations

from bench.codecs.vtm import build
from bench.registry import PluginCommand

COMMAND = PluginCommand(
    name="vtm",
    help="VTM, the VVC reference software: build it from sources",
    add_arguments=build.add_arguments,
    run=build.run,
    function=build.build_vtm,
)
