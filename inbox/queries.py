"""Read models: the queue of open work and the full story of one conversation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    TextClause,
    and_,
    func,
    literal_column,
    or_,
    text,
    union_all,
)
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, aliased
from sqlmodel import col, select

from inbox.clock import isoformat_utc
from inbox.errors import ConversationNotFound
from inbox.models import (
    NO_DEADLINE,
    PRIORITY_RANK,
    QUEUE_ROWS,
    Channel,
    Contact,
    Conversation,
    ConversationTag,
    Direction,
    Event,
    Member,
    Message,
    Status,
    Tag,
)

EXCERPT_LENGTH = 140
# Joins tag names in one column; tags cannot contain it (inbox.actions.TAG_PATTERN).
_TAG_SEPARATOR = "\x1f"


@dataclass
class QueueItem:
    """One line of the queue."""

    id: int
    status: str
    priority: str
    channel: str
    kind: str
    assignee: str | None
    tags: list[str]
    created_at: datetime
    first_response_due_at: datetime | None
    next_response_due_at: datetime | None
    resolution_due_at: datetime | None
    breached: list[str]
    escalation_level: int
    contact: str
    excerpt: str

    def as_json(self) -> dict[str, Any]:
        """JSON form for ``inbox queue --json``."""
        return {
            "id": self.id,
            "status": self.status,
            "priority": self.priority,
            "channel": self.channel,
            "kind": self.kind,
            "assignee": self.assignee,
            "tags": self.tags,
            "created_at": isoformat_utc(self.created_at),
            "first_response_due_at": isoformat_utc(self.first_response_due_at),
            "next_response_due_at": isoformat_utc(self.next_response_due_at),
            "resolution_due_at": isoformat_utc(self.resolution_due_at),
            "breached": self.breached,
            "escalation_level": self.escalation_level,
            "contact": self.contact,
            "excerpt": self.excerpt,
        }


@dataclass
class QueueFilter:
    """Which conversations a queue listing shows."""

    include_waiting: bool = False  # pending and still-snoozed conversations too
    assignee: str | None = None
    unassigned: bool = False
    channel: str | None = None
    tag: str | None = None
    limit: int = 50
    offset: int = 0


def contact_label(handle: str | None, name: str | None, external_id: str) -> str:
    """How a customer is named in lists: handle, else name, else platform id."""
    if handle:
        return handle if handle.startswith("@") else f"@{handle}"
    return name or external_id


async def list_queue(
    session: AsyncSession, now: datetime, filt: QueueFilter | None = None
) -> list[QueueItem]:
    """Open work, most urgent first: priority, then the nearest SLA deadline, then age."""
    filt = filt or QueueFilter()
    query = (
        # SQLAlchemy's select: SQLModel's is typed for at most four columns.
        sa_select(
            Conversation, col(Channel.name), col(Member.name), Contact, tag_names_of(col(Conversation.id)),
            _last_inbound_text(),
        )
        .join(Channel, col(Channel.id) == col(Conversation.channel_id))
        .join(Contact, col(Contact.id) == col(Conversation.contact_id))
        .outerjoin(Member, col(Member.id) == col(Conversation.assignee_id))
        .where(*_queue_rows(now, filt.include_waiting))
        # The stored sort key (inbox.models: queue_rank, queue_due_at) in the order of the queue index,
        # so that the database reads the page from the index instead of sorting every open conversation.
        .order_by(
            col(Conversation.queue_rank),
            col(Conversation.queue_due_at),
            col(Conversation.created_at),
            col(Conversation.id),
        )
        .limit(filt.limit)
        .offset(filt.offset)
    )
    if filt.assignee:
        query = query.where(col(Member.name) == filt.assignee)
    if filt.unassigned:
        query = query.where(col(Conversation.assignee_id).is_(None))
    if filt.channel:
        query = query.where(col(Channel.name) == filt.channel)
    if filt.tag:
        # A scalar subquery checked row by row as the index is read. EXISTS or IN would let PostgreSQL
        # collect every conversation with the tag first and sort them (and SQLite build the whole list).
        tagged = (
            select(col(ConversationTag.tag_id))
            .join(Tag, col(Tag.id) == col(ConversationTag.tag_id))
            .where(col(ConversationTag.conversation_id) == col(Conversation.id))
            .where(col(Tag.name) == filt.tag.lower())
            .limit(1)
            .scalar_subquery()
        )
        query = query.where(tagged.is_not(None))
    rows = (await session.execute(query)).all()
    return [
        QueueItem(
            id=int(conv.id or 0),
            status=conv.status,
            priority=conv.priority,
            channel=channel,
            kind=conv.kind,
            assignee=assignee,
            tags=split_tags(tag_names),
            created_at=conv.created_at,
            first_response_due_at=conv.first_response_due_at,
            next_response_due_at=conv.next_response_due_at,
            resolution_due_at=conv.resolution_due_at,
            breached=list(conv.breached),
            escalation_level=conv.escalation_level,
            contact=contact_label(contact.handle, contact.name, contact.external_id),
            excerpt=excerpt(last_in or ""),
        )
        for conv, channel, assignee, contact, tag_names, last_in in rows
    ]


# The rows the queue indexes cover, written as their condition is (a database uses a partial index only
# for a query that names its condition).
_QUEUE_INDEXED: Final = text(f"conversations.{QUEUE_ROWS}")

def _queue_rows(now: datetime, include_waiting: bool) -> list[ColumnElement[bool] | TextClause]:
    """Which conversations the queue shows.

    The queue indexes cover the rows of ``QUEUE_ROWS`` only, so that exact condition comes first, as a
    literal: a database uses a partial index only for a query that names its condition.
    """
    rows: list[ColumnElement[bool] | TextClause] = [_QUEUE_INDEXED]
    if not include_waiting:  # pending and still-snoozed conversations wait elsewhere
        rows.append(or_(
            col(Conversation.status) == Status.OPEN.value,
            and_(col(Conversation.status) == Status.SNOOZED.value, col(Conversation.snoozed_until) <= now),
        ))
    return rows


async def nearest_deadlines(session: AsyncSession, limit: int) -> list[tuple[Conversation, str | None]]:
    """The open conversations whose SLA deadline (next response, else first response, else resolution) is
    nearest, with their assignee's name: earliest deadline first, then the oldest, then by id.

    The queue index is ordered by priority, then deadline, so each priority's nearest deadlines are its
    first entries: one short index read per priority, merged here. Ordering every open conversation by
    its deadline took 117 ms with 100,000 open on SQLite.
    """
    c = Conversation
    nearest = [
        sa_select(col(c.id), col(c.queue_due_at), col(c.created_at))
        .where(_QUEUE_INDEXED, col(c.queue_rank) == -rank,
               col(c.queue_due_at) < literal_column(f"'{NO_DEADLINE}'"))  # as stored: none is later
        .order_by(col(c.queue_due_at), col(c.created_at), col(c.id))
        .limit(limit)
        .subquery()
        for rank in sorted(set(PRIORITY_RANK.values()))
    ]
    found = (await session.execute(union_all(*(sa_select(*q.c) for q in nearest)))).all()
    chosen = [row[0] for row in sorted(found, key=lambda row: (row[1], row[2], row[0]))[:limit]]
    if not chosen:
        return []
    rows = await session.execute(
        sa_select(c, col(Member.name))
        .outerjoin(Member, col(Member.id) == col(c.assignee_id))
        .where(col(c.id).in_(chosen))
    )
    by_id = {conv.id: (conv, name) for conv, name in rows.all()}
    return [by_id[i] for i in chosen if i in by_id]


def tag_names_of(conversation_id: Mapped[int | None] | int) -> ScalarSelect[str]:
    """A column for a query: the conversation's tag names in one string (``split_tags`` reads it).

    Pass ``Conversation.id`` for a column of a conversation query, or an id.
    """
    return (
        select(func.aggregate_strings(col(Tag.name), _TAG_SEPARATOR))
        .join(ConversationTag, col(ConversationTag.tag_id) == col(Tag.id))
        .where(col(ConversationTag.conversation_id) == conversation_id)
        .scalar_subquery()
    )


def split_tags(joined: str | None) -> list[str]:
    """The tag names of a ``tag_names_of`` column, sorted."""
    return sorted(joined.split(_TAG_SEPARATOR)) if joined else []


def _last_inbound_text() -> ScalarSelect[str]:
    """A conversation query's column: the text of the conversation's newest customer message."""
    return (
        select(col(Message.text))
        .where(col(Message.conversation_id) == col(Conversation.id))
        .where(col(Message.direction) == Direction.IN.value)
        .order_by(col(Message.id).desc())
        .limit(1)
        .scalar_subquery()
    )


def excerpt(text: str, length: int = EXCERPT_LENGTH) -> str:
    """One line of at most ``length`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1] + "…"


async def tags_of(session: AsyncSession, conversation_ids: list[int]) -> dict[int, list[str]]:
    """Tag names per conversation, sorted."""
    if not conversation_ids:
        return {}
    rows = await session.execute(
        select(col(ConversationTag.conversation_id), col(Tag.name))
        .join(Tag, col(Tag.id) == col(ConversationTag.tag_id))
        .where(col(ConversationTag.conversation_id).in_(conversation_ids))
        .order_by(col(Tag.name))
    )
    out: dict[int, list[str]] = {}
    for conv_id, name in rows:
        out.setdefault(conv_id, []).append(name)
    return out


async def last_inbound_texts(session: AsyncSession, conversation_ids: list[int]) -> dict[int, str]:
    """The newest customer message of each conversation."""
    if not conversation_ids:
        return {}
    newest = (
        select(func.max(col(Message.id)))
        .where(
            col(Message.conversation_id).in_(conversation_ids), col(Message.direction) == Direction.IN.value
        )
        .group_by(col(Message.conversation_id))
    )
    rows = await session.execute(
        select(col(Message.conversation_id), col(Message.text)).where(col(Message.id).in_(newest))
    )
    return {int(conv_id or 0): text for conv_id, text in rows}


@dataclass
class MessageLine:
    """A message as shown in a conversation's story."""

    id: int
    direction: str
    author: str
    text: str
    created_at: datetime
    external_id: str | None
    attachments: list[dict[str, Any]]


@dataclass
class EventLine:
    """An audit event as shown in a conversation's story."""

    type: str
    actor: str
    created_at: datetime
    data: dict[str, Any]


@dataclass
class ConversationDetail:
    """Everything about one conversation."""

    conversation: Conversation
    channel: str
    contact: Contact
    assignee: str | None
    tags: list[str]
    messages: list[MessageLine] = field(default_factory=list)
    events: list[EventLine] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """JSON form for ``inbox show --json``."""
        conv = self.conversation
        return {
            "id": conv.id,
            "status": conv.status,
            "priority": conv.priority,
            "kind": conv.kind,
            "channel": self.channel,
            "thread_key": conv.thread_key,
            "assignee": self.assignee,
            "tags": self.tags,
            "escalation_level": conv.escalation_level,
            "contact": {
                "id": self.contact.external_id,
                "handle": self.contact.handle,
                "name": self.contact.name,
            },
            "created_at": isoformat_utc(conv.created_at),
            "first_response_at": isoformat_utc(conv.first_response_at),
            "first_response_due_at": isoformat_utc(conv.first_response_due_at),
            "next_response_due_at": isoformat_utc(conv.next_response_due_at),
            "resolution_due_at": isoformat_utc(conv.resolution_due_at),
            "snoozed_until": isoformat_utc(conv.snoozed_until),
            "resolved_at": isoformat_utc(conv.resolved_at),
            "breached": list(conv.breached),
            "messages": [
                {
                    "id": m.id,
                    "direction": m.direction,
                    "author": m.author,
                    "text": m.text,
                    "created_at": isoformat_utc(m.created_at),
                    "external_id": m.external_id,
                    "attachments": m.attachments,
                }
                for m in self.messages
            ],
            "events": [
                {"type": e.type, "actor": e.actor, "created_at": isoformat_utc(e.created_at), "data": e.data}
                for e in self.events
            ],
        }


# The writer of each customer message: others join a public thread the first customer started. Made once:
# an alias made per call gave each query a new cache key, so SQLAlchemy compiled it every time.
_AUTHOR: Final = aliased(Contact, name="author")


async def conversation_detail(session: AsyncSession, conversation_id: int) -> ConversationDetail:
    """Load a conversation with its messages (oldest first) and audit events, in three queries."""
    tags = tag_names_of(col(Conversation.id))
    found = (
        await session.execute(
            sa_select(Conversation, col(Channel.name), Contact, col(Member.name), tags)
            .join(Channel, col(Channel.id) == col(Conversation.channel_id))
            .join(Contact, col(Contact.id) == col(Conversation.contact_id))
            .outerjoin(Member, col(Member.id) == col(Conversation.assignee_id))
            .where(col(Conversation.id) == conversation_id)
        )
    ).one_or_none()
    if found is None:
        raise ConversationNotFound(conversation_id)
    conv, channel, contact, assignee, tag_names = found
    who = contact_label(contact.handle, contact.name, contact.external_id)
    messages = await session.execute(
        sa_select(Message, col(Member.name), col(_AUTHOR.handle), col(_AUTHOR.name), col(_AUTHOR.external_id))
        .outerjoin(Member, col(Member.id) == col(Message.member_id))
        .outerjoin(_AUTHOR, col(_AUTHOR.id) == col(Message.contact_id))
        .where(col(Message.conversation_id) == conversation_id)
        .order_by(col(Message.created_at), col(Message.id))
    )
    events = (
        await session.execute(
            select(Event).where(col(Event.conversation_id) == conversation_id).order_by(col(Event.id))
        )
    ).scalars()
    return ConversationDetail(
        conversation=conv,
        channel=channel,
        contact=contact,
        assignee=assignee,
        tags=split_tags(tag_names),
        messages=[
            MessageLine(
                m.id or 0,
                m.direction,
                (who if external is None else contact_label(handle, name, external))
                if m.direction == Direction.IN else member or "team",
                m.text,
                m.created_at,
                m.external_id,
                list(m.attachments),
            )
            for m, member, handle, name, external in messages
        ],
        events=[EventLine(e.type, e.actor, e.created_at, dict(e.data)) for e in events],
    )
