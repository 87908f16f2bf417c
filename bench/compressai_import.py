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


# CompressAI's rANS decoder reads 32-bit words past the end of a string that is shorter than its
# symbols claim (upstream issue #300): a damaged stream whose header claims a large layer can make
# it read freed heap and crash. A valid stream never reads past its own end, so zero padding
# changes no valid decode and turns such over-reads into harmless reads of zeros (garbage symbols,
# then a clear error downstream). It is a mitigation: a bounds-checked decoder is the real fix.
_RANS_PAD_PER_SYMBOL = 8
_RANS_PAD_BYTES = 4096


def _pad_rans_decoder_input(compressai: types.ModuleType) -> None:
    from compressai.entropy_models import entropy_models

    coder = entropy_models._EntropyCoder
    if getattr(coder.decode_with_indexes, "_bench_padded", False):
        return
    decode = coder.decode_with_indexes

    def decode_with_indexes(self, string, indexes, *args, **kwargs):  # type: ignore[no-untyped-def]
        padding = bytes(_RANS_PAD_PER_SYMBOL * len(indexes) + _RANS_PAD_BYTES)
        return decode(self, bytes(string) + padding, indexes, *args, **kwargs)

    decode_with_indexes._bench_padded = True  # type: ignore[attr-defined]
    coder.decode_with_indexes = decode_with_indexes


def import_compressai() -> types.ModuleType:
    """Return the ``compressai`` package, importable on a CPU-only torch without torchvision,
    with its rANS decoder guarded against reading past the end of a damaged string."""
    if "compressai" not in sys.modules:
        _install_torchvision_placeholder()
    module = importlib.import_module("compressai")
    _pad_rans_decoder_input(module)
    return module
