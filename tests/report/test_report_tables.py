import json
import math

import pandas as pd
import pytest

from bench.report.bdtables import family, is_focus_pair, role
from bench.report.load import load_records, scales_label
from bench.report.tables import aggregate, cost_table, dataset_label, prediction_table
from bench.storage.records import Record


def record(
    image,
    bpp,
    psnr,
    ms_ssim,
    layer=0,
    codec="x265",
    mode="single",
    quality=1,
    encode=1.0,
    decode=0.5,
    num_layers=1,
    scales=(),
    extra=None,
):
    return Record(
        codec=codec,
        dataset="kodak",
        image=image,
        scales=list(scales),
        anchor="top",
        quality=quality,
        layer=layer,
        num_layers=num_layers,
        height=48,
        width=64,
        bits_layer=int(bpp * 48 * 64),
        bits_cum=int(bpp * 48 * 64),
        bpp=bpp,
        psnr_rgb=psnr,
        ms_ssim_rgb=ms_ssim,
        encode_time=encode,
        decode_time=decode,
        mode=mode,
        extra=extra or {},
    ).to_json()


def write(run_dir, records):
    run_dir.mkdir()
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


def test_aggregate_means_spread_and_nan_aware_ms_ssim(tmp_path):
    run = write(
        tmp_path / "run",
        [
            record("a.png", 0.2, 30.0, None, encode=1.0, decode=0.2),
            record("b.png", 0.4, 33.0, 0.95, encode=3.0, decode=0.4),
            record("c.png", 0.6, 36.0, 0.97, encode=2.0, decode=0.6),
            record("a.png", 1.0, 40.0, 0.99, quality=2),
        ],
    )
    summary = aggregate(load_records([run]))
    q1 = summary[summary.quality == 1].iloc[0]
    assert q1.images == 3
    assert q1.bpp == pytest.approx(0.4)
    assert q1.psnr_rgb == pytest.approx(33.0)  # mean of per-image PSNR, not PSNR of mean MSE
    assert q1.psnr_std == pytest.approx(3.0)  # sample std of 30, 33, 36
    assert q1.ms_ssim_rgb == pytest.approx(0.96) and q1.ms_ssim_images == 2
    assert q1.encode_time == pytest.approx(2.0) and q1.decode_time == pytest.approx(0.4)
    q2 = summary[summary.quality == 2].iloc[0]
    assert q2.images == 1 and math.isnan(q2.psnr_std)


def test_store_encodings_load_as_floats(tmp_path):
    rec = record("a.png", 0.5, 30.0, 0.9)
    rec["psnr-rgb"] = "inf"  # how the store writes a lossless layer's PSNR
    rec["ms-ssim-rgb"] = None
    run = write(tmp_path / "run", [rec])
    frame = load_records([run])
    assert frame.psnr_rgb.iloc[0] == math.inf and math.isnan(frame.ms_ssim_rgb.iloc[0])


def test_later_run_replaces_the_same_record(tmp_path):
    first = write(tmp_path / "one", [record("a.png", 0.5, 30.0, 0.9), record("b.png", 0.5, 31.0, 0.9)])
    second = write(tmp_path / "two", [record("a.png", 0.5, 35.0, 0.9)])
    frame = load_records([first, second])
    assert len(frame) == 2
    assert frame.set_index("image").psnr_rgb.to_dict() == {"a.png": 35.0, "b.png": 31.0}


def test_record_without_a_field_is_a_clear_error(tmp_path):
    rec = record("a.png", 0.5, 30.0, 0.9)
    del rec["bpp"]
    with pytest.raises(ValueError, match="lacks bpp"):
        load_records([write(tmp_path / "run", [rec])])


def test_cost_table_scalable_vs_single(tmp_path):
    scalable = [
        record(
            "a.png",
            0.2,
            30.0,
            None,
            layer=0,
            codec="compass",
            mode="scalable",
            num_layers=2,
            scales=(1.5,),
            encode=2.0,
            decode=0.3,
            extra={"params": 1000},
        ),
        record(
            "a.png",
            0.5,
            31.0,
            0.9,
            layer=1,
            codec="compass",
            mode="scalable",
            num_layers=2,
            scales=(1.5,),
            encode=2.0,
            decode=0.7,
            extra={"params": 1000},
        ),
    ]
    single = [
        record("a.png", 0.2, 30.0, None, layer=0, num_layers=2, scales=(1.5,), encode=1.0, decode=0.1),
        record("a.png", 0.5, 31.0, 0.9, layer=1, num_layers=2, scales=(1.5,), encode=1.5, decode=0.2),
    ]
    costs = cost_table(load_records([write(tmp_path / "run", scalable + single)])).set_index("codec")
    # one scalable bitstream: encode once, decoding the top layer decodes everything
    assert costs.loc["compass", "encode_s"] == pytest.approx(2.0)
    assert costs.loc["compass", "decode_s"] == pytest.approx(0.7)
    assert costs.loc["compass", "params"] == 1000
    # single-layer codec codes each layer alone: times add up
    assert costs.loc["x265", "encode_s"] == pytest.approx(2.5)
    assert costs.loc["x265", "decode_s"] == pytest.approx(0.3)
    assert math.isnan(costs.loc["x265", "params"])


