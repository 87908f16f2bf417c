"""What the VTM tests share: the recorded sample, cfg parsing, the skip when VTM is missing, pictures.

The recorded sample (``tests/codecs/data/vtm/sample_2layer_444_qp32.*``) is bench's own ``vtm-ml``
encode of ``sample_layers()`` at QP 32 with VTM-23.13: the picture ``bench vtm build`` checks its
binaries with. ``.bit`` is the VTM Annex-B stream without bench's 9-byte header, ``.encoder.log``
what EncoderApp printed, ``.decoder.log`` what DecoderApp printed for ``-p 1`` (both layers). To
record it again (after a deliberate change of what bench tells VTM):

    VTM_DIR=/path/to/VTM/bin python -m tests.codecs.vtm.helpers
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bench.codecs.external import check_frame
from bench.codecs.vtm.build import INTRA_CFG as INTRA_CFG_PATH
from bench.codecs.vtm.build import default_out
from bench.codecs.vtm.plugin import VtmCodec

DATA = Path(__file__).parents[1] / "data" / "vtm"
SAMPLE = DATA / "sample_2layer_444_qp32.bit"
SAMPLE_LOG = DATA / "sample_2layer_444_qp32.encoder.log"
SAMPLE_DECODER_LOG = DATA / "sample_2layer_444_qp32.decoder.log"
SAMPLE_SIZES = [(64, 48), (128, 96)]  # (width, height) of the sample's layers, smallest first
SAMPLE_QP = 32
SAMPLE_VERSION = "23.13"  # the VTM that recorded it

AVAILABILITY = VtmCodec().availability()
needs_vtm = pytest.mark.skipif(
    not AVAILABILITY.available,
    reason=f"VTM unavailable (export VTM_DIR=/path/to/VTM/bin to run it): {AVAILABILITY.reason}",
)


def sample_layers() -> list[np.ndarray]:
    """The layers the sample was coded from: ``bench vtm build``'s check picture and its 2:1 subsample."""
    top = check_frame(96, 128)
    return [top[::2, ::2].copy(), top]


def cfg_values(text: str) -> dict[str, str]:
    """``Key : value`` lines of a VTM cfg, comments dropped."""
    values = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(":")
            values[key.strip()] = value.strip()
    return values


def cfg_items(text: str) -> list[tuple[str, str]]:
    """``(key, value)`` of every ``Key : value`` line in order, comments dropped, spaces normalised."""
    items = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(":")
            items.append((key.strip(), " ".join(value.split())))
    return items


def vtm_source_trees() -> list[Path]:
    """VTM source roots this machine may hold: ``$BENCH_VTM_SOURCE`` (a folder), the tree ``bench
    vtm build`` unpacked beside ``$VTM_DIR`` (OUT/bin next to OUT/src), and the default build
    folder of VTM-23.13. Only read, never written."""
    candidates: list[Path] = []
    if os.environ.get("BENCH_VTM_SOURCE"):
        candidates.append(Path(os.environ["BENCH_VTM_SOURCE"]))
    if os.environ.get("VTM_DIR"):
        candidates.append(Path(os.environ["VTM_DIR"]).parent / "src")
    candidates.append(default_out(Path("VTM-23.13")) / "src")
    roots = []
    for folder in candidates:
        if not folder.is_dir():
            continue
        for root in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
            if (root / INTRA_CFG_PATH).is_file() and root not in roots:
                roots.append(root)
    return roots


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse > 0 else float("inf")


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


def record_sample() -> None:
    """Encode ``sample_layers()`` with the VTM of ``$VTM_DIR`` and write the sample's three files."""
    from bench.codecs.vtm.plugin import VtmMultiLayerCodec

    codec = VtmMultiLayerCodec()
    encoded = codec.encode(sample_layers(), SAMPLE_QP)
    run = codec.last_encode
    assert run is not None and run.version == SAMPLE_VERSION, f"record with VTM {SAMPLE_VERSION}, not {run}"
    header = 1 + 4 * len(SAMPLE_SIZES)
    SAMPLE.write_bytes(encoded.data[header:])
    SAMPLE_LOG.write_text(run.logs[0])  # EncoderApp
    SAMPLE_DECODER_LOG.write_text(run.logs[-1])  # DecoderApp -p 1, the last of the checks
    print(f"wrote {SAMPLE} ({len(encoded.data) - header} bytes, layer bytes {encoded.layer_bytes}) and its logs")


if __name__ == "__main__":
    record_sample()
