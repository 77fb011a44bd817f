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
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, func, literal, null, text, union_all, update
from sqlalchemy import select as sa_select  # more columns than sqlmodel.select types
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from inbox.audit import event_row
from inbox.clock import Clock
from inbox.db import Database
from inbox.db_bulk import BulkInsert, DriverStatement
from inbox.errors import UnknownChannel, UnknownMember
from inbox.events import Actor, Attachment, Author, Batch, Inbound
from inbox.follow_ups import keep_follow_ups
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
_CHUNK = 500  # values per IN list: far below every driver's limit on bound parameters
# Rows are written through the tables (Core), not the ORM; the many rows of a batch go straight to the
# driver (inbox.db_bulk): plain executemany of converted tuples, no per-row SQLAlchemy work.
_CHANNELS: Table = Channel.__table__  # type: ignore[attr-defined]
_CONTACTS: Table = Contact.__table__  # type: ignore[attr-defined]
_CONVERSATIONS: Table = Conversation.__table__  # type: ignore[attr-defined]
_MESSAGES: Table = Message.__table__  # type: ignore[attr-defined]
_EVENTS: Table = Event.__table__  # type: ignore[attr-defined]
# The batch's message times on a stored conversation: one statement shape for every row, so one
# executemany. A NULL keeps what is stored (this batch had no message of that kind); first_response_at
# is only ever filled. Columns the batch did not change are not written over.
_TOUCH = DriverStatement(
    "UPDATE conversations SET last_inbound_at = coalesce(:last_in, last_inbound_at),"
    " last_outbound_at = coalesce(:last_out, last_outbound_at),"
    " first_response_at = coalesce(first_response_at, :first_out), updated_at = :touched_at"
    " WHERE id = :row_id",
    {
        "last_in": _CONVERSATIONS.c.last_inbound_at.type,
        "last_out": _CONVERSATIONS.c.last_outbound_at.type,
        "first_out": _CONVERSATIONS.c.first_response_at.type,
        "touched_at": _CONVERSATIONS.c.updated_at.type,
    },
)
_INSERT_CONTACTS = BulkInsert(
    _CONTACTS, ("id", "channel_id", "external_id", "handle", "name", "created_at", "updated_at")
)
_INSERT_CONVERSATIONS = BulkInsert(
    _CONVERSATIONS,
    ("id", "channel_id", "contact_id", "kind", "thread_key", "subject", "status", "breached", "created_at",
     "updated_at", "last_inbound_at", "last_outbound_at", "first_response_at"),
)
_INSERT_MESSAGES = BulkInsert(
    _MESSAGES,
    ("id", "channel_id", "conversation_id", "external_id", "direction", "contact_id", "member_id", "text",
     "attachments", "reply_to_external_id", "created_at", "edited_at"),
)
_INSERT_EVENTS = BulkInsert(_EVENTS, ("conversation_id", "actor", "type", "data", "created_at"))
_OPEN = Status.OPEN.value  # enum members' .value is a property: read it once


def _values(name: str) -> Any:
    """An IN list bound at execution (one cached statement, no per-value work when it is built)."""
    return bindparam(name, expanding=True)


