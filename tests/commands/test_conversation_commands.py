"""Commands that work one conversation, run through the terminal console, and their effect in the database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel import col

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.models import Conversation, Delivery, Direction, Message
from inbox.queries import tags_of
from tests.commands.conftest import NewConversation, Run, count_events, events_of


async def conversation(db: Database, conv_id: int) -> Conversation:
    async with db.sessions() as session:
        row = await session.get(Conversation, conv_id)
    assert row is not None
    return row


async def messages(db: Database, conv_id: int, direction: Direction) -> list[Message]:
    async with db.sessions() as session:
        rows = await session.execute(select(Message).where(col(Message.conversation_id) == conv_id,
                                                           col(Message.direction) == direction.value)
                                     .order_by(col(Message.id)))
    return list(rows.scalars())


async def test_reply_queues_a_delivery_and_keeps_the_text(run: Run, db: Database,
                                                          new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    out = await run("carol", f"/reply {conv} Thanks for waiting.\nIt ships today.")
    assert out == f"Reply to #{conv} queued for delivery.\n[Show → /show {conv}] [Resolve → /resolve {conv}]"
    (reply,) = await messages(db, conv, Direction.OUT)
    assert reply.text == "Thanks for waiting.\nIt ships today."
    async with db.sessions() as session:
        delivery = (await session.execute(select(Delivery))).scalar_one()
    assert delivery.purpose == "reply" and delivery.payload["text"] == reply.text
    (event,) = await events_of(db, "conversation.replied")
    assert event.actor == "member:carol"


async def test_aliases_hash_ids_case_and_bot_suffix(run: Run, db: Database,
                                                    new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    assert "queued" in await run("carol", f"/r #{conv} one")
    assert "queued" in await run("carol", f"/REPLY@SaluranBot {conv} two")
    assert "Note added" in await run("carol", f"/n {conv} internal")
    assert "Note added" in await run("carol", f"/Note@saluran_bot #{conv} internal too")
    assert [m.text for m in await messages(db, conv, Direction.OUT)] == ["one", "two"]
    assert [m.text for m in await messages(db, conv, Direction.NOTE)] == ["internal", "internal too"]
    assert "resolved" in await run("carol", f"/done {conv}")


async def test_inside_a_conversation_topic_the_id_can_be_left_out(run: Run, db: Database,
                                                                   new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    other = await new_conversation("another")
    assert "queued" in await run("carol", "/reply On it!", conversation_id=conv)
    assert "Note added" in await run("carol", "/n checked the warehouse", conversation_id=conv)
    assert "tagged billing" in await run("carol", "/tag #billing", conversation_id=conv)
    assert "assigned to carol" in await run("carol", "/assign me", conversation_id=conv)
    assert "urgent" in await run("carol", "/priority urgent", conversation_id=conv)
    shown = await run("carol", "/show", conversation_id=conv)
    assert shown.startswith(f"#{conv} · DM on support")
    assert "SLA of #" in await run("carol", "/sla", conversation_id=conv)
    # an explicit ID still wins inside a topic
    assert f"#{other} assigned to bob" in await run("carol", f"/assign {other} bob", conversation_id=conv)
    assert f"#{conv} resolved" in await run("carol", "/resolve", conversation_id=conv)
    row = await conversation(db, conv)
    assert (row.status, row.priority) == ("resolved", "urgent")
    assert [m.text for m in await messages(db, conv, Direction.OUT)] == ["On it!"]


async def test_tag_and_untag(run: Run, db: Database, new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    assert await run("carol", f"/tag {conv} Billing #vip billing") == (
        f"#{conv} tagged billing, vip.\n[Show → /show {conv}]")
    assert f"#{conv} already has vip." in await run("carol", f"/tag {conv} vip")
    assert f"Removed vip from #{conv}." in await run("carol", f"/untag {conv} vip")
    async with db.sessions() as session:
        assert (await tags_of(session, [conv]))[conv] == ["billing"]
    out = await run("carol", f"/untag {conv} vip")
    assert out.splitlines()[0] == f"Conversation #{conv} has no tag vip"
    out = await run("carol", f"/tag {conv} b@d!")
    assert out.startswith("'b@d!' is not a valid tag")


async def test_assign_accepts_me_names_mentions_and_any_case(run: Run, db: Database,
                                                             new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    assert f"#{conv} assigned to carol." in await run("carol", f"/assign {conv} me")
    assert f"#{conv} assigned to bob." in await run("carol", f"/a {conv} @bob")
    # alice's Discord id
    assert f"#{conv} assigned to alice." in await run("carol", f"/assign {conv} <@2001>")
    assert f"#{conv} assigned to carol." in await run("carol", f"/assign {conv} CAROL")
    out = await run("carol", f"/assign {conv} carol")
    assert out.splitlines()[0] == f"Conversation #{conv} is already assigned to carol"
    out = await run("carol", f"/assign {conv} @zed")
    assert out.splitlines()[0] == "'zed' is not a team member"
    assert f"#{conv} is no longer assigned." in await run("carol", f"/unassign {conv}")
    assert (await conversation(db, conv)).assignee_id is None
    out = await run("carol", f"/unassign {conv}")
    assert out.splitlines()[0] == f"Conversation #{conv} is not assigned"
    assert await count_events(db, "conversation.assigned") == 4


async def test_escalate_with_and_without_reason(run: Run, db: Database,
                                                new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    assert f"#{conv} escalated to level 1." in await run("carol", f"/escalate {conv}")
    assert f"#{conv} escalated to level 2." in await run("carol", f"/escalate {conv} journalist asking")
    reasons = [e.data["reason"] for e in await events_of(db, "conversation.escalated")]
    assert reasons == [None, "journalist asking"]
    assert (await conversation(db, conv)).escalation_level == 2


async def test_priority(run: Run, db: Database, new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    assert f"#{conv} priority set to high." in await run("carol", f"/priority {conv} HIGH")
    out = await run("carol", f"/p {conv} meh")
    assert out == ("'meh' is not a priority: use low, normal, high or urgent\n"
                   "Usage: /priority ID low|normal|high|urgent")
    out = await run("carol", f"/priority {conv} high")
    assert out.splitlines()[0] == f"Conversation #{conv} is already high"
    assert (await conversation(db, conv)).priority == "high"


async def test_snooze_reads_times_in_the_team_timezone(run: Run, db: Database, clock: FakeClock,
                                                       new_conversation: NewConversation) -> None:
    conv = await new_conversation()  # the clock says Monday 16:00 in Jakarta
    out = await run("carol", f"/snooze {conv} tomorrow 9:00")
    assert out.splitlines()[0] == f"#{conv} snoozed until 2026-11-03 09:00 WIB."
    row = await conversation(db, conv)
    assert row.status == "snoozed"
    assert row.snoozed_until == datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    expected = {
        "2h": datetime(2026, 11, 2, 11, 0, tzinfo=UTC),
        "30m": datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        "1d": datetime(2026, 11, 3, 9, 0, tzinfo=UTC),
        "monday 9:00": datetime(2026, 11, 9, 2, 0, tzinfo=UTC),
        "2026-12-01 10:00": datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
    }
    for text, instant in expected.items():
        assert "snoozed until" in await run("carol", f"/snooze {conv} {text}")
        assert (await conversation(db, conv)).snoozed_until == instant


async def test_pending_resolve_reopen(run: Run, db: Database, new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    assert f"#{conv} is now waiting on the customer." in await run("carol", f"/pending {conv}")
    assert (await conversation(db, conv)).status == "pending"
    out = await run("carol", f"/pending {conv}")
    assert out.splitlines()[0] == f"Conversation #{conv} is already pending"
    assert await run("carol", f"/resolve {conv}") == f"#{conv} resolved.\n[Reopen → /reopen {conv}]"
    assert (await conversation(db, conv)).status == "resolved"
    out = await run("carol", f"/reply {conv} hello?")
    assert out.splitlines()[0] == f"Conversation #{conv} is resolved; reopen it before you reply"
    assert f"#{conv} reopened." in await run("carol", f"/reopen {conv}")
    assert (await conversation(db, conv)).status == "open"
    out = await run("carol", f"/reopen {conv}")
    assert out.splitlines()[0] == f"Conversation #{conv} is already open"


async def test_commands_that_take_no_more_arguments_say_so(run: Run,
                                                           new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    out = await run("carol", f"/resolve {conv} now please")
    assert out == "Unexpected argument 'now'\nUsage: /resolve ID"
