"""The injected clock: every part of Saluran asks a Clock for the time, never the OS directly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class Clock(Protocol):
    """Source of the current time (always timezone-aware UTC) and of waiting."""

    def now(self) -> datetime:
        """Return the current instant in UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for the given number of clock seconds."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the current instant in UTC."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await asyncio.sleep(max(0.0, seconds))


async def clock_wait(clock: Clock, seconds: float, *events: asyncio.Event | None) -> None:
    """Wait ``seconds`` of clock time, or less if any of ``events`` is set first (None entries ignored).

    The loops' sleep between passes: a stop or a wake-up event ends it early.
    """
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(clock.sleep(seconds))]
    waiters += [asyncio.ensure_future(event.wait()) for event in events if event is not None]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def real_pause(seconds: float, stop: asyncio.Event) -> None:
    """Pause ``seconds`` of real time, or until ``stop``: a back-off between retries, not a wait on the clock.

    A loop whose work is due now but held elsewhere (another worker's claim) must not spin, and must not
    wait on the clock either: asking a stopped clock (a test's, or a paused demo's) for "0.05 s more"
    never returns, while the work itself needs no clock time to pass.
    """
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


class FakeClock:
    """A clock that only moves when a test moves it; sleepers wake when it passes their time."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = ensure_utc(start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
        self._changed = asyncio.Condition()
        self._wakers: set[asyncio.Task[None]] = set()

    def now(self) -> datetime:
        """Return the fake current instant."""
        return self._now

    def set(self, instant: datetime) -> None:
        """Jump to an instant (never backwards: time in the product is monotonic)."""
        instant = ensure_utc(instant)
        if instant < self._now:
            raise ValueError("FakeClock cannot move backwards")
        self._now = instant
        self._notify()

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by a timedelta or a number of seconds."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        self.set(self._now + step)
        return self._now

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        """Wait until the fake time has advanced by ``seconds`` from the call.

        The target is fixed when ``sleep`` is called, not when the coroutine first runs: a caller that
        wraps it in a task (``ensure_future``) would otherwise measure from a later instant if the clock
        jumped in between, and sleep past the time it meant to wake at.
        """
        return self._sleep_until(self._now + timedelta(seconds=max(0.0, seconds)))

    async def _sleep_until(self, target: datetime) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= target)

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: nobody can be sleeping
        task = loop.create_task(wake())
        self._wakers.add(task)  # keep a reference until it ran, or it may be collected
        task.add_done_callback(self._wakers.discard)


class ScaledClock:
    """Real time sped up ``speed`` times from ``start`` (``inbox demo``): at 60, a minute passes each second.

    Everything that waits through the clock waits ``speed`` times less, so timers, polls and SLA
    deadlines keep their proportions; network timeouts, which are not clock waits, stay real.
    """

    def __init__(
        self, speed: float, start: datetime | None = None, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be greater than zero, not {speed}")
        self.speed = float(speed)
        self._start = ensure_utc(start) if start is not None else SystemClock().now()
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> datetime:
        """The start plus the real time elapsed since, times ``speed``."""
        return self._start + timedelta(seconds=(self._monotonic() - self._origin) * self.speed)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of clock time: ``seconds / speed`` of real time."""
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def real_seconds(self, seconds: float) -> float:
        """How long ``seconds`` of clock time last in real time."""
        return max(0.0, seconds) / self.speed


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def isoformat_utc(value: datetime | None) -> str | None:
    """Format an instant as ISO 8601 UTC with a trailing Z, or None."""
    if value is None:
        return None
    return ensure_utc(value).isoformat().replace("+00:00", "Z")
