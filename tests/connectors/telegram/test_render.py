"""The HTML renderer: customer text can never open an entity, long views split at 4,096 characters into
chunks that each parse on their own, and buttons carry only a short reference."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.telegram.emulator_markup import format_text, utf16_len
from connectors.telegram.render import (
    CALLBACK_DATA_LIMIT,
    TEXT_LIMIT,
    Rendered,
    bold,
    keyboard,
    paginate,
    parse_callback,
    plain,
    render,
)
from inbox import render_text
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
    ReportView,
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

NASTY = "Hi <b>team</b> & co: *_[]()~`>#+-=|{}.! @everyone &amp; &lt;i&gt; <a href='x'>y</a> 😀 café"
AT = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
BUTTONS = (
    Button("Take", "/assign 12 me", "primary"),
    Button("Snooze 1h", "/snooze 12 1h"),
    Button("Escalate", "/escalate 12"),
    Button("Resolve", "/resolve 12", "danger"),
    Button("Show", "/show 12"),
)


def card(excerpt: str = NASTY, contact: str = "@ana_<k>&", **overrides: object) -> ConversationCard:
    """A card full of customer text."""
    values: dict[str, object] = dict(
        id=12,
        status="open",
        priority="high",
        channel="tg",
        kind="dm",
        contact=contact,
        excerpt=excerpt,
        assignee="carol",
        tags=("vip", "b&b"),
        due_at=AT,
        remaining=timedelta(minutes=-5),
        breached=("first_response",),
        escalation_level=1,
        buttons=BUTTONS,
    )
    values.update(overrides)
    return ConversationCard(**values)  # type: ignore[arg-type]


def parsed(chunk: str) -> tuple[str, list[dict[str, object]]]:
    """What Telegram shows for one HTML chunk (strict: a bare '&' would be refused)."""
    formatted = format_text(chunk, "HTML")
    return formatted.text, formatted.entities


def shown(rendered: Rendered) -> str:
    """The whole rendering as the team reads it."""
    return "\n".join(parsed(chunk)[0] for chunk in rendered.chunks)


def samples() -> list[View]:
    """One of every view the core makes, each carrying customer text where it can."""
    the_card = card()
    return [
        the_card,
        QueuePage(
            filters="mine #b&b",
            page=1,
            page_size=10,
            cards=(the_card, card(contact="Ben")),
            has_next=True,
            buttons=(Button("Next »", "/queue mine 2"),),
        ),
        ConversationDetailView(
            card=the_card,
            subject="Re: <order>",
            older_messages=2,
            messages=(
                MessageItem(
                    direction="in",
                    author="@ana_k",
                    text=NASTY + "\nsecond line",
                    at=AT,
                    attachments=("photo",),
                ),
                MessageItem(direction="note", author="carol", text="VIP <i>", at=AT),
                MessageItem(direction="out", author="carol", text="Thanks & sorry", at=AT),
            ),
            events=(EventItem(type="conversation.assigned", actor="member:carol", at=AT),),
        ),
        Confirmation(message="Reply to #12 queued for delivery.", conversation_id=12, buttons=BUTTONS[3:]),
        ErrorView(message="'<zed>' is not a team member", kind="not_found", usage="/assign ID @member|me"),
        HelpView(
            entries=(
                HelpEntry(
                    name="reply",
                    usage="/reply ID TEXT",
                    summary="Send <a> reply",
                    role="agent",
                    aliases=("r",),
                    example="/reply 12 Hi",
                ),
                HelpEntry(
                    name="template",
                    usage="/template",
                    summary="Canned replies",
                    role="agent",
                    subcommand_roles=(("add", "lead"),),
                ),
            )
        ),
        HelpView(
            detail=HelpEntry(
                name="reply",
                usage="/reply ID TEXT",
                summary="Send",
                role="lead",
                aliases=("r",),
                example="/reply 12 <Hi>",
                subcommand_roles=(("x", "admin"),),
            )
        ),
        TemplateList(templates=(TemplateItem(name="late", text="Sorry {name} & <team>"),)),
        TemplateList(),
        TemplateView(template=TemplateItem(name="late", text="Sorry {name}"), placeholders=("name",)),
        SlaView(
            conversation_id=12,
            status="open",
            policy="vip",
            first_response_at=AT,
            deadlines=(
                SlaDeadline(name="first_response", due_at=AT, remaining=timedelta(hours=1)),
                SlaDeadline(name="resolution", due_at=AT, remaining=timedelta(hours=-1), breached=True),
            ),
        ),
        SlaOverview(
            lines=(
                SlaLine(
                    conversation_id=12,
                    priority="high",
                    assignee=None,
                    deadline="resolution",
                    due_at=AT,
                    remaining=timedelta(hours=-2),
                    breached=("resolution",),
                ),
            ),
            buttons=(Button("Show #12", "/show 12"),),
        ),
        SlaOverview(),
        ConversationNotice(event="new", card=the_card),
        ConversationNotice(event="reopened", card=the_card, mentions=("carol", "bob")),
        SlaNotice(
            event="breached",
            card=the_card,
            target="first_response",
            due_at=AT,
            remaining=timedelta(minutes=-3),
            mentions=("bob",),
            priority_from="normal",
            priority_to="high",
            late=True,
            deferred=True,
            urgent=True,
        ),
        SlaNotice(
            event="warning", card=the_card, target="resolution", due_at=AT, remaining=timedelta(minutes=9)
        ),
        Digest(
            start=AT,
            end=AT + timedelta(minutes=1),
            counts=(("new", 3), ("sla", 1)),
            more=2,
            items=(
                DigestItem(kind="new", conversation_id=12, channel="tg", contact="<ana>", excerpt=NASTY),
                DigestItem(kind="sla", detail="SLA breached & more"),
            ),
            buttons=(Button("Open the queue", "/queue"),),
            mentions=("bob",),
        ),
        FailedDeliveryNotice(
            delivery_id=4,
            destination="tg",
            purpose="reply",
            attempts=8,
            error="Telegram refused <the reply>: Forbidden & blocked",
            conversation_id=12,
            buttons=(Button("Retry #4", "/retry 4", "primary"),),
        ),
        HealthNotice(channel="tg", healthy=False, detail="ConnectError <x>"),
        # A view this renderer has no HTML of its own for: the plain renderer's text, escaped.
        ReportView(
            scope="week",
            label="2026-W45 <b>",
            start=AT,
            end=AT + timedelta(days=7),
            timezone="UTC",
            new=3,
            resolved=2,
        ),
        HealthNotice(channel="tg", healthy=True),
        BudgetNotice(channel="tg", kind="x.budget", message="Budget <80%> used", details=(("reads", "9"),)),
    ]


@pytest.mark.parametrize("view", samples(), ids=lambda v: type(v).__name__)
def test_every_view_renders_to_html_telegram_accepts(view: View) -> None:
    rendered = render(view, mentions={"bob": "1002"}, topics=True)
    assert rendered.chunks
    for chunk in rendered.chunks:
        text, entities = parsed(chunk)  # raises on any markup Telegram would refuse
        assert text and utf16_len(text) <= TEXT_LIMIT
        assert all(e["type"] not in ("pre", "blockquote", "spoiler") for e in entities)
    # The HTML twin says what the plain renderer says (buttons aside, which are a keyboard here).
    plain_words = set(re.findall(r"\w+", render_text.render(view).split("[")[0]))
    assert set(re.findall(r"\w+", shown(rendered))) >= plain_words - {"Take", "Show"}


def test_customer_text_shows_verbatim_and_opens_no_entity() -> None:
    notice = ConversationNotice(event="new", card=card())
    rendered = render(notice)
    text, entities = parsed(rendered.chunks[0])
    assert NASTY in text and "@ana_<k>&" in text and "b&b" in text
    start = utf16_len(text[: text.index(NASTY)])
    end = start + utf16_len(NASTY)
    inside = [e for e in entities if start <= int(e["offset"]) < end]  # type: ignore[call-overload]
    # Only Telegram's own detection (the @mention) can start inside the customer's words.
    assert {e["type"] for e in inside} <= {"mention", "hashtag", "url", "email", "bot_command", "cashtag"}
    assert "&lt;b&gt;team&lt;/b&gt; &amp; co" in rendered.chunks[0]
    assert "&amp;amp; &amp;lt;i&amp;gt;" in rendered.chunks[0]  # entities the customer typed stay text


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=80))
def test_any_text_round_trips_through_telegram_html(text: str) -> None:
    rendered = render(Confirmation(message=text))
    # Exactly what the team would see had the text been sent without any parse mode.
    assert [parsed(c)[0] for c in rendered.chunks] == [format_text("✅ " + text).text]


def test_a_long_story_splits_at_4096_without_breaking_tags_or_entities() -> None:
    long_text = ("&<b>😀 " * 700) + "\n" + ("word " * 1500) + ("x" * 5000)
    detail = ConversationDetailView(
        card=card(),
        messages=(
            MessageItem(direction="in", author="@ana_k", text=long_text, at=AT),
            MessageItem(direction="note", author="carol", text="short <note>", at=AT),
        ),
    )
    rendered = render(detail)
    assert len(rendered.chunks) >= 4
    seen = ""
    for chunk in rendered.chunks:
        text, entities = parsed(chunk)
        assert 0 < utf16_len(text) <= TEXT_LIMIT
        for entity in entities:  # no entity runs past its chunk
            assert int(entity["offset"]) + int(entity["length"]) <= utf16_len(text)  # type: ignore[call-overload]
        seen += text
    squeezed = re.sub(r"\s+", "", seen)
    assert re.sub(r"\s+", "", long_text) in squeezed and "short<note>" in squeezed
    assert rendered.rows and rendered.rows[0][0].command == "/assign 12 me"  # buttons once, on the last chunk


def test_paginate_keeps_lines_whole_when_they_fit_and_cuts_inside_spans_otherwise() -> None:
    lines = [(bold("a" * 3000),), (plain("b" * 2000),), (bold("c" * 10),)]
    chunks = paginate(lines, limit=4096)
    assert chunks == ["<b>" + "a" * 3000 + "</b>", "b" * 2000 + "\n<b>cccccccccc</b>"]
    cut = paginate([(plain("x "), bold("y" * 9000))], limit=4096)
    assert [parsed(c)[0] for c in cut] == ["x " + "y" * 4094, "y" * 4096, "y" * 810]
    assert all(c.count("<b>") == c.count("</b>") == 1 for c in cut[1:])
    emoji = paginate([(plain("😀" * 3000),)], limit=4096)  # never half a surrogate pair
    assert [utf16_len(parsed(c)[0]) for c in emoji] == [4096, 1904]
    assert paginate([(plain("   "),), ()]) == []  # Telegram refuses empty messages


def test_buttons_carry_only_a_reference_and_an_index() -> None:
    rendered = render(ConversationNotice(event="new", card=card()), topics=True)
    commands = [b.command for b in rendered.buttons]
    assert commands == [
        "/assign 12 me",
        "/snooze 12 1h",
        "/escalate 12",
        "/resolve 12",
        "/show 12",
        "/open 12",
    ]
    markup = keyboard(rendered.rows, 123456789012)
    assert markup is not None
    data = [b.callback_data for row in markup.inline_keyboard for b in row]
    assert data == [f"123456789012.{i}" for i in range(6)]
    assert all(isinstance(d, str) and len(d.encode()) <= CALLBACK_DATA_LIMIT for d in data)
    assert [len(row) for row in markup.inline_keyboard] == [3, 3]
    assert parse_callback("123456789012.5") == (123456789012, 5)
    for forged in (None, "", "/resolve 12", "1.2.3", "a.1", "1.", "-1.0", "1.1000", "1" * 19 + ".0"):
        assert parse_callback(forged) is None
    assert (
        render(ConversationNotice(event="new", card=card(status="resolved")), topics=True).buttons[-1].command
        == "/show 12"
    )  # no thread for a resolved conversation
    assert keyboard((), 1) is None


def test_mentions_notify_members_by_id() -> None:
    rendered = render(
        ConversationNotice(event="reopened", card=card(), mentions=("carol", "zed")),
        mentions={"carol": "1003", "zed": None},
    )
    assert '<a href="tg://user?id=1003">@carol</a>' in rendered.chunks[0]
    formatted = format_text(
        rendered.chunks[0], "HTML", lookup=lambda uid: {"id": uid, "is_bot": False, "first_name": "Carol"}
    )
    assert "@carol @zed" in formatted.text
    [mention] = [e for e in formatted.entities if e["type"] == "text_mention"]
    assert mention["user"]["id"] == 1003


def test_the_consoles_own_labels_follow_the_chat_language() -> None:
    notice = ConversationNotice(lang="id", event="new", card=card(lang="id"))
    rendered = render(notice, topics=True)
    assert rendered.buttons[-1].label == "Buka utas"
    assert shown(rendered).startswith("🆕 Percakapan baru")


def test_a_digest_title_names_its_minutes_without_repeating_the_date() -> None:
    digest = Digest(start=AT, end=AT + timedelta(minutes=1), counts=(("new", 3),), more=0, items=())
    text = shown(render(digest))
    assert text.startswith("📋 Digest 16:00-16:01 UTC: 3 new conversation(s)"), text
