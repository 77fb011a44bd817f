"""How the report reads packed query results: SQLite's stored timestamps parsed by numpy, the per-hour
message counts counted by numpy, and the database's own conversions when a value has another shape."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlmodel import col

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.models import Direction, Message
from inbox.reports import numbers
from inbox.reports.numbers import _NO_TIME, _Computation, _parse_times, compute_report
from inbox.reports.opentime import to_us
from inbox.reports.period import parse_week
from tests.reports import scenario
from tests.reports.scenario import local


def _stored(value: datetime | None) -> str:
    """A timestamp as SQLAlchemy stores it on SQLite (what the report packs), NULL as the report's mark."""
    return numbers._NULL_TIME if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f")


def test_stored_timestamps_are_read_to_the_microsecond() -> None:
    values = [datetime(1970, 1, 1, tzinfo=UTC), datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
              datetime(2026, 11, 16, 3, 0, 0, 1, tzinfo=UTC), datetime(2000, 3, 1, tzinfo=UTC),
              datetime(2099, 12, 31, 12, 30, 15, 500_000, tzinfo=UTC), None,
              datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    start = datetime(2025, 12, 20, 7, 13, 2, 123_457, tzinfo=UTC)
    values += [start + timedelta(days=n, seconds=n * 3_607, microseconds=n * 17) for n in range(400)]
    rows = len(values) // 2
    packed = "".join(_stored(v) for v in values[:2 * rows])
    parsed = _parse_times(packed, rows, 2)
    assert parsed is not None and len(parsed) == 2
    expected = [_NO_TIME if v is None else to_us(v) for v in values[:2 * rows]]
    assert np.stack(parsed, axis=1).ravel().tolist() == expected  # row by row, columns side by side
    assert [a.tolist() for a in _parse_times("", 0, 3) or []] == [[], [], []]


@pytest.mark.parametrize("packed", [
    "2026-11-16 03:00:00",  # no microseconds: another width
    "2026-11-16 03:00:00.5000002026-11-16",
    "2026-11-16T03:00:00.000000",  # another separator
    "2026-11-16 03:0x:00.000000",  # not a digit
    "2026-11-16 03:00:00.00000é",
])
def test_text_of_another_shape_is_refused(packed: str) -> None:
    assert _parse_times(packed, 1, 1) is None


# SQLite only: PostgreSQL converts timestamps and groups the messages itself, nothing is read by numpy.
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_numpy_reads_what_sqlite_would_compute(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(local("2026-11-01 00:00"))
    conf, _ = await scenario.build(db, clock)
    week = parse_week(scenario.WEEK, scenario.TZ)
    packed = (await compute_report(db, conf.sla.compile(), week, clock.now())).as_json()
    # What the report falls back to when a stored value has another shape: SQLite converts every
    # timestamp (strftime) and groups the messages itself.
    monkeypatch.setattr(numbers, "_parse_times", lambda *_: None)
    monkeypatch.setattr(_Computation, "_message_rows_packed", _Computation._message_rows_grouped)
    converted = (await compute_report(db, conf.sla.compile(), week, clock.now())).as_json()
    assert packed == converted
    assert packed["next_response"]["count"] and packed["sla"]["worst_breaches"]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("zone", [scenario.TZ, "Asia/Kolkata"])  # hour buckets; minute buckets (+05:30)
async def test_messages_counted_by_numpy_as_sqlite_groups_them(db: Database, zone: str) -> None:
    clock = FakeClock(local("2026-11-01 00:00"))
    conf, _ = await scenario.build(db, clock)
    policies = {p.name: p for p in conf.sla.compile()}
    async with db.reading() as session:
        week = parse_week(scenario.WEEK, zone)
        computation = _Computation(session, policies, week, clock.now(), detail=True)
        assert computation.minute_buckets == (zone != scenario.TZ)
        counted = await computation._message_rows_packed()
        grouped = [tuple(row) for row in await computation._message_rows_grouped()]
    assert counted == grouped  # the same rows in the same order
    assert {row[1] for row in counted} >= {"in", "out"} and sum(row[4] for row in counted) > 10


@pytest.mark.parametrize("zone", [scenario.TZ, "Asia/Kolkata"])
async def test_hour_of_week_and_days_in_the_report_zone(db: Database, zone: str) -> None:
    clock = FakeClock(local("2026-11-01 00:00"))
    conf, _ = await scenario.build(db, clock)
    week = parse_week(scenario.WEEK, zone)
    report = await compute_report(db, conf.sla.compile(), week, clock.now(), previous=False)
    async with db.sessions() as session:
        created = col(Message.created_at)
        stamps = (await session.execute(select(created).where(
            col(Message.direction) == Direction.IN.value, created >= week.start,
            created < week.end))).scalars().all()
    grid = [[0] * 24 for _ in range(7)]
    days: dict[str, int] = {}
    for stamp in stamps:
        at = stamp.astimezone(week.zone)
        grid[at.weekday()][at.hour] += 1
        days[at.date().isoformat()] = days.get(at.date().isoformat(), 0) + 1
    assert stamps and report.hour_of_week == grid
    assert {d.day.isoformat(): sum(d.messages_in_by_channel.values()) for d in report.daily
            if d.messages_in_by_channel} == days


async def test_a_failing_session_stops_the_others_before_the_error_is_raised(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(local("2026-11-01 00:00"))
    conf, _ = await scenario.build(db, clock)
    week = parse_week(scenario.WEEK, scenario.TZ)
    run = _Computation.run

    async def failing(self: _Computation, extras: Any = None) -> Any:
        if not self.detail:  # the previous week's session fails; the week's own keeps reading
            raise RuntimeError("the previous week's session failed")
        return await run(self, extras)

    monkeypatch.setattr(_Computation, "run", failing)
    with pytest.raises(RuntimeError, match="previous week's session failed"):
        await compute_report(db, conf.sla.compile(), week, clock.now())
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert left == []  # nothing still reading on a connection nobody will close
