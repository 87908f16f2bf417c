"""The weights zoo: export names files by hash, loads them verified, refuses missing or damaged ones."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
import torch

from bench import zoo
from bench.train.__main__ import main as train_main
from bench.train.export import export_checkpoint


def make_checkpoint(
    path: Path, lmbda: float = 0.0067, step: int = 7, seed: int = 0, n: int = 16, m: int = 24
) -> Path:
    """A training checkpoint as `bench.train mean-scale` writes it, of a small random model.

    At initialisation g_a's latents are ~0.05, so every one would round to zero and the decoded
    image would not depend on the input; scaling g_a's last layer spreads them over several
    integers, as in a trained model (and likewise h_a's hyper-latents).
    """
    torch.manual_seed(seed)
    model = zoo.build_mean_scale(n, m)
    with torch.no_grad():
        model.g_a[6].weight.mul_(100.0)
        model.h_a[4].weight.mul_(10.0)
    config = {"N": n, "M": m, "lmbda": lmbda, "crop": 64, "batch": 2, "lr": 5e-4, "steps": 100}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "step": step, "config": config}, path)
    return path


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    return make_checkpoint(tmp_path / "run" / "last.pt")


def test_export_command_writes_hash_named_half_precision_file(checkpoint, tmp_path, capsys):
    out = tmp_path / "zoo"
    command = ["export", "--checkpoint", str(checkpoint), "--quality", "3", "--out-dir", str(out)]
    assert train_main(command) == 0
    [path] = out.glob("*.pth.tar")
    assert sorted(f.name for f in out.iterdir()) == [zoo.MANIFEST, path.name]  # and the list of full hashes
    match = re.fullmatch(r"mean-scale-q3-([0-9a-f]{8})\.pth\.tar", path.name)
    assert match and hashlib.sha256(path.read_bytes()).hexdigest()[:8] == match.group(1)
    printed = capsys.readouterr().out
    assert str(path) in printed and "113,095 parameters" in printed and "MB" in printed

    contents = torch.load(path, weights_only=True)
    state, config = contents["state_dict"], contents["config"]
    assert config["N"] == 16 and config["M"] == 24 and config["lmbda"] == 0.0067
    assert config["quality"] == 3 and config["steps"] == 7 and config["train"]["crop"] == 64
    assert state["g_a.0.weight"].dtype == torch.float16 and state["h_s.4.bias"].dtype == torch.float16
    for key in ("g_a.1.gamma", "g_s.1.beta_reparam.pedestal", "entropy_bottleneck.quantiles",
                "entropy_bottleneck.matrices.0", "gaussian_conditional.scale_table"):
        assert state[key].dtype == torch.float32, key
    assert set(config["float32_keys"]) == {k for k, v in state.items() if v.dtype == torch.float32}
    for key in ("entropy_bottleneck._quantized_cdf", "gaussian_conditional._quantized_cdf"):
        assert state[key].dtype == torch.int32 and state[key].numel() > 0


def test_loaded_model_is_ready_and_matches_checkpoint(checkpoint, tmp_path):
    export_checkpoint(checkpoint, 3, tmp_path)
    model = zoo.load_mean_scale(3, root=tmp_path)
    assert not model.training
    source = torch.load(checkpoint, weights_only=True)["model"]
    loaded = model.state_dict()
    # float16 weights come back as their float16 rounding; float32 ones exactly
    assert torch.equal(loaded["g_s.0.weight"], source["g_s.0.weight"].half().float())
    assert not torch.equal(loaded["g_s.0.weight"], source["g_s.0.weight"])
    assert torch.equal(loaded["g_a.1.gamma"], source["g_a.1.gamma"])
    assert torch.equal(loaded["entropy_bottleneck.quantiles"], source["entropy_bottleneck.quantiles"])
    # the stored CDF tables are exactly what update(force=True) computes here
    stored = {k: v.clone() for k, v in loaded.items() if k.endswith(zoo.CDF_BUFFERS)}
    assert len(stored) == 6
    model.update(force=True)
    assert all(torch.equal(stored[k], model.state_dict()[k]) for k in stored)
    out = model.compress(torch.rand(1, 3, 64, 64))
    assert model.decompress(out["strings"], out["shape"])["x_hat"].shape == (1, 3, 64, 64)


def test_reexport_replaces_the_older_file(tmp_path):
    first = export_checkpoint(make_checkpoint(tmp_path / "a" / "last.pt", step=3), 3, tmp_path / "zoo")
    second = export_checkpoint(make_checkpoint(tmp_path / "b" / "last.pt", step=5), 3, tmp_path / "zoo")
    assert first != second and not first.exists() and second.exists()
    assert zoo.weights_path(3, root=tmp_path / "zoo") == second


def test_qualities_lookup_and_environment_override(tmp_path, monkeypatch):
    for quality, lmbda in ((1, 0.0018), (4, 0.013)):
        checkpoint = make_checkpoint(tmp_path / f"r{quality}" / "last.pt", lmbda)
        export_checkpoint(checkpoint, quality, tmp_path / "zoo")
    assert zoo.available_qualities(root=tmp_path / "zoo") == [1, 4]
    assert zoo.available_qualities(root=tmp_path / "nowhere") == []
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path / "zoo"))
    assert zoo.zoo_root() == tmp_path / "zoo"
    assert zoo.available_qualities() == [1, 4]
    assert zoo.weights_path(4).name.startswith("mean-scale-q4-")
    assert zoo.load_mean_scale(1).N == 16


def test_missing_weights_error_names_the_file_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        zoo.load_mean_scale(2, root=tmp_path)
    message = str(caught.value)
    assert "mean-scale-q2-<sha256[:8]>.pth.tar" in message and str(tmp_path) in message
    command = "python -m bench.train export --checkpoint checkpoints/ms-64x96-l0.0035/last.pt --quality 2"
    assert command in message


def test_hash_mismatch_and_damage_are_refused(checkpoint, tmp_path):
    path = export_checkpoint(checkpoint, 3, tmp_path / "zoo")
    assert zoo.verify_hash(path) == hashlib.sha256(path.read_bytes()).hexdigest()

    renamed = tmp_path / "other" / "mean-scale-q3-00000000.pth.tar"
    renamed.parent.mkdir()
    shutil.copy(path, renamed)
    with pytest.raises(zoo.WeightsHashError, match="00000000"):
        zoo.load_mean_scale(3, root=renamed.parent)

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.WeightsHashError):
        zoo.verify_hash(path)
    with pytest.raises(zoo.WeightsHashError):
        zoo.load_mean_scale(3, root=path.parent)


def test_two_files_for_one_quality_are_ambiguous(checkpoint, tmp_path):
    path = export_checkpoint(checkpoint, 3, tmp_path)
    shutil.copy(path, tmp_path / "mean-scale-q3-12345678.pth.tar")
    with pytest.raises(zoo.WeightsError, match="several"):
        zoo.weights_path(3, root=tmp_path)


def test_export_refuses_a_checkpoint_of_another_lambda(checkpoint, tmp_path, capsys):
    with pytest.raises(ValueError, match="--quality 3"):
        export_checkpoint(checkpoint, 1, tmp_path)
    status = train_main(["export", "--checkpoint", str(checkpoint), "--quality", "1", "--out-dir", str(tmp_path)])
    assert status == 2 and "λ=0.0067" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.pth.tar"))


def test_generic_lookup_serves_other_models(tmp_path):
    path = zoo.write_weights("compass", 2, {"w": torch.arange(4.0)}, {"N": 1}, tmp_path)
    assert re.fullmatch(r"compass-q2-[0-9a-f]{8}\.pth\.tar", path.name)
    assert zoo.find_weights("compass", 2, tmp_path) == path
    assert zoo.available_qualities("compass", tmp_path) == [2]
    assert zoo.available_qualities("mean-scale", tmp_path) == []
    contents, found, digest = zoo.load_weights("compass", 2, tmp_path)
    assert found == path and digest.startswith(path.name[11:19])
    assert torch.equal(contents["state_dict"]["w"], torch.arange(4.0))
    with pytest.raises(FileNotFoundError, match="compass-q3-"):
        zoo.find_weights("compass", 3, tmp_path, how_to="train it")


def test_half_precision_refuses_values_beyond_float16():
    state = {"a": torch.tensor([1.5]), "b": torch.tensor([1e-20]), "i": torch.tensor([3])}
    converted = zoo.half_precision(state, keep_fp32={"b"})
    assert converted["a"].dtype == torch.float16 and converted["b"].dtype == torch.float32
    assert converted["i"].dtype == torch.int64
    with pytest.raises(zoo.WeightsError, match="float16"):
        zoo.half_precision({"big": torch.tensor([1e6])}, keep_fp32=set())


def test_int8_storage_halves_the_convolutions_and_loads_within_half_a_step(checkpoint, tmp_path, capsys):
    out = tmp_path / "zoo8"
    command = ["export", "--checkpoint", str(checkpoint), "--quality", "3", "--out-dir", str(out),
               "--storage", "int8"]
    assert train_main(command) == 0
    assert "int8" in capsys.readouterr().out
    [path] = out.glob("*.pth.tar")
    half = torch.load(export_checkpoint(checkpoint, 3, tmp_path / "zoo16"), weights_only=True)["state_dict"]
    contents = torch.load(path, weights_only=True)
    state = contents["state_dict"]
    convolutions = [key for key, value in half.items() if value.dim() == 4 and value.dtype == torch.float16]
    nbytes = lambda d: sum(d[key].nbytes for key in convolutions)  # noqa: E731
    assert nbytes(state) * 2 == nbytes(half)  # (the small model's file is mostly its CDF tables)
    assert contents["config"]["storage"] == "int8" and zoo.storage_of(state) == "int8"
    assert state["g_a.0.weight"].dtype == torch.int8 and state["g_a.0.weight.int8_scale"].shape == (16,)
    assert state["g_a.0.bias"].dtype == torch.float16 and state["g_a.1.gamma"].dtype == torch.float32

    source = torch.load(checkpoint, weights_only=True)["model"]
    loaded = zoo.load_mean_scale(3, root=out).state_dict()
    assert not any(key.endswith(zoo.INT8_SCALE) for key in loaded)
    for key in ("g_a.0.weight", "g_s.0.weight", "h_s.4.weight"):
        step = source[key].abs().amax(dim=(1, 2, 3)) / 127  # per output channel
        error = (loaded[key] - source[key]).abs().amax(dim=(1, 2, 3))
        assert (error <= step / 2 + 1e-7).all() and error.max() > 0, key
    assert torch.equal(loaded["entropy_bottleneck.quantiles"], source["entropy_bottleneck.quantiles"])
    model = zoo.load_mean_scale(3, root=out)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    coded = model.compress(x)
    assert model.decompress(coded["strings"], coded["shape"])["x_hat"].shape == (1, 3, 64, 64)


def test_unknown_storage_is_refused():
    with pytest.raises(zoo.WeightsError, match="float16, int8"):
        zoo.compact_precision({"w": torch.ones(2, 2, 1, 1)}, set(), "int4")
