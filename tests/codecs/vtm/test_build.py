"""``bench vtm build``: sources, version checks, cmake runs, collected binaries and the command line,
against fake trees and a fake ``cmake``; the two-layer check of real binaries when VTM is installed
(``VTM_DIR``); a real build only when ``BENCH_VTM_SOURCE`` names VTM sources (slow: half an hour)."""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from bench import cli
from bench.codecs import source_tree
from bench.codecs.vtm import build as vtm_build
from bench.codecs.vtm.build import BuildResult, Verification, VtmBuildError
from bench.errors import BenchError
from tests.codecs.vtm.helpers import SAMPLE_SIZES, SAMPLE_VERSION, needs_vtm, vtm_source_trees

INTRA_CFG_TEXT = "#======== File I/O =====\nBitstreamFile : str.bin\nIntraPeriod : 1\n"


def fake_vtm_tree(root: Path, version: str | None = "23.13", multi_layer: bool = True) -> Path:
    """The files of a VTM release that the build looks at."""
    (root / "source" / "App" / "EncoderApp").mkdir(parents=True)
    (root / "source" / "App" / "DecoderApp").mkdir(parents=True)
    (root / "CMakeLists.txt").write_text("project(VTM)\n")
    (root / "source" / "Lib" / "CommonLib").mkdir(parents=True)
    if version is not None:
        (root / "source" / "Lib" / "CommonLib" / "version.h").write_text(
            f'#if ! defined( VTM_VERSION )\n#define VTM_VERSION "{version}"\n#endif\n')
    (root / "cfg").mkdir()
    (root / vtm_build.INTRA_CFG).write_text(INTRA_CFG_TEXT)
    if multi_layer:
        (root / "cfg" / "multi-layer").mkdir()
        (root / "cfg" / "multi-layer" / "two_layers.cfg").write_text("MaxLayers : 2\n")
    return root


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture()
def fake_cmake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``cmake`` on PATH that records its arguments and its niceness, fails the build step when
    ``FAKE_CMAKE_FAIL`` is set, and writes stand-in binaries (which exit 1) where VTM's CMake files
    put them (``SRC/bin``) when ``FAKE_CMAKE_BINARIES`` is; ``make`` and ``g++`` beside it so that
    the check for tools passes."""
    tools = tmp_path / "tools"
    tools.mkdir()
    executable(tools / "cmake", """#!/bin/sh
echo "$@" >> "$FAKE_CMAKE_LOG"
echo "niceness $(nice)"
if [ "$1" = "-S" ]; then mkdir -p "$4" && echo "$2" > "$4/fake-source"; exit 0; fi
if [ -n "$FAKE_CMAKE_FAIL" ]; then echo "EncoderApp.cpp:12: error: boom"; exit 2; fi
if [ -n "$FAKE_CMAKE_BINARIES" ]; then
  bin="$(cat "$2/fake-source")/bin"
  mkdir -p "$bin/umake/gcc-12.2/x86_64/release"
  for name in EncoderAppStatic DecoderAppStatic umake/gcc-12.2/x86_64/release/EncoderApp; do
    printf '#!/bin/sh\\necho not VTM; exit 1\\n' > "$bin/$name"; chmod +x "$bin/$name"
  done
