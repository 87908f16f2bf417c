"""What every trainer's loop shares: the lr schedule on steps or on training time, and batch prefetch.

``--minutes`` turns a run into a time-budgeted one (a lent GPU's lease): the run ends after that
much training time and the lr decays for the last fraction of it, wherever the step count lands.
Training time counts only the steps (not start-up, validation or saves) and is kept in the
checkpoint, so a resumed run continues the same schedule.
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.errors import TrainingError


@dataclass(frozen=True)
class Schedule:
    steps: int
    minutes: float | None
    decay_fraction: float

    def finished(self, step: int, trained_seconds: float) -> bool:
        if self.minutes is not None:
            return trained_seconds >= self.minutes * 60
        return step >= self.steps

    def decayed(self, step: int, trained_seconds: float) -> bool:
        if self.minutes is not None:
            return trained_seconds >= self.minutes * 60 * (1 - self.decay_fraction)
        return step >= int(self.steps * (1 - self.decay_fraction))


def positive_minutes(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--minutes must be positive, got {text}")
    return value


def check_schedule_on_resume(saved_args: dict[str, Any], steps: int, minutes: float | None, path: Path) -> None:
    """Refuse to resume a --steps run with --minutes or the reverse: the lr decay would jump."""
    if "minutes" not in saved_args or (saved_args["minutes"] is None) == (minutes is None):
        return
    saved_minutes = saved_args["minutes"]
    was = f"--minutes {saved_minutes}" if saved_minutes is not None else f"--steps {saved_args.get('steps')}"
    now = f"--minutes {minutes}" if minutes is not None else f"--steps {steps}"
    raise TrainingError(f"{path} runs on a {was} schedule; resuming it with {now} would move the lr decay")


def check_minutes(minutes: float | None) -> None:
    """``--minutes`` in a config built from Python (the command line's type checks it already)."""
    if minutes is not None and not minutes > 0:
        raise TrainingError(f"--minutes must be positive, got {minutes}")


class PrefetchedBatches:
    """Draws crops and builds the PIL pyramid in a background thread (PIL releases the GIL), so a
    GPU step does not wait for CPU resizing. Only for accelerator runs: the sampler's saved state
    is then up to ``depth`` batches ahead, so a resumed run sees a slightly different data order."""

    def __init__(self, produce: Callable[[], Any], depth: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._produce = produce
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._produce()
            except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
                item = error
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def next(self) -> Any:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self, timeout: float = 30.0) -> bool:
        """Stop and join the producer (a thread still inside PIL at interpreter exit aborts it);
        False if it is still busy after ``timeout`` seconds (a daemon thread, so exit goes on)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.1)
        return not self._thread.is_alive()


def close_loop(bar: Any, prefetch: PrefetchedBatches | None) -> None:
    """End a training loop's progress bar and batch prefetch (in ``finally``, so a crash does too)."""
    bar.close()
    if prefetch is not None and not prefetch.close():
        print("warning: the batch prefetch thread did not stop in time", flush=True)
