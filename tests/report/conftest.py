"""Synthetic run directories with known RD curves, for the report tests (fixtures ``make_records``,
``write_run``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.storage.records import Record

IMAGES = ("kodim01.png", "kodim02.png", "kodim03.png")
QUALITIES = (1, 2, 3, 4)


def psnr_of(image_index: int, quality: int, layer: int) -> float:
    return 26.0 + 2.5 * quality + 0.5 * image_index + 0.8 * layer


def bpp_of(image_index: int, quality: int, layer: int) -> float:
    return 0.1 * 1.6**quality * (1.0 + 0.1 * image_index) * (1.0 + 0.3 * layer)


def _records_for(
    codec: str,
    rate_factor: float,
    mode: str,
    scales: list[float],
    anchor: str = "top",
    dataset: str = "kodak",
    images: tuple[str, ...] = IMAGES,
    qualities: tuple[int, ...] = QUALITIES,
    sizes: tuple[tuple[int, int], ...] = ((48, 64), (72, 96)),
    psnr_offset: float = 0.0,
    params: int | None = None,
) -> list[dict]:
    """Records whose bpp is ``rate_factor`` times the reference curve at the same PSNR."""
    out = []
    for i, image in enumerate(images):
        for q in qualities:
            for layer, (height, width) in enumerate(sizes):
                bpp = bpp_of(i, q, layer) * rate_factor
                bits = round(bpp * height * width)
                out.append(
                    Record(
                        codec=codec,
                        dataset=dataset,
                        image=image,
                        scales=list(scales),
                        anchor=anchor,
                        quality=q,
                        layer=layer,
                        num_layers=len(sizes),
                        height=height,
                        width=width,
                        bits_layer=bits,
                        bits_cum=bits,
                        bpp=bpp,
                        psnr_rgb=psnr_of(i, q, layer) + psnr_offset,
                        ms_ssim_rgb=None if layer == 0 else 0.9 + 0.01 * q,
                        encode_time=0.1 * (layer + 1),
                        decode_time=0.05 * (layer + 1),
                        mode=mode,
                        extra={"params": params} if params else {},
                    ).to_json()
                )
    return out


def _write_run(run_dir: Path, records: list[dict], manifest: dict | None = None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "records.jsonl", "w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    (run_dir / "manifest.json").write_text(json.dumps(manifest or {"git_commit": "abc123", "args": ["run"]}))
    return run_dir


@pytest.fixture(scope="session")
def make_records():
    return _records_for


@pytest.fixture(scope="session")
def write_run():
    return _write_run


@pytest.fixture(scope="session")
def three_codec_run(tmp_path_factory):
    """A Kodak run (top anchoring, scales 1.5, three images) of x265, simulcast:x265 at 1.1× its
    rate and compass at 0.8× at every PSNR: simulcast:x265 against x265 is +10 %, compass against
    x265 −20 % and against simulcast:x265 0.8 / 1.1 − 1 = −27.3 %, at both layers."""
    records = (_records_for("x265", 1.0, "single", [1.5]) + _records_for("simulcast:x265", 1.1, "scalable", [1.5])
               + _records_for("compass", 0.8, "scalable", [1.5]))
    return _write_run(tmp_path_factory.mktemp("three") / "run", records)