fi
echo "[100%] Built target EncoderApp"
""")
    executable(tools / "make", "#!/bin/sh\nexit 0\n")
    executable(tools / "g++", "#!/bin/sh\nexit 0\n")
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "cmake-args.txt"
    monkeypatch.setenv("FAKE_CMAKE_LOG", str(log))
    return log


# ---------------------------------------------------------------------------------------------
# Names, versions, trees


def test_names_and_default_folder() -> None:
    for name in ("VTM-23.13", "VTM-23.13.tar.gz", "VTM-23.13.zip", "VTM-23.13.tar.bz2"):
        assert vtm_build.source_name(Path("/x") / name) == "VTM-23.13"
    assert vtm_build.default_out(Path("src/VTM-23.13.tar.gz")) == Path.home() / ".cache/bench/vtm/VTM-23.13"
    assert issubclass(VtmBuildError, BenchError)  # printed as one line by the command line
    assert vtm_build.MIN_MAJOR == 23


def test_version_of_a_tree(tmp_path: Path) -> None:
    assert vtm_build.vtm_version(fake_vtm_tree(tmp_path / "a", "23.13")) == "23.13"
    assert vtm_build.vtm_version(fake_vtm_tree(tmp_path / "b", "24.0rc1")) == "24.0rc1"
    assert vtm_build.vtm_version(fake_vtm_tree(tmp_path / "c", None)) is None
    header = tmp_path / "c" / "source" / "Lib" / "CommonLib" / "version.h"
    header.write_text("#define NV_VERSION \"23.13\"\n")
    assert vtm_build.vtm_version(tmp_path / "c") is None


def test_find_root_in_tree_or_its_only_subfolder(tmp_path: Path) -> None:
    direct = fake_vtm_tree(tmp_path / "a")
    assert vtm_build.find_vtm_root(direct) == direct
    nested = fake_vtm_tree(tmp_path / "b" / "VTM-23.13")
    (tmp_path / "b" / ".git").mkdir()  # hidden entries do not count as a second subfolder
    assert vtm_build.find_vtm_root(tmp_path / "b") == nested
    assert vtm_build.find_vtm_root(fake_vtm_tree(tmp_path / "c", "24.1")) == tmp_path / "c"


@pytest.mark.parametrize(
    ("version", "multi_layer", "shown"),
    [("22.2", True, "VTM 22.2"), ("9.0", True, "VTM 9.0"), (None, True, "VTM (version unknown)"),
     ("23.0", False, "VTM 23.0"), ("x23", True, "VTM x23")],
)
def test_trees_that_are_not_vtm_23_or_later_are_refused(tmp_path: Path, version: str | None, multi_layer: bool,
                                                         shown: str) -> None:
    root = fake_vtm_tree(tmp_path / "VTM", version, multi_layer)
    with pytest.raises(VtmBuildError) as caught:
        vtm_build.find_vtm_root(root)
    assert str(caught.value) == (f"{root} is {shown}: bench's vtm-ml needs VTM 23 or later (cfg/multi-layer and "
                                 "EncoderApp's per-layer -l<k> options), e.g. tag VTM-23.13")


def test_folders_that_are_not_vtm_are_refused(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "kodim01.png").write_bytes(b"")
    with pytest.raises(VtmBuildError, match="photos is not a VTM source tree: no CMakeLists.txt with "
                                            "source/App/EncoderApp in it or in its only subfolder"):
        vtm_build.find_vtm_root(photos)
    hm = tmp_path / "HM"  # HM's tree: CMake too, but TAppEncoder
    (hm / "source" / "App" / "TAppEncoder").mkdir(parents=True)
    (hm / "CMakeLists.txt").write_text("project(HM)\n")
    with pytest.raises(VtmBuildError, match="HM is not a VTM source tree"):
        vtm_build.find_vtm_root(hm)
    two = tmp_path / "two"  # two trees side by side: which one is meant is not guessed
    fake_vtm_tree(two / "VTM-23.13")
    fake_vtm_tree(two / "VTM-23.12")
    with pytest.raises(VtmBuildError, match="two is not a VTM source tree"):
        vtm_build.find_vtm_root(two)


# ---------------------------------------------------------------------------------------------
# Sources into OUT/src


def prepare(source: Path, out: Path) -> Path:
    """What ``build_vtm`` does with SRC."""
    return source_tree.prepare_sources(source, out, "VTM", vtm_build.find_vtm_root, VtmBuildError)


def test_archives_unpack_into_out_src_and_are_reused(tmp_path: Path) -> None:
    fake_vtm_tree(tmp_path / "tree" / "VTM-23.13")
    archive = tmp_path / "VTM-23.13.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(tmp_path / "tree" / "VTM-23.13", arcname="VTM-23.13")
    out = tmp_path / "out"
    root = prepare(archive, out)
    assert root == out / "src" / "VTM-23.13" and vtm_build.vtm_version(root) == "23.13"
    assert (out / "src" / source_tree.SOURCE_MARKER).read_text() == f"{archive}\n"
    (root / "bin").mkdir()  # what an earlier build left
    assert prepare(archive, out) == root  # same source: reused, earlier output kept
    assert (root / "bin").is_dir()
    with pytest.raises(VtmBuildError, match="already holds sources from .*VTM-23.13.tar.gz, not .*tree"):
        prepare(tmp_path / "tree", out)
    # a folder is copied likewise, its version-control folders left out
    (tmp_path / "tree" / "VTM-23.13" / ".git").mkdir()
    copied = prepare(tmp_path / "tree", tmp_path / "out2")
    assert copied == tmp_path / "out2" / "src" / "VTM-23.13" and not (copied / ".git").exists()
    # zip archives too
    zipped = tmp_path / "VTM-23.13.zip"
    with zipfile.ZipFile(zipped, "w") as bundle:
        for path in (tmp_path / "tree").rglob("*"):
            bundle.write(path, path.relative_to(tmp_path / "tree"))
    assert prepare(zipped, tmp_path / "out3") == tmp_path / "out3" / "src" / "VTM-23.13"


def test_an_old_vtm_archive_is_refused_and_not_kept(tmp_path: Path) -> None:
    fake_vtm_tree(tmp_path / "tree" / "VTM-22.0", "22.0")
    archive = tmp_path / "VTM-22.0.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(tmp_path / "tree" / "VTM-22.0", arcname="VTM-22.0")
    with pytest.raises(VtmBuildError, match="VTM-22.0 is VTM 22.0: bench's vtm-ml needs VTM 23 or later"):
        prepare(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "src").exists()  # no half-made copy is left to be reused


def test_unsafe_or_unusable_sources_are_refused(tmp_path: Path) -> None:
    evil_tar = tmp_path / "evil.tar"
    with tarfile.open(evil_tar, "w") as bundle:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        bundle.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(VtmBuildError, match="refusing to unpack"):
        prepare(evil_tar, tmp_path / "out")
    assert not (tmp_path / "out" / "escaped.txt").exists() and not (tmp_path / "out" / "src").exists()
    evil_zip = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil_zip, "w") as bundle:
        bundle.writestr("../../escaped.txt", "hi")
    with pytest.raises(VtmBuildError, match="would land outside"):
        prepare(evil_zip, tmp_path / "out")
    (tmp_path / "notes.txt").write_text("VTM lives on vcgit.hhi.fraunhofer.de\n")
    with pytest.raises(VtmBuildError, match="neither a folder nor a tar or zip archive of VTM sources"):
        prepare(tmp_path / "notes.txt", tmp_path / "out")
    with pytest.raises(VtmBuildError, match="VTM-99 does not exist: give a VTM source folder or archive"):
        prepare(tmp_path / "VTM-99", tmp_path / "out")
    assert not (tmp_path / "out" / "src").exists()


def test_config_notes(tmp_path: Path) -> None:
    root = fake_vtm_tree(tmp_path / "VTM")
    assert vtm_build.config_notes(root) == (
        "cfg/encoder_intra_vtm.cfg in this tree differs from VTM-23.13's, which bench codes with "
        "(bench.codecs.vtm.config)",)
    (root / vtm_build.INTRA_CFG).unlink()
    assert vtm_build.config_notes(root) == (
        "cfg/encoder_intra_vtm.cfg is not in the tree; bench codes with VTM-23.13's, which it carries",)


TREES = vtm_source_trees()


@pytest.mark.skipif(not TREES, reason="no VTM source tree here (BENCH_VTM_SOURCE, or VTM_DIR/../src of a "
                                      "`bench vtm build`)")
def test_a_real_trees_configuration_gives_no_note() -> None:
    for root in TREES:
        assert vtm_build.vtm_version(root) is not None
        if vtm_build.vtm_version(root) == "23.13":
            assert vtm_build.find_vtm_root(root) == root
            assert vtm_build.config_notes(root) == ()


# ---------------------------------------------------------------------------------------------
# Tools, cmake, binaries


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no apt-get either: nothing is installed
    said: list[str] = []
    with pytest.raises(VtmBuildError) as caught:
        vtm_build.ensure_tools(said.append)
    assert str(caught.value) == ("no cmake, make, g++ on PATH: install cmake and a C++ compiler "
                                 "(Debian/Ubuntu: apt-get install cmake g++ make)")
    assert said == []


def test_tools_on_path_are_used_as_they_are(fake_cmake: Path) -> None:
    said: list[str] = []
    vtm_build.ensure_tools(said.append)
    assert said == []


def test_cmake_configures_release_and_builds_the_two_programs(tmp_path: Path, fake_cmake: Path) -> None:
    root = fake_vtm_tree(tmp_path / "VTM")
    log = tmp_path / "build.log"
    said: list[str] = []
    seconds = vtm_build.run_cmake(root, tmp_path / "build", jobs=3, niceness=5, log=log, say=said.append)
    assert seconds > 0
    assert fake_cmake.read_text().splitlines() == [
        f"-S {root} -B {tmp_path / 'build'} -DCMAKE_BUILD_TYPE=Release",
        f"--build {tmp_path / 'build'} -j 3 --target EncoderApp DecoderApp",
    ]
    assert said[0].startswith(f"[1/2] cmake -S {root} ... (") and said[1].startswith(f"[2/2] cmake --build {tmp_path}")
    text = log.read_text()
    assert f"$ cmake -S {root} -B" in text and "[100%] Built target EncoderApp" in text
    # the compilers run at the niceness asked for, on top of this process's (Linux caps it at 19)
    assert text.count(f"niceness {min(os.nice(0) + 5, 19)}") == 2


def test_a_failing_cmake_names_the_log_and_its_error(tmp_path: Path, fake_cmake: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CMAKE_FAIL", "1")
    root = fake_vtm_tree(tmp_path / "VTM")
    log = tmp_path / "build.log"
    with pytest.raises(VtmBuildError) as caught:
        vtm_build.run_cmake(root, tmp_path / "build", jobs=1, niceness=0, log=log, say=lambda _: None)
    message = str(caught.value)
    assert message.startswith(f"cmake --build failed (status 2); the full output is in {log}:\n")
    assert "EncoderApp.cpp:12: error: boom" in message
    assert len(fake_cmake.read_text().splitlines()) == 2


def test_collect_binaries_prefers_the_static_builds(tmp_path: Path) -> None:
    root = tmp_path / "VTM"
    release = root / "bin" / "umake" / "gcc-12.2" / "x86_64" / "release"
    release.mkdir(parents=True)
    for path in (release / "EncoderApp", release / "DecoderApp", root / "bin" / "EncoderAppStatic"):
        executable(path, f"#!/bin/sh\necho {path.name}\n")
    vtm_build.collect_binaries(root, tmp_path / "out" / "bin")
    assert sorted(p.name for p in (tmp_path / "out" / "bin").iterdir()) == ["DecoderApp", "EncoderAppStatic"]
    assert os.access(tmp_path / "out" / "bin" / "DecoderApp", os.X_OK)  # copied with its mode
    (release / "DecoderApp").unlink()
    with pytest.raises(VtmBuildError, match=f"^the build succeeded but wrote no DecoderAppStatic or DecoderApp under "
                                            f"{root / 'bin'}$"):
        vtm_build.collect_binaries(root, tmp_path / "out2" / "bin")


def test_build_stops_at_missing_or_failing_binaries(tmp_path: Path, fake_cmake: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_vtm_tree(tmp_path / "VTM-23.13")
    said: list[str] = []
    with pytest.raises(VtmBuildError, match="the build succeeded but wrote no EncoderAppStatic or EncoderApp"):
        vtm_build.build_vtm(tmp_path / "VTM-23.13", tmp_path / "out", jobs=2, niceness=0, say=said.append)
    root = tmp_path / "out" / "src"
    assert said[0] == f"building VTM 23.13 from {root} (cmake, release, -j2, nice 0); log: {tmp_path}/out/build.log"
    monkeypatch.setenv("FAKE_CMAKE_BINARIES", "1")
    with pytest.raises(VtmBuildError) as caught:
        vtm_build.build_vtm(tmp_path / "VTM-23.13", tmp_path / "out", jobs=1, niceness=0, say=said.append)
    assert str(caught.value).startswith(f"the binaries in {tmp_path}/out/bin failed the two-layer check: "
                                        "EncoderAppStatic (VTM encoder) failed with status 1; its last lines:\n"
                                        "not VTM")
    assert sorted(p.name for p in (tmp_path / "out" / "bin").iterdir()) == ["DecoderAppStatic", "EncoderAppStatic"]
    assert re.fullmatch(rf"built in \d+ s; checking {tmp_path}/out/bin with a two-layer encode and decode", said[-1])
    with pytest.raises(VtmBuildError, match="^--jobs must be at least 1, got 0$"):
        vtm_build.build_vtm(tmp_path / "VTM-23.13", tmp_path / "out4", jobs=0)
    assert not (tmp_path / "out4").exists()


# ---------------------------------------------------------------------------------------------
# The command line


def test_command_line_arguments() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["vtm", "build", "VTM-23.13.tar.gz"])
    assert (args.command, args.vtm_command, args.source) == ("vtm", "build", Path("VTM-23.13.tar.gz"))
    assert (args.out, args.jobs, args.nice) == (None, None, 10)
    args = parser.parse_args(["vtm", "build", "src", "--out", "o", "--jobs", "2", "--nice", "0"])
    assert (args.out, args.jobs, args.nice) == (Path("o"), 2, 0)
    for argv in (["vtm"], ["vtm", "build"], ["vtm", "build", "src", "--jobs", "many"]):
        with pytest.raises(SystemExit) as caught:
            parser.parse_args(argv)
        assert caught.value.code == 2


def test_run_prints_the_check_and_the_export_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def fake_build(source: Path, out: Path, jobs: int | None, niceness: int) -> BuildResult:
        calls.append((source, out, jobs, niceness))
        check = Verification(version="23.13", layer_sizes=[(64, 48), (128, 96)], layer_bytes=[233, 109],
                             psnr=[35.099, 35.053], seconds=3.24)
        return BuildResult(bin_dir=tmp_path / "vtm" / "bin", source_dir=tmp_path / "vtm" / "src", log=tmp_path / "log",
                           build_seconds=2220.0, verification=check, notes=("cfg/encoder_intra_vtm.cfg differs",))

    monkeypatch.setattr(vtm_build, "build_vtm", fake_build)
    assert cli.main(["vtm", "build", "VTM-23.13.tar.gz", "--jobs", "2"]) == 0
    assert calls == [(Path("VTM-23.13.tar.gz"), vtm_build.default_out(Path("VTM-23.13.tar.gz")), 2, 10)]
    assert capsys.readouterr().out.splitlines() == [
        "VTM 23.13: a two-layer 64x48 + 128x96 picture encoded and decoded (L0 233 B 35.10 dB, L1 109 B 35.05 dB); "
        "the decoder's output equals the encoder's reconstruction, picture hashes OK (3.2 s)",
        "note: cfg/encoder_intra_vtm.cfg differs",
        "point bench at the binaries (add it to your shell profile to keep it):",
        f"export VTM_DIR={tmp_path}/vtm/bin",
    ]
    assert cli.main(["vtm", "build", "src", "--out", str(tmp_path / "o"), "--nice", "0"]) == 0
    assert calls[-1] == (Path("src"), tmp_path / "o", None, 0)


def test_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["vtm", "build", str(tmp_path / "VTM-99"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (f"bench vtm: error: {tmp_path}/VTM-99 does not exist: give a VTM source folder or archive "
                   "(see the README)\n")
    fake_vtm_tree(tmp_path / "VTM-22.0", "22.0")
    assert cli.main(["vtm", "build", str(tmp_path / "VTM-22.0"), "--out", str(tmp_path / "out")]) == 2
    assert "is VTM 22.0: bench's vtm-ml needs VTM 23 or later" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Real binaries


@pytest.mark.slow
@pytest.mark.vtm
@needs_vtm
def test_the_two_layer_check_of_real_binaries() -> None:
    check = vtm_build.verify_binaries(Path(os.environ["VTM_DIR"]))
    assert check.layer_sizes == SAMPLE_SIZES
    assert all(b > 0 for b in check.layer_bytes) and all(33 < p < 38 for p in check.psnr)
    if check.version == SAMPLE_VERSION:  # the picture of the recorded sample, coded the same way
        assert check.layer_bytes == [9 + 224, 109]
        assert check.summary().startswith("VTM 23.13: a two-layer 64x48 + 128x96 picture encoded and decoded "
                                          "(L0 233 B 35.10 dB, L1 109 B 35.05 dB)")


@pytest.mark.slow
@pytest.mark.vtm
@pytest.mark.skipif(not os.environ.get("BENCH_VTM_SOURCE"),
                    reason="a real VTM build takes half an hour: set BENCH_VTM_SOURCE to VTM sources (a folder "
                           "or archive)")
def test_real_build_from_sources(tmp_path: Path) -> None:
    said: list[str] = []
    result = vtm_build.build_vtm(Path(os.environ["BENCH_VTM_SOURCE"]), tmp_path / "vtm", say=said.append)
    assert result.export_line == f"export VTM_DIR={tmp_path / 'vtm' / 'bin'}"
    assert {p.name for p in result.bin_dir.iterdir()} == {"EncoderAppStatic", "DecoderAppStatic"}
    assert int(result.verification.version.split(".")[0]) >= 23
    assert result.verification.layer_sizes == SAMPLE_SIZES and all(b > 0 for b in result.verification.layer_bytes)
