"""``bench shm build``: sources, flags, make runs and checks against fake trees and a fake ``make``;
a real build only when ``BENCH_SHM_SOURCE`` names SHM sources (slow: minutes)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from bench.codecs.shvc import build as shm_build
from bench.codecs.shvc.build import ShmBuildError
from bench.errors import BenchError

MAKEFILE_BASE = """\
CPPFLAGS          = -fPIC $(DEFS) -I$(CURDIR)/$(INC_DIR) $(USER_INC_DIRS) -Wall -Wshadow -Wno-sign-compare -Werror
# release cpp
RELEASE_CPPFLAGS  =  -O3 -Wuninitialized
"""


def fake_shm(root: Path, hm: bool = False) -> Path:
    """The files of an SHM release that the build looks at (empty makefiles)."""
    (root / "build" / "linux" / "common").mkdir(parents=True)
    (root / "build" / "linux" / "makefile").write_text("all:\n")
    (root / shm_build.MAKEFILE_BASE).write_text(MAKEFILE_BASE)
    for folder in shm_build.MAKE_FOLDERS:
        (root / "build" / "linux" / folder).mkdir(parents=True)
        (root / "build" / "linux" / folder / "makefile").write_text("release:\n")
    app = root / "source" / "App" / "TAppEncoder"
    app.mkdir(parents=True)
    (app / "TAppEncTop.cpp").write_text("")
    if not hm:
        (app / "TAppEncLayerCfg.cpp").write_text("")
    return root


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture()
def fake_make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``make`` on PATH that records its arguments, fails in TLibDecoder when ``FAKE_MAKE_FAIL`` is
    set, and writes stand-in binaries (which exit 1) into the tree's bin/ when ``FAKE_MAKE_BINARIES``
    is; a ``g++`` beside it so that the check for a compiler passes."""
    tools = tmp_path / "tools"
    tools.mkdir()
    executable(tools / "make", """#!/bin/sh
echo "$@" >> "$FAKE_MAKE_LOG"
case "$3" in
  *TLibDecoder) if [ -n "$FAKE_MAKE_FAIL" ]; then echo "TDecCAVLC.cpp:12: error: boom"; exit 2; fi ;;
  *TAppEncoder) if [ -n "$FAKE_MAKE_BINARIES" ]; then
      mkdir -p "$3/../../../../bin"
      for name in TAppEncoderStatic TAppDecoderStatic; do
        printf '#!/bin/sh\\necho not SHM; exit 1\\n' > "$3/../../../../bin/$name"; chmod +x "$3/../../../../bin/$name"
      done
    fi ;;
esac
echo "compiled $3"
""")
    executable(tools / "g++", "#!/bin/sh\nexit 0\n")
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "make-args.txt"
    monkeypatch.setenv("FAKE_MAKE_LOG", str(log))
    return log


def test_names_and_default_folder() -> None:
    for name in ("SHM-12.1", "SHM-12.1.tar.gz", "SHM-12.1.zip", "SHM-12.1.tgz"):
        assert shm_build.source_name(Path("/x") / name) == "SHM-12.1"
    assert shm_build.default_out(Path("SHM-12.1.tar.gz")) == Path.home() / ".cache/bench/shm/SHM-12.1"
    assert issubclass(ShmBuildError, BenchError)  # printed as one line by the command line


def test_release_flags_turn_off_werror_only(tmp_path: Path) -> None:
    root = fake_shm(tmp_path / "shm")
    assert shm_build.release_flags(root) == "-O3 -Wuninitialized -Wno-error"
    (root / shm_build.MAKEFILE_BASE).write_text("RELEASE_CPPFLAGS = -O2 -Wno-error\n")
    assert shm_build.release_flags(root) == "-O2 -Wno-error"  # not twice
    (root / shm_build.MAKEFILE_BASE).write_text("CPPFLAGS = -Werror\n")
    assert shm_build.release_flags(root) == "-O3 -Wno-error"


