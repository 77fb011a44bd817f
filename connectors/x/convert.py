"""Pure conversion of X API payloads into neutral ``Inbound`` events (no I/O, no tweepy).

Two shapes arrive: API v2 JSON from polling (``GET /2/users/:id/mentions``, ``GET /2/dm_events``)
and the v1.1-shaped JSON that the Account Activity API POSTs to a webhook. Both give the same
external ids (post ids and DM event ids are X snowflakes) and the same thread keys, so a channel
can switch between polling and webhooks, or run both, without duplicates.

Threading: a post is threaded by its ``conversation_id`` (the id of the thread's first post) and
points at the post it answers (``referenced_tweets`` of type ``replied_to``); a DM is threaded by
its ``dm_conversation_id`` (``"<lower id>-<higher id>"`` for one-to-one conversations).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from inbox.events import Attachment, Author, Inbound
from inbox.models import Kind

TWITTER_EPOCH_MS = 1_288_834_974_657  # snowflake ids count milliseconds from here
LEGACY_TIME_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # "Mon Nov 02 09:00:00 +0000 2026"


class BadPayload(ValueError):
    """An X payload that cannot be turned into events (missing id, wrong types)."""


def snowflake_time(item_id: str) -> datetime:
    """The creation time encoded in an X snowflake id."""
    return datetime.fromtimestamp(((int(item_id) >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)


def parse_time(value: Any, item_id: str) -> datetime:
    """An X v2 timestamp (``2026-11-02T09:00:00.000Z``), falling back to the id's own time."""
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    return snowflake_time(item_id)


def _id(value: Any, what: str) -> str:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise BadPayload(f"{what} has no valid id: {value!r}")
    return text


def users_by_id(body: Mapping[str, Any]) -> dict[str, Author]:
    """Authors from a v2 response's ``includes.users``, keyed by user id."""
    includes = body.get("includes") or {}
    authors: dict[str, Author] = {}
    for user in includes.get("users") or []:
        if isinstance(user, Mapping) and user.get("id") is not None:
            uid = str(user["id"])
            authors[uid] = Author(id=uid, handle=user.get("username"), name=user.get("name"))
    return authors


def _media(attachments: Any) -> tuple[Attachment, ...]:
    if not isinstance(attachments, Mapping):
        return ()
    return tuple(
        Attachment(type="media", platform_ref=str(key)) for key in attachments.get("media_keys") or []
    )


def _replied_to(post: Mapping[str, Any]) -> str | None:
    for ref in post.get("referenced_tweets") or []:
        if isinstance(ref, Mapping) and ref.get("type") == "replied_to" and ref.get("id") is not None:
            return str(ref["id"])
    return None


def _post_text(post: Mapping[str, Any]) -> str:
    # Posts longer than 280 (X Premium) carry their full text in note_tweet; X escapes & < > in text.
    note = post.get("note_tweet")
    text = note.get("text") if isinstance(note, Mapping) and note.get("text") else post.get("text")
    return html.unescape(str(text or ""))


def post_to_inbound(channel: str, post: Mapping[str, Any], authors: Mapping[str, Author]) -> Inbound:
    """One v2 post that mentions the account, as a ``mention`` event."""
    post_id = _id(post.get("id"), "post")
    author_id = str(post.get("author_id") or "")
    if not author_id:
        raise BadPayload(f"post {post_id} has no author_id (request tweet.fields=author_id)")
    return Inbound(
        channel=channel,
        external_id=post_id,
        kind=Kind.MENTION,
        author=authors.get(author_id, Author(id=author_id)),
        text=_post_text(post),
        created_at=parse_time(post.get("created_at"), post_id),
        thread_key=str(post.get("conversation_id") or post_id),
        reply_to=_replied_to(post),
        attachments=_media(post.get("attachments")),
    )


def mentions_to_inbound(channel: str, body: Mapping[str, Any], *, account_id: str) -> list[Inbound]:
    """A page of ``GET /2/users/:id/mentions`` as events, oldest first, without the account's own posts."""
    authors = users_by_id(body)
    events = [
        post_to_inbound(channel, post, authors)
        for post in body.get("data") or []
        if str(post.get("author_id")) != account_id
    ]
    return sorted(events, key=lambda ev: int(ev.external_id))


def dm_to_inbound(channel: str, event: Mapping[str, Any], authors: Mapping[str, Author]) -> Inbound:
    """One v2 ``MessageCreate`` DM event as a ``dm`` event."""
    event_id = _id(event.get("id"), "DM event")
    sender_id = str(event.get("sender_id") or "")
    if not sender_id:
        raise BadPayload(f"DM event {event_id} has no sender_id (request dm_event.fields=sender_id)")
    return Inbound(
        channel=channel,
        external_id=event_id,
        kind=Kind.DM,
        author=authors.get(sender_id, Author(id=sender_id)),
        text=str(event.get("text") or ""),
        created_at=parse_time(event.get("created_at"), event_id),
        thread_key=str(event.get("dm_conversation_id") or "") or None,
        attachments=_media(event.get("attachments")),
    )


