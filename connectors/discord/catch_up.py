"""Catching up after a gap: customer messages the gateway never delivered, read back through REST.

Discord replays missed events only to a session it resumes. When it does not (INVALID_SESSION after a
long outage, a replay buffer outrun, or the process itself was down), every message sent in the gap
is gone from the gateway. So whenever a new session is ready, each Discord channel a customer wrote in
recently (stored inbound messages, newest first, within ``window``) is read from the newest stored
message on (``GET /channels/{id}/messages?after=``), oldest first, and fed to the source as if the
gateway had delivered it. Ingest drops what is already stored, so live messages arriving meanwhile
and catch-up overlap harmlessly.

Not covered: a DM from a customer who never wrote to the bot before (Discord lists no bot's DM
channels), and edits made during the gap (only messages after the newest stored one are read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import discord
from sqlmodel import col, select

from connectors.discord.convert import parse_address
from connectors.discord.service import find_channel
from inbox.clock import Clock
from inbox.db import Database
from inbox.models import Channel, Conversation, Direction, Kind, Message

log = logging.getLogger(__name__)

PAGE: Final = 100  # Discord's largest page
WINDOW: Final = timedelta(days=14)
MAX_CHANNELS: Final = 500
MAX_PAGES: Final = 20  # 2,000 messages a channel

Feed = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class KnownChannel:
    """A Discord channel a customer wrote in: its id, the newest stored message's id, and whether a DM."""

    channel_id: int
    newest_id: int
    dm: bool


async def known_channels(db: Database, channel: str, clock: Clock, window: timedelta = WINDOW,
                         limit: int = MAX_CHANNELS) -> list[KnownChannel]:
    """The Discord channels with customer messages stored in ``channel`` within ``window``, most recently
    active first (at most ``limit``)."""
    async with db.reading() as session:
        rows = await session.execute(
            select(col(Message.external_id), col(Conversation.kind))
            .join(Channel, col(Channel.id) == col(Message.channel_id))
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(col(Channel.name) == channel, col(Message.direction) == Direction.IN.value,
                   col(Message.created_at) >= clock.now() - window, col(Message.external_id).is_not(None))
        )
        newest: dict[int, tuple[int, bool]] = {}
        for external_id, kind in rows:
            address = parse_address(external_id)
            if address is None:
                continue
            channel_id, message_id = address
            seen = newest.get(channel_id)
            if seen is None or message_id > seen[0]:
                newest[channel_id] = (message_id, kind == Kind.DM.value)
    ranked = sorted(newest.items(), key=lambda item: item[1][0], reverse=True)[:limit]
    return [KnownChannel(channel_id, message_id, dm) for channel_id, (message_id, dm) in ranked]


class CatchUp:
    """Reads back what each known channel received after its newest stored message."""

    def __init__(self, db: Database, clock: Clock, channel: str, *, window: timedelta = WINDOW,
                 max_channels: int = MAX_CHANNELS, max_pages: int = MAX_PAGES) -> None:
        self.db = db
        self.clock = clock
        self.channel = channel
        self.window = window
        self.max_channels = max_channels
        self.max_pages = max_pages

    async def run(self, client: discord.Client, feed: Feed) -> int:
        """Feed every message found after the stored ones; returns how many were fed."""
        try:
            known = await known_channels(self.db, self.channel, self.clock, self.window, self.max_channels)
        except Exception as exc:  # the live session goes on; the gap stays as it was
            log.warning("discord %s: cannot list the channels to catch up (%s)", self.channel, exc)
            return 0
        fed = 0
        for entry in known:
            fed += await self._channel(client, entry, feed)
        if fed:
            log.info("discord %s: caught up %d message(s) the gateway did not deliver", self.channel, fed)
        return fed

    async def _channel(self, client: discord.Client, entry: KnownChannel, feed: Feed) -> int:
        guild_id = None
        if not entry.dm:
            guild_id = await self._guild_of(client, entry.channel_id)
            if guild_id is None:
                return 0
        fed, after = 0, entry.newest_id
        for _ in range(self.max_pages):
            try:
                page = await client.http.logs_from(entry.channel_id, PAGE, after=after)
            except discord.HTTPException as exc:
                log.warning("discord %s: cannot read channel %s to catch up (%s)", self.channel,
                            entry.channel_id, exc)
                return fed
            # Discord answers newest first; the source wants them in the order they were written.
            found: list[dict[str, Any]] = sorted(
                (dict(m) for m in page if isinstance(m, dict) and str(m.get("id", "")).isdigit()),
                key=lambda m: int(m["id"]))
            for message in found:
                # A REST message does not name its server, as a gateway one does; the source needs it.
                if guild_id is not None:
                    message = {**message, "guild_id": str(guild_id)}
                feed("MESSAGE_CREATE", message)
            fed += len(found)
            if len(page) < PAGE or not found:
                return fed
            after = int(found[-1]["id"])
        log.warning("discord %s: channel %s has more than %d messages to catch up; the rest are not read",
                    self.channel, entry.channel_id, self.max_pages * PAGE)
        return fed

    async def _guild_of(self, client: discord.Client, channel_id: int) -> int | None:
        channel = await find_channel(client, channel_id, self.channel)
        guild = getattr(channel, "guild", None)
        return guild.id if guild is not None else None
