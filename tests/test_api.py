"""bench.api: the README's default job from Python, the same records as the command line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench import api
from bench.cli import main
from bench.errors import ImageError, ReportError, UsageError
from bench.images import DEFAULT_MAX_PIXELS
from bench.registry import _REGISTRY, register_codec
from bench.running.runner import run_job_safely
from bench.storage.records import Record
from bench.storage.store import RunStore
from tests.fake_codecs import RawCodec

MEASURED = ("encode_time", "decode_time", "extra")  # seconds and memory differ between runs


def _essentials(records: list[dict]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k not in MEASURED}, sort_keys=True) for r in records)


def test_run_and_report_from_python_match_the_command_line(tmp_path: Path, make_image_folder, x265_ready) -> None:
    folder = make_image_folder(2)
    config = api.RunConfig(codecs=["x265", "simulcast:x265"], scales=["1.5"], dataset=str(folder),
                           qualities=["32,37"], out=tmp_path / "api")
    result = api.run(config)
    assert (result.summary.done, result.summary.skipped, result.summary.failed) == (8, 0, [])
    records = result.records()
    assert len(records) == 16 and all(isinstance(r, Record) for r in records)
    assert {r.codec for r in records} == {"x265", "simulcast:x265"}
    assert api.run(config).summary.skipped == 8  # a rerun resumes

    assert main(["run", "--codecs", "x265,simulcast:x265", "--scales", "1.5", "--dataset", str(folder),
                 "--qualities", "32,37", "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    assert _essentials(RunStore(tmp_path / "api").records()) == _essentials(RunStore(tmp_path / "cli").records())
    manifest = RunStore(tmp_path / "api").manifest()["invocations"][0]
    assert manifest["codecs"]["x265"]["qualities"] == [32, 37] and manifest["scales"] == ["1.5"]

    report = api.report([result.out], tmp_path / "report", eval_model_json=True)
    assert report.page == tmp_path / "report" / "report.md" and report.page.is_file()
    assert len(report.eval_model) == 4  # 2 codecs x 2 layers
    # the tables come back as DataFrames, equal to the CSVs written beside the page
    bd = report.tables.bdrate
    row = bd[(bd["codec"] == "simulcast:x265") & (bd["reference"] == "x265") & (bd["layer"] == 1)]
    assert len(row) == 1
    import pandas as pd

    written = pd.read_csv(tmp_path / "report" / "bdrate.csv")
    again = written[(written["codec"] == "simulcast:x265") & (written["reference"] == "x265") & (written["layer"] == 1)]
    assert again["bd_rate"].iloc[0] == pytest.approx(row["bd_rate"].iloc[0], nan_ok=True)


def test_prepare_checks_codecs_against_the_configuration(tmp_path: Path, make_image_folder) -> None:
    folder = make_image_folder(1)
    heard = []
    config = api.RunConfig(codecs=["simulcast"], dataset=str(folder), out=tmp_path / "run")
    with pytest.raises(UsageError, match="none of the requested codecs is available"):
        api.prepare(config, on_unavailable=lambda spec, reason: heard.append((spec, reason)))
    assert heard and heard[0][0] == "simulcast" and "inner codec" in heard[0][1]
    prepared = api.prepare(config, require_available=False)
    assert prepared.jobs == [] and list(prepared.unavailable) == ["simulcast"]
    with pytest.raises(UsageError, match="quality must be one of"):
        api.prepare(api.RunConfig(codecs=["mean-scale"], dataset=str(folder), qualities=["9"]))
    assert not (tmp_path / "run").exists()  # nothing was written


def test_plan_writes_nothing(tmp_path: Path, make_image_folder, x265_ready) -> None:
    folder = make_image_folder(2)
    plan = api.plan(api.RunConfig(codecs=["x265"], dataset=str(folder), qualities=["32"], out=tmp_path / "run"))
    assert (plan.jobs, plan.done) == (2, 0)
    assert not (tmp_path / "run").exists()


def test_report_refuses_a_folder_without_records(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="holds no records.jsonl"):
        api.report([tmp_path], tmp_path / "report")


def test_a_run_folder_keeps_one_yuv_matrix(tmp_path: Path, make_image_folder) -> None:
    folder = make_image_folder(1)
    out = tmp_path / "run"
    out.mkdir()
    record = Record(codec="x265", dataset="kodak", image="kodim01.png", scales=[], anchor="top", quality=32,
                    layer=0, num_layers=1, height=2, width=2, bits_layer=8, bits_cum=8, bpp=2.0, psnr_rgb=30.0,
                    ms_ssim_rgb=None, encode_time=0.1, decode_time=0.1, mode="single", yuv_matrix="bt709")
    (out / "records.jsonl").write_text(json.dumps(record.to_json()) + "\n")
    config = api.RunConfig(codecs=["x265"], dataset=str(folder), out=out, yuv_matrix="bt601")
    with pytest.raises(UsageError, match="bt709.*--yuv-matrix bt601 needs another --out"):
        api.prepare(config)
    assert api.prepare(api.RunConfig(codecs=["x265"], dataset=str(folder), out=out)).manifest().yuv_matrix == "bt709"
    with pytest.raises(UsageError, match="bt2020"):
        api.RunConfig(codecs=["x265"], yuv_matrix="bt2020")


class _Failing(RawCodec):
    """Every encode fails: a run of it writes no record."""

    def encode(self, layers, quality: int):
        raise RuntimeError("deliberately broken for the test")


@pytest.fixture
def raw_codecs():
    for name, cls in (("api-raw", RawCodec), ("api-failing", _Failing)):
        register_codec(name)(cls)
    yield
    for name in ("api-raw", "api-failing"):
        _REGISTRY.pop(name, None)


def test_a_picture_above_max_pixels_is_refused_before_anything_runs(tmp_path: Path, make_image_folder,
                                                                    raw_codecs) -> None:
    folder = make_image_folder(2)  # 64x48 = 3,072 pixels each
    config = api.RunConfig(codecs=["api-raw"], scales=["1"], dataset=str(folder), out=tmp_path / "run",
                           max_pixels=3_000)
    with pytest.raises(ImageError, match=r"img00\.png: 64x48 = 0\.0 MP is above the limit of 3,000 pixels"):
        api.run(config)
    assert not (tmp_path / "run").exists()  # refused from the headers: nothing was written
    with pytest.raises(ImageError, match="above the limit"):
        api.plan(config)  # what --dry-run prints
    result = api.run(api.RunConfig(codecs=["api-raw"], scales=["1"], dataset=str(folder), out=tmp_path / "run",
                                   max_pixels=3_072))
    assert (result.summary.done, result.summary.failed) == (2, [])
    assert api.RunConfig(codecs=["api-raw"]).max_pixels == DEFAULT_MAX_PIXELS

    # each job checks again as it reads its picture (a resumed or distributed job sees no prepare)
    job = replace(api.prepare(config.__class__(codecs=["api-raw"], scales=["1"], dataset=str(folder))).jobs[0],
                  max_pixels=100)
    _, records, error = run_job_safely(job)
    assert records is None and "above the limit of 100 pixels" in error


def test_the_command_line_takes_max_pixels(tmp_path: Path, make_image_folder, raw_codecs, capsys) -> None:
    folder = make_image_folder(1)
    argv = ["run", "--codecs", "api-raw", "--scales", "1", "--dataset", str(folder), "--out", str(tmp_path / "run"),
            "--no-progress"]
    assert main([*argv, "--max-pixels", "3000"]) == 2
    assert "bench run: error:" in capsys.readouterr().err
    assert main([*argv, "--max-pixels", "0"]) == 2
    assert "--max-pixels must be" in capsys.readouterr().err
    assert main(argv) == 0


def test_a_run_whose_every_job_failed_points_at_no_records_file(tmp_path: Path, make_image_folder, raw_codecs,
                                                                capsys) -> None:
    folder = make_image_folder(1)
    out = tmp_path / "run"
    assert main(["run", "--codecs", "api-failing", "--scales", "1", "--dataset", str(folder), "--out", str(out),
                 "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert "0 jobs run" in text and "1 failed" in text
    assert "records in" not in text and f"no records written ({out / 'records.jsonl'} does not exist)" in text
    assert not (out / "records.jsonl").exists()


def test_a_run_parses_its_records_once(tmp_path: Path, make_image_folder, raw_codecs, monkeypatch) -> None:
    folder = make_image_folder(2)
    config = api.RunConfig(codecs=["api-raw"], scales=["1.5"], dataset=str(folder), out=tmp_path / "run")
    assert api.run(replace(config, limit=1)).summary.done == 1
    parses = []
    parse_bytes = RunStore._parse_bytes
    monkeypatch.setattr(RunStore, "_parse_bytes",
                        lambda self, data: parses.append(data.count(b"\n")) or parse_bytes(self, data))
    # the YUV-matrix check, the weights check, the plan and its done counts: one parse of the 2 records
    plan = api.plan(config)
    assert (plan.jobs, plan.done, parses) == (2, 1, [2])
    # and a resumed run: its checks and the resume (after taking the lock) share one parse as well
    result = api.run(config)
    assert (result.summary.skipped, result.summary.done, parses) == (1, 1, [2, 2])
    assert [r.image for r in result.records()] == ["img00.png"] * 2 + ["img01.png"] * 2


def test_every_command_is_a_function_of_the_api() -> None:
    """bench.api names each command's function and config; they are the modules' own objects."""
    from bench import api
    from bench.codecs.compass import train as compass
    from bench.codecs.mean_scale import export as mean_scale_export
    from bench.codecs.mean_scale import fetch
    from bench.codecs.mean_scale import train as mean_scale
    from bench.codecs.mean_scale import widen as mean_scale_widen
    from bench.codecs.shvc import build as shm_build
    from bench.tools import check, coding, fuzz
    from bench.train import export, widen

    assert api.encode_image is coding.encode_image and api.decode_file is coding.decode_file
    assert api.check is check.check and api.CheckConfig is check.CheckConfig
    assert api.run_fuzz is fuzz.run_fuzz and api.FuzzConfig is fuzz.FuzzConfig
    assert api.widen is widen.widen and api.export_weights is export.export
    # a plugin's trainer and commands, through the registry: bench names no plugin
    declared = api.trainer("compass")
    assert declared.train is compass.train and declared.config is compass.CompassTrainingConfig
    assert declared.widen is compass.widen_compass and declared.exporters["official"] is compass._export_official
    declared = api.trainer("mean-scale")
    assert declared.train is mean_scale.train and declared.config is mean_scale.MeanScaleTrainingConfig
    assert declared.widen is mean_scale_widen.widen_file and declared.exporters["zoo"] is mean_scale_export.export_zoo
    with pytest.raises(UsageError, match="no plugin trains 'x265'; plugins with a trainer: compass, mean-scale"):
        api.trainer("x265")
    weights = api.command("weights")
    assert weights.function is fetch.fetch_weights and weights.config is fetch.FetchConfig
    assert api.command("shm").function is shm_build.build_shm
    with pytest.raises(UsageError, match="no plugin brings the command 'x265'; plugin commands: shm, vtm, weights"):
        api.command("x265")
    assert set(api._COMMANDS) <= set(api.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        api.nope  # noqa: B018
