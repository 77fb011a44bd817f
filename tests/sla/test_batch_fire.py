"""Firing a claimed batch as a batch: a few statements for the whole batch, the notices handed to the
notifier at once, timers of one conversation in claim order, and the one-by-one fallback."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.models import Conversation, Event, Timer, TimerStatus, metadata
from inbox.notify import Notifier
from inbox.notify.facts import ConversationFacts
from inbox.sla import batch_fire
from inbox.sla.batch_fire import notify_many_of
from inbox.sla.engine import SlaEngine
from inbox.sla.rows import lock_conversations, timer_data, write_conversations
from inbox.sla.scheduler import SlaScheduler
from inbox.views import Digest
from tests.notify.conftest import OPS, TIM, Rig, make_rig, team_settings, view_of
from tests.sla.harness import make_rig as make_sla_rig
from tests.sla.harness import policy

MON_9 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BREACH_ONLY = {"name": "standard", "first_response": "1h", "warn_at": None}


async def notifier_rig(
    db: Database, clock: FakeClock, tmp_path: Path, sla_policy: dict[str, Any],
    notifier: type[Notifier] = Notifier,
) -> tuple[Rig, SlaScheduler]:
    """Two team chats, the SLA engine and a scheduler wired to the notifier as ``inbox run`` wires them."""
    settings = team_settings(tmp_path, sla={"policies": [sla_policy]})
    engine = SlaEngine(settings.sla, clock)
    rig = await make_rig(db, clock, settings, engine.ingest_hook)
    rig.notifier = notifier(db, clock, settings)
    return rig, SlaScheduler(db, clock, engine, "s1", notify=rig.notifier.sla_notify)


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement sent while the block runs."""
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)


async def test_a_batch_of_breaches_costs_a_few_statements_and_one_post_per_chat(
    db: Database, clock: FakeClock, tmp_path: Path,
) -> None:
    rig, scheduler = await notifier_rig(db, clock, tmp_path, BREACH_ONLY)
    ids = await rig.customers_write(40)
    clock.advance(timedelta(hours=1, minutes=1))
    now = clock.now()
    with statements(db) as sent:
        assert await scheduler.run_once() == 40
    # One at a time this was about 18 statements per timer; the batch sends a few for all of them,
    # plus one INSERT per notice queued alone (at most the chat's budget a window).
    queued = [s for s in sent if s.startswith("INSERT INTO deliveries")]
    assert len(sent) - len(queued) < 25, "\n".join(sent)
    async with db.sessions() as session:
        breached = (await session.execute(select(col(Event.conversation_id)).where(
            col(Event.type) == "sla.breached"))).scalars().all()
        folds = (await session.execute(select(col(Event.data)).where(
            col(Event.type) == "digest.folded", col(Event.created_at) >= now))).scalars().all()
    assert sorted(breached) == sorted(ids)
    assert Counter(f["destination"] for f in folds) == {OPS: 1, TIM: 1}  # one post per chat per batch
    for chat in (OPS, TIM):
        singles = await rig.deliveries(chat, "sla")
        [digest] = [d for d in await rig.deliveries(chat, "digest") if d.created_at >= now]
        view = view_of(digest)
        assert isinstance(view, Digest) and singles
        # Every breach is told once: alone while the budget allows, the rest in the window's digest.
        told = [d.conversation_id for d in singles] + await rig.covered(digest)
        assert sorted(told) == sorted(ids) and dict(view.counts)["sla"] == 40 - len(singles)
    assert len(queued) == len(await rig.deliveries(OPS, "sla")) + len(await rig.deliveries(TIM, "sla")) + 2


async def test_timers_of_one_conversation_due_together_fire_in_claim_order_and_replan_once(
    db: Database, clock: FakeClock,
) -> None:
    ladder = [{"after": "0m", "notify": ["leads"]}]
    rig = await make_sla_rig(db, clock, policy(first_response="1h", ladder=ladder))
    first = await rig.inbound("u1")
    second = await rig.inbound("u2")
    clock.set(MON_9 + timedelta(hours=6))  # down since 09:00: both warnings and both breaches are due
    assert await rig.scheduler.run_once() == 4
    assert [(kind, cid) for kind, cid, _ in rig.pings] == [
        ("sla.warning", first), ("sla.warning", second), ("sla.breached", first), ("sla.breached", second)]
    for cid in (first, second):  # each breach planned its ladder step once (due now: the next pass)
        assert [t.kind for t in await rig.timers(cid)] == ["sla.step"]
        fired = await rig.timers(cid, TimerStatus.FIRED.value)
        assert [(t.kind, t.late) for t in fired] == [("sla.warning", True), ("sla.breach", True)]
    assert await rig.drain() == 2
    assert rig.kinds()[4:] == ["sla.escalation", "sla.escalation"]
    assert [await rig.timers(cid) for cid in (first, second)] == [[], []]


