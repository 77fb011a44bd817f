"""Percentiles (linear interpolation, documented) and report periods in the team's timezone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from inbox.reports.percentiles import median, median_and_p90, percentile
from inbox.reports.period import (
    PeriodError,
    date_range,
    last_days,
    parse_week,
    today,
    week_just_ended,
    week_to_date,
)


def test_percentiles_interpolate_between_closest_ranks() -> None:
    # The worked example of the module docstring: 1, 2, 3, 4 minutes.
    assert median([4, 1, 3, 2]) == 2.5  # position 1.5 -> 2 + 0.5 * (3 - 2)
    assert percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)  # position 2.7 -> 3 + 0.7 * (4 - 3)
    assert median_and_p90([7]) == (7, 7)
    assert median_and_p90([]) == (None, None)
    assert percentile([5, 1, 9], 0) == 1 and percentile([5, 1, 9], 100) == 9
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_an_iso_week_runs_monday_to_monday_in_the_team_timezone() -> None:
    week = parse_week("2026-W47", "Asia/Jakarta")
    assert week.start == datetime(2026, 11, 15, 17, tzinfo=UTC)  # Monday 00:00 WIB
    assert week.end == datetime(2026, 11, 22, 17, tzinfo=UTC)
    assert week.local_days()[0] == date(2026, 11, 16) and len(week.local_days()) == 7
    assert week.previous().label == "2026-W46" and week.previous().end == week.start
    assert parse_week("2026w1", "UTC").start == datetime(2025, 12, 29, tzinfo=UTC)  # ISO week 1 of 2026
    # A week with the autumn clock change in Berlin lasts 169 hours.
    assert parse_week("2026-W43", "Europe/Berlin").length == timedelta(hours=169)
    for bad in ("2026-47", "W47", "2026-W54"):
        with pytest.raises(PeriodError):
            parse_week(bad, "UTC")


def test_rolling_periods_and_ranges() -> None:
    now = datetime(2026, 11, 18, 3, 30, tzinfo=UTC)  # Wed 10:30 in Jakarta
    assert week_just_ended(now, "Asia/Jakarta").label == "2026-W46"
    so_far = week_to_date(now, "Asia/Jakarta")
    assert (so_far.label, so_far.end) == ("2026-W47", now)
    assert so_far.start == datetime(2026, 11, 15, 17, tzinfo=UTC)
    assert so_far.previous().end == so_far.start and so_far.previous().length == so_far.length
    seven = last_days(now, "Asia/Jakarta")
    assert (seven.start, seven.end, seven.label) == (now - timedelta(days=7), now, "7d")
    day = today(now, "Asia/Jakarta")
    assert (day.start, day.label) == (datetime(2026, 11, 17, 17, tzinfo=UTC), "2026-11-18")
    span = date_range(date(2026, 11, 2), date(2026, 11, 4), "Asia/Jakarta")  # --to is included
    assert (span.label, span.length) == ("2026-11-02..2026-11-04", timedelta(days=3))
    assert span.previous().label == "2026-10-30..2026-11-01"
    with pytest.raises(PeriodError):
        date_range(date(2026, 11, 4), date(2026, 11, 2), "UTC")
