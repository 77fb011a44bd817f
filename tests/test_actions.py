"""Conversation actions: effects, audit events with actors, and user-facing errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from inbox.actions import Actions, Change
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.errors import ConversationNotFound, InvalidAction, UnknownMember
from inbox.events import Actor, Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import Conversation, Delivery, Direction, Event, Kind, Member, Message, Status, Tag, Timer
from inbox.queries import conversation_detail
from tests.factories import seed
from tests.test_follow_ups import reference, stored


@pytest.fixture
async def setup(db: Database, clock: FakeClock) -> tuple[Actions, Actor, int]:
    await seed(db, clock)
    ingestor = Ingestor(db, clock)
    result = await ingestor.ingest(
        Batch(
            "support",
            [
                Inbound("support", "m1", Kind.DM, Author("cust", "cust_h", "Cust"), "help!", clock.now()),
            ],
        )
    )
    async with db.sessions() as s:
        alice = (await s.execute(select(Member).where(Member.name == "alice"))).scalar_one()
    return Actions(db, clock), Actor("member", "alice", alice.id), result.stored[0].conversation_id


async def conv(db: Database, cid: int) -> Conversation:
    async with db.sessions() as s:
        found = await s.get(Conversation, cid)
        assert found is not None
        return found


async def events(db: Database, cid: int) -> list[tuple[str, str]]:
    async with db.sessions() as s:
        rows = await s.execute(
            select(Event.type, Event.actor).where(Event.conversation_id == cid).order_by(Event.id)
        )
        return [(t, a) for t, a in rows]


async def test_reply_stores_message_and_queues_delivery(db: Database, clock: FakeClock, setup) -> None:
    actions, alice, cid = setup
    clock.advance(120)
    message = await actions.reply(alice, cid, "  On it!  ")
    assert message.text == "On it!"
    async with db.sessions() as s:
        delivery = (await s.execute(select(Delivery))).scalar_one()
    assert delivery.destination == "support" and delivery.purpose == "reply"
    assert delivery.message_id == message.id
    assert delivery.payload["recipient"] == "cust" and delivery.payload["reply_to"] == "m1"
    c = await conv(db, cid)
    assert c.first_response_at == clock.now()
    assert ("conversation.replied", "member:alice") in await events(db, cid)


async def test_a_reply_keeps_follow_up_rounds_also_of_a_reply_dated_later(
    db: Database, clock: FakeClock, setup
) -> None:
    actions, alice, cid = setup
    start = clock.now()

    def customer(ext: str, at: timedelta, direction: Direction = Direction.IN) -> Inbound:
        return Inbound("support", ext, Kind.DM, Author("cust", "cust_h", "Cust"), "text", start + at,
                       direction=direction, member="alice" if direction is Direction.OUT else None)

    clock.advance(timedelta(minutes=2))
    first = await actions.reply(alice, cid, "hello")
    ingestor = Ingestor(db, clock)
    # A reply dated an hour ahead (a platform's clock), then a follow-up from the customer.
    await ingestor.ingest(Batch("support", [customer("ahead", timedelta(hours=1), Direction.OUT)]))
    await ingestor.ingest(Batch("support", [customer("again", timedelta(minutes=3))]))
    clock.advance(timedelta(minutes=3))
    second = await actions.reply(alice, cid, "answer")
    by_conversation, values = await stored(db)
    assert first.follow_up_at is None and values[first.id or 0] is None
    assert second.follow_up_at == start + timedelta(minutes=3) == values[second.id or 0]
    # The reply ahead now follows ours with nothing asked between: its round is gone.
    assert values == reference(by_conversation)
    assert list(by_conversation) == [cid] and len(by_conversation[cid]) == 5


async def test_note_is_internal(db: Database, setup) -> None:
    actions, alice, cid = setup
    await actions.note(alice, cid, "call them back")
    async with db.sessions() as s:
        assert (await s.execute(select(Delivery))).first() is None
        note = (await s.execute(select(Message).where(Message.direction == "note"))).scalar_one()
    assert note.text == "call them back"
    assert (await conv(db, cid)).first_response_at is None


async def test_tags_are_normalised_added_and_removed(db: Database, setup) -> None:
    actions, alice, cid = setup
    assert await actions.tag(alice, cid, ["#Outage", "press", "outage"]) == ["outage", "press"]
    assert await actions.tag(alice, cid, ["press"]) == []
    assert await actions.untag(alice, cid, ["PRESS"]) == ["press"]
    async with db.sessions() as s:
        assert (await conversation_detail(s, cid)).tags == ["outage"]
    with pytest.raises(InvalidAction, match="has no tag press"):
        await actions.untag(alice, cid, ["press"])
    with pytest.raises(InvalidAction, match="not a valid tag"):
        await actions.tag(alice, cid, ["bad tag!"])


async def test_tagging_mixes_known_and_new_tags_and_tells_hooks_the_tags(db: Database, setup) -> None:
    actions, alice, cid = setup
    seen: list[tuple[str, frozenset[str] | None]] = []

    async def hook(_session: object, change: Change) -> None:
        seen.append((change.action, change.tags))

    actions.hooks.append(hook)
    await actions.tag(alice, cid, ["billing"])
    await actions.untag(alice, cid, ["billing"])
    assert await actions.tag(alice, cid, ["vip", "billing"]) == ["billing", "vip"]  # one known, one new
    await actions.reply(alice, cid, "hello")
    await actions.set_priority(alice, cid, "high")
    async with db.sessions() as s:
        assert (await conversation_detail(s, cid)).tags == ["billing", "vip"]
        assert sorted((await s.execute(select(Tag.name))).scalars()) == ["billing", "vip"]
    assert seen == [
        ("tagged", {"billing"}),
        ("untagged", frozenset()),
        ("tagged", {"billing", "vip"}),
        ("replied", {"billing", "vip"}),
        ("prioritised", None),  # the action did not read them: hooks read them if they need them
    ]


async def test_assign_and_unassign(db: Database, setup) -> None:
    actions, alice, cid = setup
    await actions.assign(alice, cid, "bob")
    with pytest.raises(InvalidAction, match="already assigned to bob"):
        await actions.assign(alice, cid, "bob")
    with pytest.raises(UnknownMember, match="'mallory' is not a team member"):
        await actions.assign(alice, cid, "mallory")
    await actions.unassign(alice, cid)
    with pytest.raises(InvalidAction, match="is not assigned"):
        await actions.unassign(alice, cid)
    types = [t for t, _ in await events(db, cid)]
    assert types.count("conversation.assigned") == 1 and types.count("conversation.unassigned") == 1


async def test_escalate_and_priority(db: Database, setup) -> None:
    actions, alice, cid = setup
    assert await actions.escalate(alice, cid, "press asking") == 1
    assert await actions.escalate(alice, cid) == 2
    await actions.set_priority(alice, cid, "URGENT")
    c = await conv(db, cid)
    assert (c.priority, c.priority_rank, c.escalation_level) == ("urgent", 3, 2)
    with pytest.raises(InvalidAction, match="not a priority"):
        await actions.set_priority(alice, cid, "asap")
    with pytest.raises(InvalidAction, match="already urgent"):
        await actions.set_priority(alice, cid, "urgent")


async def test_snooze_creates_a_wake_timer_and_refuses_the_past(
    db: Database, clock: FakeClock, setup
) -> None:
    actions, alice, cid = setup
    with pytest.raises(InvalidAction, match="cannot snooze into the past"):
        await actions.snooze(alice, cid, clock.now() - timedelta(minutes=1))
    until = clock.now() + timedelta(hours=2)
    await actions.snooze(alice, cid, until)
    await actions.snooze(alice, cid, until + timedelta(hours=1))  # re-snooze replaces the timer
    async with db.sessions() as s:
        timers = list((await s.execute(select(Timer).order_by(Timer.id))).scalars())
    assert [t.status for t in timers] == ["cancelled", "pending"]
    assert timers[1].due_at == until + timedelta(hours=1)
    c = await conv(db, cid)
    assert c.status == Status.SNOOZED and c.snoozed_until == until + timedelta(hours=1)


async def test_resolve_reopen_and_their_errors(db: Database, setup) -> None:
    actions, alice, cid = setup
    await actions.mark_pending(alice, cid)
    with pytest.raises(InvalidAction, match="already pending"):
        await actions.mark_pending(alice, cid)
    await actions.resolve(alice, cid)
    with pytest.raises(InvalidAction, match="already resolved"):
        await actions.resolve(alice, cid)
    with pytest.raises(InvalidAction, match="is resolved; reopen it before you reply"):
        await actions.reply(alice, cid, "hello?")
    await actions.reopen(alice, cid)
    with pytest.raises(InvalidAction, match="already open"):
        await actions.reopen(alice, cid)
    assert (await conv(db, cid)).status == Status.OPEN


async def test_resolve_cancels_timers(db: Database, clock: FakeClock, setup) -> None:
    actions, alice, cid = setup
    await actions.snooze(alice, cid, clock.now() + timedelta(hours=1))
    await actions.resolve(alice, cid)
    async with db.sessions() as s:
        statuses = list((await s.execute(select(Timer.status))).scalars())
    assert statuses == ["cancelled"]


async def test_unknown_conversation_and_empty_text(setup) -> None:
    actions, alice, _ = setup
    with pytest.raises(ConversationNotFound, match="conversation #999 does not exist"):
        await actions.note(alice, 999, "x")
    with pytest.raises(InvalidAction, match="needs some text"):
        await actions.reply(alice, 1, "   ")


async def test_hooks_run_inside_the_transaction(db: Database, clock: FakeClock, setup) -> None:
    _, alice, cid = setup
    seen: list[Change] = []

    async def hook(session, change: Change) -> None:
        seen.append(change)
        raise RuntimeError("hook failed")

    actions = Actions(db, clock, hooks=[hook])
    with pytest.raises(RuntimeError):
        await actions.escalate(alice, cid)
    assert seen[0].action == "escalated"
    assert (await conv(db, cid)).escalation_level == 0  # rolled back with the hook
