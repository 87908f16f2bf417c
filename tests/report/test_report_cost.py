"""The cost tables (per codec, per layer) and their place in the report, on synthetic records whose
times are spread unevenly over images so that a median and a mean differ."""

import json
import math
import statistics

import pandas as pd
import pytest

from bench.report import build_report
from bench.report.load import load_records
from bench.report.tables import cost_by_layer, cost_table, count_text, modules_text
from bench.storage.records import Record

IMAGES = ("a.png", "b.png", "c.png")
QUALITIES = (1, 2)
SIZES = ((48, 64), (72, 96))
MODULES = {"bl": 1_764_000, "liff": 290_000, "rc": 1_764_000}


def encode_time(codec: str, i: int, q: int, layer: int) -> float:
    # image c is far slower: the mean over images is pulled up, the median is not
    slow = 10.0 if i == 2 else 1.0
    if codec == "compass":  # one bitstream: the same encode on every layer record
        return 0.2 * slow * q
    return 0.01 * slow * (q + 3 * layer)


def decode_time(codec: str, i: int, q: int, layer: int) -> float:
    slow = 7.0 if i == 2 else 1.0
    return 0.005 * slow * (1 + layer) * (q + i)


def compass_extra(i: int, q: int) -> dict:
    return {
        "params": {**MODULES, "total": sum(MODULES.values())},
        "peak_memory_mib": 100.0 + 10 * i + q,
        "cuda_peak_mib": 50.0 + i,
        "model_bytes": 7_000_000 + q * 1_000_000,
        "warmup_s": 0.5 * q if i == 0 else None,  # only the first job at a quality warms up
        "timings": {"network": 0.15 * q * (2 if i == 2 else 1), "entropy": 0.05 * q},
        "decode_timings": {"network": 0.1 * q + 0.01 * i, "entropy": 0.02 * q},
        "timing": {"repeats": 3},
    }


def make(codec: str, mode: str, extra_of=None, images=IMAGES, device: str = "cpu") -> list[dict]:
    out = []
    for i, image in enumerate(images):
        for q in QUALITIES:
            extra = extra_of(i, q) if extra_of else {}
            extra = {k: v for k, v in extra.items() if v is not None}
            for layer, (height, width) in enumerate(SIZES):
                out.append(
                    Record(
                        codec=codec,
                        dataset="kodak",
                        image=image,
                        scales=[1.5],
                        anchor="top",
                        quality=q,
                        layer=layer,
                        num_layers=len(SIZES),
                        height=height,
                        width=width,
                        bits_layer=1000,
                        bits_cum=1000 * (layer + 1),
                        bpp=0.3 * q + 0.1 * layer + 0.01 * i,
                        psnr_rgb=28.0 + 2 * q + layer + 0.1 * i,
                        ms_ssim_rgb=None,
                        encode_time=encode_time(codec, i, q, layer),
                        decode_time=decode_time(codec, i, q, layer),
                        mode=mode,
                        device=device,
                        threads=2,
                        extra=extra,
                    ).to_json()
                )
    return out


def write(run_dir, records):
    run_dir.mkdir(parents=True)
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    run = write(
        tmp_path_factory.mktemp("cost") / "run",
        make("compass", "scalable", compass_extra) + make("x265", "single"),
    )
    return load_records([run])


def medians(codec: str, layer: int) -> tuple[float, float]:
    pairs = [(i, q) for i in range(len(IMAGES)) for q in QUALITIES]
    return (
        statistics.median(encode_time(codec, i, q, layer) for i, q in pairs),
        statistics.median(decode_time(codec, i, q, layer) for i, q in pairs),
    )


