"""Gateway payloads to neutral events: pure functions, tested with recorded MESSAGE_CREATE/UPDATE JSON.

Addresses. A Discord message is addressed by its channel and its id, so external ids, ``reply_to``
and thread keys all read ``<channel id>:<message id>``: the sender can answer in the right channel
(a DM, a support channel, a thread) with a reference to the customer's message, from the outbox
row alone.

Which messages are customers' (``classify``):

- a DM to the bot is a ``dm``; a DM conversation is the customer's DM thread with us;
- in the community's servers, a message in a configured support channel (or in a thread under one)
  is a ``comment``; elsewhere, a message that mentions the bot, or replies to one of its messages,
  is a ``mention``;
- messages by the bot itself, by other bots or webhooks, system messages (joins, pins, "thread
  created") and everything in the team's server are never customers' messages.

Threading: a reply joins the conversation of the message it answers; a message in a Discord thread
joins the conversation of the thread's starter message (a thread started from a message has that
message's id) or else the thread's own conversation; any other guild message starts a conversation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from inbox.events import Attachment, Author, Inbound
from inbox.models import Kind

DEFAULT = 0  # message types a person writes; everything else is a system message
REPLY = 19
_PERSON_TYPES = frozenset({DEFAULT, REPLY})
_USER_MENTION = re.compile(r"<@!?(\d+)>")
SUBJECT_LENGTH = 300


@dataclass(frozen=True, slots=True)
class Where:
    """What the client's cache knows about a message's channel (a gateway message does not say)."""

    kind: Literal["dm", "guild", "thread"]
    guild_id: int | None = None
    parent_id: int | None = None  # the channel a thread belongs to
    name: str | None = None  # a thread's name

    @classmethod
    def dm(cls) -> Where:
        """A direct message channel with the bot."""
        return cls("dm")

    @classmethod
    def guild(cls, guild_id: int) -> Where:
        """A server's text channel (or one the cache does not know)."""
        return cls("guild", guild_id)

    @classmethod
    def thread(cls, guild_id: int, parent_id: int | None, name: str | None = None) -> Where:
        """A thread under ``parent_id``."""
        return cls("thread", guild_id, parent_id, name)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which Discord messages belong to one configured channel."""

    channel: str  # the inbox channel name
    bot_id: int
    team_guild_id: int | None = None
    support_channel_ids: frozenset[int] = field(default_factory=frozenset)
    community_guild_ids: frozenset[int] = field(default_factory=frozenset)  # empty: every other server


def address(channel_id: int | str, message_id: int | str) -> str:
    """The external id of a message: ``<channel id>:<message id>``."""
    return f"{channel_id}:{message_id}"


def parse_address(value: str | None) -> tuple[int, int] | None:
    """``(channel id, message id)`` from an address, or None for anything else."""
    if not value:
        return None
    channel, sep, message = value.partition(":")
    if not sep or not channel.isdigit() or not message.isdigit():
        return None
    return int(channel), int(message)


def parse_time(value: object) -> datetime | None:
    """A Discord ISO 8601 timestamp as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def is_from_bot(payload: Mapping[str, Any], bot_id: int) -> bool:
    """True for messages by this bot, any other bot, or a webhook (interaction answers included)."""
    author = payload.get("author")
    if not isinstance(author, Mapping):
        return True  # a partial update without an author cannot be judged: leave it
    if payload.get("webhook_id") is not None:
        return True
    return bool(author.get("bot")) or _int(author.get("id")) == bot_id


def mentions_user(payload: Mapping[str, Any], user_id: int) -> bool:
    """Whether the message mentions ``user_id`` (in ``mentions`` or, for partial payloads, the text)."""
    for user in payload.get("mentions") or ():
        if isinstance(user, Mapping) and _int(user.get("id")) == user_id:
            return True
    content = payload.get("content")
    return isinstance(content, str) and any(int(m) == user_id for m in _USER_MENTION.findall(content))


def _replies_to(payload: Mapping[str, Any], user_id: int) -> bool:
    referenced = payload.get("referenced_message")
    if not isinstance(referenced, Mapping):
        return False
    author = referenced.get("author")
    return isinstance(author, Mapping) and _int(author.get("id")) == user_id


def kind_of(payload: Mapping[str, Any], where: Where, scope: Scope) -> Kind | None:
    """The kind of conversation a customer message belongs to, or None when it is not a customer's."""
    if is_from_bot(payload, scope.bot_id) or payload.get("type", DEFAULT) not in _PERSON_TYPES:
        return None
    guild_id = _int(payload.get("guild_id")) or where.guild_id
    if guild_id is None:
        return Kind.DM if where.kind == "dm" else None
    if guild_id == scope.team_guild_id:
        return None
    if scope.community_guild_ids and guild_id not in scope.community_guild_ids:
        return None
    channel_id = _int(payload.get("channel_id"))
    home = where.parent_id if where.kind == "thread" else channel_id
    if home in scope.support_channel_ids:
        return Kind.COMMENT
    if mentions_user(payload, scope.bot_id) or _replies_to(payload, scope.bot_id):
        return Kind.MENTION
    return None


