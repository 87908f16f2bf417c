"""One writer per run folder: a second `bench run` on the same --out stops with a clear message, two
concurrent runs leave no duplicate records, and a killed run's lock file does not block a resume."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import RunFolderBusyError, StoreError
from bench.storage.runlock import LOCK_FILE, RunLock
from bench.storage.store import RunStore, job_key
from tests.conftest import REPO


def _bench_run(folder: Path, out: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "bench", "run", "--codecs", "x265", "--dataset", str(folder),
               "--scales", "1.5", "--qualities", "32,37", "--out", str(out), "--no-progress"]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_lock_file_names_the_holder_and_goes_with_release(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    with lock:
        holder = json.loads((tmp_path / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(RunFolderBusyError, match=f"pid {os.getpid()} on host {socket.gethostname()}"):
            RunLock(tmp_path).acquire()  # another open file description: refused like another process
    assert not (tmp_path / LOCK_FILE).exists()
    with RunLock(tmp_path):  # free again
        pass


def test_a_second_run_on_a_folder_in_use_stops_with_a_clear_message(tmp_path: Path, make_image_folder,
                                                                      x265_ready) -> None:
    folder = make_image_folder(1)
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):  # this test process is the "first run"
        second = _bench_run(folder, out)
        _, err = second.communicate(timeout=300)
    assert second.returncode == 2
    assert f"is in use by another bench run (pid {os.getpid()} on host {socket.gethostname()}" in err
    assert not (out / "records.jsonl").exists()  # it touched nothing


def test_two_concurrent_runs_leave_no_duplicate_records(tmp_path: Path, make_image_folder, x265_ready) -> None:
    folder = make_image_folder(2)
    out = tmp_path / "run"
    runs = [_bench_run(folder, out) for _ in range(2)]
    results = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    codes = sorted(code for code, _ in results)
    # either they overlapped (one stopped at the lock) or the second came after the first (and
    # found every job done); never both writing
    assert codes in ([0, 0], [0, 2]), results
    if codes == [0, 2]:
        assert any("is in use by another bench run" in err for code, err in results if code == 2)
    records = RunStore(out).records()
    keys = [(job_key(r), r["layer"]) for r in records]
    assert len(keys) == len(set(keys)) == 2 * 2 * 2  # images x qualities x layers, each once


def test_a_killed_runs_lock_file_does_not_block_a_resume(tmp_path: Path, make_image_folder, x265_ready) -> None:
    folder = make_image_folder(1)
    out = tmp_path / "run"
    out.mkdir()
    # what a run killed with SIGKILL leaves: the file with its PID, but no process holding the flock
    (out / LOCK_FILE).write_text(json.dumps({"pid": 999999, "host": socket.gethostname(), "started": "x"}))
    assert main(["run", "--codecs", "x265", "--dataset", str(folder), "--scales", "1.5", "--qualities", "37",
                 "--out", str(out), "--no-progress"]) == 0
    assert len(RunStore(out).records()) == 2
    assert not (out / LOCK_FILE).exists()


def test_the_store_shares_its_lock_within_one_process(tmp_path: Path) -> None:
    first, second = RunStore(tmp_path / "run"), RunStore(tmp_path / "run")
    first.open_for_writing()
    second.open_for_writing()  # a resume in the same interpreter is allowed
    first.close()
    with pytest.raises(RunFolderBusyError):
        RunLock(tmp_path / "run").acquire()  # the second store still holds it
    second.close()
    with RunStore(tmp_path / "run").writing() as store:
        store.append([])
    assert isinstance(RunFolderBusyError("x"), StoreError)
