"""The emulator's world: users, bots, chats, messages, files and per-bot update queues.

Everything here is plain synchronous state, shaped exactly like the Bot API's JSON objects so
that what the emulator returns is what Telegram would return. The HTTP side lives in
``emulator.py``; the Bot API methods in ``emulator_api.py``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

from inbox.clock import Clock

Json = dict[str, Any]

# Update kinds Telegram leaves out unless a bot asks for them in allowed_updates.
_OPT_IN_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}
# Message fields that make it a service message (always delivered, even in privacy mode).
_SERVICE_FIELDS = {
    "new_chat_members", "left_chat_member", "new_chat_title", "forum_topic_created", "pinned_message",
    "group_chat_created", "supergroup_chat_created", "migrate_to_chat_id", "migrate_from_chat_id",
}
MEMBER_STATUSES = ("creator", "administrator", "member", "restricted")
ADMIN_RIGHTS = (
    "can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
    "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users",
    "can_post_stories", "can_edit_stories", "can_delete_stories",
)
OPTIONAL_ADMIN_RIGHTS = ("can_post_messages", "can_edit_messages", "can_pin_messages", "can_manage_topics")


class ApiError(Exception):
    """A Bot API error: HTTP status, Telegram's description, and retry_after for 429."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> Json:
        """The error in Telegram's JSON shape."""
        body: Json = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(description: str) -> ApiError:
    """A 400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {description}")


@dataclass(eq=False)
class EmuUser:
    """A Telegram user (or a bot's own user)."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False
    is_premium: bool = False

    def to_api(self) -> Json:
        """The Bot API ``User`` object."""
        data: Json = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code and not self.is_bot:
            data["language_code"] = self.language_code
        if self.is_premium:
            data["is_premium"] = True
        return data

    @property
    def full_name(self) -> str:
        """First and last name."""
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name


@dataclass(eq=False)
class WebhookState:
    """A bot's webhook as set with setWebhook."""

    url: str
    secret_token: str | None = None
    max_connections: int = 40
    ip_address: str | None = None
    has_custom_certificate: bool = False
    last_error_date: int | None = None
    last_error_message: str | None = None
    deliveries: int = 0


@dataclass(eq=False)
class EmuBot:
    """A bot: its user, token, privacy mode, update queue, webhook and commands."""

    user: EmuUser
    token: str
    privacy_mode: bool = True
    pending: list[Json] = field(default_factory=list)
    next_update_id: int = 0
    allowed_updates: list[str] | None = None
    webhook: WebhookState | None = None
    commands: dict[tuple[str, str], list[Json]] = field(default_factory=dict)
    blocked_by: set[int] = field(default_factory=set)
    poll: asyncio.Future[str] | None = None
    waiters: set[asyncio.Future[None]] = field(default_factory=set)

    @property
    def id(self) -> int:
        """The bot's user id (the number before the colon in its token)."""
        return self.user.id

    @property
    def username(self) -> str:
        """The bot's username, without '@'."""
        return self.user.username or ""

    def wake(self) -> None:
        """Wake long polls and the webhook sender waiting for updates."""
        for waiter in list(self.waiters):
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()

    def waiter(self) -> asyncio.Future[None]:
        """A future resolved at the next new update."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.add(future)
        return future

    def accepts(self, kind: str) -> bool:
        """Whether the bot's allowed_updates let this kind of update through."""
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in _OPT_IN_UPDATES


@dataclass(eq=False)
class EmuChat:
    """A chat: private (one per bot and user), group, supergroup (maybe a forum) or channel."""

    id: int
    type: str
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    is_forum: bool = False
    linked_chat_id: int | None = None
    description: str | None = None
    bot_id: int | None = None  # private chats: the bot on the other side
    members: dict[int, str] = field(default_factory=dict)
    rights: dict[int, dict[str, bool]] = field(default_factory=dict)
    topics: dict[int, Json] = field(default_factory=dict)
    messages: dict[int, Json] = field(default_factory=dict)
    next_message_id: int = 1
    last_bot_sender: int | None = None

    def to_api(self) -> Json:
        """The Bot API ``Chat`` object."""
        data: Json = {"id": self.id, "type": self.type}
        for key in ("title", "username", "first_name", "last_name"):
            value = getattr(self, key)
            if value:
                data[key] = value
        if self.is_forum:
            data["is_forum"] = True
        return data

    @property
    def is_group(self) -> bool:
        """A group or supergroup (where flood limits per group apply, with channels)."""
        return self.type in ("group", "supergroup")

    def status(self, user_id: int) -> str:
        """A member's status: creator, administrator, member, restricted, left or kicked."""
        return self.members.get(user_id, "left")

    def is_member(self, user_id: int) -> bool:
        """Whether the user (or bot) is in the chat."""
        return self.status(user_id) in MEMBER_STATUSES

    def is_admin(self, user_id: int) -> bool:
        """Whether the user (or bot) administers the chat."""
        return self.status(user_id) in ("creator", "administrator")

    def right(self, user_id: int, name: str) -> bool:
        """Whether a member holds an administrator right (owners hold all)."""
        if self.status(user_id) == "creator":
            return True
        if self.status(user_id) != "administrator":
            return False
        return self.rights.get(user_id, {}).get(name, True)


@dataclass
class StoredFile:
    """A file the emulator holds: uploaded by a bot or sent by a user."""

    file_id: str
    file_unique_id: str
    kind: str  # photo, document, sticker, thumbnail
    data: bytes
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    url: str | None = None  # when the bot passed an HTTP URL instead of uploading

    @property
    def file_path(self) -> str:
        """Where getFile says the file lives."""
        folder = {"photo": "photos", "document": "documents", "sticker": "stickers"}.get(self.kind, "files")
        suffix = ""
        if self.file_name and "." in self.file_name:
            suffix = "." + self.file_name.rsplit(".", 1)[1]
        elif self.kind == "photo":
            suffix = ".jpg"
        elif self.kind == "sticker":
            suffix = ".webp"
        return f"{folder}/file_{self.file_unique_id}{suffix}"


@dataclass
class SentMessage:
    """A message the bot sent, as a test sees it.

    ``text`` is exactly what the bot sent (markup included); ``plain_text`` and ``entities`` are
    what the user sees. For media, these describe the caption.
    """

    bot_id: int
    method: str
    chat_id: int
    message_id: int
    text: str | None
    parse_mode: str | None
    plain_text: str | None
    entities: list[Json]
    reply_markup: Json | None
    reply_to: int | None
    thread_id: int | None
    message: Json
    kind: str = "text"  # text, photo, document
    file: StoredFile | None = None
    edits: list[Json] = field(default_factory=list)
    deleted: bool = False

    @property
    def buttons(self) -> list[Json]:
        """The inline keyboard's buttons, row by row, flattened."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [button for row in rows for button in row]


@dataclass
class CallbackAnswer:
    """A bot's answerCallbackQuery call."""

    callback_query_id: str
    bot_id: int
    user_id: int
    data: str | None
    text: str | None
    show_alert: bool
    url: str | None


@dataclass
class RecordedRequest:
    """One HTTP call to the Bot API, as the emulator saw and answered it.

    ``status`` is None while the call is in progress and 0 when its connection was dropped.
    """

    bot_id: int | None
    method: str
    params: Json
    status: int | None
    response: Json | None
    http_method: str
    content_type: str
    at: float


class World:
    """All state of the emulated Telegram, shared by every bot."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.users: dict[int, EmuUser] = {}
        self.bots: dict[int, EmuBot] = {}
        self.chats: dict[int, EmuChat] = {}
        self.private: dict[tuple[int, int], EmuChat] = {}
        self.files: dict[str, StoredFile] = {}
        self.sent: list[SentMessage] = []
        self.callback_queries: dict[str, tuple[int, int, int, int, str | None]] = {}
        self.callback_answers: list[CallbackAnswer] = []
        self.service_user = EmuUser(777000, "Telegram")
        self._next_user_id = 500_000_001
        self._next_group_id = 4_000_000_001
        self._next_channel_id = 2_000_000_001
        self._next_file = 1
        self._next_query = 1

    def now(self) -> int:
        """The current Unix time on the injected clock."""
        return int(self.clock.now().timestamp())

    # --- identities ------------------------------------------------------------------------

    def new_user_id(self) -> int:
        """A fresh user id."""
        while self._next_user_id in self.users:
            self._next_user_id += 1
        self._next_user_id += 1
        return self._next_user_id - 1

    def new_group_id(self) -> int:
        """A fresh basic group id (negative)."""
        self._next_group_id += 1
        return -(self._next_group_id - 1)

    def new_channel_id(self) -> int:
        """A fresh supergroup or channel id (-100 followed by ten digits)."""
        self._next_channel_id += 1
        return -(1_000_000_000_000 + self._next_channel_id - 1)

    def new_query_id(self, bot: EmuBot) -> str:
        """A fresh callback query id."""
        self._next_query += 1
        return str(bot.id * 1_000_000_000 + self._next_query - 1)

    def user_json(self, user_id: int) -> Json | None:
        """A known user's ``User`` object (for text mentions), or None."""
        user = self.users.get(user_id)
        return user.to_api() if user else None

    def private_chat(self, bot: EmuBot, user: EmuUser, create: bool = True) -> EmuChat | None:
        """The private chat between a bot and a user (opened when the user first writes)."""
        key = (bot.id, user.id)
        chat = self.private.get(key)
        if chat is None and create:
            chat = EmuChat(user.id, "private", first_name=user.first_name, last_name=user.last_name,
                           username=user.username, bot_id=bot.id,
                           members={user.id: "member", bot.id: "member"})
            self.private[key] = chat
        return chat

    def chat_for_bot(self, bot: EmuBot, chat_id: int | str) -> EmuChat:
        """Resolve a chat_id as a bot sees it; 400 "chat not found" otherwise."""
        if isinstance(chat_id, str):
            name = chat_id.lstrip("@").lower()
            for candidate in self.chats.values():
                if candidate.username and candidate.username.lower() == name and chat_id.startswith("@"):
                    return candidate
            raise bad_request("chat not found")
        found = self.private.get((bot.id, chat_id)) if chat_id > 0 else self.chats.get(chat_id)
        if found is None:
            raise bad_request("chat not found")
        return found

    # --- files -----------------------------------------------------------------------------

    def store_file(self, kind: str, data: bytes, *, file_name: str | None = None,
                   mime_type: str | None = None, width: int | None = None, height: int | None = None,
                   url: str | None = None) -> StoredFile:
        """Keep a file and give it Telegram-looking ids."""
        number = self._next_file
        self._next_file += 1
        prefix = {"photo": "AgACAgIAAxkBAA", "document": "BQACAgIAAxkBAA", "sticker": "CAACAgIAAxkBAA",
                  "thumbnail": "AAMCAgADGQEAA"}.get(kind, "BAACAgIAAxkBAA")
        digest = hashlib.sha256(f"{kind}:{number}".encode()).digest()
        token = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        unique = "AQAD" + base64.urlsafe_b64encode(number.to_bytes(6, "big")).decode().rstrip("=")
        stored = StoredFile(f"{prefix}{token}", unique, kind, data, file_name, mime_type, width, height, url)
        self.files[stored.file_id] = stored
        return stored

    # --- messages ----------------------------------------------------------------------------

    def add_message(self, chat: EmuChat, body: Json, *, sender: EmuUser | None = None,
                    sender_chat: EmuChat | None = None, reply_to: int | None = None,
                    thread_id: int | None = None, allow_missing_reply: bool = False,
                    head: Json | None = None) -> Json:
        """Store a new message in ``chat`` with Telegram's threading rules; return its JSON."""
        reply = None
        if reply_to is not None:
            reply = chat.messages.get(reply_to)
            if reply is None and not allow_missing_reply:
                raise bad_request("message to be replied not found")
        thread, is_topic = self._thread(chat, reply, thread_id)
        if is_topic and reply is None and thread is not None:
            # Telegram quirk: a message in a forum topic that replies to nothing is shown as a
            # reply to the topic's creation message.
            reply = chat.messages.get(thread)
        message_id = chat.next_message_id
        chat.next_message_id += 1
        message: Json = {"message_id": message_id}
        if thread is not None:
            message["message_thread_id"] = thread
        if sender is not None:
            message["from"] = sender.to_api()
        if sender_chat is not None:
            message["sender_chat"] = sender_chat.to_api()
        message["date"] = self.now()
        message["chat"] = chat.to_api()
        if is_topic:
            message["is_topic_message"] = True
        if head:
            message.update(head)
        if reply is not None:
            message["reply_to_message"] = quoted(reply)
        message.update(body)
        chat.messages[message_id] = message
        return message

    def _thread(self, chat: EmuChat, reply: Json | None, thread_id: int | None) -> tuple[int | None, bool]:
        if chat.type != "supergroup":
            return None, False
        if chat.is_forum:
            if thread_id is not None:
                if thread_id not in chat.topics:
                    raise bad_request("message thread not found")
                return thread_id, True
            if reply is not None and reply.get("is_topic_message"):
                return reply.get("message_thread_id"), True
            return None, False
        if thread_id is not None:
            if thread_id not in chat.messages:
                raise bad_request("message thread not found")
            return thread_id, False
        if reply is not None:
            return reply.get("message_thread_id", reply["message_id"]), False
        return None, False

    # --- updates -----------------------------------------------------------------------------

    def emit(self, bot: EmuBot, kind: str, payload: Json) -> Json | None:
        """Queue an update for a bot (unless its allowed_updates exclude the kind)."""
        if not bot.accepts(kind):
            return None
        bot.next_update_id += 1
        update = {"update_id": bot.next_update_id, kind: copy.deepcopy(payload)}
        bot.pending.append(update)
        bot.wake()
        return update

    def deliver(self, chat: EmuChat, message: Json, kind: str = "message") -> None:
        """Send a user's (or channel's) new or edited message to every bot that can see it."""
        if chat.type == "private":
            bot = self.bots.get(chat.bot_id or 0)
            if bot is not None:
                self.emit(bot, kind, message)
            return
        sender_id = (message.get("from") or {}).get("id")
        for bot in self.bots.values():
            if chat.type == "channel":
                if chat.is_admin(bot.id):
                    self.emit(bot, "edited_channel_post" if kind.startswith("edited") else "channel_post",
                              message)
                continue
            if not chat.is_member(bot.id) or sender_id == bot.id or sender_id in self.bots:
                continue  # bots never see their own or other bots' messages
            if self.bot_sees(bot, chat, message):
                self.emit(bot, kind, message)

    def bot_sees(self, bot: EmuBot, chat: EmuChat, message: Json) -> bool:
        """Privacy mode: which group messages a bot receives."""
        if not bot.privacy_mode or chat.is_admin(bot.id):
            return True
        if _SERVICE_FIELDS & message.keys():
            return True
        reply = message.get("reply_to_message") or {}
        if (reply.get("from") or {}).get("id") == bot.id:
            return True
        text = message.get("text") or message.get("caption") or ""
        entities = message.get("entities") or message.get("caption_entities") or []
        for entity in entities:
            piece = slice16(text, entity["offset"], entity["length"]).lower()
            if entity["type"] == "mention" and piece == "@" + bot.username.lower():
                return True
            if entity["type"] == "text_mention" and entity.get("user", {}).get("id") == bot.id:
                return True
            if entity["type"] == "bot_command":
                if "@" in piece:
                    if piece.split("@", 1)[1] == bot.username.lower():
                        return True
                elif chat.last_bot_sender in (None, bot.id):
                    return True
        return False

    def find_sent(self, bot_id: int, chat_id: int, message_id: int) -> SentMessage | None:
        """The record of a message a bot sent."""
        for record in reversed(self.sent):
            if record.bot_id == bot_id and record.chat_id == chat_id and record.message_id == message_id:
                return record
        return None


def quoted(message: Json) -> Json:
    """A message as it appears inside another's reply_to_message (one level deep)."""
    inner = copy.deepcopy(message)
    inner.pop("reply_to_message", None)
    return inner


def slice16(text: str, offset: int, length: int) -> str:
    """The part of ``text`` at a UTF-16 offset and length (how entities address text)."""
    encoded = text.encode("utf-16-le", "surrogatepass")
    return encoded[offset * 2:(offset + length) * 2].decode("utf-16-le", "replace")


def member_json(chat: EmuChat, user: EmuUser) -> Json:
    """The ``ChatMember`` object for a user in a chat (the subtype follows the status)."""
    status = chat.status(user.id)
    data: Json = {"status": status, "user": user.to_api()}
    if status == "creator":
        data["is_anonymous"] = False
    elif status == "administrator":
        for name in ADMIN_RIGHTS:
            data[name] = chat.right(user.id, name) if name not in ("can_be_edited", "is_anonymous") else False
        if chat.type == "channel":
            data["can_post_messages"] = chat.right(user.id, "can_post_messages")
            data["can_edit_messages"] = chat.right(user.id, "can_edit_messages")
        if chat.is_group:
            data["can_pin_messages"] = chat.right(user.id, "can_pin_messages")
        if chat.type == "supergroup":
            data["can_manage_topics"] = chat.right(user.id, "can_manage_topics")
    elif status == "kicked":
        data["until_date"] = 0
    return data
