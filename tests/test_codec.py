"""What codecs declare about themselves, and that the harness reads it instead of naming codecs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.registry import builtin_modules, codec_class, codec_family, is_slow
from bench.report.bdtables import is_focus_pair, role
from bench.running.runner import plan_jobs
from tests.conftest import REPO

# Harness modules that must hold no codec name outside help text, examples and the default job lists.
HARNESS = ["bench/running/runner.py", "bench/tools/check.py", "bench/tools/fuzz.py", "bench/cli.py",
           *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "bench" / "report").glob("*.py"))]
NAMES = re.compile(r"\b(x265|shvc|compass|mean-scale|simulcast)\b")


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines that are code: not docstrings, comments, help= texts or the check's default job."""
    import ast

    source = path.read_text()
    skip: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value,
                                                                                            ast.Constant):
            skip.update(range(body[0].lineno, body[0].end_lineno + 1))  # a docstring
        if isinstance(node, ast.keyword) and node.arg == "help":
            skip.update(range(node.value.lineno, node.value.end_lineno + 1))
        if isinstance(node, ast.ClassDef) and node.name == "CheckConfig":  # the default job's list
            skip.update(range(node.lineno, node.end_lineno + 1))
    return [(n, line.split("#")[0]) for n, line in enumerate(source.splitlines(), 1) if n not in skip]


@pytest.mark.parametrize("path", HARNESS)
def test_the_harness_names_no_codec(path: str) -> None:
    found = [f"{path}:{n}: {line.strip()}" for n, line in _code_lines(REPO / path) if NAMES.search(line)]
    assert not found, "\n".join(found)


def test_builtin_codecs_are_every_public_module_of_the_package() -> None:
    modules = builtin_modules()
    assert {"bench.codecs.x265", "bench.codecs.simulcast", "bench.codecs.mean_scale", "bench.codecs.compass",
            "bench.codecs.shvc"} <= set(modules)
    assert not any(m.rsplit(".", 1)[1].startswith("_") for m in modules)  # helpers are not codecs


def test_declarations_of_the_builtin_codecs() -> None:
    assert is_slow("shvc") and not is_slow("x265") and not is_slow("unregistered")
    assert codec_family("compass") == "mean-scale" and codec_family("shvc") == "hm"
    assert codec_family("simulcast:mean-scale@compressai") == "mean-scale" and codec_family("x265:slow") == "x265"
    assert codec_family("someone-elses") == "someone-elses"
    assert (role("shvc", "scalable"), role("simulcast:x265", "scalable"), role("compass", "scalable"),
            role("x265", "single")) == ("shvc", "simulcast", "scalable", "single-layer")
    assert codec_class("simulcast").info.list_spec == "simulcast:x265"
    assert codec_class("mean-scale").info.published_sources == ("compressai",)
    assert not codec_class("shvc").info.deterministic and codec_class("x265").info.deterministic
    assert is_focus_pair("compass", "scalable", "shvc", "shvc")
    assert not is_focus_pair("simulcast:x265", "simulcast", "shvc", "shvc")


def test_slow_codecs_are_planned_first(make_image_folder) -> None:
    from bench.datasets import load_dataset

    dataset = load_dataset(str(make_image_folder(1)))
    jobs = plan_jobs(["x265", "unregistered", "shvc"], dataset.name, dataset.images, [(1.5,)], "top",
                     {"x265": [30], "unregistered": [1], "shvc": [30]}, "cpu", 1)
    assert [job.codec for job in jobs] == ["shvc", "x265", "unregistered"]


def test_simulcast_is_as_deterministic_as_its_inner_codec() -> None:
    from bench.registry import create_codec

    assert create_codec("simulcast:x265").info.deterministic
    assert not create_codec("simulcast:shvc").info.deterministic
    assert create_codec("simulcast:x265").fingerprint() == create_codec("x265").fingerprint()
