"""``bench vtm build SRC``: build VTM (the VVC reference software) from sources the user supplies,
check the binaries with a two-layer encode and decode, and say how to point bench at them.

bench downloads nothing: SRC is a VTM source folder or an archive of one (``.tar.gz``, ``.zip``,
...), version 23 or later (``cfg/multi-layer`` and EncoderApp's per-layer ``-l<k>`` options), e.g.
tag VTM-23.13 of the JVET repository or of its public mirror github.com/redchenjs/VVCSoftware_VTM.
The sources are copied (or unpacked) into ``OUT/src`` and built with VTM's own CMake files in
``OUT/build``, release configuration, only the two programs bench runs (``EncoderApp`` and
``DecoderApp``); the binaries are copied to ``OUT/bin``, which is what ``VTM_DIR`` names. cmake and
a C++ compiler are needed; when they are missing and apt-get is there, they are installed (as root,
or through sudo) only now, when a build is asked for.

A rerun with the same SRC and OUT reuses ``OUT/src`` and ``OUT/build``, so only what is missing is
compiled.
"""

from __future__ import annotations

import argparse
import hashlib
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

BUILT_NAMES = {"EncoderApp": ("EncoderAppStatic", "EncoderApp"), "DecoderApp": ("DecoderAppStatic", "DecoderApp")}
MIN_MAJOR = 23
DEFAULT_NICE = 10
APT_PACKAGES = ("cmake", "g++", "make")
INTRA_CFG = Path("cfg/encoder_intra_vtm.cfg")


class VtmBuildError(BenchError):
    """VTM cannot be built or checked from the sources given (not VTM >= 23, a failing compiler, bad binaries)."""


@dataclass(frozen=True)
class Verification:
    """The two-layer check of freshly built binaries."""

    version: str
    layer_sizes: list[tuple[int, int]]  # (width, height), smallest first
    layer_bytes: list[int]
    psnr: list[float]
    seconds: float

    def summary(self) -> str:
        sizes = " + ".join(f"{w}x{h}" for w, h in self.layer_sizes)
        parts = ", ".join(f"L{k} {b} B {p:.2f} dB" for k, (b, p) in enumerate(zip(self.layer_bytes, self.psnr)))
        return (f"VTM {self.version}: a two-layer {sizes} picture encoded and decoded ({parts}); the decoder's "
                f"output equals the encoder's reconstruction, picture hashes OK ({self.seconds:.1f} s)")


@dataclass(frozen=True)
class BuildResult:
    bin_dir: Path
    source_dir: Path
    log: Path
    build_seconds: float
    verification: Verification
    notes: tuple[str, ...] = ()

    @property
    def export_line(self) -> str:
        return f"export VTM_DIR={self.bin_dir}"


def default_out(source: Path) -> Path:
    return Path.home() / ".cache" / "bench" / "vtm" / source_name(source)


def vtm_version(root: Path) -> str | None:
    """``23.13`` from ``source/Lib/CommonLib/version.h``; None when the tree has no such line."""
    header = root / "source" / "Lib" / "CommonLib" / "version.h"
    text = header.read_text(errors="replace") if header.is_file() else ""
    match = re.search(r'#define\s+VTM_VERSION\s+"([^"]+)"', text)
    return match.group(1) if match else None


def find_vtm_root(tree: Path) -> Path:
    """The VTM source root in ``tree`` (itself or its only subfolder); VtmBuildError saying what is
    wrong when it is not VTM 23 or later."""
    candidates = [tree]
    children = [p for p in tree.iterdir() if not p.name.startswith(".")] if tree.is_dir() else []
    if len(children) == 1 and children[0].is_dir():
        candidates.append(children[0])
    for root in candidates:
        if (root / "CMakeLists.txt").is_file() and (root / "source" / "App" / "EncoderApp").is_dir():
            version = vtm_version(root)
            major = int(version.split(".")[0]) if version and version.split(".")[0].isdigit() else None
            if major is None or major < MIN_MAJOR or not (root / "cfg" / "multi-layer").is_dir():
                raise VtmBuildError(
                    f"{root} is VTM {version or '(version unknown)'}: bench's vtm-ml needs VTM {MIN_MAJOR} or later "
                    "(cfg/multi-layer and EncoderApp's per-layer -l<k> options), e.g. tag VTM-23.13"
                )
            return root
    raise VtmBuildError(
        f"{tree} is not a VTM source tree: no CMakeLists.txt with source/App/EncoderApp in it or in its only "
        "subfolder (expected the layout of a VTM release: CMakeLists.txt, source/, cfg/)"
    )


