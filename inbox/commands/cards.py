"""Building conversation cards and their buttons, shared by the queue, /show and confirmations."""

from __future__ import annotations

from datetime import datetime

from inbox.commands.context import Context
from inbox.models import Conversation, Status
from inbox.queries import ConversationDetail, QueueItem, contact_label, excerpt
from inbox.views import Button, ConversationCard


def nearest_due(conv: Conversation | QueueItem) -> datetime | None:
    """The deadline the queue sorts by: next response, else first response, else resolution."""
    return conv.next_response_due_at or conv.first_response_due_at or conv.resolution_due_at


def card_buttons(ctx: Context, conversation_id: int, status: str, assignee: str | None, *,
                 show: bool = True) -> tuple[Button, ...]:
    """The actions that make sense on a conversation in this state, as command buttons."""
    buttons = []
    if show:
        buttons.append(Button(ctx.t("button.show"), f"/show {conversation_id}"))
    if status != Status.RESOLVED and assignee != ctx.member.name:
        buttons.append(Button(ctx.t("button.take"), f"/assign {conversation_id} me", "primary"))
    if status == Status.RESOLVED:
        buttons.append(Button(ctx.t("button.reopen"), f"/reopen {conversation_id}"))
    else:
        buttons.append(Button(ctx.t("button.resolve"), f"/resolve {conversation_id}", "danger"))
    return tuple(buttons)


def card_from_item(ctx: Context, item: QueueItem) -> ConversationCard:
    """A queue line as a card."""
    due = nearest_due(item)
    return ConversationCard(
        lang=ctx.lang, id=item.id, status=item.status, priority=item.priority, channel=item.channel,
        kind=item.kind, contact=item.contact, excerpt=item.excerpt, assignee=item.assignee,
        tags=tuple(item.tags), due_at=ctx.local(due), remaining=ctx.remaining(due),
        breached=tuple(item.breached), escalation_level=item.escalation_level,
        buttons=card_buttons(ctx, item.id, item.status, item.assignee),
    )


def card_from_detail(
    ctx: Context, detail: ConversationDetail, *, show_button: bool = True
) -> ConversationCard:
    """A conversation's card, from its full detail."""
    conv = detail.conversation
    assert conv.id is not None  # loaded from the database
    last_in = next((m.text for m in reversed(detail.messages) if m.direction == "in"), "")
    due = nearest_due(conv)
    contact = detail.contact
    return ConversationCard(
        lang=ctx.lang, id=conv.id, status=conv.status, priority=conv.priority, channel=detail.channel,
        kind=conv.kind, contact=contact_label(contact.handle, contact.name, contact.external_id),
        excerpt=excerpt(last_in), assignee=detail.assignee, tags=tuple(detail.tags),
        due_at=ctx.local(due), remaining=ctx.remaining(due), breached=tuple(conv.breached),
        escalation_level=conv.escalation_level,
        snoozed_until=ctx.local(conv.snoozed_until) if conv.status == Status.SNOOZED else None,
        buttons=card_buttons(ctx, conv.id, conv.status, detail.assignee, show=show_button),
    )
