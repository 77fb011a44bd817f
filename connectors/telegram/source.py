"""Telegram source: the channel's keys, and customer-side updates turned into a Batch with its cursor.

The update loop (``service.py``) hands over the updates that are not the team's; ``TelegramSource``
converts them (``convert.py``), keeps a group message that only continues a reply chain when that
chain is already a conversation, and returns the Batch to ingest together with the cursor: the
``update_id`` to ask Telegram for next. Ingest stores the events and the cursor in one transaction,
so a crash never loses a message and never stores one twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlmodel import col, select

from connectors.telegram.convert import BotIdentity, Converted, Json, message_of, message_to_inbound
from inbox.db import Database
from inbox.events import Batch, Inbound
from inbox.models import Channel, Conversation, Message

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/[A-Za-z0-9/_.-]*$")


class Options(BaseModel):
    """Keys of a ``type = "telegram"`` channel (see docs/telegram.md)."""

    model_config = ConfigDict(extra="forbid")

    token_env: str = Field(min_length=1, description="environment variable holding the bot token")
    api_base_url: str | None = Field(
        default=None, description="a self-hosted Bot API server (or the emulator)"
    )
    mode: Literal["polling", "webhook"] = "polling"
    poll_timeout: float = Field(default=30.0, gt=0, le=50, description="seconds one long poll may wait")
    webhook_secret_env: str | None = Field(default=None, description="variable holding the webhook secret")
    webhook_path: str | None = Field(
        default=None, description="path served on [web]; default /webhooks/telegram/NAME"
    )
    webhook_url: str | None = Field(
        default=None, description="public URL Telegram posts to; default from [web]"
    )
    customers: bool = Field(
        default=True, description="DMs, mentions and comments to this bot are conversations"
    )
    request_timeout: float = Field(default=30.0, gt=0, le=300)

    @field_validator("api_base_url", "webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("webhook_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not _PATH.match(value):
            raise ValueError("webhook_path must start with '/' and use only letters, digits and / _ . -")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Options:
        if self.mode == "webhook" and not self.webhook_secret_env:
            raise ValueError(
                'mode = "webhook" needs webhook_secret_env (Telegram sends the secret with '
                "every update; requests without it are refused)"
            )
        return self


class TelegramSource:
    """Converts a channel's customer-side updates into Batches (``channel`` None: no customers).

    ``excluded_chats`` are the configured team chats: what is said there never becomes a customer
    message, even when this bot is only a guest in them.
    """

    def __init__(
        self,
        channel: str | None,
        cursor_channel: str,
        db: Database | None,
        excluded_chats: frozenset[int] = frozenset(),
    ) -> None:
        self.channel = channel
        self.cursor_channel = cursor_channel
        self.db = db
        self.excluded_chats = excluded_chats

    def convert(self, updates: Sequence[Json], bot: BotIdentity) -> list[Converted]:
        """The Inbound events in these updates (pure: no database)."""
        if self.channel is None:
            return []
        found: list[Converted] = []
        for update in updates:
            carried = message_of(update)
            if carried is None:
                continue
            message, edited = carried
            if (message.get("chat") or {}).get("id") in self.excluded_chats:
                continue
            try:
                converted = message_to_inbound(self.channel, message, bot, edited=edited)
            except (KeyError, TypeError, ValueError) as exc:  # a malformed update must not stop the loop
                log.warning("channel %s: skipped update %s: %s", self.channel, update.get("update_id"), exc)
                continue
            if converted is not None:
                found.append(converted)
        return found

    async def batch(self, updates: Sequence[Json], bot: BotIdentity, cursor: int | None) -> Batch:
        """The Batch to ingest for these updates, carrying ``cursor`` (the next update id to ask for)."""
        converted = self.convert(updates, bot)
        events = await self._keep(converted)
        channel = self.channel if self.channel is not None else self.cursor_channel
        return Batch(channel, events, None if cursor is None else str(cursor))

    async def _keep(self, converted: Sequence[Converted]) -> list[Inbound]:
        """Drop messages that only continue a reply chain the inbox does not hold."""
        maybe = [c.event for c in converted if c.continues_thread]
        if not maybe:
            return [c.event for c in converted]
        sure = [c.event for c in converted if not c.continues_thread]
        keys = {e.thread_key for e in sure if e.thread_key} | {e.external_id for e in sure}
        known_keys, known_ids = await self._known(
            {e.thread_key for e in maybe if e.thread_key},
            {e.reply_to for e in maybe if e.reply_to} | {e.external_id for e in maybe},
        )
        keys |= known_keys
        kept: list[Inbound] = []
        for item in converted:
            event = item.event
            if item.continues_thread and not (
                event.thread_key in keys
                or event.reply_to in known_ids
                or event.reply_to in keys
                or event.external_id in known_ids
            ):
                continue
            kept.append(event)
            keys.add(event.external_id)
        return kept

    async def _known(self, thread_keys: set[str], external_ids: set[str]) -> tuple[set[str], set[str]]:
        """Which of these thread keys are conversations, and which external ids are stored, on the channel."""
        if self.db is None or self.channel is None:
            return set(), set()
        async with self.db.sessions() as session:
            channel_id = await session.scalar(
                select(col(Channel.id)).where(col(Channel.name) == self.channel)
            )
            if channel_id is None:
                return set(), set()
            keys = (
                set(
                    (
                        await session.execute(
                            select(col(Conversation.thread_key)).where(
                                col(Conversation.channel_id) == channel_id,
                                col(Conversation.thread_key).in_(thread_keys),
                            )
                        )
                    ).scalars()
                )
                if thread_keys
                else set()
            )
            ids = (
                set(
                    (
                        await session.execute(
                            select(col(Message.external_id)).where(
                                col(Message.channel_id) == channel_id,
                                col(Message.external_id).in_(external_ids),
                            )
                        )
                    ).scalars()
                )
                if external_ids
                else set()
            )
        return {k for k in keys if k}, {i for i in ids if i}


async def load_cursor(db: Database, channel: str) -> int | None:
    """The stored cursor of ``channel``: the next update id to ask Telegram for."""
    async with db.sessions() as session:
        raw: Any = await session.scalar(select(col(Channel.cursor)).where(col(Channel.name) == channel))
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        log.warning(
            "channel %s: stored cursor %r is not an update id; starting from Telegram's queue", channel, raw
        )
        return None
