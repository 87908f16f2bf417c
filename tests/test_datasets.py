"""Datasets: Kodak verified in place from the shared data root, checksum errors, folders of images."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.datasets import DatasetError, default_data_root, load_dataset, read_checksums, verify_checksums

from .conftest import SHARED_DATA

needs_shared_kodak = pytest.mark.skipif(
    not (SHARED_DATA / "kodak" / "SHA256SUMS").is_file(), reason=f"no shared Kodak at {SHARED_DATA}"
)


@needs_shared_kodak
def test_kodak_verified_from_the_shared_root_via_bench_data(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    monkeypatch.setenv("BENCH_DATA", str(SHARED_DATA))
    monkeypatch.chdir(tmp_path)  # BENCH_DATA, not the working directory, must find it
    assert default_data_root() == SHARED_DATA
    dataset = load_dataset("kodak")  # verifies all 24 checksums
    assert dataset.name == "kodak"
    assert [p.name for p in dataset.images] == [f"kodim{i:02d}.png" for i in range(1, 25)]
    assert all(p.parent == SHARED_DATA / "kodak" for p in dataset.images)  # read in place, not copied
    limited = load_dataset("kodak", limit=2)
    assert [p.name for p in limited.images] == ["kodim01.png", "kodim02.png"]


def _fake_kodak(make_image_folder: Callable[..., Path], count: int = 3) -> Path:
    """A data root whose kodak/ holds ``count`` small generated images and their SHA256SUMS."""
    folder = make_image_folder(count, 24, 32, name="root/kodak", checksums=True)
    return folder.parent


def test_checksummed_copy_loads(make_image_folder) -> None:
    root = _fake_kodak(make_image_folder)
    dataset = load_dataset("kodak", data_root=root)
    assert [p.name for p in dataset.images] == ["img00.png", "img01.png", "img02.png"]
    assert dataset.label.startswith("Kodak")


def test_checksum_mismatch_names_the_file(make_image_folder) -> None:
    root = _fake_kodak(make_image_folder)
    damaged = root / "kodak" / "img01.png"
    data = bytearray(damaged.read_bytes())
    data[-20] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="checksum mismatch") as caught:
        load_dataset("kodak", data_root=root)
    assert str(damaged) in str(caught.value)
    # --limit 1 verifies only the image it uses, which is intact.
    assert [p.name for p in load_dataset("kodak", data_root=root, limit=1).images] == ["img00.png"]


def test_missing_file_listed_in_sha256sums(make_image_folder) -> None:
    root = _fake_kodak(make_image_folder)
    (root / "kodak" / "img02.png").unlink()
    with pytest.raises(DatasetError, match="missing") as caught:
        load_dataset("kodak", data_root=root)
    assert "img02.png" in str(caught.value)


def test_missing_sha256sums(make_image_folder) -> None:
    root = _fake_kodak(make_image_folder)
    (root / "kodak" / "SHA256SUMS").unlink()
    with pytest.raises(DatasetError, match="SHA256SUMS"):
        load_dataset("kodak", data_root=root)


def test_missing_dataset_folder_says_how_to_point_at_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="BENCH_DATA"):
        load_dataset("clic", data_root=tmp_path)


def test_file_not_listed_is_refused(make_image_folder) -> None:
    root = _fake_kodak(make_image_folder)
    with pytest.raises(DatasetError, match="not listed"):
        verify_checksums(root / "kodak", ["extra.png"])


def test_read_checksums_accepts_binary_marker_and_uppercase(tmp_path: Path) -> None:
    (tmp_path / "SHA256SUMS").write_text("ABCDEF  a.png\n\n0123 *b.png\n")
    assert read_checksums(tmp_path) == {"a.png": "abcdef", "b.png": "0123"}


def test_malformed_sha256sums_is_a_dataset_error(tmp_path: Path) -> None:
    (tmp_path / "SHA256SUMS").write_text("justonetoken\n")
    with pytest.raises(DatasetError, match="SHA256SUMS"):
        read_checksums(tmp_path)


def test_any_folder_of_images_is_a_dataset(make_image_folder) -> None:
    folder = make_image_folder(3, 24, 32, name="mine")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    shutil.copy(folder / "img00.png", folder / "sub" / "nested.png")
    dataset = load_dataset(str(folder))
    assert dataset.name == str(folder)
    assert [p.name for p in dataset.images] == ["img00.png", "img01.png", "img02.png"]
    assert [p.name for p in load_dataset(str(folder), limit=2).images] == ["img00.png", "img01.png"]
    with pytest.raises(DatasetError, match="limit"):
        load_dataset(str(folder), limit=0)


def test_empty_folder_and_unknown_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
