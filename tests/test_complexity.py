"""Operation counts (bench.measuring.complexity) against hand counts, and the learned codecs' declarations."""

from __future__ import annotations

import pytest
import torch

from bench.codecs.compass import residual
from bench.measuring.complexity import count_macs, kmac_per_pixel, meta_input, on_meta


def test_one_convolution_by_hand() -> None:
    conv = torch.nn.Conv2d(3, 8, 5, stride=2, padding=2)
    macs, out = count_macs(lambda: conv(torch.zeros(1, 3, 16, 16)))
    # every one of the 8×8 outputs of each of the 8 filters: 3 channels × 5×5 taps
    assert macs == 8 * 3 * 25 * 8 * 8 == 38400
    assert tuple(out.shape) == (1, 8, 8, 8)
    assert kmac_per_pixel(macs, 16, 16) == pytest.approx(38400 / 256 / 1e3)


def test_counting_on_meta_gives_the_same_count_and_computes_nothing() -> None:
    conv = torch.nn.Conv2d(3, 8, 5, stride=2, padding=2)
    macs, out = count_macs(lambda: on_meta(conv)(meta_input(16, 16)))
    assert macs == 38400 and out.is_meta


def test_mean_scale_analysis_by_hand() -> None:
    n, m = 8, 12
    model = on_meta(residual.build_mean_scale(n, m))
    macs, y = count_macs(lambda: model.g_a(meta_input(64, 64)))
    # 4 stride-2 5×5 convs (64 -> 32 -> 16 -> 8 -> 4) and a GDN (an N×N 1×1 conv) after the first three
    convs = n * 3 * 25 * 32**2 + n * n * 25 * 16**2 + n * n * 25 * 8**2 + m * n * 25 * 4**2
    gdns = n * n * (32**2 + 16**2 + 8**2)
    assert macs == convs + gdns
    assert tuple(y.shape) == (1, m, 4, 4)


def _hyperprior(model: torch.nn.Module, height: int, width: int) -> tuple[int, int, int, int]:
    """MACs of g_a, h_a, h_s, g_s of a mean-scale hyperprior on an input whose sides are multiples of 64."""
    g_a, y = count_macs(lambda: model.g_a(meta_input(height, width)))
    h_a, z = count_macs(lambda: model.h_a(y))
    h_s, _ = count_macs(lambda: model.h_s(z))
    g_s, _ = count_macs(lambda: model.g_s(y))
    return g_a, h_a, h_s, g_s


def test_mean_scale_declares_encoder_and_decoder_networks(tmp_path, monkeypatch) -> None:
    from bench import zoo
    from bench.codecs.mean_scale.fuzzing import tiny_mean_scale_zoo
    from bench.registry import create_codec

    tiny_mean_scale_zoo(tmp_path)
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path))
    codec = create_codec("mean-scale")
    (layer,) = codec.complexity([(48, 100)], 2)  # padded to 64×128
    g_a, h_a, h_s, g_s = _hyperprior(on_meta(codec._model(2)[0]), 64, 128)
    assert layer.encode_kmac_per_pixel == pytest.approx((g_a + h_a + h_s) / (48 * 100) / 1e3)
    assert layer.decode_kmac_per_pixel == pytest.approx((h_s + g_s) / (48 * 100) / 1e3)
    # simulcast: the inner codec's count, layer by layer
    simulcast = create_codec("simulcast:mean-scale").complexity([(32, 64), (48, 100)], 2)
    assert simulcast == codec.complexity([(32, 64)], 2) + [layer]


def test_compass_declares_bl_liff_and_rc_per_layer() -> None:
    from bench.codecs.compass.plugin import CompassCodec
    from tests.codecs.compass.helpers import make_tiny_model

    model = make_tiny_model()
    codec = CompassCodec(models={1: model})
    sizes = [(64, 64), (128, 128)]  # multiples of 64: no layer-wise padding, plain stacks count the same
    base, enhancement = codec.complexity(sizes, 1)
    meta = on_meta(model)
    g_a, h_a, h_s, g_s = _hyperprior(meta.bl, 64, 64)
    assert base.decode_kmac_per_pixel == pytest.approx((h_s + g_s) / 64**2 / 1e3)
    # the encoder codes the layer and decodes it again, as the decoder will, to predict the next one
    assert base.encode_kmac_per_pixel == pytest.approx((g_a + h_a + h_s + h_s + g_s) / 64**2 / 1e3)
    liff, prediction = count_macs(lambda: meta.liff(meta_input(64, 64), (128, 128)))
    assert tuple(prediction.shape) == (1, 3, 128, 128) and liff > 0
    g_a, h_a, h_s, g_s = _hyperprior(meta.rc, 128, 128)
    assert enhancement.decode_kmac_per_pixel == pytest.approx((liff + h_s + g_s) / 128**2 / 1e3)
    assert enhancement.encode_kmac_per_pixel == pytest.approx((liff + g_a + h_a + 2 * h_s + g_s) / 128**2 / 1e3)


def test_runner_records_carry_the_counts_of_learned_codecs_only(make_image_folder, tmp_path, monkeypatch,
                                                                 x265_ready) -> None:
    from bench import zoo
    from bench.codecs.mean_scale.fuzzing import tiny_mean_scale_zoo
    from bench.datasets import load_dataset
    from bench.running import runner

    tiny_mean_scale_zoo(tmp_path / "zoo")
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path / "zoo"))
    folder = make_image_folder(1, 48, 64)
    dataset = load_dataset(str(folder))
    jobs = runner.plan_jobs(["mean-scale", "x265"], dataset.name, dataset.images, [(1.5,)], "top",
                            {"mean-scale": [1], "x265": [32]}, "cpu", 1)
    records = {(r.codec, r.layer): r.to_json() for job in jobs for r in runner.run_job(job)}
    codec = runner._codec_for(jobs[0] if jobs[0].codec == "mean-scale" else jobs[1])
    for layer, size in enumerate([(32, 42), (48, 64)]):
        (expected,) = codec.complexity([size], 1)
        record = records[("mean-scale", layer)]
        assert record["encode_kmac_per_pixel"] == pytest.approx(expected.encode_kmac_per_pixel)
        assert record["decode_kmac_per_pixel"] == pytest.approx(expected.decode_kmac_per_pixel)
        assert ("mean-scale", "cpu", 1, (size,)) in runner._complexity_cache  # counted once, then cached
        assert records[("x265", layer)]["encode_kmac_per_pixel"] is None
        for r in (record, records[("x265", layer)]):
            assert r["psnr-y"] > 0 and r["psnr-yuv"] > 0 and r["yuv_matrix"] == "bt709"
