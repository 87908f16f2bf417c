"""What every trainer shares: its options (data, device, threads, seed, checkpoints, validation) as
``TrainingOptions``, the base of each trainer's frozen config, and the command-line flags for them.

Each ``python -m bench.train`` subcommand module has ``add_arguments(parser)`` and ``run(args)``: the
command line, which builds the module's config (``config_from_args``) and prints what the typed
function returns. Everything below ``run`` takes the config, never the ``argparse.Namespace``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

Config = TypeVar("Config")


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of images in [0, 1] from their mean squared error (a floor keeps it finite)."""
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def folder_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def default_data_root() -> str:
    """``$BENCH_DATA``, else ``../shared/datasets``: where ``--data-root`` points when not given."""
    return os.environ.get("BENCH_DATA", os.path.join("..", "shared", "datasets"))


def as_text(value: Any) -> Any:
    """A path option as the command line gives it (text), so that a config built from Python with
    ``Path`` objects saves and compares the same as one built from the command line."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


@dataclass(frozen=True, kw_only=True)
class TrainingOptions:
    """The options every trainer shares, as ``add_common_arguments`` defines them.

    ``data_root``: the folder holding ``train/`` and ``kodak/`` (None: ``default_data_root()``);
    ``train_folders``: train on these folders of ``<data_root>/train`` only (None: all; ``old``: the
    328-picture set); ``threads``: torch threads; ``save_minutes``: checkpoint interval;
    ``val_every``/``val_images``: validate every N steps on the first N Kodak images.
    """

    # the subcommand; checkpoints keep it as their options' "model" (as the command line's dest did)
    command: ClassVar[str] = ""
    path_fields: ClassVar[tuple[str, ...]] = ()  # options that name files: kept as text
    # a trainer's own options that its command line defines after the shared ones (``options`` order)
    after_common: ClassVar[tuple[str, ...]] = ()

    data_root: str | None = None
    train_folders: tuple[str, ...] | None = None
    device: str = "cpu"
    threads: int = 2
    seed: int = 0
    save_minutes: float = 2.0
    val_every: int = 1000
    val_images: int = 3

    def __post_init__(self) -> None:
        root = default_data_root() if self.data_root is None else as_text(self.data_root)
        object.__setattr__(self, "data_root", root)
        folders = self.train_folders
        if isinstance(folders, str):
            folders = folder_list(folders)
        if folders is not None:
            object.__setattr__(self, "train_folders", tuple(folders))
        for name in self.path_fields:
            object.__setattr__(self, name, as_text(getattr(self, name)))

    def options(self) -> dict[str, Any]:
        """The subcommand and every option, in the command line's order (the trainer's own options,
        then the shared ones, then ``after_common``), as a checkpoint keeps them."""
        common = [f.name for f in dataclasses.fields(TrainingOptions)]
        own = [f.name for f in dataclasses.fields(self) if f.name not in common and f.name not in self.after_common]
        order = own + common + list(self.after_common)
        return {"model": self.command, **{name: getattr(self, name) for name in order}}


def config_from_args(cls: type[Config], args: argparse.Namespace, **dests: str) -> Config:
    """The command line's config: each field of ``cls`` from the option of the same name (or the
    ``dests`` it is renamed from, e.g. ``model="widen_model"``)."""
    return cls(**{f.name: getattr(args, dests.get(f.name, f.name))  # type: ignore[call-arg]
                  for f in dataclasses.fields(cls) if f.init})


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
