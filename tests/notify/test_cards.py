"""New and reopened conversations: one card per team chat, in the chat's language, through the outbox."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Actor, Author, Batch, Inbound
from inbox.models import Direction, Kind
from inbox.render_text import render
from inbox.settings import Settings
from inbox.view_codec import dump, load
from inbox.views import ConversationNotice
from tests.notify.conftest import OPS, TIM, Rig, make_rig, team_config, view_of

CAROL = Actor("member", "carol", None)


async def test_a_new_conversation_gives_one_card_to_each_team_chat(rig: Rig) -> None:
    [conv] = await rig.customers_write()
    ops, tim = await rig.deliveries(OPS), await rig.deliveries(TIM)
    assert len(ops) == len(tim) == 1
    row = ops[0]
    assert (row.purpose, row.conversation_id, row.status) == ("card", conv, "pending")
    assert row.payload["chat_id"] == "-100123" and row.payload["mentions"] == {}
    view = view_of(row)
    assert isinstance(view, ConversationNotice) and view.event == "new"
    assert load(dump(view)) == view  # the stored view round-trips
    assert row.payload["text"] == render(view)
    card = view.card
    assert (card.id, card.channel, card.kind, card.contact) == (conv, "support", "dm", "@cust1")
    assert card.excerpt == "Where is my order? (1)"
    assert [b.command for b in card.buttons] == [
        f"/assign {conv} me", f"/snooze {conv} 1h", f"/escalate {conv}", f"/resolve {conv}", f"/show {conv}"]
    text = row.payload["text"]
    assert text.startswith("New conversation\n") and f"#{conv} [normal] open · support/DM · @cust1" in text
    assert f"[Take → /assign {conv} me]" in text


async def test_the_indonesian_team_chat_hears_indonesian(rig: Rig) -> None:
    [conv] = await rig.customers_write()
    [row] = await rig.deliveries(TIM)
    text = row.payload["text"]
    assert text.startswith("Percakapan baru\n")
    assert f"#{conv} [normal] terbuka · support/DM · @cust1" in text
    assert f"[Ambil → /assign {conv} me]" in text and "[Tunda 1 jam → " in text and "belum ditugaskan" in text
    assert view_of(row).lang == "id"


async def test_the_same_batch_twice_and_replies_make_no_second_card(rig: Rig) -> None:
    event = Inbound(channel="support", external_id="x1", kind=Kind.DM, author=Author("u1", "joe", None),
                    text="hi", created_at=rig.clock.now())
    await rig.ingestor.ingest(Batch("support", [event]))
    await rig.ingestor.ingest(Batch("support", [event]))  # a poller that stored, crashed and fetched again
    follow_up = Inbound(channel="support", external_id="x2", kind=Kind.DM, author=Author("u1", "joe", None),
                        text="anyone?", created_at=rig.clock.now())
    await rig.ingestor.ingest(Batch("support", [follow_up]))
    assert len(await rig.deliveries(OPS)) == 1


async def test_a_conversation_the_team_started_gets_no_card(rig: Rig) -> None:
    event = Inbound(channel="support", external_id="o1", kind=Kind.DM, author=Author("u9", "zoe", None),
                    text="Hello from us", created_at=rig.clock.now(), direction=Direction.OUT, member="carol")
    result = await rig.ingestor.ingest(Batch("support", [event]))
    assert result.new_conversations
    assert await rig.deliveries(OPS) == []


async def test_a_reopened_conversation_is_announced_and_pings_its_assignee(rig: Rig) -> None:
    actions = Actions(rig.db, rig.clock)
    first = Inbound(channel="support", external_id="r1", kind=Kind.DM, author=Author("u1", "joe", None),
                    text="broken", created_at=rig.clock.now())
    [conv] = (await rig.ingestor.ingest(Batch("support", [first]))).new_conversations
    await actions.assign(CAROL, conv, "carol")
    await actions.resolve(CAROL, conv)
    rig.clock.advance(timedelta(hours=1))
    again = Inbound(channel="support", external_id="r2", kind=Kind.DM, author=Author("u1", "joe", None),
                    text="still broken", created_at=rig.clock.now())
    result = await rig.ingestor.ingest(Batch("support", [again]))
    assert result.reopened == [conv]
    rows = await rig.deliveries(OPS, "card")
    assert len(rows) == 2
    view = view_of(rows[1])
    assert isinstance(view, ConversationNotice) and view.event == "reopened" and view.mentions == ("carol",)
    assert rows[1].payload["mentions"] == {"carol": "1003"}  # carol's Telegram id, for the console
    assert rows[1].payload["text"].startswith("Reopened: the customer wrote again @carol")
    assert view.card.excerpt == "still broken" and view.card.assignee == "carol"


async def test_a_chat_can_hear_only_some_channels_and_kinds(
    db: Database, clock: FakeClock, tmp_path: Path,
) -> None:
    config = team_config(tmp_path)
    config["team_chats"][0] |= {"channels": ["social"]}
    config["team_chats"][1] |= {"hears": ["sla", "failed"]}
    rig = await make_rig(db, clock, Settings.model_validate(config))
    await rig.customers_write(channel="support")
    [social] = await rig.customers_write(channel="social", kind=Kind.MENTION)
    assert [d.conversation_id for d in await rig.deliveries(OPS)] == [social]
    assert await rig.deliveries(TIM) == []
