"""Command-line options every trainer shares (data, device, threads, seed, checkpoints, validation)."""

from __future__ import annotations

import argparse


def folder_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=None,
                        help="folder holding train/ and kodak/ (default: $BENCH_DATA or ../shared/datasets)")
    parser.add_argument("--train-folders", type=folder_list, default=None, metavar="A,B",
                        help="train on these folders of <data-root>/train only (default: all); "
                             "'old' is the 328-picture set of sessions 1-11")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads; on a busy 2-core machine 1 is faster than 2 (no spinning)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-minutes", type=float, default=2.0, help="checkpoint interval (minutes)")
    parser.add_argument("--val-every", type=int, default=1000, help="validate every N steps")
    parser.add_argument("--val-images", type=int, default=3, help="first N Kodak images for validation")
