"""Source trees users supply to the build commands of reference-software plugins (``bench shm
build``, ``bench vtm build``): unpacking a folder or archive safely into the build folder, reusing
it on a rerun, and quoting a build log. bench downloads nothing; the plugin names its software."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Callable

from bench.errors import BenchError

SOURCE_MARKER = ".bench-source"  # in OUT/src: which SRC it was made from, so that a rerun can reuse it
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip")


class SourceTreeError(BenchError):
    """A source folder or archive cannot be used (missing, unsafe to unpack, another tree's folder)."""


def source_name(source: Path) -> str:
    """``SHM-12.1`` for ``SHM-12.1``, ``SHM-12.1.tar.gz`` or ``SHM-12.1.zip``."""
    name = source.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _unpack_zip(archive: Path, dest: Path, error: type[BenchError]) -> None:
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.namelist():
            target = (dest / member).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise error(f"{archive} holds {member!r}, which would land outside {dest}; refusing it")
        bundle.extractall(dest)


def unpack_source(source: Path, dest: Path, software: str, error: type[BenchError] = SourceTreeError) -> None:
    """Copy a source folder, or unpack a tar/zip archive, into ``dest`` (which must not exist)."""
    if source.is_dir():
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".svn", ".git"), symlinks=True)
    elif source.is_file() and tarfile.is_tarfile(source):
        dest.mkdir(parents=True)
        with tarfile.open(source) as archive:
            try:
                archive.extractall(dest, filter="data")  # no absolute paths, no escaping links
            except tarfile.FilterError as failure:
                raise error(f"{source}: {failure}; refusing to unpack it") from failure
    elif source.is_file() and zipfile.is_zipfile(source):
        dest.mkdir(parents=True)
        _unpack_zip(source, dest, error)
    elif source.exists():
        raise error(f"{source} is neither a folder nor a tar or zip archive of {software} sources")
    else:
        raise error(f"{source} does not exist: give a {software} source folder or archive (see the README)")


def prepare_sources(source: Path, out: Path, software: str, find_root: Callable[[Path], Path],
                    error: type[BenchError] = SourceTreeError) -> Path:
    """``OUT/src`` holding ``source`` (reused when an earlier run made it from the same source); the
    source root ``find_root`` finds inside it (it raises when the tree is not the software's)."""
    source = source.expanduser().resolve()
    src = out / "src"
    marker = src / SOURCE_MARKER
    if src.exists():
        made_from = marker.read_text().strip() if marker.is_file() else None
        if made_from != str(source):
            raise error(f"{src} already holds sources from {made_from or 'elsewhere'}, not {source}: "
                        "choose another --out or remove that folder")
        return find_root(src)
    try:
        unpack_source(source, src, software, error)
        root = find_root(src)
    except BaseException:
        shutil.rmtree(src, ignore_errors=True)  # a half-made copy must not be reused as it is
        raise
    marker.write_text(f"{source}\n")
    return root


def log_tail(path: Path, lines: int = 25) -> str:
    """The first error lines and the last ``lines`` lines of a build log, for an error message."""
    text = path.read_text(errors="replace").splitlines()
    errors = [line for line in text if "error" in line.lower()]
    shown = errors[:5] if errors else []
    return "\n".join([*shown, "...", *text[-lines:]] if shown else text[-lines:])
