"""One writer per run folder: ``bench run`` holds ``run.lock`` while it writes records.

Two runs on the same ``--out`` would each run every job (each reads the finished jobs only at its
start) and write every record twice; worse, the torn-tail repair of a run that opens the folder could
cut the other run's write in flight. So a writer takes an exclusive ``flock`` on ``run.lock`` before
it touches ``records.jsonl`` and writes its PID, host and start time into it; a second run finds
the lock taken and stops with a message naming the holder.

The kernel drops a ``flock`` when its process dies, however it dies: a lock file left behind by a
killed run is not held by anyone, so the next run (a resume) takes it over without asking.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from bench.errors import RunFolderBusyError

LOCK_FILE = "run.lock"


def describe_holder(text: str) -> str:
    """``pid 123 on host h since T`` from a lock file's contents (what is known of them)."""
    try:
        holder = json.loads(text)
    except ValueError:
        return "holder unknown"
    if not isinstance(holder, dict):
        return "holder unknown"
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since {holder.get('started', '?')}"


class RunLock:
    """The exclusive writer lock of one run folder (``acquire``/``release``, or ``with``)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise RunFolderBusyError naming the run that holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = describe_holder(os.read(fd, 4096).decode("utf-8", "replace"))
                os.close(fd)
                raise RunFolderBusyError(
                    f"{self.path.parent} is in use by another bench run ({holder}); wait for it to finish "
                    "(a rerun then resumes), or give this run another --out") from None
            # A holder that released the lock just now unlinked the file we opened: lock the new one.
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(fd)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(holder) + "\n").encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock up and remove the file (unlinked while still held, so no one locks a stale file)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
