"""compass@official: a checkpoint in the reference code's layout (module names, key names, file
names) loads into bench's COMPASS, and bench then computes what the reference networks compute."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.codec import CodecError
from bench.codecs.compass import official, residual
from bench.codecs.compass.liff import LIFF
from bench.codecs.compass.model import OFFICIAL_CONFIG, PAPER_CONFIG
from bench.codecs.compass.plugin import CompassCodec, to_tensor, to_uint8
from bench.registry import create_codec
from tests.codecs.compass.helpers import textured
from tests.codecs.published_fixtures import OfficialCoder, official_checkpoint, write_official_checkpoint

QUALITY = 2  # λ = 0.0035


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, Path, dict, dict]:
    """The folder a user drops the files in, the file, the checkpoint and its source modules."""
    root = tmp_path_factory.mktemp("compass-official")
    checkpoint, sources = official_checkpoint(seed=3)
    path = write_official_checkpoint(root, official.QUALITY_LAMBDAS[QUALITY], checkpoint)
    return root, path, checkpoint, sources


@pytest.fixture()
def codec(published, monkeypatch) -> CompassCodec:
    monkeypatch.setenv(official.ENV_VAR, str(published[0]))
    return create_codec("compass@official")


@pytest.fixture(scope="module")
def loaded(published):
    """bench's model from the file (loaded once for the module: paper-size networks)."""
    return official.load_official_model(QUALITY, root=published[0])


def test_file_layout_is_the_reference_one(published):
    root, path, _, _ = published
    assert path.relative_to(root) == Path("lambda_0.0035/best_model.pth.tar")
    assert official.expected_paths(4, root)[0] == root / "lambda_0.013" / "best_model_updated.pth.tar"
    assert official.available_qualities(root) == [QUALITY]


def test_key_mapping_covers_every_key_both_ways(published):
    _, _, checkpoint, _ = published
    liff = LIFF(PAPER_CONFIG.liff)
    mapped = [official.liff_key(k) for k in checkpoint["conti_sr_state_dict"]]
    assert None not in mapped and len(set(mapped)) == len(mapped)
    assert set(mapped) == set(liff.state_dict())
    assert official.liff_key("RDBs.3.convs.2.conv.0.weight") == "encoder.blocks.3.dense.2.conv.weight"
    assert official.liff_key("imnet.8.bias") == "mlp.8.bias"
    rc = residual.build_mean_scale(128, 192)
    coder_keys = {official.coder_key(k) for k in checkpoint["residual_state_dict"]}
    assert coder_keys == set(rc.state_dict())
    assert official.coder_key("entropy_bottleneck._matrix3") == "entropy_bottleneck.matrices.3"
    assert official.coder_key("module.g_a.0.weight") == "g_a.0.weight"
    # the paper configuration has the reference's parameter count, module by module
    source_liff = published[3]["liff"]
    assert sum(p.numel() for p in liff.parameters()) == sum(p.numel() for p in source_liff.parameters())


def test_loaded_weights_equal_the_checkpoint_tensors(published, loaded):
    _, _, checkpoint, _ = published
    model, _ = loaded
    liff_state = model.liff.state_dict()
    for key, value in checkpoint["conti_sr_state_dict"].items():
        assert torch.equal(liff_state[official.liff_key(key)], value), key
    rc_state = model.rc.state_dict()
    for key, value in checkpoint["residual_state_dict"].items():
        if key.rsplit(".", 1)[-1] not in official.ENTROPY_TABLES:
            assert torch.equal(rc_state[official.coder_key(key)], value), key
    assert model.config == OFFICIAL_CONFIG and model.padding == residual.OFFICIAL_PADDING


def test_liff_predicts_what_the_reference_liff_predicts(published, loaded):
    model, _ = loaded
    reference = published[3]["liff"]
    torch.manual_seed(0)
    x = torch.rand(1, 3, 15, 23)
    with torch.no_grad():
        for size in [(31, 47), (20, 40), (45, 23)]:  # odd previous sizes: no nearest-neighbour ties
            expected = reference(x, size)
            assert expected.abs().mean() > 1e-3
            assert torch.allclose(model.liff(x, size), expected, rtol=0, atol=2e-5), size
            assert torch.allclose(model.liff.forward_direct(x, size), expected, rtol=0, atol=2e-5), size


