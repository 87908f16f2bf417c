"""Codec registry: built-ins register with ``@register_codec``; other packages through the
``bench.codecs`` entry-point group (``name = "package.module:CodecClass"``).

Built-ins are found by importing every public module of the ``bench.codecs`` package (``codecs/``;
names starting with ``_`` are skipped), so adding a codec is adding one file or folder.

A plugin folder may also bring a command of its own (``bench shm build``, ``bench vtm build``): a
module ``command`` in the folder whose ``COMMAND`` is a ``PluginCommand``; other packages declare
one in the ``bench.commands`` entry-point group. ``plugin_commands`` finds them without importing
the codecs themselves, so the command line starts fast. A learned codec's folder may bring its
training the same way (``train`` declaring a ``PluginTrainer``: ``python -m bench.train compass``),
found by ``plugin_trainers``. This is the only place ``bench`` imports a plugin's module."""

from __future__ import annotations

import argparse
import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from bench.codec import Codec, CodecInfo
from bench.errors import EnvelopeError, UnknownCodecError

__all__ = ["CodecSpec", "PluginCommand", "PluginTrainer", "UnknownCodecError", "codec_class", "codec_info",
           "codec_names", "create_codec", "file_spec", "plugin_commands", "plugin_trainers",
           "portable_spec", "register_codec"]

ENTRY_POINT_GROUP = "bench.codecs"
COMMAND_ENTRY_POINT_GROUP = "bench.commands"
COMMAND_MODULE = "command"  # in a plugin folder: declares COMMAND
TRAINER_MODULE = "train"  # in a plugin folder: declares TRAINER (python -m bench.train)
PLUGIN_MODULE = "plugin"  # in a plugin folder: registers its codecs (imported with the folder)

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
            imported = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:  # a real missing dependency inside the module must surface
                raise
            continue
        # a plugin folder registers its codecs in plugin.py; its __init__ need not import it, so that
        # its command module stays cheap to import (bench --help must not load torch)
        folders = getattr(imported, "__path__", ())
        if any((Path(folder) / f"{PLUGIN_MODULE}.py").is_file() for folder in folders):
            importlib.import_module(f"{module}.{PLUGIN_MODULE}")
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        cls = entry.load()
        if entry.name not in _REGISTRY:
            register_codec(entry.name)(cls)