def test_per_layer_medians_over_images(records):
    table = cost_by_layer(records).set_index(["codec", "layer"])
    assert len(table) == 4
    for codec in ("compass", "x265"):
        for layer in (0, 1):
            row = table.loc[(codec, layer)]
            encode, decode = medians(codec, layer)
            assert row.encode_s == pytest.approx(encode) and row.decode_s == pytest.approx(decode)
            assert row.records == 6 and row.images == 3
            assert row.device == "cpu" and row.threads == 2
            assert row.kpixels == pytest.approx(SIZES[layer][0] * SIZES[layer][1] / 1e3)
    # the slow image makes mean and median differ: the table must hold the median
    times = [decode_time("x265", i, q, 1) for i in range(3) for q in QUALITIES]
    assert statistics.mean(times) != pytest.approx(table.loc[("x265", 1)].decode_s)


def test_per_layer_sizes_memory_and_internal_split(records):
    table = cost_by_layer(records).set_index(["codec", "layer"])
    compass = table.loc[("compass", 1)]
    assert compass.params == sum(MODULES.values())
    assert compass.params_modules == "bl 1.76M, liff 290k, rc 1.76M"
    assert compass.peak_memory_mib == pytest.approx(100 + 20 + 2)  # largest job
    assert compass.cuda_peak_mib == pytest.approx(52.0)
    assert compass.model_mb == pytest.approx(9.0)
    assert compass.repeats == 3
    # network: 0.15 q, doubled on image c -> values 0.15, 0.15, 0.3, 0.3, 0.3, 0.6: median 0.3
    assert compass.encode_internal_network_s == pytest.approx(0.3)
    assert compass.encode_internal_entropy_s == pytest.approx(statistics.median([0.05, 0.1] * 3))
    decode_network = [0.1 * q + 0.01 * i for i in range(3) for q in QUALITIES]
    assert compass.decode_internal_network_s == pytest.approx(statistics.median(decode_network))
    assert compass.decode_internal_entropy_s == pytest.approx(statistics.median([0.02, 0.04] * 3))
    x265 = table.loc[("x265", 0)]
    assert math.isnan(x265.params) and x265.params_modules == "" and x265.repeats == 1
    assert math.isnan(x265.encode_internal_network_s)  # the codec reports no split


def test_per_codec_medians_of_all_layers(records):
    table = cost_table(records).set_index("codec")
    pairs = [(i, q) for i in range(len(IMAGES)) for q in QUALITIES]
    # scalable: one encode, and the top layer's decode covers layers 0..1
    compass = table.loc["compass"]
    assert compass.encode_s == pytest.approx(
        statistics.median(encode_time("compass", i, q, 1) for i, q in pairs)
    )
    assert compass.decode_s == pytest.approx(
        statistics.median(decode_time("compass", i, q, 1) for i, q in pairs)
    )
    assert compass.warmup_s == pytest.approx(statistics.median([0.5, 1.0]))
    assert compass.bitstreams == 6 and compass.layers == 2
    assert compass.params == sum(MODULES.values()) and compass.model_mb == pytest.approx(9.0)
    # single-layer: each image's layers are coded apart, their times add up before the median
    x265 = table.loc["x265"]
    assert x265.encode_s == pytest.approx(
        statistics.median(sum(encode_time("x265", i, q, k) for k in (0, 1)) for i, q in pairs)
    )
    assert x265.decode_s == pytest.approx(
        statistics.median(sum(decode_time("x265", i, q, k) for k in (0, 1)) for i, q in pairs)
    )
    assert math.isnan(x265.warmup_s) and math.isnan(x265.model_mb)


def test_records_without_device_or_threads_still_have_costs(tmp_path):
    old = make("x265", "single", images=IMAGES[:1])
    for r in old:
        del r["device"], r["threads"]
    frame = load_records([write(tmp_path / "old", old)])
    assert len(cost_by_layer(frame)) == 2
    assert cost_table(frame).iloc[0].device == "unknown"


def test_counts_as_text():
    assert count_text(1_764_000) == "1.76M" and count_text(290_000) == "290k" and count_text(2900) == "2.9k"
    assert count_text(845) == "845" and count_text(3_000_000_000) == "3G" and count_text(math.nan) == ""
    assert modules_text({"g_a": 6450, "h_s": 11_700}) == "g_a 6.45k, h_s 11.7k"