def _author(payload: Mapping[str, Any]) -> Author:
    user = payload.get("author") or {}
    member = payload.get("member") if isinstance(payload.get("member"), Mapping) else {}
    assert isinstance(member, Mapping)
    username = user.get("username")
    name = member.get("nick") or user.get("global_name") or username
    return Author(id=str(user.get("id")), handle=str(username) if username else None,
                  name=str(name) if name else None)


def _attachments(payload: Mapping[str, Any]) -> tuple[Attachment, ...]:
    out = []
    for item in payload.get("attachments") or ():
        if not isinstance(item, Mapping):
            continue
        mime = item.get("content_type")
        family = str(mime).split("/", 1)[0] if mime else ""
        out.append(Attachment(
            type=family if family in ("image", "video", "audio") else "file",
            name=item.get("filename"), mime_type=mime, size=_int(item.get("size")),
            platform_ref=item.get("url"),
        ))
    for sticker in payload.get("sticker_items") or ():
        if isinstance(sticker, Mapping):
            out.append(Attachment(type="sticker", name=sticker.get("name"),
                                  platform_ref=str(sticker.get("id"))))
    return tuple(out)


def _threading(payload: Mapping[str, Any], where: Where, channel_id: int,
               message_id: int) -> tuple[str | None, str | None]:
    """``(thread_key, reply_to)`` of a message."""
    reference = payload.get("message_reference")
    referenced_id = _int(reference.get("message_id")) if isinstance(reference, Mapping) else None
    reply_to = None
    if referenced_id is not None and payload.get("type", DEFAULT) == REPLY:
        assert isinstance(reference, Mapping)
        reply_to = address(_int(reference.get("channel_id")) or channel_id, referenced_id)
    if where.kind == "dm":
        return None, reply_to  # one DM conversation per customer, found by contact
    if where.kind == "thread":
        if reply_to is None and where.parent_id is not None:
            # A thread started from a message has that message's id: join the starter's conversation.
            reply_to = address(where.parent_id, channel_id)
        return address(channel_id, channel_id), reply_to
    root = referenced_id if reply_to is not None and referenced_id is not None else message_id
    return address(channel_id, root), reply_to


def to_inbound(payload: Mapping[str, Any], where: Where, scope: Scope) -> Inbound | None:
    """A MESSAGE_CREATE or MESSAGE_UPDATE payload as a customer message, or None when it is not one.

    An update carries ``edited_at``; ingest then replaces the stored text (or stores the message
    if the original was never seen). Partial updates (an embed unfurled, no content) give None.
    """
    kind = kind_of(payload, where, scope)
    channel_id, message_id = _int(payload.get("channel_id")), _int(payload.get("id"))
    created_at = parse_time(payload.get("timestamp"))
    content = payload.get("content")
    if kind is None or channel_id is None or message_id is None or created_at is None:
        return None
    if not isinstance(content, str):
        return None
    attachments = _attachments(payload)
    if not content and not attachments:
        return None  # without the message content intent a message arrives empty: nothing to store
    thread_key, reply_to = _threading(payload, where, channel_id, message_id)
    subject = where.name[:SUBJECT_LENGTH] if where.kind == "thread" and where.name else None
    return Inbound(
        channel=scope.channel, external_id=address(channel_id, message_id), kind=kind,
        author=_author(payload), text=content, created_at=created_at, thread_key=thread_key,
        reply_to=reply_to, subject=subject, attachments=attachments,
        edited_at=parse_time(payload.get("edited_timestamp")),
    )


@dataclass(frozen=True, slots=True)
class TeamMessage:
    """A member's plain message in the team's server, as the console needs it."""

    channel_id: int
    message_id: int
    author_id: int
    text: str


def team_message(payload: Mapping[str, Any], scope: Scope) -> TeamMessage | None:
    """A MESSAGE_CREATE in the team's server by a person, or None."""
    guild_id = _int(payload.get("guild_id"))
    if scope.team_guild_id is None or guild_id != scope.team_guild_id:
        return None
    if is_from_bot(payload, scope.bot_id) or payload.get("type", DEFAULT) not in _PERSON_TYPES:
        return None
    channel_id, message_id = _int(payload.get("channel_id")), _int(payload.get("id"))
    author = payload.get("author") or {}
    author_id = _int(author.get("id")) if isinstance(author, Mapping) else None
    content = payload.get("content")
    if channel_id is None or message_id is None or author_id is None or not isinstance(content, str):
        return None
    return TeamMessage(channel_id, message_id, author_id, content)
