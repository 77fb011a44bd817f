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
from json.encoder import encode_basestring_ascii as _json_str  # what json.dumps writes for a str
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, func, literal, null, text, union_all, update
from sqlalchemy import select as sa_select  # more columns than sqlmodel.select types
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from inbox.clock import Clock
from inbox.db import Database
from inbox.db_bulk import BulkInsert, DriverStatement, json_text, time_binder
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
_SOURCE_LABEL = _SOURCE.label
_CHUNK = 500  # values per IN list: far below every driver's limit on bound parameters
# Rows are written through the tables (Core), not the ORM; the many rows of a batch go straight to the
# driver (inbox.db_bulk): plain executemany of tuples built here already converted (times bound once per
# value, JSON written as text), so no per-row dict, no per-value dispatch.
_CHANNELS: Table = Channel.__table__  # type: ignore[attr-defined]
_CONTACTS: Table = Contact.__table__  # type: ignore[attr-defined]
_CONVERSATIONS: Table = Conversation.__table__  # type: ignore[attr-defined]
_MESSAGES: Table = Message.__table__  # type: ignore[attr-defined]
_EVENTS: Table = Event.__table__  # type: ignore[attr-defined]
# The batch's message times on a stored conversation: one statement shape for every row, so one
# executemany. A NULL keeps what is stored (this batch had no message of that kind); first_response_at
# is only ever filled. Columns the batch did not change are not written over.
_TOUCH_NAMES = ("last_in", "last_out", "first_out", "touched_at", "row_id")
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
# Each table's columns in the order of the tuples built below (execute_tuples checks the statement's).
_CONTACT_COLUMNS = ("id", "channel_id", "external_id", "handle", "name", "created_at", "updated_at")
_CONVERSATION_COLUMNS = (
    "id", "channel_id", "contact_id", "kind", "thread_key", "subject", "status", "breached", "created_at",
    "updated_at", "last_inbound_at", "last_outbound_at", "first_response_at",
)
_MESSAGE_COLUMNS = (
    "id", "channel_id", "conversation_id", "external_id", "direction", "contact_id", "member_id", "text",
    "attachments", "reply_to_external_id", "created_at", "edited_at",
)
_EVENT_COLUMNS = ("conversation_id", "actor", "type", "data", "created_at")
_INSERT_CONTACTS = BulkInsert(_CONTACTS, _CONTACT_COLUMNS)
_INSERT_CONVERSATIONS = BulkInsert(_CONVERSATIONS, _CONVERSATION_COLUMNS)
_INSERT_MESSAGES = BulkInsert(_MESSAGES, _MESSAGE_COLUMNS)
_INSERT_EVENTS = BulkInsert(_EVENTS, _EVENT_COLUMNS)
_OPEN = Status.OPEN.value  # enum members' .value is a property: read it once
_NO_BREACHES = json_text([])
_DIRECTIONS = {d: d.value for d in Direction}
_MESSAGE_EVENTS = {d: f"message.{d.value}" for d in Direction}


def _values(name: str) -> Any:
    """An IN list bound at execution (one cached statement, no per-value work when it is built)."""
    return bindparam(name, expanding=True)


_CHANNEL: Any = bindparam("channel_id")
# The batch's look-ups, built once: plain Core selects of the tables (no ORM work on the rows).
_STORED_MESSAGES = sa_select(
    _MESSAGES.c.external_id, _MESSAGES.c.id, _MESSAGES.c.text, _MESSAGES.c.edited_at,
    _MESSAGES.c.conversation_id,
).where(_MESSAGES.c.channel_id == _CHANNEL, _MESSAGES.c.external_id.in_(_values("external_ids")))
_RESERVED = ("contacts", "conversations", "messages")  # the tables whose ids _reserve_ids hands out
# Who the batch names, in one UNION ALL of rows (part, key, id, handle, name): its authors' contacts
# (part 0), the members it names (1) and, on SQLite, the largest id of each _RESERVED table (2, 3, 4),
# which the batch counts on from (_count_on): one statement, not three.
_STORED_CONTACTS = sa_select(
    literal(0), _CONTACTS.c.external_id, _CONTACTS.c.id, _CONTACTS.c.handle, _CONTACTS.c.name
).where(_CONTACTS.c.channel_id == _CHANNEL, _CONTACTS.c.external_id.in_(_values("external_ids")))
_MEMBERS = Member.__table__  # type: ignore[attr-defined]
_MEMBER_IDS = sa_select(literal(1), _MEMBERS.c.name, _MEMBERS.c.id, null(), null()).where(
    _MEMBERS.c.name.in_(_values("names"))
)
_LARGEST_IDS = tuple(
    sa_select(literal(2 + index), null(), func.coalesce(func.max(table.c.id), 0), null(), null())
    for index, table in enumerate((_CONTACTS, _CONVERSATIONS, _MESSAGES))
)
_PEOPLE: dict[tuple[bool, bool], Any] = {}


