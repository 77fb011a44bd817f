"""Ingest: store a batch of Inbound events and the connector's cursor in one transaction.

Duplicates (same channel and external id) are dropped; messages are threaded into
conversations; contacts are upserted; every new conversation and message writes an event.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, text, update
from sqlalchemy import select as sa_select  # more columns than sqlmodel.select types
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from inbox.audit import event_row
from inbox.clock import Clock
from inbox.db import Database
from inbox.errors import UnknownChannel, UnknownMember
from inbox.events import Actor, Attachment, Author, Batch, Inbound
from inbox.models import (
    Channel,
    Contact,
    Conversation,
    Direction,
    Event,
    Kind,
    Member,
    Message,
    Status,
)
from inbox.textsafe import storable

# Advisory-lock namespace so our per-channel ingest locks never collide with other users'.
_LOCK_NAMESPACE = 0x5A1
_SOURCE = Actor.system("ingest")


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message that this ingest stored."""

    id: int
    conversation_id: int
    direction: Direction
    created_at: datetime


@dataclass
class IngestResult:
    """What one batch changed."""

    stored: list[StoredMessage] = field(default_factory=list)
    duplicates: int = 0
    edited: int = 0
    new_conversations: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)


IngestHook = Callable[[AsyncSession, IngestResult], Awaitable[None]]


@dataclass
class _Conv:
    """The part of a conversation that threading needs, kept for the length of one batch."""

    id: int
    kind: str
    contact_id: int
    thread_key: str | None
    status: str
    resolved_at: datetime | None
    changes: dict[str, Any] = field(default_factory=dict)


