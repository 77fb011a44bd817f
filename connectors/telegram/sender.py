"""Telegram senders: replies to customers, and team notices rendered natively from their payload views.

Customer replies are sent as plain text (no parse mode), so nothing an agent types can turn into
formatting: the customer reads exactly what was typed. A reply answers the customer's last message
with ``reply_parameters`` (in a group, that keeps the reply in the customer's thread), and a text
longer than Telegram's 4,096 characters goes out as several messages, the first one replying.

Team notices (outbox destination ``team:<name>``) carry a View: it is rendered as HTML with its
buttons, mentions become links that notify the member, and the card's message is recorded as a
ConsoleRef so that replies to it and presses of its buttons find their conversation.

Errors become the outbox's types: a flood limit (429) is ``RateLimited`` with Telegram's
``retry_after`` (not a failed attempt); a blocked bot or a bad request is a ``PermanentFailure``; a
network error or a 5xx is retried. A message split in parts remembers, within this process, which
parts went out, so a retry sends only the rest.
"""

from __future__ import annotations

import base64
import binascii
import html
import logging
from collections.abc import Mapping
from typing import Any, Final

from telegram import InputFile, ReplyParameters
from telegram.error import TelegramError

from connectors.telegram.client import BotClient, delivery_error
from connectors.telegram.console import (
    Forums,
    Progress,
    Refs,
    TeamChatInfo,
    conversation_of_view,
    send_rendered,
)
from connectors.telegram.convert import external_id, parse_external_id
from connectors.telegram.render import TEXT_LIMIT, Line, Rendered, paginate, plain, render
from inbox.events import Outbound, Receipt
from inbox.notify.chats import is_team_destination
from inbox.ports import Pace, PermanentFailure
from inbox.view_codec import ViewCodecError, load
from inbox.views import View

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024  # characters of a photo caption


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Plain text in parts of at most ``limit`` UTF-16 code units, cut at line breaks or spaces."""
    lines: list[Line] = [(plain(line),) for line in text.split("\n")]
    # paginate escapes for HTML; plain parts are the same text unescaped (lengths count the plain text)
    return [html.unescape(chunk) for chunk in paginate(lines, limit)]


class TeamSender:
    """Posts team notices (``team:<name>`` rows) into the team chats one bot hosts.

    A payload with ``image_png_b64`` (the weekly report's chart) gets the image as a photo after the
    text, with ``image_caption`` as its plain caption.
    """

    # Telegram allows a bot about one message a second per chat and tolerates a short burst (it
    # documents no size; 3 is what connectors/telegram/emulator_limits.py allows); faster gets 429s.
    pace: Final = Pace(interval=1.0, burst=3)

    def __init__(
        self, client: BotClient, refs: Refs, forums: Forums, chats: Mapping[str, TeamChatInfo]
    ) -> None:
        self.client = client
        self.refs = refs
        self.forums = forums
        self.chats = dict(chats)  # by destination
        self._progress: dict[int, Progress] = {}

    async def send(self, outbound: Outbound) -> Receipt:
        """Render the payload's view and post it; raise the outbox's failure types."""
        chat_id = self._chat_id(outbound)
        view = self._view(outbound)
        thread = outbound.extra.get("thread_id")
        thread_id = (
            int(thread) if isinstance(thread, int | str) and str(thread).lstrip("-").isdigit() else None
        )
        mentions = outbound.extra.get("mentions") or {}
        progress = self._progress.setdefault(outbound.delivery_id, Progress())
        try:
            topics = await self.forums.is_forum(chat_id)
            if view is not None:
                rendered = render(
                    view,
                    mentions={str(k): None if v is None else str(v) for k, v in mentions.items()},
                    topics=topics,
                )
                conversation_id = conversation_of_view(view)
            else:  # a payload without a view (an older writer): its plain text, escaped
                rendered = Rendered(tuple(paginate([(plain(outbound.text),)])))
                conversation_id = None
            if not rendered.chunks:
                raise PermanentFailure("the notice has no text to send")
            await send_rendered(
                self.client,
                self.refs,
                chat_id,
                rendered,
                conversation_id=conversation_id,
                thread_id=thread_id,
                progress=progress,
            )
            if not progress.extra_sent and outbound.extra.get("image_png_b64"):
                await self._send_image(outbound, chat_id, thread_id)
                progress.extra_sent = True
        except TelegramError as exc:
            failure = delivery_error(exc, f"the team notice to {outbound.destination}")
            if not failure.retryable:
                self._progress.pop(outbound.delivery_id, None)
            raise failure from exc
        self._progress.pop(outbound.delivery_id, None)
        return Receipt(platform_message_id=external_id(chat_id, progress.sent[0]))

    async def _send_image(self, outbound: Outbound, chat_id: int, thread_id: int | None) -> None:
        try:
            data = base64.b64decode(str(outbound.extra["image_png_b64"]), validate=True)
        except (binascii.Error, ValueError):
            log.warning("delivery #%s: the image is not valid base64; sent without it", outbound.delivery_id)
            return
        name = str(outbound.extra.get("image_name") or "image.png")
        caption = outbound.extra.get("image_caption")
        bot = await self.client.bot()
        # No parse mode: the caption is plain text and must show as such.
        await bot.send_photo(
            chat_id,
            InputFile(data, filename=name),
            caption=str(caption)[:CAPTION_LIMIT] if caption else None,
            message_thread_id=thread_id,
        )

    def _chat_id(self, outbound: Outbound) -> int:
        raw: Any = outbound.extra.get("chat_id")
        if raw is None and outbound.destination in self.chats:
            raw = self.chats[outbound.destination].chat_id
        try:
            return int(str(raw))
        except ValueError:
            raise PermanentFailure(
                f"team chat id {raw!r} of {outbound.destination} is not a Telegram chat id"
            ) from None

    @staticmethod
    def _view(outbound: Outbound) -> View | None:
        stored = outbound.extra.get("view")
        if not isinstance(stored, dict):
            return None
        try:
            return load(stored)
        except ViewCodecError as exc:
            log.warning(
                "delivery #%s: stored view unreadable (%s); sending its plain text", outbound.delivery_id, exc
            )
            return None


class TelegramSender:
    """Sends a Telegram channel's outbox rows: customer replies, and team notices when it hosts team chats."""

    text_limit = TEXT_LIMIT  # UTF-16 code units per message

    def __init__(self, channel: str, client: BotClient, team: TeamSender | None = None) -> None:
        self.channel = channel
        self.client = client
        self.team = team
        self._progress: dict[int, list[int]] = {}

    async def send(self, outbound: Outbound) -> Receipt:
        """Send one row; team destinations go to the team sender."""
        if is_team_destination(outbound.destination):
            if self.team is None:
                raise PermanentFailure(f"channel {self.channel} hosts no team chat {outbound.destination}")
            return await self.team.send(outbound)
        return await self._reply(outbound)

    async def _reply(self, outbound: Outbound) -> Receipt:
        chat_id, reply_to = self._target(outbound)
        parts = split_text(outbound.text.strip())
        if not parts:
            raise PermanentFailure("an empty reply cannot be sent to Telegram")
        sent = self._progress.setdefault(outbound.delivery_id, [])
        try:
            bot = await self.client.bot()
            while len(sent) < len(parts):
                index = len(sent)
                parameters = None
                if index == 0 and reply_to is not None:
                    parameters = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                # No parse mode: the customer reads the agent's text exactly as typed.
                message = await bot.send_message(chat_id, parts[index], reply_parameters=parameters)
                sent.append(message.message_id)
        except TelegramError as exc:
            failure = delivery_error(exc, "the reply")
            if not failure.retryable:
                self._progress.pop(outbound.delivery_id, None)
            raise failure from exc
        self._progress.pop(outbound.delivery_id, None)
        return Receipt(platform_message_id=external_id(chat_id, sent[0]))

    @staticmethod
    def _target(outbound: Outbound) -> tuple[int, int | None]:
        """The chat to answer in and the customer message to reply to."""
        replied = parse_external_id(outbound.reply_to)
        if replied is not None:
            return replied
        thread = parse_external_id(outbound.thread_key)
        if thread is not None:
            return thread[0], None
        if outbound.recipient and outbound.recipient.lstrip("-").isdigit():
            return int(outbound.recipient), None  # a private chat's id is the user's id
        raise PermanentFailure("no Telegram chat to reply in: the conversation has no customer message")