def test_liff_matches_the_reference_also_on_nearest_neighbour_ties(published, loaded):
    # 6 → 9 rows: the centres of rows 1, 4, 7 lie exactly half-way between two previous rows;
    # 4 → 10 columns: columns 2 and 7. compass@official looks them up as the reference's float32
    # grid_sample does (LiffConfig.nearest = "grid_sample"), so every pixel agrees; bench's own
    # exact rule (the upper index) differs from the reference on tie pixels only.
    model, _ = loaded
    reference = published[3]["liff"]
    x = torch.rand(1, 3, 6, 4, generator=torch.Generator().manual_seed(1))
    exact = LIFF(replace(model.liff.cfg, nearest="exact"))
    exact.load_state_dict(model.liff.state_dict())
    with torch.no_grad():
        ours, theirs, bench_rule = model.liff(x, (9, 10)), reference(x, (9, 10)), exact(x, (9, 10))
    assert model.liff.cfg.nearest == "grid_sample"
    assert (ours - theirs).abs().max() <= 2e-5
    differs = (bench_rule - theirs).abs().amax(1)[0] > 2e-5
    rows, cols = torch.arange(9), torch.arange(10)
    tie_rows = (2 * rows + 1) * 6 % (2 * 9) == 0
    tie_cols = (2 * cols + 1) * 4 % (2 * 10) == 0
    assert tie_rows.nonzero().view(-1).tolist() == [1, 4, 7] and tie_cols.nonzero().view(-1).tolist() == [2, 7]
    on_tie = tie_rows[:, None] | tie_cols[None, :]
    assert differs.any()
    assert not (differs & ~on_tie).any()


@pytest.mark.parametrize("part", ["bl", "rc"])
def test_coders_code_what_the_reference_codes(published, loaded, part):
    model, _ = loaded
    ours = getattr(model, part)
    reference = OfficialCoder(published[3][part])
    torch.manual_seed(2)
    x = torch.rand(1, 3, 45, 67) - (0.5 if part == "rc" else 0.0)
    with torch.no_grad():
        y_ref, z_ref, shape = reference.compress(x)
        expected = reference.decompress(y_ref, z_ref, shape)
        y_string, z_string = residual.compress(ours, x, residual.OFFICIAL_PADDING)
        decoded = residual.decompress(ours, y_string, z_string, (45, 67), residual.OFFICIAL_PADDING)
        assert (y_string, z_string) == (y_ref, z_ref)
        assert torch.allclose(decoded, expected, rtol=0, atol=1e-6)
        # bench's own padding scheme is a different function on odd sizes: the test can tell
        y_bench, _ = residual.compress(ours, x)
        assert y_bench != y_ref


def test_codec_decodes_what_the_reference_pipeline_reconstructs(codec, published):
    sources = published[3]
    layers = [textured(15, 23, seed=4), textured(31, 47, seed=4)]
    encoded = codec.encode(layers, QUALITY)
    decoded = create_codec("compass@official").decode(encoded.data)  # a fresh codec, quality from the header
    bl, rc = OfficialCoder(sources["bl"]), OfficialCoder(sources["rc"])
    with torch.no_grad():
        recon0 = bl.decompress(*bl.compress(to_tensor(layers[0], "cpu")))
        pred = sources["liff"](recon0, (31, 47))
        recon1 = pred + rc.decompress(*rc.compress(to_tensor(layers[1], "cpu") - pred))
    assert np.array_equal(decoded[0], to_uint8(recon0))
    diff = np.abs(decoded[1].astype(int) - to_uint8(recon1).astype(int))
    # LIFF's fast path rounds differently from the reference's direct formula (~1e-6), which may
    # move a residual latent across a rounding boundary; nothing more
    assert diff.max() <= 2 and (diff == 0).mean() > 0.99
    info = codec.weights_info()
    digest = hashlib.sha256(published[1].read_bytes()).hexdigest()
    assert info["source"] == "q2: official" and info["sha256"] == f"q2: {digest}"
    assert info["file"] == "q2: lambda_0.0035/best_model.pth.tar"
    assert codec._model(QUALITY).model_id == f"compass-official-q2-{digest[:8]}"


