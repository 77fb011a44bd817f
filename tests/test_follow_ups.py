"""Follow-up rounds kept at write time (``messages.follow_up_at``): every write path keeps them right."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bench.data import CHANNEL_KINDS, TAGS, History, HistoryPlan, Ids, World
from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Actor, Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import Direction, Kind, Member, Message
from tests.factories import make_settings, seed

Row = tuple[int, str, datetime]  # id, direction, created_at


def expected(rows: Iterable[Row]) -> dict[int, datetime | None]:
    """The reference: a reply after an earlier reply, with customer messages between, began at the first."""
    found: dict[int, datetime | None] = {}
    replied, asked = False, None
    for mid, direction, at in sorted(rows, key=lambda r: (r[2], r[0])):
        found[mid] = None
        if direction == Direction.OUT.value:
            if replied:
                found[mid] = asked
            replied, asked = True, None
        elif direction == Direction.IN.value and asked is None:
            asked = at
    return found


async def stored(db: Database) -> tuple[dict[int, list[Row]], dict[int, datetime | None]]:
    """Each conversation's (id, direction, created_at) rows, and every message's follow_up_at."""
    async with db.sessions() as s:
        rows = (await s.execute(select(Message.id, Message.conversation_id, Message.direction,
                                       Message.created_at, Message.follow_up_at))).all()
    by_conversation: dict[int, list[Row]] = defaultdict(list)
    for mid, cid, direction, at, _ in rows:
        by_conversation[cid].append((mid, direction, at))
    return by_conversation, {mid: follow_up for mid, _, _, _, follow_up in rows}


def reference(by_conversation: Mapping[int, Sequence[Row]]) -> dict[int, datetime | None]:
    out: dict[int, datetime | None] = {}
    for rows in by_conversation.values():
        out.update(expected(rows))
    return out


def inbound(ext: str, at: datetime, customer: str = "c1", direction: Direction = Direction.IN) -> Inbound:
    return Inbound("support", ext, Kind.DM, Author(customer, f"h{customer}", None), "text", at,
                   direction=direction, member="alice" if direction is Direction.OUT else None)


def reply(ext: str, at: datetime, customer: str = "c1") -> Inbound:
    return inbound(ext, at, customer, Direction.OUT)


async def test_ingested_replies_keep_the_start_of_the_follow_up_they_answer(
    db: Database, clock: FakeClock
) -> None:
    await seed(db, clock)
    ingestor = Ingestor(db, clock)
    t = clock.now()
    at = [t + timedelta(minutes=n) for n in range(8)]
    await ingestor.ingest(Batch("support", [inbound("1", at[0]), inbound("2", at[1])]))
    await ingestor.ingest(Batch("support", [reply("3", at[2])]))
    # follow-up, more of it, the answer and a note-free second round in one batch
    await ingestor.ingest(Batch("support", [inbound("4", at[3]), inbound("5", at[4]), reply("6", at[5]),
                                            reply("7", at[6])]))
    _, values = await stored(db)
    async with db.sessions() as s:
        ids = dict((await s.execute(select(Message.external_id, Message.id))).all())
    assert values[ids["3"]] is None  # the first reply answers no follow-up
    assert values[ids["6"]] == at[3]  # from the first customer message after the previous reply
    assert values[ids["7"]] is None  # nothing asked since the previous reply
    assert all(values[ids[e]] is None for e in ("1", "2", "4", "5"))


async def test_a_message_stored_out_of_order_moves_the_rounds_after_it(
    db: Database, clock: FakeClock
) -> None:
    await seed(db, clock)
    ingestor = Ingestor(db, clock)
    t = clock.now()
    await ingestor.ingest(Batch("support", [inbound("1", t), reply("2", t + timedelta(minutes=10)),
                                            reply("3", t + timedelta(minutes=40))]))
    late = t + timedelta(minutes=20)
    await ingestor.ingest(Batch("support", [inbound("late", late)]))  # arrives after the reply it precedes
    by_conversation, values = await stored(db)
    assert values == reference(by_conversation)
    assert late in values.values()


async def test_a_reply_action_answers_the_follow_up(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)
    ingestor = Ingestor(db, clock)
    actions = Actions(db, clock)
    async with db.sessions() as s:
        alice = (await s.execute(select(Member).where(Member.name == "alice"))).scalar_one()
    actor = Actor("member", "alice", alice.id)
    result = await ingestor.ingest(Batch("support", [inbound("1", clock.now())]))
    cid = result.stored[0].conversation_id
    clock.advance(timedelta(minutes=5))
    first = await actions.reply(actor, cid, "hello")
    clock.advance(timedelta(minutes=5))
    asked = clock.now()
    await ingestor.ingest(Batch("support", [inbound("2", asked)]))
    clock.advance(timedelta(minutes=5))
    await ingestor.ingest(Batch("support", [inbound("3", clock.now())]))
    clock.advance(timedelta(minutes=5))
    second = await actions.reply(actor, cid, "again")
    by_conversation, values = await stored(db)
    assert values[first.id or 0] is None and values[second.id or 0] == asked
    assert values == reference(by_conversation)


async def test_shuffled_batches_over_many_conversations_match_the_reference(
    db: Database, clock: FakeClock
) -> None:
    await seed(db, clock)
    ingestor = Ingestor(db, clock)
    rng = random.Random(7)
    t0 = clock.now()
    events = []
    for n in range(120):
        customer = f"c{n % 9}"
        make = reply if rng.random() < 0.45 else inbound
        # a coarse grid of minutes so that several messages share a timestamp
        events.append(make(f"e{n}", t0 + timedelta(minutes=rng.randrange(60)), customer))
    rng.shuffle(events)
    for start in range(0, len(events), 13):
        await ingestor.ingest(Batch("support", events[start:start + 13]))
    by_conversation, values = await stored(db)
    assert sum(v is not None for v in values.values()) > 5
    assert values == reference(by_conversation)


def test_the_bench_history_stores_what_the_product_would() -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    plan = HistoryPlan(conversations=400, start=start, end=start + timedelta(days=7),
                       now=start + timedelta(days=8), with_timers=False)
    world = World({name: n for n, name in enumerate(CHANNEL_KINDS, 1)}, [1, 2],
                  {name: n for n, name in enumerate(TAGS, 1)})
    history = History(plan, world, make_settings().sla.compile(), 3, Ids(), dict.fromkeys(world.channels, 1))
    by_conversation: dict[int, list[Row]] = defaultdict(list)
    values: dict[int, Any] = {}
    for rows in history.chunks(100):
        for m in rows["messages"]:
            by_conversation[m["conversation_id"]].append((m["id"], m["direction"], m["created_at"]))
            values[m["id"]] = m["follow_up_at"]
    assert sum(v is not None for v in values.values()) > 20
    assert values == reference(by_conversation)
