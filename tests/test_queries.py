"""The queue: its order (priority, nearest deadline, age) and the index that serves every filter of it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, update
from sqlmodel import col, select

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import PRIORITY_RANK, Conversation, Kind, Member, Priority, Status
from inbox.queries import QueueFilter, conversation_detail, list_queue, nearest_deadlines
from tests.factories import seed


async def _conversations(db: Database, clock: FakeClock, count: int) -> list[int]:
    """``count`` conversations on the support channel, one a minute, oldest first."""
    ingestor = Ingestor(db, clock)
    ids = []
    for n in range(count):
        inbound = Inbound("support", f"m{n}", Kind.DM, Author(f"u{n}", f"h{n}", None), f"n{n}", clock.now())
        ids.append((await ingestor.ingest(Batch("support", [inbound]))).new_conversations[0])
        clock.advance(60)
    return ids


async def _set(db: Database, conversation_id: int, **values: Any) -> None:
    """Write columns the way the SLA engine and the actions do, with a plain UPDATE."""
    async with db.transaction() as session:
        query = update(Conversation).where(col(Conversation.id) == conversation_id)
        await session.execute(query.values(**values))


async def _queue(db: Database, clock: FakeClock, **filters: Any) -> list[int]:
    async with db.sessions() as session:
        return [item.id for item in await list_queue(session, clock.now(), QueueFilter(**filters))]


async def test_queue_is_priority_then_nearest_deadline_then_age(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)
    old, plain, first, nxt, resolution, urgent, waiting, sleeping, woken, done = await _conversations(
        db, clock, 10
    )
    now = clock.now()
    await _set(db, first, first_response_due_at=now + timedelta(minutes=40))
    # The next response is the deadline that counts, even when the first response's is nearer.
    await _set(db, nxt, first_response_due_at=now + timedelta(minutes=5),
               next_response_due_at=now + timedelta(minutes=50))
    await _set(db, resolution, resolution_due_at=now + timedelta(minutes=20))
    await _set(db, urgent, priority=Priority.URGENT.value, priority_rank=PRIORITY_RANK[Priority.URGENT])
    await _set(db, old, priority=Priority.LOW.value, priority_rank=PRIORITY_RANK[Priority.LOW],
               first_response_due_at=now - timedelta(hours=1))
    await _set(db, waiting, status=Status.PENDING.value)
    await _set(db, sleeping, status=Status.SNOOZED.value, snoozed_until=now + timedelta(hours=1))
    await _set(db, woken, status=Status.SNOOZED.value, snoozed_until=now - timedelta(minutes=1))
    await _set(db, done, status=Status.RESOLVED.value, first_response_due_at=now - timedelta(hours=2))

    # Without a deadline a conversation comes after those with one, oldest first.
    assert await _queue(db, clock) == [urgent, resolution, first, nxt, plain, woken, old]
    assert await _queue(db, clock, include_waiting=True) == [
        urgent, resolution, first, nxt, plain, waiting, sleeping, woken, old]
    assert await _queue(db, clock, limit=2, offset=2) == [first, nxt]

    # The stored sort key follows every change of the deadlines, whoever writes them.
    await _set(db, plain, next_response_due_at=now + timedelta(minutes=1))
    await _set(db, resolution, resolution_due_at=None)
    await _set(db, urgent, priority=Priority.NORMAL.value, priority_rank=PRIORITY_RANK[Priority.NORMAL])
    assert await _queue(db, clock) == [plain, first, nxt, resolution, urgent, woken, old]


async def test_every_queue_filter_reads_the_queue_index(db: Database, clock: FakeClock, backend: str) -> None:
    """A page of the queue is read from the queue's index, not by sorting every open conversation."""
    await seed(db, clock)
    ids = await _conversations(db, clock, 3)
    async with db.sessions() as session:
        carol = (await session.execute(select(Member).where(col(Member.name) == "carol"))).scalar_one()
    await _set(db, ids[0], assignee_id=carol.id)
    filters: list[dict[str, Any]] = [
        {}, {"assignee": "carol"}, {"unassigned": True}, {"tag": "billing"}, {"channel": "support"},
        {"offset": 20}, {"include_waiting": True},
        {"include_waiting": True, "assignee": "carol", "tag": "vip", "channel": "social"},
    ]
    for filters_ in filters:
        plan = await _queue_plan(db, clock, backend, QueueFilter(limit=11, **filters_))
        assert "ix_conversations_queue" in plan, (filters_, plan)
        if backend == "sqlite":
            assert "SCAN conversations\n" not in plan + "\n", (filters_, plan)
        else:
            assert "Sort Key: conversations.queue_rank" not in plan, (filters_, plan)


async def _queue_plan(db: Database, clock: FakeClock, backend: str, filt: QueueFilter) -> str:
    """The database's plan for the queue query ``list_queue`` sends."""
    sent: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        if "FROM conversations" in statement and "ORDER BY" in statement:
            sent.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", keep)
    try:
        async with db.sessions() as session:
            await list_queue(session, clock.now(), filt)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", keep)
    (statement, parameters), = sent
    return await _explain(db, backend, statement, parameters)


