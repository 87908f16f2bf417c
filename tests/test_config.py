"""RunConfig: normalised and validated on construction, before any dataset or codec loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import ConfigError, PyramidError, UsageError
from bench.running.config import DEFAULT_RUN_DIR, RunConfig


def test_fields_are_normalised() -> None:
    config = RunConfig(codecs=["x265,simulcast:x265", "x265"], scales=["1.5", "1.50", (1.33, 1.5)],
                       anchor="base", qualities=["1,2", "x265=22,27,22"], out="runs/x")
    assert config.codecs == ("x265", "simulcast:x265")
    assert config.scales == ((1.5,), (1.33, 1.5))  # 1.5 and 1.50 are one combination
    assert config.anchor == "base:0.25"
    assert config.qualities == ((None, (1, 2)), ("x265", (22, 27)))
    assert config.out == Path("runs/x")
    assert config.qualities_for("x265", (32,)) == [22, 27]
    assert config.qualities_for("simulcast:x265", (32,)) == [1, 2]
    assert RunConfig(codecs="x265").out == DEFAULT_RUN_DIR and RunConfig(codecs="x265").scales == ((2.0,),)


def test_a_mapping_of_qualities_is_per_codec() -> None:
    config = RunConfig(codecs=["x265", "mean-scale"], qualities={"x265": [37, 32, 37]})
    assert config.qualities_for("x265", (22,)) == [37, 32]
    assert config.qualities_for("mean-scale", (1, 2)) == [1, 2]
    with pytest.raises(ConfigError, match="'compass', which is not in codecs"):
        RunConfig(codecs=["x265"], qualities={"compass": [1]})


@pytest.mark.parametrize("changes,message", [
    ({"codecs": [" , "]}, "--codecs names no codec"),
    ({"jobs": 0}, "--jobs must be at least 1"),
    ({"threads": 0}, "--threads must be at least 1"),
    ({"repeats": 0}, "--repeats must be at least 1"),
    ({"limit": 0}, "--limit must be at least 1"),
    ({"device": "gpu"}, "use cpu or cuda"),
    ({"qualities": ["a,b"]}, "--qualities expects integers"),
    ({"qualities": ["compass=1"]}, "'compass', which is not in --codecs"),
])
def test_bad_values_are_refused_before_anything_loads(changes: dict, message: str, monkeypatch) -> None:
    import bench.datasets
    import bench.registry

    def must_not_load(*args, **kwargs):
        raise AssertionError("loaded before the configuration was valid")

    monkeypatch.setattr(bench.datasets, "load_dataset", must_not_load)
    monkeypatch.setattr(bench.registry, "create_codec", must_not_load)
    with pytest.raises(UsageError, match=message):
        RunConfig(**{"codecs": ["x265"], **changes})


def test_scale_and_anchor_syntax_is_checked_at_once() -> None:
    with pytest.raises(PyramidError):
        RunConfig(codecs=["x265"], scales=["0.5"])
    with pytest.raises(PyramidError):
        RunConfig(codecs=["x265"], anchor="middle")


def test_coding_threads_follow_jobs_and_scheduler(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert RunConfig(codecs=["x265"], jobs=2).coding_threads == 4
    assert RunConfig(codecs=["x265"], jobs=16).coding_threads == 1
    assert RunConfig(codecs=["x265"], scheduler="tcp://h:1").coding_threads == 1
    assert RunConfig(codecs=["x265"], threads=3, jobs=2).coding_threads == 3


def test_scales_1_is_a_single_layer_run_for_single_layer_codecs() -> None:
    config = RunConfig(codecs=["jpeg,x265,mean-scale"], scales=["1", "1.0", (), (1,)])
    assert config.scales == ((),)  # every spelling of one layer is the one combination
    assert RunConfig(codecs=["x265"], scales=[(1.33, 1.5), (2,)]).scales == ((1.33, 1.5), (2.0,))


@pytest.mark.parametrize("codecs", [["compass"], ["x265,simulcast:x265"], ["shvc"]])
def test_scales_1_is_refused_for_scalable_codecs(codecs: list[str]) -> None:
    scalable = [spec for spec in codecs[0].split(",") if spec != "x265"]
    with pytest.raises(ConfigError, match=f"single-layer codecs; scalable codec\\(s\\) {scalable[0]} code at least "
                                          "two layers"):
        RunConfig(codecs=codecs, scales=["1"])


def test_scales_1_needs_top_anchoring() -> None:
    with pytest.raises(ConfigError, match="--anchor base:0.25 would code a smaller one"):
        RunConfig(codecs=["x265"], scales=["1"], anchor="base:0.25")


def test_scales_typed_with_underscore_are_refused_not_read_as_15() -> None:
    with pytest.raises(PyramidError, match="decimal numbers"):
        RunConfig(codecs=["x265"], scales=["1_5"])


def test_max_pixels_defaults_to_the_images_limit_and_must_be_positive() -> None:
    from bench.images import DEFAULT_MAX_PIXELS

    assert RunConfig(codecs=["x265"]).max_pixels == DEFAULT_MAX_PIXELS
    assert RunConfig(codecs=["x265"], max_pixels=81_000_000).max_pixels == 81_000_000
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ConfigError, match="--max-pixels must be a whole number of at least 1"):
            RunConfig(codecs=["x265"], max_pixels=bad)
