"""One error hierarchy: every error the user can fix is a BenchError, and nothing below the command
line imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench import errors
from bench.errors import BenchError, exit_status, is_user_error
from tests.conftest import REPO


def test_every_bench_error_class_is_a_bench_error() -> None:
    from bench.codec import BitstreamError, CodecError
    from bench.datasets import DatasetError
    from bench.images import ImageError
    from bench.measuring.timing import NondeterministicCodecError
    from bench.pyramid import PyramidError
    from bench.registry import UnknownCodecError
    from bench.running.distributed import DistributedError
    from bench.storage.envelope import EnvelopeError
    from bench.storage.store import StoreError
    from bench.tools.check import CheckError
    from bench.tools.fuzz import FuzzError
    from bench.zoo import WeightsError

    for cls in (CheckError, BitstreamError, CodecError, DatasetError, DistributedError, EnvelopeError, FuzzError,
                ImageError, PyramidError, UnknownCodecError, StoreError, NondeterministicCodecError, WeightsError,
                errors.UsageError, errors.TrainingError, errors.ReportError, errors.RunFolderBusyError):
        assert issubclass(cls, BenchError), cls
    # the builtin types callers caught before the hierarchy still catch them
    assert issubclass(PyramidError, ValueError) and issubclass(UnknownCodecError, KeyError)
    assert str(UnknownCodecError("unknown codec 'x'")) == "unknown codec 'x'"


def test_user_errors_and_bugs_are_told_apart() -> None:
    assert is_user_error(errors.CodecError("bad")) and exit_status(errors.CodecError("bad")) == 2
    assert is_user_error(FileNotFoundError("x"))
    assert not is_user_error(RuntimeError("a bug")) and not is_user_error(KeyError("a bug"))


@pytest.mark.parametrize("path", sorted(p.relative_to(REPO).as_posix() for p in
                                        [*(REPO / "bench").rglob("*.py"), *(REPO / "codecs").rglob("*.py")]
                                        if p.name not in ("cli.py", "__main__.py")))
def test_nothing_below_the_command_line_imports_it(path: str) -> None:
    tree = ast.parse((REPO / path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module != "bench.cli" and not (node.module == "bench" and any(
                alias.name == "cli" for alias in node.names)), f"{path}:{node.lineno} imports bench.cli"
        elif isinstance(node, ast.Import):
            assert all(alias.name != "bench.cli" for alias in node.names), f"{path}:{node.lineno}"


def test_the_cli_prints_a_bench_error_as_one_line(capsys, tmp_path: Path) -> None:
    from bench.cli import main

    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"bench report: error: {tmp_path} holds no records.jsonl; run `bench run --out " \
                          f"{tmp_path} ...` first"
