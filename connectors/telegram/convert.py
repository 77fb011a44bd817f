"""Pure conversion of Telegram Bot API messages (JSON, as in an ``Update``) into neutral Inbound events.

What becomes what:

* a message in a private chat with the bot is a ``dm`` (the contact's DMs thread together);
* in a group, a message that mentions the bot (``@username`` or a text mention) or replies to one
  of the bot's messages is a ``mention``, threaded by its reply chain;
* in a channel's discussion group, a reply to the automatic forward of a channel post is a
  ``comment``, threaded by that post;
* any other group message that continues a reply chain is kept only when that chain is already a
  conversation (``Converted.continues_thread``: the source checks the database), so a public group's
  chatter never becomes work.

Ids: a message id is unique only within its chat, so an external id is ``"<chat id>:<message id>"``
and thread keys use the same form for the root of the chain. Photos, documents, stickers and other
media become ``Attachment`` metadata (the file id is the ``platform_ref``); the text is the message
text or the media caption. Edits arrive as the same external id with ``edited_at`` set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inbox.events import Attachment, Author, Inbound
from inbox.models import Kind

Json = dict[str, Any]

# Media kinds kept as attachments, in the order Telegram documents them.
_MEDIA = ("animation", "audio", "document", "photo", "sticker", "video", "video_note", "voice")


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is, as getMe says: mentions and replies are recognised by these."""

    id: int
    username: str


@dataclass(frozen=True, slots=True)
class Converted:
    """One Inbound, and whether it may only join a conversation that already exists."""

    event: Inbound
    continues_thread: bool = False


def external_id(chat_id: int | str, message_id: int | str) -> str:
    """The external id of a message: ``"<chat id>:<message id>"``."""
    return f"{chat_id}:{message_id}"


def parse_external_id(value: str | None) -> tuple[int, int] | None:
    """``(chat id, message id)`` from an external id, or None when it is not one of ours."""
    if not value:
        return None
    chat, sep, message = value.rpartition(":")
    try:
        return (int(chat), int(message)) if sep else None
    except ValueError:
        return None


def timestamp(value: Any) -> datetime:
    """A Bot API Unix time as an aware UTC datetime."""
    return datetime.fromtimestamp(int(value), UTC)


def utf16_slice(text: str, offset: int, length: int) -> str:
    """The part of ``text`` an entity addresses (entity offsets count UTF-16 code units)."""
    encoded = text.encode("utf-16-le", "surrogatepass")
    return encoded[offset * 2 : (offset + length) * 2].decode("utf-16-le", "replace")


def message_of(update: Json) -> tuple[Json, bool] | None:
    """The message an update carries and whether it is an edit; None for other update kinds."""
    if isinstance(update.get("message"), dict):
        return update["message"], False
    if isinstance(update.get("edited_message"), dict):
        return update["edited_message"], True
    return None


def message_text(message: Json) -> str:
    """The text of a message, or the caption of its media."""
    return str(message.get("text") or message.get("caption") or "")


def message_entities(message: Json) -> list[Json]:
    """The entities of the text, or of the caption."""
    found = message.get("entities") if "text" in message else message.get("caption_entities")
    return [e for e in (found or []) if isinstance(e, dict)]


def mentions_bot(message: Json, bot: BotIdentity) -> bool:
    """True when the text names the bot with ``@username`` or a text mention."""
    text = message_text(message)
    handle = "@" + bot.username.lower()
    for entity in message_entities(message):
        kind = entity.get("type")
        if kind == "mention":
            piece = utf16_slice(text, int(entity.get("offset", 0)), int(entity.get("length", 0)))
            if piece.lower() == handle:
                return True
        elif kind == "text_mention" and (entity.get("user") or {}).get("id") == bot.id:
            return True
    return False