def test_weights_id_is_the_checkpoints_sha256_without_loading_it(published, monkeypatch, tiny_model):
    monkeypatch.setenv(official.ENV_VAR, str(published[0]))
    codec = create_codec("compass@official")
    assert codec.weights_id(QUALITY) == hashlib.sha256(published[1].read_bytes()).hexdigest()
    assert codec._models == {}  # hashed, not loaded
    assert codec.weights_id(1) is None  # no file for quality 1 in the folder
    assert CompassCodec(models={QUALITY: tiny_model}).weights_id(QUALITY) is None  # injected: no file


def test_partial_folder_and_unknown_quality(codec):
    status = codec.availability()
    assert status.available and "only qualities [2]" in status.reason and "lambda_0.0018" in status.reason
    with pytest.raises(CodecError, match="lambda_0.0067"):
        codec.encode([textured(15, 23)], 3)


def test_missing_files_make_it_unavailable_with_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(official.ENV_VAR, str(tmp_path / "empty"))
    status = create_codec("compass@official").availability()
    assert not status.available
    assert str(tmp_path / "empty") in status.reason and "BENCH_OFFICIAL_COMPASS" in status.reason
    assert "lambda_0.0018/best_model_updated.pth.tar (or best_model.pth.tar) for quality 1" in status.reason
    monkeypatch.delenv(official.ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert official.folder() == tmp_path / ".cache" / "bench" / "compass-official"
    assert not create_codec("compass@official").availability().available
    assert not create_codec("compass@elsewhere").availability().available


def test_updated_file_is_preferred(published, tmp_path):
    _, path, checkpoint, _ = published
    target = tmp_path / "lambda_0.0035"
    target.mkdir()
    (target / "best_model.pth.tar").write_bytes(b"not read")
    (target / "best_model_updated.pth.tar").write_bytes(path.read_bytes())
    assert official.find_checkpoint(QUALITY, tmp_path).name == "best_model_updated.pth.tar"


def _broken(checkpoint: dict, part: str, change) -> dict:
    copy = {k: dict(v) if isinstance(v, dict) else v for k, v in checkpoint.items()}
    change(copy[part])
    return copy


def test_mismatches_name_the_key_and_both_shapes(published):
    _, _, checkpoint, _ = published

    def narrow(state):
        state["g_a.0.weight"] = state["g_a.0.weight"][:64]

    with pytest.raises(official.OfficialCheckpointError,
                       match=r"residual_state_dict: 'g_a.0.weight' .* shape \(64, 3, 5, 5\), .* expects "
                             r"\(128, 3, 5, 5\)"):
        official.build_model(_broken(checkpoint, "residual_state_dict", narrow), "x")
    with pytest.raises(official.OfficialCheckpointError, match="no official key for bench's mlp.8.bias"):
        official.build_model(_broken(checkpoint, "conti_sr_state_dict", lambda s: s.pop("imnet.8.bias")), "x")

    def extra(state):
        state["tail.0.weight"] = torch.zeros(3)

    with pytest.raises(official.OfficialCheckpointError, match="'tail.0.weight' has no counterpart"):
        official.build_model(_broken(checkpoint, "conti_sr_state_dict", extra), "x")


def test_files_that_are_not_official_checkpoints_are_refused(tmp_path):
    path = write_official_checkpoint(tmp_path, 0.0018, {"state_dict": {}, "epoch": 3})
    with pytest.raises(official.OfficialCheckpointError, match="no base_state_dict, residual_state_dict"):
        official.load_official_model(1, root=tmp_path)
    path.write_bytes(b"garbage")
    with pytest.raises(official.OfficialCheckpointError, match="cannot read"):
        official.load_official_model(1, root=tmp_path)
