"""Dask executor: a loopback LocalCluster of worker processes gives a local run's records, record for
record; a worker killed mid-run loses and duplicates nothing; an unreachable scheduler is a clear error."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster  # a dependency (pyproject): missing, these tests must fail

from bench.datasets import load_dataset
from bench.running.distributed import DaskExecutor, DistributedError, code_fingerprint, task_key
from bench.running.runner import LocalExecutor, execute, plan_jobs
from bench.storage.store import RunStore

# Everything a record says about the coding itself (not how long it took or where it ran).
EXACT_FIELDS = ("codec", "dataset", "image", "scales", "anchor", "quality", "layer", "num_layers", "height",
                "width", "bits_layer", "bits_cum", "bpp", "psnr-rgb", "ms-ssim-rgb", "mode", "device",
                "threads")


def _jobs(folder: Path, qualities=(32, 37)):
    dataset = load_dataset(str(folder))
    return plan_jobs(["x265"], dataset.name, dataset.images, [(2.0,)], "top", {"x265": list(qualities)},
                     "cpu", 1)


def _exact(records: list[dict]) -> list[tuple]:
    return sorted(tuple(repr(r[f]) for f in EXACT_FIELDS) for r in records)


@pytest.fixture(scope="module")
def cluster():
    # Loopback only; processes=True: real worker processes behind nannies, as on a real cluster.
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as local:
        yield local


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory, x265_ready):
    """A small x265 configuration run by the local executor: the records to match."""
    from PIL import Image

    from tests.conftest import synthetic_image

    folder = tmp_path_factory.mktemp("images")
    for index in range(4):
        Image.fromarray(synthetic_image(48, 64, seed=index)).save(folder / f"img{index:02d}.png")
    store = RunStore(tmp_path_factory.mktemp("local"))
    store.open_for_writing()
    summary = execute(_jobs(folder), store, executor=LocalExecutor(1))
    assert summary.done == 8 and not summary.failed
    return folder, store.records()


def test_cluster_run_equals_local_run_record_for_record(cluster, local_reference, tmp_path) -> None:
    folder, reference = local_reference
    store = RunStore(tmp_path / "dask")
    store.open_for_writing()
    summary = execute(_jobs(folder), store, executor=DaskExecutor(cluster.scheduler_address))
    assert summary.failed == [] and summary.done == 8
    records = store.records()
    assert len(records) == len(reference) == 16  # 8 jobs x 2 layers
    assert _exact(records) == _exact(reference)
    # Both workers took part, so the equality is not that of one process with itself.
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        assert len(client.scheduler_info()["workers"]) == 2
    # A second run over the same store resumes: nothing is sent, nothing is duplicated.
    again = execute(_jobs(folder), store, executor=DaskExecutor(cluster.scheduler_address))
    assert (again.done, again.skipped) == (0, 8) and len(store.records()) == 16


def test_bench_run_with_scheduler_uses_the_cluster(cluster, local_reference, tmp_path, capsys) -> None:
    from bench.cli import main

    folder, reference = local_reference
    out = tmp_path / "cli"
    args = ["run", "--codecs", "x265", "--dataset", str(folder), "--scales", "2", "--qualities", "32,37",
            "--out", str(out), "--no-progress"]
    assert main(args + ["--scheduler", cluster.scheduler_address]) == 0
    assert "8 jobs run, 0 already done, 0 failed" in capsys.readouterr().out
    store = RunStore(out)
    assert _exact(store.records()) == _exact(reference)
    assert store.manifest()["invocations"][-1]["scheduler"] == cluster.scheduler_address


def test_bench_run_with_unreachable_scheduler_fails_clearly(local_reference, tmp_path, capsys,
                                                           monkeypatch) -> None:
    import socket

    import bench.running.distributed
    from bench.cli import main

    monkeypatch.setattr(bench.running.distributed, "CONNECT_TIMEOUT_S", 2.0)

    folder, _ = local_reference
    with socket.socket() as probe:  # a loopback port where nothing listens (bound, then closed)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "cli"
    code = main(["run", "--codecs", "x265", "--dataset", str(folder), "--scales", "2", "--qualities", "32",
                 "--out", str(out), "--no-progress", "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert code == 2
    error = capsys.readouterr().err
    assert f"bench run: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in error
    assert not out.exists()  # refused before the run directory was made


class _KillOneWorkerMidRun:
    """Wraps the Dask executor: after the first finished job, SIGKILLs a worker process that is
    running a job at that moment (the nanny restarts it; the scheduler reschedules its job)."""

    def __init__(self, inner: DaskExecutor, address: str) -> None:
        self.inner, self.address = inner, address
        self.killed_while_processing: list[str] = []
        self.outstanding_at_kill = 0

    def run(self, jobs):
        for seen, outcome in enumerate(self.inner.run(jobs), 1):
            if seen == 1:
                self._kill_a_busy_worker(len(jobs) - seen)
            yield outcome

    def _kill_a_busy_worker(self, outstanding: int) -> None:
        with Client(self.address, set_as_default=False) as client:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                busy = {w: keys for w, keys in client.processing().items() if keys}
                if busy:
                    worker, keys = next(iter(busy.items()))
                    pid = client.run(os.getpid, workers=[worker])[worker]
                    os.kill(pid, signal.SIGKILL)
                    self.killed_while_processing = list(keys)
                    self.outstanding_at_kill = outstanding
                    return
                time.sleep(0.01)
        raise AssertionError("no worker was busy: cannot kill one mid-job")


def test_killing_a_worker_mid_run_loses_and_duplicates_nothing(cluster, local_reference, tmp_path) -> None:
    folder, reference = local_reference
    jobs = _jobs(folder)
    store = RunStore(tmp_path / "killed")
    store.open_for_writing()
    killer = _KillOneWorkerMidRun(DaskExecutor(cluster.scheduler_address), cluster.scheduler_address)
    summary = execute(jobs, store, executor=killer)
    # The kill hit a worker while it held jobs of this run, with jobs still outstanding.
    assert killer.killed_while_processing and killer.outstanding_at_kill >= 1
    assert set(killer.killed_while_processing) <= {task_key(job) for job in jobs}
    assert summary.failed == [] and summary.done == 8
    records = store.records()
    keys = [(r["image"], r["quality"], r["layer"]) for r in records]
    assert len(keys) == len(set(keys)) == 16  # nothing lost, nothing twice
    assert _exact(records) == _exact(reference)
    assert store.completed_jobs() == {job.key for job in jobs}


def test_unreachable_scheduler_is_a_clear_error(tmp_path, local_reference) -> None:
    folder, _ = local_reference
    store = RunStore(tmp_path / "nowhere")
    store.open_for_writing()
    # A port on loopback where nothing listens (bound then closed).
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    executor = DaskExecutor(f"tcp://127.0.0.1:{port}", connect_timeout=2)
    with pytest.raises(DistributedError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        execute(_jobs(folder), store, executor=executor)
    assert store.records() == []


def test_workers_with_other_bench_code_are_refused(cluster, local_reference) -> None:
    folder, _ = local_reference
    executor = DaskExecutor(cluster.scheduler_address)
    assert executor.fingerprint == code_fingerprint() and len(executor.fingerprint) == 64
    executor.fingerprint = "0" * 64  # as if this process ran other code than the workers
    with pytest.raises(DistributedError, match="2 of 2 Dask workers run other bench code"):
        list(executor.run(_jobs(folder)))


def test_task_keys_are_per_job() -> None:
    from bench.running.runner import Job

    a = Job("x265", "d", "a.png", "/x/a.png", (2.0,), "top", 32)
    assert task_key(a) == task_key(Job("x265", "d", "a.png", "/x/a.png", (2.0,), "top", 32))
    assert task_key(a) != task_key(Job("x265", "d", "a.png", "/x/a.png", (2.0,), "top", 37))
    assert task_key(a) != task_key(Job("x265", "d", "a.png", "/x/a.png", (2.0,), "top", 32, threads=2))
