"""``bench weights fetch SOURCE``: the one command that downloads published weights, and only
when a user types it (bench never downloads otherwise).

``compressai``: CompressAI's pretrained ``mbt2018-mean`` (MSE) files, qualities 1–8, from
CompressAI's own URLs into torch.hub's cache, each checked against the SHA-256 prefix in its name
(``bench.published.fetch``); ``mean-scale@compressai`` then runs them, read with ``weights_only=True``.
The prefix is the only hash CompressAI publishes, so it is the check here; bench's own zoo keeps the
full SHA-256 of each committed file in ``bench/weights/SHA256SUMS.txt``.
"""

from __future__ import annotations

import argparse

from bench.errors import UsageError

SOURCES = ("compressai",)


def parse_qualities(text: str | None) -> list[int] | None:
    """``"1,3"`` -> ``[1, 3]``; None (all) when not given."""
    if text is None:
        return None
    try:
        qualities = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--qualities expects a comma list of integers, got {text!r}") from None
    if not qualities:
        raise UsageError(f"--qualities {text!r} names no quality")
    return list(dict.fromkeys(qualities))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``weights`` command's subcommands (``fetch``)."""
    sub = parser.add_subparsers(dest="weights_command", required=True)
    fetch = sub.add_parser("fetch", help="download published weights (only when asked) and check their hashes",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fetch.add_argument("source", choices=SOURCES, help="whose weights: compressai (mbt2018-mean, MSE, q1-8)")
    fetch.add_argument("--qualities", help="comma list of qualities (default: all the source publishes)")
    fetch.add_argument("--no-progress", action="store_true", help="no download progress bar")


def run(args: argparse.Namespace) -> int:
    from bench import published

    qualities = parse_qualities(args.qualities)
    for result in published.fetch(qualities, progress=not args.no_progress):
        size = result.path.stat().st_size / 2**20
        print(f"q{result.quality}: {result.status} {result.path} ({size:.1f} MiB, SHA-256 {result.sha256[:8]}… OK)")
    print(f"mean-scale@compressai reads them from {published.cache_dir()}")
    return 0
