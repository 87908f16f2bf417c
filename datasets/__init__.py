"""Datasets: Kodak and CLIC read in place from the shared data root, or any folder of images.

The data root is, in order: an explicit ``data_root`` argument (``--data-root``), the environment
variable ``BENCH_DATA``, then ``../shared/datasets`` relative to the working directory and to the
repository. Kodak and CLIC are verified against their ``SHA256SUMS`` before use; nothing is copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.errors import DatasetError
from bench.hashing import sha256_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class KnownDataset:
    name: str
    folder: str  # below the data root
    label: str  # how results on it are labelled in reports
    expected_images: int


KNOWN_DATASETS: dict[str, KnownDataset] = {
    "kodak": KnownDataset("kodak", "kodak", "Kodak (24 images)", 24),
    "clic": KnownDataset(
        "clic", "clic", "CLIC 2020 pro-valid, 30-image subset (30 of 41; not comparable to 41-image averages)", 30
    ),
}


@dataclass(frozen=True)
class Dataset:
    name: str
    label: str
    images: tuple[Path, ...]

    def limited(self, limit: int | None) -> Dataset:
        if limit is None:
            return self
        if limit < 1:
            raise DatasetError(f"--limit must be at least 1, got {limit}")
        return Dataset(self.name, self.label, self.images[:limit])


def default_data_root() -> Path:
    """Where the shared datasets are when nothing says otherwise (see module docstring)."""
    if os.environ.get("BENCH_DATA"):
        return Path(os.environ["BENCH_DATA"])
    candidates = [Path.cwd() / ".." / "shared" / "datasets",
                  Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return candidates[0]


def read_checksums(folder: Path) -> dict[str, str]:
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise DatasetError(f"{sums} is missing: cannot verify the dataset in {folder}")
    entries = {}
    for number, line in enumerate(sums.read_text(errors="replace").splitlines(), 1):
        if line.strip():
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise DatasetError(f"{sums}:{number}: expected 'SHA256  FILENAME', got {line.strip()!r}")
            digest, name = parts
            entries[name.lstrip("*").strip()] = digest.lower()
    return entries


def verify_checksums(folder: Path, names: list[str] | None = None) -> list[Path]:
    """Check the images listed in ``SHA256SUMS`` (or only ``names``); return their paths, sorted."""
    expected = read_checksums(folder)
    images = sorted(n for n in expected if n.lower().endswith(IMAGE_SUFFIXES))
    for name in names if names is not None else images:
        path = folder / name
        if name not in expected:
            raise DatasetError(f"{path} is not listed in {folder / 'SHA256SUMS'}")
        if not path.is_file():
            raise DatasetError(f"{path} is listed in SHA256SUMS but missing")
        actual = sha256_file(path)
        if actual != expected[name]:
            raise DatasetError(
                f"checksum mismatch for {path}: expected {expected[name]}, got {actual}; "
                "the file is damaged or not the published one"
            )
    return [folder / name for name in images]


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_dataset(name_or_path: str, data_root: Path | None = None, limit: int | None = None) -> Dataset:
    """``kodak``, ``clic`` (verified against SHA256SUMS) or a folder of images."""
    if name_or_path in KNOWN_DATASETS:
        known = KNOWN_DATASETS[name_or_path]
        root = Path(data_root) if data_root else default_data_root()
        folder = root / known.folder
        if not folder.is_dir():
            raise DatasetError(
                f"dataset {known.name!r} not found at {folder}; point bench at the datasets with "
                "--data-root DIR or BENCH_DATA=DIR"
            )
        listed = sorted(n for n in read_checksums(folder) if n.lower().endswith(IMAGE_SUFFIXES))
        chosen = listed if limit is None else listed[: max(limit, 0)]
        verify_checksums(folder, chosen)
        return Dataset(known.name, known.label, tuple(folder / n for n in listed)).limited(limit)
    folder = Path(name_or_path)
    if not folder.is_dir():
        raise DatasetError(
            f"unknown dataset {name_or_path!r}: not one of {', '.join(KNOWN_DATASETS)} and not a folder"
        )
    images = list_images(folder)
    if not images:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    folder = folder.resolve()  # one name per folder, however it was typed, so reruns resume
    return Dataset(str(folder), f"folder {folder}", tuple(images)).limited(limit)
