"""Export a trained checkpoint as a weights file, in the format a plugin's trainer writes.

``--format zoo``: mean-scale's zoo file (CDF tables, half precision or int8, hash name);
``--format official``: a COMPASS checkpoint in the official code's format. Each format is a plugin
trainer's exporter (``PluginTrainer.exporters``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench import zoo
from bench.errors import TrainingError
from bench.train.common import as_text, config_from_args


def exporters() -> dict[str, Callable[["ExportConfig"], "ExportResult"]]:
    """``--format`` -> the plugin exporter that writes it (``PluginTrainer.exporters``)."""
    from bench.registry import plugin_trainers

    found: dict[str, Callable[[ExportConfig], ExportResult]] = {}
    for trainer in plugin_trainers().values():
        found.update(trainer.exporters)
    return found


@dataclass(frozen=True)
class ExportConfig:
    """``python -m bench.train export``: ``checkpoint`` (a mean-scale ``last.pt``; for ``format``
    official, a joint COMPASS one) into the zoo file of ``quality`` in ``out_dir`` (None: the zoo,
    ``$BENCH_WEIGHTS`` or bench/weights), or as the official COMPASS checkpoint in ``out_dir``.
    ``check_image``: an image on which to compare the float32 and exported weights;
    ``force_lambda``: export a checkpoint whose λ is not the quality's; ``storage``: float16 or int8.
    TrainingError for a bad value (the exporter checks the quality against its model's table)."""

    checkpoint: str
    quality: int
    format: str = "zoo"
    out_dir: str | None = None
    check_image: str | None = None
    force_lambda: bool = False
    storage: str = "float16"

    def __post_init__(self) -> None:
        known = exporters()
        if self.format not in known:
            raise TrainingError(f"--format must be one of {', '.join(sorted(known))}, got {self.format!r}")
        if self.storage not in zoo.STORAGES:
            raise TrainingError(f"--storage must be one of {', '.join(zoo.STORAGES)}, got {self.storage!r}")
        for name in ("checkpoint", "out_dir", "check_image"):
            object.__setattr__(self, name, as_text(getattr(self, name)))


@dataclass(frozen=True)
class ExportResult:
    """What ``export`` wrote: the file and its size; for a zoo file also its parameter count, its
    config (``N``, ``M``, ``steps``, …), its convolutions' storage, its SHA-256 and, with
    ``check_image``, the float32-against-exported comparison line; ``note``: how to use a file of
    another format."""

    path: Path
    format: str
    file_bytes: int
    parameters: int | None = None
    config: dict[str, Any] | None = None
    storage: str | None = None
    sha256: str | None = None
    precision_check: str | None = None
    note: str | None = None


def export(config: ExportConfig) -> ExportResult:
    """Export ``config.checkpoint`` as ``config.format`` says; TrainingError when it cannot be."""
    try:
        return exporters()[config.format](config)
    except (ValueError, FileNotFoundError) as error:
        raise TrainingError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="last.pt of a `bench.train mean-scale` run (--format official: of a joint "
                             "`bench.train compass` run)")
    parser.add_argument("--format", choices=sorted(exporters()), default="zoo",
                        help="zoo: a bench weights file (default); official: a COMPASS checkpoint in the "
                             "official code's format and layout (lambda_<λ>/best_model_updated.pth.tar in "
                             "--out-dir), for a COMPASS of the paper's size")
    parser.add_argument("--quality", type=int, required=True,
                        help="the zoo quality the checkpoint was trained for (mean-scale: 1-4, whose λs "
                             "`python -m bench.train mean-scale --help` lists)")
    parser.add_argument("--out-dir", default=None,
                        help=f"zoo folder (default: ${zoo.ENV_VAR} or bench/weights)")
    parser.add_argument("--check-image", default=None,
                        help="an image (e.g. a Kodak PNG) on which to compare float32 and exported weights")
    parser.add_argument("--force-lambda", action="store_true",
                        help="export even when the checkpoint's λ is not the quality's λ")
    parser.add_argument("--storage", choices=zoo.STORAGES, default="float16",
                        help="convolution weights as float16 (default) or int8 with a scale per output "
                             "channel (half the size; check the RD cost with --check-image)")


def run(args: argparse.Namespace) -> None:
    """The command line: the config from the options, then the file and what it holds."""
    result = export(config_from_args(ExportConfig, args))
    if result.parameters is None:
        print(f"{result.path}\n  {result.file_bytes / 1e6:.2f} MB" + (f", {result.note}" if result.note else ""))
        return
    print(f"{result.path}\n  {result.file_bytes / 1e6:.2f} MB, {result.parameters:,} parameters "
          f"(N={result.config['N']}, M={result.config['M']}, step {result.config['steps']}, "
          f"{result.storage}), "
          f"sha256 {result.sha256}")
    if result.precision_check:
        print("  " + result.precision_check)