async def _explain(db: Database, backend: str, statement: str, parameters: Any) -> str:
    """The database's plan for a statement as it was sent."""
    async with db.engine.connect() as conn:
        if backend == "sqlite":
            rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            return "\n".join(str(row[3]) for row in rows)
        # A test database is tiny: forbid what would read it whole, to see what the index allows.
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            await conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        rows = await conn.exec_driver_sql("EXPLAIN " + statement, parameters)
        return "\n".join(str(row[0]) for row in rows)


async def _nearest(db: Database, limit: int) -> list[int]:
    async with db.sessions() as session:
        return [conv.id or 0 for conv, _name in await nearest_deadlines(session, limit)]


async def test_nearest_deadlines_whatever_the_priority(db: Database, clock: FakeClock) -> None:
    """``/sla``'s overview: deadlines first to last across priorities, then the oldest, then by id."""
    await seed(db, clock)
    ids = await _conversations(db, clock, 9)
    low, normal, high, urgent, tie_new, tie_old, no_deadline, resolved, snoozed = ids
    now = clock.now()
    priorities = {low: Priority.LOW, high: Priority.HIGH, urgent: Priority.URGENT, tie_old: Priority.HIGH}
    for conv, priority in priorities.items():
        await _set(db, conv, priority=priority.value, priority_rank=PRIORITY_RANK[priority])
    await _set(db, low, first_response_due_at=now - timedelta(minutes=30))  # overdue comes first
    await _set(db, normal, resolution_due_at=now + timedelta(minutes=50))
    await _set(db, high, next_response_due_at=now + timedelta(minutes=40),
               first_response_due_at=now + timedelta(minutes=1))  # the next response counts
    await _set(db, urgent, first_response_due_at=now + timedelta(hours=3))
    # The same deadline at two priorities: the older conversation first, whatever its id.
    await _set(db, tie_old, first_response_due_at=now + timedelta(minutes=20))
    await _set(db, tie_new, first_response_due_at=now + timedelta(minutes=20))
    await _set(db, tie_old, created_at=now - timedelta(days=1))  # a larger id, but started earlier
    await _set(db, resolved, status=Status.RESOLVED.value, first_response_due_at=now - timedelta(hours=1))
    await _set(db, snoozed, status=Status.SNOOZED.value, snoozed_until=now + timedelta(hours=1),
               first_response_due_at=now + timedelta(minutes=45))

    assert await _nearest(db, 10) == [low, tie_old, tie_new, high, snoozed, normal, urgent]
    assert await _nearest(db, 3) == [low, tie_old, tie_new]
    assert no_deadline not in await _nearest(db, 10)
    async with db.sessions() as session:
        carol = (await session.execute(select(Member).where(col(Member.name) == "carol"))).scalar_one()
    await _set(db, high, assignee_id=carol.id)
    async with db.sessions() as session:
        named = {conv.id: name for conv, name in await nearest_deadlines(session, 10)}
    assert named[high] == "carol" and named[low] is None


async def test_nearest_deadlines_read_the_queue_index(db: Database, clock: FakeClock, backend: str) -> None:
    """Each priority's nearest deadlines are read from the queue's index, not by sorting every open row."""
    await seed(db, clock)
    ids = await _conversations(db, clock, 3)
    await _set(db, ids[0], first_response_due_at=clock.now())
    sent: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        if "UNION ALL" in statement:
            sent.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", keep)
    try:
        assert await _nearest(db, 10) == [ids[0]]
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", keep)
    (statement, parameters), = sent
    plan = await _explain(db, backend, statement, parameters)
    if backend == "sqlite":
        assert plan.count("USING INDEX ix_conversations_queue (queue_rank=?") == len(PRIORITY_RANK), plan
        assert "SCAN conversations" not in plan and "TEMP B-TREE" not in plan, plan
    else:
        assert plan.count("ix_conversations_queue ") == len(PRIORITY_RANK), plan
        assert "Sort" not in plan and "Seq Scan" not in plan, plan


async def test_each_customer_message_of_a_thread_shows_its_own_author(db: Database, clock: FakeClock) -> None:
    """A public thread one customer started and another joined: ``/show`` names each message's writer."""
    await seed(db, clock)
    ingestor = Ingestor(db, clock)

    def comment(ext: str, author: Author, text: str) -> Inbound:
        return Inbound("support", ext, Kind.COMMENT, author, text, clock.now(), thread_key="post-1")

    first, second = Author("u1", "first", None), Author("u2", None, "Second Person")
    started = await ingestor.ingest(Batch("support", [comment("c1", first, "It broke")]))
    clock.advance(60)
    await ingestor.ingest(Batch("support", [comment("c2", second, "Me too")]))
    (conversation_id,) = started.new_conversations
    async with db.sessions() as session:
        detail = await conversation_detail(session, conversation_id)
    assert [(m.author, m.text) for m in detail.messages] == [
        ("@first", "It broke"), ("Second Person", "Me too")]
    assert detail.contact.external_id == "u1"  # the conversation is still the first customer's