class Picky(Notifier):
    """A notifier that cannot tell about some conversations (say, a template that breaks on them)."""

    broken: set[int] = set()

    def _sla_view(self, chat: Any, event: str, facts: ConversationFacts, data: dict[str, Any],
                  mentions: tuple[str, ...], now: datetime) -> Any:
        if facts.id in self.broken:
            raise RuntimeError(f"cannot tell about #{facts.id}")
        return super()._sla_view(chat, event, facts, data, mentions, now)


async def test_a_notice_that_fails_in_a_batch_fails_only_its_own_timer(
    db: Database, clock: FakeClock, tmp_path: Path,
) -> None:
    rig, scheduler = await notifier_rig(db, clock, tmp_path, BREACH_ONLY, Picky)
    ids = await rig.customers_write(5)
    Picky.broken = {ids[2]}
    try:
        clock.advance(timedelta(hours=1))
        assert await scheduler.run_once() == 5  # the batch failed as a whole: one by one instead
        told = {d.conversation_id for d in await rig.deliveries(OPS, "sla")}
        assert told == set(ids) - {ids[2]}
        assert (await rig.conversation(ids[2])).breached == []  # rolled back with its notice
        async with db.sessions() as session:
            [retry] = (await session.execute(select(Timer).where(
                col(Timer.conversation_id) == ids[2], col(Timer.status) == TimerStatus.PENDING.value,
            ))).scalars()
        assert (retry.kind, retry.data["errors"]) == ("sla.breach", 1)
        assert retry.due_at == clock.now() + timedelta(minutes=1)  # retried a minute later
        Picky.broken = set()
        clock.advance(timedelta(minutes=1))
        assert await scheduler.run_once() == 1
        assert {d.conversation_id for d in await rig.deliveries(OPS, "sla")} == set(ids)
    finally:
        Picky.broken = set()


async def test_a_conversation_held_elsewhere_does_not_hold_up_the_batch(
    db: Database, clock: FakeClock, db_url: str,
) -> None:
    rig = await make_sla_rig(db, clock, policy(first_response="1h", warn_at=None))
    held, free = await rig.inbound("u1"), await rig.inbound("u2")
    clock.set(MON_9 + timedelta(hours=2))
    other = Database(db_url)  # another process: an action in the middle of its transaction
    try:
        async with other.transaction() as holder:
            await holder.execute(select(Conversation).where(col(Conversation.id) == held).with_for_update())
            firing = asyncio.ensure_future(rig.scheduler.run_once())
            await asyncio.sleep(0.3)
            if db.is_postgres:  # row locks: the held conversation is skipped (BUSY), the other fires
                assert await asyncio.wait_for(firing, 5) == 1 and rig.scheduler.last_busy == 1
                assert [cid for _, cid, _ in rig.pings] == [free]
            else:  # SQLite serialises writers: the pass waits for the holder instead
                assert not firing.done()
        if db.is_postgres:
            assert await rig.scheduler.run_once() == 1
        else:
            assert await asyncio.wait_for(firing, 5) == 2
    finally:
        await other.dispose()
    assert sorted(cid for _, cid, _ in rig.pings) == sorted([held, free])
    assert await rig.count_timers(TimerStatus.PENDING.value) == 0


