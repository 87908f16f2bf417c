"""A bench COMPASS of the paper's size written as an official checkpoint reads back the same
(``official.write_official``, ``python -m bench.train export --format official``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.codecs.compass import official, residual
from bench.codecs.compass.liff import LIFF
from bench.codecs.compass.model import OFFICIAL_CONFIG, TINY_CONFIG, CompassModel


def _model(cfg, n: int, m: int, seed: int) -> CompassModel:
    torch.manual_seed(seed)
    bl, rc = residual.build_mean_scale(n, m), residual.build_mean_scale(n, m)
    with torch.no_grad():  # away from the init, so that a lost or swapped tensor shows
        for module in (bl, rc):
            for parameter in module.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.01)
    return CompassModel(bl, LIFF(cfg.liff), rc, cfg, model_id="test")


def test_a_paper_sized_compass_round_trips_through_the_official_format(tmp_path: Path) -> None:
    model = _model(OFFICIAL_CONFIG, OFFICIAL_CONFIG.rc_n, OFFICIAL_CONFIG.rc_m, seed=3)
    path = official.write_official(model, 2, tmp_path)
    assert path == tmp_path / "lambda_0.0035" / "best_model_updated.pth.tar"
    assert official.find_checkpoint(2, tmp_path) == path  # where compass@official looks
    contents, _ = official.read_checkpoint(path)
    # the reference's own names: its CompressAI's entropy-bottleneck parameters, its LIFF modules
    assert "entropy_bottleneck._matrix0" in contents["base_state_dict"]
    assert "SFENet1.weight" in contents["conti_sr_state_dict"] and "imnet.0.weight" in contents["conti_sr_state_dict"]
    assert "gaussian_conditional._quantized_cdf" in contents["residual_state_dict"]  # update.py's tables
    back = official.build_model(contents, "round-trip")
    for part in ("bl", "liff", "rc"):
        ours, theirs = getattr(model, part).state_dict(), getattr(back, part).state_dict()
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), (part, key)


def test_a_compass_of_another_size_is_refused_with_what_the_official_code_builds(tmp_path: Path) -> None:
    model = _model(TINY_CONFIG, TINY_CONFIG.rc_n, TINY_CONFIG.rc_m, seed=0)
    with pytest.raises(official.OfficialCheckpointError, match="only the paper's COMPASS"):
        official.write_official(model, 1, tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_export_command_refuses_what_is_not_a_joint_compass_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "last.pt"
    torch.save({"stage": "rc", "quality": 1}, checkpoint)
    done = subprocess.run([sys.executable, "-m", "bench.train", "export", "--format", "official", "--checkpoint",
                           str(checkpoint), "--quality", "1", "--out-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "is a rc checkpoint; export a joint one" in done.stderr and "Traceback" not in done.stderr


def test_the_export_command_writes_a_joint_checkpoint_over_the_zoo_bl_as_an_official_one(tmp_path: Path) -> None:
    from bench import zoo
    from bench.codecs.mean_scale import weights as ms_weights

    _, _, bl_digest = zoo.load_weights("mean-scale", 1)
    model = _model(OFFICIAL_CONFIG, OFFICIAL_CONFIG.rc_n, OFFICIAL_CONFIG.rc_m, seed=5)
    checkpoint = tmp_path / "last.pt"
    torch.save({"stage": "joint", "quality": 1, "bl_sha256": bl_digest, "config": OFFICIAL_CONFIG.to_dict(),
                "liff": model.liff.state_dict(), "rc": model.rc.state_dict()}, checkpoint)
    out = tmp_path / "official"
    done = subprocess.run([sys.executable, "-m", "bench.train", "export", "--format", "official", "--checkpoint",
                           str(checkpoint), "--quality", "1", "--out-dir", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    contents, _ = official.read_checkpoint(out / "lambda_0.0018" / "best_model_updated.pth.tar")
    back = official.build_model(contents, "exported")
    for part in ("liff", "rc"):
        ours, theirs = getattr(model, part).state_dict(), getattr(back, part).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours if not k.endswith(official.ENTROPY_TABLES))
    bl, _, _ = zoo.load_weights("mean-scale", 1)
    zoo_bl = ms_weights.mean_scale_from_weights(bl)
    assert torch.equal(back.bl.g_a[0].weight, zoo_bl.g_a[0].weight)  # the zoo's BL, as trained over