_CHANNEL: Any = bindparam("channel_id")
# The batch's look-ups, built once: plain Core selects of the tables (no ORM work on the rows).
_STORED_MESSAGES = sa_select(
    _MESSAGES.c.external_id, _MESSAGES.c.id, _MESSAGES.c.text, _MESSAGES.c.edited_at,
    _MESSAGES.c.conversation_id,
).where(_MESSAGES.c.channel_id == _CHANNEL, _MESSAGES.c.external_id.in_(_values("external_ids")))
_STORED_CONTACTS = sa_select(
    _CONTACTS.c.external_id, _CONTACTS.c.id, _CONTACTS.c.handle, _CONTACTS.c.name
).where(_CONTACTS.c.channel_id == _CHANNEL, _CONTACTS.c.external_id.in_(_values("external_ids")))
_MEMBERS = Member.__table__  # type: ignore[attr-defined]
_MEMBER_IDS = sa_select(_MEMBERS.c.name, _MEMBERS.c.id).where(_MEMBERS.c.name.in_(_values("names")))
_CONV = _CONVERSATIONS.c
# What threading reads of a stored conversation (the order of _Conv's first fields).
_CONV_COLUMNS = (_CONV.id, _CONV.kind, _CONV.contact_id, _CONV.thread_key, _CONV.status, _CONV.resolved_at)
# The three ways a message joins a stored conversation, each a part of one UNION ALL.
_BY_REPLIED = (  # the conversations of stored messages that the batch replies to
    sa_select(literal("message"), _MESSAGES.c.external_id, *_CONV_COLUMNS)
    .join(_CONVERSATIONS, _CONV.id == _MESSAGES.c.conversation_id)
    .where(_MESSAGES.c.channel_id == _CHANNEL, _MESSAGES.c.external_id.in_(_values("replied")))
)
_BY_THREAD_KEY = sa_select(literal("thread"), null(), *_CONV_COLUMNS).where(  # the newest of each key
    _CONV.id.in_(
        sa_select(func.max(_CONV.id))
        .where(_CONV.channel_id == _CHANNEL, _CONV.thread_key.in_(_values("keys")))
        .group_by(_CONV.thread_key)
    )
)
_BY_DM_CONTACT = sa_select(literal("dm"), null(), *_CONV_COLUMNS).where(  # a contact's newest DM, no key
    _CONV.id.in_(
        sa_select(func.max(_CONV.id))
        .where(
            _CONV.channel_id == _CHANNEL,
            _CONV.contact_id.in_(_values("dm_contacts")),
            _CONV.kind == Kind.DM.value,
            _CONV.thread_key.is_(None),
        )
        .group_by(_CONV.contact_id)
    )
)
_LOOKUPS: dict[tuple[bool, bool, bool], Any] = {}  # the UNION ALL of the parts a chunk needs


def _conversation_lookup(replied: bool, keys: bool, dm: bool) -> Any:
    """The query of the parts a chunk of values needs (one statement, cached)."""
    wanted = (replied, keys, dm)
    if wanted not in _LOOKUPS:
        parts = [q for q, on in zip((_BY_REPLIED, _BY_THREAD_KEY, _BY_DM_CONTACT), wanted, strict=True) if on]
        _LOOKUPS[wanted] = parts[0] if len(parts) == 1 else union_all(*parts)
    return _LOOKUPS[wanted]


_RESERVED = ("contacts", "conversations", "messages")  # the tables whose ids _reserve_ids hands out
_T = TypeVar("_T")


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


@dataclass(eq=False, slots=True)
class _Conv:
    """The part of a conversation that threading needs, kept for the length of one batch."""

    id: int  # 0 for a conversation this batch creates, until the batch's ids are reserved
    kind: str
    contact_id: int
    thread_key: str | None
    status: str
    resolved_at: datetime | None
    new: Inbound | None = None  # the event that starts a conversation this batch creates
    last_in: datetime | None = None  # the latest inbound message of the batch
    last_out: datetime | None = None  # the batch's last outbound message
    first_out: datetime | None = None  # the batch's first outbound message
    status_change: dict[str, Any] = field(default_factory=dict)  # reopened or resumed: the new columns

    @property
    def changed(self) -> bool:
        """Whether the batch changes its row (a note alone does not)."""
        return self.last_in is not None or self.last_out is not None or bool(self.status_change)


@dataclass(eq=False, slots=True)
class _Planned:
    """A fresh event and the conversation threading chose for it."""

    ev: Inbound
    conv: _Conv
    contact_id: int
    member_id: int | None
    id: int = 0  # the message's id, once reserved


