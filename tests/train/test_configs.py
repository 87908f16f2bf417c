"""bench.train's typed configs: the command line builds them, the trainers take them, and checkpoints
keep the same options in the same form as when the trainers took the ``argparse.Namespace``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from bench import zoo
from bench.codecs.compass import train as compass
from bench.codecs.mean_scale import train as mean_scale
from bench.codecs.mean_scale import weights as ms_weights
from bench.errors import TrainingError
from bench.train import export, widen
from bench.train.checkpoint import load_checkpoint, saved_arguments
from bench.train.common import config_from_args
from bench.train.schedule import check_schedule_on_resume
from tests.codecs.mean_scale.test_train import data_root  # noqa: F401 (a fixture)


@pytest.fixture(autouse=True)
def _keep_threads() -> Iterator[None]:
    threads = torch.get_num_threads()  # the trainers set torch's thread count; later tests get theirs back
    yield
    torch.set_num_threads(threads)


def parse(module: Any, command: str, argv: list[str]) -> argparse.Namespace:
    """The options as ``python -m bench.train COMMAND`` parses them (the subcommand as ``model``, the
    data root as the dispatcher fills it in)."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    args = parser.parse_args(argv, namespace=argparse.Namespace(model=command))  # the dispatcher's dest first
    if args.data_root is None:
        args.data_root = "data-root"
    return args


