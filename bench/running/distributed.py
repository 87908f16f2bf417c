"""Running a sweep's jobs on a Dask distributed cluster (``bench run --scheduler tcp://HOST:PORT``).

Why Dask distributed rather than Ray:

* Dask distributed is pure Python (tornado, msgpack, cloudpickle): ``pip install dask distributed``
  works wherever bench does. Ray is a large binary wheel per platform and Python version that brings
  its own object store, raylet and dashboard processes; none of that is needed to send a few
  thousand independent, CPU-bound jobs of a few KB each to some machines.
* A loopback ``LocalCluster`` with real worker processes starts in seconds, so the tests exercise the
  same scheduler, transport and failure handling that a multi-machine run uses.
* It handles the failures a long sweep meets: a task whose worker dies is rescheduled on another
  worker by the scheduler (up to ``distributed.scheduler.allowed-failures`` deaths, then
  ``KilledWorker``), ``retries`` re-runs a task that raised, a nanny restarts a dead worker process,
  and ``as_completed`` hands results back in finishing order.
* Its scheduler/worker command-line tools (``dask scheduler``, ``dask worker ADDRESS --nthreads 1``)
  and its SSH/SLURM/Kubernetes deployers cover the clusters a benchmark is likely to run on.

Guarantees: workers only compute; every record is written by the parent process (``execute``
appends each finished job's records in one write), so a lost worker can neither tear nor duplicate
a record. Each job is one task with a key derived from the job itself: a job that was rescheduled
after its worker died still produces a single result, and the parent sees each key once.

Deployment: workers must run the same bench code (checked: the source fingerprint of ``bench`` and
``bench.codecs`` must match, else the run is refused), see the dataset at the same path as the
parent (a shared file system), and have the codecs' binaries and weights. Start one worker thread
per core (``--nthreads 1``): a job already uses ``--threads`` torch threads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from bench.errors import DistributedError
from bench.running.runner import Job, JobOutcome, run_job_safely

RETRIES = 2  # re-runs of a task that raised on its worker (worker deaths are rescheduled separately)
CONNECT_TIMEOUT_S = 30.0
WORKER_WAIT_S = 60.0


def code_fingerprint() -> str:
    """SHA-256 over the source files of ``bench`` and ``bench.codecs``: equal code, equal results."""
    import importlib.util

    digest = hashlib.sha256()
    for package in ("bench", "bench.codecs"):  # found, not imported: importing would load every plugin
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        root = Path(spec.origin).resolve().parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def task_key(job: Job) -> str:
    """A Dask key per job: the same job gets the same key (so it runs once), other jobs others."""
    text = repr(sorted(asdict(job).items()))
    return f"bench-job-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


class DaskExecutor:
    """An ``Executor`` that sends each job to a Dask scheduler and yields outcomes as jobs finish."""

    def __init__(self, address: str, retries: int = RETRIES, connect_timeout: float | None = None,
                 worker_wait: float | None = None) -> None:
        self.address = address
        self.retries = retries
        self.connect_timeout = CONNECT_TIMEOUT_S if connect_timeout is None else connect_timeout
        self.worker_wait = WORKER_WAIT_S if worker_wait is None else worker_wait
        self.fingerprint = code_fingerprint()  # what every worker's code must hash to
        self._client = None

    def connect(self) -> None:
        """Reach the scheduler and check its workers now (``run`` does it otherwise), so that a bad
        address fails before the run directory is touched."""
        if self._client is None:
            self._client = self._connect()

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()  # also cancels the jobs not yet finished

    def _connect(self):  # -> distributed.Client
        try:
            from distributed import Client
        except ImportError as error:
            raise DistributedError(
                f"--scheduler needs Dask distributed: pip install dask distributed ({error})"
            ) from error
        try:
            client = Client(self.address, timeout=self.connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as error:
            raise DistributedError(f"cannot reach the Dask scheduler at {self.address}: {error}") from error
        try:
            self._check_workers(client)
        except BaseException:
            client.close()
            raise
        return client

    def _check_workers(self, client) -> None:
        try:
            client.wait_for_workers(1, timeout=self.worker_wait)
        except (TimeoutError, OSError) as error:
            raise DistributedError(
                f"the Dask scheduler at {self.address} has no workers after {self.worker_wait:.0f} s; start "
                f"some with `dask worker {self.address} --nthreads 1` ({error})"
            ) from None
        theirs = client.run(code_fingerprint)
        other = sorted(worker for worker, value in theirs.items() if value != self.fingerprint)
        if other:
            raise DistributedError(
                f"{len(other)} of {len(theirs)} Dask workers run other bench code than this process "
                f"({', '.join(other[:3])}{', …' if len(other) > 3 else ''}); install the same commit there"
            )

    def run(self, jobs: Sequence[Job]) -> Iterator[JobOutcome]:
        if not jobs:
            return
        from distributed import as_completed

        self.connect()
        client = self._client
        try:
            by_key: dict[str, list[Job]] = {}
            for job in jobs:
                by_key.setdefault(task_key(job), []).append(job)
            futures = {
                client.submit(run_job_safely, group[0], key=key, pure=False, retries=self.retries): key
                for key, group in by_key.items()
            }
            for future in as_completed(futures, loop=client.loop):
                group = by_key[futures[future]]
                try:
                    _, records, error = future.result()
                except Exception as failure:  # noqa: BLE001 - KilledWorker, cancelled, lost scheduler
                    records, error = None, f"lost on the Dask cluster: {type(failure).__name__}: {failure}"
                future.release()  # the parent holds the records now; free the worker's copy
                for job in group:  # identical jobs listed twice share one task, as a local run repeats them
                    yield job, records, error
        finally:
            self.close()
