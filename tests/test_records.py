"""Records: ``extra`` is a typed RecordExtra whose JSON form is what records.jsonl holds, unchanged by
a round trip (undeclared keys and nulls included), and a plain dict given as ``extra`` is read as it."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from bench.storage.records import EXTRA_FIELDS, Record, RecordExtra


def _record(**extra) -> Record:
    return Record(codec="x265", dataset="kodak", image="a.png", scales=[2.0], anchor="top", quality=32, layer=0,
                  num_layers=2, height=32, width=48, bits_layer=800, bits_cum=800, bpp=0.5, psnr_rgb=30.0,
                  ms_ssim_rgb=None, encode_time=0.5, decode_time=0.25, mode="single", extra=extra)


# extra as the runner writes it for a learned scalable codec with --repeats 2 (every declared key)
WRITTEN = {
    "job_codec_s": 1.5, "warmup_s": 0.25, "params": {"g_a": 10, "total": 10}, "weights": {"file": "w.pth"},
    "model_bytes": 1234, "weights_id": "ab" * 32, "timings": {"network": 0.1}, "decode_timings": {"entropy": 0.2},
    "timing": {"repeats": 2, "encode": {"n": 2, "median": 0.5}, "decode": {"n": 2, "median": 0.25}},
    "ms_ssim_note": "too small", "diagnostics": {"psnr_liff": 30.0}, "peak_memory_mib": 12.0,
    "peak_rss_delta_mib": 11.0, "rss_baseline_mib": 200.0, "memory_samples": 3, "child_peak_rss_mib": 5.0,
    "child_cpu_s": 0.5, "cuda_peak_mib": 7.0,
}


def test_every_key_the_runner_writes_is_a_declared_field() -> None:
    assert set(WRITTEN) == set(EXTRA_FIELDS)
    assert [f.name for f in fields(RecordExtra)] == [*EXTRA_FIELDS, "other"]
    extra = RecordExtra.from_json(WRITTEN)
    assert extra.other == {} and extra.job_codec_s == 1.5 and extra.weights_id == "ab" * 32
    assert extra.repeats == 2 and RecordExtra().repeats == 1
    assert extra.to_json() == WRITTEN


def test_records_jsonl_reads_back_and_writes_out_unchanged() -> None:
    on_disk = _record(**WRITTEN).to_json()
    on_disk["extra"] = {**on_disk["extra"], "peak_memory_bytes": 5, "note": "-inf", "warmup_s": None}
    del on_disk["extra"]["cuda_peak_mib"]
    record = Record.from_json(json.loads(json.dumps(on_disk)))
    # undeclared keys and a declared key written as null are kept as found; absent stays absent
    assert record.extra.other == {"peak_memory_bytes": 5, "note": "-inf", "warmup_s": None}
    assert record.extra.warmup_s is None and record.extra.cuda_peak_mib is None
    assert json.dumps(record.to_json(), sort_keys=True) == json.dumps(on_disk, sort_keys=True)
    # a field set later wins over the null kept in other
    record.extra.warmup_s = 0.5
    assert record.to_json()["extra"]["warmup_s"] == 0.5


def test_a_plain_dict_is_taken_as_extra_in_its_json_form() -> None:
    record = _record(job_codec_s=0.3, timings={})
    assert isinstance(record.extra, RecordExtra) and record.extra.job_codec_s == 0.3
    assert record.to_json()["extra"] == {"job_codec_s": 0.3, "timings": {}}  # {} is written, None is not
    assert Record.from_json({**record.to_json(), "extra": None}).extra == RecordExtra()
    with pytest.raises(TypeError, match="extra must be a JSON object"):
        Record.from_json({**record.to_json(), "extra": [1]})


def test_merged_sets_the_declared_keys_and_keeps_the_others() -> None:
    extra = RecordExtra(job_codec_s=1.0).merged({"peak_memory_mib": 2.0, "future_probe": 1})
    assert extra.job_codec_s == 1.0 and extra.peak_memory_mib == 2.0 and extra.other == {"future_probe": 1}
