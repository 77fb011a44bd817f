"""The customers' side: the channel's keys, and the queue that turns gateway messages into stored ones.

The gateway hands every MESSAGE_CREATE and MESSAGE_UPDATE to ``DiscordSource.feed`` in the order it
received them (replays after a RESUME included). One worker converts them (``convert.to_inbound``)
and stores them in batches through ``ingest``; when the database is unreachable it keeps the batch
and tries again, so a message the gateway delivered is not dropped because of a passing database
error. Duplicates (a replay, an event seen twice) are dropped by ingest's unique key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.discord.convert import Scope, Where, to_inbound
from inbox.events import Batch, Inbound

log = logging.getLogger(__name__)

Resolver = Callable[[int, int | None], Awaitable[Where]]
Ingest = Callable[[Batch], Awaitable[Any]]

MESSAGE_EVENTS = frozenset({"MESSAGE_CREATE", "MESSAGE_UPDATE"})


class Options(BaseModel):
    """Keys of a ``type = "discord"`` channel (``docs/discord.md`` explains each)."""

    model_config = ConfigDict(extra="forbid")

    token_env: str = Field(min_length=1, description="environment variable holding the bot token")
    api_base_url: str | None = Field(default=None, description="REST base, e.g. an emulator's .../api/v10")
    gateway_url: str | None = Field(default=None, description="gateway websocket URL (ws:// or wss://)")
    team_guild_id: int | None = Field(default=None, gt=0, description="the team's private server")
    support_channel_ids: list[int] = Field(default_factory=list, description="channels whose every message "
                                           "is a customer's")
    community_guild_ids: list[int] = Field(default_factory=list, description="servers whose mentions count; "
                                           "empty: every server but the team's")

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("api_base_url must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("gateway_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("ws://", "wss://")):
            raise ValueError("gateway_url must start with ws:// or wss://")
        return value

    @field_validator("support_channel_ids", "community_guild_ids")
    @classmethod
    def _snowflakes(cls, value: list[int]) -> list[int]:
        bad = [v for v in value if v <= 0]
        if bad:
            raise ValueError(f"not Discord ids: {', '.join(map(str, bad))}")
        return value


class DiscordSource:
    """Orders, converts and stores the customer messages the gateway delivers."""

    def __init__(self, scope: Scope, ingest: Ingest, resolve: Resolver, *, max_batch: int = 100,
                 retry_delay: float = 0.5, max_retry_delay: float = 30.0,
                 drain_timeout: float = 10.0) -> None:
        self.scope = scope
        self.ingest = ingest
        self.resolve = resolve
        self.max_batch = max_batch
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.drain_timeout = drain_timeout
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.stored = 0  # events handed to ingest successfully (for logs and tests)

    def set_bot(self, bot_id: int) -> None:
        """Learn the bot's own user id (known after login)."""
        if self.scope.bot_id != bot_id:
            self.scope = dataclasses.replace(self.scope, bot_id=bot_id)

    def feed(self, event: str, payload: dict[str, Any]) -> None:
        """Queue one gateway event; never blocks, so the caller keeps the gateway's order."""
        if event in MESSAGE_EVENTS:
            self._queue.put_nowait((event, payload))

    @property
    def pending(self) -> int:
        """Events received but not stored yet."""
        return self._queue.qsize()

    async def run(self, stop: asyncio.Event) -> None:
        """Store queued events until ``stop``; then store what is still queued (for ``drain_timeout``)."""
        while not stop.is_set():
            getter = asyncio.ensure_future(self._queue.get())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
            if not getter.done():
                getter.cancel()
                break
            await self._store([getter.result(), *self._take(self.max_batch - 1)], stop)
        try:
            async with asyncio.timeout(self.drain_timeout):
                while not self._queue.empty():
                    await self._store(self._take(self.max_batch), None)
        except TimeoutError:
            log.error("discord %s: %d received message(s) could not be stored before shutdown",
                      self.scope.channel, self._queue.qsize())

    def _take(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        items: list[tuple[str, dict[str, Any]]] = []
        while len(items) < count and not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    async def _store(self, items: list[tuple[str, dict[str, Any]]], stop: asyncio.Event | None) -> None:
        events = await self.convert(items)
        if not events:
            return
        delay = self.retry_delay
        while True:
            try:
                await self.ingest(Batch(self.scope.channel, events))
                self.stored += len(events)
                return
            except Exception as exc:
                log.warning("discord %s: storing %d message(s) failed (%s); trying again in %.1fs",
                            self.scope.channel, len(events), exc, delay)
            # Real seconds: this waits out a database hiccup, it is not a deadline.
            if stop is None:
                await asyncio.sleep(delay)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
            delay = min(delay * 2, self.max_retry_delay)

    async def convert(self, items: list[tuple[str, dict[str, Any]]]) -> list[Inbound]:
        """The customer messages among ``items``, in order; an edit of a message in the same batch is folded
        into it (ingest would take the second event with the same id for a duplicate)."""
        events: list[Inbound] = []
        index: dict[str, int] = {}
        for _event, payload in items:
            inbound = await self._convert_one(payload)
            if inbound is None:
                continue
            earlier = index.get(inbound.external_id)
            if earlier is None:
                index[inbound.external_id] = len(events)
                events.append(inbound)
            elif inbound.edited_at is not None:
                events[earlier] = dataclasses.replace(
                    events[earlier], text=inbound.text, edited_at=inbound.edited_at,
                    attachments=inbound.attachments or events[earlier].attachments,
                )
        return events

    async def _convert_one(self, payload: dict[str, Any]) -> Inbound | None:
        channel_id = _snowflake(payload.get("channel_id"))
        if channel_id is None:
            return None
        guild_id = _snowflake(payload.get("guild_id"))
        try:
            where = await self.resolve(channel_id, guild_id) if guild_id is not None else Where.dm()
        except Exception as exc:  # the channel lookup is a nicety; the message must not be lost for it
            log.warning("discord %s: cannot look up channel %s (%s)", self.scope.channel, channel_id, exc)
            where = Where.guild(guild_id) if guild_id is not None else Where.dm()
        try:
            return to_inbound(payload, where, self.scope)
        except Exception:
            log.exception("discord %s: skipped a message payload that could not be read", self.scope.channel)
            return None


def _snowflake(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
