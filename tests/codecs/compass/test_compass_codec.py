"""The ``compass`` plugin: scalable round trips, bit-exactness, odd sizes, weights handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench import zoo
from bench.codec import Codec, CodecError
from bench.codecs.compass import residual
from bench.codecs.compass.model import CONFIGS, OFFICIAL_CONFIG, CompassModel, config_summary
from bench.codecs.compass.plugin import CompassCodec, load_zoo_model
from bench.codecs.mean_scale import plugin as mean_scale
from bench.registry import codec_class, create_codec
from tests.codecs.compass.helpers import make_tiny_model, pyramid, textured


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def test_registered_as_scalable():
    cls = codec_class("compass")
    assert cls is CompassCodec and cls.info.scalable and cls.info.default_qualities == (1, 2, 3, 4)
    assert isinstance(create_codec("compass"), Codec)


@pytest.mark.parametrize(
    "top_size, ratios",
    [
        ((45, 67), [2.7]),
        ((45, 67), [1.33, 1.5]),
        ((48, 64), [2.0]),
        ((40, 52), [1.2, 1.3, 1.4]),
        ((511, 767), [2.7]),
    ],
)
def test_round_trip_prefixes_and_bit_exactness(tiny_model, top_size, ratios):
    codec = CompassCodec(models={2: tiny_model})
    layers = pyramid(textured(*top_size), ratios)
    first = codec.encode(layers, 2)
    second = codec.encode(layers, 2)
    assert first.data == second.data  # deterministic encoder
    assert sum(first.layer_bytes) == len(first.data) and len(first.layer_bytes) == len(layers)
    full = codec.decode(first.data)
    again = codec.decode(first.data)
    assert len(full) == len(layers)
    for decoded, original, repeat in zip(full, layers, again):
        assert decoded.dtype == np.uint8 and decoded.shape == original.shape
        assert np.array_equal(decoded, repeat)
    for k in range(1, len(layers) + 1):
        prefix = codec.decode(first.data, k)
        assert len(prefix) == k
        assert all(np.array_equal(a, b) for a, b in zip(prefix, full))


def test_bitstreams_and_decodes_do_not_depend_on_the_callers_thread_count(tiny_model):
    codec = CompassCodec(models={2: tiny_model})
    layers = pyramid(textured(48, 72, seed=3), [1.5, 1.6])
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        enc = codec.encode(layers, 2)
        results.append((enc.data, codec.decode(enc.data)))
        assert torch.get_num_threads() == threads  # the caller's setting is restored
    assert results[0][0] == results[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(results[0][1], results[1][1]))


def test_decoder_reproduces_the_encoder_reconstructions(tiny_model):
    # the encoder predicts each EL from the *decoded* previous layer, so the two sides agree bit-exactly
    layers = pyramid(textured(45, 67, seed=4), [1.33, 1.5])
    tensors = [torch.from_numpy(im.copy()).permute(2, 0, 1)[None].float() / 255 for im in layers]
    payloads, encoder_recons = tiny_model.encode_layers(tensors)
    decoder_recons = tiny_model.decode_layers(payloads, [im.shape[:2] for im in layers])
    for a, b in zip(encoder_recons, decoder_recons):
        assert torch.equal(a, b)


def test_recursion_shares_one_liff_and_one_rc(tiny_model):
    calls = {"liff": 0}
    hook = tiny_model.liff.register_forward_hook(lambda *args: calls.__setitem__("liff", calls["liff"] + 1))
    try:
        layers = pyramid(textured(40, 52), [1.2, 1.3, 1.4])
        CompassCodec(models={1: tiny_model}).encode(layers, 1)
    finally:
        hook.remove()
    assert calls["liff"] == 3  # one prediction per EL, all by the same module


def test_output_is_clamped_uint8_even_when_reconstruction_overshoots():
    model = make_tiny_model(seed=5)
    with torch.no_grad():
        model.liff.mlp[-1].bias.add_(5.0)  # predictions far outside [0, 1]
    codec = CompassCodec(models={2: model})
    layers = pyramid(textured(24, 32), [2.0])
    decoded = codec.decode(codec.encode(layers, 2).data)
    assert decoded[1].dtype == np.uint8 and decoded[1].min() >= 0 and decoded[1].max() <= 255


def test_residual_chunk_changes_the_prediction():
    # the EL reconstruction is prediction + decoded residual, not the bare prediction
    model = make_tiny_model(seed=6)
    layers = pyramid(textured(40, 56, seed=2), [2.0])
    tensors = [torch.from_numpy(im.copy()).permute(2, 0, 1)[None].float() / 255 for im in layers]
    _, recons = model.encode_layers(tensors)
    prediction = model.liff(recons[0], (40, 56))
    assert recons[1].shape == prediction.shape
    assert not torch.equal(recons[1], prediction)  # the residual chunk carries information


def test_prediction_report_compares_liff_with_bicubic_from_the_same_reconstruction(tiny_model):
    codec = CompassCodec(models={2: tiny_model})
    layers = pyramid(textured(45, 67), [1.33, 1.5])
    report = codec.prediction_report(layers, 2)
    assert [r["layer"] for r in report] == [1, 2]
    tensors = [torch.from_numpy(im.copy()).permute(2, 0, 1)[None].float() / 255 for im in layers]
    _, recons = tiny_model.encode_layers(tensors)
    bicubic = torch.nn.functional.interpolate(recons[0], size=(30, 44), mode="bicubic", align_corners=False)
    expected = _psnr((bicubic[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy(), layers[1])
    assert report[0]["psnr_bicubic"] == pytest.approx(expected)
    assert report[0]["psnr_liff"] != pytest.approx(report[0]["psnr_bicubic"])


def test_parameter_counts_per_module(tiny_model):
    counts = CompassCodec(models={2: tiny_model}).parameter_counts()
    assert set(counts) == {"bl", "liff", "rc", "total"}
    assert counts["total"] == counts["bl"] + counts["liff"] + counts["rc"]
    assert counts["liff"] == sum(p.numel() for p in tiny_model.liff.parameters())
    assert counts["rc"] == counts["bl"]  # tiny model: same mean-scale size for BL and RC


def test_config_parameter_counts():
    summary = config_summary()
    assert summary["paper"]["liff"] == 1_448_320
    # spec §4: whole COMPASS ≈ 15.5 M with a 128/192 BL
    assert abs(summary["paper"]["liff"] + 2 * summary["paper"]["rc"] - 15.5e6) < 0.1e6
    assert summary["cpu"]["liff"] < summary["paper"]["liff"] and summary["cpu"]["rc"] < summary["paper"]["rc"]
    assert CONFIGS["cpu"].rc_n == 64 and CONFIGS["cpu"].rc_m == 96


def test_bad_inputs(tiny_model):
    codec = CompassCodec(models={2: tiny_model})
    small, big = textured(20, 30), textured(40, 60)
    with pytest.raises(CodecError, match="smallest first"):
        codec.encode([big, small], 2)
    with pytest.raises(CodecError):
        codec.encode([], 2)
    with pytest.raises(CodecError):
        codec.encode([small.astype(np.float32)], 2)
    with pytest.raises(CodecError, match="quality 3"):
        codec.encode([small], 3)


def test_single_layer_is_just_the_base_layer(tiny_model):
    codec = CompassCodec(models={2: tiny_model})
    image = textured(33, 47)
    enc = codec.encode([image], 2)
    (decoded,) = codec.decode(enc.data)
    assert decoded.shape == image.shape and enc.layer_bytes == [len(enc.data)]


# ----------------------------------------------------------------------------- zoo weights
def _write_bl(root, quality: int, seed: int = 0) -> None:
    torch.manual_seed(seed)
    bl = residual.build_mean_scale(8, 12)
    bl.update(force=True)
    zoo.write_weights(
        "mean-scale",
        quality,
        zoo.half_precision(bl.state_dict(), zoo.precision_keys(bl)),
        {"N": 8, "M": 12},
        root,
    )


def _write_compass(root, quality: int, bl_sha256: str, seed: int = 1) -> None:
    model = make_tiny_model(seed)
    parts = torch.nn.ModuleDict({"liff": model.liff, "rc": model.rc})
    config = {"compass": CONFIGS["tiny"].to_dict(), "bl_sha256": bl_sha256}
    zoo.write_weights(
        "compass", quality, zoo.half_precision(parts.state_dict(), zoo.precision_keys(parts)), config, root
    )


def test_missing_weights_say_how_to_train(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path))
    status = CompassCodec().availability()
    assert not status.available
    assert "python -m bench.train compass" in status.reason and "--stage joint" in status.reason
    assert CompassCodec().parameter_counts() == {}
    with pytest.raises(CodecError, match="bench.train compass"):
        CompassCodec().encode([textured(16, 16)], 2)


def test_zoo_weights_load_and_code(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path))
    _write_bl(tmp_path, 2)
    _write_compass(tmp_path, 2, zoo.verify_hash(zoo.find_weights("mean-scale", 2)))
    codec = CompassCodec()
    assert codec.availability().available
    layers = pyramid(textured(45, 67), [2.7])
    enc = codec.encode(layers, 2)
    decoded = CompassCodec().decode(enc.data)  # a fresh codec reads the quality from the header
    assert [d.shape for d in decoded] == [im.shape for im in layers]
    assert all(_psnr(d, im) > 0 for d, im in zip(decoded, layers))
    counts = codec.parameter_counts()
    assert counts["total"] == counts["bl"] + counts["liff"] + counts["rc"] > 0
    info = codec.weights_info()
    assert "compass-q2-" in info["file"] and "mean-scale-q2-" in info["bl_file"]
    model, _ = load_zoo_model(2)
    assert isinstance(model, CompassModel) and model.model_id.startswith("compass-q2-")


def test_weights_trained_on_another_bl_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path))
    _write_bl(tmp_path, 2)
    _write_compass(tmp_path, 2, "0" * 64)
    with pytest.raises(CodecError, match="trained on base-layer weights 00000000"):
        CompassCodec().encode([textured(16, 16)], 2)


def test_base_layer_padding_whole_or_layerwise():
    # the same weights under both BL schemes: whole pads the BL to 64×64 before coding (its y has
    # 4×4 positions), layer-wise codes 30×44 as it is (30→15→16→8→4→2, 44→22→11→12→6→3: y is 2×3)
    whole = make_tiny_model(seed=4)
    layerwise = make_tiny_model(seed=4)
    layerwise.bl_padding = "layerwise"
    layers = pyramid(textured(45, 67, seed=3), [1.5])
    tensors = [torch.from_numpy(im.copy()).permute(2, 0, 1)[None].float() / 255 for im in layers]
    with torch.no_grad():
        y_whole, _ = residual.analysis(whole.bl, mean_scale.pad_image(tensors[0]))
        y_layerwise, _ = residual.analysis(layerwise.bl, tensors[0])
    assert tuple(y_whole.shape[-2:]) == (4, 4) and tuple(y_layerwise.shape[-2:]) == (2, 3)
    for model in (whole, layerwise):
        payloads, recons = model.encode_layers(tensors)
        decoded = model.decode_layers(payloads, [im.shape[:2] for im in layers])
        assert all(torch.equal(a, b) for a, b in zip(decoded, recons, strict=True))
        assert tuple(recons[0].shape[-2:]) == (30, 44)
    assert whole.encode_layers(tensors)[0][0] != layerwise.encode_layers(tensors)[0][0]


def test_config_keeps_the_bl_padding():
    config = CONFIGS["cpu"]
    assert config.bl_padding == "whole"
    assert type(config).from_dict(config.to_dict()) == config
    assert OFFICIAL_CONFIG.bl_padding == "layerwise"
    with pytest.raises(ValueError, match="BL padding"):
        type(config)(bl_padding="pad128")
