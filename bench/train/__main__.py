"""``python -m bench.train MODEL …``: train bench's learned codecs with resumable checkpoints."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from bench.errors import exit_status, is_user_error
from bench.train.common import default_data_root

# One module per subcommand beside the models (export, the crop bank, the curve, widening):
# add_arguments(parser), and run(args), which builds the module's typed config from the options and
# prints what its function returns. The models' own subcommands come from their plugin folders
# (bench.codecs.mean_scale.train, bench.codecs.compass.train, found by bench.registry.plugin_trainers).
TRAINERS = {
    "export": "bench.train.export",
    "crops": "bench.train.crops",
    "curve": "bench.train.curve",
    "widen": "bench.train.widen",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train")
    sub = parser.add_subparsers(dest="model", required=True)
    from bench.registry import plugin_trainers

    modules: dict[str, Any] = {name: importlib.import_module(path) for name, path in TRAINERS.items()}
    helps = {name: (module.__doc__ or "").strip().splitlines()[0] for name, module in modules.items()}
    for name, trainer in plugin_trainers().items():
        modules[name], helps[name] = trainer, trainer.help
    # the models first (mean-scale, the building block, leading), then the other subcommands
    models = sorted(set(modules) - set(TRAINERS), key=lambda name: (name != "mean-scale", name))
    for name in [*models, *TRAINERS]:
        modules[name].add_arguments(sub.add_parser(name, help=helps[name]))
    args = parser.parse_args(argv)
    if getattr(args, "data_root", "unset") is None:
        args.data_root = default_data_root()
    try:
        modules[args.model].run(args)
    except Exception as error:  # noqa: BLE001 - the user's to fix: one line, no traceback (as bench's CLI does)
        if not is_user_error(error):
            raise
        print(f"python -m bench.train {args.model}: {error}", file=sys.stderr)
        return exit_status(error)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
