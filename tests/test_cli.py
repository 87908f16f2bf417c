"""Command line: list, run with unavailable/unknown codecs, encode/decode round trips, damaged files,
report on a fresh run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.cli import main
from bench.codec import Availability
from bench.images import load_rgb
from bench.measuring.metrics import psnr_rgb
from bench.registry import _REGISTRY, create_codec, register_codec
from bench.storage.envelope import pack, unpack
from bench.storage.store import RunStore
from tests.fake_codecs import RawCodec as _Raw


class _NeedsBinary(_Raw):
    """Stands for an external codec whose program is not installed here."""

    def availability(self) -> Availability:
        return Availability.missing("test-encoder-binary not found on PATH; install it from example.org")


@pytest.fixture
def test_codecs():
    names = {"test-raw": _Raw, "test-missing-binary": _NeedsBinary}
    for name, cls in names.items():
        register_codec(name)(cls)
    yield names
    for name in names:
        _REGISTRY.pop(name, None)


def _codec_lines(text: str) -> dict[str, str]:
    lines = text.split("datasets:")[0].splitlines()[1:]
    return {line.split()[0]: line for line in lines if line.strip()}


def test_list_shows_x265_available(capsys, x265_ready, test_codecs) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    codecs = _codec_lines(out)
    assert "x265" in codecs and "single-layer" in codecs["x265"]
    assert codecs["x265"].rstrip().endswith("available") and "unavailable" not in codecs["x265"]
    assert "simulcast:x265" in codecs and "scalable" in codecs["simulcast:x265"]
    assert "unavailable: test-encoder-binary not found on PATH" in codecs["test-missing-binary"]
    assert "datasets:" in out and "kodak" in out and "anchors:" in out


def test_list_reports_x265_unavailable_without_ffmpeg(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg anywhere on PATH
    assert main(["list"]) == 0
    codecs = _codec_lines(capsys.readouterr().out)
    assert "unavailable: ffmpeg not found on PATH" in codecs["x265"]
    assert "unavailable" in codecs["simulcast:x265"] and "ffmpeg" in codecs["simulcast:x265"]


def test_run_skips_unavailable_codecs_and_goes_on(capsys, monkeypatch, tmp_path: Path, make_image_folder,
                                                   test_codecs) -> None:
    folder = make_image_folder(2, 24, 32)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # x265 cannot find ffmpeg
    out = tmp_path / "run"
    status = main(["run", "--codecs", "x265,test-missing-binary", "--codecs", "test-raw",
                   "--dataset", str(folder),
                   "--scales", "1.5", "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "skipping x265: unavailable: ffmpeg not found on PATH" in captured.err
    assert "skipping test-missing-binary: unavailable: test-encoder-binary not found" in captured.err
    records = RunStore(out).records()
    assert {r["codec"] for r in records} == {"test-raw"} and len(records) == 4
    manifest = RunStore(out).manifest()
    codecs = manifest["invocations"][-1]["codecs"]
    assert codecs["x265"]["available"] is False and "ffmpeg" in codecs["x265"]["reason"]
    assert codecs["test-raw"]["available"] is True


def test_run_with_only_unavailable_codecs_is_a_usage_error(capsys, tmp_path: Path, make_image_folder,
                                                          test_codecs) -> None:
    folder = make_image_folder(1, 24, 32)
    status = main(["run", "--codecs", "test-missing-binary", "--dataset", str(folder), "--out",
                   str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and "none of the requested codecs is available" in err
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_an_empty_codec_list_is_named(capsys, tmp_path: Path) -> None:
    assert main(["run", "--codecs", ",", "--out", str(tmp_path / "run")]) == 2
    assert "names no codec" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--codecs", "no-such-codec"], "unknown codec 'no-such-codec'"),
        (["--codecs", "simulcast:x265", "--scales", "1.5,1"], "must be > 1"),
        (["--codecs", "simulcast:x265", "--scales", "0.5"], "must be > 1"),
        (["--codecs", "simulcast:x265", "--anchor", "bottom"], "unknown anchoring"),
        (["--codecs", "x265", "--qualities", "x265=a"], "integers"),
        (["--codecs", "x265", "--qualities", "other=3"], "not in --codecs"),
        (["--codecs", "x265", "--jobs", "0"], "--jobs"),
        (["--codecs", "x265", "--limit", "0"], "--limit"),
    ],
)
def test_bad_run_arguments_exit_2_with_one_line(capsys, tmp_path: Path, make_image_folder, extra,
                                                message) -> None:
    folder = make_image_folder(1, 24, 32)
    status = main(["run", "--dataset", str(folder), "--out", str(tmp_path / "run"), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("bench run: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_unknown_dataset_exits_2(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--codecs", "x265", "--dataset", "imagenet", "--out", "run", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'imagenet'" in err and err.count("\n") == 1


def _source(tmp_path: Path) -> Path:
    from .conftest import synthetic_image

    path = tmp_path / "source.png"
    Image.fromarray(synthetic_image(48, 64, seed=11)).save(path)
    return path


def test_encode_decode_round_trip_x265(capsys, tmp_path: Path, x265_ready) -> None:
    source = _source(tmp_path)
    bitstream = tmp_path / "out.bench"
    assert main(["encode", "--codec", "x265", "--quality", "30", str(source), str(bitstream)]) == 0
    printed = capsys.readouterr().out
    envelope = unpack(bitstream.read_bytes())
    assert envelope.header["codec"] == "x265" and envelope.header["sizes"] == [[48, 64]]
    assert envelope.header["layer_bytes"] == [len(envelope.payload)]
    assert f"{len(envelope.payload) * 8} bits" in printed
    assert main(["decode", str(bitstream), str(tmp_path / "dec")]) == 0
    decoded = load_rgb(tmp_path / "dec_L0.png")
    original = load_rgb(source)
    assert decoded.shape == original.shape
    np.testing.assert_array_equal(decoded, create_codec("x265").decode(envelope.payload)[0])
    assert 28 < psnr_rgb(original, decoded) < 60


def test_encode_decode_round_trip_simulcast(capsys, tmp_path: Path, x265_ready) -> None:
    source = _source(tmp_path)
    bitstream = tmp_path / "out.bench"
    assert main(["encode", "--codec", "simulcast:x265", "--quality", "30", "--scales", "1.5", str(source),
                 str(bitstream)]) == 0
    envelope = unpack(bitstream.read_bytes())
    assert envelope.header["sizes"] == [[32, 42], [48, 64]] and envelope.header["scales"] == "1.5"
    assert sum(envelope.header["layer_bytes"]) == len(envelope.payload)
    assert main(["decode", str(bitstream), str(tmp_path / "all")]) == 0
    assert main(["decode", "--layers", "1", str(bitstream), str(tmp_path / "base")]) == 0
    capsys.readouterr()
    assert load_rgb(tmp_path / "all_L0.png").shape == (32, 42, 3)
    assert load_rgb(tmp_path / "all_L1.png").shape == (48, 64, 3)
    np.testing.assert_array_equal(load_rgb(tmp_path / "base_L0.png"), load_rgb(tmp_path / "all_L0.png"))
    assert not (tmp_path / "base_L1.png").exists()
    assert psnr_rgb(load_rgb(source), load_rgb(tmp_path / "all_L1.png")) > 28
    # Asking for more layers than the file holds, or for none, is a usage error.
    for layers, message in (("3", "between 1 and 2"), ("0", "at least 1")):
        assert main(["decode", "--layers", layers, str(bitstream), str(tmp_path / "x")]) == 2
        assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("x_L*.png"))


def test_unwritable_outputs_are_refused_before_coding(capsys, tmp_path: Path, x265_ready) -> None:
    source = _source(tmp_path)
    for output, message in ((tmp_path, "is a folder"), (tmp_path / "missing" / "o.bench", "does not exist")):
        assert main(["encode", "--codec", "x265", "--quality", "30", str(source), str(output)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    bitstream = tmp_path / "o.bench"
    assert main(["encode", "--codec", "x265", "--quality", "30", str(source), str(bitstream)]) == 0
    assert main(["decode", str(bitstream), str(tmp_path / "missing" / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["decode", str(tmp_path / "nope.bench"), str(tmp_path / "x")]) == 2
    assert "no such bitstream file" in capsys.readouterr().err


def test_encode_scales_with_single_layer_codec_is_refused(capsys, tmp_path: Path, x265_ready) -> None:
    status = main(["encode", "--codec", "x265", "--quality", "30", "--scales", "1.5", str(_source(tmp_path)),
                   str(tmp_path / "o.bench")])
    assert status == 2 and "single-layer" in capsys.readouterr().err
    assert not (tmp_path / "o.bench").exists()


def test_encode_missing_image_exits_2(capsys, tmp_path: Path, x265_ready) -> None:
    status = main(["encode", "--codec", "x265", "--quality", "30", str(tmp_path / "nope.png"),
                   str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2 and "not found" in err and err.count("\n") == 1


@pytest.fixture
def good_bitstream(tmp_path: Path, x265_ready) -> Path:
    path = tmp_path / "good.bench"
    assert main(["encode", "--codec", "simulcast:x265", "--quality", "34", "--scales", "1.5",
                 str(_source(tmp_path)), str(path)]) == 0
    return path


def _damaged_files(good: bytes) -> dict[str, bytes]:
    envelope = unpack(good)
    header = {k: v for k, v in envelope.header.items() if k not in ("payload_bytes", "payload_crc32")}
    garbage = bytes(np.random.default_rng(0).integers(0, 256, len(envelope.payload), dtype=np.uint8))
    flipped = bytearray(envelope.payload)
    flipped[len(flipped) // 2] ^= 0x40
    return {
        "truncated": good[: len(good) * 2 // 3],
        "flipped byte (envelope CRC)": good[:-30] + bytes([good[-30] ^ 1]) + good[-29:],
        "not a bench file": b"\x89PNG\r\n\x1a\n" + good[8:],
        # Consistent envelopes around damaged payloads: the codec itself must refuse them.
        "garbage payload": pack(header, garbage),
        "flipped payload byte": pack(header, bytes(flipped)),
        "truncated payload": pack(header, envelope.payload[: len(envelope.payload) // 2]),
        "unknown codec": pack(dict(header, codec="no-such-codec"), envelope.payload),
        # x265's own bytes damaged (its 4-byte size header is intact, the HEVC stream is noise).
        "x265 noise": pack({"codec": "x265", "sizes": [[48, 64]]}, b"\x00\x40\x00\x30" + garbage),
    }


def test_damaged_bitstreams_exit_2_with_a_clear_message(capsys, tmp_path: Path, good_bitstream) -> None:
    capsys.readouterr()
    for what, data in _damaged_files(good_bitstream.read_bytes()).items():
        path = tmp_path / "damaged.bench"
        path.write_bytes(data)
        status = main(["decode", str(path), str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert status == 2, what
        assert err.startswith("bench decode: error: ") and "Traceback" not in err, (what, err)
        if what != "x265 noise":  # x265 quotes ffmpeg's own (multi-line) complaint
            assert err.count("\n") == 1, (what, err)
    assert not list(tmp_path.glob("out_L*.png"))


def test_header_without_codec_name_is_a_clear_error(capsys, tmp_path: Path) -> None:
    path = tmp_path / "nocodec.bench"
    path.write_bytes(pack({"sizes": [[8, 8]]}, b"payload"))
    assert main(["decode", str(path), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("bench decode: error: ")


def test_truncated_file_in_a_real_process_prints_no_traceback(tmp_path: Path, good_bitstream) -> None:
    path = tmp_path / "cut.bench"
    path.write_bytes(good_bitstream.read_bytes()[:-7])
    result = subprocess.run([sys.executable, "-m", "bench", "decode", str(path), str(tmp_path / "out")],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    size = len(unpack(good_bitstream.read_bytes()).payload)
    assert result.stderr.strip() == (
        f"bench decode: error: bitstream is truncated in layer 1 (the file has {size - 7} of {size} payload "
        "bytes); its first 1 layer(s) are complete: decode them with --layers 1"
    )


def test_report_on_a_fresh_small_run(capsys, tmp_path: Path, make_image_folder, x265_ready) -> None:
    try:
        from bench.report import build_report  # noqa: F401  (written by another helper)
    except ImportError as error:
        pytest.skip(f"bench.report.build_report is not there yet: {error}")
    folder = make_image_folder(2, 48, 64)
    run = tmp_path / "run"
    assert main(["run", "--codecs", "x265,simulcast:x265", "--dataset", str(folder), "--scales", "1.5",
                 "--qualities", "27,32,37", "--out", str(run), "--no-progress"]) == 0
    records = RunStore(run).records()
    assert len(records) == 2 * 2 * 3 * 2
    # simulcast costs more bits than single-layer x265 at every layer above the base
    by_key = {(r["codec"], r["image"], r["quality"], r["layer"]): r for r in records}
    for (codec, image, quality, layer), r in by_key.items():
        if codec == "simulcast:x265" and layer == 1:
            assert r["bits_cum"] > by_key[("x265", image, quality, 1)]["bits_cum"]
    report = tmp_path / "report"
    assert main(["report", str(run), "--out", str(report), "--eval-model-json"]) == 0
    capsys.readouterr()
    page = (report / "report.md").read_text()
    assert "x265" in page and "simulcast:x265" in page
    exported = sorted(p.name for p in (report / "eval_model").glob("*.json"))
    assert len(exported) == 4  # 2 codecs x 2 layers
    doc = json.loads((report / "eval_model" / exported[0]).read_text())
    assert set(doc["results"]) == {"psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time", "decoding_time",
                                   "psnr-y", "psnr-u", "psnr-v", "psnr-yuv", "ms-ssim-db"}
    assert doc["yuv_matrix"] == "bt709"
    assert len(doc["results"]["bpp"]) == 3


def test_report_metric_gives_finite_bd_rates_on_that_metric(capsys, tmp_path: Path, make_image_folder,
                                                           x265_ready) -> None:
    folder = make_image_folder(1, 180, 240)  # MS-SSIM needs a side of 161 at the top layer
    run = tmp_path / "run"
    assert main(["run", "--codecs", "x265,simulcast:x265", "--dataset", str(folder), "--scales", "1.5",
                 "--qualities", "27,32,37", "--out", str(run), "--no-progress"]) == 0
    records = RunStore(run).records()
    for r in records:
        assert r["yuv_matrix"] == "bt709" and r["psnr-y"] > 20 and r["psnr-yuv"] > 20
        assert r["encode_kmac_per_pixel"] is None  # x265: torch cannot count it
    top = [r for r in records if r["layer"] == 1]
    assert all(r["ms-ssim-db"] == pytest.approx(-10 * math.log10(1 - r["ms-ssim-rgb"])) for r in top)
    values = {}
    for metric in ("psnr-rgb", "psnr-yuv", "ms-ssim-db"):
        out = tmp_path / metric
        assert main(["report", str(run), "--out", str(out), "--metric", metric]) == 0
        capsys.readouterr()
        bd = pd.read_csv(out / "bdrate.csv")
        row = bd[(bd["codec"] == "simulcast:x265") & (bd["reference"] == "x265") & (bd["layer"] == 1)].iloc[0]
        assert math.isfinite(row["bd_rate"]) and row["bd_rate"] > 0 and row["metric"] == metric
        values[metric] = row["bd_rate"]
        page = (out / "report.md").read_text()
        if metric != "psnr-rgb":
            assert f"--metric {metric}" in page
    assert "BT.709 matrix (Kr 0.2126, Kb 0.0722), full range, 8-bit" in page
    assert len(set(values.values())) == 3  # each metric its own curves


def test_report_without_records_is_a_usage_error(capsys, tmp_path: Path) -> None:
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "no records.jsonl" in capsys.readouterr().err


def test_a_file_cut_after_a_layer_still_decodes_that_prefix(capsys, tmp_path: Path, x265_ready) -> None:
    source = _source(tmp_path)
    bitstream = tmp_path / "full.bench"
    assert main(["encode", "--codec", "simulcast:x265", "--quality", "30", "--scales", "1.5", str(source),
                 str(bitstream)]) == 0
    assert main(["decode", str(bitstream), str(tmp_path / "full")]) == 0
    data = bitstream.read_bytes()
    envelope = unpack(data)
    base_bytes = envelope.header["layer_bytes"][0]
    cut = tmp_path / "cut.bench"
    cut.write_bytes(data[: len(data) - len(envelope.payload) + base_bytes])  # header + layer 0 only
    capsys.readouterr()

    assert main(["decode", str(cut), str(tmp_path / "all")]) == 2
    err = capsys.readouterr().err
    assert "truncated in layer 1" in err and "--layers 1" in err
    assert main(["decode", "--layers", "1", str(cut), str(tmp_path / "base")]) == 0
    np.testing.assert_array_equal(load_rgb(tmp_path / "base_L0.png"), load_rgb(tmp_path / "full_L0.png"))

    damaged = bytearray(data)
    damaged[-3] ^= 0x10  # inside layer 1
    cut.write_bytes(bytes(damaged))
    assert main(["decode", "--layers", "1", str(cut), str(tmp_path / "base2")]) == 0  # layer 0 is intact
    assert main(["decode", str(cut), str(tmp_path / "all")]) == 2
    assert "layer 1 of the bitstream is corrupted" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--anchor", "base:abc"], "base fraction must be a number"),
    (["--device", "foo"], "use cpu or cuda"),
    (["--threads", "-3"], "--threads must be at least 1"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--qualities", ""], "names no quality"),
])
def test_bad_run_options_are_one_line_before_any_job(capsys, tmp_path: Path, make_image_folder, argv, message,
                                                     x265_ready) -> None:
    folder = make_image_folder(1)
    base = ["run", "--codecs", "x265", "--dataset", str(folder), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_repeated_scales_and_qualities_run_once(capsys, tmp_path: Path, make_image_folder, x265_ready) -> None:
    folder = make_image_folder(1)
    out = tmp_path / "run"
    assert main(["run", "--codecs", "x265", "--dataset", str(folder), "--scales", "1.5", "--scales", "1.50",
                 "--qualities", "30,30", "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert sorted((r["layer"], r["quality"]) for r in records) == [(0, 30), (1, 30)]


def test_encode_and_decode_refuse_bad_devices_and_self_overwrite(capsys, tmp_path: Path, x265_ready) -> None:
    source = _source(tmp_path)
    before = source.read_bytes()
    assert main(["encode", "--codec", "x265", "--quality", "30", str(source), str(source)]) == 2
    assert "is the input image" in capsys.readouterr().err and source.read_bytes() == before
    assert main(["encode", "--codec", "x265", "--quality", "30", "--device", "cuda:x", str(source),
                 str(tmp_path / "o.bench")]) == 2
    assert "use cpu or cuda" in capsys.readouterr().err
    assert main(["decode", str(tmp_path), str(tmp_path / "x")]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_report_out_that_is_a_file_and_a_header_without_sizes(capsys, tmp_path: Path, good_bitstream) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["report", str(tmp_path), "--out", str(afile)]) == 2
    assert "is a file" in capsys.readouterr().err
    damaged = tmp_path / "nosizes.bench"
    damaged.write_bytes(good_bitstream.read_bytes().replace(b'"sizes"', b'"rizes"'))
    assert main(["decode", str(damaged), str(tmp_path / "ns")]) == 2
    assert "header is corrupted" in capsys.readouterr().err and not list(tmp_path.glob("ns_L*"))


@pytest.mark.parametrize("codec, quality", [("x265", "99"), ("simulcast:x265", "-1"), ("mean-scale", "9")])
def test_an_impossible_quality_is_refused_before_the_run(capsys, tmp_path: Path, make_image_folder, codec, quality,
                                                         x265_ready) -> None:
    folder = make_image_folder(1)
    assert main(["run", "--codecs", codec, "--qualities", quality, "--dataset", str(folder),
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert quality in capsys.readouterr().err
    assert not (tmp_path / "run" / "records.jsonl").exists()


# --- hostile files and outputs that are inputs (issue 27, defects 1, 3 and 7) ------------------------


def _fake_hm_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A folder whose "SHM decoder" logs that it ran: what a file naming hm@FOLDER would start."""
    folder, log = tmp_path / "evil", tmp_path / "ran.log"
    (folder / "bin").mkdir(parents=True)
    for name in ("TAppEncoderStatic", "TAppDecoderStatic"):
        binary = folder / "bin" / name
        binary.write_text(f"#!/bin/sh\necho ran >> {log}\nexit 1\n")
        binary.chmod(0o755)
    return folder, log


