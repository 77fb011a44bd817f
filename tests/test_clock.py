"""The clocks: ScaledClock runs real time faster (``inbox demo``), FakeClock only moves when told."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from inbox.clock import FakeClock, ScaledClock, real_pause

START = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def test_a_scaled_clock_runs_speed_times_faster_from_its_start() -> None:
    real = [100.0]
    clock = ScaledClock(60, START, monotonic=lambda: real[0])
    assert clock.now() == START
    real[0] += 1.5
    assert clock.now() == START + timedelta(seconds=90)  # a minute and a half per 1.5 real seconds
    assert clock.real_seconds(120) == 2.0


async def test_a_scaled_clock_sleeps_less_real_time() -> None:
    clock = ScaledClock(1000, START)
    began = time.monotonic()
    await clock.sleep(50)  # 50 clock seconds: 0.05 real seconds
    took = time.monotonic() - began
    assert 0.04 <= took < 1.0
    assert clock.now() - START >= timedelta(seconds=40)
    await asyncio.wait_for(clock.sleep(-5), 0.5)  # the past: no wait


def test_a_scaled_clock_is_utc_and_needs_a_positive_speed() -> None:
    naive = ScaledClock(2, datetime(2026, 1, 1, 12, 0), monotonic=lambda: 0.0)
    assert naive.now().tzinfo == UTC
    assert ScaledClock(1).now().tzinfo is not None  # default start: now
    for bad in (0, -1):
        with pytest.raises(ValueError, match="greater than zero"):
            ScaledClock(bad)


async def test_a_fake_clock_wakes_sleepers_when_advanced() -> None:
    clock = FakeClock(START)
    sleeper = asyncio.create_task(clock.sleep(30))
    await asyncio.sleep(0)
    clock.advance(29)
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    clock.advance(timedelta(seconds=1))
    await asyncio.wait_for(sleeper, 1)
    with pytest.raises(ValueError):
        clock.set(START)


async def test_a_fake_clock_sleep_counts_from_the_call_even_if_its_task_starts_later() -> None:
    # The weekly-report job computes a delay, then wraps clock.sleep in a task: a jump of the clock
    # between the call and the task's first step must not push the wake-up later.
    clock = FakeClock()
    sleep = clock.sleep(60)
    clock.advance(30)  # before the coroutine has run at all
    task = asyncio.ensure_future(sleep)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(30)  # 60 s after the call
    await asyncio.wait_for(task, 1)


async def test_a_real_pause_ends_in_real_time_on_a_stopped_clock_or_at_once_on_stop() -> None:
    clock = FakeClock(START)
    stop = asyncio.Event()
    began = time.monotonic()
    await real_pause(0.05, stop)  # the fake clock never moves: the pause does not depend on it
    assert 0.04 <= time.monotonic() - began < 5
    assert clock.now() == START
    stop.set()
    began = time.monotonic()
    await real_pause(60, stop)
    assert time.monotonic() - began < 5
