"""Reading commands: /queue with filters and paging, /show, /sla."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col

from inbox.clock import FakeClock
from inbox.commands import CommandCore, CommandInvocation
from inbox.db import Database
from inbox.events import Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import Conversation, Kind
from inbox.views import ConversationDetailView, QueuePage
from tests.commands.conftest import NewConversation, Run


def card_ids(out: str) -> list[int]:
    return [int(line.split()[0][1:]) for line in out.splitlines() if line.startswith("#")]


async def test_empty_queue(run: Run) -> None:
    assert await run("carol", "/queue") == "Queue, page 1\n\nNothing to do: the queue is empty."


async def test_queue_pages_ten_at_a_time_with_buttons(run: Run, core: CommandCore, clock: FakeClock,
                                                      new_conversation: NewConversation) -> None:
    ids = []
    for n in range(25):
        ids.append(await new_conversation(f"message {n}"))
        clock.advance(60)
    first = await run("carol", "/queue")
    assert card_ids(first) == ids[:10]
    assert first.splitlines()[-1] == "[Next » → /queue page 2]"
    second = await run("carol", "/queue page 2")
    assert card_ids(second) == ids[10:20]
    assert second.splitlines()[0] == "Queue, page 2"
    assert second.splitlines()[-1] == "[« Previous → /queue page 1] [Next » → /queue page 3]"
    third = await run("carol", "/q page:3")
    assert card_ids(third) == ids[20:]
    assert third.splitlines()[-1] == "[« Previous → /queue page 2]"
    assert "Page 4 is empty." in await run("carol", "/queue page 4")
    view = await core.execute(CommandInvocation.terminal("carol", "/queue page 2"))
    assert isinstance(view, QueuePage) and view.has_next and len(view.cards) == 10
    # every card carries its actions as command text, ready to become buttons
    assert [b.command for b in view.cards[0].buttons] == [
        f"/show {ids[10]}", f"/assign {ids[10]} me", f"/resolve {ids[10]}"]


async def test_queue_is_most_urgent_first(run: Run, clock: FakeClock,
                                          new_conversation: NewConversation) -> None:
    old = await new_conversation("old")
    clock.advance(60)
    urgent = await new_conversation("on fire")
    await run("carol", f"/priority {urgent} urgent")
    assert card_ids(await run("carol", "/queue")) == [urgent, old]


async def test_queue_filters(run: Run, new_conversation: NewConversation) -> None:
    mine = await new_conversation("mine")
    bobs = await new_conversation("bob's")
    free = await new_conversation("nobody's", channel="social", kind=Kind.MENTION)
    waiting = await new_conversation("waiting")
    await run("carol", f"/assign {mine} me")
    await run("carol", f"/assign {bobs} bob")
    await run("carol", f"/tag {bobs} vip")
    await run("carol", f"/pending {waiting}")
    assert card_ids(await run("carol", "/queue")) == [mine, bobs, free]
    out = await run("carol", "/queue mine")
    assert out.splitlines()[0] == "Queue (mine), page 1" and card_ids(out) == [mine]
    assert card_ids(await run("bob", "/queue mine")) == [bobs]
    assert card_ids(await run("carol", "/queue unassigned")) == [free]
    assert card_ids(await run("carol", "/queue ALL")) == [mine, bobs, free, waiting]
    assert card_ids(await run("carol", "/queue all unassigned")) == [free, waiting]
    assert card_ids(await run("carol", "/queue #VIP")) == [bobs]
    assert card_ids(await run("carol", "/queue channel:social")) == [free]
    out = await run("carol", "/queue channel:fax")
    assert out.splitlines()[0] == "Channel 'fax' is not configured"
    out = await run("carol", "/queue urgent")
    assert out.splitlines() == [
        "'urgent' is not a queue filter (use mine, unassigned, all, #tag, channel:NAME or page N)",
        "Usage: /queue [mine|unassigned|all] [#TAG] [channel:NAME] [page N]",
    ]
    assert (await run("carol", "/queue page two")).startswith("'two' is not a page number")
    assert (await run("carol", "/queue page")).startswith("Missing argument: N")


async def test_paging_buttons_keep_the_filter(run: Run, new_conversation: NewConversation) -> None:
    for n in range(11):
        conv = await new_conversation(f"m{n}")
        await run("carol", f"/tag {conv} billing")
    out = await run("carol", "/queue #billing mine page 1")
    assert "Nothing to do" in out
    out = await run("carol", "/queue #billing")
    assert out.splitlines()[-1] == "[Next » → /queue #billing page 2]"
    out = await run("carol", "/queue channel:support #billing all page 2")
    assert out.splitlines()[0] == "Queue (all #billing channel:support), page 2"
    assert out.splitlines()[-1] == "[« Previous → /queue all #billing channel:support page 1]"


async def test_show_tells_the_story(run: Run, core: CommandCore, db: Database, clock: FakeClock) -> None:
    ingestor = Ingestor(db, clock)
    author = Author("cust-1", "joe", "Joe")
    for n in range(23):
        event = Inbound(channel="support", external_id=f"x{n}", kind=Kind.DM, author=author,
                        text=f"line {n}\nsecond", created_at=clock.now(),
                        subject="Order 55" if n == 0 else None)
        await ingestor.ingest(Batch("support", [event]))
        clock.advance(60)
    await run("carol", "/note 1 looked it up")
    await run("carol", "/reply 1 on its way")
    out = await run("carol", "/show #1")
    lines = out.splitlines()
    assert lines[0] == "#1 · DM on support · from @joe"
    assert "Subject: Order 55" in lines
    assert "  … 5 earlier message(s) not shown" in lines
    assert "  < 2026-11-02 16:20 WIB @joe: line 20" in lines
    assert "  # 2026-11-02 16:23 WIB carol (note): looked it up" in lines
    assert "  > 2026-11-02 16:23 WIB carol: on its way" in lines
    assert "Recent events:" in lines
    view = await core.execute(CommandInvocation.terminal("carol", "/show 1"))
    assert isinstance(view, ConversationDetailView)
    assert len(view.messages) == 20 and view.older_messages == 5
    assert [b.command for b in view.card.buttons] == ["/assign 1 me", "/resolve 1"]


async def test_show_defuses_terminal_escapes_from_customers(run: Run,
                                                            new_conversation: NewConversation) -> None:
    conv = await new_conversation("evil \x1b[2J text \u202e")
    out = await run("carol", f"/show {conv}")
    assert "\x1b" not in out and "\u202e" not in out and "\\u001b[2J" in out


async def test_sla_of_one_conversation(run: Run, db: Database, clock: FakeClock,
                                       new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    now = clock.now()
    async with db.transaction() as session:  # what the SLA engine would have stored
        await session.execute(update(Conversation).where(col(Conversation.id) == conv).values(
            sla_policy="standard", first_response_due_at=now - timedelta(minutes=5),
            resolution_due_at=now + timedelta(hours=23, minutes=30), breached=["first_response"]))
    out = await run("carol", f"/sla {conv}")
    assert out.splitlines() == [
        f"SLA of #{conv} (open)",
        "Policy: standard",
        "  first response: overdue by 5m (2026-11-02 15:55 WIB) BREACHED",
        "  next response: none",
        "  resolution: due in 23h30m (2026-11-03 15:30 WIB)",
    ]
    assert (await run("carol", "/sla 99")).startswith("Conversation #99 does not exist")
    assert (await run("carol", "/sla abc")).startswith("'abc' is not a valid ID")


async def test_sla_overview_lists_breached_and_nearest_first(run: Run, db: Database, clock: FakeClock,
                                                             new_conversation: NewConversation) -> None:
    late, soon, later, none, done = [await new_conversation(f"c{n}") for n in range(5)]
    now = clock.now()
    dues = {late: now - timedelta(minutes=10), soon: now + timedelta(minutes=15),
            later: now + timedelta(hours=2), done: now + timedelta(minutes=1)}
    async with db.transaction() as session:
        for conv_id, due in dues.items():
            await session.execute(update(Conversation).where(col(Conversation.id) == conv_id).values(
                first_response_due_at=due, breached=["first_response"] if conv_id == late else []))
    await run("carol", f"/resolve {done}")
    await run("carol", f"/assign {soon} me")
    out = await run("carol", "/sla")
    assert out.splitlines() == [
        "Nearest SLA deadlines:",
        f"  #{late} [normal] · first response: overdue by 10m (2026-11-02 15:50 WIB) · unassigned · "
        "SLA breached: first response",
        f"  #{soon} [normal] · first response: due in 15m (2026-11-02 16:15 WIB) · assigned to carol",
        f"  #{later} [normal] · first response: due in 2h (2026-11-02 18:00 WIB) · unassigned",
        f"[Show #{late} → /show {late}] [Show #{soon} → /show {soon}] [Show #{later} → /show {later}]",
    ]
    assert none not in card_ids(out)