def test_roles_families_and_focus_pairs():
    assert role("x265", "single") == "single-layer"
    assert role("simulcast:x265", "scalable") == "simulcast"
    assert role("shvc", "scalable") == "shvc"
    assert role("compass@official", "scalable") == "scalable"
    assert family("simulcast:mean-scale@compressai") == "mean-scale"
    assert family("compass") == "mean-scale" and family("shvc") == "hm"
    assert is_focus_pair("simulcast:x265", "simulcast", "x265", "single-layer")
    assert is_focus_pair("compass", "scalable", "mean-scale", "single-layer")
    assert is_focus_pair("compass", "scalable", "simulcast:mean-scale", "simulcast")
    assert is_focus_pair("compass", "scalable", "shvc", "shvc")
    assert is_focus_pair("shvc", "shvc", "hm", "single-layer")  # SHVC against its own encoder alone
    assert is_focus_pair("shvc", "shvc", "simulcast:hm", "simulcast")
    assert not is_focus_pair("shvc", "shvc", "x265", "single-layer")
    assert not is_focus_pair("compass", "scalable", "x265", "single-layer")
    assert not is_focus_pair("x265", "single-layer", "simulcast:x265", "simulcast")
    assert not is_focus_pair("simulcast:x265", "simulcast", "shvc", "shvc")


def test_labels():
    assert scales_label([1.33, 1.5]) == "1.33,1.5" and scales_label([]) == "1 layer"
    assert dataset_label("clic") == "CLIC 2020 pro-valid, 30-image subset"
    assert dataset_label("/data/my_images") == "/data/my_images"


def test_prediction_table_means_gain_and_wins(tmp_path):
    def el(image, liff, bicubic, quality=3):
        return record(image, 0.5, 30.0, None, layer=1, codec="compass", mode="scalable", num_layers=2,
                      scales=(1.5,), quality=quality,
                      extra={"diagnostics": {"psnr_liff": liff, "psnr_bicubic": bicubic}})

    records = [
        record("a.png", 0.2, 28.0, None, layer=0, codec="compass", mode="scalable", num_layers=2, scales=(1.5,),
               quality=3),
        el("a.png", 27.0, 26.0),
        el("b.png", 25.0, 25.5),
        el("a.png", 29.0, 28.0, quality=4),
        record("a.png", 0.5, 30.0, None),  # a codec without diagnostics adds no row
    ]
    table = prediction_table(load_records([write(tmp_path / "run", records)]))
    assert list(table["quality"]) == [3, 4]
    q3 = table.iloc[0]
    assert (q3["codec"], q3["layer"], q3["images"]) == ("compass", 1, 2)
    assert q3["psnr_liff"] == pytest.approx(26.0) and q3["psnr_bicubic"] == pytest.approx(25.75)
    assert q3["gain_db"] == pytest.approx(0.25) and q3["images_won"] == 1
    assert table.iloc[1]["images_won"] == 1


def test_prediction_table_is_empty_without_diagnostics(tmp_path):
    table = prediction_table(load_records([write(tmp_path / "run", [record("a.png", 0.5, 30.0, None)])]))
    assert table.empty and "gain_db" in table.columns


def test_bd_psnr_nan_keeps_its_reason_when_the_bd_rate_is_a_number():
    from bench.report.bdtables import bd_long

    rows = []
    for codec, mode, bpps, psnrs in (
        ("x265", "single", [0.1, 0.2, 0.3, 0.4], [30, 32, 34, 36]),
        ("simulcast:x265", "simulcast", [0.5, 0.8, 1.1, 1.4], [31, 33, 35, 37]),
    ):
        for quality, (bpp, psnr) in enumerate(zip(bpps, psnrs)):
            rows.append({"dataset": "kodak", "anchor": "top", "scales_label": "1.5", "layer": 1, "codec": codec,
                         "mode": mode, "image": "a.png", "quality": quality, "bpp": bpp, "psnr_rgb": psnr})
    long = bd_long(pd.DataFrame(rows))
    row = long[(long.codec == "simulcast:x265") & (long.reference == "x265")].iloc[0]
    assert row.bd_rate > 100 and math.isnan(row.bd_psnr)
    assert row.psnr_reason == "no rate overlap" and "BD-PSNR NaN: no rate overlap" in row.note


def test_size_label_names_real_sizes_not_a_mean_of_orientations():
    from bench.report.tables import size_label

    assert size_label(pd.Series([768, 768]), pd.Series([512, 512])) == "768×512"
    assert size_label(pd.Series([768, 512, 768]), pd.Series([512, 768, 512])) == "768×512 / 512×768"
    assert size_label(pd.Series([2048, 1365, 2048]), pd.Series([1365, 2048, 1188])) == "mixed, median 2048×1365"


def test_aggregate_reports_the_spread_of_bpp_and_the_sizes():
    records = pd.DataFrame([
        {"codec": "x265", "dataset": "kodak", "scales_label": "1.5", "anchor": "top", "quality": 1, "layer": 1,
         "mode": "single", "num_layers": 2, "image": f"{i}.png", "height": h, "width": w, "bpp": bpp,
         "psnr_rgb": 30.0, "ms_ssim_rgb": math.nan, "encode_time": 1.0, "decode_time": 1.0}
        for i, (h, w, bpp) in enumerate([(512, 768, 0.2), (768, 512, 0.4)])
    ])
    (row,) = aggregate(records).itertuples()
    assert row.bpp == pytest.approx(0.3) and row.bpp_std == pytest.approx(0.1414213562, rel=1e-6)
    assert row.size == "768×512 / 512×768"
