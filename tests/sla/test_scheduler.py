"""The durable timer loop: exactly once, late after a restart, two schedulers, sleeping and waking."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Author, Batch, Inbound
from inbox.models import Conversation, Event, Kind, Timer, TimerStatus
from inbox.sla import rows
from inbox.sla.scheduler import SlaScheduler
from tests.sla.harness import make_rig, policy

MON_9 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def _wait_for(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll until ``condition`` holds (real time: the loop under test runs in the background)."""
    deadline = asyncio.get_running_loop().time() + 5.0
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_timers_due_while_down_fire_once_marked_late(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h"))
    cid = await rig.inbound()
    clock.set(MON_9 + timedelta(hours=6))  # "down" from 09:00 to 15:00
    restarted = SlaScheduler(db, clock, rig.engine, "after-restart", notify=rig.notify)
    assert await restarted.run_once() == 2
    assert await restarted.run_once() == 0
    fired = await rig.timers(cid, TimerStatus.FIRED.value)
    assert [(t.kind, t.late, t.claimed_by, t.fired_at) for t in fired] == [
        ("sla.warning", True, "after-restart", clock.now()),
        ("sla.breach", True, "after-restart", clock.now()),
    ]
    assert rig.kinds() == ["sla.warning", "sla.breached"]
    assert [e.data["late"] for e in await rig.events("sla.breached")] == [True]


async def test_a_timer_fired_within_the_grace_is_not_late(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None))
    cid = await rig.inbound()
    await rig.run_at(MON_9 + timedelta(hours=1, seconds=59))
    assert [t.late for t in await rig.timers(cid, TimerStatus.FIRED.value)] == [False]


async def test_two_schedulers_fire_each_of_300_timers_exactly_once(
    db: Database, clock: FakeClock, db_url: str
) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None))
    events = [Inbound(channel="support", external_id=f"m{i}", kind=Kind.DM, author=Author(f"u{i}"),
                      text="hi", created_at=clock.now()) for i in range(300)]
    await rig.ingestor.ingest(Batch("support", events))
    assert await rig.count_timers(TimerStatus.PENDING.value) == 300
    clock.set(MON_9 + timedelta(hours=2))
    other_db = Database(db_url)  # a second engine: a second process, as far as the database can tell
    try:
        first = SlaScheduler(db, clock, rig.engine, "one", notify=rig.notify, batch_size=20)
        second = SlaScheduler(other_db, clock, rig.engine, "two", notify=rig.notify, batch_size=20)

        async def drain(scheduler: SlaScheduler) -> None:
            while True:
                await scheduler.run_once()
                due = await scheduler.next_due()
                if due is None or due > clock.now():
                    return
                if not scheduler.last_claimed:
                    await asyncio.sleep(0.005)  # the other one holds the rest

        await asyncio.gather(drain(first), drain(second))
    finally:
        await other_db.dispose()
    async with db.sessions() as session:
        per_conversation = (await session.execute(
            select(col(Event.conversation_id), func.count()).where(col(Event.type) == "sla.breached")
            .group_by(col(Event.conversation_id)))).all()
        fired_by: dict[str | None, int] = dict((await session.execute(
            select(col(Timer.claimed_by), func.count()).where(col(Timer.status) == TimerStatus.FIRED.value)
            .group_by(col(Timer.claimed_by)))).all())
    assert len(per_conversation) == 300 and {n for _, n in per_conversation} == {1}
    assert sum(fired_by.values()) == 300
    assert len(rig.pings) == 300
    assert await rig.count_timers(TimerStatus.PENDING.value) == 0


