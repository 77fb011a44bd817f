"""Read models: the queue of open work and the full story of one conversation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from inbox.clock import isoformat_utc
from inbox.errors import ConversationNotFound
from inbox.models import (
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
    due = func.coalesce(
        col(Conversation.next_response_due_at),
        col(Conversation.first_response_due_at),
        col(Conversation.resolution_due_at),
    )
    workable = or_(
        col(Conversation.status) == Status.OPEN.value,
        and_(col(Conversation.status) == Status.SNOOZED.value, col(Conversation.snoozed_until) <= now),
    )
    if filt.include_waiting:
        workable = col(Conversation.status) != Status.RESOLVED.value
    query = (
        select(Conversation, col(Channel.name), col(Member.name), Contact)
        .join(Channel, col(Channel.id) == col(Conversation.channel_id))
        .join(Contact, col(Contact.id) == col(Conversation.contact_id))
        .outerjoin(Member, col(Member.id) == col(Conversation.assignee_id))
        .where(workable)
        .order_by(
            col(Conversation.priority_rank).desc(),
            due.is_(None),
            due,
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
        tagged = (
            select(col(ConversationTag.conversation_id))
            .join(Tag, col(Tag.id) == col(ConversationTag.tag_id))
            .where(col(Tag.name) == filt.tag.lower())
        )
        query = query.where(col(Conversation.id).in_(tagged))
    rows = (await session.execute(query)).all()
    ids = [int(conv.id or 0) for conv, *_ in rows]
    tags = await tags_of(session, ids)
    excerpts = await last_inbound_texts(session, ids)
    return [
        QueueItem(
            id=int(conv.id or 0),
            status=conv.status,
            priority=conv.priority,
            channel=channel,
            kind=conv.kind,
            assignee=assignee,
            tags=tags.get(int(conv.id or 0), []),
            created_at=conv.created_at,
            first_response_due_at=conv.first_response_due_at,
            next_response_due_at=conv.next_response_due_at,
            resolution_due_at=conv.resolution_due_at,
            breached=list(conv.breached),
            escalation_level=conv.escalation_level,
            contact=contact_label(contact.handle, contact.name, contact.external_id),
            excerpt=excerpt(excerpts.get(int(conv.id or 0), "")),
        )
        for conv, channel, assignee, contact in rows
    ]


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


async def conversation_detail(session: AsyncSession, conversation_id: int) -> ConversationDetail:
    """Load a conversation with its messages (oldest first) and audit events."""
    conv = await session.get(Conversation, conversation_id)
    if conv is None:
        raise ConversationNotFound(conversation_id)
    channel = await session.get(Channel, conv.channel_id)
    contact = await session.get(Contact, conv.contact_id)
    assert channel is not None and contact is not None  # foreign keys guarantee both
    assignee = await session.get(Member, conv.assignee_id) if conv.assignee_id else None
    who = contact_label(contact.handle, contact.name, contact.external_id)
    members = {m.id: m.name for m in (await session.execute(select(Member))).scalars()}
    messages = (
        await session.execute(
            select(Message)
            .where(col(Message.conversation_id) == conversation_id)
            .order_by(col(Message.created_at), col(Message.id))
        )
    ).scalars()
    events = (
        await session.execute(
            select(Event).where(col(Event.conversation_id) == conversation_id).order_by(col(Event.id))
        )
    ).scalars()
    tags = await tags_of(session, [conversation_id])
    return ConversationDetail(
        conversation=conv,
        channel=channel.name,
        contact=contact,
        assignee=assignee.name if assignee else None,
        tags=tags.get(conversation_id, []),
        messages=[
            MessageLine(
                m.id or 0,
                m.direction,
                who if m.direction == Direction.IN else members.get(m.member_id or 0, "team"),
                m.text,
                m.created_at,
                m.external_id,
                list(m.attachments),
            )
            for m in messages
        ],
        events=[EventLine(e.type, e.actor, e.created_at, dict(e.data)) for e in events],
    )