class Ingestor:
    """Stores batches of inbound events; hooks (SLA, notifier) run inside the same transaction."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        reopen_window: timedelta = timedelta(days=7),
        hooks: Sequence[IngestHook] = (),
    ) -> None:
        self.db = db
        self.clock = clock
        self.reopen_window = reopen_window
        # Keep the caller's list itself, so hooks installed later (the notifier) run too.
        self.hooks = hooks if isinstance(hooks, list) else list(hooks)
        self._channel_ids: dict[str, int] = {}

    async def ingest(self, batch: Batch) -> IngestResult:
        """Store the batch and its cursor atomically; safe to call again with the same batch."""
        async with self.db.transaction() as session:
            channel_id = await self._channel_id(session, batch.channel)
            if self.db.is_postgres:
                # Serialise ingests of one channel so racing duplicates and threading agree.
                await session.execute(
                    text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                    {"ns": _LOCK_NAMESPACE, "key": zlib.crc32(batch.channel.encode()) & 0x7FFFFFFF},
                )
            run = _BatchRun(session, self, channel_id, batch.channel)
            result = await run.store([storable_event(ev) for ev in batch.events])
            if batch.cursor is not None:
                await session.execute(
                    update(Channel)
                    .where(col(Channel.id) == channel_id)
                    .values(cursor=batch.cursor, updated_at=self.clock.now())
                )
            for hook in self.hooks:
                await hook(session, result)
            return result

    async def _channel_id(self, session: AsyncSession, name: str) -> int:
        if name not in self._channel_ids:
            found = await session.scalar(select(col(Channel.id)).where(col(Channel.name) == name))
            if found is None:
                raise UnknownChannel(name)
            self._channel_ids[name] = found
        return self._channel_ids[name]


class _BatchRun:
    """State for storing one batch: caches of contacts and conversations touched so far."""

    def __init__(self, session: AsyncSession, ingestor: Ingestor, channel_id: int, channel: str):
        self.session = session
        self.clock = ingestor.clock
        self.window = ingestor.reopen_window
        self.channel_id = channel_id
        self.channel = channel
        self.now = ingestor.clock.now()
        self.result = IngestResult()
        self.contacts: dict[str, int] = {}
        self.members: dict[str, int] = {}
        self.by_thread: dict[str, _Conv] = {}
        self.by_dm_contact: dict[int, _Conv] = {}
        self.by_message: dict[str, _Conv] = {}
        self.events: list[dict[str, Any]] = []

    async def store(self, events: Sequence[Inbound]) -> IngestResult:
        """Store every event that is not already stored."""
        for ev in events:
            if ev.channel != self.channel:
                raise ValueError(f"event for channel '{ev.channel}' in a batch for '{self.channel}'")
        fresh = await self._drop_duplicates(events)
        await self._upsert_contacts(fresh)
        for ev in fresh:
            await self._store_one(ev)
        await self._flush_conversations()
        if self.events:
            await self.session.execute(insert(Event), self.events)
        return self.result

    async def _drop_duplicates(self, events: Sequence[Inbound]) -> list[Inbound]:
        ids = list({ev.external_id for ev in events})
        existing: dict[str, tuple[int, str, datetime | None, int | None]] = {}
        for chunk in _chunks(ids, 500):
            rows = await self.session.execute(
                sa_select(
                    col(Message.external_id),
                    col(Message.id),
                    col(Message.text),
                    col(Message.edited_at),
                    col(Message.conversation_id),
                ).where(col(Message.channel_id) == self.channel_id, col(Message.external_id).in_(chunk))
            )
            for ext, mid, body, edited, conv in rows:
                existing[str(ext)] = (_id(mid), body, edited, conv)
        fresh: list[Inbound] = []
        seen: set[str] = set()
        for ev in events:
            if ev.external_id in existing:
                await self._maybe_edit(ev, existing[ev.external_id])
                continue
            if ev.external_id in seen:
                self.result.duplicates += 1
                continue
            seen.add(ev.external_id)
            fresh.append(ev)
        return fresh

    async def _maybe_edit(self, ev: Inbound, row: tuple[int, str, datetime | None, int | None]) -> None:
        message_id, body, edited_at, conversation_id = row
        newer = ev.edited_at is not None and (edited_at is None or ev.edited_at > edited_at)
        if not newer or ev.text == body:
            self.result.duplicates += 1
            return
        await self.session.execute(
            update(Message).where(col(Message.id) == message_id).values(text=ev.text, edited_at=ev.edited_at)
        )
        self.events.append(
            event_row(
                _SOURCE,
                "message.edited",
                self.now,
                conversation_id,
                message_id=message_id,
                previous_text=body,
            )
        )
        self.result.edited += 1

    async def _upsert_contacts(self, events: Sequence[Inbound]) -> None:
        authors = {ev.author.id: ev.author for ev in events if ev.direction is Direction.IN}
        authors.update(
            {
                ev.author.id: ev.author
                for ev in events
                if ev.direction is not Direction.IN and ev.author.id not in authors
            }
        )
        if not authors:
            return
        known: dict[str, tuple[int, str | None, str | None]] = {}
        for chunk in _chunks(list(authors), 500):
            rows = await self.session.execute(
                select(
                    col(Contact.external_id), col(Contact.id), col(Contact.handle), col(Contact.name)
                ).where(col(Contact.channel_id) == self.channel_id, col(Contact.external_id).in_(chunk))
            )
            for ext, cid, handle, name in rows:
                known[ext] = (_id(cid), handle, name)
        missing = [a for ext, a in authors.items() if ext not in known]
        if missing:
            inserted = await self.session.execute(
                insert(Contact).returning(col(Contact.external_id), col(Contact.id)),
                [
                    {
                        "channel_id": self.channel_id,
                        "external_id": a.id,
                        "handle": a.handle,
                        "name": a.name,
                        "created_at": self.now,
                        "updated_at": self.now,
                    }
                    for a in missing
                ],
            )
            for ext, new_id in inserted:
                self.contacts[ext] = _id(new_id)
        for ext, (cid, handle, name) in known.items():
            self.contacts[ext] = cid
            author = authors[ext]
            if (author.handle or handle, author.name or name) != (handle, name):
                await self.session.execute(
                    update(Contact)
                    .where(col(Contact.id) == cid)
                    .values(handle=author.handle or handle, name=author.name or name, updated_at=self.now)
                )

    async def _member_id(self, name: str) -> int:
        if name not in self.members:
            found = await self.session.scalar(select(col(Member.id)).where(col(Member.name) == name))
            if found is None:
                raise UnknownMember(name)
            self.members[name] = found
        return self.members[name]

    async def _store_one(self, ev: Inbound) -> None:
        contact_id = self.contacts[ev.author.id]
        conv = await self._find_conversation(ev, contact_id)
        if conv is None:
            conv = await self._create_conversation(ev, contact_id)
        member_id = await self._member_id(ev.member) if ev.member else None
        row = await self.session.execute(
            insert(Message).returning(col(Message.id)),
            {
                "channel_id": self.channel_id,
                "conversation_id": conv.id,
                "external_id": ev.external_id,
                "direction": ev.direction.value,
                "contact_id": contact_id if ev.direction is Direction.IN else None,
                "member_id": member_id,
                "text": ev.text,
                "attachments": [a.as_dict() for a in ev.attachments],
                "reply_to_external_id": ev.reply_to,
                "created_at": ev.created_at,
                "edited_at": ev.edited_at,
            },
        )
        message_id = _id(row.scalar_one())
        self.by_message[ev.external_id] = conv
        self._apply_to_conversation(conv, ev)
        self.result.stored.append(StoredMessage(message_id, conv.id, ev.direction, ev.created_at))
        self.events.append(
            event_row(
                Actor("member", ev.member, member_id) if ev.member else _SOURCE,
                f"message.{ev.direction.value}",
                self.now,
                conv.id,
                message_id=message_id,
                external_id=ev.external_id,
                at=ev.created_at.isoformat(),
            )
        )

    def _apply_to_conversation(self, conv: _Conv, ev: Inbound) -> None:
        changes = conv.changes
        if ev.direction is Direction.IN:
            changes["last_inbound_at"] = max(ev.created_at, changes.get("last_inbound_at", ev.created_at))
            if conv.status in (Status.PENDING, Status.SNOOZED):
                # A customer message ends waiting on them and wakes a snoozed conversation.
                self.events.append(
                    event_row(_SOURCE, "conversation.resumed", self.now, conv.id, previous=conv.status)
                )
                conv.status = Status.OPEN
                changes.update(status=Status.OPEN.value, snoozed_until=None)
        elif ev.direction is Direction.OUT:
            changes["last_outbound_at"] = ev.created_at
            changes.setdefault("_first_out", ev.created_at)

    async def _find_conversation(self, ev: Inbound, contact_id: int) -> _Conv | None:
        conv: _Conv | None = None
        if ev.reply_to:
            conv = await self._conversation_of_message(ev.reply_to)
        if conv is None and ev.thread_key:
            conv = await self._by_thread(ev.thread_key)
        if conv is None and ev.kind is Kind.DM and not ev.thread_key:
            conv = await self._by_dm_contact(contact_id)
        if conv is None or conv.status != Status.RESOLVED:
            return conv
        if conv.resolved_at is not None and ev.created_at - conv.resolved_at <= self.window:
            self._reopen(conv)
            return conv
        return None

    def _reopen(self, conv: _Conv) -> None:
        conv.status = Status.OPEN
        conv.resolved_at = None
        conv.changes.update(status=Status.OPEN.value, resolved_at=None)
        self.result.reopened.append(conv.id)
        self.events.append(
            event_row(_SOURCE, "conversation.reopened", self.now, conv.id, reason="customer wrote again")
        )

    async def _conversation_of_message(self, external_id: str) -> _Conv | None:
        if external_id in self.by_message:
            return self.by_message[external_id]
        conv_id = await self.session.scalar(
            select(col(Message.conversation_id)).where(
                col(Message.channel_id) == self.channel_id, col(Message.external_id) == external_id
            )
        )
        if conv_id is None:
            return None
        return await self._load(select(Conversation).where(col(Conversation.id) == conv_id))

    async def _by_thread(self, key: str) -> _Conv | None:
        if key not in self.by_thread:
            conv = await self._load(
                select(Conversation)
                .where(col(Conversation.channel_id) == self.channel_id, col(Conversation.thread_key) == key)
                .order_by(col(Conversation.id).desc())
                .limit(1)
            )
            if conv is None:
                return None
        return self.by_thread[key]

    async def _by_dm_contact(self, contact_id: int) -> _Conv | None:
        if contact_id not in self.by_dm_contact:
            conv = await self._load(
                select(Conversation)
                .where(
                    col(Conversation.channel_id) == self.channel_id,
                    col(Conversation.contact_id) == contact_id,
                    col(Conversation.kind) == Kind.DM.value,
                    col(Conversation.thread_key).is_(None),
                )
                .order_by(col(Conversation.id).desc())
                .limit(1)
            )
            if conv is None:
                return None
        return self.by_dm_contact[contact_id]

    async def _load(self, query: Any) -> _Conv | None:
        row = (await self.session.execute(query)).scalars().first()
        if row is None or row.id is None:
            return None
        for cached in self._cached():
            if cached.id == row.id:
                return cached
        conv = _Conv(row.id, row.kind, row.contact_id, row.thread_key, row.status, row.resolved_at)
        conv.changes["_first_response_at"] = row.first_response_at
        self._remember(conv)
        return conv

    def _cached(self) -> list[_Conv]:
        return [*self.by_thread.values(), *self.by_dm_contact.values(), *self.by_message.values()]

    def _remember(self, conv: _Conv) -> None:
        if conv.thread_key is not None:
            self.by_thread[conv.thread_key] = conv
        elif conv.kind == Kind.DM.value:
            self.by_dm_contact[conv.contact_id] = conv

    async def _create_conversation(self, ev: Inbound, contact_id: int) -> _Conv:
        thread_key = ev.thread_key
        if thread_key is None and ev.kind in (Kind.MENTION, Kind.COMMENT):
            thread_key = ev.reply_to or ev.external_id  # a new public thread starts here
        row = await self.session.execute(
            insert(Conversation).returning(col(Conversation.id)),
            {
                "channel_id": self.channel_id,
                "contact_id": contact_id,
                "kind": ev.kind.value,
                "thread_key": thread_key,
                "subject": ev.subject,
                "status": Status.OPEN.value,
                "breached": [],
                "created_at": ev.created_at,
                "updated_at": self.now,
            },
        )
        conv = _Conv(_id(row.scalar_one()), ev.kind.value, contact_id, thread_key, Status.OPEN, None)
        conv.changes["_first_response_at"] = None
        self._remember(conv)
        self.result.new_conversations.append(conv.id)
        self.events.append(
            event_row(
                _SOURCE,
                "conversation.created",
                self.now,
                conv.id,
                channel=self.channel,
                kind=ev.kind.value,
                at=ev.created_at.isoformat(),
            )
        )
        return conv

    async def _flush_conversations(self) -> None:
        touched = {id(c): c for c in self._cached()}.values()
        for conv in touched:
            values = {k: v for k, v in conv.changes.items() if not k.startswith("_")}
            first_out = conv.changes.get("_first_out")
            if first_out is not None and conv.changes.get("_first_response_at") is None:
                values["first_response_at"] = first_out
            if not values:
                continue
            values["updated_at"] = self.now
            await self.session.execute(
                update(Conversation).where(col(Conversation.id) == conv.id).values(**values)
            )
            conv.changes = {k: v for k, v in conv.changes.items() if k.startswith("_")}


def storable_event(ev: Inbound) -> Inbound:
    """The event with every string as the database can store it (``inbox.textsafe.storable``).

    Hostile or broken input (a lone surrogate, a NUL) must not fail the batch: that would block the
    channel behind it, since the same batch is fetched again and again.
    """
    texts = (ev.external_id, ev.text, ev.author.id, ev.author.handle, ev.author.name, ev.thread_key,
             ev.reply_to, ev.member, ev.subject)
    if all(value is None or storable(value) is value for value in texts) and not ev.attachments:
        return ev  # the common case: nothing to change, nothing copied

    def fix(value: str | None) -> str | None:
        return None if value is None else storable(value)

    author = Author(storable(ev.author.id), fix(ev.author.handle), fix(ev.author.name))
    files = tuple(
        Attachment(storable(a.type), fix(a.name), fix(a.mime_type), a.size, fix(a.platform_ref))
        for a in ev.attachments
    )
    return dataclasses.replace(
        ev, external_id=storable(ev.external_id), author=author, text=storable(ev.text),
        thread_key=fix(ev.thread_key), reply_to=fix(ev.reply_to), member=fix(ev.member),
        subject=fix(ev.subject), attachments=files,
    )


def _id(value: int | None) -> int:
    """A primary key read back from the database (never None once stored)."""
    assert value is not None
    return value


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def count_messages(db: Database) -> int:
    """Number of stored messages (used by the CLI and tests)."""
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)
