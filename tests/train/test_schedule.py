"""The shared training schedule (steps or training time) and the background batch prefetch."""

from __future__ import annotations

import threading

import pytest

from bench.train.schedule import PrefetchedBatches, Schedule


def test_step_schedule_decays_for_the_last_fraction_and_ends_at_steps():
    schedule = Schedule(steps=100, minutes=None, decay_fraction=0.2)
    assert [schedule.decayed(s, 1e9) for s in (0, 79, 80, 99)] == [False, False, True, True]
    assert not schedule.finished(99, 1e9) and schedule.finished(100, 0.0)


def test_time_schedule_ignores_steps():
    schedule = Schedule(steps=10, minutes=2.0, decay_fraction=0.25)
    assert not schedule.finished(10_000, 119.9) and schedule.finished(0, 120.0)
    assert not schedule.decayed(10_000, 89.9) and schedule.decayed(0, 90.0)


def test_prefetched_batches_keep_order_raise_errors_and_stop():
    counter = iter(range(1000))
    batches = PrefetchedBatches(lambda: next(counter), depth=2)
    assert [batches.next() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert batches.close(timeout=5) is True

    def broken():
        raise ValueError("bad crop")

    failing = PrefetchedBatches(broken, depth=1)
    with pytest.raises(ValueError, match="bad crop"):
        failing.next()
    assert failing.close(timeout=5) is True


def test_prefetch_close_gives_up_on_a_stuck_producer_instead_of_hanging():
    release = threading.Event()

    def slow():
        release.wait(10)
        return 0

    batches = PrefetchedBatches(slow, depth=1)
    assert batches.close(timeout=0.2) is False  # still inside produce(): reported, not waited for
    release.set()
    assert batches.close(timeout=5) is True