async def test_a_backlog_drains_with_passes_side_by_side_each_timer_once(
    db: Database, clock: FakeClock
) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h"))
    events = [Inbound(channel="support", external_id=f"m{i}", kind=Kind.DM, author=Author(f"u{i}"),
                      text="hi", created_at=clock.now()) for i in range(120)]
    await rig.ingestor.ingest(Batch("support", events))
    assert await rig.count_timers(TimerStatus.PENDING.value) == 240  # a warning and a breach each
    clock.set(MON_9 + timedelta(hours=2))
    # Two passes at once is PostgreSQL's default; on SQLite the second one queues for the write lock.
    assert SlaScheduler(db, clock, rig.engine).passes_at_once == (2 if db.is_postgres else 1)
    scheduler = SlaScheduler(db, clock, rig.engine, "drain", notify=rig.notify, batch_size=25,
                             passes_at_once=2)
    running, peak = 0, 0
    one_pass = scheduler._pass

    async def counted() -> tuple[int, int, int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return await one_pass()
        finally:
            running -= 1

    scheduler._pass = counted  # type: ignore[method-assign]
    settled = 0
    while True:
        settled += await scheduler.drain()
        if not scheduler.last_claimed and not scheduler.last_busy:
            break
    assert peak == 2
    assert settled == 240
    async with db.sessions() as session:
        per_conversation = (await session.execute(
            select(col(Event.conversation_id), func.count()).where(col(Event.type) == "sla.breached")
            .group_by(col(Event.conversation_id)))).all()
    assert len(per_conversation) == 120 and {n for _, n in per_conversation} == {1}
    assert sorted(kind for kind, _cid, _data in rig.pings).count("sla.warning") == 120
    assert await rig.count_timers(TimerStatus.FIRED.value) == 240
    assert await rig.count_timers(TimerStatus.PENDING.value) == 0


async def test_next_due_is_one_timer_query_that_never_touches_conversations(
    db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h"))
    await rig.inbound()
    statements: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    real_fetch = rows.fetch_rows

    async def fetch(session: Any, sql: str, params: Any = ()) -> Any:  # SQLite's bypasses the events
        statements.append(sql)
        return await real_fetch(session, sql, params)

    monkeypatch.setattr(rows, "fetch_rows", fetch)
    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        assert await rig.scheduler.next_due() == MON_9 + timedelta(minutes=45)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    queries = {s for s in statements if s.lstrip().upper().startswith("SELECT")}
    assert len(queries) == 1
    [query] = queries
    assert "timers" in query and "conversations" not in query
    assert not any(s.upper().startswith("BEGIN") for s in statements)  # no transaction around it
    if db.engine.dialect.name == "sqlite":  # a lookup on the (status, due_at) index, no sort
        async with db.sessions() as session:
            plan = " ".join(str(r[-1]) for r in await session.execute(text(f"EXPLAIN QUERY PLAN {query}")))
        assert "ix_timers_due" in plan and "TEMP B-TREE" not in plan, plan


async def test_run_sleeps_until_the_next_due_timer_and_is_woken_by_new_ones(
    db: Database, clock: FakeClock
) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None))
    rig.scheduler.poll_interval = 3600.0
    stop = asyncio.Event()
    loop = asyncio.create_task(rig.scheduler.run(stop))
    try:
        await asyncio.sleep(0.05)  # the loop found nothing and sleeps (fake time does not pass)
        cid = await rig.inbound()  # commits a timer and wakes the loop through the engine's event
        await asyncio.sleep(0.05)
        clock.advance(timedelta(minutes=59))
        await asyncio.sleep(0.05)
        assert rig.pings == []
        clock.advance(timedelta(minutes=1))

        async def breached() -> bool:
            return (await rig.conv(cid)).breached == ["first_response"]

        await _wait_for(breached)
        assert rig.kinds() == ["sla.breached"]
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)


