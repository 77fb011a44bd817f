"""Rows written straight through the driver (inbox.db_bulk) are stored exactly as SQLAlchemy stores them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.db_bulk import BulkInsert, DriverStatement, fetch_rows, json_text, time_binder
from inbox.models import Channel, Contact, Conversation, Event
from tests.factories import seed

_CONVERSATIONS: Any = Conversation.__table__  # type: ignore[attr-defined]
_EVENTS: Any = Event.__table__  # type: ignore[attr-defined]
_COLUMNS = ("id", "channel_id", "contact_id", "kind", "thread_key", "breached", "created_at", "updated_at",
            "last_inbound_at")


async def _channel_id(db: Database) -> int:
    async with db.sessions() as session:
        return int((await session.execute(select(Channel.id).limit(1))).scalar_one())


async def _contact(db: Database, channel_id: int, when: datetime) -> int:
    async with db.transaction() as session:
        contact = Contact(channel_id=channel_id, external_id="u1", created_at=when, updated_at=when)
        session.add(contact)
        await session.flush()
        return int(contact.id or 0)


def _row(row_id: int, channel_id: int, contact_id: int, when: datetime) -> dict[str, Any]:
    return {"id": row_id, "channel_id": channel_id, "contact_id": contact_id, "kind": "dm",
            "thread_key": None, "breached": [], "created_at": when,
            "updated_at": when.replace(microsecond=0), "last_inbound_at": None}


async def test_driver_rows_match_sqlalchemy_rows(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)
    channel_id = await _channel_id(db)
    # Not UTC, and a whole second: both must be stored as SQLAlchemy stores them.
    when = datetime(2026, 11, 2, 16, 0, 0, 250, tzinfo=timezone(timedelta(hours=7)))
    contact_id = await _contact(db, channel_id, when)
    async with db.transaction() as session:
        await session.execute(insert(_CONVERSATIONS), [_row(1, channel_id, contact_id, when)])
        await BulkInsert(_CONVERSATIONS, _COLUMNS).execute_many(
            session, [_row(2, channel_id, contact_id, when), _row(3, channel_id, contact_id, when)]
        )
    columns = "kind, status, priority, priority_rank, escalation_level, breached, created_at, updated_at, " \
              "last_inbound_at, sla_state, queue_rank, queue_due_at"
    async with db.sessions() as session:
        found = await session.execute(text(f"SELECT {columns} FROM conversations ORDER BY id"))
        raw = [tuple(r) for r in found]
        loaded = (await session.execute(select(Conversation).where(Conversation.id == 2))).scalar_one()
    assert raw[0] == raw[1] == raw[2]  # the same stored values, defaults filled, to the text on SQLite
    assert loaded.created_at == when and loaded.created_at.tzinfo == UTC
    assert loaded.breached == [] and loaded.status == "open" and loaded.sla_state is None


async def test_json_values_and_repeated_parameters(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)
    data = {"message_id": 7, "text": "Mohon maaf — ü", "nested": [1, None]}
    async with db.transaction() as session:
        await session.execute(insert(_EVENTS), [{"actor": "a", "type": "t", "data": data,
                                                 "created_at": clock.now()}])
        await BulkInsert(_EVENTS, ("actor", "type", "data", "created_at")).execute_many(
            session, [{"actor": "a", "type": "t", "data": data, "created_at": clock.now()}]
        )
        # A name used twice binds the same value in both places, on either paramstyle.
        await DriverStatement(
            "UPDATE events SET actor = :who, type = :who WHERE id = :row_id", {}
        ).execute_many(session, [{"who": "b", "row_id": 2}])
    async with db.sessions() as session:
        found = await session.execute(text("SELECT data, created_at FROM events ORDER BY id"))
        raw = [tuple(r) for r in found]
        second = (await session.execute(select(Event).where(Event.id == 2))).scalar_one()
    assert raw[0] == raw[1]
    assert second.data == data and (second.actor, second.type) == ("b", "b")


async def test_naive_times_are_refused(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)
    async with db.transaction() as session:
        with pytest.raises(ValueError, match="naive"):
            await BulkInsert(_EVENTS, ("actor", "type", "data", "created_at")).execute_many(
                session, [{"actor": "a", "type": "t", "data": {}, "created_at": datetime(2026, 11, 2)}]
            )


async def test_lone_reads_see_each_commit_and_a_rollback_still_undoes(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)
    row = {"actor": "a", "type": "t", "data": {}, "created_at": clock.now()}
    async with db.lone_reads() as reader:
        before = (await reader.execute(text("SELECT count(*) FROM events"))).scalar_one()
        async with db.transaction() as session:
            await session.execute(insert(_EVENTS).values(row))
        after = (await reader.execute(text("SELECT count(*) FROM events"))).scalar_one()
    assert after == before + 1  # no snapshot held between the two reads
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await session.execute(insert(_EVENTS).values(row))
            raise RuntimeError
    async with db.sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM events"))).scalar_one() == after


async def test_rows_given_as_driver_tuples_are_stored_as_the_dicts_are(
    db: Database, clock: FakeClock
) -> None:
    await seed(db, clock)
    when = datetime(2026, 11, 2, 16, 0, 0, 250, tzinfo=timezone(timedelta(hours=7)))
    data = {"message_id": 7, "text": "Mohon maaf — ü"}
    names = ("actor", "type", "data", "created_at")
    statement = BulkInsert(_EVENTS, names)
    async with db.transaction() as session:
        await statement.execute_many(session, [{"actor": "a", "type": "t", "data": data, "created_at": when}])
        to_time = time_binder(db.engine.dialect.name)
        await statement.execute_tuples(session, names, [("a", "t", json_text(data), to_time(when))])
        with pytest.raises(ValueError, match="binds"):  # a row in another order than the SQL's is refused
            swapped = ("type", "actor", "data", "created_at")
            await statement.execute_tuples(session, swapped, [("t", "a", "{}", None)])
    async with db.sessions() as session:
        found = await session.execute(text("SELECT actor, type, data, created_at FROM events ORDER BY id"))
        raw = [tuple(r) for r in found]
    assert len(raw) == 2 and raw[0] == raw[1]


async def test_fetch_rows_reads_through_the_driver_in_the_sessions_transaction(
    db: Database, clock: FakeClock
) -> None:
    await seed(db, clock)
    dialect = db.engine.dialect.name
    mark = "$1" if dialect == "postgresql" else "?"
    async with db.transaction() as session:
        await BulkInsert(_EVENTS, ("actor", "type", "data", "created_at")).execute_many(
            session, [{"actor": "a", "type": "t", "data": {"n": 1}, "created_at": clock.now()}])
        rows = await fetch_rows(session, f"SELECT actor, type FROM events WHERE actor = {mark}", ("a",))
        assert [tuple(r) for r in rows] == [("a", "t")]  # sees the transaction's own uncommitted row
    async with db.lone_reads() as session:
        assert await fetch_rows(session, f"SELECT actor FROM events WHERE actor = {mark}", ("b",)) == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_fetch_rows_on_sqlite_is_one_trip_inside_the_write_transaction(
    db: Database, clock: FakeClock
) -> None:
    await seed(db, clock)
    async with db.transaction() as session:
        await fetch_rows(session, "SELECT count(*) FROM events")
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        assert driver is not None and driver.in_transaction  # the session's BEGIN IMMEDIATE came first
    async with db.lone_reads() as session:
        await fetch_rows(session, "SELECT count(*) FROM events")
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        assert driver is not None and not driver.in_transaction  # a lone read opens none
