"""The report's fast business-time index agrees with the calendar module it stands in for."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np

from inbox.reports.opentime import Clocks, OpenTimeArrays, OpenTimeIndex, from_us, to_us
from inbox.sla.calendar import BusinessCalendar, add_business_time, business_time_between

BERLIN = BusinessCalendar.from_config(
    "Europe/Berlin", {"weekdays": ["09:00-12:00", "13:00-17:00"], "sat": ["22:00-02:00"]}, ["2026-12-25"])


def test_the_index_matches_the_calendar_walk_everywhere() -> None:
    rng = random.Random(7)
    index = OpenTimeIndex(BERLIN)
    base = datetime(2026, 10, 1, tzinfo=UTC)  # spans the autumn clock change and a holiday
    for _ in range(400):
        start = base + timedelta(minutes=rng.randrange(0, 120 * 24 * 60))
        end = start + timedelta(minutes=rng.randrange(0, 20 * 24 * 60))
        assert index.between(start, end) == business_time_between(BERLIN, start, end)
        amount = timedelta(minutes=rng.randrange(1, 60 * 40))
        assert index.add(start, amount) == add_business_time(BERLIN, start, amount)
    # Asking for an instant before everything seen so far rebuilds the index backwards.
    early = base - timedelta(days=90)
    assert index.between(early, base) == business_time_between(BERLIN, early, base)


def test_clocks_without_a_calendar_count_wall_time_and_segments() -> None:
    clocks = Clocks()
    start = datetime(2026, 11, 16, 9, tzinfo=UTC)
    assert clocks.between(None, start, start - timedelta(hours=1)) == timedelta(0)
    segments = [(start, start + timedelta(minutes=20)), (start + timedelta(hours=2), None)]
    assert clocks.instant_at(None, segments, timedelta(minutes=30)) == start + timedelta(hours=2, minutes=10)
    assert clocks.instant_at(None, segments[:1], timedelta(minutes=30)) is None
    hour = timedelta(hours=1)
    assert clocks.add(BERLIN, start, hour) == add_business_time(BERLIN, start, hour)


def test_the_arrays_match_the_calendar_walk_for_whole_columns() -> None:
    rng = random.Random(11)
    base = datetime(2026, 10, 1, tzinfo=UTC)  # the autumn clock change, a holiday, microseconds
    starts = [base + timedelta(seconds=rng.randrange(0, 120 * 24 * 3600), microseconds=rng.randrange(10**6))
              for _ in range(300)]
    ends = [start + timedelta(seconds=rng.randrange(-3600, 20 * 24 * 3600)) for start in starts]
    arrays = OpenTimeArrays(BERLIN, min(starts))
    begin = np.array([to_us(s) for s in starts], dtype=np.int64)
    counted = arrays.between(begin, np.array([to_us(e) for e in ends], dtype=np.int64))
    assert [timedelta(microseconds=int(v)) for v in counted] == [
        business_time_between(BERLIN, s, e) for s, e in zip(starts, ends, strict=True)]
    for amount in (timedelta(minutes=1), timedelta(hours=7, minutes=30), timedelta(days=9)):
        assert [from_us(v) for v in arrays.add(begin, amount)] == [
            add_business_time(BERLIN, s, amount) for s in starts]
