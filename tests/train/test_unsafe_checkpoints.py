"""Training never unpickles code (issue 27): checkpoints and ``--init-from``/``--bl``/``--from``
files load with ``weights_only=True``. A pickle that would run code is refused by ``export``,
``widen --from``, a resume of either trainer and the compass stages, naming the file and without
torch's advice to load it unsafely; what the trainers write needs nothing beyond torch's defaults."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from bench import zoo
from bench.codecs.mean_scale import weights as ms_weights
from bench.errors import TrainingError
from bench.train.__main__ import main as train_main
from bench.train.checkpoint import load_checkpoint
from tests.pickle_payload import Payload, hostile_checkpoint, hostile_zoo_file

MEAN_SCALE = ["mean-scale", "--lmbda", "0.0067", "--N", "16", "--M", "24", "--crop", "64", "--batch", "2",
              "--threads", "1", "--val-images", "0", "--decay-fraction", "0"]


@pytest.fixture(autouse=True)
def _keep_threads() -> Iterator[None]:
    # the trainers run in this process and set torch's thread count; later tests get theirs back
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "train").mkdir()
    (root / "kodak").mkdir()
    for index in range(2):
        Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8)).save(root / "train" / f"t{index}.png")
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / "kodak" / "kodim01.png")
    return root


@pytest.fixture()
def bl_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch zoo holding a tiny mean-scale q2 file (the BL of compass's rc and joint stages)."""
    torch.manual_seed(0)
    bl = ms_weights.build_mean_scale(8, 12)
    bl.update(force=True)
    weights = tmp_path / "weights"
    zoo.write_weights("mean-scale", 2, zoo.half_precision(bl.state_dict(), zoo.precision_keys(bl)),
                      {"N": 8, "M": 12}, weights)
    monkeypatch.setenv(zoo.ENV_VAR, str(weights))
    return weights


def compass(data_root: Path, out: Path, stage: str, steps: int = 1, *extra: str) -> list[str]:
    return ["compass", "--stage", stage, "--config", "tiny", "--steps", str(steps), "--batch", "2", "--crop", "32",
            "--data-root", str(data_root), "--out", str(out), "--threads", "1", "--val-images", "0",
            "--decay-fraction", "0", *extra]


def refused(capsys: pytest.CaptureFixture[str], status: int, marker: Path, path: Path) -> str:
    """The command failed with one line that names the file and the object it asked for, the payload
    never ran, and torch's advice to reload unsafely is not repeated."""
    err = capsys.readouterr().err
    assert status == 2
    assert not marker.exists()
    assert f"{path} was not loaded: it asks for the Python object exec" in err, err
    assert "weights_only" not in err and "Traceback" not in err
    return err


def test_the_payload_runs_when_unpickled_unsafely(tmp_path: Path) -> None:
    # the files below would have run it: plain unpickling (torch.load without weights_only) executes it
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.read_text() == "payload ran"


def test_python_m_bench_train_export_refuses_a_hostile_checkpoint(tmp_path: Path) -> None:
    marker, out = tmp_path / "ran", tmp_path / "zoo"
    evil = hostile_checkpoint(tmp_path / "EVIL.pt", marker)
    result = subprocess.run([sys.executable, "-m", "bench.train", "export", "--checkpoint", str(evil),
                             "--quality", "3", "--out-dir", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and not marker.exists()
    assert result.stderr.startswith(f"python -m bench.train export: {evil} was not loaded: it asks for the Python "
                                    "object exec, which could run code"), result.stderr
    assert "weights_only" not in result.stderr and not out.exists()


def test_widen_refuses_a_hostile_checkpoint_and_a_hostile_zoo_file(tmp_path: Path, capsys) -> None:
    marker, out = tmp_path / "ran", tmp_path / "wide.pt"
    evil = hostile_checkpoint(tmp_path / "EVIL.pt", marker)
    for model in ("mean-scale", "compass"):
        status = train_main(["widen", "--model", model, "--from", str(evil), "--out", str(out)])
        refused(capsys, status, marker, evil)
    downloaded = hostile_zoo_file(tmp_path / "downloads", "mean-scale", 3, marker)  # a name that passes its check
    refused(capsys, train_main(["widen", "--from", str(downloaded), "--out", str(out)]), marker, downloaded)
    assert not out.exists()


def test_widen_from_zoo_refuses_a_hostile_zoo_file(tmp_path: Path, monkeypatch, capsys) -> None:
    marker = tmp_path / "ran"
    evil = hostile_zoo_file(tmp_path / "zoo", "mean-scale", 3, marker)
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path / "zoo"))
    status = train_main(["widen", "--from", "zoo", "--quality", "3", "--out", str(tmp_path / "w.pt")])
    refused(capsys, status, marker, evil)


def test_a_mean_scale_resume_refuses_a_hostile_last_pt(data_root: Path, tmp_path: Path, capsys) -> None:
    marker, run = tmp_path / "ran", tmp_path / "run"
    evil = hostile_checkpoint(run / "last.pt", marker, config={"N": 16, "M": 24})
    before = evil.read_bytes()
    status = train_main([*MEAN_SCALE, "--steps", "1", "--data-root", str(data_root), "--out", str(run)])
    refused(capsys, status, marker, evil)
    assert evil.read_bytes() == before  # left as it was for the user to look at, not overwritten


