"""Results store: JSON Lines records, resume bookkeeping, torn tails, write errors, eval_model export."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from bench.storage.records import Record
from bench.storage.store import RunStore, StoreError, export_eval_model, job_key


def record(image: str = "a.png", quality: int = 30, layer: int = 0, num_layers: int = 2, codec: str = "x265",
           psnr: float = 30.0, ms_ssim: float | None = None, bits: int = 800, scales=(1.5,), **extra) -> dict:
    height, width = (32, 42) if layer == 0 else (48, 64)
    return Record(
        codec=codec, dataset="/data/set", image=image, scales=list(scales), anchor="top", quality=quality,
        layer=layer, num_layers=num_layers, height=height, width=width, bits_layer=bits, bits_cum=bits,
        bpp=bits / (height * width), psnr_rgb=psnr, ms_ssim_rgb=ms_ssim, encode_time=0.5, decode_time=0.25,
        mode="single", **extra,
    ).to_json()


def job(image: str = "a.png", quality: int = 30, **kw) -> list[dict]:
    return [record(image, quality, layer=k, **kw) for k in range(2)]


def test_append_and_read_back(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    store.open_for_writing()
    assert store.records() == [] and store.completed_jobs() == set()
    first, second = job("a.png"), job("b.png", psnr=31.5, ms_ssim=0.97)
    store.append(first)
    store.append(second)
    store.append([])  # nothing to write is not an error and writes nothing
    assert store.records() == first + second
    assert Record.from_json(store.records()[2]) == Record.from_json(second[0])
    lines = store.records_path.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["codec"] == "x265" for line in lines)


def test_numpy_scalars_are_written_as_plain_numbers(tmp_path: Path) -> None:
    import numpy as np

    store = RunStore(tmp_path)
    store.open_for_writing()
    store.append([record(psnr=np.float64(33.25), bits=np.int64(96))])
    (back,) = store.records()
    assert back["psnr-rgb"] == 33.25 and back["bits_layer"] == 96 and isinstance(back["bits_layer"], int)


def test_nan_and_inf_are_valid_json_and_load_back(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.open_for_writing()
    store.append([record(psnr=math.inf, ms_ssim=math.nan, extra={"note": -math.inf})])
    text = store.records_path.read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON: other tools can read it
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    (back,) = store.records()
    assert back["ms-ssim-rgb"] is None  # NaN means "no value", as in the report tables
    # A lossless layer has PSNR inf: it must come back as a float, not as the string "inf".
    assert back["psnr-rgb"] == math.inf and isinstance(back["psnr-rgb"], float)


def test_torn_last_line_is_repaired_on_reopen(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.open_for_writing()
    store.append(job("a.png"))
    good = store.records_path.read_bytes()
    with open(store.records_path, "ab") as handle:  # a kill in the middle of the next write
        handle.write(b'{"anchor": "top", "bits_cum": 12')
    assert store.records() == job("a.png")  # readers ignore the torn tail
    RunStore(tmp_path).open_for_writing()
    assert store.records_path.read_bytes() == good
    store.append(job("b.png"))
    assert [r["image"] for r in store.records()] == ["a.png", "a.png", "b.png", "b.png"]


def test_a_torn_job_loses_its_whole_lines_too_so_redoing_it_duplicates_nothing(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.open_for_writing()
    store.append(job("a.png"))
    good = store.records_path.read_bytes()
    layer0, layer1 = [json.dumps(r, sort_keys=True).encode() + b"\n" for r in job("b.png")]
    with open(store.records_path, "ab") as handle:  # b's write cut inside its second line
        handle.write(layer0 + layer1[:30])
    RunStore(tmp_path).open_for_writing()
    assert store.records_path.read_bytes() == good
    store.append(job("b.png"))  # the redone job
    layers = [(r["image"], r["layer"]) for r in store.records()]
    assert len(layers) == len(set(layers)) == 4


def test_garbage_line_inside_the_file_is_a_store_error(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.open_for_writing()
    store.append(job("a.png"))
    with open(store.records_path, "a") as handle:
        handle.write("this is not json\n")
    store.append(job("b.png"))
    with pytest.raises(StoreError, match=r"records.jsonl:3"):
        store.records()


def test_completed_jobs_counts_only_complete_jobs(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.open_for_writing()
    store.append(job("a.png", 30))
    store.append([record("b.png", 30, layer=0)])  # 1 of 2 layers: not complete
    store.append(job("a.png", 35))
    store.append([record("c.png", 30, layer=0, num_layers=1)])  # a one-layer job is complete
    done = store.completed_jobs()
    assert done == {job_key(record("a.png", 30)), job_key(record("a.png", 35)),
                    job_key(record("c.png", 30, num_layers=1))}
    assert job_key(record("a.png", 30)) == "x265|/data/set|a.png|1.5|top|30"


def test_job_key_separates_scales_anchor_and_codec() -> None:
    base = record()
    keys = {job_key(base), job_key(record(scales=(1.33, 1.5))), job_key(record(codec="simulcast:x265")),
            job_key(dict(base, anchor="base:0.25")), job_key(record(quality=31))}
    assert len(keys) == 5


def test_unwritable_run_dir_is_a_store_error_and_leaves_records_intact(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(StoreError, match="cannot write results"):
        RunStore(blocker / "run").open_for_writing()

    store = RunStore(tmp_path / "run")
    store.open_for_writing()
    store.append(job("a.png"))
    before = store.records_path.read_bytes()
    if os.geteuid() != 0:  # root ignores permission bits
        store.run_dir.chmod(0o500)
        store.records_path.chmod(0o400)
        try:
            with pytest.raises(StoreError):
                RunStore(store.run_dir).open_for_writing()
            with pytest.raises(StoreError, match="cannot append"):
                store.append(job("b.png"))
        finally:
            store.records_path.chmod(0o644)
            store.run_dir.chmod(0o755)
    # Appending into a records "file" that is a folder fails the same way, for root too.
    broken = RunStore(tmp_path / "broken")
    broken.records_path.mkdir(parents=True)
    with pytest.raises(StoreError, match="cannot append"):
        broken.append(job("a.png"))
    assert store.records_path.read_bytes() == before


def test_short_write_leaves_no_partial_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk (short write) must not leave some of a job's lines behind: after a resume the
    job is written again and must not appear twice."""
    store = RunStore(tmp_path)
    store.open_for_writing()
    store.append(job("a.png"))
    before = store.records_path.read_bytes()
    real_write = os.write
    three_layers = [record("b.png", layer=k, num_layers=3) for k in range(3)]
    with monkeypatch.context() as patch:
        # The disk fills up after the first two of the job's three lines.
        first_two = len("".join(json.dumps(r, sort_keys=True) + "\n" for r in three_layers[:2]))
        patch.setattr(os, "write", lambda fd, data: real_write(fd, data[: first_two + 5]))
        with pytest.raises(StoreError, match="cannot append"):
            store.append(three_layers)
    resumed = RunStore(tmp_path)
    resumed.open_for_writing()
    assert resumed.records_path.read_bytes() == before  # existing records intact, nothing partial
    assert job_key(three_layers[0]) not in resumed.completed_jobs()
    resumed.append(three_layers)  # the resumed run redoes the job
    layers = [(r["image"], r["layer"]) for r in resumed.records()]
    assert len(layers) == len(set(layers)) == 5


