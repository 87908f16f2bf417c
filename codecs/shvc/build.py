"""``bench shm build SRC``: build SHM (the SHVC reference software) from sources the user supplies,
check the binaries with a one-frame encode and decode, and say how to point bench at them.

bench downloads nothing: SRC is an SHM source folder or an archive of one (``.tar``, ``.tar.gz``,
``.zip``, ...), e.g. the official SVN tag ``svn_SHVCSoftware/tags/SHM-12.1`` or the same tag of a
git mirror. The sources are copied (or unpacked) into ``OUT/src`` and built there with SHM's own
makefiles (``build/linux``), release configuration, only the parts bench runs (the libraries, the
encoder and the decoder); the binaries are copied to ``OUT/bin``, which is what ``SHM_DIR`` names.

Compiler flags: SHM-12.1's ``build/linux/common/makefile.base`` compiles with ``-Werror``, and
compilers newer than the release (gcc >= 8, e.g. ``-Wclass-memaccess``) warn where 2016's did not,
so the build stops on warnings in code that is correct. The makefiles stay untouched: ``make`` is
given ``RELEASE_CPPFLAGS`` on its command line (make passes command-line variables down to every
sub-make), with the makefile's own release flags plus ``-Wno-error``, which comes after ``-Werror``
on every compile line. Warnings are still printed (into ``OUT/build.log``).

A rerun with the same SRC and OUT reuses ``OUT/src``, so make rebuilds only what is missing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.codecs import source_tree
from bench.codecs.source_tree import source_name
from bench.errors import BenchError

ENCODER = "TAppEncoderStatic"
DECODER = "TAppDecoderStatic"
MAKEFILE_BASE = Path("build/linux/common/makefile.base")
# What bench runs, in link order: folders under build/linux. TAppCommon exists from SHM-9 on.
MAKE_FOLDERS = (
    "lib/TLibVideoIO",
    "lib/TLibCommon",
    "lib/TLibDecoder",
    "lib/TLibEncoder",
    "lib/TAppCommon",
    "app/TAppDecoder",
    "app/TAppEncoder",
)
REQUIRED_FOLDERS = ("lib/TLibCommon", "lib/TLibDecoder", "lib/TLibEncoder", "app/TAppDecoder", "app/TAppEncoder")
EXTRA_RELEASE_FLAGS = ("-Wno-error",)
DEFAULT_RELEASE_FLAGS = "-O3"  # used only when makefile.base does not define RELEASE_CPPFLAGS
DEFAULT_NICE = 10
TOOLS_HINT = "install make and a C++ compiler (Debian/Ubuntu: apt-get install build-essential)"


class ShmBuildError(BenchError):
    """SHM cannot be built or checked from the sources given (not SHM, a failing compiler, bad binaries)."""


@dataclass(frozen=True)
class Verification:
    """The one-frame check of freshly built binaries."""

    version: str
    layer_sizes: list[tuple[int, int]]  # (width, height), smallest first
    layer_bytes: list[int]
    psnr: list[float]  # PSNR-RGB of each decoded layer
    seconds: float

    def summary(self) -> str:
        sizes = " + ".join(f"{w}x{h}" for w, h in self.layer_sizes)
        parts = ", ".join(f"L{k} {b} B {p:.2f} dB" for k, (b, p) in enumerate(zip(self.layer_bytes, self.psnr)))
        return (f"SHM {self.version}: one {sizes} frame encoded and decoded ({parts}); the decoder's output "
                f"equals the encoder's reconstruction, picture hashes OK ({self.seconds:.1f} s)")


@dataclass(frozen=True)
class BuildResult:
    bin_dir: Path
    source_dir: Path
    log: Path
    build_seconds: float
    verification: Verification

    @property
    def export_line(self) -> str:
        return f"export SHM_DIR={self.bin_dir}"


# ---------------------------------------------------------------------------------------------
# Sources


def default_out(source: Path) -> Path:
    return Path.home() / ".cache" / "bench" / "shm" / source_name(source)


def find_shm_root(tree: Path) -> Path:
    """The SHM source root in ``tree``: ``tree`` itself or its only subfolder (archives usually hold
    one top folder). ShmBuildError saying what is missing when it is not SHM."""
    candidates = [tree]
    children = [p for p in tree.iterdir() if not p.name.startswith(".")] if tree.is_dir() else []
    if len(children) == 1 and children[0].is_dir():
        candidates.append(children[0])
    for root in candidates:
        if (root / "build" / "linux" / "makefile").is_file():
            if not (root / "source" / "App" / "TAppEncoder" / "TAppEncLayerCfg.cpp").is_file():
                raise ShmBuildError(
                    f"{root} looks like HM, not SHM (no source/App/TAppEncoder/TAppEncLayerCfg.cpp): bench's "
                    "hm and shvc codecs drive SHM's encoder with its layer configuration; build SHM instead"
                )
            return root
    if any((root / "CMakeLists.txt").is_file() for root in candidates):
        raise ShmBuildError(
            f"{tree} builds with CMake but has no build/linux makefiles: bench shm build knows the makefiles "
            "of the SHM releases (SHM-12.1 is tested)"
        )
    raise ShmBuildError(
        f"{tree} is not an SHM source tree: no build/linux/makefile in it or in its only subfolder "
        "(expected the layout of an SHM release: build/linux, source/App/TAppEncoder, cfg)"
    )


def prepare_sources(source: Path, out: Path) -> Path:
    """``OUT/src`` holding ``source`` (reused when an earlier run made it from the same source);
    the SHM root inside it."""
    return source_tree.prepare_sources(source, out, "SHM", find_shm_root, ShmBuildError)


# ---------------------------------------------------------------------------------------------
# Building


def release_flags(root: Path) -> str:
    """The makefile's own release flags plus ``EXTRA_RELEASE_FLAGS``."""
    text = (root / MAKEFILE_BASE).read_text(errors="replace") if (root / MAKEFILE_BASE).is_file() else ""
    match = re.search(r"^\s*RELEASE_CPPFLAGS\s*[:?]?=\s*(.*?)\s*$", text, re.MULTILINE)
    base = match.group(1) if match and match.group(1) else DEFAULT_RELEASE_FLAGS
    extra = [flag for flag in EXTRA_RELEASE_FLAGS if flag not in base.split()]
    return " ".join([base, *extra])


