"""``python -m bench.train MODEL …``: train bench's learned codecs with resumable checkpoints."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from bench.errors import BenchError

# One module per subcommand (a trainable model, export, the crop bank): add_arguments(parser), run(args).
TRAINERS = {
    "mean-scale": "bench.train.mean_scale",
    "compass": "bench.train.compass",
    "export": "bench.train.export",
    "crops": "bench.train.crops",
    "curve": "bench.train.curve",
    "widen": "bench.train.widen",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train")
    sub = parser.add_subparsers(dest="model", required=True)
    modules = {name: importlib.import_module(path) for name, path in TRAINERS.items()}
    for name, module in modules.items():
        module.add_arguments(sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0]))
    args = parser.parse_args(argv)
    if getattr(args, "data_root", "unset") is None:
        args.data_root = os.environ.get("BENCH_DATA", os.path.join("..", "shared", "datasets"))
    try:
        modules[args.model].run(args)
    except BenchError as error:  # the user's to fix: one line, no traceback (as bench's own CLI does)
        print(f"python -m bench.train {args.model}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
