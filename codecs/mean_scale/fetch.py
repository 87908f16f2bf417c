"""``bench weights fetch SOURCE``: the one command that downloads published weights, and only
when a user types it (bench never downloads otherwise).

``compressai``: CompressAI's pretrained ``mbt2018-mean`` (MSE) files, qualities 1–8, from
CompressAI's own URLs into torch.hub's cache, each checked against the SHA-256 prefix in its name
(``published.fetch``); ``mean-scale@compressai`` then runs them, read with ``weights_only=True``.
The prefix is the only hash CompressAI publishes, so it is the check here; bench's own zoo keeps the
full SHA-256 of each committed file in ``bench/weights/SHA256SUMS.txt``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.errors import UsageError

SOURCES = ("compressai",)
READERS = {"compressai": "mean-scale@compressai"}  # the codec spec that runs each source's weights


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


@dataclass(frozen=True)
class FetchConfig:
    """One ``bench weights fetch``: whose weights (``SOURCES``), which qualities (None: all the source
    publishes; a ``"1,3"`` text is parsed as ``--qualities`` takes it), and whether torch.hub shows
    a download progress bar. Checked on construction (``UsageError``)."""

    source: str = "compressai"
    qualities: Sequence[int] | str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise UsageError(f"unknown weights source {self.source!r}; choose from {', '.join(SOURCES)}")
        if isinstance(self.qualities, str):
            object.__setattr__(self, "qualities", tuple(parse_qualities(self.qualities) or ()))
        elif self.qualities is not None:
            chosen = tuple(dict.fromkeys(int(q) for q in self.qualities))
            if not chosen:
                raise UsageError("qualities names no quality")
            object.__setattr__(self, "qualities", chosen)


@dataclass(frozen=True)
class FetchResult:
    """What ``fetch_weights`` did per quality (``published.Fetched``: downloaded or already
    present, its path and SHA-256), and the cache folder the codec spec ``reader`` reads them from."""

    fetched: tuple[Any, ...]
    cache_dir: Path
    reader: str


def fetch_weights(config: FetchConfig, say: Callable[[str], None] | None = None) -> FetchResult:
    """Download (or find intact in the cache) the weights ``config`` names, each checked against its
    hash: ``fetch_weights(FetchConfig("compressai", qualities=(3, 4)))``. Prints nothing (``say``
    hears what is downloaded and what is replaced); errors are ``bench.errors.BenchError``s."""
    from bench.codecs.mean_scale import published

    fetched = published.fetch(config.qualities, progress=config.progress, say=say)
    return FetchResult(tuple(fetched), published.cache_dir(), READERS[config.source])


def run(args: argparse.Namespace) -> int:
    """The command line: the config from the options, then one line per quality."""
    config = FetchConfig(args.source, parse_qualities(args.qualities), progress=not args.no_progress)
    result = fetch_weights(config, say=print)
    for fetched in result.fetched:
        size = fetched.path.stat().st_size / 2**20
        print(f"q{fetched.quality}: {fetched.status} {fetched.path} ({size:.1f} MiB, SHA-256 "
              f"{fetched.sha256[:8]}… OK)")
    print(f"{result.reader} reads them from {result.cache_dir}")
    return 0