def test_mean_scale_init_from_refuses_a_hostile_file(data_root: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "ran"
    evil = hostile_checkpoint(tmp_path / "EVIL.pt", marker)
    status = train_main([*MEAN_SCALE, "--steps", "1", "--data-root", str(data_root), "--out", str(tmp_path / "run"),
                         "--init-from", str(evil)])
    refused(capsys, status, marker, evil)


def test_compass_resume_and_every_file_option_refuse_a_hostile_file(data_root, tmp_path, bl_zoo, capsys) -> None:
    marker = tmp_path / "ran"
    resumed = hostile_checkpoint(tmp_path / "liff" / "last.pt", marker, stage="liff", config_name="tiny")
    refused(capsys, train_main(compass(data_root, tmp_path / "liff", "liff")), marker, resumed)
    evil = hostile_checkpoint(tmp_path / "EVIL.pt", marker)
    for argv in (compass(data_root, tmp_path / "a", "liff", 1, "--liff-from", str(evil)),
                 compass(data_root, tmp_path / "b", "rc", 1, "--bl", str(evil), "--lmbda", "0.0035"),
                 compass(data_root, tmp_path / "c", "rc", 1, "--quality", "2", "--rc-from", str(evil)),
                 compass(data_root, tmp_path / "d", "joint", 1, "--quality", "2", "--init-from", str(evil)),
                 ["compass", "--stage", "export", "--from", str(evil)]):
        refused(capsys, train_main(argv), marker, evil)


def test_a_damaged_checkpoint_is_a_training_error_naming_the_file(tmp_path: Path, capsys) -> None:
    torn = tmp_path / "last.pt"
    torch.save({"step": 1, "model": {"w": torch.ones(100)}}, torn)
    torn.write_bytes(torn.read_bytes()[:200])
    with pytest.raises(TrainingError, match=f"cannot read {torn}: PytorchStreamReader failed"):
        load_checkpoint(torn)
    torch.save([1, 2], tmp_path / "list.pt")
    assert train_main(["widen", "--from", str(tmp_path / "list.pt"), "--out", str(tmp_path / "w.pt")]) == 2
    expected = f"python -m bench.train widen: --from: {tmp_path / 'list.pt'} holds a list, not weights\n"
    assert capsys.readouterr().err == expected


def _assert_plain(path: Path) -> dict:
    """The checkpoint asks for no global outside torch's weights-only allowlist, and loads as bench loads it."""
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    state = load_checkpoint(path)
    assert isinstance(state, dict)
    return state


def test_what_the_mean_scale_trainer_and_widen_write_loads_with_weights_only(data_root, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert train_main([*MEAN_SCALE, "--steps", "1", "--data-root", str(data_root), "--out", str(run)]) == 0
    state = _assert_plain(run / "last.pt")
    assert state["step"] == 1 and state["config"]["N"] == 16 and state["args"]["crop"] == 64
    assert state["torch_rng"].dtype == torch.uint8
    assert state["sampler"]["rng"]["bit_generator"] == "PCG64"  # numpy's state: a dict of ints and strings
    assert isinstance(state["sampler"]["rng"]["state"]["state"], int)
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert len(state["optimizer"]["state"]) == len(state["optimizer"]["param_groups"][0]["params"])
    assert train_main([*MEAN_SCALE, "--steps", "2", "--data-root", str(data_root), "--out", str(run)]) == 0
    assert "resumed" in capsys.readouterr().out and _assert_plain(run / "last.pt")["step"] == 2
    wide = tmp_path / "wide.pt"
    assert train_main(["widen", "--from", str(run / "last.pt"), "--N", "24", "--M", "32", "--out", str(wide)]) == 0
    assert _assert_plain(wide)["model"]["g_a.6.weight"].shape[0] == 32


def test_what_the_compass_trainer_writes_loads_with_weights_only_and_exports_into_the_list(
        data_root, tmp_path, bl_zoo, capsys) -> None:
    run = tmp_path / "joint"
    assert train_main(compass(data_root, run, "joint", 1, "--quality", "2")) == 0
    state = _assert_plain(run / "last.pt")
    assert state["stage"] == "joint" and state["step"] == 1 and state["config_name"] == "tiny"
    assert state["size_rng"]["bit_generator"] == "PCG64" and state["torch_rng"].dtype == torch.uint8
    assert state["aux_optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert state["bl_sha256"] == zoo.read_manifest(bl_zoo)[zoo.find_weights("mean-scale", 2).name]
    assert train_main(compass(data_root, run, "joint", 2, "--quality", "2")) == 0
    assert "resumed" in capsys.readouterr().out and _assert_plain(run / "last.pt")["step"] == 2
    # the export records the new file's full hash beside the BL's in the scratch zoo's list
    assert train_main(["compass", "--stage", "export", "--from", str(run / "last.pt")]) == 0
    exported = zoo.find_weights("compass", 2)
    listed = zoo.read_manifest(bl_zoo)
    assert sorted(listed) == sorted(p.name for p in bl_zoo.glob("*.pth.tar"))
    assert listed[exported.name] == zoo.verify_hash(exported)