def dm_events_to_inbound(
    channel: str, body: Mapping[str, Any], *, account_id: str, newer_than: int | None = None
) -> list[Inbound]:
    """A page of ``GET /2/dm_events`` as events, oldest first.

    Left out: what the account sent itself, events other than ``MessageCreate``, and events whose
    id is not above ``newer_than`` (already seen).
    """
    authors = users_by_id(body)
    events = [
        dm_to_inbound(channel, event, authors)
        for event in body.get("data") or []
        if event.get("event_type", "MessageCreate") == "MessageCreate"
        and str(event.get("sender_id")) != account_id
        and (newer_than is None or int(_id(event.get("id"), "DM event")) > newer_than)
    ]
    return sorted(events, key=lambda ev: int(ev.external_id))


def count_reads(body: Mapping[str, Any], resource: str) -> dict[str, int]:
    """The resources X bills for one v2 response: ``data`` items as ``resource`` plus included ones."""
    includes = body.get("includes") or {}
    counts = {
        f"reads.{resource}": len(body.get("data") or []),
        "reads.users": len(includes.get("users") or []),
    }
    counts["reads.posts"] = counts.get("reads.posts", 0) + len(includes.get("tweets") or [])
    return {metric: n for metric, n in counts.items() if n}


# --- Account Activity (webhook) payloads ---------------------------------------------------------


def dm_conversation_id(a: str, b: str) -> str:
    """X's id of the one-to-one DM conversation between two users."""
    low, high = sorted((a, b), key=int)
    return f"{low}-{high}"


def _legacy_time(item: Mapping[str, Any], item_id: str) -> datetime:
    stamp = item.get("timestamp_ms") or item.get("created_timestamp")
    if isinstance(stamp, int | str) and str(stamp).isdigit():
        return datetime.fromtimestamp(int(stamp) / 1000, UTC)
    created = item.get("created_at")
    if isinstance(created, str):
        try:
            return datetime.strptime(created, LEGACY_TIME_FORMAT).astimezone(UTC)
        except ValueError:
            pass
    return snowflake_time(item_id)


def _legacy_author(user: Any) -> Author:
    if not isinstance(user, Mapping):
        raise BadPayload("activity post has no user")
    uid = _id(user.get("id_str") or user.get("id"), "user")
    return Author(id=uid, handle=user.get("screen_name"), name=user.get("name"))


def _legacy_post(channel: str, post: Mapping[str, Any]) -> Inbound:
    post_id = _id(post.get("id_str") or post.get("id"), "activity post")
    extended = post.get("extended_tweet")
    text = extended.get("full_text") if isinstance(extended, Mapping) and extended.get("full_text") else None
    reply_to = post.get("in_reply_to_status_id_str") or post.get("in_reply_to_status_id")
    holder = extended if isinstance(extended, Mapping) else post
    media = (holder.get("extended_entities") or {}).get("media")
    return Inbound(
        channel=channel,
        external_id=post_id,
        kind=Kind.MENTION,
        author=_legacy_author(post.get("user")),
        text=html.unescape(str(text or post.get("full_text") or post.get("text") or "")),
        created_at=_legacy_time(post, post_id),
        # v1.1 shapes carry no conversation id: ingest threads by reply_to, or starts a thread here.
        thread_key=None,
        reply_to=None if reply_to is None else str(reply_to),
        attachments=tuple(
            Attachment(type=str(m.get("type") or "media"), platform_ref=str(m.get("id_str") or m.get("id")))
            for m in media or [] if isinstance(m, Mapping)
        ),
    )


def _legacy_dm(channel: str, event: Mapping[str, Any], users: Mapping[str, Any]) -> Inbound:
    event_id = _id(event.get("id"), "activity DM")
    create = event.get("message_create") or {}
    sender_id = _id(create.get("sender_id"), "DM sender")
    recipient_id = _id((create.get("target") or {}).get("recipient_id"), "DM recipient")
    user = users.get(sender_id) or {}
    data = create.get("message_data") or {}
    attachment = data.get("attachment") or {}
    media = attachment.get("media") if isinstance(attachment, Mapping) else None
    return Inbound(
        channel=channel,
        external_id=event_id,
        kind=Kind.DM,
        author=Author(id=sender_id, handle=user.get("screen_name"), name=user.get("name")),
        text=str(data.get("text") or ""),
        created_at=_legacy_time(event, event_id),
        thread_key=dm_conversation_id(sender_id, recipient_id),
        attachments=(
            (Attachment(type=str(media.get("type") or "media"), platform_ref=str(media.get("id_str"))),)
            if isinstance(media, Mapping) and media.get("id_str") else ()
        ),
    )


def activity_to_inbound(channel: str, payload: Mapping[str, Any]) -> list[Inbound]:
    """Mentions, replies and received DMs in an Account Activity payload, oldest first.

    Left out: the account's own posts and DMs, retweets, and every other activity (likes,
    follows, typing indicators, read receipts ...).
    """
    account_id = str(payload.get("for_user_id") or "")
    events: list[Inbound] = []
    for post in _items(payload.get("tweet_create_events")):
        raw_user = post.get("user")
        user: Mapping[str, Any] = raw_user if isinstance(raw_user, Mapping) else {}
        if str(user.get("id_str") or user.get("id")) == account_id or "retweeted_status" in post:
            continue
        events.append(_legacy_post(channel, post))
    raw_users = payload.get("users")
    users: Mapping[str, Any] = raw_users if isinstance(raw_users, Mapping) else {}
    for event in _items(payload.get("direct_message_events")):
        if event.get("type") != "message_create":
            continue
        if str((event.get("message_create") or {}).get("sender_id")) == account_id:
            continue
        events.append(_legacy_dm(channel, event, users))
    return sorted(events, key=lambda ev: int(ev.external_id))


def _items(value: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]
