"""Codec registry: built-ins register with ``@register_codec``; other packages through the
``bench.codecs`` entry-point group (``name = "package.module:CodecClass"``).

Built-ins are found by importing every public module of the ``bench.codecs`` package (``codecs/``;
names starting with ``_`` are helpers, not codecs), so adding a codec is adding one file."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from importlib import metadata
from typing import Callable, TypeVar

from bench.codec import Codec
from bench.errors import UnknownCodecError

__all__ = ["CodecSpec", "UnknownCodecError", "codec_class", "codec_names", "create_codec", "register_codec"]

ENTRY_POINT_GROUP = "bench.codecs"

BUILTIN_PACKAGE = "bench.codecs"

_REGISTRY: dict[str, type[Codec]] = {}
_loaded = False

C = TypeVar("C", bound=type[Codec])


def register_codec(name: str) -> Callable[[C], C]:
    """Class decorator: make ``cls`` available under ``name``."""

    def decorator(cls: C) -> C:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"codec name {name!r} is already registered by {_REGISTRY[name]!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def builtin_modules() -> list[str]:
    """Every public module and subpackage of ``bench.codecs``, in name order."""
    package = importlib.import_module(BUILTIN_PACKAGE)
    return sorted(f"{BUILTIN_PACKAGE}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
                  if not info.name.startswith("_"))


def _load_builtins_and_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in builtin_modules():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:  # a real missing dependency inside the module must surface
                raise
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        cls = entry.load()
        if entry.name not in _REGISTRY:
            register_codec(entry.name)(cls)


@dataclass(frozen=True)
class CodecSpec:
    """``NAME[:ARG][@SOURCE]``: e.g. ``x265``, ``simulcast:mean-scale``, ``compass@official``."""

    name: str
    arg: str | None = None
    source: str | None = None

    @classmethod
    def parse(cls, text: str) -> "CodecSpec":
        text = text.strip()
        head, _, source = text.partition("@")
        name, _, arg = head.partition(":")
        if not name:
            raise UnknownCodecError(f"empty codec name in {text!r}")
        return cls(name, arg or None, source or None)


def codec_names() -> list[str]:
    _load_builtins_and_plugins()
    return sorted(_REGISTRY)


def codec_class(name: str) -> type[Codec]:
    _load_builtins_and_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownCodecError(
            f"unknown codec {name!r}; registered codecs: {', '.join(sorted(_REGISTRY)) or 'none'}"
        ) from None


def create_codec(spec: str, device: str = "cpu") -> Codec:
    """Instantiate the codec named by ``spec`` (see ``CodecSpec``)."""
    parsed = CodecSpec.parse(spec)
    return codec_class(parsed.name)(arg=parsed.arg, source=parsed.source, device=device)


def declared_class(spec: str) -> type[Codec] | None:
    """The class registered for a spec's codec name, or None when no such codec is registered here
    (records made elsewhere by a codec that is not installed): for reading what a codec declares."""
    _load_builtins_and_plugins()
    try:
        return _REGISTRY.get(CodecSpec.parse(spec).name)
    except UnknownCodecError:
        return None


def codec_family(spec: str) -> str:
    """The single-layer family of a spec (``simulcast:x265`` -> ``x265``; a scalable codec: its BL
    codec's, as declared in ``Codec.family``); an unregistered codec is a family of its own."""
    parsed = CodecSpec.parse(spec)
    cls = declared_class(spec)
    return cls.family_of(parsed.arg) if cls is not None else parsed.name


def rate_counts(spec: str) -> str:
    """What a spec's rate counts besides picture data (``Codec.rate_counts``; '' when unregistered)."""
    cls = declared_class(spec)
    return cls.rate_counts_of(CodecSpec.parse(spec).arg) if cls is not None else ""


def is_slow(spec: str) -> bool:
    """Whether the spec's codec declares itself slow (``Codec.slow``): its jobs are started first."""
    cls = declared_class(spec)
    return cls is not None and cls.slow
