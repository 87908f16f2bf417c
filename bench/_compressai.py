"""Import CompressAI without torchvision.

CompressAI 1.2.8 imports ``torchvision.transforms`` at package import time, only to list
transforms in its training-data registry, which bench never uses. PyPI's torchvision wheels do
not load beside the pinned CPU build of torch (``operator torchvision::nms does not exist``), and
the torchvision that does load pulls a multi-GB CUDA torch. So when torchvision is not importable
we register an empty ``torchvision.transforms`` module before importing CompressAI; when a real
torchvision is installed it is used untouched. ``torch_geometric`` (pure Python) is a regular
dependency and is imported for real.
"""

from __future__ import annotations

import importlib
import sys
import types


def _install_torchvision_placeholder() -> None:
    try:
        importlib.import_module("torchvision.transforms")
        return
    except Exception:  # noqa: BLE001 - any failure to load torchvision means we must not use it
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    package = types.ModuleType("torchvision")
    package.__path__ = []  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchvision.transforms")
    package.transforms = transforms  # type: ignore[attr-defined]
    sys.modules["torchvision"] = package
    sys.modules["torchvision.transforms"] = transforms


def import_compressai() -> types.ModuleType:
    """Return the ``compressai`` package, importable on a CPU-only torch without torchvision."""
    if "compressai" not in sys.modules:
        _install_torchvision_placeholder()
    return importlib.import_module("compressai")