def test_single_codec_run_builds_a_report_with_its_costs(tmp_path):
    """One codec: there is no BD-rate pair at all (regression: an empty pair table's ``focus`` was
    not boolean, so selecting the focused pairs raised a KeyError)."""
    run = write(tmp_path / "run", make("x265", "single"))
    out = tmp_path / "report"
    md = build_report([run], out).read_text()
    assert pd.read_csv(out / "bdrate_focus.csv").empty and pd.read_csv(out / "bdrate.csv").empty
    cost = pd.read_csv(out / "cost.csv")
    assert list(cost.layer) == [0, 1] and set(cost.codec) == {"x265"}
    encode, decode = medians("x265", 1)
    assert cost.iloc[1].encode_s == pytest.approx(encode) and cost.iloc[1].decode_s == pytest.approx(decode)
    assert (out / "cost_summary.csv").stat().st_size > 0
    section = md.split("## Cost")[1].split("\n## ")[0]
    assert "Every row: dataset kodak; scales 1.5; pyramid top; device cpu; threads 2." in section
    assert f"| {encode:.3g} " in section and f"| {decode:.3g} " in section
    assert "params" not in section.split("### Median time per layer")[0].split("\n|")[1]  # no codec has any


def test_report_shows_params_memory_and_split(tmp_path):
    gpu = make("compass", "scalable", compass_extra, device="cuda")
    run = write(tmp_path / "run", gpu + make("x265", "single"))
    out = tmp_path / "report"
    md = build_report([run], out).read_text()
    section = md.split("## Cost")[1].split("\n## ")[0]
    summary, per_layer = section.split("### Median time per layer")
    assert "device" in summary.split("\n|")[1]  # two devices: a column, not the "every row" sentence
    costs, modules = summary.split("### Parameters per module")
    assert "3.82M" in costs and "per module" not in costs.split("\n|")[1]  # no wrapping cell any more
    assert "| 9.00 " in costs and "| 122 " in costs and "| 52 " in costs  # model MB, RSS, CUDA
    # one module per row, in the codec's order, with its share of the total
    assert [line.split("|")[2].strip() for line in modules.splitlines() if line.startswith("| compass")] == [
        "bl", "liff", "rc"]
    assert "| compass | liff     | 290k     | 8%      |" in modules
    table = pd.read_csv(out / "params_modules.csv")
    assert list(table.module) == ["bl", "liff", "rc"] and list(table.params) == [1_764_000, 290_000, 1_764_000]
    layers, split = per_layer.split("### Encode/decode split (codec-internal)")
    assert "split" not in layers.split("\n|")[1]  # the per-layer table no longer holds the split cells
    encode = statistics.median(encode_time("compass", i, q, 1) for i in range(3) for q in QUALITIES)
    network = next(line for line in split.splitlines() if line.startswith("| compass") and "network" in line
                   and "| 1 " in line)
    assert "| 0.3 " in network and f"| {0.3 / encode:.0%} " in network
    parts = pd.read_csv(out / "timing_split.csv")
    row = parts[(parts.codec == "compass") & (parts.layer == 1) & (parts.part == "entropy")].iloc[0]
    assert row.call == "encode" and row.median_s == pytest.approx(0.075)
    html = (out / "report.html").read_text()
    assert "Parameters per module" in html and "Encode/decode split (codec-internal)" in html


def test_self_check_timings_are_listed_but_not_as_a_share_of_the_encode_time(tmp_path):
    def shvc_extra(i: int, q: int) -> dict:
        return {"timings": {"shm_encoder": 2.0, "check_shm_decode": 0.4}}

    run = write(tmp_path / "run", make("shvc", "scalable", shvc_extra))
    md = build_report([run], tmp_path / "report").read_text()
    split = md.split("### Encode/decode split (codec-internal)")[1].split("\n## ")[0]
    check = next(row for row in split.splitlines() if "check_shm_decode" in row)
    encoder = next(row for row in split.splitlines() if "shm_encoder" in row)
    assert "| 0.4 " in check and "not in the time" in check
    assert "| 2 " in encoder and "%" in encoder and "not in the time" not in encoder
