"""Ingest: duplicates, threading, reopening, contacts, cursor and audit events."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, text

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.errors import UnknownChannel
from inbox.events import Attachment, Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import Channel, Contact, Conversation, Direction, Event, Kind, Message, Status
from tests.factories import seed


def msg(
    ext: str,
    clock: FakeClock,
    *,
    kind: Kind = Kind.DM,
    author: str = "u1",
    text: str = "hi",
    channel: str = "support",
    **kw: object,
) -> Inbound:
    return Inbound(
        channel=channel,
        external_id=ext,
        kind=kind,
        author=Author(author, f"h{author}", None),
        text=text,
        created_at=clock.now(),
        **kw,
    )  # type: ignore[arg-type]


async def count(db: Database, model: type) -> int:
    async with db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
async def ingestor(db: Database, clock: FakeClock) -> Ingestor:
    await seed(db, clock)
    return Ingestor(db, clock, reopen_window=timedelta(days=2))


async def test_batch_and_cursor_are_stored_together(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    result = await ingestor.ingest(Batch("support", [msg("1", clock), msg("2", clock)], cursor="42"))
    assert len(result.stored) == 2
    async with db.sessions() as s:
        assert await s.scalar(select(Channel.cursor).where(Channel.name == "support")) == "42"


async def test_failed_batch_stores_neither_messages_nor_cursor(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    bad = msg("2", clock, direction=Direction.OUT, member="nobody")
    with pytest.raises(Exception, match="nobody"):
        await ingestor.ingest(Batch("support", [msg("1", clock), bad], cursor="99"))
    assert await count(db, Message) == 0
    async with db.sessions() as s:
        assert await s.scalar(select(Channel.cursor).where(Channel.name == "support")) is None


async def test_duplicates_are_dropped_within_and_across_batches(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    first = await ingestor.ingest(Batch("support", [msg("1", clock), msg("1", clock), msg("2", clock)]))
    assert (len(first.stored), first.duplicates) == (2, 1)
    again = await ingestor.ingest(Batch("support", [msg("1", clock), msg("2", clock)]))
    assert (len(again.stored), again.duplicates) == (0, 2)
    assert await count(db, Message) == 2
    # the same external id on another channel is a different message
    other = await ingestor.ingest(Batch("social", [msg("1", clock, channel="social")]))
    assert len(other.stored) == 1


async def test_racing_ingests_of_the_same_batch_store_each_message_once(
    db: Database, db_url: str, clock: FakeClock
) -> None:
    await seed(db, clock)
    batch = Batch("support", [msg(str(i), clock, author=f"u{i % 7}") for i in range(60)], cursor="60")
    engines = [Database(db_url) for _ in range(4)]
    try:
        ingestors = [Ingestor(e, clock) for e in engines]
        results = await asyncio.gather(*(i.ingest(batch) for i in ingestors))
    finally:
        for e in engines:
            await e.dispose()
    assert sum(len(r.stored) for r in results) == 60
    assert await count(db, Message) == 60
    assert await count(db, Conversation) == 7
    assert await count(db, Contact) == 7


async def test_dm_joins_the_contacts_open_conversation(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    await ingestor.ingest(Batch("support", [msg("1", clock)]))
    clock.advance(60)
    result = await ingestor.ingest(Batch("support", [msg("2", clock), msg("3", clock, author="u2")]))
    assert len(result.new_conversations) == 1
    async with db.sessions() as s:
        rows = (
            await s.execute(select(Message.external_id, Message.conversation_id).order_by(Message.id))
        ).all()
    assert rows[0][1] == rows[1][1] != rows[2][1]


async def test_mentions_thread_by_thread_key_and_reply_chain(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    events = [
        msg("p1", clock, kind=Kind.MENTION, author="a"),  # starts thread p1
        msg("p2", clock, kind=Kind.MENTION, author="b", reply_to="p1"),  # reply chain joins p1
        msg("c1", clock, kind=Kind.COMMENT, author="c", thread_key="post-9"),
        msg("c2", clock, kind=Kind.COMMENT, author="d", thread_key="post-9"),
        msg("p3", clock, kind=Kind.MENTION, author="a"),  # a new mention: a new thread
    ]
    result = await ingestor.ingest(Batch("support", events))
    assert len(result.new_conversations) == 3
    async with db.sessions() as s:
        by_ext = dict((await s.execute(select(Message.external_id, Message.conversation_id))).all())
    assert by_ext["p1"] == by_ext["p2"]
    assert by_ext["c1"] == by_ext["c2"]
    assert len({by_ext["p1"], by_ext["c1"], by_ext["p3"]}) == 3
    # a later reply, in a later batch, still finds its thread
    later = await ingestor.ingest(
        Batch("support", [msg("p4", clock, kind=Kind.MENTION, author="e", reply_to="p2")])
    )
    assert later.stored[0].conversation_id == by_ext["p1"]


async def _resolve(db: Database, conversation_id: int, clock: FakeClock) -> None:
    async with db.transaction() as s:
        conv = await s.get(Conversation, conversation_id)
        assert conv is not None
        conv.status, conv.resolved_at = Status.RESOLVED.value, clock.now()


async def test_message_to_resolved_conversation_reopens_within_window(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    first = await ingestor.ingest(Batch("support", [msg("1", clock)]))
    conv_id = first.stored[0].conversation_id
    await _resolve(db, conv_id, clock)
    clock.advance(timedelta(days=1))
    again = await ingestor.ingest(Batch("support", [msg("2", clock)]))
    assert again.reopened == [conv_id] and again.stored[0].conversation_id == conv_id
    async with db.sessions() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None and conv.status == Status.OPEN and conv.resolved_at is None
        types = list((await s.execute(select(Event.type).where(Event.conversation_id == conv_id))).scalars())
    assert "conversation.reopened" in types


async def test_message_after_the_window_starts_a_new_conversation(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    first = await ingestor.ingest(Batch("support", [msg("1", clock)]))
    await _resolve(db, first.stored[0].conversation_id, clock)
    clock.advance(timedelta(days=3))
    again = await ingestor.ingest(Batch("support", [msg("2", clock)]))
    assert again.reopened == [] and len(again.new_conversations) == 1
    assert again.stored[0].conversation_id != first.stored[0].conversation_id


async def test_customer_message_resumes_pending_conversation(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    first = await ingestor.ingest(Batch("support", [msg("1", clock)]))
    conv_id = first.stored[0].conversation_id
    async with db.transaction() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        conv.status = Status.PENDING.value
    await ingestor.ingest(Batch("support", [msg("2", clock)]))
    async with db.sessions() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None and conv.status == Status.OPEN


async def test_contacts_are_upserted(db: Database, clock: FakeClock, ingestor: Ingestor) -> None:
    await ingestor.ingest(Batch("support", [msg("1", clock)]))
    renamed = Inbound("support", "2", Kind.DM, Author("u1", "newhandle", "New Name"), "x", clock.now())
    await ingestor.ingest(Batch("support", [renamed]))
    async with db.sessions() as s:
        contacts = list((await s.execute(select(Contact))).scalars())
    assert len(contacts) == 1
    assert (contacts[0].handle, contacts[0].name) == ("newhandle", "New Name")


async def test_edits_update_text_with_an_event(db: Database, clock: FakeClock, ingestor: Ingestor) -> None:
    await ingestor.ingest(Batch("support", [msg("1", clock, text="helo")]))
    clock.advance(30)
    edited = msg("1", clock, text="hello", edited_at=clock.now())
    result = await ingestor.ingest(Batch("support", [edited]))
    assert result.edited == 1 and not result.stored
    async with db.sessions() as s:
        message = (await s.execute(select(Message))).scalar_one()
        event = (await s.execute(select(Event).where(Event.type == "message.edited"))).scalar_one()
    assert message.text == "hello" and event.data["previous_text"] == "helo"


async def test_every_new_conversation_and_message_writes_an_event(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    attach = (Attachment(type="photo", name="a.jpg"),)
    await ingestor.ingest(Batch("support", [msg("1", clock, attachments=attach), msg("2", clock)]))
    async with db.sessions() as s:
        types = sorted((await s.execute(select(Event.type))).scalars())
        stored = (await s.execute(select(Message).where(Message.external_id == "1"))).scalar_one()
    assert types == ["conversation.created", "message.in", "message.in"]
    assert stored.attachments == [{"type": "photo", "name": "a.jpg"}]


async def test_imported_team_reply_sets_first_response(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    inbound = msg("1", clock)
    clock.advance(300)
    reply = msg("2", clock, direction=Direction.OUT, member="alice")
    await ingestor.ingest(Batch("support", [inbound, reply]))
    async with db.sessions() as s:
        conv = (await s.execute(select(Conversation))).scalar_one()
    assert conv.first_response_at == clock.now()


async def test_unknown_channel_is_refused(clock: FakeClock, ingestor: Ingestor) -> None:
    with pytest.raises(UnknownChannel, match="nope"):
        await ingestor.ingest(Batch("nope", [msg("1", clock, channel="nope")]))


class _Statements:
    """Counts the SQL statements an engine sends (an executemany counts once)."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        self.engine = db.engine.sync_engine
        event.listen(self.engine, "after_cursor_execute", self._seen)

    def _seen(self, *_args: object) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self.engine, "after_cursor_execute", self._seen)