def namespace_form(args: argparse.Namespace) -> dict[str, Any]:
    """What checkpoints kept when the trainers took the Namespace: ``vars(args)`` filtered to plain
    values, tuples as lists (a list, such as --train-folders, was dropped)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in vars(args).items()
            if isinstance(value, (int, float, str, tuple, type(None)))}


MEAN_SCALE_ARGV = ["--quality", "3", "--N", "16", "--M", "24", "--minutes", "2.5", "--init-from", "a/last.pt",
                   "--out", "run", "--precision", "bf16", "--train-folders", "x,y", "--seed", "4"]
COMPASS_ARGV = ["--stage", "joint", "--config", "tiny", "--quality", "2", "--el1-range", "0.3,0.5",
                "--rc-size", "16,24", "--freeze-rc", "--out", "run", "--val-crop", "64", "--device", "cpu"]


@pytest.mark.parametrize("module,command,argv,cls", [
    (mean_scale, "mean-scale", MEAN_SCALE_ARGV, mean_scale.MeanScaleTrainingConfig),
    (mean_scale, "mean-scale", ["--lmbda", "0.01", "--out", "run"], mean_scale.MeanScaleTrainingConfig),
    (compass, "compass", COMPASS_ARGV, compass.CompassTrainingConfig),
    (compass, "compass", ["--stage", "export", "--from", "j/last.pt"], compass.CompassTrainingConfig),
])
def test_checkpoints_keep_the_options_as_the_namespace_gave_them(module, command, argv, cls) -> None:
    args = parse(module, command, argv)
    config = config_from_args(cls, args)
    if command == "mean-scale" and args.lmbda is None:  # the old run() filled λ in before training
        args.lmbda = ms_weights.QUALITY_LAMBDAS[args.quality]
    assert list(saved_arguments(config).items()) == list(namespace_form(args).items())  # order too


def test_a_config_from_python_saves_what_the_command_line_saves(tmp_path: Path) -> None:
    args = parse(mean_scale, "mean-scale", ["--quality", "3", "--out", str(tmp_path / "run"),
                                            "--data-root", str(tmp_path), "--train-folders", "x,y"])
    from_cli = config_from_args(mean_scale.MeanScaleTrainingConfig, args)
    from_python = mean_scale.MeanScaleTrainingConfig(quality=3, out=tmp_path / "run", data_root=tmp_path,
                                                     train_folders="x, y")
    assert from_python == from_cli
    assert from_python.lmbda == ms_weights.QUALITY_LAMBDAS[3] and from_python.train_folders == ("x", "y")
    assert from_python.out == str(tmp_path / "run") and from_python.data_root == str(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        from_python.steps = 3  # type: ignore[misc]


def test_configs_refuse_what_the_command_line_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DATA", "/somewhere/datasets")
    assert mean_scale.MeanScaleTrainingConfig(lmbda=0.01, out="r").data_root == "/somewhere/datasets"
    cases = [
        (mean_scale.MeanScaleTrainingConfig, {"out": "r"}, "give --lmbda or --quality"),
        (mean_scale.MeanScaleTrainingConfig, {"out": "r", "quality": 9}, "--quality must be one of"),
        (mean_scale.MeanScaleTrainingConfig, {"out": "r", "lmbda": 0.01, "minutes": 0}, "must be positive"),
        (compass.CompassTrainingConfig, {"stage": "all"}, "--stage must be one of"),
        (compass.CompassTrainingConfig, {"stage": "rc", "config": "huge"}, "--config must be one of"),
        (compass.CompassTrainingConfig, {"stage": "rc", "el2_range": (0.1, 0.5)}, "--el2-range: need 0.25"),
        (compass.CompassTrainingConfig, {"stage": "rc", "rc_size": (0, 8)}, "channel counts must be positive"),
        (widen.WidenConfig, {"source": "a", "out": "b", "model": "liff"}, "--model must be one of"),
        (export.ExportConfig, {"checkpoint": "a", "quality": 3, "format": "onnx"}, "--format must be one of"),
        (export.ExportConfig, {"checkpoint": "a", "quality": 3, "storage": "int4"}, "--storage must be one of"),
    ]
    for cls, kwargs, message in cases:
        with pytest.raises(TrainingError, match=message):
            cls(**kwargs)
    config = compass.CompassTrainingConfig(stage="rc", el1_range=[0.3, 0.5], rc_size=[16, 24])
    assert config.el1_range == (0.3, 0.5) and config.rc_size == (16, 24) and config.lr is None
    with pytest.raises(TrainingError, match="--out RUN_DIR is required"):  # before anything loads
        compass.train(config)
    with pytest.raises(TrainingError, match="would move the lr decay"):
        check_schedule_on_resume({"minutes": None, "steps": 5}, 5, 2.0, Path("run/last.pt"))
    check_schedule_on_resume({"minutes": 2.0, "steps": 5}, 9, 3.0, Path("run/last.pt"))  # same mode: fine


def test_train_widen_and_export_take_typed_configs(data_root: Path, tmp_path: Path,  # noqa: F811
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = mean_scale.MeanScaleTrainingConfig(
        lmbda=0.0067, N=16, M=24, crop=64, batch=2, steps=2, threads=1, val_images=0, decay_fraction=0,
        data_root=data_root, out=tmp_path / "run")
    path = mean_scale.train(config)
    assert path == tmp_path / "run" / "last.pt"
    state = load_checkpoint(path)
    assert state["step"] == 2 and state["args"] == saved_arguments(config)
    assert state["config"]["N"] == 16 and state["config"]["lmbda"] == 0.0067
    assert state["args"]["model"] == "mean-scale" and state["args"]["data_root"] == str(data_root)

    wide = widen.widen(widen.WidenConfig(source=path, out=tmp_path / "wide.pt", N=24, M=32))
    assert wide == tmp_path / "wide.pt"
    contents = load_checkpoint(wide)
    assert contents["config"] == {"N": 24, "M": 32} and contents["widened_from"] == "last.pt"
    assert contents["model"]["g_a.0.weight"].shape == (24, 3, 5, 5)

    result = export.export(export.ExportConfig(checkpoint=path, quality=3, out_dir=tmp_path / "zoo"))
    assert result.path.parent == tmp_path / "zoo" and result.path.name.startswith("mean-scale-q3-")
    assert result.sha256.startswith(result.path.name.rsplit("-", 1)[1].split(".")[0])
    assert result.file_bytes == result.path.stat().st_size and result.storage == "float16"
    assert (result.config["N"], result.config["M"], result.config["steps"]) == (16, 24, 2)
    model = ms_weights.mean_scale_from_weights(*zoo.load_weights("mean-scale", 3, tmp_path / "zoo")[:2])
    assert result.parameters == sum(p.numel() for p in model.parameters()) and result.precision_check is None
    with pytest.raises(TrainingError, match="trained with λ=0.0067 but quality 2"):
        export.export(export.ExportConfig(checkpoint=path, quality=2, out_dir=tmp_path / "zoo"))
