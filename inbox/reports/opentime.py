"""Fast business-time arithmetic for reports: a calendar's open intervals laid out once, then bisected.

A report measures hundreds of thousands of durations against one or two calendars; walking the calendar
for each (``inbox.sla.calendar``) costs tens of microseconds, a bisect over precomputed intervals one
or two, and ``OpenTimeArrays`` does whole columns at once (integer microseconds since the epoch, with
numpy). The intervals come from the calendar module's own interval walk, so all agree exactly
(tests/reports/test_opentime.py checks this against ``business_time_between``/``add_business_time``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from inbox.sla.calendar import BusinessCalendar, _open_intervals, add_business_time

_MARGIN = timedelta(days=7)
_ZERO = timedelta(0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

Micros = Any
"""A numpy array of int64 microseconds since the epoch (or durations in microseconds)."""


def to_us(instant: datetime) -> int:
    """An aware instant as integer microseconds since the epoch (exact)."""
    return (instant - EPOCH) // _ONE_US


def from_us(micros: int) -> datetime:
    """The aware UTC instant of integer microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=int(micros))


class OpenTimeIndex:
    """Cumulative open time of one calendar; grows in either direction as instants ask for it."""

    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self._starts: list[datetime] = []
        self._ends: list[datetime] = []
        self._before: list[float] = []  # open seconds from the first interval's start to each start
        self._after: list[float] = []  # ... and to each end
        self._low: datetime | None = None  # instants in [_low, _high) are covered
        self._high: datetime | None = None
        self._walk: Iterator[tuple[datetime, datetime]] | None = None

    def _build(self, low: datetime) -> None:
        self._starts, self._ends, self._before, self._after = [], [], [], []
        self._low = low
        self._high = low
        self._walk = _open_intervals(self.calendar, low)

    def _cover(self, instant: datetime) -> None:
        if self._low is None or instant < self._low:
            high = self._high
            self._build(instant - _MARGIN)
            if high is not None:
                self._cover(high)
        assert self._high is not None and self._walk is not None
        while self._high <= instant:
            opens, closes = next(self._walk)
            total = self._after[-1] if self._after else 0.0
            self._starts.append(opens)
            self._ends.append(closes)
            self._before.append(total)
            self._after.append(total + (closes - opens).total_seconds())
            self._high = closes

    def cumulative(self, instant: datetime) -> float:
        """Open seconds from the index's origin up to ``instant``."""
        self._cover(instant)
        index = bisect.bisect_right(self._starts, instant) - 1
        if index < 0:
            return 0.0
        inside = min(instant, self._ends[index]) - self._starts[index]
        return self._before[index] + inside.total_seconds()

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Open time in ``[start, end)``; zero when ``end <= start``."""
        if end <= start:
            return _ZERO
        self._cover(start)  # first: reaching back rebuilds the index and moves its origin
        return timedelta(seconds=self.cumulative(end) - self.cumulative(start))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """When ``duration`` of open time has passed since ``start`` (as ``add_business_time``)."""
        if duration <= _ZERO:
            return add_business_time(self.calendar, start, duration)  # zero: "now if open, else next opening"
        target = self.cumulative(start) + duration.total_seconds()
        while True:
            index = bisect.bisect_left(self._after, target)
            if index < len(self._starts):
                return self._starts[index] + timedelta(seconds=target - self._before[index])
            assert self._high is not None
            self._cover(self._high + duration + _MARGIN)


class Clocks:
    """Business-time arithmetic per calendar (plain arithmetic without one), with one index per calendar."""

    def __init__(self) -> None:
        self._indexes: dict[int, OpenTimeIndex] = {}

    def _index(self, calendar: BusinessCalendar) -> OpenTimeIndex:
        found = self._indexes.get(id(calendar))
        if found is None:
            found = self._indexes[id(calendar)] = OpenTimeIndex(calendar)
        return found

    def between(self, calendar: BusinessCalendar | None, start: datetime, end: datetime) -> timedelta:
        """Counted time in ``[start, end)``: business time with a calendar, else elapsed time (>= 0)."""
        if calendar is None:
            return max(end - start, _ZERO)
        return self._index(calendar).between(start, end)

    def add(self, calendar: BusinessCalendar | None, start: datetime, duration: timedelta) -> datetime:
        """``start`` plus ``duration`` of counted time."""
        if calendar is None:
            return start + duration
        return self._index(calendar).add(start, duration)

    def instant_at(
        self, calendar: BusinessCalendar | None, segments: Sequence[tuple[datetime, datetime | None]],
        amount: timedelta,
    ) -> datetime | None:
        """When segments have counted ``amount`` (as ``TargetClock.instant_at``), or None if they do not."""
        remaining = amount
        for start, end in segments:
            if end is None:
                return self.add(calendar, start, remaining)
            length = self.between(calendar, start, end)
            if remaining <= length:
                return self.add(calendar, start, remaining)
            remaining -= length
        return None


class OpenTimeArrays:
    """One calendar's open intervals from ``low`` on, in microseconds, for columns of instants at once.

    ``cumulative`` counts open microseconds from ``low``; instants before ``low`` must not be asked for.
    Integer arithmetic makes every result exact, so it equals what the calendar walk gives.
    """

    def __init__(self, calendar: BusinessCalendar, low: datetime) -> None:
        self.calendar = calendar
        self._walk = _open_intervals(calendar, low)
        self._starts: list[int] = []
        self._ends: list[int] = []
        self.low_us = to_us(low)
        self._high = self.low_us  # intervals cover everything before this
        self.starts = self.ends = self.before = self.after = np.zeros(0, dtype=np.int64)

    def cover(self, high_us: int) -> None:
        """Lay out the intervals up to at least ``high_us`` (and one past it)."""
        if self._high > high_us and self._starts:
            return
        while self._high <= high_us or not self._starts:
            opens, closes = next(self._walk)
            self._starts.append(to_us(opens))
            self._ends.append(to_us(closes))
            self._high = self._ends[-1]
        self.starts = np.array(self._starts, dtype=np.int64)
        self.ends = np.array(self._ends, dtype=np.int64)
        self.after = np.cumsum(self.ends - self.starts)
        self.before = self.after - (self.ends - self.starts)

    def cumulative(self, instants: Micros) -> Micros:
        """Open microseconds from ``low`` up to each instant."""
        self.cover(int(instants.max()) if len(instants) else self._high)
        index = np.searchsorted(self.starts, instants, side="right") - 1
        inside = np.minimum(instants, self.ends[index]) - self.starts[index]
        return np.where(index >= 0, self.before[index] + inside, 0)

    def between(self, starts: Micros, ends: Micros) -> Micros:
        """Open microseconds in ``[start, end)`` for each pair; zero where ``end <= start``."""
        return np.where(ends > starts, self.cumulative(ends) - self.cumulative(starts), 0)

    def add(self, starts: Micros, amount: timedelta) -> Micros:
        """When ``amount`` (positive) of open time has passed since each start."""
        assert amount > _ZERO  # zero would mean "now if open, else the next opening": not a deadline
        targets = self.cumulative(starts) + amount // _ONE_US
        while len(targets) and int(targets.max()) > int(self.after[-1]):
            self.cover(self._high + amount // _ONE_US + _MARGIN // _ONE_US)
        index = np.searchsorted(self.after, targets, side="left")
        return self.starts[index] + (targets - self.before[index])
