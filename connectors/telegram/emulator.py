"""A fake Telegram Bot API server for tests and demos.

``TelegramEmulator`` is an aiohttp server that speaks the Bot API well enough for the real
python-telegram-bot to run against it unmodified::

    async with TelegramEmulator() as emu:
        app = (Application.builder().token(emu.token)
               .base_url(emu.base_url).base_file_url(emu.base_file_url).build())

It keeps a small consistent world (users, bots, private chats, groups, forum supergroups,
channels with discussion groups, message ids per chat, update ids per bot) and lets a test act
as users (``user_dm``, ``group_message``, ``channel_post``, ``comment``, ``press_button`` ...)
and read what the bot did (``sent``, ``requests``, ``callback_answers``, ``commands``).

Realism on purpose: text is parsed like Telegram (bad HTML or MarkdownV2 gives 400 "can't parse
entities"), flood limits answer 429 with ``retry_after``, privacy mode hides group chatter from
bots that are not administrators, a second long poll ends the first with 409, a webhook turns
getUpdates into 409, and messages in a forum topic quote the topic's first message as Telegram
does. Faults are injected with ``inject``, ``slow`` and ``drop``.

Time: message dates and flood limits follow the injected ``Clock`` (real time by default);
long-poll timeouts, ``slow`` and webhook retries use real time, as network waits do.
Not emulated: inline mode, payments, media groups, and webhook replies carrying a method call.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import mimetypes
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from connectors.telegram.emulator_api import BotApi, create_topic, document_json, image_size, photo_sizes
from connectors.telegram.emulator_limits import FloodGate, FloodLimits
from connectors.telegram.emulator_markup import format_text
from connectors.telegram.emulator_params import CANONICAL, ParamError, Upload, parse_params
from connectors.telegram.emulator_world import (
    ApiError,
    CallbackAnswer,
    EmuBot,
    EmuChat,
    EmuUser,
    Json,
    RecordedRequest,
    SentMessage,
    WebhookState,
    World,
    bad_request,
    member_json,
)
from inbox.clock import Clock, SystemClock

__all__ = [
    "ApiError",
    "CallbackAnswer",
    "EmuBot",
    "EmuChat",
    "EmuUser",
    "FloodLimits",
    "RecordedRequest",
    "SentMessage",
    "TelegramEmulator",
]

ChatRef = EmuChat | EmuUser | int
# A 1x1 transparent PNG: the default photo a user sends.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")
_CONFLICT_WEBHOOK = ("Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
                     "delete the webhook first")
_CONFLICT_POLL = ("Conflict: terminated by other getUpdates request; make sure that only one bot instance "
                  "is running")
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: injected error", 403: "Forbidden: injected error", 409: "Conflict: injected error",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


@dataclass
class _Fault:
    method: str  # lower-case method name, or "*"
    kind: str  # error, slow, drop
    remaining: int | None
    status: int = 0
    retry_after: int | None = None
    description: str | None = None
    seconds: float = 0.0
    after_processing: bool = False


class TelegramEmulator:
    """An emulated Telegram Bot API server with a test-facing API to act as users."""

    def __init__(
        self,
        token: str | None = None,
        *,
        bot_username: str = "saluran_bot",
        bot_name: str = "Saluran",
        privacy_mode: bool = True,
        clock: Clock | None = None,
        monotonic: Callable[[], float] | None = None,
        flood_limits: FloodLimits | None = None,
        strict_html: bool = True,
        webhook_retry_delays: Sequence[float] = (0.05, 0.1, 0.25, 0.5, 1.0),
        webhook_timeout: float = 5.0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.world = World(self.clock)
        if monotonic is None:
            monotonic = time.monotonic if clock is None else (lambda: self.clock.now().timestamp())
        self.flood = FloodGate(flood_limits or FloodLimits(), monotonic)
        self.api = BotApi(self.world, self.flood, strict_html=strict_html)
        self.requests: list[RecordedRequest] = []
        self.webhook_retry_delays = tuple(webhook_retry_delays) or (0.05,)
        self.webhook_timeout = webhook_timeout
        self.url = ""
        self._faults: list[_Fault] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._webhook_tasks: dict[int, asyncio.Task[None]] = {}
        self._watchers: set[asyncio.Future[None]] = set()
        self._discussion: dict[tuple[int, int], tuple[int, int]] = {}
        self.bot = self.add_bot(token, username=bot_username, first_name=bot_name, privacy_mode=privacy_mode)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving; return the base URL (e.g. ``http://127.0.0.1:54321``)."""
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{host}:{bound[1]}"
        self._session = aiohttp.ClientSession()
        return self.url

    async def stop(self) -> None:
        """Stop serving: end long polls, webhook senders and the server."""
        for bot in self.world.bots.values():
            if bot.poll is not None and not bot.poll.done():
                bot.poll.set_result("stop")
        for task in self._webhook_tasks.values():
            task.cancel()
        for task in self._webhook_tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._webhook_tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TelegramEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def token(self) -> str:
        """The default bot's token."""
        return self.bot.token

    @property
    def base_url(self) -> str:
        """What to pass as PTB's ``base_url`` (the token and method are appended)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """What to pass as PTB's ``base_file_url``."""
        return f"{self.url}/file/bot"

    # --- the world: bots, users, chats --------------------------------------------------------

    def add_bot(self, token: str | None = None, *, username: str, first_name: str | None = None,
                privacy_mode: bool = True) -> EmuBot:
        """Register another bot (one emulator can host the customer bot and the team bot)."""
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,30}[Bb][Oo][Tt]", username):
            raise ValueError(f"bot username {username!r} must be 5-32 characters and end in 'bot'")
        if token is None:
            bot_id = 7_000_000_001 + len(self.world.bots)
            secret = hashlib.sha256(f"{bot_id}:{username}".encode()).hexdigest()[:32]
            token = f"{bot_id}:AAE{secret}"
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]{30,}", token):
            raise ValueError("a bot token looks like '123456789:' followed by at least 30 characters")
        bot_id = int(token.split(":", 1)[0])
        if bot_id in self.world.bots or bot_id in self.world.users:
            raise ValueError(f"user id {bot_id} is taken")
        user = EmuUser(bot_id, first_name or username, username=username, is_bot=True)
        bot = EmuBot(user, token, privacy_mode=privacy_mode, next_update_id=100_000_000 + len(self.world.bots)
                     * 10_000_000)
        self.world.bots[bot_id] = bot
        return bot

    def user(self, first_name: str, *, username: str | None = None, last_name: str | None = None,
             language_code: str | None = "en", user_id: int | None = None,
             is_premium: bool = False) -> EmuUser:
        """Create a user who can write to bots and post in chats."""
        uid = user_id if user_id is not None else self.world.new_user_id()
        if uid in self.world.users or uid in self.world.bots:
            raise ValueError(f"user id {uid} is taken")
        user = EmuUser(uid, first_name, last_name, username, language_code, is_premium=is_premium)
        self.world.users[uid] = user
        return user

    def group(self, title: str, *, members: Iterable[EmuUser] = (), bot_status: str = "member",
              bots: Iterable[EmuBot] | None = None) -> EmuChat:
        """Create a basic group with the users and the bot(s) already in it."""
        chat = EmuChat(self.world.new_group_id(), "group", title=title)
        self._populate(chat, members, bot_status, bots)
        return chat

    def supergroup(self, title: str, *, username: str | None = None, is_forum: bool = False,
                   members: Iterable[EmuUser] = (), bot_status: str = "member",
                   bots: Iterable[EmuBot] | None = None, description: str | None = None) -> EmuChat:
        """Create a supergroup (a forum when ``is_forum``) with the bot(s) in it.

        A bot that is only a "member" with privacy mode on sees commands, mentions and replies
        only; make it an "administrator" to see every message (as on Telegram).
        """
        chat = EmuChat(self.world.new_channel_id(), "supergroup", title=title, username=username,
                       is_forum=is_forum, description=description)
        self._populate(chat, members, bot_status, bots)
        return chat

    def channel(self, title: str, *, username: str | None = None, discussion: EmuChat | None = None,
                bot_status: str = "administrator", bots: Iterable[EmuBot] | None = None) -> EmuChat:
        """Create a channel, optionally linked to a discussion supergroup for comments."""
        chat = EmuChat(self.world.new_channel_id(), "channel", title=title, username=username)
        self._populate(chat, (), bot_status, bots)
        if discussion is not None:
            if discussion.type != "supergroup":
                raise ValueError("a discussion group must be a supergroup")
            chat.linked_chat_id = discussion.id
            discussion.linked_chat_id = chat.id
        return chat

    def _populate(self, chat: EmuChat, members: Iterable[EmuUser], bot_status: str,
                  bots: Iterable[EmuBot] | None) -> None:
        for index, user in enumerate(members):
            chat.members[user.id] = "creator" if index == 0 else "member"
        for bot in (list(bots) if bots is not None else [self.bot]):
            chat.members[bot.id] = bot_status
        self.world.chats[chat.id] = chat

    def set_bot_status(self, chat: EmuChat, status: str, *, bot: EmuBot | None = None,
                       rights: dict[str, bool] | None = None) -> None:
        """Change a bot's membership quietly (no update), e.g. revoke an admin right."""
        bot = bot or self.bot
        chat.members[bot.id] = status
        if rights is not None:
            chat.rights[bot.id] = dict(rights)

    def add_bot_to_group(self, chat: EmuChat, *, by: EmuUser, status: str = "member",
                         bot: EmuBot | None = None) -> Json:
        """A user adds the bot: ``my_chat_member`` update, plus the service message in groups."""
        bot = bot or self.bot
        self.world.chats.setdefault(chat.id, chat)
        if not chat.is_member(by.id):
            chat.members[by.id] = "member"
        old = member_json(chat, bot.user)
        chat.members[bot.id] = status
        event = {"chat": chat.to_api(), "from": by.to_api(), "date": self.world.now(),
                 "old_chat_member": old, "new_chat_member": member_json(chat, bot.user)}
        self.world.emit(bot, "my_chat_member", event)
        if chat.is_group:
            message = self.world.add_message(chat, {"new_chat_members": [bot.user.to_api()]}, sender=by)
            self.world.deliver(chat, message)
        self._notify()
        return event

    def remove_bot_from_group(self, chat: EmuChat, *, by: EmuUser, bot: EmuBot | None = None) -> Json:
        """A user removes (bans) the bot: ``my_chat_member`` with status "kicked"."""
        bot = bot or self.bot
        old = member_json(chat, bot.user)
        chat.members[bot.id] = "kicked"
        event = {"chat": chat.to_api(), "from": by.to_api(), "date": self.world.now(),
                 "old_chat_member": old, "new_chat_member": member_json(chat, bot.user)}
        self.world.emit(bot, "my_chat_member", event)
        self._notify()
        return event

    def block_bot(self, user: EmuUser, *, bot: EmuBot | None = None) -> Json:
        """The user blocks the bot: sends to them now fail with 403."""
        bot = bot or self.bot
        chat = self.world.private_chat(bot, user)
        assert chat is not None
        old = member_json(chat, bot.user)
        bot.blocked_by.add(user.id)
        chat.members[bot.id] = "kicked"
        event = {"chat": chat.to_api(), "from": user.to_api(), "date": self.world.now(),
                 "old_chat_member": old, "new_chat_member": member_json(chat, bot.user)}
        self.world.emit(bot, "my_chat_member", event)
        return event

    # --- acting as users ----------------------------------------------------------------------

    def user_dm(self, user: EmuUser, text: str, *, entities: list[Json] | None = None,
                reply_to: int | None = None, bot: EmuBot | None = None) -> Json:
        """The user writes to the bot in private; return the message as the bot receives it."""
        bot = bot or self.bot
        chat = self.world.private_chat(bot, user)
        assert chat is not None
        if user.id in bot.blocked_by:  # writing to a bot unblocks it
            bot.blocked_by.discard(user.id)
            chat.members[bot.id] = "member"
        return self._user_message(chat, user, self._text_body(text, entities), reply_to=reply_to)

    def group_message(self, chat: EmuChat, user: EmuUser, text: str, *, reply_to: int | None = None,
                      message_thread_id: int | None = None, entities: list[Json] | None = None) -> Json:
        """The user posts in a group or supergroup (entities such as @mentions are found for you)."""
        if not chat.is_group:
            raise ValueError("group_message needs a group or supergroup")
        return self._user_message(chat, user, self._text_body(text, entities), reply_to=reply_to,
                                  thread_id=message_thread_id)

    def channel_post(self, channel: EmuChat, text: str, *, author_signature: str | None = None,
                     entities: list[Json] | None = None) -> Json:
        """The channel publishes a post; it is forwarded into the linked discussion group."""
        if channel.type != "channel":
            raise ValueError("channel_post needs a channel")
        body = self._text_body(text, entities)
        head = {"author_signature": author_signature} if author_signature else None
        post = self.world.add_message(channel, body, sender_chat=channel, head=head)
        self.world.deliver(channel, post, "channel_post")
        if channel.linked_chat_id is not None:
            group = self.world.chats[channel.linked_chat_id]
            origin: Json = {"type": "channel", "date": post["date"], "chat": channel.to_api(),
                            "message_id": post["message_id"]}
            if author_signature:
                origin["author_signature"] = author_signature
            forward = self.world.add_message(
                group, copy.deepcopy(body), sender=self.world.service_user, sender_chat=channel,
                head={"forward_origin": origin, "is_automatic_forward": True})
            self._discussion[(channel.id, post["message_id"])] = (group.id, forward["message_id"])
            self.world.deliver(group, forward)
        self._notify()
        return copy.deepcopy(post)

    def discussion_copy(self, channel: EmuChat, post_id: int) -> Json:
        """The automatic forward of a channel post in the discussion group."""
        group_id, message_id = self._discussion[(channel.id, post_id)]
        return copy.deepcopy(self.world.chats[group_id].messages[message_id])

    def comment(self, channel: EmuChat, post_id: int, user: EmuUser, text: str, *,
                reply_to: int | None = None, entities: list[Json] | None = None) -> Json:
        """The user comments under a channel post (a reply in the discussion group's thread)."""
        group_id, forward_id = self._discussion[(channel.id, post_id)]
        group = self.world.chats[group_id]
        return self._user_message(group, user, self._text_body(text, entities),
                                  reply_to=reply_to if reply_to is not None else forward_id)

    def send_photo(self, chat: ChatRef, user: EmuUser, *, data: bytes = TINY_PNG, caption: str | None = None,
                   reply_to: int | None = None, message_thread_id: int | None = None,
                   bot: EmuBot | None = None) -> Json:
        """The user sends a photo (to a group, or to the bot when ``chat`` is the user)."""
        width, height = image_size(data)
        stored = self.world.store_file("photo", data, width=width, height=height, mime_type="image/png")
        body: Json = {"photo": photo_sizes(self.world, stored)}
        body.update(self._caption(caption))
        return self._user_message(self._chat(chat, bot), user, body, reply_to=reply_to,
                                  thread_id=message_thread_id)

    def send_document(self, chat: ChatRef, user: EmuUser, *, data: bytes = b"%PDF-1.4\n%%EOF\n",
                      file_name: str = "document.pdf", mime_type: str | None = None,
                      caption: str | None = None, reply_to: int | None = None,
                      message_thread_id: int | None = None, bot: EmuBot | None = None) -> Json:
        """The user sends a file."""
        mime = mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        stored = self.world.store_file("document", data, file_name=file_name, mime_type=mime)
        body: Json = {"document": document_json(stored)}
        body.update(self._caption(caption))
        return self._user_message(self._chat(chat, bot), user, body, reply_to=reply_to,
                                  thread_id=message_thread_id)

    def send_sticker(self, chat: ChatRef, user: EmuUser, *, emoji: str = "\U0001f44d",
                     set_name: str | None = "EmulatorStickers", reply_to: int | None = None,
                     message_thread_id: int | None = None, bot: EmuBot | None = None) -> Json:
        """The user sends a sticker."""
        stored = self.world.store_file("sticker", b"RIFF....WEBP", width=512, height=512,
                                       mime_type="image/webp")
        sticker: Json = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                         "type": "regular", "width": 512, "height": 512, "is_animated": False,
                         "is_video": False, "emoji": emoji, "file_size": len(stored.data)}
        if set_name:
            sticker["set_name"] = set_name
        return self._user_message(self._chat(chat, bot), user, {"sticker": sticker}, reply_to=reply_to,
                                  thread_id=message_thread_id)

    def edit_message(self, chat: ChatRef, message_id: int, text: str, *, entities: list[Json] | None = None,
                     bot: EmuBot | None = None) -> Json:
        """A user (or channel) edits an earlier message: ``edited_message`` / ``edited_channel_post``."""
        target = self._chat(chat, bot)
        message = target.messages.get(message_id)
        if message is None:
            raise ValueError(f"no message {message_id} in chat {target.id}")
        if (message.get("from") or {}).get("id") in self.world.bots:
            raise ValueError("users cannot edit a bot's message")
        self._apply_edit(message, text, entities)
        kind = "edited_channel_post" if target.type == "channel" else "edited_message"
        self.world.deliver(target, message, kind)
        copy_ref = self._discussion.get((target.id, message_id))
        if copy_ref is not None:
            group = self.world.chats[copy_ref[0]]
            forward = group.messages.get(copy_ref[1])
            if forward is not None:
                self._apply_edit(forward, text, entities)
                self.world.deliver(group, forward, "edited_message")
        self._notify()
        return copy.deepcopy(message)

    def _apply_edit(self, message: Json, text: str, entities: list[Json] | None) -> None:
        body = self._text_body(text, entities)
        key = "caption" if "text" not in message and ("caption" in message or "photo" in message
                                                       or "document" in message) else "text"
        message[key] = body["text"]
        entity_key = "caption_entities" if key == "caption" else "entities"
        message.pop(entity_key, None)
        if body.get("entities"):
            message[entity_key] = body["entities"]
        message["edit_date"] = self.world.now()

    def press_button(self, chat: ChatRef, message_id: int, user: EmuUser, callback_data: str | None = None,
                     *, text: str | None = None, bot: EmuBot | None = None) -> str:
        """The user presses an inline button (by callback_data or label); return the query id."""
        target = self._chat(chat, bot)
        message = target.messages.get(message_id)
        if message is None:
            raise ValueError(f"no message {message_id} in chat {target.id}")
        buttons = [b for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
        matches = [b for b in buttons if "callback_data" in b and
                   (callback_data is None or b["callback_data"] == callback_data) and
                   (text is None or b["text"] == text)]
        if not matches:
            raise ValueError(f"message {message_id} has no button with callback_data={callback_data!r}"
                             f" text={text!r}; it has {buttons!r}")
        sender_id = (message.get("from") or {}).get("id")
        owner = self.world.bots.get(sender_id) if sender_id is not None else None
        if owner is None:
            owner = bot or self.bot
        data = matches[0]["callback_data"]
        query_id = self.world.new_query_id(owner)
        self.world.callback_queries[query_id] = (owner.id, user.id, target.id, message_id, data)
        instance = int(hashlib.sha256(f"{owner.id}:{target.id}".encode()).hexdigest()[:15], 16)
        self.world.emit(owner, "callback_query", {
            "id": query_id, "from": user.to_api(), "message": copy.deepcopy(message),
            "chat_instance": str(-instance if target.id < 0 else instance), "data": data,
        })
        self._notify()
        return query_id

    def create_topic(self, chat: EmuChat, user: EmuUser, name: str, *, icon_color: int = 7322096) -> Json:
        """A member opens a forum topic; return the ``ForumTopic``."""
        if chat.type != "supergroup" or not chat.is_forum:
            raise ValueError("topics exist only in forum supergroups")
        if not chat.is_member(user.id):
            chat.members[user.id] = "member"
        topic = create_topic(self.world, chat, user, name, icon_color, None)
        self.world.deliver(chat, chat.messages[topic["message_thread_id"]])
        self._notify()
        return topic

    def _user_message(self, chat: EmuChat, user: EmuUser, body: Json, *, reply_to: int | None = None,
                      thread_id: int | None = None) -> Json:
        if chat.type == "channel":
            raise ValueError("users cannot post in a channel; use channel_post")
        if chat.type != "private" and not chat.is_member(user.id):
            chat.members[user.id] = "member"
        message = self.world.add_message(chat, body, sender=user, reply_to=reply_to, thread_id=thread_id)
        self.world.deliver(chat, message)
        self._notify()
        return copy.deepcopy(message)

    def _text_body(self, text: str, entities: list[Json] | None) -> Json:
        formatted = format_text(text, None, entities, lookup=self.world.user_json)
        if not formatted.text:
            raise ValueError("Telegram does not deliver empty messages")
        body: Json = {"text": formatted.text}
        if formatted.entities:
            body["entities"] = formatted.entities
        return body

    def _caption(self, caption: str | None) -> Json:
        if not caption:
            return {}
        formatted = format_text(caption, None, None, lookup=self.world.user_json)
        body: Json = {"caption": formatted.text}
        if formatted.entities:
            body["caption_entities"] = formatted.entities
        return body

    def _chat(self, chat: ChatRef, bot: EmuBot | None) -> EmuChat:
        if isinstance(chat, EmuChat):
            return chat
        bot = bot or self.bot
        if isinstance(chat, EmuUser):
            found = self.world.private_chat(bot, chat)
            assert found is not None
            return found
        if chat > 0:
            private = self.world.private.get((bot.id, chat))
            if private is None:
                raise ValueError(f"user {chat} has no private chat with @{bot.username}")
            return private
        return self.world.chats[chat]

    # --- reading what bots did ----------------------------------------------------------------

    def sent(self, chat_id: ChatRef | None = None, *, bot: EmuBot | None = None) -> list[SentMessage]:
        """Messages bots sent to a chat (id, EmuChat, or EmuUser for the DM), or everywhere; oldest
        first, deleted ones included (flagged)."""
        wanted = _chat_id(chat_id)
        return [record for record in self.world.sent
                if (wanted is None or record.chat_id == wanted)
                and (bot is None or record.bot_id == bot.id)]

    def last_sent(self, chat_id: ChatRef | None = None, *, bot: EmuBot | None = None) -> SentMessage:
        """The most recent message a bot sent (to ``chat_id``)."""
        records = self.sent(chat_id, bot=bot)
        if not records:
            raise LookupError("the bot has sent nothing there")
        return records[-1]

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        """answerCallbackQuery calls, oldest first."""
        return self.world.callback_answers

    def calls(self, method: str) -> list[RecordedRequest]:
        """Recorded requests for one Bot API method (case-insensitive)."""
        return [r for r in self.requests if r.method.lower() == method.lower()]

    def commands(self, *, bot: EmuBot | None = None, scope: Json | None = None,
                 language_code: str = "") -> list[Json]:
        """The commands set with setMyCommands for a scope (default scope when omitted)."""
        bot = bot or self.bot
        key = (json.dumps(scope or {"type": "default"}, sort_keys=True), language_code)
        return copy.deepcopy(bot.commands.get(key, []))

    def topics(self, chat: EmuChat) -> list[Json]:
        """The forum topics of a supergroup."""
        return [copy.deepcopy(topic) for topic in chat.topics.values()]

    def message(self, chat: ChatRef, message_id: int, *, bot: EmuBot | None = None) -> Json:
        """A stored message as Telegram holds it now (after edits)."""
        return copy.deepcopy(self._chat(chat, bot).messages[message_id])

    def pending_updates(self, *, bot: EmuBot | None = None) -> list[Json]:
        """Updates the bot has not confirmed yet."""
        return copy.deepcopy((bot or self.bot).pending)

    def file_content(self, file_id: str) -> bytes:
        """The bytes of a stored file."""
        return self.world.files[file_id].data

    async def wait_for(self, predicate: Callable[[], bool], *, within: float = 5.0) -> None:
        """Wait (up to ``within`` seconds of real time) until ``predicate()`` holds, else TimeoutError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("the emulator did not see the expected activity in time")
            watcher: asyncio.Future[None] = loop.create_future()
            self._watchers.add(watcher)
            try:
                await asyncio.wait({watcher}, timeout=min(remaining, 0.05))
            finally:
                self._watchers.discard(watcher)

    async def wait_for_sent(self, count: int = 1, chat_id: ChatRef | None = None, *,
                            bot: EmuBot | None = None, within: float = 5.0) -> list[SentMessage]:
        """Wait until bots have sent at least ``count`` messages (to ``chat_id``); return them all."""
        await self.wait_for(lambda: len(self.sent(chat_id, bot=bot)) >= count, within=within)
        return self.sent(chat_id, bot=bot)

    async def wait_for_request(self, method: str, *, count: int = 1,
                               within: float = 5.0) -> list[RecordedRequest]:
        """Wait until the Bot API method was called ``count`` times."""
        await self.wait_for(lambda: len(self.calls(method)) >= count, within=within)
        return self.calls(method)

    def _notify(self) -> None:
        for watcher in list(self._watchers):
            if not watcher.done():
                watcher.set_result(None)

    # --- fault injection ----------------------------------------------------------------------

    def inject(self, method: str, status: int = 429, *, retry_after: int | None = None, times: int | None = 1,
               description: str | None = None) -> None:
        """Answer the next ``times`` calls of ``method`` ("*" for all) with an error (None: forever)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        self._faults.append(_Fault(method.lower(), "error", times, status=status, retry_after=retry_after,
                                   description=description))

    def slow(self, method: str, seconds: float, *, times: int | None = None) -> None:
        """Answer ``method`` ``seconds`` late (real time); the call itself takes effect at once,
        so a client that times out has still sent its message. ``times`` None: until cleared."""
        self._faults.append(_Fault(method.lower(), "slow", times, seconds=seconds))

    def drop(self, method: str, *, times: int | None = 1, after_processing: bool = False) -> None:
        """Close the connection instead of answering; ``after_processing`` does the work first
        (the bot's message is sent, but the bot never hears so)."""
        self._faults.append(_Fault(method.lower(), "drop", times, after_processing=after_processing))

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._faults.clear()

    def _take_faults(self, method: str) -> dict[str, _Fault]:
        taken: dict[str, _Fault] = {}
        for fault in list(self._faults):
            if fault.kind in taken or fault.method not in (method.lower(), "*"):
                continue
            taken[fault.kind] = fault
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
        return taken

    # --- HTTP ---------------------------------------------------------------------------------

    def _bot_by_token(self, token: str) -> EmuBot | None:
        for bot in self.world.bots.values():
            if bot.token == token:
                return bot
        return None

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        name = request.match_info["method"]
        bot = self._bot_by_token(token)
        method = CANONICAL.get(name.lower(), name)
        # logged on arrival (status None) so tests can see a long poll that is still waiting
        record = RecordedRequest(bot_id=bot.id if bot else None, method=method, params={}, status=None,
                                 response=None, http_method=request.method,
                                 content_type=request.content_type, at=time.monotonic())
        self.requests.append(record)
        self._notify()
        try:
            return await self._serve(request, bot, name, method, record)
        except asyncio.CancelledError:
            if record.status is None:
                record.status = 0  # the client went away first
            raise

    async def _serve(self, request: web.Request, bot: EmuBot | None, name: str, method: str,
                     record: RecordedRequest) -> web.StreamResponse:
        token = request.match_info["token"]
        faults: dict[str, _Fault] = {}
        try:
            if bot is None:
                if re.fullmatch(r"\d+:[A-Za-z0-9_-]{30,}", token):
                    raise ApiError(401, "Unauthorized")
                raise ApiError(404, "Not Found")
            raw, uploads = await _read_params(request)
            record.params = _loggable(raw, uploads)
            if name.lower() not in CANONICAL:
                raise ApiError(404, "Not Found: method not found")
            faults = self._take_faults(method)
            drop = faults.get("drop")
            if drop is not None and not drop.after_processing:
                return self._drop(request, record)
            if "error" in faults:
                fault = faults["error"]
                description = fault.description or _fault_description(fault)
                raise ApiError(fault.status, description, fault.retry_after)
            params = parse_params(method, raw, uploads)
            result = await self._dispatch(bot, method, params)
            status, body = 200, {"ok": True, "result": result}
        except ParamError as exc:
            status, body = 400, ApiError(400, exc.description).payload()
        except ApiError as exc:
            status, body = exc.code, exc.payload()
        if "drop" in faults:
            return self._drop(request, record)
        record.status, record.response = status, body
        self._notify()
        if "slow" in faults:
            # the work is done; only the answer is late (a client that gives up misses it)
            await asyncio.sleep(faults["slow"].seconds)
        return web.json_response(body, status=status)

    async def _dispatch(self, bot: EmuBot, method: str, params: Json) -> Any:
        if method == "getUpdates":
            return await self._get_updates(bot, params)
        if method == "setWebhook":
            return self._set_webhook(bot, params)
        if method == "deleteWebhook":
            return self._delete_webhook(bot, params)
        if method == "getWebhookInfo":
            return self._webhook_info(bot)
        return self.api.call(bot, method, params)

    def _drop(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        record.status = 0
        self._notify()
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # the connection is gone: nothing can be answered

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if self._bot_by_token(request.match_info["token"]) is None:
            return web.json_response(ApiError(401, "Unauthorized").payload(), status=401)
        path = request.match_info["path"]
        for stored in self.world.files.values():
            if stored.file_path == path:
                mime = stored.mime_type or "application/octet-stream"
                return web.Response(body=stored.data, content_type=mime)
        return web.json_response(ApiError(404, "Not Found").payload(), status=404)

    # --- long polling ---------------------------------------------------------------------------

    async def _get_updates(self, bot: EmuBot, params: Json) -> list[Json]:
        if bot.webhook is not None:
            raise ApiError(409, _CONFLICT_WEBHOOK)
        loop = asyncio.get_running_loop()
        if bot.poll is not None and not bot.poll.done():
            bot.poll.set_result("conflict")  # Telegram ends the older long poll
        me: asyncio.Future[str] = loop.create_future()
        bot.poll = me
        try:
            offset = params.get("offset")
            if offset is not None:
                _confirm(bot, offset)
            if "allowed_updates" in params:
                bot.allowed_updates = [str(kind) for kind in params["allowed_updates"]]
            limit = min(max(int(params.get("limit", 100)), 1), 100)
            deadline = loop.time() + max(0.0, float(params.get("timeout", 0)))
            while True:
                if bot.webhook is not None:
                    raise ApiError(409, _CONFLICT_WEBHOOK)
                if bot.pending:
                    return copy.deepcopy(bot.pending[:limit])
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                waiter = bot.waiter()
                watched: set[asyncio.Future[Any]] = {waiter, me}
                try:
                    await asyncio.wait(watched, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    bot.waiters.discard(waiter)
                if me.done():
                    if me.result() == "conflict":
                        raise ApiError(409, _CONFLICT_POLL)
                    return []
        finally:
            if bot.poll is me:
                bot.poll = None

    # --- webhooks ---------------------------------------------------------------------------------

    def _set_webhook(self, bot: EmuBot, params: Json) -> bool:
        url = params["url"].strip()
        if not url:
            return self._delete_webhook(bot, params)
        if not re.match(r"^https?://[^/\s]+", url):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        max_connections = params.get("max_connections", 40)
        if not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        if params.get("drop_pending_updates"):
            bot.pending.clear()
        if "allowed_updates" in params:
            bot.allowed_updates = [str(kind) for kind in params["allowed_updates"]]
        bot.webhook = WebhookState(url, secret, max_connections, params.get("ip_address"),
                                   "certificate" in params)
        if bot.poll is not None and not bot.poll.done():
            bot.poll.set_result("conflict")
        self._start_webhook_sender(bot)
        return True

    def _delete_webhook(self, bot: EmuBot, params: Json) -> bool:
        bot.webhook = None
        task = self._webhook_tasks.pop(bot.id, None)
        if task is not None:
            task.cancel()
        if params.get("drop_pending_updates"):
            bot.pending.clear()
        return True

    def _webhook_info(self, bot: EmuBot) -> Json:
        hook = bot.webhook
        info: Json = {"url": hook.url if hook else "", "has_custom_certificate": bool(hook and
                      hook.has_custom_certificate), "pending_update_count": len(bot.pending)}
        if hook is not None:
            info["max_connections"] = hook.max_connections
            info["ip_address"] = hook.ip_address or "127.0.0.1"
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message or ""
        if bot.allowed_updates:
            info["allowed_updates"] = list(bot.allowed_updates)
        return info

    def _start_webhook_sender(self, bot: EmuBot) -> None:
        old = self._webhook_tasks.pop(bot.id, None)
        if old is not None:
            old.cancel()
        self._webhook_tasks[bot.id] = asyncio.get_running_loop().create_task(
            self._webhook_sender(bot), name=f"telegram-emulator-webhook-{bot.id}")

    async def _webhook_sender(self, bot: EmuBot) -> None:
        """POST pending updates to the webhook in order, retrying failures with backoff."""
        failures = 0
        while bot.webhook is not None:
            hook = bot.webhook
            if not bot.pending:
                waiter = bot.waiter()
                try:
                    await waiter
                finally:
                    bot.waiters.discard(waiter)
                continue
            update = bot.pending[0]
            error = await self._post_update(hook, update)
            if bot.webhook is not hook:
                continue
            if error is None:
                if bot.pending and bot.pending[0] is update:
                    bot.pending.pop(0)
                hook.deliveries += 1
                failures = 0
                self._notify()
                continue
            hook.last_error_date = self.world.now()
            hook.last_error_message = error
            delay = self.webhook_retry_delays[min(failures, len(self.webhook_retry_delays) - 1)]
            failures += 1
            self._notify()
            await asyncio.sleep(delay)

    async def _post_update(self, hook: WebhookState, update: Json) -> str | None:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        limit = aiohttp.ClientTimeout(total=self.webhook_timeout)
        try:
            async with self._session.post(hook.url, data=json.dumps(update), headers=headers,
                                          timeout=limit) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"Wrong response from the webhook: {response.status} {response.reason}"
        except TimeoutError:
            return "Connection timed out"
        except aiohttp.ClientConnectorError:
            return "Connection refused"
        except aiohttp.ClientError as exc:
            return f"Connection error: {exc.__class__.__name__}"


async def _read_params(request: web.Request) -> tuple[Json, dict[str, Upload]]:
    """Parameters from the query string and a form, multipart or JSON body, like Telegram."""
    raw: Json = dict(request.query)
    uploads: dict[str, Upload] = {}
    if not request.can_read_body:
        return raw, uploads
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("can't parse JSON encoded request") from None
        if not isinstance(body, dict):
            raise bad_request("JSON encoded request must be an object")
        raw.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                uploads[key] = Upload(value.filename, value.content_type, value.file.read())
            else:
                raw[key] = value
    return raw, uploads


def _loggable(raw: Json, uploads: dict[str, Upload]) -> Json:
    params = dict(raw)
    for key, upload in uploads.items():
        params[key] = {"filename": upload.filename, "content_type": upload.content_type,
                       "size": len(upload.data)}
    return params


def _confirm(bot: EmuBot, offset: int) -> None:
    if offset < 0:
        bot.pending = bot.pending[offset:]
    else:
        bot.pending = [update for update in bot.pending if update["update_id"] >= offset]


def _fault_description(fault: _Fault) -> str:
    if fault.status == 429:
        return f"Too Many Requests: retry after {fault.retry_after}"
    return _DEFAULT_DESCRIPTIONS.get(fault.status, f"Error {fault.status}")


def _chat_id(chat: ChatRef | None) -> int | None:
    if chat is None or isinstance(chat, int):
        return chat
    return chat.id

