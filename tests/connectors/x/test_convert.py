"""X payload conversion: recorded API v2 pages and Account Activity payloads become neutral events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.x.convert import (
    BadPayload,
    activity_to_inbound,
    count_reads,
    dm_conversation_id,
    dm_events_to_inbound,
    mentions_to_inbound,
    parse_time,
    snowflake_time,
)
from inbox.events import Attachment, Author
from inbox.models import Kind

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNT = "1580000000000000001"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def test_mentions_page_becomes_mentions_oldest_first() -> None:
    events = mentions_to_inbound("xs", fixture("mentions_page.json"), account_id=ACCOUNT)
    root, long_post, follow_up = events
    assert [e.external_id for e in events] == [
        "2117168600555979986", "2117175365481792722", "2117178653379921106",
    ]
    assert all(e.kind is Kind.MENTION and e.channel == "xs" for e in events)
    assert root.author == Author("1402938475612345678", "alice_w", "Alice Wong")
    assert root.thread_key == root.external_id and root.reply_to is None
    assert root.created_at == datetime(2026, 11, 2, 8, 15, 4, 120000, tzinfo=UTC)
    # A reply in the thread: threaded by conversation_id, pointing at the post it answers.
    assert follow_up.thread_key == root.external_id
    assert follow_up.reply_to == "2117175504925623506"
    assert follow_up.text == "@saluran_help still nothing & no tracking number <sigh>"  # X escapes & < >
    assert follow_up.attachments == (Attachment(type="media", platform_ref="3_2117178650000000000"),)
    # Long posts carry their whole text in note_tweet.
    assert long_post.text.endswith("the whole afternoon. #fail")
    assert long_post.author.handle == "budisan"


def test_mentions_leave_out_the_accounts_own_posts_and_survive_missing_users() -> None:
    body = fixture("mentions_page.json")
    body["data"][0]["author_id"] = ACCOUNT
    del body["includes"]
    events = mentions_to_inbound("xs", body, account_id=ACCOUNT)
    assert len(events) == 2
    assert events[0].author == Author("1402938475612345678")  # no includes: id only


def test_dm_page_becomes_dms_without_own_or_system_events() -> None:
    events = dm_events_to_inbound("xs", fixture("dm_events_page.json"), account_id=ACCOUNT)
    assert [e.external_id for e in events] == ["2117167324984247506", "2117172660138935506"]
    first, second = events
    assert all(e.kind is Kind.DM for e in events)
    assert first.thread_key == second.thread_key == "1402938475612349999-1580000000000000001"
    assert second.author == Author("1402938475612349999", "rina_k", "Rina")
    assert second.text == "Halo, refund saya belum masuk \U0001f61e"
    assert second.attachments[0].platform_ref == "3_2117172650000000000"
    assert second.created_at == datetime(2026, 11, 2, 8, 31, 12, tzinfo=UTC)


def test_dm_page_keeps_only_events_newer_than_the_last_seen() -> None:
    events = dm_events_to_inbound(
        "xs", fixture("dm_events_page.json"), account_id=ACCOUNT, newer_than=2117167324984247506
    )
    assert [e.external_id for e in events] == ["2117172660138935506"]


def test_reads_are_counted_per_resource_returned() -> None:
    assert count_reads(fixture("mentions_page.json"), "posts") == {"reads.posts": 3, "reads.users": 2}
    dms = count_reads(fixture("dm_events_page.json"), "dm_events")
    assert dms == {"reads.dm_events": 4, "reads.users": 2}
    assert count_reads({"meta": {"result_count": 0}}, "posts") == {}
    with_tweets = {"data": [{"id": "1"}], "includes": {"tweets": [{"id": "2"}]}}
    assert count_reads(with_tweets, "dm_events") == {"reads.dm_events": 1, "reads.posts": 1}


def test_activity_post_mentions_only_with_full_text() -> None:
    [mention] = activity_to_inbound("xs", fixture("activity_tweet_create.json"))  # own post and RT left out
    assert mention.external_id == "2117178653379921106"
    assert mention.kind is Kind.MENTION
    assert mention.author == Author("1402938475612345678", "alice_w", "Alice Wong")
    assert mention.text.startswith("@saluran_help still nothing & no tracking number, and the page says")
    assert mention.text.endswith("Please call me back.")
    assert mention.reply_to == "2117175504925623506"
    assert mention.created_at == datetime(2026, 11, 2, 8, 55, 0, 900000, tzinfo=UTC)
    assert mention.attachments == (Attachment(type="photo", platform_ref="2117178650000000000"),)


def test_activity_dm_received_only_threaded_like_polling() -> None:
    [dm] = activity_to_inbound("xs", fixture("activity_dm.json"))
    polled = dm_events_to_inbound("xs", fixture("dm_events_page.json"), account_id=ACCOUNT)[1]
    assert (dm.external_id, dm.thread_key) == (polled.external_id, polled.thread_key)
    assert dm.author == polled.author
    assert dm.created_at == polled.created_at
    assert dm.attachments[0].platform_ref == "2117172650000000000"


def test_activity_without_known_events_is_empty_and_bad_ids_are_refused() -> None:
    assert activity_to_inbound("xs", {"for_user_id": ACCOUNT, "favorite_events": [{"id": "1"}]}) == []
    with pytest.raises(BadPayload):
        activity_to_inbound("xs", {"tweet_create_events": [{"id_str": "x1", "user": {"id_str": "5"}}]})
    with pytest.raises(BadPayload):
        mentions_to_inbound("xs", {"data": [{"id": "12", "text": "no author"}]}, account_id=ACCOUNT)


def test_times_and_conversation_ids() -> None:
    assert snowflake_time("2117168600555979986") == datetime(2026, 11, 2, 8, 15, 4, 120000, tzinfo=UTC)
    assert parse_time(None, "2117168600555979986") == snowflake_time("2117168600555979986")
    assert parse_time("2026-11-02T09:00:00.000Z", "1") == datetime(2026, 11, 2, 9, tzinfo=UTC)
    assert dm_conversation_id("1580000000000000001", "99") == "99-1580000000000000001"