def test_manifest_accumulates_invocations(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.open_for_writing()
    store.write_manifest({"argv": ["run", "1"], "score": math.nan})
    manifest = store.write_manifest({"argv": ["run", "2"]})
    assert [entry["argv"] for entry in manifest["invocations"]] == [["run", "1"], ["run", "2"]]
    on_disk = json.loads(store.manifest_path.read_text())
    assert on_disk["invocations"][0]["score"] is None
    assert {"git_commit", "python", "packages", "machine"} <= set(on_disk["environment"])
    assert on_disk["environment"]["packages"]["numpy"]
    # every invocation keeps its own environment and where its records start
    assert all(entry["environment"]["packages"]["numpy"] for entry in on_disk["invocations"])
    assert [entry["records_before"] for entry in on_disk["invocations"]] == [0, 0]
    store.append(job())
    third = store.write_manifest({"argv": ["run", "3"]})
    assert third["invocations"][-1]["records_before"] == 2
    store.manifest_path.write_text("{broken")
    with pytest.raises(StoreError, match="manifest.json"):
        store.manifest()


def test_export_eval_model_format(tmp_path: Path) -> None:
    records = []
    for quality, (psnr_a, psnr_b) in {37: (28.0, 30.0), 27: (34.0, 36.0)}.items():
        for image, psnr, bits in (("a.png", psnr_a, 1000), ("b.png", psnr_b, 3000)):
            for layer in range(2):
                records.append(record(image, quality, layer=layer, psnr=psnr + layer, bits=bits * (layer + 1),
                                      ms_ssim=0.9 if layer == 1 else None))
    records.append(record("a.png", 27, layer=0, codec="simulcast:x265", num_layers=2))
    files = export_eval_model(records, tmp_path / "eval")
    names = sorted(p.name for p in files)
    assert names == ["simulcast-x265_set_s1.5_top_L0.json", "x265_set_s1.5_top_L0.json",
                     "x265_set_s1.5_top_L1.json"]
    doc = json.loads((tmp_path / "eval" / "x265_set_s1.5_top_L1.json").read_text())
    assert doc["name"] == "x265"
    assert "x265" in doc["description"] and "layer 1" in doc["description"] and "1.5" in doc["description"]
    assert set(doc["results"]) == {"psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time", "decoding_time"}
    assert doc["quality"] == [27, 37]  # results are listed in this order
    # Means over the two images (CompressAI's convention): layer 1 is 48x64.
    assert doc["results"]["psnr-rgb"] == pytest.approx([36.0, 30.0])
    assert doc["results"]["bpp"] == pytest.approx([(2000 + 6000) / 2 / (48 * 64)] * 2)
    assert doc["results"]["ms-ssim-rgb"] == pytest.approx([0.9, 0.9])
    assert doc["results"]["encoding_time"] == pytest.approx([0.5, 0.5])
    assert doc["results"]["decoding_time"] == pytest.approx([0.25, 0.25])
    base = json.loads((tmp_path / "eval" / "x265_set_s1.5_top_L0.json").read_text())
    assert base["results"]["ms-ssim-rgb"] == [None, None]  # too small everywhere: null, not a made-up value


def test_export_eval_model_with_a_lossless_layer(tmp_path: Path) -> None:
    """A record with PSNR inf (read back from disk) must not break the export."""
    store = RunStore(tmp_path / "run")
    store.open_for_writing()
    store.append([record("a.png", psnr=math.inf, num_layers=1), record("b.png", psnr=40.0, num_layers=1)])
    (path,) = export_eval_model(store.records(), tmp_path / "eval")
    assert json.loads(path.read_text())["results"]["psnr-rgb"] == ["inf"]


def _without_final_newline(store: RunStore) -> bytes:
    data = store.records_path.read_bytes()
    assert data.endswith(b"\n")
    store.records_path.write_bytes(data[:-1])  # what an editor or another tool may leave
    return data


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with store.writing():
        store.append(job("a.png"))
        store.append(job("b.png"))
    data = _without_final_newline(store)
    assert [r["image"] for r in store.records()] == ["a.png", "a.png", "b.png", "b.png"]
    assert store.torn_tail is None and store.check_tail() is None
    assert len(store.completed_jobs()) == 2  # a resume does not redo b.png
    with RunStore(tmp_path).writing() as again:  # the repair gives the line its newline back
        assert store.records_path.read_bytes() == data
        again.append(job("c.png"))
    assert [r["image"] for r in store.records()][-2:] == ["c.png", "c.png"]


def test_a_whole_line_of_an_incomplete_job_without_its_newline_still_goes(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with store.writing():
        store.append(job("a.png"))
    good = store.records_path.read_bytes()
    layer0 = json.dumps(job("b.png")[0], sort_keys=True).encode()
    with open(store.records_path, "ab") as handle:  # b's write cut just before layer 0's newline
        handle.write(layer0)
    assert len(store.completed_jobs()) == 1
    RunStore(tmp_path).open_for_writing()
    assert store.records_path.read_bytes() == good  # b is redone whole: no duplicate of its layer 0


def test_a_torn_tail_is_left_out_and_said_so(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with store.writing():
        store.append(job("a.png"))
    with open(store.records_path, "ab") as handle:
        handle.write(b'{"anchor": "top", "bits_cum": 12')
    assert [r["image"] for r in store.records()] == ["a.png", "a.png"]
    expected = f"{store.records_path}:3: left out an incomplete last line (32 bytes, a run killed mid-write)"
    assert store.torn_tail.startswith(expected)
    assert store.check_tail() == store.torn_tail


def test_the_report_says_when_it_leaves_out_a_torn_tail(tmp_path: Path, capsys) -> None:
    from bench import api
    from bench.cli import main

    run = tmp_path / "run"
    store = RunStore(run)
    with store.writing():
        store.append(job("a.png") + job("a.png", quality=35))
    assert api.report([run], tmp_path / "clean").notes == []
    with open(store.records_path, "ab") as handle:
        handle.write(b'{"anchor": "top", "bits_cum": 12')
    result = api.report([run], tmp_path / "report")
    assert len(result.notes) == 1 and "left out an incomplete last line" in result.notes[0]
    assert main(["report", str(run), "--out", str(tmp_path / "cli")]) == 0
    assert "bench report: " + result.notes[0] in capsys.readouterr().err


def test_records_jsonl_is_parsed_again_only_when_its_bytes_change(tmp_path: Path, monkeypatch) -> None:
    parses = []
    parse_bytes = RunStore._parse_bytes
    monkeypatch.setattr(RunStore, "_parse_bytes",
                        lambda self, data: parses.append(len(data)) or parse_bytes(self, data))
    store = RunStore(tmp_path)
    assert store.records() == [] and store.completed_jobs() == set() and parses == [0]
    with store.writing():
        store.append(job("a.png"))
    typed = store.typed_records()
    assert store.records() == job("a.png") and len(store.completed_jobs()) == 1 and len(parses) == 2
    assert store.typed_records() == typed and typed[0] is store.typed_records()[0] and len(parses) == 2
    # the same size, other bytes (another process rewrote the file): parsed again
    data = store.records_path.read_bytes()
    store.records_path.write_bytes(data.replace(b'"a.png"', b'"b.png"'))
    assert [r.image for r in store.typed_records()] == ["b.png", "b.png"] and len(parses) == 3
    # Records in and out: what the store writes of a Record is its JSON form
    with store.writing():
        store.append([Record.from_json(r) for r in job("c.png")])
    assert store.records()[2:] == job("c.png")
