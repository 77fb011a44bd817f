"""The team console in the team's Discord server: slash commands, card buttons, conversation threads.

- Slash commands are generated from the command registry, one per command, with options (the
  conversation ID, then the command's arguments described by its usage) so Discord shows how to
  use them. ``/thread`` is the console's own.
- Buttons carry a signed command (``render.ButtonSigner``); a press runs that command as the member
  who pressed, through the command core, which checks membership and role. A custom_id the bot did
  not sign is refused and audited.
- ``/thread ID`` (or the Thread button on a card) opens a thread for a conversation, remembered in
  ``ConsoleRef`` rows. In it, a plain message is an internal note, a message starting with ``/`` is
  a command about that conversation, and ``/reply`` (slash) answers the customer without an ID.

Interactions are answered within Discord's 3 seconds: the command runs at once, and if it has not
finished after ``defer_after`` seconds the console defers ("thinking...") and edits the answer in
when it is ready. Answers that are errors or refusals are ephemeral when there was time to choose.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import discord
from sqlalchemy import select
from sqlmodel import col

from connectors.discord.convert import Scope, TeamMessage
from connectors.discord.render import (
    ButtonSigner,
    Rendered,
    console_text,
    discord_buttons,
    escape,
    render,
)
from connectors.discord.sender import allowed, send_parts, ui_view
from inbox.audit import record
from inbox.clock import Clock
from inbox.commands import REFUSED_EVENT, CommandInvocation, CommandSpec, split_command
from inbox.commands.errors import UsageError
from inbox.commands.parse import looks_like_id, parse_id
from inbox.commands.refusals import refuse_foreign_chat
from inbox.db import Database
from inbox.i18n import DEFAULT_LANGUAGE, LANGUAGES, t
from inbox.models import ConsoleRef
from inbox.views import ConversationDetailView, ErrorView, View

log = logging.getLogger(__name__)

PLATFORM = "discord"
THREAD_KIND = "topic"  # ConsoleRef.kind of a conversation's own thread (Telegram: its forum topic)
THREAD_COMMAND = "thread"
THREAD_ARCHIVE_MINUTES: Literal[10080] = 10080  # a week without messages before Discord hides the thread
THREAD_NAME_LENGTH = 100
DEFER_AFTER = 1.5  # seconds; Discord drops an interaction not answered within 3
ALREADY_HAS_THREAD = 160004  # Discord: "A thread has already been created for this message"

STRING, INTEGER = 3, 4  # application command option types
_DESCRIPTION_LENGTH = 100
_CHOICES = re.compile(r"^[a-z]+(\|[a-z]+)+$")
_ID_WORD = re.compile(r"(^|\s)\[?ID\]?(?=\s|$)")
# The name of the argument option where the usage alone does not give a good one.
_ARGUMENT_NAMES: Mapping[str, str] = {
    "reply": "text", "note": "text", "tag": "tags", "untag": "tags", "assign": "member",
    "escalate": "reason", "priority": "priority", "snooze": "until", "queue": "filters",
    "template": "action", "help": "command", "retry": "delivery", "stats": "period",
}

Commands = Callable[[CommandInvocation], Awaitable[View]]


# --- slash commands from the registry ------------------------------------------------------------


def _clip(text: str, length: int = _DESCRIPTION_LENGTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


def _arguments_usage(spec: CommandSpec) -> str:
    """The usage without the command word(s) and the ID: what the argument option takes."""
    alternatives = [a.strip() for a in re.split(r"\s+\|\s+", spec.usage)]
    rest = []
    for alternative in alternatives:
        words = alternative.removeprefix(f"/{spec.name}").strip()
        if spec.conversation_arg != "none":
            words = _ID_WORD.sub(" ", words).strip()
        rest.append(words)
    if all(_CHOICES.match(r) or not r for r in rest):
        return "|".join(r for r in rest if r)
    return " | ".join(r for r in rest if r)


@dataclass(frozen=True, slots=True)
class SlashShape:
    """How one command's slash form maps back to its text: an ID option, and one argument option."""

    name: str
    id_option: bool
    argument: str | None

    def text(self, values: Mapping[str, Any], conversation_id: int | None) -> str:
        """The command text for the given option values, the conversation's ID filled in if known.

        Inside a conversation's thread the ID is written out: otherwise ``/reply`` with text "2 items
        arrived" would read as a reply to conversation 2.
        """
        words = [f"/{self.name}"]
        given = values.get("id")
        if self.id_option and given is not None:
            words.append(str(given))
        elif self.id_option and conversation_id is not None:
            words.append(str(conversation_id))
        if self.argument is not None and values.get(self.argument) not in (None, ""):
            words.append(str(values[self.argument]))
        return " ".join(words)


