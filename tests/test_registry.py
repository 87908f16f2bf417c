"""Codec registry: decorator registration, spec parsing, unknown names, entry-point plugins."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from bench import registry
from bench.codec import Codec, CodecInfo, Encoded
from bench.registry import (
    ENTRY_POINT_GROUP,
    CodecSpec,
    UnknownCodecError,
    codec_class,
    codec_names,
    create_codec,
    register_codec,
)


class PluginCodec(Codec):
    """What a third-party package would ship (loaded here through a fake entry point)."""

    info = CodecInfo(scalable=True, default_qualities=(1, 2))

    def encode(self, layers, quality: int) -> Encoded:
        return Encoded(b"", [0] * len(layers))

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        return []


class OtherCodec(PluginCodec):
    pass


@pytest.fixture
def clean_registry():
    names = set(registry._REGISTRY)
    yield
    for name in set(registry._REGISTRY) - names:
        registry._REGISTRY.pop(name)


def test_builtins_are_registered() -> None:
    names = codec_names()
    assert {"x265", "simulcast"} <= set(names)
    assert names == sorted(names)
    assert codec_class("x265").info.scalable is False
    assert codec_class("simulcast").info.scalable is True


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x265", CodecSpec("x265")),
        ("x265:veryslow", CodecSpec("x265", "veryslow")),
        ("simulcast:mean-scale@compressai", CodecSpec("simulcast", "mean-scale", "compressai")),
        ("compass@official", CodecSpec("compass", None, "official")),
        ("  x265  ", CodecSpec("x265")),
    ],
)
def test_spec_parsing(text: str, expected: CodecSpec) -> None:
    assert CodecSpec.parse(text) == expected


@pytest.mark.parametrize("text", ["", ":x265", "@src"])
def test_empty_name_is_an_unknown_codec(text: str) -> None:
    with pytest.raises(UnknownCodecError, match="empty codec name"):
        CodecSpec.parse(text)


def test_create_codec_passes_arg_source_and_device() -> None:
    codec = create_codec("simulcast:x265", device="cpu")
    assert codec.name == "simulcast" and codec.arg == "x265" and codec.source is None
    assert codec.spec == "simulcast:x265"
    assert create_codec("x265:veryfast").spec == "x265:veryfast"


def test_unknown_codec_message_is_plain_and_lists_the_registered() -> None:
    with pytest.raises(UnknownCodecError) as caught:
        create_codec("no-such-codec")
    message = str(caught.value)
    assert message.startswith("unknown codec 'no-such-codec'")  # not wrapped in KeyError quotes
    assert "x265" in message and "simulcast" in message
    assert isinstance(caught.value, KeyError)


def test_register_decorator_and_duplicate_names(clean_registry) -> None:
    assert register_codec("test-plugin")(PluginCodec) is PluginCodec
    assert PluginCodec.name == "test-plugin"
    assert "test-plugin" in codec_names()
    assert register_codec("test-plugin")(PluginCodec) is PluginCodec  # same class again: harmless
    with pytest.raises(ValueError, match="already registered"):
        register_codec("test-plugin")(OtherCodec)
    assert codec_class("test-plugin") is PluginCodec


def test_entry_point_plugins_are_loaded(monkeypatch: pytest.MonkeyPatch, clean_registry) -> None:
    codec_names()  # built-ins loaded first, as in any real process
    entry = metadata.EntryPoint(name="test-entry-codec", value=f"{__name__}:OtherCodec",
                                group=ENTRY_POINT_GROUP)
    # A plugin may not take over a built-in name.
    clash = metadata.EntryPoint(name="x265", value=f"{__name__}:OtherCodec", group=ENTRY_POINT_GROUP)
    seen_groups = []

    def fake_entry_points(group: str):
        seen_groups.append(group)
        return [entry, clash] if group == ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_loaded", False)
    assert "test-entry-codec" in codec_names()
    assert seen_groups == [ENTRY_POINT_GROUP]
    codec = create_codec("test-entry-codec")
    assert isinstance(codec, OtherCodec) and codec.spec == "test-entry-codec"
    assert codec_class("x265").__name__ == "X265Codec"


# --- the codec spec a bitstream file may name (issue 27, defect 1) ---------------------------------


@pytest.mark.parametrize("text", ["x265", "x265:veryslow", "shvc:ctc", "hm:chroma=420", "mean-scale@bench",
                                  "mean-scale@compressai", "compass@official", "simulcast:mean-scale@compressai",
                                  "simulcast:hm:chroma=420"])
def test_a_file_may_name_a_codec_and_its_named_weights(text: str) -> None:
    assert registry.file_spec(text) == CodecSpec.parse(text)
    assert registry.portable_spec(text) == text


@pytest.mark.parametrize("text, portable", [
    ("hm@/some/dir", "hm"),
    ("shvc:ctc@/opt/SHM/bin", "shvc:ctc"),
    ("shvc@bench", "shvc"),  # a relative folder named like a weights source is still a folder
    ("simulcast:hm@/some/dir", "simulcast:hm"),
    ("simulcast:simulcast:hm:chroma=420@../x", "simulcast:simulcast:hm:chroma=420"),
    ("mean-scale@/tmp/weights", "mean-scale"),
])
def test_a_file_never_names_a_folder(text: str, portable: str) -> None:
    with pytest.raises(registry.EnvelopeError, match="is not a weights source"):
        registry.file_spec(text)
    assert registry.portable_spec(text) == portable
    registry.file_spec(portable)


def test_file_specs_are_registered_and_shallow() -> None:
    with pytest.raises(UnknownCodecError, match="unknown codec 'no-such'"):
        registry.file_spec("simulcast:no-such")
    with pytest.raises(registry.EnvelopeError, match="nested too deeply"):
        registry.file_spec("simulcast:" * 50 + "x265")


def test_plugin_folders_bring_their_commands() -> None:
    commands = {command.name: command for command in registry.plugin_commands()}
    assert "shm" in commands  # codecs/shvc/command.py
    from bench.codecs.shvc import build

    assert commands["shm"].run is build.run


def test_plugin_commands_are_found_without_importing_the_codecs() -> None:
    # COMPASS (a folder without a command) must not be imported, or every `bench` start loads torch.
    import subprocess
    import sys

    code = ("import sys; from bench.registry import plugin_commands; plugin_commands(); "
            "print('bench.codecs.compass' in sys.modules, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every absolute import in ``path`` (bench uses no relative imports)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def _package_sources(folder: str) -> list[Path]:
    return sorted((Path(__file__).resolve().parents[1] / folder).rglob("*.py"))


def test_bench_imports_no_plugin_module_outside_the_registry() -> None:
    """Adding a codec never touches the harness: only the registry's discovery imports bench.codecs."""
    root = Path(__file__).resolve().parents[1]
    found = [f"{path.relative_to(root)}:{line}: {module}" for path in _package_sources("bench")
             if path.name != "registry.py"
             for line, module, names in _imports(path)
             if module.startswith("bench.codecs") or (module == "bench" and "codecs" in names)]
    assert not found, "\n".join(found)


def test_no_module_imports_another_packages_private_name() -> None:
    root = Path(__file__).resolve().parents[1]
    found = []
    for folder, package in (("bench", "bench"), ("codecs", "bench.codecs")):
        for path in _package_sources(folder):
            own = ".".join([package, *path.relative_to(root / folder).parent.parts])  # this module's package
            for line, module, names in _imports(path):
                private = [name for name in names if name.startswith("_") and not name.startswith("__")]
                private += [part for part in module.split(".") if part.startswith("_") and part != "__future__"]
                if private and own not in (module, module.rsplit(".", 1)[0]):
                    found.append(f"{path.relative_to(root)}:{line}: from {module} import {', '.join(private)}")
    assert not found, "\n".join(found)
