"""Which pictures training reads: every folder of train/ by default, a chosen few on request, and
never an evaluation picture (Kodak, CLIC), whatever its name or folder."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.errors import TrainingError
from bench.train.data import OLD_SET_FOLDERS, list_training_images

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def _picture(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _data_root(tmp_path: Path) -> Path:
    """A data root like ../shared/datasets: train/ with PNG and JPEG folders, kodak/ with its sums."""
    root = tmp_path / "datasets"
    _picture(root / "train" / "sun_hays80" / "a.png", 1)
    _picture(root / "train" / "urban100" / "b.png", 2)
    for seed, name in enumerate(("tecnick100", "wikipedia_photos"), 10):
        _picture(root / "train" / name / f"{name}.png", seed)
    _picture(root / "train" / "osie" / "c.jpg", 3)
    _picture(root / "train" / "osie" / "deeper" / "d.jpeg", 4)
    _picture(root / "kodak" / "kodim01.png", 5)
    digest = hashlib.sha256((root / "kodak" / "kodim01.png").read_bytes()).hexdigest()
    (root / "kodak" / "SHA256SUMS").write_text(f"{digest}  kodim01.png\n")
    return root


def test_training_reads_every_folder_png_and_jpeg_by_default(tmp_path):
    root = _data_root(tmp_path)
    names = [p.name for p in list_training_images(root / "train")]
    # sorted by path, so that a seed gives the same crops on any machine
    assert names == ["c.jpg", "d.jpeg", "a.png", "tecnick100.png", "b.png", "wikipedia_photos.png"]


def test_train_folders_choose_folders_and_old_names_the_328_picture_set(tmp_path):
    root = _data_root(tmp_path)
    assert {p.name for p in list_training_images(root / "train", ["osie"])} == {"c.jpg", "d.jpeg"}
    old = {p.name for p in list_training_images(root / "train", ["old"])}
    assert old == {"a.png", "b.png", "tecnick100.png", "wikipedia_photos.png"}
    assert "sun_hays80" in OLD_SET_FOLDERS and "osie" not in OLD_SET_FOLDERS
    with pytest.raises(TrainingError, match="no training folder nope"):
        list_training_images(root / "train", ["nope"])
    with pytest.raises(TrainingError):
        list_training_images(root / "train", [".."])


def test_an_evaluation_picture_cannot_enter_training_by_copy_or_by_link(tmp_path):
    root = _data_root(tmp_path)
    copy = root / "train" / "osie" / "innocent.png"
    shutil.copy(root / "kodak" / "kodim01.png", copy)
    with pytest.raises(TrainingError, match="kodak/kodim01.png"):
        list_training_images(root / "train")
    copy.unlink()
    (root / "train" / "osie" / "linked.png").symlink_to(root / "kodak" / "kodim01.png")
    with pytest.raises(TrainingError, match="evaluation picture"):
        list_training_images(root / "train")


@pytest.mark.skipif(not (SHARED / "train").is_dir(), reason="../shared/datasets is not beside the project")
def test_the_shared_training_set_has_no_kodak_or_clic_picture_and_the_old_set_is_328():
    full = list_training_images(SHARED / "train")
    assert len(full) == 1278
    assert len(list_training_images(SHARED / "train", ["old"])) == 328
    assert not any(part in ("kodak", "clic") for p in full for part in p.resolve().parts)