def attachments(message: Json) -> tuple[Attachment, ...]:
    """Metadata of the media a message carries; the bytes stay on Telegram."""
    found: list[Attachment] = []
    for kind in _MEDIA:
        media = message.get(kind)
        if not media:
            continue
        if kind == "photo":
            # Telegram sends every size it made, smallest first: the last is the photo itself.
            sizes = [s for s in media if isinstance(s, dict)]
            if not sizes:
                continue
            media = sizes[-1]
        if not isinstance(media, dict):
            continue
        name = media.get("file_name")
        if kind == "sticker":
            name = media.get("emoji") or media.get("set_name")
        found.append(
            Attachment(
                type=kind,
                name=name,
                mime_type=media.get("mime_type"),
                size=media.get("file_size"),
                platform_ref=media.get("file_id"),
            )
        )
    return tuple(found)


def author_of(message: Json) -> Author | None:
    """Who wrote the message: a user, or a chat posting under its own name (anonymous admins, channels)."""
    sender_chat = message.get("sender_chat")
    if isinstance(sender_chat, dict):
        return Author(
            id=f"chat:{sender_chat['id']}", handle=sender_chat.get("username"), name=sender_chat.get("title")
        )
    user = message.get("from")
    if not isinstance(user, dict) or user.get("is_bot"):
        return None
    name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p) or None
    return Author(id=str(user["id"]), handle=user.get("username"), name=name)


def is_start_command(text: str) -> bool:
    """``/start`` (with or without a deep-link payload): a client opening the chat, not a message."""
    word = text.split(maxsplit=1)[0] if text.strip() else ""
    return word.split("@", 1)[0].lower() == "/start"


def message_to_inbound(
    channel: str, message: Json, bot: BotIdentity, *, edited: bool = False
) -> Converted | None:
    """Convert one customer-side message; None when it is not for the inbox."""
    chat = message.get("chat") or {}
    if chat.get("type") not in ("private", "group", "supergroup") or message.get("is_automatic_forward"):
        return None
    author = author_of(message)
    text = message_text(message)
    files = attachments(message)
    if author is None or (not text.strip() and not files):
        return None  # a bot, or a service message (joins, pins, topic changes)
    chat_id = chat["id"]
    fields: dict[str, Any] = {
        "channel": channel,
        "external_id": external_id(chat_id, message["message_id"]),
        "author": author,
        "text": text,
        "created_at": timestamp(message["date"]),
        "attachments": files,
        "edited_at": timestamp(message["edit_date"]) if edited and message.get("edit_date") else None,
    }
    reply = _replied(message)
    if reply is not None:
        fields["reply_to"] = external_id(chat_id, reply["message_id"])
    if chat["type"] == "private":
        if is_start_command(text) and not files:
            return None
        return Converted(Inbound(kind=Kind.DM, **fields))
    root = _thread_root(message, reply)
    if reply is not None and reply.get("is_automatic_forward"):
        return Converted(
            Inbound(kind=Kind.COMMENT, thread_key=external_id(chat_id, reply["message_id"]), **fields)
        )
    replies_to_bot = reply is not None and (reply.get("from") or {}).get("id") == bot.id
    thread_key = external_id(chat_id, root if root is not None else message["message_id"])
    if replies_to_bot or mentions_bot(message, bot):
        return Converted(Inbound(kind=Kind.MENTION, thread_key=thread_key, **fields))
    if root is None:
        return None
    return Converted(Inbound(kind=Kind.MENTION, thread_key=thread_key, **fields), continues_thread=True)


def _replied(message: Json) -> Json | None:
    """The message this one answers; a forum topic's implicit reply to its first message is none."""
    reply = message.get("reply_to_message")
    if not isinstance(reply, dict):
        return None
    if message.get("is_topic_message") and reply.get("message_id") == message.get("message_thread_id"):
        return None
    return reply


def _thread_root(message: Json, reply: Json | None) -> int | None:
    """The first message of the reply chain this message belongs to, when it belongs to one.

    In a supergroup Telegram names it (``message_thread_id``); in a forum that id is the topic, so
    the chain is the replied message; in a basic group only the replied message is known.
    """
    chat = message.get("chat") or {}
    thread = message.get("message_thread_id")
    if chat.get("type") == "supergroup" and thread is not None and not message.get("is_topic_message"):
        return int(thread)
    if reply is not None:
        return (
            int(reply.get("message_thread_id") or reply["message_id"])
            if not chat.get("is_forum")
            else int(reply["message_id"])
        )
    return None