@dataclass(frozen=True)
class PluginCommand:
    """A ``bench NAME ...`` subcommand a plugin brings (e.g. building its reference software).
    ``add_arguments`` fills the subcommand's parser; ``run`` does the work and returns an exit
    status; it may raise ``BenchError``s, which the command line reports. ``function`` is the same
    as a function (of its typed ``config`` class where it has one) returning a result
    (``bench.api.command(NAME)``); the builds take ``say=`` for their progress lines."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    function: Callable[..., Any] | None = None
    config: type | None = None


def _folder_declarations(module: str, attribute: str) -> Iterator[tuple[str, object]]:
    """``(module name, its attribute)`` for every plugin folder of ``bench.codecs`` that has
    ``module``.py, in name order. Looked up as files: importing every plugin package to ask would load
    torch for the learned codecs."""
    package = importlib.import_module(BUILTIN_PACKAGE)
    for folder in package.__path__:
        for path in sorted(Path(folder).glob(f"[!_]*/{module}.py")):
            name = f"{BUILTIN_PACKAGE}.{path.parent.name}.{module}"
            yield name, getattr(importlib.import_module(name), attribute, None)


def _declare(found: dict[str, Any], declared: object, kind: type, origin: str) -> None:
    """Add ``declared`` to ``found`` by its name; ValueError when it is not a ``kind`` or its name is taken."""
    if not isinstance(declared, kind):
        raise ValueError(f"{origin} declares {declared!r}, not a bench.registry.{kind.__name__}")
    if declared.name in found:
        what = kind.__name__.removeprefix("Plugin").lower()  # command, trainer
        raise ValueError(f"two plugins declare the {what} {declared.name!r} ({origin} is the second)")
    found[declared.name] = declared


def plugin_commands() -> list[PluginCommand]:
    """The commands plugin folders declare (``bench.codecs.<folder>.command.COMMAND``) and those of
    the ``bench.commands`` entry-point group, in name order; ValueError on two with one name."""
    found: dict[str, PluginCommand] = {}
    for origin, command in _folder_declarations(COMMAND_MODULE, "COMMAND"):
        _declare(found, command, PluginCommand, origin)
    for entry in metadata.entry_points(group=COMMAND_ENTRY_POINT_GROUP):
        _declare(found, entry.load(), PluginCommand, f"entry point {entry.name}")
    return [found[name] for name in sorted(found)]


@dataclass(frozen=True)
class PluginTrainer:
    """A learned codec's training, declared by its plugin folder (``bench.codecs.<folder>.train.TRAINER``)
    for ``python -m bench.train NAME``: ``add_arguments`` fills the subcommand's parser and ``run``
    trains (or exports) from the parsed options; ``train(config)`` is the same as a function of its
    typed ``config`` class (``bench.api.trainer(NAME)``). ``widen`` (``python -m bench.train widen --model NAME``)
    widens a checkpoint or zoo file of it, ``widen(contents, path, config) -> contents to save``;
    ``exporters`` are the ``python -m bench.train export --format FORMAT`` it adds,
    ``export(bench.train.export.ExportConfig) -> ExportResult``."""

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], object]
    help: str = ""
    train: Callable[[Any], Path] | None = None
    config: type | None = None
    widen: Callable[..., dict[str, Any]] | None = None
    exporters: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)


def plugin_trainers() -> dict[str, PluginTrainer]:
    """The trainers plugin folders declare (``bench.codecs.<folder>.train.TRAINER``), by name;
    ValueError on two with one name. Imports those modules (training needs them anyway)."""
    found: dict[str, PluginTrainer] = {}
    for origin, trainer in _folder_declarations(TRAINER_MODULE, "TRAINER"):
        _declare(found, trainer, PluginTrainer, origin)
    return found


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


# A wrapper spec (``simulcast:simulcast:x265``) nests codecs; a file's spec needs no deeper nesting,
# and the bound keeps a hostile header from recursing without end.
MAX_SPEC_NESTING = 4


def named_sources(cls: type[Codec]) -> tuple[str, ...]:
    """The ``@SOURCE`` values of a codec that name weights rather than a place on this machine: its
    ``named_sources`` (e.g. ``("bench", "compressai")``), else the ``published_sources`` it lists.
    Any other source of a codec (``shvc@/opt/SHM/bin``) is a folder and may come only from the user."""
    return tuple(getattr(cls, "named_sources", cls.info.published_sources))


def file_spec(text: str) -> CodecSpec:
    """The codec spec a bitstream file's header names, checked before anything is built from it.

    A file chooses only *which* registered codec decodes it and with which named weights: a
    ``@SOURCE`` that is a folder (binaries, weights on disk) would let the file pick an executable,
    so it is refused (EnvelopeError); binary folders come from the user's environment (``SHM_DIR``)
    or ``bench decode --codec``. A wrapper (``simulcast:INNER``) is checked through its inner spec,
    whose source it is. UnknownCodecError for a codec that is not registered here."""
    return _file_spec(text, text, 0)


def _file_spec(text: str, whole: str, depth: int) -> CodecSpec:
    if depth > MAX_SPEC_NESTING or len(text) > 512:
        raise EnvelopeError(f"bitstream header names a codec spec nested too deeply: {whole[:80]!r}")
    parsed = CodecSpec.parse(text)
    cls = codec_class(parsed.name)
    # construction is cheap and never fails or runs anything (``Codec`` contract)
    inner = getattr(cls(arg=parsed.arg, source=parsed.source), "inner_spec", None)
    if isinstance(inner, str) and inner:
        _file_spec(inner, whole, depth + 1)  # the wrapper's source is its inner codec's
    elif parsed.source is not None and parsed.source not in named_sources(cls):
        known = ", ".join(named_sources(cls)) or "none"
        raise EnvelopeError(
            f"bitstream header names codec {whole!r}, whose @{parsed.source} is not a weights source of "
            f"{parsed.name} (known: {known}); a file never chooses a folder or binary: set the codec's "
            f"environment variable (e.g. SHM_DIR) or name the spec with `bench decode --codec`"
        )
    return parsed


def portable_spec(spec: str) -> str:
    """The spec to write into a file for a codec made from ``spec``: as is when ``file_spec`` accepts
    it, else without its ``@SOURCE`` (a folder of this machine that a decoder must not take from a file)."""
    try:
        file_spec(spec)
        return spec
    except EnvelopeError:
        parsed = CodecSpec.parse(spec)
        return parsed.name + (f":{parsed.arg}" if parsed.arg else "")


def declared_class(spec: str) -> type[Codec] | None:
    """The class registered for a spec's codec name, or None when no such codec is registered here
    (records made elsewhere by a codec that is not installed): for reading what a codec declares."""
    _load_builtins_and_plugins()
    try:
        return _REGISTRY.get(CodecSpec.parse(spec).name)
    except UnknownCodecError:
        return None


@functools.lru_cache(maxsize=None)
def codec_info(spec: str) -> CodecInfo | None:
    """What the codec of ``spec`` declares (``Codec.info``; a spec such as ``simulcast:x265`` or
    ``shvc:ctc`` has its own), or None when no such codec is registered here. Construction is
    cheap and never fails for a registered name (``Codec``), and nothing is loaded."""
    if declared_class(spec) is None:
        return None
    return create_codec(spec).info


def codec_family(spec: str) -> str:
    """The single-layer family of a spec (``simulcast:x265`` -> ``x265``; a scalable codec: its BL
    codec's, as declared in ``CodecInfo.family``); an unregistered codec is a family of its own."""
    info = codec_info(spec)
    return (info.family if info is not None else None) or CodecSpec.parse(spec).name


def rate_counts(spec: str) -> str:
    """What a spec's rate counts besides picture data (``CodecInfo.rate_counts``; '' when unregistered)."""
    info = codec_info(spec)
    return info.rate_counts if info is not None else ""


def is_slow(spec: str) -> bool:
    """Whether the spec's codec declares itself slow (``CodecInfo.slow``): its jobs are started first."""
    info = codec_info(spec)
    return info is not None and info.slow
