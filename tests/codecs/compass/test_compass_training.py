"""Smoke test of ``python -m bench.train compass``: every stage runs, resumes exactly, exports."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from bench import zoo
from bench.codecs.compass import residual
from bench.codecs.compass import train as trainer
from bench.codecs.compass.plugin import CompassCodec
from bench.errors import TrainingError
from tests.codecs.compass.helpers import pyramid, textured


@pytest.fixture
def setup(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "kodak").mkdir()
    for i in range(3):
        Image.fromarray(textured(40, 44, seed=i)).save(data / "train" / f"{i}.png")
    Image.fromarray(textured(36, 40, seed=9)).save(data / "kodak" / "kodim01.png")
    weights = tmp_path / "weights"
    monkeypatch.setenv(zoo.ENV_VAR, str(weights))
    torch.manual_seed(0)
    bl = residual.build_mean_scale(8, 12)
    bl.update(force=True)
    zoo.write_weights(
        "mean-scale",
        2,
        zoo.half_precision(bl.state_dict(), zoo.precision_keys(bl)),
        {"N": 8, "M": 12},
        weights,
    )
    torch.save({"model": bl.state_dict(), "config": {"N": 8, "M": 12}}, tmp_path / "bl.pt")
    return tmp_path


def _run(*argv: str) -> None:
    parser = argparse.ArgumentParser()
    trainer.add_arguments(parser)
    trainer.run(parser.parse_args(list(argv)))


def _common(root, stage: str, out: str, steps: int) -> list[str]:
    return [
        "--stage",
        stage,
        "--config",
        "tiny",
        "--steps",
        str(steps),
        "--batch",
        "2",
        "--crop",
        "32",
        "--data-root",
        str(root / "data"),
        "--out",
        str(root / out),
        "--threads",
        "1",
        "--val-every",
        "2",
        "--val-crop",
        "36",
        "--val-images",
        "1",
        # no lr decay: its start depends on --steps, and these runs extend --steps to resume
        "--decay-fraction",
        "0",
    ]


def _states(path) -> dict:
    state = torch.load(path, weights_only=True)
    return {key: state[key] for key in ("liff", "rc") if state[key] is not None}


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[m][k], b[m][k]) for m in a for k in a[m])


def test_stages_resume_and_export(setup, capsys):
    root = setup
    # LIFF as arbitrary-scale SR: 2 steps, then resumed to 3
    _run(*_common(root, "liff", "liff", 2))
    _run(*_common(root, "liff", "liff", 3))
    assert "resumed" in capsys.readouterr().out
    liff_state = torch.load(root / "liff" / "last.pt", weights_only=True)
    assert liff_state["step"] == 3 and liff_state["rc"] is None

    # RC with bicubic prediction over a BL from a training checkpoint
    _run(*_common(root, "rc", "rc", 2), "--bl", str(root / "bl.pt"), "--lmbda", "0.01")
    rc_state = torch.load(root / "rc" / "last.pt", weights_only=True)
    assert rc_state["step"] == 2 and rc_state["lmbda"] == 0.01 and rc_state["liff"] is None

    # joint over the zoo's BL at quality 2: 3 steps in one go == 2 steps + resume to 3
    init = [
        "--quality",
        "2",
        "--liff-from",
        str(root / "liff" / "last.pt"),
        "--rc-from",
        str(root / "rc" / "last.pt"),
    ]
    _run(*_common(root, "joint", "joint-a", 3), *init)
    _run(*_common(root, "joint", "joint-b", 2), *init)
    _run(*_common(root, "joint", "joint-b", 3), *init)
    a, b = root / "joint-a" / "last.pt", root / "joint-b" / "last.pt"
    assert _equal(_states(a), _states(b))
    joint = torch.load(a, weights_only=True)
    assert joint["lmbda"] == 0.0035 and joint["quality"] == 2
    assert joint["bl_sha256"] == zoo.verify_hash(zoo.find_weights("mean-scale", 2))
    # the joint run started from the pre-trained parts and changed them
    assert not _equal({"liff": joint["liff"]}, {"liff": liff_state["liff"]})

    # a resumed run refuses another stage in the same folder
    with pytest.raises(TrainingError, match="is a joint/tiny run, not rc/tiny"):
        _run(*_common(root, "rc", "joint-a", 4), "--quality", "2")

    # export → the zoo file the plugin loads
    _run("--stage", "export", "--from", str(a))
    path = zoo.find_weights("compass", 2)
    assert path.name.startswith("compass-q2-")
    codec = CompassCodec()
    assert codec.availability().available
    layers = pyramid(textured(36, 52), [1.5, 1.6])
    decoded = codec.decode(codec.encode(layers, 2).data)
    assert [d.shape for d in decoded] == [im.shape for im in layers]
    assert np.all([d.dtype == np.uint8 for d in decoded])


def test_export_refuses_a_bl_that_is_not_the_zoos(setup):
    root = setup
    _run(*_common(root, "joint", "joint", 1), "--bl", str(root / "bl.pt"), "--lmbda", "0.0035")
    # bl.pt holds the same weights but is another file: its hash differs from the zoo's file
    with pytest.raises(TrainingError, match="trained over BL"):
        _run("--stage", "export", "--from", str(root / "joint" / "last.pt"), "--quality", "2")


def test_layer_sizes_follow_the_spec():
    rng = np.random.default_rng(0)
    for _ in range(200):
        bl, el1, el2 = trainer.draw_layer_sizes(rng, 128)
        assert bl == 32 and 32 <= el1 <= 64 and 64 <= el2 <= 128


def test_resize_batch_is_pil_bicubic_rounded_to_8_bits():
    image = textured(30, 40)
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
    out = trainer.resize_batch(x, (13, 17))
    expected = np.asarray(Image.fromarray(image).resize((17, 13), Image.BICUBIC))
    assert np.array_equal((out[0].permute(1, 2, 0) * 255).round().byte().numpy(), expected)


def test_init_from_an_exported_zoo_file_resumes_its_weights(setup):
    root = setup
    _run(*_common(root, "joint", "joint", 2), "--quality", "2")
    _run("--stage", "export", "--from", str(root / "joint" / "last.pt"))
    exported = zoo.full_precision(zoo.load_weights("compass", 2)[0]["state_dict"])

    # 0 steps: the run only initialises and saves, so its weights are the zoo file's, widened
    _run(*_common(root, "joint", "tuned", 0), "--quality", "2", "--init-from", "zoo")
    tuned = torch.load(root / "tuned" / "last.pt", weights_only=True)
    for part in ("liff", "rc"):
        for key, value in tuned[part].items():
            if key.endswith("_cdf") or key.endswith("_cdf_length") or key.endswith("_offset"):
                continue  # CDF tables: training recomputes none, export writes them
            assert torch.equal(value, exported[f"{part}.{key}"]), (part, key)


def test_init_from_refuses_weights_of_another_bl(setup):
    root = setup
    _run(*_common(root, "joint", "other-bl", 1), "--bl", str(root / "bl.pt"), "--lmbda", "0.0035")
    with pytest.raises(TrainingError, match="trained over BL"):
        _run(*_common(root, "joint", "tuned", 1), "--quality", "2",
             "--init-from", str(root / "other-bl" / "last.pt"))

    # --rebase-bl: the same weights, fine-tuned onto the zoo's BL; export then records that BL
    _run(*_common(root, "joint", "rebased", 0), "--quality", "2", "--rebase-bl",
         "--init-from", str(root / "other-bl" / "last.pt"))
    rebased = torch.load(root / "rebased" / "last.pt", weights_only=True)
    source = torch.load(root / "other-bl" / "last.pt", weights_only=True)
    assert rebased["bl_sha256"] != source["bl_sha256"]
    assert all(torch.equal(rebased["liff"][k], v) for k, v in source["liff"].items())
    _run("--stage", "export", "--from", str(root / "rebased" / "last.pt"))
    assert zoo.load_weights("compass", 2)[0]["config"]["bl_sha256"] == rebased["bl_sha256"]


def test_minutes_bounds_training_time_instead_of_steps(setup, capsys):
    root = setup
    argv = _common(root, "liff", "timed", 10_000)
    _run(*argv, "--minutes", "0.002")  # 0.12 s of training: far fewer than 10,000 steps
    state = torch.load(root / "timed" / "last.pt", weights_only=True)
    assert 1 <= state["step"] < 10_000
    assert state["trained_seconds"] >= 0.12
    assert "min of training" in capsys.readouterr().out


def test_a_rerun_resumes_only_with_the_same_initial_weights(setup, capsys):
    root = setup
    _run(*_common(root, "joint", "first", 1), "--quality", "2")
    argv = [*_common(root, "joint", "tuned", 1), "--quality", "2", "--init-from", str(root / "first" / "last.pt")]
    _run(*argv)
    checkpoint = root / "tuned" / "last.pt"
    finished_at = checkpoint.stat().st_mtime_ns
    _run(*argv)  # the same command again: resumes a finished run, which writes nothing
    assert "resumed" in capsys.readouterr().out
    assert checkpoint.stat().st_mtime_ns == finished_at
    _run(*argv[:argv.index("--init-from")])  # dropping the flag resumes too

    with pytest.raises(TrainingError, match="initial weights only apply to a fresh run"):
        _run(*_common(root, "joint", "tuned", 2), "--quality", "2", "--init-from", "zoo")
    with pytest.raises(TrainingError, match="initial weights only apply to a fresh run"):
        _run(*_common(root, "joint", "tuned", 2), "--quality", "2", "--liff-from", str(checkpoint))


def test_init_from_zoo_does_not_resume_over_a_zoo_file_exported_since(setup):
    root = setup
    _run(*_common(root, "joint", "first", 1), "--quality", "2")
    _run("--stage", "export", "--from", str(root / "first" / "last.pt"))
    argv = [*_common(root, "joint", "tuned", 1), "--quality", "2", "--init-from", "zoo"]
    _run(*argv)
    _run(*argv)  # same zoo file: resumes
    _run("--stage", "export", "--from", str(root / "tuned" / "last.pt"))  # replaces the zoo file
    with pytest.raises(TrainingError, match="the zoo now holds compass-q2-"):
        _run(*argv)


def test_the_schedule_cannot_switch_between_steps_and_minutes(setup):
    root = setup
    _run(*_common(root, "liff", "stepped", 1))
    with pytest.raises(TrainingError, match="schedule"):
        _run(*_common(root, "liff", "stepped", 1), "--minutes", "1")
    _run(*_common(root, "liff", "timed", 10_000), "--minutes", "0.001")
    with pytest.raises(TrainingError, match="schedule"):
        _run(*_common(root, "liff", "timed", 5))


@pytest.mark.parametrize("minutes", ["0", "-1"])
def test_minutes_must_be_positive(setup, minutes, capsys):
    with pytest.raises(SystemExit):
        _run(*_common(setup, "liff", "never", 1), "--minutes", minutes)
    assert "--minutes must be positive" in capsys.readouterr().err
    assert not (setup / "never").exists()


def test_init_from_refuses_weights_of_another_network_size(setup):
    root = setup
    _run(*_common(root, "joint", "tiny-run", 1), "--quality", "2")
    with pytest.raises(TrainingError, match="--config tiny networks, not this run's --config cpu"):
        _run(*_common(root, "joint", "cpu-run", 0), "--quality", "2", "--config", "cpu",
             "--init-from", str(root / "tiny-run" / "last.pt"))


def test_wider_layer_ranges_reach_ratios_above_two_over_the_bl():
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(200):
        bl, el1, el2 = trainer.draw_layer_sizes(rng, 128, (0.25, 0.75), (0.75, 1.0))
        assert bl == 32 and 32 <= el1 <= 96 and 96 <= el2 <= 128
        ratios.append(el1 / bl)
    assert max(ratios) > 2.8  # the spec's ranges stop at 2


@pytest.mark.parametrize("text", ["0.5", "a,b", "0.1,0.5", "0.6,0.5", "0.5,1.5"])
def test_a_layer_range_must_be_two_ordered_fractions_above_the_bl(text):
    with pytest.raises(argparse.ArgumentTypeError):
        trainer.layer_range(text)


def test_el2_may_not_be_drawn_below_el1(setup):
    with pytest.raises(TrainingError, match="EL2 could be drawn smaller than EL1"):
        _run(*_common(setup, "joint", "overlap", 1), "--quality", "2", "--el1-range", "0.25,0.75")


def test_freeze_rc_fine_tunes_liff_only_and_export_records_it(setup):
    root = setup
    _run(*_common(root, "joint", "first", 1), "--quality", "2")
    _run("--stage", "export", "--from", str(root / "first" / "last.pt"))
    before = zoo.load_weights("compass", 2)[0]["state_dict"]
    argv = [*_common(root, "joint", "liff-only", 3), "--quality", "2", "--init-from", "zoo", "--freeze-rc",
            "--el1-range", "0.25,0.75", "--el2-range", "0.75,1"]
    _run(*argv)
    with pytest.raises(TrainingError, match="was trained with --el1-range"):  # a rerun must mean the same run
        _run(*[a for a in argv if a not in ("--el1-range", "0.25,0.75", "--el2-range", "0.75,1")])
    _run("--stage", "export", "--from", str(root / "liff-only" / "last.pt"))
    contents = zoo.load_weights("compass", 2)[0]
    after = contents["state_dict"]
    changed = {key.split(".")[0] for key in before if not torch.equal(before[key], after[key])}
    assert changed == {"liff"}  # the RC's bytes, CDF tables included, are the old file's
    assert contents["config"]["train"]["freeze_rc"] is True
    assert contents["config"]["train"]["el1_range"] == [0.25, 0.75]
    assert contents["config"]["train"]["init_source"].startswith("compass-q2-")
    assert contents["config"]["train"]["precision"] == "fp32"  # the trainer's default


def test_bf16_training_is_recorded_in_the_checkpoint_and_the_export(setup):
    from bench.train.precision import bf16_problem

    root = setup
    _run(*_common(root, "joint", "bf16", 1), "--quality", "2", "--precision", "bf16")
    expected = "fp32" if bf16_problem(torch.device("cpu")) else "bf16"
    assert torch.load(root / "bf16" / "last.pt", weights_only=True)["precision"] == expected
    _run("--stage", "export", "--from", str(root / "bf16" / "last.pt"))
    assert zoo.load_weights("compass", 2)[0]["config"]["train"]["precision"] == expected

    with pytest.raises(TrainingError, match="--freeze-rc applies to --stage joint only"):
        _run(*_common(root, "rc", "rc", 1), "--quality", "2", "--freeze-rc")


def test_a_widened_rc_codes_as_before_trains_and_exports_at_its_new_size(setup):
    import subprocess
    import sys

    root = setup
    _run(*_common(root, "joint", "small", 1), "--quality", "2")
    _run("--stage", "export", "--from", str(root / "small" / "last.pt"))
    wide_file = root / "wide-rc.pt"
    result = subprocess.run(
        [sys.executable, "-m", "bench.train", "widen", "--model", "compass", "--from", "zoo", "--quality", "2",
         "--N", "16", "--M", "24", "--out", str(wide_file)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    widened = torch.load(wide_file, weights_only=True)
    assert widened["config"]["rc_n"] == 16 and widened["config"]["rc_m"] == 24

    # the wider RC codes a residual as the exported one did
    small = residual.build_mean_scale(8, 12)
    small.load_state_dict(zoo.full_precision(
        {k[3:]: v for k, v in zoo.load_weights("compass", 2)[0]["state_dict"].items() if k.startswith("rc.")}))
    wide = residual.build_mean_scale(16, 24)
    wide.load_state_dict(widened["rc"])
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)) - 0.5
    with torch.no_grad():
        assert torch.allclose(small.eval()(x)["x_hat"], wide.eval()(x)["x_hat"], atol=1e-5)

    argv = [*_common(root, "joint", "wide", 1), "--quality", "2", "--init-from", str(wide_file), "--rc-size", "16,24"]
    _run(*argv)
    with pytest.raises(TrainingError, match="was trained with --rc-size"):  # a rerun must mean the same run
        _run(*[a for a in argv if a not in ("--rc-size", "16,24")])
    _run("--stage", "export", "--from", str(root / "wide" / "last.pt"), "--storage", "int8")
    contents = zoo.load_weights("compass", 2)[0]
    assert contents["config"]["compass"]["rc_n"] == 16 and contents["config"]["storage"] == "int8"
    assert contents["state_dict"]["rc.g_a.0.weight"].shape[0] == 16


def test_rc_size_must_be_two_positive_channel_counts():
    for text in ("128", "128,x", "0,192"):
        with pytest.raises(argparse.ArgumentTypeError):
            trainer.channel_pair(text)
    assert trainer.channel_pair("128,192") == (128, 192)