def _hm_payload() -> bytes:
    """An hm bitstream that passes the header and NAL checks, so that decoding reaches the binary."""
    return bytes([0x01]) + (8).to_bytes(2, "big") + (8).to_bytes(2, "big") + b"\x00\x00\x01\x40\x01" + b"\x0c" * 8


def test_a_file_cannot_choose_the_executable_decode_runs(capsys, tmp_path: Path, monkeypatch) -> None:
    folder, log = _fake_hm_folder(tmp_path)
    monkeypatch.delenv("SHM_DIR", raising=False)
    for spec in (f"hm@{folder}", f"hm@{folder}/bin", f"simulcast:hm@{folder}"):
        path = tmp_path / "evil.bench"
        path.write_bytes(pack({"codec": spec, "sizes": [[8, 8]]}, _hm_payload()))
        assert main(["decode", str(path), str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert f"names codec '{spec}', whose @{spec.split('@')[1]} is not a weights source" in err, err
        assert err.count("\n") == 1
    assert not log.exists()
    # The user may name the folder, for the file's codec only.
    path = tmp_path / "hm.bench"
    path.write_bytes(pack({"codec": "hm", "sizes": [[8, 8]]}, _hm_payload()))
    assert main(["decode", "--codec", f"x265@{folder}", str(path), str(tmp_path / "out")]) == 2
    assert "--codec x265@" in capsys.readouterr().err and not log.exists()
    assert main(["decode", "--codec", f"hm@{folder}", str(path), str(tmp_path / "out")]) == 2
    assert log.read_text() == "ran\n"  # the user's binary (failing here on purpose) ran once
    assert "(SHM decoder, layers 0..0) failed with status" in capsys.readouterr().err


def test_encode_writes_no_folder_into_the_file(tmp_path: Path, test_codecs) -> None:
    path = tmp_path / "o.bench"
    # test-raw ignores its source: "@/home/me/bin" stands for a binary folder on the encoding machine
    assert main(["encode", "--codec", "test-raw@/home/me/bin", "--quality", "1", str(_source(tmp_path)),
                 str(path)]) == 0
    assert unpack(path.read_bytes()).header["codec"] == "test-raw"
    assert main(["decode", str(path), str(tmp_path / "dec")]) == 0


def test_decode_never_overwrites_its_input(capsys, tmp_path: Path, test_codecs) -> None:
    bitstream = tmp_path / "x_L0.png"
    assert main(["encode", "--codec", "test-raw", "--quality", "1", str(_source(tmp_path)), str(bitstream)]) == 0
    before = bitstream.read_bytes()
    capsys.readouterr()
    assert main(["decode", str(bitstream), str(tmp_path / "x")]) == 2
    assert "the output " + str(bitstream) + " is the input bitstream" in capsys.readouterr().err
    assert bitstream.read_bytes() == before
    (tmp_path / "link_L0.png").symlink_to(bitstream)
    assert main(["decode", str(bitstream), str(tmp_path / "link")]) == 2
    assert bitstream.read_bytes() == before


def test_encode_to_a_hard_link_of_its_input_is_refused(capsys, tmp_path: Path, test_codecs) -> None:
    source = _source(tmp_path)
    before = source.read_bytes()
    link = tmp_path / "link.bench"
    link.hardlink_to(source)
    assert main(["encode", "--codec", "test-raw", "--quality", "1", str(source), str(link)]) == 2
    assert "is the input image" in capsys.readouterr().err and source.read_bytes() == before


def test_decode_checks_the_header_sizes_before_decoding(capsys, tmp_path: Path, test_codecs) -> None:
    path = tmp_path / "o.bench"
    assert main(["encode", "--codec", "test-raw", "--quality", "1", str(_source(tmp_path)), str(path)]) == 0
    envelope = unpack(path.read_bytes())
    capsys.readouterr()
    # a header claiming a picture above --max-pixels is refused before any codec runs
    big = tmp_path / "big.bench"
    big.write_bytes(pack(dict(envelope.header, sizes=[[4096, 4096]]), envelope.payload))
    assert main(["decode", str(big), str(tmp_path / "a")]) == 2
    assert "layer 0 is 4096x4096 = 16777216 pixels, more than --max-pixels 6000000" in capsys.readouterr().err
    assert main(["decode", "--max-pixels", "3000", str(path), str(tmp_path / "b")]) == 2  # 64x48 = 3072
    assert "more than --max-pixels 3000" in capsys.readouterr().err
    assert main(["decode", "--max-pixels", "3072", str(path), str(tmp_path / "c")]) == 0
    # sizes that are not what the payload decodes to: the header lies
    lying = tmp_path / "lying.bench"
    lying.write_bytes(pack(dict(envelope.header, sizes=[[40, 64]]), envelope.payload))
    assert main(["decode", str(lying), str(tmp_path / "d")]) == 2
    assert "header says layer 0 is 64x40, but its bitstream decodes to 64x48" in capsys.readouterr().err
    assert not list(tmp_path.glob("d_L*.png"))
    # more layers than the codec codes
    many = tmp_path / "many.bench"
    many.write_bytes(pack(dict(envelope.header, sizes=[[48, 64]] * 2, layer_bytes=[1, 1]), envelope.payload))
    assert main(["decode", "--layers", "1", str(many), str(tmp_path / "e")]) == 2
    assert "names 2 layers; test-raw codes at most 1" in capsys.readouterr().err
