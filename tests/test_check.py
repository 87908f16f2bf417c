"""`bench check`: passes against a baseline it just wrote, fails (showing the moved row) when a codec's
output or the baseline changes, and cannot pass on nothing: an empty or shrunken baseline, a missing
codec (unless --allow-missing names it) and a smaller --update (unless --force) fail."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.codec import Availability, Codec, CodecInfo, Encoded
from bench.errors import UsageError
from bench.registry import _REGISTRY, register_codec
from bench.tools.check import CheckConfig, CheckError, check


class _Quantizer(Codec):
    """Deterministic lossy codec in pure Python: pixels quantised with step ``STEP[quality]``, zlib'd."""

    info = CodecInfo(scalable=False, default_qualities=(1, 2))
    STEP = {1: 24, 2: 6}

    def encode(self, layers, quality: int) -> Encoded:
        (image,) = layers
        step = self.STEP[quality]
        header = np.array([*image.shape[:2], step], ">u2").tobytes()
        data = header + zlib.compress((image // step).astype(np.uint8).tobytes(), 9)
        return Encoded(data, [len(data)])

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        height, width, step = np.frombuffer(data[:6], ">u2")
        q = np.frombuffer(zlib.decompress(data[6:]), np.uint8).reshape(height, width, 3)
        return [np.clip(q.astype(np.int32) * step + step // 2, 0, 255).astype(np.uint8)]


class _Missing(_Quantizer):
    def availability(self) -> Availability:
        return Availability.missing("deliberately unavailable for the test")


@pytest.fixture
def codecs(monkeypatch: pytest.MonkeyPatch):
    for name, cls in (("check-quant", _Quantizer), ("check-missing", _Missing)):
        register_codec(name)(cls)
    monkeypatch.setattr(_Quantizer, "STEP", dict(_Quantizer.STEP))
    yield
    for name in ("check-quant", "check-missing"):
        _REGISTRY.pop(name, None)


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for index in range(3):
        y, x = np.mgrid[0:48, 0:64]
        base = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) + rng.integers(-20, 21, (48, 64, 3))
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(folder / f"im{index}.png")
    return folder


def _config(images: Path, extra: dict | None = None) -> CheckConfig:
    qualities = {"check-quant": (1, 2), "simulcast:check-quant": (1, 2), **(extra or {})}
    return CheckConfig(dataset=str(images), limit=2, scales=("1.5", "1.33,1.5"), qualities=qualities,
                       bd_pairs=(("simulcast:check-quant", "check-quant"),))


def _run(config: CheckConfig, baseline: Path, **kwargs) -> tuple[int, str]:
    """``bench check``'s exit status and text for ``check``'s result."""
    result = check(config, baseline, **kwargs)
    assert result.passed == (not result.reasons)  # a failure always says why
    return (0 if result.passed else 1), result.text


def test_check_passes_against_the_baseline_it_just_wrote(codecs, images: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "check.json"
    status, text = _run(_config(images), baseline, update=True)
    assert status == 0 and baseline.is_file(), text
    document = json.loads(baseline.read_text())
    # 2 images x (2 + 3 layers) x 2 qualities, for each of the two codecs
    assert len(document["records"]) == 2 * 5 * 2 * 2
    assert set(document["codecs"]) == {"check-quant", "simulcast:check-quant"}
    # Simulcast of layers 0..k costs more than layer k alone: positive BD-rate for every layer >= 1.
    assert len(document["bdrate"]) == 3 and all(v > 0 for v in document["bdrate"].values())

    status, text = _run(_config(images), baseline)
    assert status == 0, text
    assert "nothing moved" in text and "bench check: passed" in text
    assert "check-quant" in text and "exact" in text
    # the library call prints nothing and returns what it found
    result = check(_config(images), baseline)
    assert result.passed and result.written is None and result.comparison is not None
    assert result.comparison.compared == {"check-quant": 20, "simulcast:check-quant": 20}
    assert not result.comparison.moved and len(result.run.records) == 40


def test_changed_quality_mapping_fails_with_the_moved_rows(codecs, images: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "check.json"
    assert _run(_config(images), baseline, update=True)[0] == 0
    _Quantizer.STEP[2] = 7  # what a changed quality mapping does to a codec's output
    status, text = _run(_config(images), baseline)
    assert status == 1
    assert "FAILED" in text and "what moved" in text
    # The rows of quality 2 moved, in bits and PSNR; quality 1 did not.
    moved = [line for line in text.splitlines() if "FAIL" in line and "|2|" in line]
    assert any(" bits " in line for line in moved) and any(" psnr " in line for line in moved)
    assert not [line for line in text.splitlines() if re.search(r"im\d\.png\|[\d.,]+\|1\|", line)]


def test_altered_baseline_value_is_reported(codecs, images: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "check.json"
    assert _run(_config(images), baseline, update=True)[0] == 0
    document = json.loads(baseline.read_text())
    key = "check-quant|im1.png|1.5|1|1"
    document["records"][key]["psnr"] += 1e-3  # beyond the exact limit (1e-6)
    baseline.write_text(json.dumps(document))
    status, text = _run(_config(images), baseline)
    assert status == 1
    (row,) = [line for line in text.splitlines() if "im1.png|1.5|1|1" in line]
    assert "psnr" in row and "FAIL" in row and "-1.00e-03" in row


def test_a_fingerprint_change_in_the_baseline_is_reported_and_buys_only_the_cross_machine_limits(
        codecs, images: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "check.json"
    assert _run(_config(images), baseline, update=True)[0] == 0
    document = json.loads(baseline.read_text())
    document["codecs"]["check-quant"]["fingerprint"]["torch"] = "0.0-other"
    document["codecs"]["simulcast:check-quant"]["deterministic"] = False
    baseline.write_text(json.dumps(document))
    status, text = _run(_config(images), baseline)  # the values themselves did not move
    assert status == 0, text
    (row,) = [line for line in text.splitlines() if "fingerprint torch" in line]
    assert "0.0-other" in row and "changed" in row
    (row,) = [line for line in text.splitlines() if " deterministic " in line]
    assert "simulcast:check-quant" in row and "changed" in row
    assert "tolerance" not in text  # a baseline's flag never buys the 2 % limits

    key = "check-quant|im0.png|1.5|2|1"
    bits = document["records"][key]["bits"]
    document["records"][key]["bits"] = round(bits * 1.01)  # 1 %: under the loose 2 %, over cross-machine 0.2 %
    baseline.write_text(json.dumps(document))
    status, text = _run(_config(images), baseline)
    assert status == 1, text
    (row,) = [line for line in text.splitlines() if "im0.png|1.5|2|1" in line]
    assert "bits" in row and "FAIL" in row and "0.2%" in row
    assert "the fingerprints of check-quant differ from the baseline's" in text

    # float drift of another CPU (measured Xeon → EPYC: ≤ 0.0055 dB) passes; a 0.04 dB change does not
    document["records"][key]["bits"] = bits
    psnr = document["records"][key]["psnr"]
    document["records"][key]["psnr"] = psnr + 0.005
    baseline.write_text(json.dumps(document))
    status, text = _run(_config(images), baseline)
    assert status == 0, text
    document["records"][key]["psnr"] = psnr + 0.04
    baseline.write_text(json.dumps(document))
    assert _run(_config(images), baseline)[0] == 1
    # with its own fingerprint, the same codec is held to the exact limits: 0.005 dB fails
    document["codecs"]["check-quant"]["fingerprint"]["torch"] = json.loads(
        _fresh_fingerprint(images, tmp_path))["torch"]
    document["records"][key]["psnr"] = psnr + 0.005
    baseline.write_text(json.dumps(document))
    assert _run(_config(images), baseline)[0] == 1


def _fresh_fingerprint(images: Path, tmp_path: Path) -> str:
    fresh = tmp_path / "fresh.json"
    assert _run(_config(images), fresh, update=True)[0] == 0
    return json.dumps(json.loads(fresh.read_text())["codecs"]["check-quant"]["fingerprint"])


class _Toggle(_Quantizer):
    """Available while ``AVAILABLE``: a codec whose tools go missing between two runs."""

    AVAILABLE = True

    def availability(self) -> Availability:
        return Availability.ok() if self.AVAILABLE else Availability.missing("its tools went missing")


@pytest.fixture
def toggle(codecs, monkeypatch: pytest.MonkeyPatch):
    register_codec("check-toggle")(_Toggle)
    monkeypatch.setattr(_Toggle, "AVAILABLE", True)
    yield _Toggle
    _REGISTRY.pop("check-toggle", None)


def test_an_unavailable_codec_fails_unless_allow_missing_names_it(toggle, images: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "check.json"
    config = _config(images, {"check-toggle": (1, 2)})
    assert _run(config, baseline, update=True)[0] == 0
    toggle.AVAILABLE = False
    status, text = _run(config, baseline)
    assert status == 1, text
    assert "its tools went missing" in text and "--allow-missing check-toggle" in text
    assert "codecs of the baseline not compared: check-toggle" in text
    status, text = _run(config, baseline, allow_missing=["check-toggle"])
    assert status == 0, text
    assert "skip unavailable here (--allow-missing): its tools went missing" in text
    status, text = _run(config, baseline, allow_missing=["check-toggle"], strict=True)
    assert status == 1 and "--strict and unavailable: check-toggle" in text
    with pytest.raises(UsageError, match="--allow-missing names nonesuch"):
        _run(config, baseline, allow_missing=["check-toggle,nonesuch"])


def test_a_codec_missing_without_a_reason_fails_even_when_allowed(toggle, images: Path, tmp_path: Path,
                                                                   monkeypatch) -> None:
    baseline = tmp_path / "check.json"
    config = _config(images, {"check-toggle": (1, 2)})
    assert _run(config, baseline, update=True)[0] == 0
    monkeypatch.setattr(_Toggle, "availability", lambda self: Availability.missing(""))
    status, text = _run(config, baseline, allow_missing=["check-toggle"])
    assert status == 1 and "no reason given" in text


def test_update_refuses_a_smaller_baseline_without_force(toggle, images: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "check.json"
    config = _config(images, {"check-toggle": (1, 2)})
    assert _run(config, baseline, update=True)[0] == 0
    before = baseline.read_bytes()
    toggle.AVAILABLE = False
    status, text = _run(config, baseline, update=True)
    assert status == 1 and "baseline NOT updated" in text and "without check-toggle" in text and "--force" in text
    assert baseline.read_bytes() == before
    status, text = _run(config, baseline, update=True, force=True)
    assert status == 0, text
    assert "check-toggle" not in json.loads(baseline.read_text())["codecs"]
    with pytest.raises(UsageError, match="--force only applies to --update"):
        _run(config, baseline, force=True)


def test_all_codecs_unavailable_checks_nothing_and_fails(codecs, images: Path, tmp_path: Path, monkeypatch) -> None:
    """Tools and weights missing: 0 records compared must not pass, and --update must not write that."""
    baseline = tmp_path / "check.json"
    assert _run(_config(images), baseline, update=True)[0] == 0
    monkeypatch.setattr(_Quantizer, "availability", lambda self: Availability.missing("no tools here"))
    status, text = _run(_config(images), baseline)
    assert status == 1, text
    assert "codecs of the baseline not compared: check-quant, simulcast:check-quant" in text
    before = baseline.read_bytes()
    for force in (False, True):
        status, text = _run(_config(images), baseline, update=True, force=force)
        assert status == 1 and "baseline NOT updated" in text and "empty baseline" in text
    assert baseline.read_bytes() == before


def test_an_empty_baseline_is_an_error(codecs, images: Path, tmp_path: Path, monkeypatch) -> None:
    from bench.tools import check as check_module

    monkeypatch.setattr(check_module, "run_configuration", lambda *a, **k: pytest.fail("ran before refusing"))
    baseline = tmp_path / "empty.json"
    empty = {"format": 1, "config": _config(images).describe(), "codecs": {}, "records": {}, "bdrate": {}}
    baseline.write_text(json.dumps(empty))
    with pytest.raises(CheckError, match="empty baseline"):
        _run(_config(images), baseline)
    baseline.write_text(json.dumps({"format": 1}))
    with pytest.raises(CheckError, match="no records or codecs"):
        _run(_config(images), baseline)


def test_a_baseline_with_records_deleted_fails(codecs, images: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "check.json"
    assert _run(_config(images), baseline, update=True)[0] == 0
    original = baseline.read_text()
    document = json.loads(original)
    dropped = [key for key in document["records"] if key.startswith("simulcast:check-quant|")]
    for key in [*dropped, "check-quant|im1.png|1.5|1|1"]:
        del document["records"][key]
    baseline.write_text(json.dumps(document))
    status, text = _run(_config(images), baseline)
    assert status == 1, text
    absent = [line for line in text.splitlines() if " absent " in line and "FAIL" in line]
    assert len(absent) == len(dropped) + 1

    document = json.loads(original)
    del document["bdrate"][sorted(document["bdrate"])[0]]
    baseline.write_text(json.dumps(document))
    status, text = _run(_config(images), baseline)
    assert status == 1 and [line for line in text.splitlines() if "bd-rate %" in line and " absent " in line]

    document = json.loads(original)
    del document["codecs"]["check-quant"]  # its records kept: nothing says how to compare them
    baseline.write_text(json.dumps(document))
    status, text = _run(_config(images), baseline)
    assert status == 1 and "no codec entry" in text


def test_other_configuration_or_missing_baseline_is_an_error(codecs, images: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "check.json"
    with pytest.raises(CheckError, match="--update"):
        _run(_config(images), baseline)
    assert _run(_config(images), baseline, update=True)[0] == 0
    other = CheckConfig(dataset=str(images), limit=1, scales=("1.5",), qualities={"check-quant": (1, 2)},
                        bd_pairs=())
    with pytest.raises(CheckError, match="another check configuration"):
        _run(other, baseline)


def test_an_unusable_baseline_is_refused_before_anything_runs(codecs, images: Path, tmp_path: Path,
                                                               monkeypatch) -> None:
    from bench.tools import check as check_module

    def never(*args, **kwargs):
        raise AssertionError("the configuration ran before the baseline was read")

    monkeypatch.setattr(check_module, "run_configuration", never)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("garbage")
    with pytest.raises(CheckError, match="not JSON"):
        _run(_config(images), garbage)
    with pytest.raises(CheckError, match="no baseline"):
        _run(_config(images), tmp_path / "missing.json")
    garbage.write_text("[1, 2]")
    with pytest.raises(CheckError, match="format"):
        _run(_config(images), garbage)


def test_committed_baseline_matches_the_default_configuration() -> None:
    from bench.tools.check import DEFAULT_BASELINE

    document = json.loads(DEFAULT_BASELINE.read_text())
    assert document["config"] == CheckConfig().describe()
    assert "x265" in document["codecs"] and document["codecs"]["x265"]["fingerprint"]["x265"]
    # every record of x265 at each layer of both scale combinations, 2 images x 2 qualities
    assert sum(key.startswith("x265|") for key in document["records"]) == 2 * 2 * (2 + 3)


def test_the_check_run_writes_the_run_manifest_entry_with_what_the_gate_compares(codecs, images: Path,
                                                                                 tmp_path: Path) -> None:
    from bench.storage.store import RunStore
    from bench.tools.check import run_configuration

    config = _config(images, {"check-missing": (1,)})
    run = run_configuration(config, tmp_path / "run")
    assert len(run.records) == 2 * 5 * 2 * 2 and run.failed == []
    (entry,) = RunStore(tmp_path / "run").manifest()["invocations"]
    # the entry bench run writes (one manifest type), with the check's configuration and codec flags
    assert list(entry)[:12] == ["started", "argv", "dataset", "scales", "anchor", "device", "threads", "repeats",
                                "jobs", "scheduler", "yuv_matrix", "codecs"]
    assert entry["check"] == config.describe() and entry["scales"] == ["1.5", "1.33,1.5"]
    quant = entry["codecs"]["check-quant"]
    assert quant["available"] and quant["qualities"] == [1, 2] and quant["deterministic"] is True
    assert quant["fingerprint"] == run.codecs["check-quant"]["fingerprint"]
    assert entry["codecs"]["check-missing"] == {"available": False, "reason": "deliberately unavailable for the test",
                                                "deterministic": True}