def _people_lookup(members: bool, largest: bool) -> Any:
    """The contacts' query, with the members' and the largest ids' parts when asked (one statement)."""
    if (members, largest) not in _PEOPLE:
        parts = [_STORED_CONTACTS, *([_MEMBER_IDS] if members else []), *(_LARGEST_IDS if largest else ())]
        _PEOPLE[members, largest] = parts[0] if len(parts) == 1 else union_all(*parts)
    return _PEOPLE[members, largest]


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
    status_change: dict[str, Any] | None = None  # reopened or resumed: the new columns

    @property
    def changed(self) -> bool:
        """Whether the batch changes its row (a note alone does not)."""
        return self.last_in is not None or self.last_out is not None or bool(self.status_change)

    def change_status(self, **columns: Any) -> None:
        """Note columns the batch changes besides the message times (rare: a dict only when needed)."""
        if self.status_change is None:
            self.status_change = {}
        self.status_change.update(columns)


@dataclass(eq=False, slots=True)
class _Planned:
    """A fresh event and the conversation threading chose for it."""

    ev: Inbound
    conv: _Conv
    contact_id: int
    member_id: int | None
    id: int = 0  # the message's id, once reserved


# An audit event waiting for the batch's ids, in the order the rows are written. The two made for nearly
# every event are the objects themselves, their data written when the ids are known (``_audit_rows``): a
# _Planned stands for its message.in/out event, a _Conv for its conversation.created. Any other is
# (actor label, type, its conversation: known id or one the batch threads, data).
_Audit = tuple[str, str, _Conv | int | None, dict[str, Any]]
_AuditEntry = _Planned | _Conv | _Audit


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
        self.to_time = time_binder(ingestor.db.engine.dialect.name)  # a timestamp as the driver binds it
        self.result = IngestResult()
        self.contacts: dict[str, int] = {}  # external id -> id (provisional for a new contact)
        self.new_contacts: list[Author] = []
        self.new_contact_ids: list[int] = []
        self.members: dict[str, int] = {}
        self.largest = [0, 0, 0]  # SQLite: the largest id of each _RESERVED table, read with the contacts
        self.loaded: dict[int, _Conv] = {}  # stored conversations this batch looked at, by id
        self.created: list[_Conv] = []
        self.by_thread: dict[str, _Conv] = {}  # the newest conversation of each thread key
        self.by_dm_contact: dict[int, _Conv] = {}  # the newest DM conversation of each contact
        self.by_message: dict[str, _Conv] = {}  # the conversation of a stored or planned message
        self.planned: list[_Planned] = []
        self.audit: list[_AuditEntry] = []  # in the order the rows are written

    async def store(self, events: Sequence[Inbound]) -> IngestResult:
        """Store every event that is not already stored."""
        for ev in events:
            if ev.channel != self.channel:
                raise ValueError(f"event for channel '{ev.channel}' in a batch for '{self.channel}'")
        fresh = await self._drop_duplicates(events)
        if fresh:
            await self._upsert_contacts(fresh)
            await self._load_conversations(fresh)
            for ev in fresh:
                self._thread(ev)
            await self._reserve_ids()
            await self._write_contacts()
            await self._write_conversations()
            await self._write_messages()
        if self.audit:
            await _INSERT_EVENTS.execute_tuples(self.session, _EVENT_COLUMNS, self._audit_rows())
        return self.result

    def _audit_rows(self) -> list[tuple[Any, ...]]:
        """The events' rows. The two common data are written as the text json.dumps gives for their dict
        (keys in the same order), formatted directly: a dict and an encoder pass per event cost more."""
        now = self.to_time(self.now)
        created = f'{{"channel": {_json_str(self.channel)}, "kind": '
        members: dict[str, str] = {}  # a member's actor label
        rows: list[tuple[Any, ...]] = []
        for entry in self.audit:
            if isinstance(entry, _Planned):
                ev = entry.ev
                data = (f'{{"message_id": {int(entry.id)}, "external_id": {_json_str(ev.external_id)},'
                        f' "at": {_json_str(ev.created_at.isoformat())}}}')
                if ev.member:
                    if ev.member not in members:
                        members[ev.member] = Actor("member", ev.member, entry.member_id).label
                    actor = members[ev.member]
                else:
                    actor = _SOURCE_LABEL
                rows.append((entry.conv.id, actor, _MESSAGE_EVENTS[ev.direction], data, now))
            elif isinstance(entry, _Conv):
                assert entry.new is not None
                at = entry.new.created_at.isoformat()
                data = f'{created}{_json_str(entry.kind)}, "at": {_json_str(at)}}}'
                rows.append((entry.id, _SOURCE_LABEL, "conversation.created", data, now))
            else:
                actor, type_, conv, values = entry
                conversation_id = conv.id if isinstance(conv, _Conv) else conv
                rows.append((conversation_id, actor, type_, json_text(values), now))
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
        self.audit.append((_SOURCE_LABEL, "message.edited", conversation_id, data))
        self.result.edited += 1

    # --- contacts and members --------------------------------------------------------------------

    async def _upsert_contacts(self, events: Sequence[Inbound]) -> None:
        """Look up the authors' contacts, the members named and (SQLite) the largest ids; rename contacts."""
        authors = {ev.author.id: ev.author for ev in events if ev.direction is Direction.IN}
        authors.update(
            {
                ev.author.id: ev.author
                for ev in events
                if ev.direction is not Direction.IN and ev.author.id not in authors
            }
        )
        names = list({ev.member for ev in events if ev.member})
        known: dict[str, tuple[int, str | None, str | None]] = {}
        for index, chunk in enumerate(_chunks(list(authors), _CHUNK) or [[]]):
            first = index == 0  # the members and the largest ids come with the first chunk
            params: dict[str, Any] = {"channel_id": self.channel_id, "external_ids": chunk}
            if first and names:
                params["names"] = names
            query = _people_lookup(first and bool(names), first and not self.postgres)
            for part, key, row_id, handle, name in await self.session.execute(query, params):
                if part == 0:
                    known[key] = (_id(row_id), handle, name)
                elif part == 1:
                    self.members[str(key)] = _id(row_id)
                else:
                    self.largest[part - 2] = int(row_id)
        for ev in events:
            if ev.member and ev.member not in self.members:
                raise UnknownMember(ev.member)
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
        self.audit.append(planned)  # its message.in/out event

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
        conv.change_status(status=_OPEN, resolved_at=None)
        self.result.reopened.append(conv.id)
        self.audit.append((_SOURCE_LABEL, "conversation.reopened", conv, {"reason": "customer wrote again"}))

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
        self.audit.append(conv)  # its conversation.created event
        return conv

    def _apply_to_conversation(self, conv: _Conv, ev: Inbound) -> None:
        if ev.direction is Direction.IN:
            conv.last_in = ev.created_at if conv.last_in is None else max(conv.last_in, ev.created_at)
            if conv.status in (Status.PENDING, Status.SNOOZED):
                # A customer message ends waiting on them and wakes a snoozed conversation.
                self.audit.append((_SOURCE_LABEL, "conversation.resumed", conv, {"previous": conv.status}))
                conv.status = Status.OPEN
                conv.change_status(status=_OPEN, snoozed_until=None)
        elif ev.direction is Direction.OUT:
            conv.last_out = ev.created_at
            if conv.first_out is None:
                conv.first_out = ev.created_at

    # --- writing -----------------------------------------------------------------------------------

    async def _reserve_ids(self) -> None:
        """Ids for the new contacts, conversations and messages, so each goes in with one executemany."""
        counts = (len(self.new_contacts), len(self.created), len(self.planned))
        if self.postgres:
            contact_ids, conv_ids, message_ids = await _draw_ids(self.session, counts)
        else:
            contact_ids, conv_ids, message_ids = _count_on(self.largest, counts)
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
        now = self.to_time(self.now)
        rows = [
            (contact_id, self.channel_id, author.id, author.handle, author.name, now, now)
            for author, contact_id in zip(self.new_contacts, self.new_contact_ids, strict=True)
        ]
        await _INSERT_CONTACTS.execute_tuples(self.session, _CONTACT_COLUMNS, rows)

    async def _write_conversations(self) -> None:
        t, now = self.to_time, self.to_time(self.now)
        rows = []
        for conv in self.created:
            ev = conv.new
            assert ev is not None
            rows.append((
                conv.id, self.channel_id, self._contact_id(conv.contact_id), conv.kind, conv.thread_key,
                ev.subject, _OPEN, _NO_BREACHES, t(ev.created_at), now, t(conv.last_in), t(conv.last_out),
                t(conv.first_out),
            ))
        await _INSERT_CONVERSATIONS.execute_tuples(self.session, _CONVERSATION_COLUMNS, rows)
        touched = sorted((c for c in self.loaded.values() if c.changed), key=lambda c: c.id)
        times = [(t(c.last_in), t(c.last_out), t(c.first_out), now, c.id) for c in touched]
        await _TOUCH.execute_tuples(self.session, _TOUCH_NAMES, times)
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

    async def _write_messages(self) -> None:
        t, channel_id, inbound = self.to_time, self.channel_id, Direction.IN
        rows = []
        for p in self.planned:
            ev = p.ev
            rows.append((
                p.id, channel_id, p.conv.id, ev.external_id, _DIRECTIONS[ev.direction],
                self._contact_id(p.contact_id) if ev.direction is inbound else None, p.member_id, ev.text,
                json_text([a.as_dict() for a in ev.attachments]) if ev.attachments else _NO_BREACHES,
                ev.reply_to, t(ev.created_at), t(ev.edited_at),
            ))
        await _INSERT_MESSAGES.execute_tuples(self.session, _MESSAGE_COLUMNS, rows)