def test_only_a_notifier_s_own_sla_notify_gets_the_batch_form(tmp_path: Path) -> None:
    notifier = Notifier(None, FakeClock(), team_settings(tmp_path))  # type: ignore[arg-type]

    async def plain(session: AsyncSession, kind: str, conv: Conversation, data: dict[str, Any]) -> None:
        """A notify without a batch form."""

    async def sla_notify(session: AsyncSession, notes: Sequence[Any]) -> None:
        """Named like the notifier's, but not a notifier's."""

    assert notify_many_of(notifier.sla_notify) == notifier.sla_notify_many
    assert notify_many_of(plain) is None
    assert notify_many_of(sla_notify) is None  # type: ignore[arg-type]
    assert notify_many_of(notifier.on_failed) is None  # type: ignore[arg-type]


def test_timer_data_is_decoded_once_per_text_and_never_shared() -> None:
    flat = '{"target": "first_response", "policy": "standard"}'
    one, two = timer_data(flat), timer_data(flat)
    assert one == two == {"target": "first_response", "policy": "standard"} and one is not two
    one["errors"] = 1
    assert timer_data(flat) == two  # a change to one row's data reaches no other
    nested = '{"step": 1, "notify": ["leads"]}'
    first, second = timer_data(nested), timer_data(nested)
    first["notify"].append("admins")
    assert second == {"step": 1, "notify": ["leads"]}  # nested values are decoded afresh
    assert timer_data(None) == timer_data("") == {}


async def test_the_sla_state_goes_through_a_batch_as_the_json_it_is_stored_as(
    db: Database, clock: FakeClock,
) -> None:
    rig = await make_sla_rig(db, clock, policy(first_response="1h"))
    cid = await rig.inbound("u1")
    clock.set(MON_9 + timedelta(hours=6))
    assert await rig.scheduler.run_once() == 2  # the warning and the breach, as a batch
    async with db.sessions() as session:
        conv = await session.get(Conversation, cid)
        assert conv is not None and isinstance(conv.sla_state, dict)  # JSON, not a JSON string of it
        clock_state = conv.sla_state["targets"]["first_response"]
        assert clock_state["warned"] and clock_state["pinged"] and clock_state["breached_at"]
        stored = conv.sla_state
    async with db.transaction() as session:
        [row] = await lock_conversations(session, [cid])
        assert row.sla_state == stored and row.sla_state is not row.sla_state  # decoded afresh each time
        row.sla_state = {**stored, "replied": True}
        with statements(db) as sent:
            await write_conversations(session, [row])
            await write_conversations(session, [row])  # unchanged since the first write: nothing sent
        assert len(sent) == 1 and "sla_state" in sent[0]
    async with db.sessions() as session:
        conv = await session.get(Conversation, cid)
        assert conv is not None and conv.sla_state == {**stored, "replied": True}


async def _sqlite_db(path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{path}")
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return database


async def _stored(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables firing writes, as stored."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    async with database.sessions() as session:
        for table in ("conversations", "timers", "events"):
            rows = await session.execute(text(f"SELECT * FROM {table} ORDER BY id"))
            found[table] = [tuple(r) for r in rows]
    return found


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_batch_written_behind_in_parts_stores_what_it_stores_in_one_part(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ladder = [{"after": "0m", "notify": ["leads"]}]
    stored: list[dict[str, list[tuple[Any, ...]]]] = []
    parts: list[list[int]] = []
    real_part = batch_fire._fire_part
    other = await _sqlite_db(tmp_path / "whole.db")
    for part_size, database in ((batch_fire.WRITE_BEHIND_PART, db), (10_000, other)):
        monkeypatch.setattr(batch_fire, "WRITE_BEHIND_PART", part_size)
        calls: list[int] = []

        async def counted(*args: Any, calls: list[int] = calls) -> None:
            calls.append(len(args[3]))
            await real_part(*args)

        monkeypatch.setattr(batch_fire, "_fire_part", counted)
        clock = FakeClock(MON_9)
        rig = await make_sla_rig(database, clock, policy(first_response="1h", ladder=ladder))
        for number in range(130):
            await rig.inbound(f"u{number}")
        clock.set(MON_9 + timedelta(hours=6))  # every warning and breach is due: two rounds of 130
        assert await rig.scheduler.run_once() == 260
        stored.append(await _stored(database))
        parts.append(calls)
        if database is not db:
            await database.dispose()
    assert parts == [[100, 30, 100, 30], [130, 130]]
    assert stored[0] == stored[1]
    assert len(stored[0]["events"]) >= 260 and any(r[6] == "fired" for r in stored[0]["timers"])
