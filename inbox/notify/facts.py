"""What notices say about a conversation: its facts read once per batch, cards built per chat language."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import cast

from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from inbox.db_bulk import ids_condition, ids_param
from inbox.i18n import t
from inbox.models import Channel, Contact, Conversation, Member, Status
from inbox.queries import contact_label, excerpt, last_inbound_texts, tags_of
from inbox.sla.rows import AnyConversation
from inbox.views import Button, ConversationCard, DigestItem

_CHUNK = 500
_DETAIL_CHUNK = 100  # full facts read at once: more than a window's single messages and digest lines


@dataclass(frozen=True, slots=True)
class ConversationFacts:
    """The parts of a conversation a notice shows."""

    id: int
    status: str
    priority: str
    channel: str
    kind: str
    contact: str
    excerpt: str
    assignee: str | None
    tags: tuple[str, ...]
    due_at: datetime | None
    breached: tuple[str, ...]
    escalation_level: int
    snoozed_until: datetime | None

    @property
    def urgent(self) -> bool:
        """Urgent conversations use the budget's priority reserve."""
        return self.priority == "urgent"


def nearest_due(conv: AnyConversation) -> datetime | None:
    """The deadline the queue sorts by: next response, else first response, else resolution."""
    return conv.next_response_due_at or conv.first_response_due_at or conv.resolution_due_at


async def load_facts(session: AsyncSession, ids: Sequence[int]) -> dict[int, ConversationFacts]:
    """Facts of these conversations, in a few queries whatever their number."""
    unique = sorted(set(ids))
    convs: list[Conversation] = []
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start:start + _CHUNK]
        convs += (await session.execute(
            select(Conversation).where(col(Conversation.id).in_(chunk))
        )).scalars().all()
    return await facts_of(session, convs)


async def facts_of(session: AsyncSession, convs: Sequence[AnyConversation]) -> dict[int, ConversationFacts]:
    """Facts of conversations the caller has loaded (the SLA scheduler's batch): their own columns come
    from the objects as they are now; names, tags and texts from a few queries of plain columns."""
    found: dict[int, ConversationFacts] = {}
    unique = {c.id: c for c in convs if c.id is not None}
    ids = sorted(unique)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        rows = (await session.execute(
            # SQLAlchemy's select: SQLModel's is typed for at most four columns.
            sa_select(col(Conversation.id), col(Channel.name), col(Member.name), col(Contact.handle),
                   col(Contact.name), col(Contact.external_id))
            .join(Channel, col(Channel.id) == col(Conversation.channel_id))
            .join(Contact, col(Contact.id) == col(Conversation.contact_id))
            .outerjoin(Member, col(Member.id) == col(Conversation.assignee_id))
            .where(col(Conversation.id).in_(chunk))
        )).all()
        tags = await tags_of(session, chunk)
        texts = await last_inbound_texts(session, chunk)
        for conv_id, channel, assignee, handle, name, external_id in rows:
            assert conv_id is not None  # a primary key
            conv = unique[conv_id]
            found[conv_id] = ConversationFacts(
                id=conv_id, status=conv.status, priority=conv.priority, channel=channel, kind=conv.kind,
                contact=contact_label(handle, name, external_id), excerpt=excerpt(texts.get(conv_id, "")),
                assignee=assignee, tags=tuple(tags.get(conv_id, [])), due_at=nearest_due(conv),
                breached=tuple(conv.breached), escalation_level=conv.escalation_level,
                snoozed_until=conv.snoozed_until if conv.status == Status.SNOOZED.value else None,
            )
    return found


@dataclass(frozen=True, slots=True)
class Heard:
    """What deciding about a notice needs of its conversation: who hears it (the channel) and whom it
    mentions (the assignee)."""

    id: int
    channel: str
    assignee: str | None


