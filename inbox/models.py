"""SQLModel tables: the durable state of Saluran (see docs/architecture.md for how they relate)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Computed, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from inbox.db_types import UTCDateTime

# Constraint names fixed up front, so later migrations can drop them by name on every database
# (SQLite's batch mode needs names; PostgreSQL would otherwise pick its own).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Kind(StrEnum):
    """How a conversation reached us."""

    DM = "dm"
    MENTION = "mention"
    COMMENT = "comment"
    EMAIL = "email"
    FORM = "form"


class Direction(StrEnum):
    """Which way a message went: from a customer, to a customer, or internal."""

    IN = "in"
    OUT = "out"
    NOTE = "note"


class Status(StrEnum):
    """Where a conversation stands."""

    OPEN = "open"
    PENDING = "pending"  # waiting on the customer
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Priority(StrEnum):
    """Urgency of a conversation; RANK orders the queue."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}

# The queue's sort key when a conversation has no deadline: later than any real one, so those come last
# within their priority (SQLite compares the stored text, which also puts it last). UTC on both databases.
NO_DEADLINE = "9999-12-31 00:00:00+00"
# The conversations the queue can show (every status but resolved): the queue index covers only these,
# and queue queries repeat this exact condition so that both databases know the index applies.
QUEUE_ROWS = "status != 'resolved'"


class Role(StrEnum):
    """A team member's role; each command names the least role it needs."""

    AGENT = "agent"
    LEAD = "lead"
    ADMIN = "admin"


ROLE_RANK = {Role.AGENT: 0, Role.LEAD: 1, Role.ADMIN: 2}


