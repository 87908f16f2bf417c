"""Command-line options every trainer shares (data, device, threads, seed, checkpoints, validation)."""

from __future__ import annotations

import argparse


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=None,
                        help="folder holding train/ and kodak/ (default: $BENCH_DATA or ../shared/datasets)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads; on a busy 2-core machine 1 is faster than 2 (no spinning)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-minutes", type=float, default=2.0, help="checkpoint interval (minutes)")
    parser.add_argument("--val-every", type=int, default=1000, help="validate every N steps")
    parser.add_argument("--val-images", type=int, default=3, help="first N Kodak images for validation")