def _mixed(clock: FakeClock, prefix: str, n: int) -> list[Inbound]:
    """``n`` events of every threading kind: DMs, keyed comments, mentions and replies, team replies."""
    events = []
    for i in range(n):
        ext = f"{prefix}{i}"
        match i % 5:
            case 0:
                events.append(msg(ext, clock, author=f"dm{i % 40}"))
            case 1:
                events.append(msg(ext, clock, kind=Kind.COMMENT, author=ext, thread_key=f"post-{i % 30}"))
            case 2:
                events.append(msg(ext, clock, kind=Kind.MENTION, author=ext))
            case 3:
                events.append(msg(ext, clock, kind=Kind.MENTION, author=ext, reply_to=f"{prefix}{i - 1}"))
            case _:
                events.append(msg(ext, clock, author=f"dm{i % 40}", direction=Direction.OUT, member="alice"))
    return events


async def test_a_batch_costs_the_same_few_statements_whatever_its_size(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    await ingestor.ingest(Batch("support", _mixed(clock, "a", 100)))  # every kind of conversation exists
    counts = []
    for prefix, n in (("b", 50), ("c", 400)):  # each with new contacts and new conversations
        clock.advance(60)
        counter = _Statements(db)
        try:
            result = await ingestor.ingest(Batch("support", _mixed(clock, prefix, n), cursor=prefix))
        finally:
            counter.close()
        assert len(result.stored) == n
        counts.append(counter.count)
    assert counts[0] == counts[1] <= 16


async def test_threading_is_the_same_when_look_ups_are_split_into_chunks(
    db: Database, clock: FakeClock, ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await ingestor.ingest(Batch("support", _mixed(clock, "a", 60)))
    clock.advance(60)
    monkeypatch.setattr("inbox.ingest._CHUNK", 3)
    events = [
        *(msg(f"d{i}", clock, author=f"dm{i}") for i in range(0, 40, 5)),  # DMs of stored conversations
        *(msg(f"k{i}", clock, kind=Kind.COMMENT, author="x", thread_key=f"post-{i}")
          for i in range(1, 30, 5)),
        *(msg(f"p{i}", clock, kind=Kind.MENTION, author="y", reply_to=f"a{i}") for i in range(2, 60, 5)),
    ]
    result = await ingestor.ingest(Batch("support", events))
    assert result.new_conversations == []
    by_ext = {m.id: m.conversation_id for m in first.stored}
    async with db.sessions() as s:
        rows = dict((await s.execute(select(Message.external_id, Message.conversation_id))).all())
    assert by_ext == {m.id: rows[f"a{i}"] for i, m in enumerate(first.stored)}
    for i in range(0, 40, 5):
        assert rows[f"d{i}"] == rows[f"a{i}"]  # the DM author dm{i} first wrote a{i}
    for i in range(1, 30, 5):
        assert rows[f"k{i}"] == rows[f"a{i}"]  # post-{i} was first commented on by a{i}
    for i in range(2, 60, 5):
        assert rows[f"p{i}"] == rows[f"a{i}"]


async def test_stored_ids_name_the_rows_written_even_when_channels_race(
    db: Database, db_url: str, clock: FakeClock
) -> None:
    await seed(db, clock)
    batches = [
        Batch(channel, [msg(f"{channel}-{i}", clock, channel=channel, author=f"u{i % 9}") for i in range(80)])
        for channel in ("support", "social")
    ]
    engines = [Database(db_url) for _ in batches]
    try:
        results = await asyncio.gather(
            *(Ingestor(e, clock).ingest(b) for e, b in zip(engines, batches, strict=True))
        )
    finally:
        for e in engines:
            await e.dispose()
    async with db.sessions() as s:
        rows = {
            mid: (ext, conv)
            for mid, ext, conv in (
                await s.execute(select(Message.id, Message.external_id, Message.conversation_id))
            ).all()
        }
        contacts = dict((await s.execute(select(Conversation.id, Contact.external_id).join(Contact))).all())
    for batch, result in zip(batches, results, strict=True):
        assert [(rows[m.id][0], rows[m.id][1]) for m in result.stored] == [
            (ev.external_id, m.conversation_id) for ev, m in zip(batch.events, result.stored, strict=True)
        ]
        assert sorted(contacts[c] for c in result.new_conversations) == sorted(f"u{i}" for i in range(9))
        assert [m.id for m in result.stored] == sorted(m.id for m in result.stored)


async def test_two_edits_of_a_message_in_one_batch_apply_in_order(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    await ingestor.ingest(Batch("support", [msg("1", clock, text="helo")]))
    clock.advance(30)
    first = msg("1", clock, text="hello", edited_at=clock.now())
    clock.advance(30)
    second = msg("1", clock, text="hello!", edited_at=clock.now())
    stale = msg("1", clock, text="hel", edited_at=first.edited_at)
    result = await ingestor.ingest(Batch("support", [first, second, stale]))
    assert (result.edited, result.duplicates) == (2, 1)
    async with db.sessions() as s:
        message = (await s.execute(select(Message))).scalar_one()
        edited = select(Event).where(Event.type == "message.edited").order_by(Event.id)
        edits = list((await s.execute(edited)).scalars())
    assert (message.text, message.edited_at) == ("hello!", second.edited_at)
    assert [e.data["previous_text"] for e in edits] == ["helo", "hello"]


async def test_a_note_alone_leaves_the_conversation_row_as_it_was(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    first = await ingestor.ingest(Batch("support", [msg("1", clock)]))
    clock.advance(60)
    note = msg("2", clock, direction=Direction.NOTE, member="alice")
    await ingestor.ingest(Batch("support", [note]))
    async with db.sessions() as s:
        conv = await s.get(Conversation, first.stored[0].conversation_id)
    assert conv is not None and conv.updated_at == clock.now() - timedelta(seconds=60)
    assert conv.last_outbound_at is None and conv.first_response_at is None


async def test_audit_data_is_stored_as_json_dumps_writes_it(
    db: Database, clock: FakeClock, ingestor: Ingestor
) -> None:
    odd = 'a"b\\c ü — 😀'  # quotes, a backslash, non-ASCII and a surrogate pair in \u escapes
    inbound = msg(odd, clock, kind=Kind.MENTION)
    reply = msg("r1", clock, direction=Direction.OUT, member="alice", kind=Kind.MENTION, reply_to=odd)
    await ingestor.ingest(Batch("support", [inbound, reply]))
    async with db.sessions() as s:
        rows = (await s.execute(text("SELECT actor, type, CAST(data AS TEXT) FROM events ORDER BY id"))).all()
        ids = list((await s.execute(select(Message.id).order_by(Message.id))).scalars())
    at = clock.now().isoformat()
    assert [tuple(r) for r in rows] == [
        ("system:ingest", "conversation.created",
         json.dumps({"channel": "support", "kind": "mention", "at": at})),
        ("system:ingest", "message.in", json.dumps({"message_id": ids[0], "external_id": odd, "at": at})),
        ("member:alice", "message.out", json.dumps({"message_id": ids[1], "external_id": "r1", "at": at})),
    ]