async def test_a_failing_notification_is_retried_without_blocking_others(
    db: Database, clock: FakeClock
) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None))
    first = await rig.inbound("u1")
    second = await rig.inbound("u2")
    failures = {first: 1}

    async def flaky(session: AsyncSession, kind: str, conv: Conversation, data: dict[str, Any]) -> None:
        assert conv.id is not None
        if failures.get(conv.id):
            failures[conv.id] -= 1
            raise RuntimeError("notifier is down")
        await rig.notify(session, kind, conv, data)

    rig.scheduler.notify = flaky
    await rig.run_at(MON_9 + timedelta(hours=1))
    assert [cid for _, cid, _ in rig.pings] == [second]
    assert (await rig.conv(first)).breached == []  # rolled back with its failed notification
    retry = await rig.timers(first)
    assert [(t.kind, t.due_at, t.data["errors"]) for t in retry] == [
        ("sla.breach", MON_9 + timedelta(hours=1, minutes=1), 1)]
    await rig.advance(timedelta(minutes=1))
    assert [cid for _, cid, _ in rig.pings] == [second, first]
    breaches = await rig.events("sla.breached", first)
    assert [e.created_at for e in breaches] == [MON_9 + timedelta(hours=1)]


async def test_a_timer_that_keeps_failing_is_given_up_with_an_event(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None))
    cid = await rig.inbound()

    async def broken(session: AsyncSession, kind: str, conv: Conversation, data: dict[str, Any]) -> None:
        raise RuntimeError("always")

    rig.scheduler.notify = broken
    rig.scheduler.max_errors = 2
    await rig.run_at(MON_9 + timedelta(hours=1))
    await rig.advance(timedelta(minutes=5))
    assert [t.data["errors"] for t in await rig.timers(cid, TimerStatus.CANCELLED.value)] == [2]
    assert [e.data["kind"] for e in await rig.events("timer.failed", cid)] == ["sla.breach"]


async def test_a_scheduler_never_waits_for_a_timer_another_one_holds(
    db: Database, clock: FakeClock, db_url: str, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("row locks: SQLite serialises whole transactions instead")
    rig = await make_rig(db, clock, policy(first_response="1h"))
    cid = await rig.inbound()
    breach_id = next(t.id for t in await rig.timers(cid) if t.kind == "sla.breach")
    clock.set(MON_9 + timedelta(hours=2))
    other = Database(db_url)
    try:
        async with other.transaction() as holder:  # another scheduler's claim on the breach timer
            await holder.execute(select(Timer).where(col(Timer.id) == breach_id).with_for_update())
            await asyncio.wait_for(rig.scheduler.run_once(), 5)  # fires the warning, skips the breach
        assert rig.kinds() == ["sla.warning"]
        await rig.drain()
    finally:
        await other.dispose()
    assert rig.kinds() == ["sla.warning", "sla.breached"]
    assert len(await rig.events("sla.breached", cid)) == 1
    assert await rig.timers(cid) == []


async def test_a_timer_failing_after_others_fired_in_its_batch_leaves_them_to_fire_once(
    db: Database, clock: FakeClock
) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None))
    first = await rig.inbound("u1")
    second = await rig.inbound("u2")
    failures = {second: 1}  # the first timer of the batch has fired (in memory) when the second raises

    async def flaky(session: AsyncSession, kind: str, conv: Any, data: dict[str, Any]) -> None:
        if failures.get(conv.id):
            failures[conv.id] -= 1
            raise RuntimeError("notifier is down")
        await rig.notify(session, kind, conv, data)

    rig.scheduler.notify = flaky
    clock.set(MON_9 + timedelta(hours=1))
    # The rolled-back attempt's changes do not count: the first fires again, once, in the next attempt
    # of the same pass; the second is set aside for a retry.
    assert await rig.scheduler.run_once() == 2
    [fired] = await rig.timers(first, TimerStatus.FIRED.value)
    assert (fired.kind, fired.claimed_by) == ("sla.breach", "s1")
    assert (await rig.conv(first)).breached == ["first_response"]
    assert [len(await rig.events("sla.breached", cid)) for cid in (first, second)] == [1, 0]
    await rig.advance(timedelta(minutes=1))
    assert [len(await rig.events("sla.breached", cid)) for cid in (first, second)] == [1, 1]