def test_make_commands_pass_flags_on_the_command_line(tmp_path: Path) -> None:
    root = fake_shm(tmp_path / "shm")
    commands = shm_build.make_commands(root, 2, "-O3 -Wno-error")
    assert [c[3].split("build/linux/")[1] for c in commands] == list(shm_build.MAKE_FOLDERS)
    assert all(c[:3] == ["make", "-j2", "-C"] and c[4:] == ["release", "RELEASE_CPPFLAGS=-O3 -Wno-error"]
               for c in commands)
    (root / "build" / "linux" / "lib" / "TAppCommon" / "makefile").unlink()  # older releases lack it
    assert len(shm_build.make_commands(root, 1, "-O3")) == len(shm_build.MAKE_FOLDERS) - 1
    (root / "build" / "linux" / "app" / "TAppDecoder" / "makefile").unlink()
    with pytest.raises(ShmBuildError, match="lacks the makefiles of app/TAppDecoder"):
        shm_build.make_commands(root, 1, "-O3")


def test_find_root_in_tree_or_its_only_subfolder(tmp_path: Path) -> None:
    direct = fake_shm(tmp_path / "a")
    assert shm_build.find_shm_root(direct) == direct
    nested = fake_shm(tmp_path / "b" / "SHM-12.1")
    assert shm_build.find_shm_root(tmp_path / "b") == nested


def test_clear_errors_for_folders_that_are_not_shm(tmp_path: Path) -> None:
    with pytest.raises(ShmBuildError, match="looks like HM, not SHM"):
        shm_build.find_shm_root(fake_shm(tmp_path / "hm", hm=True))
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "kodim01.png").write_bytes(b"")
    (tmp_path / "photos" / "kodim02.png").write_bytes(b"")
    with pytest.raises(ShmBuildError, match="is not an SHM source tree: no build/linux/makefile"):
        shm_build.find_shm_root(tmp_path / "photos")
    (tmp_path / "cmake").mkdir()
    (tmp_path / "cmake" / "CMakeLists.txt").write_text("project(HM)\n")
    with pytest.raises(ShmBuildError, match="builds with CMake"):
        shm_build.find_shm_root(tmp_path / "cmake")


def test_archives_unpack_into_out_src_and_are_reused(tmp_path: Path) -> None:
    fake_shm(tmp_path / "tree" / "SHM-12.1")
    archive = tmp_path / "SHM-12.1.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(tmp_path / "tree" / "SHM-12.1", arcname="SHM-12.1")
    out = tmp_path / "out"
    root = shm_build.prepare_sources(archive, out)
    assert root == out / "src" / "SHM-12.1" and (root / shm_build.MAKEFILE_BASE).read_text() == MAKEFILE_BASE
    (root / "build" / "linux" / "lib" / "TLibCommon" / "objects").mkdir()  # what an earlier make left
    assert shm_build.prepare_sources(archive, out) == root  # same source: reused, objects kept
    assert (root / "build" / "linux" / "lib" / "TLibCommon" / "objects").is_dir()
    with pytest.raises(ShmBuildError, match="already holds sources from"):
        shm_build.prepare_sources(tmp_path / "tree", out)
    # a folder is copied likewise, its version-control folders left out
    (tmp_path / "tree" / "SHM-12.1" / ".svn").mkdir()
    copied = shm_build.prepare_sources(tmp_path / "tree", tmp_path / "out2")
    assert copied == tmp_path / "out2" / "src" / "SHM-12.1" and not (copied / ".svn").exists()
    # zip archives too
    zipped = tmp_path / "SHM-12.1.zip"
    with zipfile.ZipFile(zipped, "w") as bundle:
        for path in (tmp_path / "tree").rglob("*"):
            bundle.write(path, path.relative_to(tmp_path / "tree"))
    assert shm_build.prepare_sources(zipped, tmp_path / "out3") == tmp_path / "out3" / "src" / "SHM-12.1"


