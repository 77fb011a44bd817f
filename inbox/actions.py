"""Conversation actions: reply, note, tag, assign, escalate, prioritise, snooze, resolve, reopen.

Each action runs in one transaction, writes an audit event naming its actor, and raises an
InboxError with a message fit for chat when it makes no sense. Hooks (the SLA engine, the
notifier) run inside the same transaction after the change.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import (
    CursorResult,
    Integer,
    ScalarSelect,
    Select,
    bindparam,
    delete,
    insert,
    update,
)
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from inbox.audit import batched, record
from inbox.clock import Clock, isoformat_utc
from inbox.db import Database
from inbox.errors import ConversationNotFound, InvalidAction, UnknownMember
from inbox.events import Actor
from inbox.follow_ups import INSERT_REPLY, keep_follow_ups
from inbox.models import (
    PRIORITY_RANK,
    Channel,
    Contact,
    Conversation,
    ConversationTag,
    Direction,
    Member,
    Message,
    Priority,
    Status,
    Tag,
    Timer,
    TimerStatus,
)
from inbox.outbox import enqueue
from inbox.queries import split_tags, tag_names_of
from inbox.textsafe import storable

MAX_REPLY_LENGTH = 20_000
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_:.-]{0,59}$")
SNOOZE_TIMER = "snooze.wake"


@dataclass(frozen=True, slots=True)
class Change:
    """What an action did, handed to hooks."""

    action: str
    conversation: Conversation
    actor: Actor
    at: datetime
    detail: dict[str, Any]
    # The conversation's tags after the action, when the action read them anyway (else None): hooks
    # that need them (the SLA engine's policy match) need not read them again.
    tags: frozenset[str] | None = None


ActionHook = Callable[[AsyncSession, Change], Awaitable[None]]


def _reply_target() -> tuple[ScalarSelect[Any], ...]:
    """Columns to load with a conversation to reply to: channel, recipient, the message answered, tags."""
    conv_id = col(Conversation.id)
    answered = (
        select(col(Message.external_id))
        .where(col(Message.conversation_id) == conv_id, col(Message.direction) == Direction.IN.value)
        .order_by(col(Message.created_at).desc(), col(Message.id).desc())
        .limit(1)
    )
    recipient = select(col(Contact.external_id)).where(col(Contact.id) == col(Conversation.contact_id))
    return (
        select(col(Channel.name)).where(col(Channel.id) == col(Conversation.channel_id)).scalar_subquery(),
        recipient.scalar_subquery(),
        answered.scalar_subquery(),
        tag_names_of(conv_id),
    )


def _load_statement(*columns: ScalarSelect[Any]) -> Select[Any]:
    """Lock and load one conversation (bound as ``conversation_id``), plus ``columns`` (subqueries on it)."""
    return (
        sa_select(Conversation, *columns)
        .where(col(Conversation.id) == bindparam("conversation_id", type_=Integer))
        .with_for_update(of=Conversation)
    )


# The statements of every action, built once: building one and its cache key costs more CPU than running
# it (on SQLite, as much as two statements' round trips).
_LOAD: Final = _load_statement()
_LOAD_TAGGED: Final = _load_statement(tag_names_of(col(Conversation.id)))
_LOAD_REPLY: Final = _load_statement(*_reply_target())


async def _locked(
    session: AsyncSession, statement: Select[Any], conversation_id: int
) -> tuple[Conversation, tuple[Any, ...]]:
    """Run a ``_load_statement``: the locked conversation and its extra columns, or ConversationNotFound."""
    row = (await session.execute(statement, {"conversation_id": conversation_id})).one_or_none()
    if row is None:
        raise ConversationNotFound(conversation_id)
    return row[0], tuple(row[1:])


# Tags the conversation (``conversation_id``) with the existing tags of ``names``. On the table, not the
# entity: an ORM INSERT given parameters would be a bulk INSERT of them.
_ATTACH: Final = insert(ConversationTag.__table__).from_select(  # type: ignore[attr-defined]
    ["conversation_id", "tag_id"],
    select(bindparam("conversation_id", type_=Integer), col(Tag.id))
    .where(col(Tag.name).in_(bindparam("names", expanding=True))),
)


def normalise_tag(raw: str) -> str:
    """Lower-case a tag and check its characters, or raise InvalidAction."""
    tag = raw.strip().lstrip("#").lower()
    if not TAG_PATTERN.match(tag):
        raise InvalidAction(
            f"'{raw}' is not a valid tag: use letters, digits, '-', '_', ':' or '.' (at most 60)"
        )
    return tag


class Actions:
    """The actions a team member (or the system) can take on a conversation."""

    def __init__(self, db: Database, clock: Clock, hooks: Sequence[ActionHook] = ()) -> None:
        self.db = db
        self.clock = clock
        # Keep the caller's list itself, so hooks installed later run too.
        self.hooks = hooks if isinstance(hooks, list) else list(hooks)

    # --- plumbing -------------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        """One action's transaction; its audit events go in with one statement at the end."""
        async with self.db.transaction() as session, batched(session):
            yield session

    async def _load(self, session: AsyncSession, conversation_id: int) -> Conversation:
        return (await _locked(session, _LOAD, conversation_id))[0]

    async def _load_tagged(
        self, session: AsyncSession, conversation_id: int
    ) -> tuple[Conversation, set[str]]:
        """Lock and load the conversation with its tag names, in one statement."""
        conv, (tag_names,) = await _locked(session, _LOAD_TAGGED, conversation_id)
        return conv, set(split_tags(tag_names))

    async def _finish(
        self, session: AsyncSession, conv: Conversation, actor: Actor, action: str, *,
        known_tags: frozenset[str] | None = None, **detail: Any,
    ) -> None:
        now = self.clock.now()
        conv.updated_at = now
        session.add(conv)
        await record(session, actor, f"conversation.{action}", now, conv.id, **detail)
        change = Change(action, conv, actor, now, detail, known_tags)
        # The hooks' queries do not flush: the action's and the hooks' changes to the conversation then
        # reach the database in one UPDATE, when the transaction ends.
        with session.no_autoflush:
            for hook in self.hooks:
                await hook(session, change)

    @staticmethod
    def _require_not_resolved(conv: Conversation, what: str) -> None:
        if conv.status == Status.RESOLVED:
            raise InvalidAction(f"conversation #{conv.id} is resolved; reopen it before you {what}")

    async def _member(self, session: AsyncSession, name: str) -> Member:
        member = (
            await session.execute(
                select(Member).where(col(Member.name) == name, col(Member.active) == True)  # noqa: E712
            )
        ).scalar_one_or_none()
        if member is None:
            raise UnknownMember(name)
        return member

    # --- messages -------------------------------------------------------------------------

    async def reply(self, actor: Actor, conversation_id: int, text: str) -> Message:
        """Store a public reply and queue its delivery to the customer."""
        body = storable(text).strip()
        if not body:
            raise InvalidAction("a reply needs some text")
        if len(body) > MAX_REPLY_LENGTH:
            raise InvalidAction(f"a reply can be at most {MAX_REPLY_LENGTH} characters")
        async with self._transaction() as session:
            conv, (channel, recipient, reply_to, tag_names) = await _locked(
                session, _LOAD_REPLY, conversation_id
            )
            self._require_not_resolved(conv, "reply")
            now = self.clock.now()
            message = await self._store_reply(session, conv, actor, body, now)
            await self._queue_reply(session, conv, message, now, channel, recipient, reply_to)
            if conv.first_response_at is None:
                conv.first_response_at = now
            conv.last_outbound_at = now
            await self._finish(session, conv, actor, "replied", known_tags=frozenset(split_tags(tag_names)),
                               message_id=message.id)
            return message

    @staticmethod
    async def _store_reply(
        session: AsyncSession, conv: Conversation, actor: Actor, body: str, now: datetime
    ) -> Message:
        """Insert the reply with its follow-up round in one statement (not an INSERT, then an UPDATE)."""
        message = Message(channel_id=conv.channel_id, conversation_id=conv.id, direction=Direction.OUT.value,
                          member_id=actor.member_id, text=body, created_at=now)
        params = {"r_channel_id": message.channel_id, "r_conversation": message.conversation_id,
                  "r_direction": message.direction, "r_member_id": message.member_id, "r_text": message.text,
                  "r_attachments": message.attachments, "r_at": now}
        message.id, message.follow_up_at, replied_later = (await session.execute(INSERT_REPLY, params)).one()
        if replied_later:  # rare: a reply dated later, whose round starts differently now
            await keep_follow_ups(session, [(conv.id, now)])
        return message

    @staticmethod
    async def _queue_reply(
        session: AsyncSession, conv: Conversation, message: Message, now: datetime, channel: str,
        recipient: str, reply_to: str | None,
    ) -> None:
        await enqueue(
            session,
            destination=channel,
            purpose="reply",
            now=now,
            conversation_id=conv.id,
            message_id=message.id,
            payload={
                "text": message.text,
                "recipient": recipient,
                "reply_to": reply_to,
                "thread_key": conv.thread_key,
                "kind": conv.kind,
            },
        )

    async def note(self, actor: Actor, conversation_id: int, text: str) -> Message:
        """Store an internal note; nothing is sent to the customer."""
        body = storable(text).strip()
        if not body:
            raise InvalidAction("a note needs some text")
        async with self._transaction() as session:
            conv = await self._load(session, conversation_id)
            message = Message(
                channel_id=conv.channel_id,
                conversation_id=conv.id,
                direction=Direction.NOTE.value,
                member_id=actor.member_id,
                text=body,
                created_at=self.clock.now(),
            )
            session.add(message)
            await session.flush()
            await self._finish(session, conv, actor, "noted", message_id=message.id)
            return message

    # --- labels and people ----------------------------------------------------------------

    async def tag(self, actor: Actor, conversation_id: int, tags: Sequence[str]) -> list[str]:
        """Add tags; returns the tags that were new on the conversation."""
        names = sorted({normalise_tag(t) for t in tags})
        if not names:
            raise InvalidAction("name at least one tag")
        async with self._transaction() as session:
            conv, current = await self._load_tagged(session, conversation_id)
            added = [n for n in names if n not in current]
            if added:
                await self._attach(session, conv.id or 0, added)
                await self._finish(session, conv, actor, "tagged", known_tags=frozenset({*current, *added}),
                                   tags=added)
            return added

    async def untag(self, actor: Actor, conversation_id: int, tags: Sequence[str]) -> list[str]:
        """Remove tags; returns the tags that were removed."""
        names = sorted({normalise_tag(t) for t in tags})
        async with self._transaction() as session:
            conv, current = await self._load_tagged(session, conversation_id)
            missing = [n for n in names if n not in current]
            if missing:
                raise InvalidAction(f"conversation #{conv.id} has no tag {', '.join(missing)}")
            await session.execute(
                delete(ConversationTag).where(
                    col(ConversationTag.conversation_id) == conv.id,
                    col(ConversationTag.tag_id).in_(select(col(Tag.id)).where(col(Tag.name).in_(names))),
                )
            )
            await self._finish(session, conv, actor, "untagged", known_tags=frozenset(current - set(names)),
                               tags=names)
            return names

    @staticmethod
    async def _attach(session: AsyncSession, conversation_id: int, names: Sequence[str]) -> None:
        """Put the tags on the conversation, creating those used for the first time."""
        attached = await session.execute(_ATTACH, {"conversation_id": conversation_id, "names": list(names)})
        if cast(CursorResult[Any], attached).rowcount == len(names):
            return  # all of them existed: the usual case, one statement
        known = set((await session.execute(select(col(Tag.name)).where(col(Tag.name).in_(names)))).scalars())
        for name in names:
            if name not in known:
                tag = Tag(name=name)
                session.add(tag)
                await session.flush()
                await session.execute(insert(ConversationTag).values(conversation_id=conversation_id,
                                                                     tag_id=tag.id))

    async def assign(self, actor: Actor, conversation_id: int, member_name: str) -> Member:
        """Assign the conversation to a team member."""
        async with self._transaction() as session:
            member = await self._member(session, member_name)
            conv = await self._load(session, conversation_id)
            if conv.assignee_id == member.id:
                raise InvalidAction(f"conversation #{conv.id} is already assigned to {member.name}")
            previous = conv.assignee_id
            conv.assignee_id = member.id
            await self._finish(
                session, conv, actor, "assigned", member=member.name, previous_member_id=previous
            )
            return member

    async def unassign(self, actor: Actor, conversation_id: int) -> None:
        """Remove the assignee."""
        async with self._transaction() as session:
            conv = await self._load(session, conversation_id)
            if conv.assignee_id is None:
                raise InvalidAction(f"conversation #{conv.id} is not assigned")
            previous = conv.assignee_id
            conv.assignee_id = None
            await self._finish(session, conv, actor, "unassigned", previous_member_id=previous)

    # --- urgency --------------------------------------------------------------------------

    async def escalate(self, actor: Actor, conversation_id: int, reason: str = "") -> int:
        """Raise the escalation level by one; returns the new level."""
        async with self._transaction() as session:
            conv = await self._load(session, conversation_id)
            self._require_not_resolved(conv, "escalate")
            conv.escalation_level += 1
            await self._finish(
                session, conv, actor, "escalated", level=conv.escalation_level, reason=reason.strip() or None
            )
            return conv.escalation_level

    async def set_priority(self, actor: Actor, conversation_id: int, priority: str) -> None:
        """Set low, normal, high or urgent."""
        try:
            value = Priority(priority.strip().lower())
        except ValueError:
            raise InvalidAction(f"'{priority}' is not a priority: use low, normal, high or urgent") from None
        async with self._transaction() as session:
            conv = await self._load(session, conversation_id)
            if conv.priority == value:
                raise InvalidAction(f"conversation #{conv.id} is already {value.value}")
            previous = conv.priority
            conv.priority, conv.priority_rank = value.value, PRIORITY_RANK[value]
            await self._finish(session, conv, actor, "prioritised", priority=value.value, previous=previous)

    # --- status ---------------------------------------------------------------------------

    async def snooze(self, actor: Actor, conversation_id: int, until: datetime) -> None:
        """Hide the conversation until ``until``; a customer message wakes it earlier."""
        now = self.clock.now()
        if until <= now:
            raise InvalidAction("cannot snooze into the past: pick a later time")
        async with self._transaction() as session:
            conv = await self._load(session, conversation_id)
            self._require_not_resolved(conv, "snooze")
            conv.status, conv.snoozed_until = Status.SNOOZED.value, until
            await self._cancel_timers(session, conv.id or 0, SNOOZE_TIMER)
            session.add(Timer(kind=SNOOZE_TIMER, conversation_id=conv.id, due_at=until, created_at=now))
            await self._finish(session, conv, actor, "snoozed", until=isoformat_utc(until))

    async def mark_pending(self, actor: Actor, conversation_id: int) -> None:
        """Mark as waiting on the customer."""
        async with self._transaction() as session:
            conv = await self._load(session, conversation_id)
            self._require_not_resolved(conv, "mark it pending")
            if conv.status == Status.PENDING:
                raise InvalidAction(f"conversation #{conv.id} is already pending")
            await self._wake(session, conv)
            conv.status = Status.PENDING.value
            await self._finish(session, conv, actor, "pending")

    async def resolve(self, actor: Actor, conversation_id: int) -> None:
        """Close the conversation; every timer on it stops."""
        async with self._transaction() as session:
            conv = await self._load(session, conversation_id)
            if conv.status == Status.RESOLVED:
                raise InvalidAction(f"conversation #{conv.id} is already resolved")
            now = self.clock.now()
            conv.status, conv.resolved_at, conv.snoozed_until = Status.RESOLVED.value, now, None
            await self._cancel_timers(session, conv.id or 0)
            await self._finish(session, conv, actor, "resolved")

    async def reopen(self, actor: Actor, conversation_id: int) -> None:
        """Open a resolved, pending or snoozed conversation again."""
        async with self._transaction() as session:
            conv = await self._load(session, conversation_id)
            if conv.status == Status.OPEN:
                raise InvalidAction(f"conversation #{conv.id} is already open")
            previous = conv.status
            await self._wake(session, conv)
            conv.status, conv.resolved_at = Status.OPEN.value, None
            await self._finish(session, conv, actor, "reopened", previous=previous)

    async def _wake(self, session: AsyncSession, conv: Conversation) -> None:
        if conv.status == Status.SNOOZED:
            conv.snoozed_until = None
            await self._cancel_timers(session, conv.id or 0, SNOOZE_TIMER)

    @staticmethod
    async def _cancel_timers(session: AsyncSession, conversation_id: int, kind: str | None = None) -> None:
        query = update(Timer).where(
            col(Timer.conversation_id) == conversation_id,
            col(Timer.status) == TimerStatus.PENDING.value,
        )
        if kind is not None:
            query = query.where(col(Timer.kind) == kind)
        await session.execute(query.values(status=TimerStatus.CANCELLED.value))
