"""Weights identity: records carry ``extra.weights_id``, and a resumed run refuses a run folder whose
records of a codec and quality were made with other weights (two models on one RD curve)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bench import api
from bench.cli import main
from bench.errors import StoreError
from bench.registry import _REGISTRY, register_codec
from bench.storage.store import RunStore, check_weights, weights_mismatches
from tests.fake_codecs import WeightedRawCodec

SPEC = "test-weighted"


@pytest.fixture
def weighted(tmp_path: Path, monkeypatch):
    """The fake learned codec, registered, with its weights file: returns that file."""
    register_codec(SPEC)(WeightedRawCodec)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"first weights")
    monkeypatch.setenv(WeightedRawCodec.ENV_VAR, str(weights))
    yield weights
    _REGISTRY.pop(SPEC, None)


def _config(folder: Path, out: Path, qualities: str = "1,2") -> api.RunConfig:
    return api.RunConfig(codecs=[SPEC], dataset=str(folder), qualities=[qualities], out=out)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_records_carry_the_weights_id_and_a_rerun_with_the_same_weights_resumes(
        tmp_path: Path, make_image_folder, weighted: Path) -> None:
    folder = make_image_folder(2, 24, 32)
    config = _config(folder, tmp_path / "run")
    first = api.run(config)
    assert (first.summary.done, first.summary.failed) == (4, [])
    records = RunStore(config.out).records()
    assert len(records) == 8 and {r["extra"]["weights_id"] for r in records} == {_sha(weighted)}
    again = api.run(config)
    assert (again.summary.skipped, again.summary.done, again.summary.failed) == (4, 0, [])
    assert api.plan(config).done == 4


def test_codecs_without_weights_write_no_weights_id(tmp_path: Path, make_image_folder, weighted: Path,
                                                     monkeypatch) -> None:
    monkeypatch.delenv(WeightedRawCodec.ENV_VAR)
    folder = make_image_folder(1, 24, 32)
    config = _config(folder, tmp_path / "run", "1")
    api.run(config)
    assert all("weights_id" not in r["extra"] for r in RunStore(config.out).records())


def test_a_rerun_with_other_weights_is_refused_and_writes_nothing(
        tmp_path: Path, make_image_folder, weighted: Path, capsys) -> None:
    folder = make_image_folder(2, 24, 32)
    config = _config(folder, tmp_path / "run")
    api.run(config)
    old = _sha(weighted)
    weighted.write_bytes(b"retrained weights, another file")
    new = _sha(weighted)
    records_before = (config.out / "records.jsonl").read_bytes()
    manifest_before = (config.out / "manifest.json").read_bytes()
    listing = sorted(p.name for p in config.out.iterdir())

    with pytest.raises(StoreError) as caught:
        api.run(config)
    message = str(caught.value)
    for part in (str(config.out), SPEC, "quality 1, 2", "8 records", old[:8], new[:8], "--out", "remove"):
        assert part in message, part
    assert old[:9] not in message and new[:9] not in message  # ids are shortened to 8 hex digits
    with pytest.raises(StoreError, match="other weights"):
        api.plan(config)  # --dry-run says so too

    # the command line: one line, the store's exit status, for the run and its dry run
    argv = ["run", "--codecs", SPEC, "--dataset", str(folder), "--qualities", "1,2", "--out", str(config.out),
            "--no-progress"]
    assert main(argv) == StoreError.exit_status
    assert main([*argv, "--dry-run"]) == StoreError.exit_status
    err = capsys.readouterr().err
    assert err.count("bench run: error: ") == 2 and "Traceback" not in err

    assert (config.out / "records.jsonl").read_bytes() == records_before
    assert (config.out / "manifest.json").read_bytes() == manifest_before
    assert sorted(p.name for p in config.out.iterdir()) == listing

    # only the planned qualities are compared; a new --out runs with the new weights
    assert api.run(_config(folder, tmp_path / "other", "2")).summary.done == 2
    weighted.write_bytes(b"first weights")
    assert api.run(config).summary.skipped == 4  # the old weights are back: the folder resumes


def test_only_the_qualities_whose_weights_changed_are_named(tmp_path: Path, make_image_folder,
                                                             weighted: Path) -> None:
    folder = make_image_folder(1, 24, 32)
    config = _config(folder, tmp_path / "run")
    api.run(config)
    # q2 retrained: rewrite q2's records as if made with other weights
    lines = [json.loads(line) for line in (config.out / "records.jsonl").read_text().splitlines()]
    for record in lines:
        if record["quality"] == 2:
            record["extra"]["weights_id"] = "ab" * 32
    (config.out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(StoreError, match=r"2 records of test-weighted at quality 2 .*abababab") as caught:
        api.run(config)
    assert "quality 1" not in str(caught.value)
    assert api.run(_config(folder, config.out, "1")).summary.skipped == 1  # q1's records are fine


def test_records_without_a_weights_id_resume(tmp_path: Path, make_image_folder, weighted: Path) -> None:
    folder = make_image_folder(2, 24, 32)
    config = _config(folder, tmp_path / "run")
    api.run(config)
    lines = [json.loads(line) for line in (config.out / "records.jsonl").read_text().splitlines()]
    for record in lines:  # as an older bench wrote them
        del record["extra"]["weights_id"]
    (config.out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    weighted.write_bytes(b"retrained weights, another file")
    again = api.run(config)
    assert (again.summary.skipped, again.summary.done, again.summary.failed) == (4, 0, [])


def test_weights_mismatches_count_records_per_old_id() -> None:
    def record(quality: int, weights_id: str | None, codec: str = "a") -> dict:
        extra = {"weights_id": weights_id} if weights_id else {}
        return {"codec": codec, "quality": quality, "extra": extra}

    old, other, new = "1" * 64, "2" * 64, "3" * 64
    records = [record(1, old), record(1, old), record(1, other), record(1, new), record(1, None),
               record(2, old), record(3, old), record(1, old, codec="b")]
    current = {("a", 1): new, ("a", 2): None, ("b", 1): old}
    assert weights_mismatches(records, current) == {("a", 1): {old: 2, other: 1}}
    with pytest.raises(StoreError) as caught:
        check_weights(Path("runs/x"), records, current)
    message = str(caught.value)
    assert message.startswith("runs/x holds records made with other weights than the codecs code with now: "
                              "3 records of a at quality 1 (quality 1: 2 with weights 11111111, ")
    assert "2 with weights 11111111, 1 with weights 22222222, now 33333333" in message
    check_weights(Path("runs/x"), records, {("a", 3): old, ("b", 1): old, ("c", 1): new})  # nothing to refuse
    with pytest.raises(StoreError, match=r": 1 record of a at quality 2 \(quality 2: 1 with weights 11111111, "
                       r"now 33333333\)\. Resuming"):
        check_weights(Path("runs/x"), records, {("a", 2): new})