def make_commands(root: Path, jobs: int, flags: str) -> list[list[str]]:
    """One ``make`` per folder of ``MAKE_FOLDERS`` the tree has; ShmBuildError when a needed one is missing."""
    linux = root / "build" / "linux"
    missing = [f for f in REQUIRED_FOLDERS if not (linux / f / "makefile").is_file()]
    if missing:
        raise ShmBuildError(f"{root} lacks the makefiles of {', '.join(missing)} under build/linux: not an SHM release")
    return [["make", f"-j{jobs}", "-C", str(linux / folder), "release", f"RELEASE_CPPFLAGS={flags}"]
            for folder in MAKE_FOLDERS if (linux / folder / "makefile").is_file()]


def run_make(commands: list[list[str]], log: Path, niceness: int, say: Callable[[str], None]) -> float:
    """Run the ``make`` commands in order, output into ``log``; their wall seconds."""
    for tool in ("make", "g++"):
        if shutil.which(tool) is None:
            raise ShmBuildError(f"no {tool} on PATH: {TOOLS_HINT}")
    began = time.perf_counter()
    with log.open("a") as sink:
        for step, command in enumerate(commands, 1):
            folder = Path(command[3])
            elapsed = time.perf_counter() - began
            say(f"[{step}/{len(commands)}] make {folder.parent.name}/{folder.name} ({elapsed:.0f} s so far)")
            sink.write(f"\n$ {' '.join(command)}\n")
            sink.flush()
            result = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=(lambda: os.nice(niceness)) if niceness else None, check=False)
            if result.returncode != 0:
                sink.flush()
                raise ShmBuildError(
                    f"make failed in build/linux/{folder.parent.name}/{folder.name} (status {result.returncode}); "
                    f"the full output is in {log}:\n{source_tree.log_tail(log)}"
                )
    return time.perf_counter() - began