# An audit event waiting for the batch's ids: actor, type, its conversation (known, or one the batch
# threads), the message it is about (whose id leads the data) and the rest of its data.
_Audit = tuple[Actor, str, "_Conv | int | None", "_Planned | None", dict[str, Any]]


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
                    update(_CHANNELS)
                    .where(_CHANNELS.c.id == channel_id)
                    .values(cursor=batch.cursor, updated_at=self.clock.now())
                )
            await keep_follow_ups(session, ((m.conversation_id, m.created_at) for m in result.stored))
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
    """Stores one batch set-based: a few bulk look-ups, threading in memory, then one write per table.

    Statements do not depend on the batch's length: the look-ups go by chunked IN lists, and the rows
    are written with executemany once their ids are reserved (``_reserve_ids``). Audit rows are built
    last, when every id they name is known.
    """

    def __init__(self, session: AsyncSession, ingestor: Ingestor, channel_id: int, channel: str):
        self.session = session
        self.postgres = ingestor.db.is_postgres
        self.window = ingestor.reopen_window
        self.channel_id = channel_id
        self.channel = channel
        self.now = ingestor.clock.now()
        self.result = IngestResult()
        self.contacts: dict[str, int] = {}  # external id -> id (provisional for a new contact)
        self.new_contacts: list[Author] = []
        self.new_contact_ids: list[int] = []
        self.members: dict[str, int] = {}
        self.loaded: dict[int, _Conv] = {}  # stored conversations this batch looked at, by id
        self.created: list[_Conv] = []
        self.by_thread: dict[str, _Conv] = {}  # the newest conversation of each thread key
        self.by_dm_contact: dict[int, _Conv] = {}  # the newest DM conversation of each contact
        self.by_message: dict[str, _Conv] = {}  # the conversation of a stored or planned message
        self.planned: list[_Planned] = []
        self.audit: list[_Audit] = []  # in the order the rows are written

    async def store(self, events: Sequence[Inbound]) -> IngestResult:
        """Store every event that is not already stored."""
        for ev in events:
            if ev.channel != self.channel:
                raise ValueError(f"event for channel '{ev.channel}' in a batch for '{self.channel}'")
        fresh = await self._drop_duplicates(events)
        if fresh:
            await self._upsert_contacts(fresh)
            await self._load_members(fresh)
            await self._load_conversations(fresh)
            for ev in fresh:
                self._thread(ev)
            await self._reserve_ids()
            await self._write_contacts()
            await self._write_conversations()
            await self._write_messages()
        if self.audit:
            await _INSERT_EVENTS.execute_many(self.session, self._audit_rows())
        return self.result

    def _audit_rows(self) -> list[dict[str, Any]]:
        rows = []
        for actor, type_, conv, message, data in self.audit:
            if message is not None:
                data = {"message_id": message.id, **data}
            conversation_id = conv.id if isinstance(conv, _Conv) else conv
            rows.append(event_row(actor, type_, self.now, conversation_id, **data))
        return rows

    # --- duplicates and edits --------------------------------------------------------------------

    async def _drop_duplicates(self, events: Sequence[Inbound]) -> list[Inbound]:
        existing: dict[str, list[Any]] = {}  # external id -> [id, text, edited_at, conversation id]
        for chunk in _chunks(list({ev.external_id for ev in events}), _CHUNK):
            rows = await self.session.execute(
                _STORED_MESSAGES, {"channel_id": self.channel_id, "external_ids": chunk}
            )
            for ext, mid, body, edited, conv in rows:
                existing[str(ext)] = [_id(mid), body, edited, conv]
        fresh: list[Inbound] = []
        seen: set[str] = set()
        edits: dict[int, dict[str, Any]] = {}
        for ev in events:
            if ev.external_id in existing:
                self._maybe_edit(ev, existing[ev.external_id], edits)
                continue
            if ev.external_id in seen:
                self.result.duplicates += 1
                continue
            seen.add(ev.external_id)
            fresh.append(ev)
        if edits:
            await self.session.execute(
                update(_MESSAGES).where(_MESSAGES.c.id == bindparam("row_id")), list(edits.values())
            )
        return fresh

    def _maybe_edit(self, ev: Inbound, row: list[Any], edits: dict[int, dict[str, Any]]) -> None:
        message_id, body, edited_at, conversation_id = row
        newer = ev.edited_at is not None and (edited_at is None or ev.edited_at > edited_at)
        if not newer or ev.text == body:
            self.result.duplicates += 1
            return
        row[1:3] = [ev.text, ev.edited_at]  # a second edit in the batch compares with this one
        edits[message_id] = {"row_id": message_id, "text": ev.text, "edited_at": ev.edited_at}
        data = {"message_id": message_id, "previous_text": body}
        self.audit.append((_SOURCE, "message.edited", conversation_id, None, data))
        self.result.edited += 1

    # --- contacts and members --------------------------------------------------------------------

    async def _upsert_contacts(self, events: Sequence[Inbound]) -> None:
        authors = {ev.author.id: ev.author for ev in events if ev.direction is Direction.IN}
        authors.update(
            {
                ev.author.id: ev.author
                for ev in events
                if ev.direction is not Direction.IN and ev.author.id not in authors
            }
        )
        known: dict[str, tuple[int, str | None, str | None]] = {}
        for chunk in _chunks(list(authors), _CHUNK):
            rows = await self.session.execute(
                _STORED_CONTACTS, {"channel_id": self.channel_id, "external_ids": chunk}
            )
            for ext, cid, handle, name in rows:
                known[ext] = (_id(cid), handle, name)
        # New contacts get provisional ids (-1, -2, ...) until the batch's ids are reserved.
        self.new_contacts = [a for ext, a in authors.items() if ext not in known]
        for index, author in enumerate(self.new_contacts):
            self.contacts[author.id] = -index - 1
        renamed: list[dict[str, Any]] = []
        for ext, (cid, handle, name) in known.items():
            self.contacts[ext] = cid
            author = authors[ext]
            now_known = (author.handle or handle, author.name or name)
            if now_known != (handle, name):
                renamed.append(
                    {"row_id": cid, "handle": now_known[0], "name": now_known[1], "updated_at": self.now}
                )
        if renamed:
            await self.session.execute(
                update(_CONTACTS).where(_CONTACTS.c.id == bindparam("row_id")), renamed
            )

    async def _load_members(self, events: Sequence[Inbound]) -> None:
        names = list({ev.member for ev in events if ev.member})
        if not names:
            return
        rows = await self.session.execute(_MEMBER_IDS, {"names": names})
        self.members = {str(name): _id(mid) for name, mid in rows}
        for ev in events:
            if ev.member and ev.member not in self.members:
                raise UnknownMember(ev.member)

    # --- threading ---------------------------------------------------------------------------------

    async def _load_conversations(self, events: Sequence[Inbound]) -> None:
        """Every stored conversation the batch may join, by replied-to message, thread key or DM contact.

        One query (the three look-ups in a UNION ALL) per 500 values of each.
        """
        replied = _chunks(list({ev.reply_to for ev in events if ev.reply_to}), _CHUNK)
        keys = _chunks(list({ev.thread_key for ev in events if ev.thread_key}), _CHUNK)
        dm = {self.contacts[ev.author.id] for ev in events if ev.kind is Kind.DM and not ev.thread_key}
        dm_contacts = _chunks([c for c in dm if c > 0], _CHUNK)  # a new contact has no conversation yet
        for index in range(max(len(replied), len(keys), len(dm_contacts))):
            params: dict[str, Any] = {"channel_id": self.channel_id}
            for name, chunks in (("replied", replied), ("keys", keys), ("dm_contacts", dm_contacts)):
                if index < len(chunks):
                    params[name] = chunks[index]
            query = _conversation_lookup(*(name in params for name in ("replied", "keys", "dm_contacts")))
            for how, external_id, *values in await self.session.execute(query, params):
                conv = self._known(values)
                if how == "message":
                    self.by_message[str(external_id)] = conv
                elif how == "thread":
                    assert conv.thread_key is not None
                    self.by_thread[conv.thread_key] = conv
                else:
                    self.by_dm_contact[conv.contact_id] = conv

    def _known(self, values: Sequence[Any]) -> _Conv:
        """One object per stored conversation, however many look-ups found it."""
        conv_id = _id(values[0])
        if conv_id not in self.loaded:
            self.loaded[conv_id] = _Conv(conv_id, *values[1:])
        return self.loaded[conv_id]

    def _thread(self, ev: Inbound) -> None:
        contact_id = self.contacts[ev.author.id]
        conv = self._find_conversation(ev, contact_id) or self._create_conversation(ev, contact_id)
        member_id = self.members[ev.member] if ev.member else None
        planned = _Planned(ev, conv, contact_id, member_id)
        self.planned.append(planned)
        self.by_message[ev.external_id] = conv
        self._apply_to_conversation(conv, ev)
        actor = Actor("member", ev.member, member_id) if ev.member else _SOURCE
        data = {"external_id": ev.external_id, "at": ev.created_at.isoformat()}
        self.audit.append((actor, f"message.{ev.direction.value}", conv, planned, data))

    def _find_conversation(self, ev: Inbound, contact_id: int) -> _Conv | None:
        conv: _Conv | None = None
        if ev.reply_to:
            conv = self.by_message.get(ev.reply_to)
        if conv is None and ev.thread_key:
            conv = self.by_thread.get(ev.thread_key)
        if conv is None and ev.kind is Kind.DM and not ev.thread_key:
            conv = self.by_dm_contact.get(contact_id)
        if conv is None or conv.status != Status.RESOLVED:
            return conv
        if conv.resolved_at is not None and ev.created_at - conv.resolved_at <= self.window:
            self._reopen(conv)
            return conv
        return None

    def _reopen(self, conv: _Conv) -> None:
        conv.status = Status.OPEN
        conv.resolved_at = None
        conv.status_change.update(status=Status.OPEN.value, resolved_at=None)
        self.result.reopened.append(conv.id)
        self.audit.append((_SOURCE, "conversation.reopened", conv, None, {"reason": "customer wrote again"}))

    def _create_conversation(self, ev: Inbound, contact_id: int) -> _Conv:
        thread_key = ev.thread_key
        if thread_key is None and ev.kind in (Kind.MENTION, Kind.COMMENT):
            thread_key = ev.reply_to or ev.external_id  # a new public thread starts here
        conv = _Conv(0, ev.kind.value, contact_id, thread_key, Status.OPEN, None, new=ev)
        self.created.append(conv)
        if thread_key is not None:
            self.by_thread[thread_key] = conv
        elif ev.kind is Kind.DM:
            self.by_dm_contact[contact_id] = conv
        data = {"channel": self.channel, "kind": ev.kind.value, "at": ev.created_at.isoformat()}
        self.audit.append((_SOURCE, "conversation.created", conv, None, data))
        return conv

    def _apply_to_conversation(self, conv: _Conv, ev: Inbound) -> None:
        if ev.direction is Direction.IN:
            conv.last_in = ev.created_at if conv.last_in is None else max(conv.last_in, ev.created_at)
            if conv.status in (Status.PENDING, Status.SNOOZED):
                # A customer message ends waiting on them and wakes a snoozed conversation.
                self.audit.append((_SOURCE, "conversation.resumed", conv, None, {"previous": conv.status}))
                conv.status = Status.OPEN
                conv.status_change.update(status=Status.OPEN.value, snoozed_until=None)
        elif ev.direction is Direction.OUT:
            conv.last_out = ev.created_at
            if conv.first_out is None:
                conv.first_out = ev.created_at

    # --- writing -----------------------------------------------------------------------------------

    async def _reserve_ids(self) -> None:
        """Ids for the new contacts, conversations and messages, so each goes in with one executemany."""
        contact_ids, conv_ids, message_ids = await _reserve_ids(
            self.session, self.postgres, len(self.new_contacts), len(self.created), len(self.planned)
        )
        self.new_contact_ids = contact_ids
        for conv, conv_id in zip(self.created, conv_ids, strict=True):
            conv.id = conv_id
        for planned, message_id in zip(self.planned, message_ids, strict=True):
            planned.id = message_id
        self.result.new_conversations = [conv.id for conv in self.created]
        self.result.stored = [
            StoredMessage(p.id, p.conv.id, p.ev.direction, p.ev.created_at) for p in self.planned
        ]

    def _contact_id(self, contact_id: int) -> int:
        """The contact's id, once a provisional one is replaced by the reserved one."""
        return contact_id if contact_id > 0 else self.new_contact_ids[-contact_id - 1]

    async def _write_contacts(self) -> None:
        if self.new_contacts:
            await _INSERT_CONTACTS.execute_many(
                self.session,
                [
                    {
                        "id": contact_id,
                        "channel_id": self.channel_id,
                        "external_id": author.id,
                        "handle": author.handle,
                        "name": author.name,
                        "created_at": self.now,
                        "updated_at": self.now,
                    }
                    for author, contact_id in zip(self.new_contacts, self.new_contact_ids, strict=True)
                ],
            )

    async def _write_conversations(self) -> None:
        if self.created:
            await _INSERT_CONVERSATIONS.execute_many(self.session, [self._new_row(c) for c in self.created])
        touched = sorted((c for c in self.loaded.values() if c.changed), key=lambda c: c.id)
        if touched:
            times = [
                {"row_id": c.id, "last_in": c.last_in, "last_out": c.last_out, "first_out": c.first_out,
                 "touched_at": self.now}
                for c in touched
            ]
            await _TOUCH.execute_many(self.session, times)
        # Status changes are rare: one executemany per set of columns (reopened, resumed).
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for conv in touched:
            if conv.status_change:
                groups.setdefault(tuple(sorted(conv.status_change)), []).append(
                    {"row_id": conv.id, **conv.status_change}
                )
        for params in groups.values():
            await self.session.execute(
                update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == bindparam("row_id")), params
            )

    def _new_row(self, conv: _Conv) -> dict[str, Any]:
        ev = conv.new
        assert ev is not None
        return {
            "id": conv.id,
            "channel_id": self.channel_id,
            "contact_id": self._contact_id(conv.contact_id),
            "kind": conv.kind,
            "thread_key": conv.thread_key,
            "subject": ev.subject,
            "status": _OPEN,
            "breached": [],
            "created_at": ev.created_at,
            "updated_at": self.now,
            "last_inbound_at": conv.last_in,
            "last_outbound_at": conv.last_out,
            "first_response_at": conv.first_out,
        }

    async def _write_messages(self) -> None:
        await _INSERT_MESSAGES.execute_many(
            self.session,
            [
                {
                    "id": p.id,
                    "channel_id": self.channel_id,
                    "conversation_id": p.conv.id,
                    "external_id": p.ev.external_id,
                    "direction": p.ev.direction.value,
                    "contact_id": self._contact_id(p.contact_id) if p.ev.direction is Direction.IN else None,
                    "member_id": p.member_id,
                    "text": p.ev.text,
                    "attachments": [a.as_dict() for a in p.ev.attachments],
                    "reply_to_external_id": p.ev.reply_to,
                    "created_at": p.ev.created_at,
                    "edited_at": p.ev.edited_at,
                }
                for p in self.planned
            ],
        )


