"""Writes queued on SQLite's driver thread (inbox.write_behind): in order, checked, stored as others are."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlmodel import col

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.db_bulk import BulkInsert, DriverStatement
from inbox.models import Event, Timer
from inbox.sla.rows import timers_by_id, write_timers
from inbox.write_behind import SWITCH_INTERVAL, in_flight, write_behind, writing_behind
from tests.factories import seed

_EVENTS: Any = Event.__table__  # type: ignore[attr-defined]
_TIMERS: Any = Timer.__table__  # type: ignore[attr-defined]
_INSERT_EVENTS = BulkInsert(_EVENTS, ("conversation_id", "actor", "type", "data", "created_at"))
_WHEN = datetime(2026, 11, 2, 16, 0, 0, 250, tzinfo=timezone(timedelta(hours=7)))  # not UTC, on purpose
# Values a JSON array could mangle: quotes, backslashes, markup, emoji, NULLs, numbers as text, nesting.
_ODD_DATA: list[dict[str, Any]] = [
    {"text": 'say "hi" \\ <b>bold</b> @everyone ☃ 😀', "n": 7, "none": None, "flag": True},
    {"nested": {"list": [1, 2.5, None, "x"]}, "digits": "0012"},
    {},
]


def _event(index: int, conversation_id: int | None = None) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "actor": f"member:o'brien-{index}", "type": "t",
            "data": _ODD_DATA[index % len(_ODD_DATA)], "created_at": _WHEN + timedelta(seconds=index)}


async def _raw_events(db: Database) -> list[tuple[Any, ...]]:
    async with db.sessions() as session:
        found = await session.execute(text(
            "SELECT id, conversation_id, actor, type, data, created_at, typeof(conversation_id),"
            " typeof(data), typeof(created_at) FROM events ORDER BY id"))
        return [tuple(r) for r in found]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_queued_writes_return_at_once_and_are_all_done_at_the_end(
    db: Database, clock: FakeClock
) -> None:
    await seed(db, clock)
    async with db.transaction() as session:
        async with write_behind(session):
            assert writing_behind(session)
            await _INSERT_EVENTS.execute_many(session, [_event(i) for i in range(50)])
            # Queued, not awaited: the driver's answer can only reach the loop after this task yields.
            assert in_flight(session) == 1
            await _INSERT_EVENTS.execute_many(session, [_event(i) for i in range(50, 60)])
            assert in_flight(session) == 2
            # A read queues behind them on the same connection and thread, so it sees both.
            count = (await session.execute(text("SELECT count(*) FROM events"))).scalar_one()
            assert count == 60
        assert not writing_behind(session) and in_flight(session) == 0
    rows = await _raw_events(db)
    assert [r[2] for r in rows] == [f"member:o'brien-{i}" for i in range(60)]  # ids in the order given


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_rows_written_behind_are_stored_as_awaited_rows_are(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)
    async with db.transaction() as session:
        await _INSERT_EVENTS.execute_many(session, [_event(i) for i in range(3)])
    async with db.transaction() as session, write_behind(session):
        await _INSERT_EVENTS.execute_many(session, [_event(i) for i in range(3)])  # one statement, JSON rows
    rows = await _raw_events(db)
    assert [r[1:] for r in rows[:3]] == [r[1:] for r in rows[3:]]  # same values, same storage classes
    async with db.sessions() as session:
        loaded = (await session.execute(select(Event).order_by(col(Event.id)))).scalars().all()
    assert [e.data for e in loaded[3:]] == _ODD_DATA
    assert loaded[3].created_at == _WHEN and loaded[3].created_at.tzinfo == UTC


async def _timer_ids(db: Database, clock: FakeClock, count: int) -> list[int]:
    async with db.transaction() as session:
        timers = [Timer(kind="sla.warning", data={"i": i}, due_at=clock.now(), created_at=clock.now())
                  for i in range(count)]
        session.add_all(timers)
        await session.flush()
        return [int(t.id or 0) for t in timers]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_updates_written_behind_change_what_executemany_changes(db: Database, clock: FakeClock) -> None:
    ids = await _timer_ids(db, clock, 6)
    late = clock.now() + timedelta(minutes=5)
    for behind, chosen in ((False, ids[:3]), (True, ids[3:])):
        async with db.transaction() as session, write_behind(session) if behind else nullcontext():
            rows = await timers_by_id(session, chosen)
            for index, row in enumerate(rows):
                row.status, row.fired_at, row.late = "fired", late, index == 1
                row.claimed_by = None if index == 2 else "worker \"a\""
                row.due_at = late if index == 0 else row.due_at
            await write_timers(session, rows)  # two sets of changed columns: two UPDATEs
    async with db.sessions() as session:
        found = await session.execute(text(
            "SELECT status, due_at, fired_at, late, claimed_by, typeof(late), typeof(claimed_by) FROM timers"
            " ORDER BY id"))
        stored = [tuple(r) for r in found]
    assert stored[:3] == stored[3:]
    assert stored[1][3] == 1 and stored[2][4] is None and stored[0][1] != stored[1][1]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_failed_write_is_raised_at_the_blocks_end_and_the_savepoint_undoes_the_rest(
    db: Database, clock: FakeClock
) -> None:
    await seed(db, clock)
    async with db.transaction() as session:
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            async with session.begin_nested(), write_behind(session):
                await _INSERT_EVENTS.execute_many(session, [_event(0)])
                # No conversation 999: the foreign key fails on the driver's thread, after this returned.
                await _INSERT_EVENTS.execute_many(session, [_event(1, conversation_id=999)])
                await _INSERT_EVENTS.execute_many(session, [_event(2)])
        await _INSERT_EVENTS.execute_many(session, [_event(3)])  # the transaction goes on
    assert [r[2] for r in await _raw_events(db)] == ["member:o'brien-3"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_switch_interval_is_lowered_inside_blocks_only(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)
    before = sys.getswitchinterval()
    async with db.transaction() as session:
        async with write_behind(session):
            assert sys.getswitchinterval() == SWITCH_INTERVAL
            async with write_behind(session):  # nested: joins the outer block
                assert sys.getswitchinterval() == SWITCH_INTERVAL
            assert sys.getswitchinterval() == SWITCH_INTERVAL
        assert sys.getswitchinterval() == before
        with pytest.raises(RuntimeError):
            async with write_behind(session):
                raise RuntimeError
        assert sys.getswitchinterval() == before


async def test_on_postgresql_and_outside_blocks_writes_are_awaited(
    db: Database, clock: FakeClock, backend: str
) -> None:
    await seed(db, clock)
    async with db.transaction() as session:
        await _INSERT_EVENTS.execute_many(session, [_event(0)])
        assert in_flight(session) == 0
        async with write_behind(session):
            await _INSERT_EVENTS.execute_many(session, [_event(1)])
            assert writing_behind(session) is (backend == "sqlite")
            assert in_flight(session) == (1 if backend == "sqlite" else 0)
    assert len(await _raw_events_any(db)) == 2


async def _raw_events_any(db: Database) -> list[tuple[Any, ...]]:
    async with db.sessions() as session:
        return [tuple(r) for r in await session.execute(text("SELECT id, actor FROM events ORDER BY id"))]


def test_the_set_based_form_reads_each_parameter_from_its_place_in_the_row() -> None:
    statement = DriverStatement("UPDATE t SET a = :a, b = :b WHERE id = :id AND c = :c", {}, {"c": 1},
                                set_sql="UPDATE t SET a = :a, b = :b FROM json_each(?) AS j WHERE t.id = :id"
                                        " AND c = :c")
    compiled = statement._compile(type("D", (), {"name": "sqlite", "paramstyle": "qmark"})())
    assert compiled.set_sql == (
        "UPDATE t SET a = json_extract(j.value, '$[0]'), b = json_extract(j.value, '$[1]') FROM json_each(?)"
        " AS j WHERE t.id = json_extract(j.value, '$[2]') AND c = json_extract(j.value, '$[3]')")
    assert compiled.params([{"a": "x", "b": None, "id": 4}]) == [("x", None, 4, 1)]  # the row, then constants