def collect_binaries(root: Path, bin_dir: Path) -> None:
    """Copy the encoder and decoder SHM built (into ``root/bin``) to ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in (ENCODER, DECODER):
        built = root / "bin" / name
        if not built.is_file():
            raise ShmBuildError(f"make succeeded but wrote no {built}: the tree does not build SHM's {name}")
        shutil.copy2(built, bin_dir / name)


# ---------------------------------------------------------------------------------------------
# Checking


def verify_binaries(bin_dir: Path, quality: int = 32) -> Verification:
    """Encode one two-layer frame (x2) with bench's shvc codec over ``bin_dir`` and decode it. The
    codec's encode already decodes every layer prefix and requires the decoder's output to equal the
    encoder's reconstruction byte for byte, with the SEI picture hashes confirmed."""
    from bench.codecs.external import check_frame
    from bench.codecs.shvc import ShvcCodec
    from bench.errors import CodecError
    from bench.measuring.metrics import psnr_rgb

    top = check_frame(96, 128)
    layers = [top[::2, ::2].copy(), top]  # a 2x-decimated BL is enough to exercise inter-layer coding
    codec = ShvcCodec(source=str(bin_dir))
    began = time.perf_counter()
    try:
        encoded = codec.encode(layers, quality)
        decoded = codec.decode(encoded.data)
    except CodecError as error:
        raise ShmBuildError(f"the binaries in {bin_dir} failed the one-frame check: {error}") from error
    return Verification(
        version=codec.version() or "(version not printed)",
        layer_sizes=[(im.shape[1], im.shape[0]) for im in layers],
        layer_bytes=list(encoded.layer_bytes),
        psnr=[psnr_rgb(im, rec) for im, rec in zip(layers, decoded)],
        seconds=time.perf_counter() - began,
    )


def build_shm(source: Path, out: Path, jobs: int | None = None, niceness: int = DEFAULT_NICE,
              say: Callable[[str], None] = print) -> BuildResult:
    """Build SHM from ``source`` (folder or archive) under ``out`` and check the binaries."""
    out = out.expanduser().resolve()
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise ShmBuildError(f"--jobs must be at least 1, got {jobs}")
    out.mkdir(parents=True, exist_ok=True)
    root = prepare_sources(Path(source), out)
    flags = release_flags(root)
    commands = make_commands(root, jobs, flags)
    log = out / "build.log"
    say(f"building SHM from {root} (make -j{jobs}, nice {niceness}, RELEASE_CPPFLAGS='{flags}'); log: {log}")
    seconds = run_make(commands, log, niceness, say)
    bin_dir = out / "bin"
    collect_binaries(root, bin_dir)
    say(f"built in {seconds:.0f} s; checking {bin_dir} with a one-frame encode and decode")
    verification = verify_binaries(bin_dir)
    return BuildResult(bin_dir=bin_dir, source_dir=root, log=log, build_seconds=seconds, verification=verification)


# ---------------------------------------------------------------------------------------------
# Command line (``bench shm build``)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``shm`` command's subcommands (``build``)."""
    sub = parser.add_subparsers(dest="shm_command", required=True)
    build = sub.add_parser("build", help="build SHM from a source folder or archive and check the binaries",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("source", type=Path, help="SHM source folder or archive (e.g. an export of tag SHM-12.1)")
    build.add_argument("--out", type=Path,
                       help="build folder: sources in OUT/src, binaries in OUT/bin (default ~/.cache/bench/shm/NAME)")
    build.add_argument("--jobs", type=int, help="parallel compile jobs (make -j; default: the number of CPUs)")
    build.add_argument("--nice", type=int, default=DEFAULT_NICE,
                       help=f"niceness of the compilers, so that a build yields the CPUs (default {DEFAULT_NICE})")


def run(args: argparse.Namespace) -> int:
    """``bench shm build``: build, check, and print the ``export`` line."""
    result = build_shm(args.source, args.out or default_out(args.source), args.jobs, args.nice)
    print(result.verification.summary())
    print("point bench at the binaries (add it to your shell profile to keep it):")
    print(result.export_line)
    return 0
