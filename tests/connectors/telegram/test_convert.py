"""Telegram updates (recorded JSON fixtures) into neutral Inbound events: pure, no emulator, no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.telegram.convert import (
    BotIdentity,
    Converted,
    external_id,
    is_start_command,
    message_of,
    message_to_inbound,
    parse_external_id,
    utf16_slice,
)
from inbox.events import Attachment, Author
from inbox.models import Kind
from tests.connectors.telegram.record_fixtures import NASTY

FIXTURES = Path(__file__).parent / "fixtures"
BOT = BotIdentity(id=7000000001, username="saluran_bot")
ROOM = -1002000000001  # the public supergroup "Acme fans"
DISCUSSION = -1002000000002  # the channel's discussion group
ANA = Author(id="500000001", handle="ana_k", name="Ana Kusuma")
AT_NINE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    """A recorded update."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def convert(name: str) -> Converted | None:
    """Convert a recorded update the way the source does."""
    carried = message_of(fixture(name))
    assert carried is not None
    message, edited = carried
    return message_to_inbound("tg", message, BOT, edited=edited)


def test_a_dm_keeps_the_customer_text_exactly() -> None:
    converted = convert("dm_text")
    assert converted is not None and not converted.continues_thread
    event = converted.event
    assert event.kind is Kind.DM and event.channel == "tg"
    assert event.text == NASTY
    assert event.author == ANA
    assert event.external_id == "500000001:1" and event.thread_key is None and event.reply_to is None
    assert event.created_at == AT_NINE and event.edited_at is None


def test_an_edit_is_the_same_message_with_edited_at() -> None:
    converted = convert("dm_edited")
    assert converted is not None
    event = converted.event
    assert event.external_id == "500000001:2" and event.text == "Where is my order 1235?"
    assert event.created_at == AT_NINE and event.edited_at == datetime(2026, 11, 2, 9, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "attachment", "text"),
    [
        ("dm_photo", Attachment(type="photo", size=67), "my receipt"),
        (
            "dm_document",
            Attachment(type="document", name="invoice.pdf", mime_type="application/pdf", size=15),
            "the invoice",
        ),
        ("dm_sticker", Attachment(type="sticker", name="\U0001f44d", size=12), ""),
    ],
)
def test_media_become_attachment_metadata(name: str, attachment: Attachment, text: str) -> None:
    converted = convert(name)
    assert converted is not None
    [found] = converted.event.attachments
    assert found.platform_ref and found.platform_ref.startswith(("AgAC", "BQAC", "CAAC"))
    assert found == Attachment(
        type=attachment.type,
        name=attachment.name,
        mime_type=attachment.mime_type,
        size=attachment.size,
        platform_ref=found.platform_ref,
    )
    assert converted.event.text == text
    if name == "dm_photo":  # the largest size Telegram made is the photo itself
        assert found.platform_ref == fixture(name)["message"]["photo"][-1]["file_id"]


def test_start_is_a_client_opening_the_chat_not_a_message() -> None:
    assert convert("dm_start") is None
    assert is_start_command("/start") and is_start_command("/start ref-42") and is_start_command("/START@bot")
    assert not is_start_command("/started") and not is_start_command("start")


def test_a_group_mention_threads_on_itself() -> None:
    converted = convert("group_mention")
    assert converted is not None and not converted.continues_thread
    event = converted.event
    assert event.kind is Kind.MENTION and event.external_id == f"{ROOM}:2"
    assert event.thread_key == f"{ROOM}:2" and event.reply_to is None
    assert event.text == "😀 @saluran_bot my parcel is late"


def test_a_reply_to_the_bot_is_a_mention_in_the_same_thread() -> None:
    converted = convert("group_reply_to_bot")
    assert converted is not None and not converted.continues_thread
    event = converted.event
    assert event.kind is Kind.MENTION
    assert event.reply_to == f"{ROOM}:3"  # the bot's answer, whose id the outbox stored on our reply
    assert event.thread_key == f"{ROOM}:2"  # the root of the reply chain: the first mention


def test_text_mentions_and_basic_groups_count_too() -> None:
    text_mention = convert("group_text_mention")
    assert text_mention is not None and text_mention.event.kind is Kind.MENTION
    basic = convert("basic_group_mention")
    assert basic is not None and basic.event.kind is Kind.MENTION
    assert basic.event.thread_key == basic.event.external_id


def test_group_chatter_is_not_for_the_inbox_and_thread_replies_only_maybe() -> None:
    assert convert("group_chatter") is None
    reply = convert("group_thread_reply")
    assert reply is not None and reply.continues_thread  # kept only if that chain is a conversation
    assert reply.event.thread_key == f"{ROOM}:5" and reply.event.reply_to == f"{ROOM}:5"


def test_comments_thread_by_channel_post() -> None:
    assert convert("discussion_forward") is None  # the post itself is ours
    comment = convert("comment")
    assert comment is not None and not comment.continues_thread
    assert comment.event.kind is Kind.COMMENT and comment.event.thread_key == f"{DISCUSSION}:1"
    answer = convert("comment_reply")
    assert answer is not None and answer.continues_thread
    assert answer.event.thread_key == f"{DISCUSSION}:1" and answer.event.reply_to == f"{DISCUSSION}:2"


def test_an_anonymous_admin_is_the_chat_itself() -> None:
    converted = convert("group_anonymous_admin")
    assert converted is not None
    assert converted.event.author == Author(id=f"chat:{ROOM}", handle="acme_fans", name="Acme fans")


def test_bots_service_messages_channels_and_other_updates_are_skipped() -> None:
    message = fixture("group_mention")["message"]
    assert (
        message_to_inbound("tg", {**message, "from": {"id": 5, "is_bot": True, "first_name": "B"}}, BOT)
        is None
    )
    service = {k: v for k, v in message.items() if k not in ("text", "entities")}
    assert message_to_inbound("tg", {**service, "new_chat_members": []}, BOT) is None
    channel = {**message, "chat": {"id": -100123, "type": "channel", "title": "News"}}
    assert message_to_inbound("tg", channel, BOT) is None
    assert message_of({"update_id": 1, "callback_query": {"id": "1"}}) is None


def test_ids_and_utf16_offsets() -> None:
    assert external_id(-100123, 7) == "-100123:7"
    assert parse_external_id("-100123:7") == (-100123, 7)
    assert parse_external_id("500:1") == (500, 1)
    for bad in (None, "", "abc", "x:1", "1:y", "chat:-1:2"):
        assert parse_external_id(bad) is None
    assert utf16_slice("😀 @saluran_bot hi", 3, 12) == "@saluran_bot"
