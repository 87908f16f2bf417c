"""Hostile pickles for the tests that bench never unpickles code: a checkpoint or zoo file whose
unpickling, done unsafely, would write a marker file."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch


class Payload:
    """Unpickled unsafely, this object runs ``exec``, which writes ``marker``: the attack of issue 27."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (exec, (f"open({self.marker!r}, 'w').write('payload ran')",))


def hostile_checkpoint(path: Path, marker: Path, **plain: object) -> Path:
    """A ``last.pt``-shaped file (``model`` and ``step`` plus ``plain``) whose ``model`` is the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": Payload(marker), "step": 3, **plain}, path)
    return path


def hostile_zoo_file(folder: Path, model: str, quality: int, marker: Path) -> Path:
    """A zoo file named by its own hash (so the name's 8-hex check passes) that holds the payload."""
    buffer = io.BytesIO()
    torch.save({"state_dict": Payload(marker), "config": {"N": 8, "M": 12}}, buffer)
    data = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model}-q{quality}-{hashlib.sha256(data).hexdigest()[:8]}.pth.tar"
    path.write_bytes(data)
    return path