# Reserving ids for the rows about to be inserted into _RESERVED's tables, ascending: knowing them first
# lets the rows (and the rows that point at them) be written with a plain executemany, with no need to
# match RETURNING rows back to the rows sent. PostgreSQL draws them from the tables' own sequences in one
# statement, which is safe beside any concurrent writer. SQLite counts on from the largest ids (read with
# the batch's contacts), which is what it would do itself (INTEGER PRIMARY KEY without AUTOINCREMENT) and
# is safe because the transaction began with BEGIN IMMEDIATE: no other writer can insert until it ends.
_DRAW_IDS = text(
    "SELECT "
    + ", ".join(
        f"ARRAY(SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :{table}))"
        for table in _RESERVED
    )
)


async def _draw_ids(session: AsyncSession, counts: Sequence[int]) -> list[list[int]]:
    """PostgreSQL: ``counts`` new ids of each of ``_RESERVED``'s tables, from their sequences."""
    params = {table: count for table, count in zip(_RESERVED, counts, strict=True)}
    row = (await session.execute(_DRAW_IDS, params)).one()
    return [sorted(ids) for ids in row]


def _count_on(largest: Sequence[int], counts: Sequence[int]) -> list[list[int]]:
    """SQLite: ``counts`` new ids of each of ``_RESERVED``'s tables, after the largest ones."""
    return [list(range(last + 1, last + 1 + count)) for last, count in zip(largest, counts, strict=True)]


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
