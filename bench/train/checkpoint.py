"""Resumable training state: written atomically so a kill never leaves a half-written file.

Checkpoints are read with ``weights_only=True`` (``load_checkpoint``): they hold tensors (weights,
optimizer moments, torch's RNG state as a uint8 tensor) and plain values (step counts, the options,
the config dicts, numpy's bit-generator state, which is a dict of ints and strings), all within
torch's default allowlist, so a checkpoint that asks for anything else, e.g. a pickle that would
run code, is refused rather than trusted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from bench.errors import TrainingError
from bench.train.common import TrainingOptions


def save_atomic(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def saved_arguments(config: TrainingOptions) -> dict[str, Any]:
    """The options as a checkpoint keeps them (``TrainingOptions.options``: the subcommand as
    ``model``, then the command line's options): plain values, a tuple of numbers (a range, a channel
    pair) as a list, so a resume compares today's options with the same form. A list of names
    (``train_folders``) is not kept, as it never was."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in config.options().items()
        if isinstance(value, (int, float, str, type(None)))
        or (isinstance(value, tuple) and all(isinstance(part, (int, float)) for part in value))
    }


def load_checkpoint(path: str | os.PathLike[str]) -> Any:
    """A training checkpoint or other file of tensors and plain values (``--init-from``, ``--bl``,
    ``widen --from``, ``export --checkpoint``), unpickled without running code; ``TrainingError``
    naming the file when it holds anything else or cannot be read."""
    from bench import zoo

    return zoo.load_torch_file(path, path, TrainingError)


def load_if_present(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    state = load_checkpoint(path)
    if not isinstance(state, dict):
        raise TrainingError(f"{path} is not a training checkpoint (it holds a {type(state).__name__})")
    return state


def read_init_source(model: str, source: str, quality: int | None,
                     option: str = "--init-from") -> tuple[dict[str, Any], Path]:
    """What ``--init-from`` (or ``option``) names: ``zoo`` (the zoo's ``model`` file at ``quality``,
    hash-checked) or a file (a zoo file or a training checkpoint); its contents and its path."""
    if source == "zoo":
        from bench import zoo

        if not quality:
            raise TrainingError(f"{option} zoo needs --quality Q")
        contents, path, _ = zoo.load_weights(model, quality)
        return contents, path
    path = Path(source)
    if not path.is_file():
        raise TrainingError(f"{option}: no such file {path}")
    contents = load_checkpoint(path)
    if not isinstance(contents, dict):
        raise TrainingError(f"{option}: {path} holds a {type(contents).__name__}, not weights")
    return contents, path
