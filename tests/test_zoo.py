"""The weights zoo: export names files by hash, loads them verified, refuses missing or damaged ones."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
import torch

from bench import zoo
from bench.codecs.mean_scale import weights as ms_weights
from bench.codecs.mean_scale.export import export_checkpoint
from bench.train.__main__ import main as train_main


def make_checkpoint(
    path: Path, lmbda: float = 0.0067, step: int = 7, seed: int = 0, n: int = 16, m: int = 24
) -> Path:
    """A training checkpoint as `bench.train mean-scale` writes it, of a small random model.

    At initialisation g_a's latents are ~0.05, so every one would round to zero and the decoded
    image would not depend on the input; scaling g_a's last layer spreads them over several
    integers, as in a trained model (and likewise h_a's hyper-latents).
    """
    torch.manual_seed(seed)
    model = ms_weights.build_mean_scale(n, m)
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
    model = ms_weights.load_mean_scale(3, root=tmp_path)
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
    assert ms_weights.weights_path(3, root=tmp_path / "zoo") == second


def test_qualities_lookup_and_environment_override(tmp_path, monkeypatch):
    for quality, lmbda in ((1, 0.0018), (4, 0.013)):
        checkpoint = make_checkpoint(tmp_path / f"r{quality}" / "last.pt", lmbda)
        export_checkpoint(checkpoint, quality, tmp_path / "zoo")
    assert zoo.available_qualities("mean-scale", root=tmp_path / "zoo") == [1, 4]
    assert zoo.available_qualities("mean-scale", root=tmp_path / "nowhere") == []
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path / "zoo"))
    assert zoo.zoo_root() == tmp_path / "zoo"
    assert zoo.available_qualities("mean-scale") == [1, 4]
    assert ms_weights.weights_path(4).name.startswith("mean-scale-q4-")
    assert ms_weights.load_mean_scale(1).N == 16


def test_missing_weights_error_names_the_file_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        ms_weights.load_mean_scale(2, root=tmp_path)
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
        ms_weights.load_mean_scale(3, root=renamed.parent)

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.WeightsHashError):
        zoo.verify_hash(path)
    with pytest.raises(zoo.WeightsHashError):
        ms_weights.load_mean_scale(3, root=path.parent)


def test_two_files_for_one_quality_are_ambiguous(checkpoint, tmp_path):
    path = export_checkpoint(checkpoint, 3, tmp_path)
    shutil.copy(path, tmp_path / "mean-scale-q3-12345678.pth.tar")
    with pytest.raises(zoo.WeightsError, match="several"):
        ms_weights.weights_path(3, root=tmp_path)


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
    loaded = ms_weights.load_mean_scale(3, root=out).state_dict()
    assert not any(key.endswith(zoo.INT8_SCALE) for key in loaded)
    for key in ("g_a.0.weight", "g_s.0.weight", "h_s.4.weight"):
        step = source[key].abs().amax(dim=(1, 2, 3)) / 127  # per output channel
        error = (loaded[key] - source[key]).abs().amax(dim=(1, 2, 3))
        assert (error <= step / 2 + 1e-7).all() and error.max() > 0, key
    assert torch.equal(loaded["entropy_bottleneck.quantiles"], source["entropy_bottleneck.quantiles"])
    model = ms_weights.load_mean_scale(3, root=out)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    coded = model.compress(x)
    assert model.decompress(coded["strings"], coded["shape"])["x_hat"].shape == (1, 3, 64, 64)


def test_unknown_storage_is_refused():
    with pytest.raises(zoo.WeightsError, match="float16, int8"):
        zoo.compact_precision({"w": torch.ones(2, 2, 1, 1)}, set(), "int4")


# ----------------------------------------------------------------------------- the full-hash list
def test_the_committed_files_are_listed_with_their_full_sha256_and_pass():
    folder = zoo.committed_root()
    files = sorted(p.name for p in folder.glob("*.pth.tar"))
    listed = zoo.read_manifest(folder)
    expected = {f"{model}-q{quality}" for model in ("mean-scale", "compass") for quality in range(1, 5)}
    assert {name.rsplit("-", 1)[0] for name in files} == expected
    assert sorted(listed) == files  # no file unlisted, no stale line
    for name in files:
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert zoo.verify_hash(folder / name) == listed[name] == digest
    # sha256sum's own format, so `sha256sum -c SHA256SUMS.txt` checks it too
    lines = (folder / zoo.MANIFEST).read_text().splitlines()
    assert lines == [f"{listed[name]}  {name}" for name in files]


@pytest.fixture()
def committed(tmp_path, monkeypatch) -> Path:
    """A stand-in for bench/weights (the folder whose list must name every file)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(zoo, "committed_root", lambda: folder.resolve())
    return folder


def _forge_listed_hash(path: Path) -> str:
    """Rewrite the list so it records another SHA-256 with the same 8-hex prefix for ``path``: what
    a file forged to match the name (2^32 tries) looks like to the check."""
    real = hashlib.sha256(path.read_bytes()).hexdigest()
    forged = real[:8] + ("0" if real[8] != "0" else "1") + real[9:]
    manifest = path.parent / zoo.MANIFEST
    manifest.write_text(manifest.read_text().replace(real, forged))
    return forged


def test_a_file_whose_full_hash_is_not_the_listed_one_is_refused(checkpoint, committed):
    path = export_checkpoint(checkpoint, 3, committed)
    real = zoo.verify_hash(path)
    forged = _forge_listed_hash(path)
    for load in (lambda: zoo.verify_hash(path), lambda: ms_weights.load_mean_scale(3, root=committed)):
        with pytest.raises(zoo.WeightsManifestError) as caught:
            load()
        assert str(caught.value) == (f"{path} has SHA-256 {real}, but {committed / zoo.MANIFEST} records {forged}: "
                                     "the file was changed after it was exported; restore it (git checkout) or "
                                     "export it again")


def test_a_tampered_committed_file_is_refused(checkpoint, committed):
    path = export_checkpoint(checkpoint, 3, committed)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.WeightsHashError):  # the name's prefix already differs
        ms_weights.load_mean_scale(3, root=committed)


