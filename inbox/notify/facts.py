"""What notices say about a conversation: its facts read once per batch, cards built per chat language."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from inbox.i18n import t
from inbox.models import Channel, Contact, Conversation, Member, Status
from inbox.queries import contact_label, excerpt, last_inbound_texts, tags_of
from inbox.views import Button, ConversationCard, DigestItem

_CHUNK = 500


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


def nearest_due(conv: Conversation) -> datetime | None:
    """The deadline the queue sorts by: next response, else first response, else resolution."""
    return conv.next_response_due_at or conv.first_response_due_at or conv.resolution_due_at


async def load_facts(session: AsyncSession, ids: Sequence[int]) -> dict[int, ConversationFacts]:
    """Facts of these conversations, in a few queries whatever their number."""
    found: dict[int, ConversationFacts] = {}
    unique = sorted(set(ids))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start:start + _CHUNK]
        rows = (await session.execute(
            select(Conversation, col(Channel.name), col(Member.name), Contact)
            .join(Channel, col(Channel.id) == col(Conversation.channel_id))
            .join(Contact, col(Contact.id) == col(Conversation.contact_id))
            .outerjoin(Member, col(Member.id) == col(Conversation.assignee_id))
            .where(col(Conversation.id).in_(chunk))
        )).all()
        tags = await tags_of(session, chunk)
        texts = await last_inbound_texts(session, chunk)
        for conv, channel, assignee, contact in rows:
            assert conv.id is not None  # loaded from the database
            found[conv.id] = ConversationFacts(
                id=conv.id, status=conv.status, priority=conv.priority, channel=channel, kind=conv.kind,
                contact=contact_label(contact.handle, contact.name, contact.external_id),
                excerpt=excerpt(texts.get(conv.id, "")), assignee=assignee,
                tags=tuple(tags.get(conv.id, [])), due_at=nearest_due(conv), breached=tuple(conv.breached),
                escalation_level=conv.escalation_level,
                snoozed_until=conv.snoozed_until if conv.status == Status.SNOOZED.value else None,
            )
    return found


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
