"""What codecs declare for reports, kept in the run's manifest and read back by the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import api
from bench.declared import MANIFEST_KEY, REGISTERED, Declarations, Declared, registered
from bench.report.bdtables import family, is_focus_pair, role
from bench.report.compute import compute_tables
from bench.running.config import RunConfig


def test_registered_declarations_come_from_codec_info() -> None:
    assert registered("shvc") == Declared(family="hm", report_role="shvc", anchors_every_family=True,
                                          rate_counts=registered("shvc").rate_counts)
    layered = registered("simulcast:jpeg")
    assert (layered.family, layered.report_role, layered.anchors_every_family) == ("jpeg", "simulcast", False)
    assert layered.rate_counts.startswith("its container") and "JFIF" in layered.rate_counts
    # a codec registered nowhere is a family of its own, under test
    assert registered("mycodec:fast@v2") == Declared(family="mycodec")


def test_json_round_trip_and_refusals() -> None:
    declared = registered("vtm-ml")
    assert Declared.from_json(json.loads(json.dumps(declared.to_json()))) == declared
    for bad in ({}, {"family": 3}, {"family": "x", "anchors_every_family": "yes"}, [], "hm"):
        with pytest.raises(ValueError, match="not a codec declaration"):
            Declared.from_json(bad)  # type: ignore[arg-type]


def _manifest(*invocations: dict) -> tuple[Path, dict]:
    return Path("run"), {"invocations": list(invocations)}


def test_manifests_win_over_the_registry_and_later_invocations_over_earlier() -> None:
    anchor = {"family": "ext", "report_role": "shvc", "anchors_every_family": True, "rate_counts": "all of it"}
    declared = Declarations.of_manifests([
        _manifest({"codecs": {"ext-sc": {"available": True, MANIFEST_KEY: anchor},
                              "compass": {"available": True, MANIFEST_KEY: {"family": "old"}}}},
                  {"codecs": {"compass": {"available": True, MANIFEST_KEY: {"family": "mean-scale"}},
                              "jpeg": {"available": False, "reason": "no Pillow"},
                              "broken": {"available": True, MANIFEST_KEY: {"family": 7}}}}),
    ])
    assert declared("ext-sc") == Declared(family="ext", report_role="shvc", anchors_every_family=True,
                                          rate_counts="all of it")
    assert declared("compass").family == "mean-scale"  # the later invocation's
    assert declared("broken") == registered("broken")  # not a declaration: the registry answers
    assert declared("x265") == registered("x265")
    # pairing follows what was recorded: an anchor of every family that no plugin here knows
    assert is_focus_pair("compass", "scalable", "ext-sc", "shvc", declared)
    assert not is_focus_pair("compass", "scalable", "ext-sc", "shvc", REGISTERED)
    assert role("ext-sc", "scalable", declared) == "shvc" and role("ext-sc", "scalable") == "scalable"
    assert family("ext-sc", declared) == "ext"


def test_garbage_manifests_are_ignored() -> None:
    declared = Declarations.of_manifests([(Path("a"), {}), (Path("b"), {"invocations": "x"}),
                                          _manifest({"codecs": []}, "nope", {"codecs": {"c": "d"}})])
    assert declared.recorded == {}


def test_a_run_records_declarations_and_its_report_pairs_by_them(tmp_path: Path, make_image_folder) -> None:
    folder = make_image_folder(2, 32, 48)
    out = tmp_path / "run"
    api.run(RunConfig(codecs=["jpeg,simulcast:jpeg"], scales=["2"], dataset=str(folder), out=out,
                      qualities=["jpeg=20,40,70,90", "simulcast:jpeg=20,40,70,90"]))
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    codecs = manifest["invocations"][-1]["codecs"]
    assert codecs["simulcast:jpeg"][MANIFEST_KEY] == registered("simulcast:jpeg").to_json()
    assert codecs["jpeg"][MANIFEST_KEY]["family"] == "jpeg"

    def focus(run: Path) -> set[tuple[str, str]]:
        bd = compute_tables([run], bootstrap=0).bdrate
        return {(r.codec, r.reference) for r in bd[bd["focus"].astype(bool)].itertuples()}

    assert ("simulcast:jpeg", "jpeg") in focus(out)
    # the same records with another recorded family pair otherwise, whatever is registered here
    codecs["simulcast:jpeg"][MANIFEST_KEY]["family"] = "webp"
    manifest_path.write_text(json.dumps(manifest))
    assert ("simulcast:jpeg", "jpeg") not in focus(out)