class BatchFacts:
    """A batch's conversations for notices most of which are only counted in a digest.

    ``heard`` (channel and assignee) is read for all of them at once; the full facts (contact, excerpt,
    tags) only when a notice is built (sent alone or listed in the digest), for a chunk of conversations
    at a time in batch order, as the budget takes them in that order.
    """

    def __init__(self, session: AsyncSession | None, convs: Sequence[AnyConversation],
                 heard: dict[int, Heard], full: dict[int, ConversationFacts] | None = None) -> None:
        self.session = session
        self.heard = heard
        self._convs = {c.id: c for c in convs if c.id is not None and c.id in heard}
        self._order = list(self._convs)
        self._position = {cid: index for index, cid in enumerate(self._order)}
        self._full: dict[int, ConversationFacts] = dict(full or {})

    @classmethod
    async def read(cls, session: AsyncSession, convs: Sequence[AnyConversation]) -> BatchFacts:
        """Channel and assignee of conversations the caller has loaded (as ``facts_of`` takes them)."""
        ids = sorted({c.id for c in convs if c.id is not None})
        heard: dict[int, Heard] = {}
        if ids:
            # One statement through the driver, the ids as one parameter (``ids_condition``).
            connection = await session.connection()
            dialect = connection.dialect.name
            result = await connection.exec_driver_sql(
                "SELECT c.id, ch.name, m.name FROM conversations c JOIN channels ch ON ch.id = c.channel_id"
                f" LEFT OUTER JOIN members m ON m.id = c.assignee_id WHERE {ids_condition('c.id', dialect)}",
                (ids_param(ids, dialect),))
            rows = cast(list[tuple[int, str, str | None]], result.all())
            for conv_id, channel, assignee in rows:
                heard[conv_id] = Heard(conv_id, channel, assignee)
        return cls(session, convs, heard)

    @classmethod
    def of(cls, facts: dict[int, ConversationFacts]) -> BatchFacts:
        """Facts already read in full."""
        heard = {cid: Heard(cid, f.channel, f.assignee) for cid, f in facts.items()}
        return cls(None, [], heard, facts)

    async def full(self, conversation_id: int) -> ConversationFacts:
        """The conversation's full facts, read with those of the next ones in the batch not read yet."""
        if conversation_id not in self._full:
            assert self.session is not None
            start = self._position[conversation_id]
            chunk = [i for i in self._order[start:start + _DETAIL_CHUNK] if i not in self._full]
            self._full.update(await facts_of(self.session, [self._convs[i] for i in chunk]))
        return self._full[conversation_id]


def notice_buttons(lang: str, conversation_id: int, status: str) -> tuple[Button, ...]:
    """Buttons under a conversation in a team chat; whoever presses one acts as themselves."""
    show = Button(t(lang, "button.show"), f"/show {conversation_id}")
    if status == Status.RESOLVED.value:
        return show, Button(t(lang, "button.reopen"), f"/reopen {conversation_id}")
    return (
        Button(t(lang, "button.take"), f"/assign {conversation_id} me", "primary"),
        Button(t(lang, "button.snooze_1h"), f"/snooze {conversation_id} 1h"),
        Button(t(lang, "button.escalate"), f"/escalate {conversation_id}"),
        Button(t(lang, "button.resolve"), f"/resolve {conversation_id}", "danger"),
        show,
    )


def card(facts: ConversationFacts, lang: str, tz: tzinfo, now: datetime) -> ConversationCard:
    """The conversation's card in ``lang``, times in the team's timezone, ``remaining`` as of ``now``."""
    due = facts.due_at
    return ConversationCard(
        lang=lang, id=facts.id, status=facts.status, priority=facts.priority, channel=facts.channel,
        kind=facts.kind, contact=facts.contact, excerpt=facts.excerpt, assignee=facts.assignee,
        tags=facts.tags, due_at=None if due is None else due.astimezone(tz),
        remaining=None if due is None else due - now, breached=facts.breached,
        escalation_level=facts.escalation_level,
        snoozed_until=None if facts.snoozed_until is None else facts.snoozed_until.astimezone(tz),
        buttons=notice_buttons(lang, facts.id, facts.status),
    )


def digest_item(facts: ConversationFacts, kind: str) -> DigestItem:
    """A new or reopened conversation as a digest line."""
    return DigestItem(kind=kind, conversation_id=facts.id, channel=facts.channel, contact=facts.contact,
                      excerpt=facts.excerpt)