def test_unsafe_or_unusable_sources_are_refused(tmp_path: Path) -> None:
    evil_tar = tmp_path / "evil.tar"
    with tarfile.open(evil_tar, "w") as bundle:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        bundle.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ShmBuildError, match="refusing to unpack"):
        shm_build.prepare_sources(evil_tar, tmp_path / "out")
    assert not (tmp_path / "out" / "escaped.txt").exists() and not (tmp_path / "out" / "src").exists()
    evil_zip = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil_zip, "w") as bundle:
        bundle.writestr("../../escaped.txt", "hi")
    with pytest.raises(ShmBuildError, match="would land outside"):
        shm_build.prepare_sources(evil_zip, tmp_path / "out")
    (tmp_path / "notes.txt").write_text("SHM lives on an SVN server\n")
    with pytest.raises(ShmBuildError, match="neither a folder nor a tar or zip archive"):
        shm_build.prepare_sources(tmp_path / "notes.txt", tmp_path / "out")
    with pytest.raises(ShmBuildError, match="does not exist"):
        shm_build.prepare_sources(tmp_path / "SHM-99", tmp_path / "out")
    not_shm = tmp_path / "not-shm"
    not_shm.mkdir()
    (not_shm / "README").write_text("")
    with pytest.raises(ShmBuildError, match="not an SHM source tree"):
        shm_build.prepare_sources(not_shm, tmp_path / "out")
    assert not (tmp_path / "out" / "src").exists()  # no half-made copy is left to be reused


def test_a_failing_make_names_the_folder_and_its_error(tmp_path: Path, fake_make: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MAKE_FAIL", "1")
    fake_shm(tmp_path / "SHM-12.1")
    said: list[str] = []
    with pytest.raises(ShmBuildError, match=r"make failed in build/linux/lib/TLibDecoder \(status 2\)") as caught:
        shm_build.build_shm(tmp_path / "SHM-12.1", tmp_path / "out", jobs=2, niceness=0, say=said.append)
    assert "error: boom" in str(caught.value) and str(tmp_path / "out" / "build.log") in str(caught.value)
    calls = fake_make.read_text().splitlines()
    assert len(calls) == 3  # stopped at the failing folder
    assert all(c.startswith("-j2 -C ") and c.endswith(" release RELEASE_CPPFLAGS=-O3 -Wuninitialized -Wno-error")
               for c in calls)
    assert "error: boom" in (tmp_path / "out" / "build.log").read_text()
    assert said[0].startswith("building SHM from") and said[-1].startswith("[3/7] make lib/TLibDecoder")


def test_binaries_that_fail_the_one_frame_check_are_reported(tmp_path: Path, fake_make: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fake_shm(tmp_path / "SHM-12.1")
    with pytest.raises(ShmBuildError, match="wrote no .*TAppEncoderStatic"):
        shm_build.build_shm(tmp_path / "SHM-12.1", tmp_path / "out", jobs=1, niceness=0, say=lambda _: None)
    monkeypatch.setenv("FAKE_MAKE_BINARIES", "1")
    failed = r"failed the one-frame check: TAppEncoder\w* \(SHM encoder\) failed with status"
    with pytest.raises(ShmBuildError, match=failed):
        shm_build.build_shm(tmp_path / "SHM-12.1", tmp_path / "out", jobs=1, niceness=0, say=lambda _: None)
    assert (tmp_path / "out" / "bin" / shm_build.ENCODER).is_file()


def test_missing_compiler_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    fake_shm(tmp_path / "SHM-12.1")
    with pytest.raises(ShmBuildError, match="no make on PATH: install make and a C\\+\\+ compiler"):
        shm_build.build_shm(tmp_path / "SHM-12.1", tmp_path / "out", jobs=1, say=lambda _: None)


@pytest.mark.slow
@pytest.mark.shm
@pytest.mark.skipif(not os.environ.get("BENCH_SHM_SOURCE"),
                    reason="a real SHM build takes minutes: set BENCH_SHM_SOURCE to SHM sources (folder or archive)")
def test_real_build_from_sources(tmp_path: Path) -> None:
    said: list[str] = []
    result = shm_build.build_shm(Path(os.environ["BENCH_SHM_SOURCE"]), tmp_path / "shm", say=said.append)
    assert result.export_line == f"export SHM_DIR={tmp_path / 'shm' / 'bin'}"
    assert {p.name for p in result.bin_dir.iterdir()} == {shm_build.ENCODER, shm_build.DECODER}
    check = result.verification
    assert check.version.startswith("12.") or "HM-" in check.version
    assert check.layer_sizes == [(64, 48), (128, 96)] and all(b > 0 for b in check.layer_bytes)
    assert all(30 < p < 50 for p in check.psnr)