async def _reserve_ids(session: AsyncSession, postgres: bool, *counts: int) -> list[list[int]]:
    """Ids for rows about to be inserted into ``_RESERVED``'s tables (``counts`` of each), ascending, in
    one statement.

    Knowing the ids first lets the rows (and the rows that point at them) be written with a plain
    executemany, with no need to match RETURNING rows back to the rows sent. PostgreSQL draws them from
    the tables' own sequences, which is safe beside any concurrent writer. SQLite counts on from the
    largest id, which is what it would do itself (INTEGER PRIMARY KEY without AUTOINCREMENT) and is
    safe because the transaction began with BEGIN IMMEDIATE: no other writer can insert until it ends.
    """
    params = {table: count for table, count in zip(_RESERVED, counts, strict=True)}
    if postgres:
        drawn = ", ".join(
            f"ARRAY(SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"
            f" FROM generate_series(1, :{table}))"
            for table in _RESERVED
        )
        row = (await session.execute(text(f"SELECT {drawn}"), params)).one()
        return [sorted(ids) for ids in row]
    largest = ", ".join(f"(SELECT coalesce(max(id), 0) FROM {table})" for table in _RESERVED)
    row = (await session.execute(text(f"SELECT {largest}"))).one()
    return [
        list(range(int(last) + 1, int(last) + 1 + count)) for last, count in zip(row, counts, strict=True)
    ]


def storable_event(ev: Inbound) -> Inbound:
    """The event with every string as the database can store it (``inbox.textsafe.storable``).

    Hostile or broken input (a lone surrogate, a NUL) must not fail the batch: that would block the
    channel behind it, since the same batch is fetched again and again.
    """
    texts = (ev.external_id, ev.text, ev.author.id, ev.author.handle, ev.author.name, ev.thread_key,
             ev.reply_to, ev.member, ev.subject)
    # One check of all of them at once (the separator cannot pair with a surrogate either side).
    joined = "\n".join([value for value in texts if value is not None])
    if storable(joined) is joined and not ev.attachments:
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


def _chunks(items: list[_T], size: int) -> list[list[_T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def count_messages(db: Database) -> int:
    """Number of stored messages (used by the CLI and tests)."""
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)