def ensure_tools(say: Callable[[str], None]) -> None:
    """cmake, make and a C++ compiler on PATH; installed with apt-get when missing and possible."""
    missing = [tool for tool in ("cmake", "make", "g++") if shutil.which(tool) is None]
    if not missing:
        return
    apt = shutil.which("apt-get")
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if apt is None or sudo is None:
        raise VtmBuildError(f"no {', '.join(missing)} on PATH: install cmake and a C++ compiler "
                            "(Debian/Ubuntu: apt-get install cmake g++ make)")
    say(f"installing {' '.join(APT_PACKAGES)} with apt-get (missing: {', '.join(missing)})")
    for command in ([*sudo, apt, "update"], [*sudo, apt, "install", "-y", "--no-install-recommends", *APT_PACKAGES]):
        result = subprocess.run(command, capture_output=True, text=True, check=False,
                                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if result.returncode != 0:
            raise VtmBuildError(f"{' '.join(command)} failed (status {result.returncode}): "
                                f"{(result.stdout + result.stderr).strip()[-600:]}")


def run_cmake(root: Path, build_dir: Path, jobs: int, niceness: int, log: Path, say: Callable[[str], None]) -> float:
    """Configure (release) and build EncoderApp and DecoderApp; their wall seconds."""
    commands = [
        ["cmake", "-S", str(root), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"],
        ["cmake", "--build", str(build_dir), "-j", str(jobs), "--target", *BUILT_NAMES],
    ]
    began = time.perf_counter()
    with log.open("a") as sink:
        for step, command in enumerate(commands, 1):
            say(f"[{step}/{len(commands)}] {' '.join(command[:3])} ... ({time.perf_counter() - began:.0f} s so far)")
            sink.write(f"\n$ {' '.join(command)}\n")
            sink.flush()
            result = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=(lambda: os.nice(niceness)) if niceness else None, check=False)
            if result.returncode != 0:
                sink.flush()
                raise VtmBuildError(f"{' '.join(command[:2])} failed (status {result.returncode}); the full output "
                                    f"is in {log}:\n{source_tree.log_tail(log)}")
    return time.perf_counter() - began


def collect_binaries(root: Path, bin_dir: Path) -> None:
    """Copy the programs VTM's CMake files wrote (under ``root/bin``) to ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for names in BUILT_NAMES.values():
        built = next((path for name in names for path in sorted((root / "bin").rglob(name)) if path.is_file()), None)
        if built is None:
            raise VtmBuildError(f"the build succeeded but wrote no {' or '.join(names)} under {root / 'bin'}")
        shutil.copy2(built, bin_dir / built.name)


def config_notes(root: Path) -> tuple[str, ...]:
    """A note when the tree's all-intra configuration differs from the one bench codes with."""
    from bench.codecs.vtm.config import INTRA_CFG_SHA256

    path = root / INTRA_CFG
    if not path.is_file():
        return (f"{INTRA_CFG} is not in the tree; bench codes with VTM-23.13's, which it carries",)
    if hashlib.sha256(path.read_bytes()).hexdigest() != INTRA_CFG_SHA256:
        return (f"{INTRA_CFG} in this tree differs from VTM-23.13's, which bench codes with (bench.codecs.vtm.config)",)
    return ()


def verify_binaries(bin_dir: Path, quality: int = 32) -> Verification:
    """Encode one two-layer picture (x2) with bench's vtm-ml over ``bin_dir`` and decode it; the
    codec's encode decodes every layer prefix and requires the decoder's output to equal the
    encoder's reconstruction byte for byte, with the CRC picture hashes confirmed."""
    from bench.codecs.external import check_frame
    from bench.codecs.vtm.plugin import VtmMultiLayerCodec
    from bench.errors import CodecError
    from bench.measuring.metrics import psnr_rgb

    top = check_frame(96, 128)
    layers = [top[::2, ::2].copy(), top]
    codec = VtmMultiLayerCodec(source=str(bin_dir))
    began = time.perf_counter()
    try:
        encoded = codec.encode(layers, quality)
        decoded = codec.decode(encoded.data)
    except CodecError as error:
        raise VtmBuildError(f"the binaries in {bin_dir} failed the two-layer check: {error}") from error
    return Verification(
        version=codec.version() or "(version not printed)",
        layer_sizes=[(im.shape[1], im.shape[0]) for im in layers],
        layer_bytes=list(encoded.layer_bytes),
        psnr=[psnr_rgb(im, rec) for im, rec in zip(layers, decoded)],
        seconds=time.perf_counter() - began,
    )


def build_vtm(source: Path, out: Path, jobs: int | None = None, niceness: int = DEFAULT_NICE,
              say: Callable[[str], None] = print) -> BuildResult:
    """Build VTM from ``source`` (folder or archive) under ``out`` and check the binaries."""
    out = out.expanduser().resolve()
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise VtmBuildError(f"--jobs must be at least 1, got {jobs}")
    out.mkdir(parents=True, exist_ok=True)
    root = source_tree.prepare_sources(Path(source), out, "VTM", find_vtm_root, VtmBuildError)
    ensure_tools(say)
    log = out / "build.log"
    say(f"building VTM {vtm_version(root)} from {root} (cmake, release, -j{jobs}, nice {niceness}); log: {log}")
    seconds = run_cmake(root, out / "build", jobs, niceness, log, say)
    bin_dir = out / "bin"
    collect_binaries(root, bin_dir)
    say(f"built in {seconds:.0f} s; checking {bin_dir} with a two-layer encode and decode")
    return BuildResult(bin_dir=bin_dir, source_dir=root, log=log, build_seconds=seconds,
                       verification=verify_binaries(bin_dir), notes=config_notes(root))


# ---------------------------------------------------------------------------------------------
# Command line (``bench vtm build``)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``vtm`` command's subcommands (``build``)."""
    sub = parser.add_subparsers(dest="vtm_command", required=True)
    build = sub.add_parser("build", help="build VTM from a source folder or archive and check the binaries",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("source", type=Path, help="VTM source folder or archive (VTM-23 or later, e.g. tag VTM-23.13)")
    build.add_argument("--out", type=Path, help="build folder: sources in OUT/src, objects in OUT/build, binaries "
                                                "in OUT/bin (default ~/.cache/bench/vtm/NAME)")
    build.add_argument("--jobs", type=int, help="parallel compile jobs (default: the number of CPUs)")
    build.add_argument("--nice", type=int, default=DEFAULT_NICE,
                       help=f"niceness of the compilers, so that a build yields the CPUs (default {DEFAULT_NICE})")


def run(args: argparse.Namespace) -> int:
    """``bench vtm build``: build, check, and print the ``export`` line."""
    result = build_vtm(args.source, args.out or default_out(args.source), args.jobs, args.nice)
    print(result.verification.summary())
    for note in result.notes:
        print(f"note: {note}")
    print("point bench at the binaries (add it to your shell profile to keep it):")
    print(result.export_line)
    return 0