def test_a_committed_file_must_be_listed(checkpoint, committed, tmp_path):
    scratch = export_checkpoint(checkpoint, 3, tmp_path / "scratch")
    copied = committed / scratch.name
    shutil.copy(scratch, copied)  # copied by hand: no list in the committed folder yet
    with pytest.raises(zoo.WeightsManifestError, match=f"{copied} is not listed in {committed / zoo.MANIFEST}"):
        zoo.verify_hash(copied)
    # the list still names the file this one replaced (deleted by hand)
    (committed / zoo.MANIFEST).write_text(f"{'0' * 64}  mean-scale-q3-00000000.pth.tar\n")
    with pytest.raises(zoo.WeightsManifestError, match="python -m bench.zoo record"):
        zoo.load_weights("mean-scale", 3, committed)
    # recording it is the deliberate step that lets it load; the absent file's line goes
    assert zoo.main(["record", str(copied)]) == 0
    assert zoo.read_manifest(committed) == {copied.name: hashlib.sha256(copied.read_bytes()).hexdigest()}
    assert zoo.load_weights("mean-scale", 3, committed)[1] == copied


def test_record_refuses_a_file_whose_name_lies(checkpoint, tmp_path, capsys):
    path = export_checkpoint(checkpoint, 3, tmp_path / "zoo")
    liar = path.with_name("mean-scale-q3-00000000.pth.tar")
    path.rename(liar)
    assert zoo.main(["record", str(liar)]) == 2
    assert "00000000" in capsys.readouterr().err
    assert liar.name not in zoo.read_manifest(liar.parent)


def test_export_into_the_committed_folder_keeps_its_list(tmp_path, committed, monkeypatch):
    monkeypatch.delenv(zoo.ENV_VAR, raising=False)  # the default folder: bench/weights (here its stand-in)
    first = make_checkpoint(tmp_path / "a" / "last.pt", step=3)
    assert train_main(["export", "--checkpoint", str(first), "--quality", "3"]) == 0
    q1 = export_checkpoint(make_checkpoint(tmp_path / "q1" / "last.pt", lmbda=0.0018), 1)
    old = zoo.find_weights("mean-scale", 3)
    second = make_checkpoint(tmp_path / "b" / "last.pt", step=5)
    assert train_main(["export", "--checkpoint", str(second), "--quality", "3"]) == 0
    new = zoo.find_weights("mean-scale", 3)
    assert new != old and not old.exists() and new.parent == committed
    # the replaced file's line went with it; the other quality's stays
    assert zoo.read_manifest(committed) == {q1.name: zoo.verify_hash(q1), new.name: zoo.verify_hash(new)}
    assert ms_weights.load_mean_scale(3).N == 16


def test_outside_the_committed_folder_a_listed_file_is_checked_and_an_unlisted_one_by_its_name(checkpoint,
                                                                                             tmp_path):
    scratch = tmp_path / "scratch"
    path = export_checkpoint(checkpoint, 3, scratch)
    assert zoo.read_manifest(scratch) == {path.name: zoo.verify_hash(path)}  # exports keep a list everywhere
    other = tmp_path / "copied"
    other.mkdir()
    shutil.copy(path, other / path.name)  # a file copied by hand into a folder without a list
    assert zoo.read_manifest(other) is None
    assert zoo.load_weights("mean-scale", 3, other)[2] == zoo.verify_hash(path)
    _forge_listed_hash(path)
    with pytest.raises(zoo.WeightsManifestError, match="records"):
        zoo.load_weights("mean-scale", 3, scratch)


def test_a_malformed_list_is_refused_by_line(checkpoint, tmp_path):
    path = export_checkpoint(checkpoint, 3, tmp_path)
    (tmp_path / zoo.MANIFEST).write_text(f"{zoo.verify_hash(path)}  {path.name}\nnot a line\n")
    with pytest.raises(zoo.WeightsManifestError, match=rf"{zoo.MANIFEST}:2 is not a"):
        zoo.verify_hash(path)


# ----------------------------------------------------------------------------- no code from a file
def test_a_zoo_file_that_would_run_code_is_refused_unrun(tmp_path, committed, monkeypatch):
    from tests.pickle_payload import hostile_zoo_file

    marker = tmp_path / "ran"
    # a scratch folder: the name's prefix is right, so only weights_only stands between it and exec
    evil = hostile_zoo_file(tmp_path / "scratch", "mean-scale", 3, marker)
    monkeypatch.setenv(zoo.ENV_VAR, str(evil.parent))
    for load in (lambda: zoo.load_weights("mean-scale", 3), lambda: ms_weights.load_mean_scale(3)):
        with pytest.raises(zoo.WeightsError) as caught:
            load()
        assert str(caught.value).startswith(f"{evil} was not loaded: it asks for the Python object exec")
        assert "weights_only" not in str(caught.value) and caught.value.__cause__ is None
    assert not marker.exists()
    # in the committed folder it is refused before any unpickling: no list names it
    planted = hostile_zoo_file(committed, "mean-scale", 3, marker)
    with pytest.raises(zoo.WeightsManifestError, match="is not listed"):
        zoo.load_weights("mean-scale", 3, committed)
    zoo.record_in_manifest(planted)  # even listed, it is read without running anything
    with pytest.raises(zoo.WeightsError, match="was not loaded"):
        zoo.load_weights("mean-scale", 3, committed)
    assert not marker.exists()
