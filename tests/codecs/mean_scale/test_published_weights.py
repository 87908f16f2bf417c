"""`bench run` and `bench list` with published weights placed where a user puts them (synthetic
files in the published layouts), and with nothing placed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bench.cli import main
from bench.codecs.compass import official
from bench.storage.store import RunStore
from tests.codecs.published_fixtures import (
    official_checkpoint,
    write_compressai_zoo_file,
    write_official_checkpoint,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("published")
    compass_file = write_official_checkpoint(root / "compass-official", 0.0035, official_checkpoint(seed=5)[0])
    zoo_file, _ = write_compressai_zoo_file(root / "torch" / "hub" / "checkpoints", 3, 128, 192, seed=7)
    return {"compass": compass_file, "compass_dir": root / "compass-official", "zoo": zoo_file,
            "torch_home": root / "torch"}


@pytest.fixture()
def placed(files, monkeypatch, tmp_path):
    from compressai.zoo import image

    monkeypatch.setenv(official.ENV_VAR, str(files["compass_dir"]))
    monkeypatch.setenv("TORCH_HOME", str(files["torch_home"]))
    monkeypatch.setenv("BENCH_WEIGHTS", str(tmp_path / "empty-bench-zoo"))
    # the synthetic file's name carries its own hash, as CompressAI's real ones do
    monkeypatch.setitem(image.model_urls["mbt2018-mean"]["mse"], 3, f"https://x/{files['zoo'].name}")
    return files


def test_run_records_name_the_weights_source_and_hash(placed, make_image_folder, tmp_path, capsys):
    folder = make_image_folder(1, 32, 48)
    out = tmp_path / "run"
    status = main(["run", "--codecs", "compass@official,mean-scale@compressai", "--dataset", str(folder),
                   "--scales", "2", "--qualities", "compass@official=2", "--qualities", "mean-scale@compressai=3",
                   "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    records = RunStore(out).records()
    compass = [r for r in records if r["codec"] == "compass@official"]
    single = [r for r in records if r["codec"] == "mean-scale@compressai"]
    assert [r["layer"] for r in compass] == [0, 1] and [r["layer"] for r in single] == [0, 1]
    compass_digest = hashlib.sha256(placed["compass"].read_bytes()).hexdigest()
    zoo_digest = hashlib.sha256(placed["zoo"].read_bytes()).hexdigest()
    for record in compass:
        weights = record["extra"]["weights"]
        assert weights["source"] == "q2: official" and weights["sha256"] == f"q2: {compass_digest}"
        assert weights["file"] == "q2: lambda_0.0035/best_model.pth.tar"
        assert record["bits_layer"] > 0 and record["quality"] == 2
    for record in single:
        weights = record["extra"]["weights"]
        assert weights["source"] == "compressai" and weights["sha256"] == zoo_digest
        assert weights["file"] == str(placed["zoo"]) and weights["qualities"] == "3"
        assert record["extra"]["model_bytes"] == placed["zoo"].stat().st_size


def test_run_with_nothing_placed_reports_both_unavailable(make_image_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(official.ENV_VAR, str(tmp_path / "no-compass"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch"))
    folder = make_image_folder(1, 32, 48)
    status = main(["run", "--codecs", "compass@official,mean-scale@compressai", "--dataset", str(folder),
                   "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and "none of the requested codecs is available" in err
    assert (f"skipping compass@official: unavailable: no official COMPASS checkpoint in {tmp_path / 'no-compass'}"
            in err)
    assert "skipping mean-scale@compressai: unavailable: CompressAI's pretrained mbt2018-mean weights" in err
    assert str(tmp_path / "no-torch" / "hub" / "checkpoints") in err and "mbt2018-mean-1-e522738d.pth.tar" in err


def test_list_shows_which_weights_each_codec_uses(placed, capsys):
    assert main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.split("datasets:")[0].splitlines()[1:]}
    torch_cache = placed["torch_home"] / "hub" / "checkpoints"
    assert lines["mean-scale@compressai"].endswith(f"[weights: CompressAI zoo ({torch_cache}); present: q3]")
    assert " available [" in lines["mean-scale@compressai"] and " available [" in lines["compass@official"]
    assert lines["compass@official"].endswith(
        f"[weights: official checkpoints ({placed['compass_dir']}); present: q2]")
    assert lines["mean-scale"].endswith("none present]") and "[weights: bench zoo (" in lines["mean-scale"]
    assert lines["compass"].endswith("none present]") and "unavailable" in lines["compass"]
