"""Views survive a trip through JSON (as they do through an outbox payload), zone names included."""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from inbox import views
from inbox.render_text import render
from inbox.view_codec import ViewCodecError, dump, load
from inbox.views import (
    BudgetNotice,
    Button,
    Confirmation,
    ConversationCard,
    ConversationDetailView,
    ConversationNotice,
    Digest,
    DigestItem,
    ErrorView,
    EventItem,
    FailedDeliveryNotice,
    HealthNotice,
    HelpEntry,
    HelpView,
    MessageItem,
    QueuePage,
    SlaDeadline,
    SlaLine,
    SlaNotice,
    SlaOverview,
    SlaView,
    TemplateItem,
    TemplateList,
    TemplateView,
    View,
)

WIB = ZoneInfo("Asia/Jakarta")
AT = datetime(2026, 11, 2, 16, 0, tzinfo=WIB)
CARD = ConversationCard(
    lang="id", id=12, status="open", priority="high", channel="support", kind="dm", contact="@joe",
    excerpt="Paket saya belum datang", assignee="carol", tags=("billing", "vip"), due_at=AT,
    remaining=timedelta(minutes=-3, microseconds=7), breached=("first_response",), escalation_level=1,
    snoozed_until=datetime(2026, 11, 3, 1, 0, tzinfo=UTC),
    buttons=(Button("Ambil", "/assign 12 me", "primary"), Button("Lihat", "/show 12")),
)

VIEWS: list[View] = [
    CARD,
    QueuePage(filters="mine #vip", page=2, page_size=10, cards=(CARD,), has_next=True,
              buttons=(Button("Next »", "/queue mine #vip page 3"),)),
    ConversationDetailView(card=CARD, subject="Order", older_messages=3,
                           messages=(MessageItem(direction="in", author="@joe", text="hi\nthere", at=AT,
                                                 attachments=("photo",)),),
                           events=(EventItem(type="conversation.created", actor="system:ingest", at=AT),)),
    Confirmation(message="#12 resolved.", conversation_id=12, buttons=(Button("Reopen", "/reopen 12"),)),
    ErrorView(message="Unknown command /x.", kind="unknown_command", usage="/help", suggestion="help"),
    HelpView(entries=(HelpEntry(name="template", usage="/template list", summary="Canned replies",
                                role="agent", aliases=("t",), example="/template list",
                                subcommand_roles=(("add", "lead"), ("remove", "lead"))),)),
    TemplateList(templates=(TemplateItem(name="welcome", text="Hi {name}"),)),
    TemplateView(template=TemplateItem(name="welcome", text="Hi {name}"), placeholders=("name",)),
    SlaView(conversation_id=12, status="open", policy="vip", first_response_at=None,
            breached=("resolution",),
            deadlines=(SlaDeadline(name="resolution", due_at=AT, remaining=timedelta(hours=-1),
                                   breached=True),)),
    SlaOverview(lines=(SlaLine(conversation_id=12, priority="urgent", assignee=None, deadline="resolution",
                               due_at=AT, remaining=timedelta(seconds=90)),)),
    ConversationNotice(event="reopened", card=CARD, mentions=("carol",)),
    SlaNotice(event="escalation", card=CARD, target="first_response", due_at=AT,
              remaining=timedelta(minutes=-30), step=2, urgent=True, priority_from="normal",
              priority_to="high", escalation_level=2, late=True, deferred=True, mentions=("bob", "alice")),
    Digest(start=AT, end=AT + timedelta(minutes=1), counts=(("sla", 1), ("new", 37)),
           items=(DigestItem(kind="sla", conversation_id=3, detail="SLA breached"),
                  DigestItem(kind="new", conversation_id=12, channel="support", contact="@joe",
                             excerpt="hi")),
           more=36, mentions=("bob",), buttons=(Button("Open the queue", "/queue"),)),
    FailedDeliveryNotice(delivery_id=45, destination="support", purpose="reply", attempts=8,
                         error="HTTP 500", conversation_id=12, mentions=("carol",),
                         buttons=(Button("Retry #45", "/retry 45"),)),
    HealthNotice(channel="x-main", healthy=False, detail="401 Unauthorized"),
    BudgetNotice(channel="x-main", kind="x.budget_warning", message="90% used", details=(("used", "9000"),)),
]


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: type(v).__name__)
def test_every_view_round_trips_through_json(view: View) -> None:
    stored = json.loads(json.dumps(dump(view)))
    again = load(stored)
    assert again == view and type(again) is type(view)
    assert render(again) == render(view)  # zone names (WIB) and durations come back exactly


def sample(hint: Any) -> Any:
    """A value of the annotated type, with every optional part filled in."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return sample(next(a for a in args if a is not type(None)))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (sample(args[0]),)
        return tuple(sample(a) for a in args)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: sample(hints[f.name]) for f in dataclasses.fields(hint)})
    return {str: "x", int: 7, float: 1.5, bool: True, datetime: AT, timedelta: timedelta(seconds=-90)}[hint]


ALL_VIEW_CLASSES = sorted((c for c in vars(views).values()
                           if isinstance(c, type) and issubclass(c, View) and c is not View),
                          key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", ALL_VIEW_CLASSES, ids=lambda c: c.__name__)
def test_every_view_class_round_trips_with_every_field_set(cls: type[View]) -> None:
    view = sample(cls)
    assert load(json.loads(json.dumps(dump(view)))) == view


def test_the_notice_views_have_hand_written_samples() -> None:
    notices = {ConversationNotice, SlaNotice, Digest, FailedDeliveryNotice, HealthNotice, BudgetNotice}
    assert notices <= {type(v) for v in VIEWS}


def test_times_keep_their_zone_and_instant() -> None:
    card = load(dump(CARD))
    assert isinstance(card, ConversationCard)
    assert card.due_at is not None and card.due_at.tzinfo == WIB and card.due_at.strftime("%Z") == "WIB"
    assert card.snoozed_until is not None and card.snoozed_until.tzinfo is UTC
    fixed = Confirmation(message="x")
    assert load(dump(fixed)) == fixed
    offset = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=7)))
    line = SlaLine(conversation_id=1, priority="low", assignee=None, deadline=None, due_at=offset,
                   remaining=None)
    item = load(dump(SlaOverview(lines=(line,))))
    assert isinstance(item, SlaOverview) and item.lines[0].due_at == offset


def test_fields_from_a_newer_writer_are_ignored() -> None:
    stored = dump(HealthNotice(channel="x", healthy=True))
    stored["severity"] = "high"
    assert load(stored) == HealthNotice(channel="x", healthy=True)


@pytest.mark.parametrize("stored, problem", [
    ({"channel": "x"}, "no $type"),
    ({"$type": "Nope"}, "unknown view type 'Nope'"),
    ({"$type": "HealthNotice", "channel": "x"}, "lacks healthy"),
    ({"$type": "Button", "label": "a", "command": "/b"}, "not a View"),
    ({"$type": "HealthNotice", "$v": 99, "channel": "x", "healthy": True}, "format version 99"),
    ({"$type": "SlaNotice", "event": "x", "target": "t", "card": {"$type": "Nope"}}, "unknown view type"),
])
def test_unreadable_views_raise_a_clear_error(stored: dict[str, object], problem: str) -> None:
    with pytest.raises(ViewCodecError, match=re.escape(problem)):
        load(stored)


def test_only_views_can_be_dumped() -> None:
    with pytest.raises(TypeError):
        dump(Button("a", "/b"))  # type: ignore[arg-type]
