"""Gateway payloads (recorded JSON fixtures) into neutral Inbound events: pure, no emulator, no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.discord.convert import (
    Scope,
    Where,
    address,
    kind_of,
    parse_address,
    team_message,
    to_inbound,
)
from inbox.events import Attachment, Author, Inbound
from inbox.models import Kind

FIXTURES = Path(__file__).parent / "fixtures"
BOT = 1566738638438531072
COMMUNITY, TEAM = 1566738638438531074, 1566738638438531083
GENERAL, SUPPORT = 1566738638438531076, 1566738638438531077
SCOPE = Scope(channel="discord", bot_id=BOT, team_guild_id=TEAM, support_channel_ids=frozenset({SUPPORT}),
              community_guild_ids=frozenset({COMMUNITY}))
DANA = Author(id="1566738638438531081", handle="dana", name="Dana Customer")
AT_NINE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    """A recorded gateway payload."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def where(payload: dict[str, Any]) -> Where:
    """What the client's cache said about the payload's channel when it was recorded."""
    known = json.loads((FIXTURES / "where.json").read_text(encoding="utf-8"))[payload["channel_id"]]
    return Where(known["kind"], known["guild_id"], known["parent_id"], known["name"])


def convert(name: str, scope: Scope = SCOPE) -> Inbound | None:
    """Convert a recorded payload the way the source does."""
    payload = fixture(name)
    return to_inbound(payload, where(payload), scope)


def test_a_dm_is_a_dm_conversation_found_by_contact() -> None:
    event = convert("dm_text")
    payload = fixture("dm_text")
    assert event is not None
    assert (event.kind, event.text, event.author) == (Kind.DM, "Hi, my parcel is late", DANA)
    assert event.external_id == f"{payload['channel_id']}:{payload['id']}"
    assert (event.thread_key, event.reply_to, event.edited_at) == (None, None, None)
    assert event.created_at == AT_NINE and event.channel == "discord"


def test_an_edit_carries_the_new_text_and_when() -> None:
    event = convert("dm_edit")
    original = convert("dm_text")
    assert event is not None and original is not None and event.external_id == original.external_id
    assert event.text == "Hi, my parcel is late (order 1234)"
    assert event.edited_at == datetime(2026, 11, 2, 9, 1, tzinfo=UTC)


def test_hostile_text_is_kept_exactly() -> None:
    event = convert("dm_hostile")
    assert event is not None
    assert event.text.startswith("@everyone <@&")
    assert "\n> quote\n# head [link](https://evil.example)" in event.text


def test_a_support_channel_post_starts_a_comment_thread_and_replies_join_it() -> None:
    post, reply = convert("support_post"), convert("support_reply")
    assert post is not None and reply is not None
    assert post.kind is Kind.COMMENT and post.thread_key == post.external_id and post.reply_to is None
    assert reply.kind is Kind.COMMENT and reply.reply_to == post.external_id
    assert reply.thread_key == post.external_id  # the root of the reply chain
    assert reply.author.handle == "eli"


def test_a_message_in_a_thread_joins_the_thread_starter() -> None:
    post = convert("support_post")
    event = convert("support_thread_message")
    assert post is not None and event is not None
    thread_id = fixture("support_thread_message")["channel_id"]
    assert event.kind is Kind.COMMENT  # the thread's parent is a support channel
    assert event.reply_to == post.external_id  # the thread was started from the post: same id
    assert event.thread_key == f"{thread_id}:{thread_id}" and event.subject == "Invoice"


def test_mentions_and_replies_to_the_bot_are_mentions_other_chatter_is_not() -> None:
    mention, chatter = convert("general_mention"), convert("general_chatter")
    reply = convert("general_reply_to_bot")
    assert mention is not None and mention.kind is Kind.MENTION
    assert mention.thread_key == mention.external_id and mention.text.endswith("can someone help?")
    assert chatter is None
    assert reply is not None and reply.kind is Kind.MENTION  # replied without pinging the bot
    assert reply.reply_to == address(GENERAL, fixture("bot_echo")["id"])


@pytest.mark.parametrize("name", ["bot_echo", "team_message", "system_thread_created"])
def test_the_bot_the_team_server_and_system_messages_are_never_customers(name: str) -> None:
    assert convert(name) is None


def test_servers_outside_the_community_are_ignored_and_an_empty_community_list_means_all() -> None:
    elsewhere = Scope(channel="discord", bot_id=BOT, team_guild_id=TEAM, community_guild_ids=frozenset({42}))
    assert convert("general_mention", elsewhere) is None
    assert convert("dm_text", elsewhere) is not None  # DMs belong to no server
    anywhere = Scope(channel="discord", bot_id=BOT, team_guild_id=TEAM)
    assert convert("general_mention", anywhere) is not None
    assert convert("support_post", anywhere) is None  # not a support channel here, no mention


def test_without_message_content_an_empty_message_is_not_stored() -> None:
    payload = {**fixture("support_post"), "content": ""}
    assert to_inbound(payload, where(payload), SCOPE) is None


def test_attachments_and_stickers_become_metadata() -> None:
    payload = {
        **fixture("dm_text"), "content": "",
        "attachments": [{"id": "1", "filename": "receipt.png", "size": 2048, "url": "https://cdn/receipt.png",
                         "content_type": "image/png"},
                        {"id": "2", "filename": "notes.pdf", "size": 10, "url": "https://cdn/notes.pdf"}],
        "sticker_items": [{"id": "77", "name": "wave", "format_type": 1}],
    }
    event = to_inbound(payload, where(payload), SCOPE)
    assert event is not None and event.text == ""
    assert event.attachments == (
        Attachment(type="image", name="receipt.png", mime_type="image/png", size=2048,
                   platform_ref="https://cdn/receipt.png"),
        Attachment(type="file", name="notes.pdf", size=10, platform_ref="https://cdn/notes.pdf"),
        Attachment(type="sticker", name="wave", platform_ref="77"),
    )


def test_partial_updates_and_webhooks_are_skipped() -> None:
    update = {k: v for k, v in fixture("dm_edit").items() if k not in ("author", "content")}
    assert to_inbound(update, Where.dm(), SCOPE) is None
    webhook = {**fixture("general_mention"), "webhook_id": "5"}
    assert kind_of(webhook, where(webhook), SCOPE) is None


def test_team_messages_are_for_the_console() -> None:
    found = team_message(fixture("team_message"), SCOPE)
    assert found is not None and found.text == "on it"
    assert found.author_id == int(fixture("team_message")["author"]["id"])
    assert team_message(fixture("dm_text"), SCOPE) is None
    assert team_message(fixture("team_message"), Scope(channel="discord", bot_id=BOT)) is None


def test_addresses_round_trip() -> None:
    assert parse_address(address(12, 34)) == (12, 34)
    assert [parse_address(v) for v in (None, "", "12", "a:b", "12:", "jsonl:5")] == [None] * 6
