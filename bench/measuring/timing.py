"""Wall-clock timing of codec calls: synchronised with the device, repeatable, summarised robustly.

A codec call is timed from just before to just after it, with ``bench.codec.synchronize`` on both sides
so that queued CUDA work is inside the interval (and earlier work is not). External binaries are
timed the same way, as whole processes: spawning the process is part of what a user waits for.

With ``repeats > 1`` a call runs that many times; the record keeps the median (robust to a stray
slow run on a shared machine) and the spread. Every repeat must return the same output as the
first: the benchmark measures one deterministic piece of work, not a different one each time.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

from bench.codec import Codec, CodecError, synchronize

T = TypeVar("T")


class NondeterministicCodecError(CodecError):
    """A repeated codec call returned a different output than the first one."""


def timed(codec: Codec, function: Callable[[], T]) -> tuple[T, float]:
    """Run ``function`` once; return its result and the wall-clock seconds it took on ``codec``'s device."""
    synchronize(codec.device)
    start = time.perf_counter()
    result = function()
    synchronize(codec.device)
    return result, time.perf_counter() - start


def spread(samples: Sequence[float]) -> dict[str, float]:
    """Median, extremes and quartiles of timing samples (seconds); ``n`` is how many there were."""
    if not samples:
        raise ValueError("no timing samples")
    ordered = sorted(samples)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {"n": len(ordered), "median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
            "q1": q1, "q3": q3}


@dataclass
class Repeated(Generic[T]):
    """The first result of a repeated call, the seconds of every run, and codec-internal timings."""

    result: T
    seconds: list[float]
    internal: list[dict[str, float]] = field(default_factory=list)  # Encoded.timings of every run

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def total(self) -> float:
        return sum(self.seconds)

    def internal_median(self) -> dict[str, float]:
        """Per key, the median of the codec-internal timings over the runs that reported it."""
        keys = sorted({key for timings in self.internal for key in timings})
        return {key: statistics.median([t[key] for t in self.internal if key in t]) for key in keys}


def repeat(codec: Codec, function: Callable[[], T], repeats: int, same: Callable[[T, T], bool],
           what: str) -> Repeated[T]:
    """Time ``function`` ``repeats`` times; raise NondeterministicCodecError when a run's output differs.

    ``same(first, other)`` decides whether two outputs are equal (bytes for encoders, pixels for
    decoders); ``what`` names the call in the error message.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    first, seconds = timed(codec, function)
    runs = Repeated(first, [seconds - _check_seconds(first)], [_timings_of(first)])
    for index in range(1, repeats):
        other, seconds = timed(codec, function)
        seconds -= _check_seconds(other)
        if not same(first, other):
            raise NondeterministicCodecError(
                f"{codec.spec}: {what} gave a different output on repeat {index + 1} than on the first run; "
                "timings over repeats need a deterministic codec (run with --repeats 1)"
            )
        runs.seconds.append(seconds)
        runs.internal.append(_timings_of(other))
    return runs


def _check_seconds(result: Any) -> float:
    """Seconds of a call's self-checks (``check_*`` timings, see ``Encoded``): not coding time."""
    return sum(v for k, v in _timings_of(result).items() if k.startswith("check_"))


def _timings_of(result: Any) -> dict[str, float]:
    timings = getattr(result, "timings", None)
    return dict(timings) if isinstance(timings, dict) else {}
