"""The Telegram team console: commands, buttons and per-conversation forum topics in the team group.

What a member can do in a configured team chat (a supergroup; forum topics used when enabled):

* type any command (``/queue``, ``/reply 12 Thanks``, ``/r@saluran_bot 12 …``): the console turns it
  into a ``CommandInvocation`` carrying the member's Telegram user id, the command core checks the
  role, runs it and answers with a View, rendered here as HTML and posted as a reply;
* reply to a card with ``/r TEXT`` (or any conversation command without its ID): the card's message
  id names the conversation (``inbox.models.ConsoleRef``);
* press a card's buttons (take, snooze 1 h, escalate, resolve, show, open thread): the callback data
  names only a ConsoleRef row and a button index, the command comes from the database, and it runs
  as the member who pressed, re-authorised by the core; anything else is refused and audited;
* ``/open ID`` (or the button) opens a forum topic for the conversation: plain messages typed there
  become internal notes, and ``/r TEXT`` there replies to the customer.

Messages in a team chat are never ingested as customer messages. Answers to commands and topic
creation go straight to Telegram (they answer the member who is waiting); everything a command
changes for a customer (a reply) goes through the outbox like every other side effect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyParameters,
)
from telegram.error import RetryAfter, TelegramError

from connectors.telegram.client import BotClient, retry_seconds
from connectors.telegram.convert import BotIdentity, Json
from connectors.telegram.render import Rendered, keyboard, parse_callback, render
from inbox.audit import record
from inbox.clock import Clock
from inbox.commands import REFUSED_EVENT, CommandInvocation, CommandSpec
from inbox.commands.errors import CommandError
from inbox.commands.parse import looks_like_id, parse_id, split_command
from inbox.commands.refusals import refuse_foreign_chat
from inbox.db import Database
from inbox.errors import InboxError
from inbox.i18n import choose_language, t
from inbox.models import ConsoleRef
from inbox.views import (
    Confirmation,
    ConversationDetailView,
    ConversationNotice,
    ErrorView,
    FailedDeliveryNotice,
    SlaNotice,
    View,
)

log = logging.getLogger(__name__)

PLATFORM = "telegram"
ANSWER_MAX_WAIT = 5.0  # seconds an answer may wait for a flood limit before it is given up
TOPIC_NAME_LIMIT = 128
COMMAND_DESCRIPTION_LIMIT = 256
CALLBACK_ANSWER_LIMIT = 200
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # cards link to topics; no previews
Commands = Callable[[CommandInvocation], Awaitable[View]]

# Sentences only this console says, in the team's languages.
MESSAGES: Mapping[str, Mapping[str, str]] = {
    "en": {
        "bad_button": "This button is not valid here. Type the command instead.",
        "not_forum": "This chat has no topics. Turn on Topics in the group settings (and make me an admin "
        "with Manage topics) to open a thread per conversation.",
        "no_rights": "I cannot create topics here: make me an admin with the Manage topics right.",
        "opened": "Thread opened for #{id}: {link}",
        "already_open": "#{id} already has a thread: {link}",
        "open_usage": "/open ID",
        "open_help": "Open a forum topic for a conversation: notes there stay internal, /r replies.",
        "missing_id": "Say which conversation: /open ID",
        "error": "Telegram refused that: {error}",
    },
    "id": {
        "bad_button": "Tombol ini tidak berlaku di sini. Ketik perintahnya saja.",
        "not_forum": "Obrolan ini tidak punya topik. Aktifkan Topik di pengaturan grup (dan jadikan saya "
        "admin dengan hak Kelola topik) untuk membuka utas per percakapan.",
        "no_rights": "Saya tidak bisa membuat topik di sini: jadikan saya admin dengan hak Kelola topik.",
        "opened": "Utas untuk #{id} dibuka: {link}",
        "already_open": "#{id} sudah punya utas: {link}",
        "open_usage": "/open ID",
        "open_help": "Buka topik forum untuk sebuah percakapan: catatan di sana tetap internal, /r membalas.",
        "missing_id": "Sebutkan percakapannya: /open ID",
        "error": "Telegram menolak: {error}",
    },
}


def say(lang: str, key: str, **params: Any) -> str:
    """A sentence of this console in ``lang`` (English when missing)."""
    template = MESSAGES.get(lang, MESSAGES["en"]).get(key) or MESSAGES["en"][key]
    return template.format(**params)


@dataclass(frozen=True, slots=True)
class TeamChatInfo:
    """A team chat this bot hosts: its config name, Telegram chat id and language."""

    name: str
    chat_id: int
    lang: str


# --- durable references: cards, answers and topics ---------------------------------------------


class Refs:
    """ConsoleRef rows of Telegram: which message or topic stands for which conversation, and buttons."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def create(
        self,
        chat_id: int | str,
        *,
        buttons: Sequence[str] = (),
        conversation_id: int | None = None,
        thread_id: int | None = None,
        kind: str = "message",
    ) -> int:
        """Record a message about to be sent (its id is attached once Telegram answered)."""
        async with self.db.transaction() as session:
            row = ConsoleRef(
                platform=PLATFORM,
                kind=kind,
                chat_id=str(chat_id),
                buttons=list(buttons),
                conversation_id=conversation_id,
                thread_id=None if thread_id is None else str(thread_id),
                created_at=self.clock.now(),
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            return row.id

    async def attach(self, ref_id: int, message_id: int) -> None:
        """Name the sent message of a recorded reference."""
        async with self.db.transaction() as session:
            await session.execute(
                update(ConsoleRef).where(col(ConsoleRef.id) == ref_id).values(message_id=str(message_id))
            )

    async def add_message(self, chat_id: int, message_id: int, conversation_id: int) -> None:
        """Remember that a sent message (without buttons) stands for a conversation."""
        ref = await self.create(chat_id, conversation_id=conversation_id)
        await self.attach(ref, message_id)

    async def button(self, ref_id: int, index: int, chat_id: int, message_id: int | None) -> str | None:
        """The command of a button, only if that button is on that very message the bot sent."""
        async with self.db.sessions() as session:
            row = await session.get(ConsoleRef, ref_id)
        if row is None or row.platform != PLATFORM or row.chat_id != str(chat_id) or row.kind != "message":
            return None
        if row.message_id is not None and (message_id is None or row.message_id != str(message_id)):
            return None
        if not 0 <= index < len(row.buttons):
            return None
        return str(row.buttons[index])

    async def conversation_of_message(self, chat_id: int, message_id: int) -> int | None:
        """The conversation a card (or another message of ours) stands for."""
        async with self.db.sessions() as session:
            found = await session.scalar(
                select(col(ConsoleRef.conversation_id))
                .where(
                    col(ConsoleRef.platform) == PLATFORM,
                    col(ConsoleRef.chat_id) == str(chat_id),
                    col(ConsoleRef.message_id) == str(message_id),
                    col(ConsoleRef.conversation_id).is_not(None),
                )
                .order_by(col(ConsoleRef.id).desc())
                .limit(1)
            )
        return None if found is None else int(found)

    async def conversation_of_topic(self, chat_id: int, thread_id: int) -> int | None:
        """The conversation whose forum topic this is."""
        async with self.db.sessions() as session:
            found = await session.scalar(
                select(col(ConsoleRef.conversation_id))
                .where(
                    col(ConsoleRef.platform) == PLATFORM,
                    col(ConsoleRef.kind) == "topic",
                    col(ConsoleRef.chat_id) == str(chat_id),
                    col(ConsoleRef.thread_id) == str(thread_id),
                )
                .order_by(col(ConsoleRef.id).desc())
                .limit(1)
            )
        return None if found is None else int(found)

    async def topic_of(self, chat_id: int, conversation_id: int) -> int | None:
        """The forum topic of a conversation in a chat, if one was opened."""
        async with self.db.sessions() as session:
            found = await session.scalar(
                select(col(ConsoleRef.thread_id))
                .where(
                    col(ConsoleRef.platform) == PLATFORM,
                    col(ConsoleRef.kind) == "topic",
                    col(ConsoleRef.chat_id) == str(chat_id),
                    col(ConsoleRef.conversation_id) == conversation_id,
                )
                .order_by(col(ConsoleRef.id).desc())
                .limit(1)
            )
        return None if found is None else int(found)


class Forums:
    """Whether a chat is a forum (topics on); asked once per chat and process, since it rarely changes."""

    def __init__(self, client: BotClient) -> None:
        self.client = client
        self._known: dict[int, bool] = {}

    async def is_forum(self, chat_id: int) -> bool:
        """True when the supergroup has topics enabled."""
        if chat_id not in self._known:
            try:
                chat = await (await self.client.bot()).get_chat(chat_id)
            except TelegramError as exc:
                log.warning("telegram: cannot tell whether chat %s has topics (%s)", chat_id, exc)
                return False
            self._known[chat_id] = bool(chat.is_forum)
        return self._known[chat_id]

    def forget(self, chat_id: int) -> None:
        """Ask again next time (e.g. after Telegram said the chat is not a forum)."""
        self._known.pop(chat_id, None)


def conversation_of_view(view: View) -> int | None:
    """The conversation a notice or answer is about, if it is about one."""
    if isinstance(view, ConversationNotice | SlaNotice):
        return view.card.id
    if isinstance(view, ConversationDetailView):
        return view.card.id
    if isinstance(view, FailedDeliveryNotice | Confirmation):
        return view.conversation_id
    return None


@dataclass
class Progress:
    """How far the posting of one rendered view got: kept across attempts so a retry only sends the rest."""

    sent: list[int] = field(default_factory=list)  # message ids of the chunks already posted
    ref: int | None = None  # the ConsoleRef recorded for its buttons and conversation
    extra_sent: bool = False  # an attachment that follows the text (the weekly report's chart)


async def send_rendered(
    client: BotClient,
    refs: Refs,
    chat_id: int,
    rendered: Rendered,
    *,
    conversation_id: int | None = None,
    thread_id: int | None = None,
    reply_to: int | None = None,
    progress: Progress | None = None,
) -> Progress:
    """Post a rendered view chunk by chunk, the buttons on the last one; return what was posted.

    A reference is recorded before the buttons go out, so a press always finds its command. With
    ``progress`` from an earlier attempt, chunks already posted are not posted again.
    """
    bot = await client.bot()
    done = progress if progress is not None else Progress()
    commands = [b.command for b in rendered.buttons]
    if done.ref is None and (commands or conversation_id is not None):
        done.ref = await refs.create(
            chat_id, buttons=commands, conversation_id=conversation_id, thread_id=thread_id
        )
    for index in range(len(done.sent), len(rendered.chunks)):
        last = index == len(rendered.chunks) - 1
        markup: InlineKeyboardMarkup | None = None
        if last and commands and done.ref is not None:
            markup = keyboard(rendered.rows, done.ref)
        parameters = None
        if index == 0 and reply_to is not None:
            parameters = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
        message = await bot.send_message(
            chat_id,
            rendered.chunks[index],
            parse_mode="HTML",
            reply_markup=markup,
            reply_parameters=parameters,
            message_thread_id=thread_id,
            link_preview_options=NO_PREVIEW,
        )
        done.sent.append(message.message_id)
    if done.ref is not None and done.sent:
        await refs.attach(done.ref, done.sent[-1])
        if conversation_id is not None:
            for other in done.sent[:-1]:  # a reply to any part of a long card names the conversation too
                await refs.add_message(chat_id, other, conversation_id)
    return done


# --- the console --------------------------------------------------------------------------------


def command_specs(commands: Commands | None) -> list[CommandSpec]:
    """The team commands, for Telegram's command menu: from the running core, else the built-in ones."""
    registry = getattr(getattr(commands, "__self__", None), "registry", None)
    if registry is not None:
        return [c.spec for c in registry.all()]
    from inbox.commands.handlers_admin import DeliveryCommands, TemplateCommands
    from inbox.commands.handlers_conversation import ConversationCommands
    from inbox.commands.handlers_help import HelpCommands
    from inbox.commands.handlers_queue import QueueCommands

    specs: list[CommandSpec] = []
    for cog in (QueueCommands, ConversationCommands, TemplateCommands, DeliveryCommands, HelpCommands):
        specs += [c.spec for c in object.__new__(cog).commands()]  # only the declarations are read
    return specs


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def topic_link(chat_id: int, thread_id: int) -> str:
    """A t.me link to a forum topic (works for members of the supergroup)."""
    internal = str(chat_id).removeprefix("-100") if str(chat_id).startswith("-100") else str(abs(chat_id))
    return f"https://t.me/c/{internal}/{thread_id}"


class TeamConsole:
    """Handles the updates of the team chats a bot hosts."""

    def __init__(
        self,
        client: BotClient,
        refs: Refs,
        forums: Forums,
        chats: Sequence[TeamChatInfo],
        commands: Commands | None,
        db: Database,
        clock: Clock,
    ) -> None:
        self.client = client
        self.refs = refs
        self.forums = forums
        self.chats = {chat.chat_id: chat for chat in chats}
        self.commands = commands
        self.db = db
        self.clock = clock

    # --- matching (pure) -----------------------------------------------------------------------

    def chat_of(self, update: Json) -> int | None:
        """The chat an update happened in (a button press: the chat of the pressed message)."""
        for key in ("message", "edited_message"):
            message = update.get(key)
            if isinstance(message, dict):
                return (message.get("chat") or {}).get("id")
        query = update.get("callback_query")
        if isinstance(query, dict):
            return ((query.get("message") or {}).get("chat") or {}).get("id")
        return None

    def handles(self, update: Json) -> bool:
        """True for updates from a team chat this console hosts."""
        return self.chat_of(update) in self.chats

    def foreign_command(self, update: Json, bot: BotIdentity) -> tuple[int, str, str] | None:
        """(sender id, command name, text) of a team command typed outside the team chats, else None.

        Pure. Such a command never runs: only the configured team chats are consoles. Commands addressed
        to another bot, and words that are no team command (``/start``), are not ours to judge.
        """
        message = update.get("message")
        if not isinstance(message, dict) or (message.get("chat") or {}).get("id") in self.chats:
            return None
        user = message.get("from") or {}
        text = str(message.get("text") or "")
        parsed = split_command(text)
        if parsed is None or not isinstance(user.get("id"), int) or user.get("is_bot"):
            return None
        word = text.strip().split(maxsplit=1)[0]
        if "@" in word and word.split("@", 1)[1].lower() != bot.username.lower():
            return None
        names = {n for spec in command_specs(self.commands) for n in (spec.name, *spec.aliases)} | {"open"}
        name = parsed.name.lower()
        return (int(user["id"]), name, text) if name in names else None

    async def refuse_foreign(self, update: Json, bot: BotIdentity) -> bool:
        """Audit a team member's command typed outside the team chats (it is not run); True if audited.

        Strangers' commands in public groups are chatter and are not recorded. A button press outside
        the team chats can only be forged (the bot puts its buttons in team chats only): it is refused
        and audited like any forged press.
        """
        query = update.get("callback_query")
        if isinstance(query, dict):
            chat_id = self.chat_of(update)
            if chat_id in self.chats or not isinstance(chat_id, int):
                return False
            lang = next(iter(self.chats.values())).lang if self.chats else "en"
            await self._refuse_button(query, TeamChatInfo("", chat_id, lang))
            return True
        found = self.foreign_command(update, bot)
        if found is None:
            return False
        user_id, name, text = found
        where = str(((update.get("message") or {}).get("chat") or {}).get("id"))
        return await refuse_foreign_chat(self.db, self.clock, platform=PLATFORM, user_id=str(user_id),
                                         chat_id=where, command=name, text=text)

    # --- handling ------------------------------------------------------------------------------

    async def handle(self, update: Json, bot: BotIdentity) -> None:
        """Run what a team chat update asks for; problems are answered in the chat, never raised."""
        if self.commands is None:
            log.warning(
                "telegram: team chat update %s ignored: no command core in this process",
                update.get("update_id"),
            )
            return
        try:
            if isinstance(update.get("callback_query"), dict):
                await self._on_button(update["callback_query"], bot)
            elif isinstance(update.get("message"), dict):
                await self._on_message(update["message"], bot)
            # Edited team messages are not run again: a command runs once, as first sent.
        except (TelegramError, InboxError) as exc:
            log.warning("telegram: team update %s not fully handled: %s", update.get("update_id"), exc)
        except Exception:
            # Its cursor is already stored: the update is not run again, and the loop carries on.
            log.exception("telegram: team update %s failed", update.get("update_id"))

    async def _on_message(self, message: Json, bot: BotIdentity) -> None:
        user = message.get("from") or {}
        if not user or user.get("is_bot"):
            return
        chat = self.chats[message["chat"]["id"]]
        text = str(message.get("text") or message.get("caption") or "")
        thread_id = message.get("message_thread_id") if message.get("is_topic_message") else None
        topic_conversation = None
        if thread_id is not None:
            topic_conversation = await self.refs.conversation_of_topic(chat.chat_id, int(thread_id))
        if not text.strip().startswith("/"):
            if topic_conversation is not None and text.strip():
                # A plain message in a conversation's topic is an internal note (its ID is explicit, so
                # a note starting with a number is not read as another conversation's ID).
                view = await self._run(user, chat, f"/note {topic_conversation} {text.strip()}", None)
                if not view.ok:
                    await self._answer(chat, view, thread_id=thread_id, reply_to=message["message_id"])
            return
        parsed = split_command(text)
        if parsed is None:
            return
        word = text.strip().split(maxsplit=1)[0]
        if "@" in word and word.split("@", 1)[1].lower() != bot.username.lower():
            return  # addressed to another bot in the group
        context = topic_conversation
        reply = message.get("reply_to_message") or {}
        if context is None and reply and reply.get("message_id") != thread_id:
            context = await self.refs.conversation_of_message(chat.chat_id, int(reply["message_id"]))
        if parsed.name == "open":
            view = await self._open(user, chat, parsed.rest, context)
        else:
            view = await self._run(user, chat, text, context)
        await self._answer(chat, view, thread_id=thread_id, reply_to=message["message_id"])

    async def _on_button(self, query: Json, bot: BotIdentity) -> None:
        user = query.get("from") or {}
        message = query.get("message") or {}
        chat = self.chats[message["chat"]["id"]]
        message_id = message.get("message_id")
        parsed = parse_callback(query.get("data"))
        command = None
        if parsed is not None:
            command = await self.refs.button(
                parsed[0], parsed[1], chat.chat_id, None if message_id is None else int(message_id)
            )
        if command is None:
            await self._refuse_button(query, chat)
            return
        thread_id = message.get("message_thread_id") if message.get("is_topic_message") else None
        split = split_command(command)
        if split is not None and split.name == "open":
            view = await self._open(user, chat, split.rest, None)
        else:
            view = await self._run(user, chat, command, None)
        await self._answer_query(query["id"], view)
        if view.ok:
            who = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p) or "?"
            await self._answer(chat, view, thread_id=thread_id, reply_to=message_id, actor=who)

    async def _refuse_button(self, query: Json, chat: TeamChatInfo) -> None:
        user = query.get("from") or {}
        data = str(query.get("data") or "")[:64]
        log.warning(
            "telegram: refused a button press with unknown data %r from user %s", data, user.get("id")
        )
        async with self.db.transaction() as session:
            await record(
                session,
                f"unknown:{PLATFORM}:{user.get('id', '?')}",
                REFUSED_EVENT,
                self.clock.now(),
                None,
                command=None,
                reason="bad_button",
                platform=PLATFORM,
                chat_id=str(chat.chat_id),
                data=data,
            )
        error = ErrorView(lang=chat.lang, message=say(chat.lang, "bad_button"), kind="refused")
        await self._answer_query(query["id"], error)

    async def _run(self, user: Json, chat: TeamChatInfo, text: str, conversation_id: int | None) -> View:
        assert self.commands is not None
        invocation = CommandInvocation(
            text=text,
            platform=PLATFORM,
            user_id=str(user.get("id")),
            conversation_id=conversation_id,
            chat_id=str(chat.chat_id),
            language=chat.lang,
        )
        return await self.commands(invocation)

    # --- forum topics ------------------------------------------------------------------------------

    async def _open(self, user: Json, chat: TeamChatInfo, rest: str, context: int | None) -> View:
        """``/open [ID]``: the conversation's forum topic, made if needed."""
        lang = chat.lang
        word = rest.split(maxsplit=1)[0] if rest.strip() else None
        if word is not None and looks_like_id(word):
            try:
                conversation_id = parse_id(word)
            except CommandError as exc:
                return ErrorView(
                    lang=lang,
                    message=t(lang, exc.key, **exc.params),
                    kind="usage",
                    usage=say(lang, "open_usage"),
                )
        elif context is not None:
            conversation_id = context
        else:
            return ErrorView(
                lang=lang, message=say(lang, "missing_id"), kind="usage", usage=say(lang, "open_usage")
            )
        # The core decides who may see the conversation: /show authorises and tells us it exists.
        shown = await self._run(user, chat, f"/show {conversation_id}", None)
        if not isinstance(shown, ConversationDetailView):
            return shown
        if not await self.forums.is_forum(chat.chat_id):
            self.forums.forget(chat.chat_id)
            return ErrorView(lang=lang, message=say(lang, "not_forum"), kind="invalid")
        existing = await self.refs.topic_of(chat.chat_id, conversation_id)
        if existing is not None:
            return Confirmation(
                lang=lang,
                conversation_id=conversation_id,
                message=say(
                    lang, "already_open", id=conversation_id, link=topic_link(chat.chat_id, existing)
                ),
            )
        name = f"#{conversation_id} · {shown.card.contact}"[:TOPIC_NAME_LIMIT]
        bot = await self.client.bot()
        try:
            topic = await bot.create_forum_topic(chat.chat_id, name)
        except TelegramError as exc:
            self.forums.forget(chat.chat_id)
            key = "no_rights" if "right" in str(exc).lower() else "error"
            return ErrorView(lang=lang, message=say(lang, key, error=str(exc)), kind="invalid")
        thread_id = int(topic.message_thread_id)
        await self.refs.create(
            chat.chat_id, kind="topic", thread_id=thread_id, conversation_id=conversation_id
        )
        await self._answer(chat, shown, thread_id=thread_id, reply_to=None)
        return Confirmation(
            lang=lang,
            conversation_id=conversation_id,
            message=say(lang, "opened", id=conversation_id, link=topic_link(chat.chat_id, thread_id)),
        )

    # --- answering -----------------------------------------------------------------------------------

    async def _answer(
        self,
        chat: TeamChatInfo,
        view: View,
        *,
        thread_id: int | None,
        reply_to: int | None,
        actor: str | None = None,
    ) -> None:
        """Post a view in the chat (in the topic it came from), replying to ``reply_to``."""
        rendered = render(view, topics=await self.forums.is_forum(chat.chat_id))
        if actor is not None and rendered.chunks:
            first = f"<i>{escape(actor, quote=False)}</i> · {rendered.chunks[0]}"
            rendered = Rendered((first, *rendered.chunks[1:]), rendered.rows)
        progress = Progress()
        for attempt in range(2):
            try:
                await send_rendered(
                    self.client,
                    self.refs,
                    chat.chat_id,
                    rendered,
                    conversation_id=conversation_of_view(view),
                    thread_id=thread_id,
                    reply_to=reply_to,
                    progress=progress,
                )
                return
            except RetryAfter as exc:
                wait = retry_seconds(exc)
                if attempt or wait > ANSWER_MAX_WAIT:
                    log.warning("telegram: answer in chat %s dropped: flood limit (%gs)", chat.chat_id, wait)
                    return
                await asyncio.sleep(wait)
            except TelegramError as exc:
                log.warning("telegram: could not answer in chat %s: %s", chat.chat_id, exc)
                return

    async def _answer_query(self, query_id: str, view: View) -> None:
        """Answer a button press: a short toast, or an alert for an error."""
        if isinstance(view, Confirmation | ErrorView):
            text = view.message
        else:
            text = ""
        try:
            await (await self.client.bot()).answer_callback_query(
                query_id, text=_short(text, CALLBACK_ANSWER_LIMIT) or None, show_alert=not view.ok
            )
        except TelegramError as exc:
            log.info("telegram: callback query %s not answered: %s", query_id, exc)

    # --- command menu --------------------------------------------------------------------------

    async def register_commands(self) -> None:
        """Fill Telegram's command menu in each team chat, in the chat's language (setMyCommands)."""
        if not self.chats:
            return
        specs = command_specs(self.commands)
        bot = await self.client.bot()
        for chat in self.chats.values():
            menu = [
                BotCommand(
                    s.name, _short(s.summary.get(chat.lang) or s.summary["en"], COMMAND_DESCRIPTION_LIMIT)
                )
                for s in specs
            ]
            menu.append(BotCommand("open", say(chat.lang, "open_help")))
            await bot.set_my_commands(menu[:100], scope=BotCommandScopeChat(chat.chat_id))


def team_chat_infos(chats: Sequence[Any], default_language: str) -> list[TeamChatInfo]:
    """``[[team_chats]]`` entries as this console needs them; a chat id must be a number."""
    infos = []
    for chat in chats:
        try:
            chat_id = int(str(chat.chat_id))
        except ValueError:
            raise ValueError(
                f"team chat '{chat.name}': chat_id must be the group's numeric id "
                f"(e.g. -1001234567890), not {chat.chat_id!r}"
            ) from None
        infos.append(TeamChatInfo(chat.name, chat_id, choose_language(chat.language, default_language)))
    return infos
