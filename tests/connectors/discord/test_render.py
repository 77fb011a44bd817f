"""Views as Discord messages: escaping customer text, splitting at 2,000 characters, signed buttons,
who a notice may ping. Pure: no emulator, no database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connectors.discord.render import (
    MAX_BUTTONS,
    MAX_LENGTH,
    ButtonSigner,
    component_rows,
    discord_buttons,
    escape,
    render,
    split_message,
)
from inbox.views import (
    Button,
    Confirmation,
    ConversationCard,
    ConversationDetailView,
    ConversationNotice,
    Digest,
    DigestItem,
    ErrorView,
    FailedDeliveryNotice,
    MessageItem,
    QueuePage,
    SlaNotice,
    TemplateItem,
    TemplateList,
)
from tests.connectors.discord.conftest import displayed

WIB = ZoneInfo("Asia/Jakarta")
AT = datetime(2026, 11, 2, 16, 0, tzinfo=WIB)
HOSTILE = ("@everyone @here <@123> <@!123> <@&456> <#789> <:pepe:42> <t:1:R> **b** __u__ *i* ~~s~~ "
           "||sp|| `c` \\")


def card(**fields: object) -> ConversationCard:
    """A card of conversation #12, with ``fields`` changed."""
    base: dict[str, object] = dict(
        id=12, status="open", priority="high", channel="discord", kind="dm", contact="@dana",
        excerpt="Where is my order?", buttons=(Button("Take", "/assign 12 me", "primary"),),
    )
    base.update(fields)
    return ConversationCard(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain words, 10:00.", "plain words, 10:00."),
        ("**bold** _it_ ~~s~~", "\\*\\*bold\\*\\* \\_it\\_ \\~\\~s\\~\\~"),
        ("||spoiler|| `code`", "\\|\\|spoiler\\|\\| \\`code\\`"),
        ("@everyone and @here", "\\@everyone and \\@here"),
        ("<@123> <@&456> <#789>", "\\<\\@123\\> \\<\\@&456\\> \\<#789\\>"),
        ("# head\n## two\n-# small\n- item", "\\# head\n\\## two\n\\-# small\n\\- item"),
        ("+ item\n1. one\n> quote\n#12 stays", "\\+ item\n1\\. one\n\\> quote\n#12 stays"),
        ("[click](https://evil.example/x)", "\\[click\\]\\(<https://evil.example/x>\\)"),
        ("see https://example.com/a_b*c.", "see <https://example.com/a_b*c>."),
        ("C:\\path", "C:\\\\path"),
    ],
)
def test_escape(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped
    assert displayed(escaped) == raw


def test_hostile_text_shows_verbatim_and_keeps_no_mention_syntax() -> None:
    shown = escape(HOSTILE)
    assert displayed(shown) == HOSTILE
    for live in ("<@123>", "<@&456>", "@everyone", "@here", "**", "`c`"):
        assert re.search(r"(?<!\\)" + re.escape(live), shown) is None, live


def test_split_prefers_line_breaks_then_spaces_and_never_cuts_an_escape() -> None:
    assert split_message("") == [] and split_message("  \n ") == []
    assert split_message("short") == ["short"]
    lines = "\n".join(f"line {i:04d} " + "x" * 80 for i in range(60))
    parts = split_message(lines)
    assert all(len(p) <= MAX_LENGTH for p in parts) and "\n".join(parts) == lines
    words = " ".join(["word"] * 1000)
    assert " ".join(split_message(words)) == words
    escaped = escape("*" * 1500)  # 3,000 characters of "\*"
    parts = split_message(escaped)
    assert all(len(p) <= MAX_LENGTH and not p.endswith("\\") for p in parts) and "".join(parts) == escaped
    indented = split_message("x" * 1500 + "\n    indented line " + "y" * 600)
    assert indented[1].startswith("    indented line")  # only the line break is dropped
    link = "a" * 1990 + " <https://example.com/long/path>"
    assert split_message(link, 2000)[1] == "<https://example.com/long/path>"


def test_a_link_that_fits_in_no_message_is_split_as_plain_text() -> None:
    url = "https://example.org/a_b*c@everyone(x)/" + "z" * 4500
    text = escape(f"see {url} thanks and https://example.com/short")
    parts = split_message(text)
    assert len(parts) >= 3 and all(len(p) <= MAX_LENGTH for p in parts)
    shown = f"see {url} thanks and https://example.com/short"
    assert re.sub(r"\s", "", displayed("".join(parts))) == re.sub(r"\s", "", shown)  # cut at spaces, or hard
    # No piece of it is a link to a wrong address, nor a bracket left open; the short link stays one.
    assert not any(re.search(r"(?<!\\)<|https?://example\.org", p) for p in parts[:-1])
    assert "\\@everyone" in parts[1] and parts[-1].endswith("<https://example.com/short>")
    fitting = escape("x" * 1000 + " https://example.org/" + "y" * 1900)
    assert split_message(fitting)[1].startswith("<https://example.org/yy")  # still fits: still a link


def test_a_split_code_block_is_closed_and_reopened() -> None:
    text = "```\n" + "\n".join(f"print({i})" for i in range(400)) + "\n```"
    parts = split_message(text)
    assert len(parts) >= 2 and all(len(p) <= MAX_LENGTH for p in parts)
    assert all(p.count("```") % 2 == 0 for p in parts)
    assert parts[1].startswith("```\n")


def test_signed_buttons_refuse_anything_else() -> None:
    signer = ButtonSigner.for_token("token-a")
    custom_id = signer.custom_id("/assign 12 me")
    assert custom_id is not None and len(custom_id) <= 100
    assert signer.command(custom_id) == "/assign 12 me"
    forged = custom_id.replace("/assign 12 me", "/retry 7")
    assert signer.command(forged) is None
    assert ButtonSigner.for_token("token-b").command(custom_id) is None
    assert signer.command("/assign 12 me") is None and signer.command("c1:nosig") is None
    assert signer.custom_id("/reply 12 " + "x" * 100) is None  # does not fit: no button rather than a cut


def test_buttons_are_capped_at_25_in_rows_of_5() -> None:
    signer = ButtonSigner.for_token("t")
    many = [Button(f"B{i}" + "x" * 100, f"/show {i}", "danger" if i % 2 else "primary") for i in range(30)]
    buttons = discord_buttons([*many, many[0]], signer)
    assert len(buttons) == MAX_BUTTONS and all(len(b.label) <= 80 for b in buttons)
    assert {b.style for b in buttons} == {1, 4}
    rows = component_rows(buttons)
    assert [len(r["components"]) for r in rows] == [5] * 5 and rows[0]["type"] == 1


def test_a_new_conversation_notice_pings_only_the_members_it_names() -> None:
    notice = ConversationNotice(event="reopened", card=card(assignee="alice", excerpt=HOSTILE),
                                mentions=("alice", "carol"))
    rendered = render(notice, {"alice": "2001", "carol": None})
    (text,) = rendered.parts
    assert rendered.pings == (2001,)
    assert "<@2001>" in text and "\\@carol" in text
    assert HOSTILE in displayed(text) and "<@123>" not in text
    assert [b.command for b in rendered.buttons] == ["/assign 12 me", "/thread 12"]


def test_an_sla_notice_and_a_failure_notice() -> None:
    sla = SlaNotice(event="breached", card=card(breached=("first_response",)), target="first_response",
                    due_at=AT, remaining=timedelta(minutes=-5), urgent=True, mentions=("bob",))
    rendered = render(sla, {"bob": "2002"})
    assert rendered.pings == (2002,)
    assert "URGENT" in rendered.parts[0] and "**SLA breached" in rendered.parts[0]
    failed = FailedDeliveryNotice(delivery_id=7, destination="discord", purpose="reply", attempts=8,
                                  error="403 <@&1> **nope**", buttons=(Button("Retry #7", "/retry 7"),))
    shown = render(failed)
    assert "> Error: 403 \\<\\@&1\\> \\*\\*nope\\*\\*" in shown.parts[0] and shown.pings == ()
    assert [b.command for b in shown.buttons] == ["/retry 7"]


def test_a_detail_quotes_every_message_and_has_no_thread_button() -> None:
    detail = ConversationDetailView(card=card(), messages=(
        MessageItem(direction="in", author="@dana", text="line one\n# not a header", at=AT),
        MessageItem(direction="note", author="alice", text="VIP", at=AT),
    ))
    rendered = render(detail)
    text = rendered.parts[0]
    assert "> line one\n> \\# not a header" in text and "**alice \\(note\\)**" in text
    assert all(b.command != "/thread 12" for b in rendered.buttons)


def test_a_queue_page_offers_a_show_button_per_card() -> None:
    page = QueuePage(filters="", page=1, page_size=10, cards=tuple(card(id=i) for i in range(1, 11)),
                     buttons=(Button("Next »", "/queue page 2"),))
    rendered = render(page)
    commands = [b.command for b in rendered.buttons]
    assert commands[0] == "/queue page 2" and commands[1:] == [f"/show {i}" for i in range(1, 11)]


def test_errors_are_not_ok_and_other_views_fall_back_to_escaped_text() -> None:
    error = render(ErrorView(message="'x*' is not a valid tag", usage="/tag ID TAG…", kind="invalid"))
    assert not error.ok and error.parts == ("'x\\*' is not a valid tag\nUsage: /tag ID TAG…",)
    listing = render(TemplateList(templates=(TemplateItem(name="hi", text="Hello **{name}**"),)))
    assert "Hello \\*\\*{name}\\*\\*" in listing.parts[0] and listing.ok
    done = render(Confirmation(message="#12 assigned to alice.", buttons=(Button("Show", "/show 12"),)))
    assert done.parts == ("#12 assigned to alice.",) and [b.command for b in done.buttons] == ["/show 12"]


def test_a_digest_lists_items_and_pings_its_mentions() -> None:
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    item = DigestItem(kind="new", conversation_id=3, channel="dc", contact="@eve", excerpt="**hi** @here")
    digest = Digest(start=start, end=start + timedelta(minutes=1), counts=(("new", 2),), items=(item,),
                    more=1, mentions=("alice",), buttons=(Button("Open the queue", "/queue"),))
    rendered = render(digest, {"alice": "2001"})
    assert rendered.pings == (2001,) and "\\*\\*hi\\*\\* \\@here" in rendered.parts[0]
    assert [b.command for b in rendered.buttons] == ["/queue"]