def slash_shape(spec: CommandSpec) -> SlashShape:
    """The options of a command's slash form."""
    usage = _arguments_usage(spec)
    argument = None
    if usage:
        argument = _ARGUMENT_NAMES.get(spec.name) or (re.findall(r"[A-Z]+", usage) or ["args"])[0].lower()
    return SlashShape(spec.name, spec.conversation_arg != "none", argument)


def slash_command(spec: CommandSpec, lang: str) -> dict[str, Any]:
    """The application command payload of one command, described in ``lang`` (and localised)."""
    shape = slash_shape(spec)
    options: list[dict[str, Any]] = []
    if shape.argument is not None:
        usage = _arguments_usage(spec)
        option: dict[str, Any] = {
            "type": STRING, "name": shape.argument, "description": _clip(usage),
            "required": not usage.startswith("["),
        }
        if _CHOICES.match(usage):
            option["choices"] = [{"name": c, "value": c} for c in usage.split("|")][:25]
        options.append(option)
    if shape.id_option:  # optional, so after the argument: Discord lists required options first
        options.append({
            "type": INTEGER, "name": "id", "description": _clip(console_text(lang, "option.id")),
            "description_localizations": _localised(lambda code: console_text(code, "option.id"), lang),
            "required": False, "min_value": 1, "max_value": 2_147_483_647,
        })
    return {
        "type": 1, "name": spec.name, "description": _clip(spec.summary.get(lang) or spec.summary["en"]),
        "description_localizations": _localised(lambda code: spec.summary.get(code, ""), lang),
        "options": options, "contexts": [0], "dm_permission": False,
    }


def thread_command(lang: str) -> dict[str, Any]:
    """The console's own ``/thread [ID]``."""
    return {
        "type": 1, "name": THREAD_COMMAND, "description": _clip(console_text(lang, "command.thread")),
        "description_localizations": _localised(lambda code: console_text(code, "command.thread"), lang),
        "options": [{
            "type": INTEGER, "name": "id", "description": _clip(console_text(lang, "option.id")),
            "required": False, "min_value": 1, "max_value": 2_147_483_647,
        }],
        "contexts": [0], "dm_permission": False,
    }


_DISCORD_LOCALES: Mapping[str, tuple[str, ...]] = {"id": ("id",), "en": ("en-US", "en-GB")}


def _localised(describe: Callable[[str], str], default_lang: str) -> dict[str, str]:
    """Descriptions in the other languages, for Discord clients set to them."""
    out = {}
    for code in LANGUAGES:
        text = describe(code)
        if code != default_lang and text:
            out.update({locale: _clip(text) for locale in _DISCORD_LOCALES.get(code, ())})
    return out


def slash_commands(specs: Sequence[CommandSpec], lang: str) -> list[dict[str, Any]]:
    """Every command's payload, for one bulk overwrite of the team server's commands."""
    own = [slash_command(spec, lang) for spec in specs if spec.name != THREAD_COMMAND]
    return [*own, thread_command(lang)]


# --- conversation threads ------------------------------------------------------------------------


class ThreadRefs:
    """Which thread stands for which conversation (``ConsoleRef`` rows of kind "topic")."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def conversation_of(self, thread_id: int) -> int | None:
        """The conversation a thread belongs to (Discord thread ids are unique across channels)."""
        async with self.db.sessions() as session:
            found = await session.scalar(
                select(col(ConsoleRef.conversation_id)).where(
                    col(ConsoleRef.platform) == PLATFORM, col(ConsoleRef.kind) == THREAD_KIND,
                    col(ConsoleRef.thread_id) == str(thread_id),
                ).order_by(col(ConsoleRef.id).desc()).limit(1)
            )
        return int(found) if found is not None else None

    async def thread_of(self, chat_id: int, conversation_id: int) -> int | None:
        """The thread a conversation already has in a team channel, if any."""
        async with self.db.sessions() as session:
            found = await session.scalar(
                select(col(ConsoleRef.thread_id)).where(
                    col(ConsoleRef.platform) == PLATFORM, col(ConsoleRef.kind) == THREAD_KIND,
                    col(ConsoleRef.chat_id) == str(chat_id),
                    col(ConsoleRef.conversation_id) == conversation_id,
                ).order_by(col(ConsoleRef.id).desc()).limit(1)
            )
        return int(found) if found is not None else None

    async def remember(self, chat_id: int, thread_id: int, conversation_id: int,
                       message_id: int | None) -> None:
        """Record a conversation's new thread."""
        async with self.db.transaction() as session:
            session.add(ConsoleRef(
                platform=PLATFORM, kind=THREAD_KIND, chat_id=str(chat_id), thread_id=str(thread_id),
                message_id=None if message_id is None else str(message_id), conversation_id=conversation_id,
                created_at=self.clock.now(),
            ))