class DeliveryStatus(StrEnum):
    """Lifecycle of an outbox row."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class TimerStatus(StrEnum):
    """Lifecycle of a timer row."""

    PENDING = "pending"
    FIRING = "firing"
    FIRED = "fired"
    CANCELLED = "cancelled"


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _json(default: Any) -> Any:
    return Field(default_factory=lambda: type(default)(), sa_column=Column(JSON, nullable=False))


class Channel(SQLModel, table=True):
    """A configured source of conversations, with the connector's cursor and health."""

    __tablename__ = "channels"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    type: str = Field(max_length=40)
    settings: dict[str, Any] = _json({})
    cursor: str | None = Field(default=None, sa_type=Text)
    health: str = Field(default="unknown", max_length=20)
    health_detail: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class Contact(SQLModel, table=True):
    """A customer as known on one channel."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("channel_id", "external_id", name="uq_contacts_channel_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channels.id")
    external_id: str = Field(max_length=200)
    handle: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=300)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class Member(SQLModel, table=True):
    """A team member; rows are synced from config at start."""

    __tablename__ = "members"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    display_name: str | None = Field(default=None, max_length=200)
    role: str = Field(default=Role.AGENT.value, max_length=20)
    platform_ids: dict[str, str] = _json({})
    active: bool = Field(default=True)


class Conversation(SQLModel, table=True):
    """The unit of work: one customer thread on one channel."""

    __tablename__ = "conversations"
    __table_args__ = (
        # The queue's order, whole and per channel, so that a page of /queue reads about a page of rows
        # (inbox.queries.list_queue); resolved conversations, most of the table in time, are left out.
        Index("ix_conversations_queue", "queue_rank", "queue_due_at", "created_at", "id",
              sqlite_where=text(QUEUE_ROWS), postgresql_where=text(QUEUE_ROWS)),
        Index("ix_conversations_queue_channel", "channel_id", "queue_rank", "queue_due_at", "created_at",
              "id", sqlite_where=text(QUEUE_ROWS), postgresql_where=text(QUEUE_ROWS)),
        Index("ix_conversations_thread", "channel_id", "thread_key"),
        Index("ix_conversations_contact", "channel_id", "contact_id", "kind"),
        # Reports select by when conversations started, were first answered and were resolved.
        Index("ix_conversations_created", "created_at", "channel_id", "kind"),  # covers new per channel, kind
        # Covers the report's first responses (their period, durations, channel, assignee and policy), so
        # it reads no wide row (about 1.4 KB each with the SLA state).
        Index("ix_conversations_first_response", "first_response_at", "created_at", "channel_id",
              "assignee_id", "sla_policy", "id"),
        Index("ix_conversations_resolved", "resolved_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channels.id")
    contact_id: int = Field(foreign_key="contacts.id")
    kind: str = Field(max_length=20)
    thread_key: str | None = Field(default=None, max_length=200)
    subject: str | None = Field(default=None, max_length=300)
    status: str = Field(default=Status.OPEN.value, max_length=20)
    priority: str = Field(default=Priority.NORMAL.value, max_length=20)
    priority_rank: int = Field(default=PRIORITY_RANK[Priority.NORMAL])
    assignee_id: int | None = Field(default=None, foreign_key="members.id")
    escalation_level: int = Field(default=0)
    sla_policy: str | None = Field(default=None, max_length=100)
    first_response_due_at: datetime | None = _ts()
    next_response_due_at: datetime | None = _ts()
    resolution_due_at: datetime | None = _ts()
    # The queue sorts by these two, most urgent first: -priority_rank (an index serves it in ascending
    # order on both databases), then the deadline (next response, else first response, else resolution; else
    # NO_DEADLINE). The database computes them, so no writer can leave them stale; never assign them.
    queue_rank: int | None = Field(
        default=None, sa_column=Column(Integer, Computed("-priority_rank", persisted=True), nullable=False)
    )
    queue_due_at: datetime | None = Field(
        default=None,
        sa_column=Column(
            UTCDateTime,
            Computed(
                "coalesce(next_response_due_at, first_response_due_at, resolution_due_at, "
                f"'{NO_DEADLINE}')",
                persisted=True,
            ),
            nullable=False,
        ),
    )
    first_response_at: datetime | None = _ts()
    breached: list[str] = _json([])
    # SLA clocks (running segments, pauses, warnings, ladder progress) kept by inbox.sla.engine;
    # nullable because the core inserts conversation rows without it.
    sla_state: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # What reports count of each SLA clock, written with it by the engine (inbox.sla.outcomes): per target,
    # the date of its outcome (met: when it ended; else its deadline) and when it ended.
    first_response_outcome_at: datetime | None = _ts()
    first_response_ended_at: datetime | None = _ts()
    next_response_outcome_at: datetime | None = _ts()
    next_response_ended_at: datetime | None = _ts()
    next_response_started_at: datetime | None = _ts()
    resolution_outcome_at: datetime | None = _ts()
    resolution_ended_at: datetime | None = _ts()
    snoozed_until: datetime | None = _ts()
    last_inbound_at: datetime | None = _ts()
    last_outbound_at: datetime | None = _ts()
    resolved_at: datetime | None = _ts()
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class Tag(SQLModel, table=True):
    """A label that can be put on conversations."""

    __tablename__ = "tags"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=60, unique=True)


class ConversationTag(SQLModel, table=True):
    """Which tags a conversation carries."""

    __tablename__ = "conversation_tags"

    conversation_id: int = Field(foreign_key="conversations.id", primary_key=True)
    tag_id: int = Field(foreign_key="tags.id", primary_key=True, index=True)


class Message(SQLModel, table=True):
    """An inbound message, a public reply, or an internal note."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "external_id", name="uq_messages_channel_ext"),
        Index("ix_messages_conversation", "conversation_id", "created_at"),
        # Reports: messages per channel, direction, member and hour, read from the index alone.
        Index("ix_messages_created", "created_at", "channel_id", "direction", "member_id"),
        # Reports: the replies that answer a follow-up (inbox.follow_ups), few among all messages.
        Index("ix_messages_follow_up", "created_at", "conversation_id", "follow_up_at",
              sqlite_where=text("follow_up_at IS NOT NULL"),
              postgresql_where=text("follow_up_at IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channels.id")
    conversation_id: int | None = Field(default=None, foreign_key="conversations.id")
    external_id: str | None = Field(default=None, max_length=200)
    direction: str = Field(max_length=10)
    contact_id: int | None = Field(default=None, foreign_key="contacts.id")
    member_id: int | None = Field(default=None, foreign_key="members.id")
    text: str = Field(default="", sa_type=Text)
    attachments: list[dict[str, Any]] = _json([])
    reply_to_external_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = _ts(nullable=False)
    edited_at: datetime | None = _ts()
    # A reply that answers a customer follow-up: when the follow-up began (inbox.follow_ups keeps it).
    follow_up_at: datetime | None = _ts()


class Event(SQLModel, table=True):
    """Audit record of every action and SLA transition: who, what, when."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_conversation", "conversation_id", "id"),
        # Reports: events of a type in a period, and which conversation each is about (read from the index).
        Index("ix_events_type_created", "type", "created_at", "conversation_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversations.id")
    actor: str = Field(max_length=200)
    type: str = Field(max_length=60, index=True)
    data: dict[str, Any] = _json({})
    created_at: datetime = _ts(nullable=False, index=True)


class Delivery(SQLModel, table=True):
    """An outbox row: one side effect on a platform, sent at least once and recorded."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        # The notifier's send budget per team chat: rows queued, and rows sent, in the last window.
        Index("ix_deliveries_destination_created", "destination", "created_at"),
        Index("ix_deliveries_destination_sent", "destination", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    destination: str = Field(max_length=100)
    purpose: str = Field(max_length=40)
    payload: dict[str, Any] = _json({})
    conversation_id: int | None = Field(default=None, foreign_key="conversations.id")
    message_id: int | None = Field(default=None, foreign_key="messages.id")
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)
    status: str = Field(default=DeliveryStatus.PENDING.value, max_length=20)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = _ts(nullable=False)
    claimed_by: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = _ts()
    last_error: str | None = Field(default=None, sa_type=Text)
    platform_message_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = _ts(nullable=False)
    sent_at: datetime | None = _ts()


class Timer(SQLModel, table=True):
    """A durable due time and what it triggers (SLA steps, scheduled jobs)."""

    __tablename__ = "timers"
    __table_args__ = (
        Index("ix_timers_due", "status", "due_at"),
        # Cancelling or replanning one conversation's timers must not scan the table.
        Index("ix_timers_conversation", "conversation_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    conversation_id: int | None = Field(default=None, foreign_key="conversations.id")
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)
    data: dict[str, Any] = _json({})
    due_at: datetime = _ts(nullable=False)
    status: str = Field(default=TimerStatus.PENDING.value, max_length=20)
    claimed_by: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = _ts()
    fired_at: datetime | None = _ts()
    late: bool = Field(default=False)
    created_at: datetime = _ts(nullable=False)


class Template(SQLModel, table=True):
    """A canned reply the team can send with ``/reply ID :name``."""

    __tablename__ = "templates"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=60, unique=True)
    text: str = Field(sa_type=Text)
    created_by: str | None = Field(default=None, max_length=100)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class ChannelUsage(SQLModel, table=True):
    """Per-channel, per-period counters (e.g. X reads and writes per calendar month for the budget)."""

    __tablename__ = "channel_usage"
    __table_args__ = (UniqueConstraint("channel_id", "period", "metric", name="uq_channel_usage_key"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channels.id")
    period: str = Field(max_length=20)  # e.g. "2026-11" for a calendar month (UTC)
    metric: str = Field(max_length=60)  # e.g. "reads.posts", "writes"
    count: int = Field(default=0)
    updated_at: datetime = _ts(nullable=False)


class Lease(SQLModel, table=True):
    """Who may run something that must be unique across processes, until when."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=200)
    holder: str = Field(max_length=200)
    acquired_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)


class ConsoleRef(SQLModel, table=True):
    """A team-console message or topic the bot made: which conversation it stands for, its buttons.

    Consoles (Telegram) look a message up when a member replies to it or presses one of its buttons:
    ``buttons`` holds the command of each button in order, and the button's callback data names only
    this row and an index, so a press can run nothing but what the bot put there. ``kind`` is
    "message" (a card or an answer, by ``message_id``) or "topic" (a conversation's forum topic,
    by ``thread_id``).
    """

    __tablename__ = "console_refs"
    __table_args__ = (
        Index("ix_console_refs_message", "platform", "chat_id", "message_id"),
        Index("ix_console_refs_thread", "platform", "chat_id", "thread_id"),
        Index("ix_console_refs_conversation", "conversation_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=20)
    kind: str = Field(default="message", max_length=20)
    chat_id: str = Field(max_length=100)
    message_id: str | None = Field(default=None, max_length=100)
    thread_id: str | None = Field(default=None, max_length=100)
    conversation_id: int | None = Field(default=None, foreign_key="conversations.id")
    buttons: list[str] = _json([])
    created_at: datetime = _ts(nullable=False)


metadata = SQLModel.metadata
