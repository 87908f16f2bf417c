"""widen a trained learned codec to more channels (N, M) without changing what it computes

Each learned codec's plugin brings its own widening in its trainer (``PluginTrainer.widen``):
mean-scale's Net2WiderNet (``bench.codecs.mean_scale.widen``), COMPASS's widens its RC and keeps
LIFF. This command reads the source (a checkpoint, a zoo file, or ``zoo`` with ``--quality``), asks
the plugin to widen it, and writes the result for ``python -m bench.train MODEL --init-from FILE``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import TrainingError
from bench.train.checkpoint import read_init_source, save_atomic
from bench.train.common import as_text, config_from_args


def _wideners() -> dict[str, Any]:
    """Trainer name -> its plugin's widening, for the trainers that have one."""
    from bench.registry import plugin_trainers

    return {name: trainer.widen for name, trainer in plugin_trainers().items() if trainer.widen is not None}


@dataclass(frozen=True)
class WidenConfig:
    """``python -m bench.train widen``: widen the model in ``source`` (a checkpoint, a zoo file, or
    ``zoo`` with ``quality``) to ``N``/``M`` channels and write it to ``out``. ``model``: a trainer
    whose plugin widens (mean-scale; compass widens its RC and keeps LIFF); ``seed``: the split
    noise's. TrainingError for a bad value."""

    source: str
    out: str
    model: str = "mean-scale"
    quality: int | None = None
    N: int = 128
    M: int = 192
    seed: int = 0

    def __post_init__(self) -> None:
        known = _wideners()
        if self.model not in known:
            raise TrainingError(f"--model must be one of {', '.join(sorted(known))}, got {self.model!r}")
        object.__setattr__(self, "source", as_text(self.source))
        object.__setattr__(self, "out", as_text(self.out))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # dest: ``args.model`` is the subcommand's name (bench.train's dispatcher reads it)
    parser.add_argument("--model", dest="widen_model", choices=sorted(_wideners()), default="mean-scale",
                        help="mean-scale (default), or compass: widen the RC of a COMPASS file or joint "
                             "checkpoint (LIFF is kept), to train on with `bench.train compass --rc-size N,M`")
    parser.add_argument("--from", dest="source", required=True,
                        help="the checkpoint (last.pt) or zoo file to widen, or 'zoo' with --quality")
    parser.add_argument("--quality", type=int, help="with --from zoo: the zoo's file at this quality")
    parser.add_argument("--N", type=int, default=128, help="channels N of the wider model (published: 128)")
    parser.add_argument("--M", type=int, default=192, help="latent channels M of the wider model (published: 192)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True,
                        help="where to write it: a file to pass to `bench.train mean-scale|compass --init-from`")


def widen(config: WidenConfig) -> Path:
    """Write the widened model of ``config`` to ``config.out`` (atomically); returns its path."""
    contents, path = read_init_source(config.model, config.source, config.quality, option="--from")
    out_contents = _wideners()[config.model](contents, path, config)
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(out_contents, out)
    return out


def run(args: argparse.Namespace) -> None:
    """The command line: the config from the options, then the written file's path."""
    print(widen(config_from_args(WidenConfig, args, model="widen_model")))