# --- the console ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Where:
    """Where an interaction or message happened, as the console needs it."""

    channel_id: int
    parent_id: int | None  # set inside a thread
    conversation_id: int | None  # set inside a conversation's thread
    lang: str | None


class DiscordConsole:
    """Turns slash commands, button presses and thread messages into commands, and answers with views."""

    def __init__(
        self, *, scope: Scope, commands: Commands, specs: Sequence[CommandSpec], db: Database, clock: Clock,
        signer: ButtonSigner, chat_languages: Mapping[int, str | None] | None = None,
        language: str = DEFAULT_LANGUAGE, defer_after: float = DEFER_AFTER,
    ) -> None:
        self.scope = scope
        self.commands = commands
        self.specs = list(specs)
        self.shapes = {spec.name: slash_shape(spec) for spec in self.specs}
        self.db = db
        self.clock = clock
        self.refs = ThreadRefs(db, clock)
        self.signer = signer
        self.chat_languages = dict(chat_languages or {})
        self.language = language
        self.defer_after = defer_after

    # --- setup -------------------------------------------------------------------------------------

    async def setup(self, client: discord.Client) -> str | None:
        """Learn the bot's id and (over)write the team server's slash commands; say what went wrong."""
        if client.user is not None:
            self.scope = dataclasses.replace(self.scope, bot_id=client.user.id)
        if self.scope.team_guild_id is None or client.application_id is None:
            return None
        payload = slash_commands(self.specs, self.language)
        guild = self.scope.team_guild_id
        try:
            await client.http.bulk_upsert_guild_commands(client.application_id, guild, payload)
        except discord.HTTPException as exc:
            # Customers must still be heard: the gateway runs without the commands (docs/discord.md).
            return (f"cannot register the slash commands in the team server {guild} (is the bot a member, "
                    f"invited with the applications.commands scope?): {exc}")
        log.info("discord: %d slash commands registered in the team server", len(payload))
        return None

    # --- interactions ------------------------------------------------------------------------------

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Answer one slash command or button press."""
        kinds = (discord.InteractionType.application_command, discord.InteractionType.component)
        if interaction.type in kinds:
            await self._answer(interaction, self._handle(interaction))

    async def _handle(self, interaction: discord.Interaction) -> Rendered:
        where = await self._where_of_interaction(interaction)
        lang = where.lang or self.language
        data: Mapping[str, Any] = interaction.data or {}
        if interaction.type is discord.InteractionType.component:
            command = self.signer.command(str(data.get("custom_id") or ""))
            if command is None:
                return await self._refuse_forged(interaction, where, lang)
        else:
            command = self._slash_text(data, where.conversation_id)
        if interaction.guild_id is None or interaction.guild_id != self.scope.team_guild_id:
            return await self._refuse_foreign(interaction, command, where, lang)
        return await self._run(interaction, command, where)

    def _slash_text(self, data: Mapping[str, Any], conversation_id: int | None) -> str:
        name = str(data.get("name") or "")
        options = [o for o in data.get("options") or () if isinstance(o, Mapping)]
        values = {str(o.get("name")): o.get("value") for o in options}
        shape = self.shapes.get(name) or SlashShape(name, True, None)
        return shape.text(values, conversation_id)

    async def _run(self, interaction: discord.Interaction, command: str, where: _Where) -> Rendered:
        invocation = CommandInvocation(
            text=command, platform=PLATFORM, user_id=str(interaction.user.id),
            conversation_id=where.conversation_id, chat_id=str(where.channel_id), language=where.lang,
        )
        parsed = split_command(command)
        if parsed is not None and parsed.name == THREAD_COMMAND:
            return await self._open_thread(interaction, invocation, parsed.rest, where)
        view = await self.commands(invocation)
        return render(view, thread_button=where.conversation_id is None)

    async def _answer(self, interaction: discord.Interaction, work: Coroutine[Any, Any, Rendered]) -> None:
        """Run ``work`` and answer with it, deferring first if it takes longer than ``defer_after``."""
        task = asyncio.ensure_future(work)
        done, _pending = await asyncio.wait({task}, timeout=self.defer_after)
        deferred = not done
        try:
            if deferred:
                await interaction.response.defer(thinking=True)
            try:
                rendered = await task
            except Exception:
                log.exception("discord: answering an interaction failed")
                rendered = self._error(self.language, t(self.language, "error.internal"))
            await self._respond(interaction, rendered, deferred)
        except discord.HTTPException as exc:
            log.warning("discord: could not answer interaction %s: %s", interaction.id, exc)

    async def _respond(self, interaction: discord.Interaction, rendered: Rendered, deferred: bool) -> None:
        buttons = discord_buttons(rendered.buttons, self.signer)
        mentions = allowed(rendered.pings)
        private = not rendered.ok and not deferred
        for index, part in enumerate(rendered.parts):
            extra: dict[str, Any] = {}
            view = ui_view(buttons) if index == len(rendered.parts) - 1 else None
            if view is not None:
                extra["view"] = view
            if index == 0 and deferred:
                await interaction.edit_original_response(content=part, allowed_mentions=mentions, **extra)
            elif index == 0:
                await interaction.response.send_message(part, ephemeral=private, allowed_mentions=mentions,
                                                        suppress_embeds=True, **extra)
            else:
                await interaction.followup.send(part, ephemeral=private, allowed_mentions=mentions,
                                                suppress_embeds=True, **extra)

    async def _where_of_interaction(self, interaction: discord.Interaction) -> _Where:
        channel_id = interaction.channel_id or 0
        parent_id = getattr(interaction.channel, "parent_id", None)
        conversation = await self.refs.conversation_of(channel_id) if parent_id is not None else None
        return _Where(channel_id, parent_id, conversation, self._chat_language(channel_id, parent_id))

    def _chat_language(self, channel_id: int, parent_id: int | None) -> str | None:
        for key in (channel_id, parent_id):
            if key is not None and key in self.chat_languages:
                return self.chat_languages[key]
        return None

    def _error(self, lang: str, message: str, kind: str = "refused") -> Rendered:
        return render(ErrorView(lang=lang, message=message, kind=kind))

    async def _refuse_forged(self, interaction: discord.Interaction, where: _Where, lang: str) -> Rendered:
        """Audit a press of a button the bot did not sign, and say no."""
        data: Mapping[str, Any] = interaction.data or {}
        custom_id = str(data.get("custom_id") or "")
        log.warning("discord: refused a button press by %s with a custom_id the bot did not sign: %r",
                    interaction.user.id, custom_id[:100])
        async with self.db.transaction() as session:
            await record(session, f"unknown:{PLATFORM}:{interaction.user.id}", REFUSED_EVENT,
                         self.clock.now(), None, command=None, reason="forged_button", platform=PLATFORM,
                         chat_id=str(where.channel_id), custom_id=custom_id[:100])
        return self._error(lang, console_text(lang, "error.forged"))

    async def _refuse_foreign(self, interaction: discord.Interaction, command: str, where: _Where,
                              lang: str) -> Rendered:
        """Say no to a command from outside the team's server, auditing it as the Telegram console does."""
        parsed = split_command(command)
        await refuse_foreign_chat(self.db, self.clock, platform=PLATFORM, user_id=str(interaction.user.id),
                                  chat_id=str(where.channel_id), command=parsed.name if parsed else None,
                                  text=command)
        return self._error(lang, console_text(lang, "error.wrong_place"))

    # --- threads -----------------------------------------------------------------------------------

    async def _open_thread(self, interaction: discord.Interaction, invocation: CommandInvocation, rest: str,
                           where: _Where) -> Rendered:
        lang = where.lang or self.language
        word = rest.strip()
        if word and not looks_like_id(word):
            return render(ErrorView(lang=lang, kind="usage", usage=f"/{THREAD_COMMAND} ID",
                                    message=t(lang, "error.bad_id", value=word, argument="ID")))
        try:
            conversation_id = parse_id(word) if word else where.conversation_id
        except UsageError:
            conversation_id = None
        if conversation_id is None:
            return render(ErrorView(lang=lang, kind="usage", usage=f"/{THREAD_COMMAND} ID",
                                    message=t(lang, "error.missing_argument", argument="ID")))
        # /show checks that the presser is a member and the conversation exists; its view opens the thread.
        show = await self.commands(CommandInvocation(
            text=f"/show {conversation_id}", platform=PLATFORM, user_id=invocation.user_id,
            chat_id=invocation.chat_id, language=invocation.language,
        ))
        if not isinstance(show, ConversationDetailView):
            return render(show, thread_button=False)
        home = where.parent_id or where.channel_id
        existing = await self.refs.thread_of(home, conversation_id)
        if existing is None:
            thread = await self._create_thread(interaction, where, show, lang)
            if thread is None:
                return self._error(lang, console_text(lang, "error.no_thread"), kind="usage")
            existing = thread.id
            card_id = interaction.message.id if interaction.message is not None else None
            card = card_id if card_id == thread.id else None  # the thread hangs from the card it was asked on
            await self.refs.remember(home, thread.id, conversation_id, card)
            detail = render(show, thread_button=False)
            await send_parts(thread, detail.parts, buttons=discord_buttons(detail.buttons, self.signer),
                             suppress_embeds=True)
        left, _, right = console_text(lang, "thread.opened", id=conversation_id, thread="\0").partition("\0")
        return Rendered((f"{escape(left)}<#{existing}>{escape(right)}",))

    async def _create_thread(self, interaction: discord.Interaction, where: _Where,
                             show: ConversationDetailView, lang: str) -> discord.Thread | None:
        if where.parent_id is not None:
            return None  # a thread inside a thread: Discord has none
        name = console_text(lang, "thread.name", id=show.card.id, contact=show.card.contact)
        name = " ".join(name.split())[:THREAD_NAME_LENGTH]
        message = interaction.message
        if message is not None and message.guild is not None:
            try:
                return await message.create_thread(name=name, auto_archive_duration=THREAD_ARCHIVE_MINUTES)
            except discord.HTTPException as exc:
                if exc.code != ALREADY_HAS_THREAD:
                    raise
                found = message.guild.get_thread(message.id)
                if found is not None:
                    return found
                fetched = await interaction.client.fetch_channel(message.id)
                return fetched if isinstance(fetched, discord.Thread) else None
        channel = interaction.channel
        if isinstance(channel, discord.TextChannel):
            return await channel.create_thread(name=name, type=discord.ChannelType.public_thread,
                                               auto_archive_duration=THREAD_ARCHIVE_MINUTES)
        return None

    # --- plain messages in conversation threads ----------------------------------------------------

    async def on_team_message(self, client: discord.Client, message: TeamMessage) -> None:
        """A member wrote in the team server: inside a conversation's thread it is a note (or a command)."""
        try:
            channel = client.get_channel(message.channel_id)
            text = message.text.strip()
            if not text or (channel is not None and not isinstance(channel, discord.Thread)):
                return  # team chatter outside a thread is none of the bot's business
            conversation_id = await self.refs.conversation_of(message.channel_id)
            if conversation_id is None:
                return
            lang = self._chat_language(message.channel_id, getattr(channel, "parent_id", None))
            typed_command = text.startswith("/")
            view = await self.commands(CommandInvocation(
                text=text if typed_command else f"/note {conversation_id} {text}", platform=PLATFORM,
                user_id=str(message.author_id), conversation_id=conversation_id,
                chat_id=str(message.channel_id), language=lang,
            ))
            if view.ok and not typed_command:
                return  # the note is stored; the thread already shows it
            rendered = render(view, thread_button=False)
            reference = discord.MessageReference(message_id=message.message_id, channel_id=message.channel_id,
                                                 fail_if_not_exists=False)
            await send_parts(client.get_partial_messageable(message.channel_id), rendered.parts,
                             buttons=discord_buttons(rendered.buttons, self.signer), pings=rendered.pings,
                             reference=reference, suppress_embeds=True)
        except Exception:
            log.exception("discord: handling a message in the team server failed")

