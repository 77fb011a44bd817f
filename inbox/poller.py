"""Polling loop for a PolledSource: fetch since the stored cursor, ingest, repeat."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import update
from sqlmodel import col, select

from inbox.clock import Clock, clock_wait
from inbox.db import Database
from inbox.ingest import Ingestor
from inbox.models import Channel
from inbox.ports import NoticeSink, PolledSource

log = logging.getLogger(__name__)
MAX_ERROR_BACKOFF = 300.0


class Poller:
    """Polls one channel's source; the cursor lives in the database, stored with each batch."""

    def __init__(
        self,
        channel: str,
        source: PolledSource,
        ingestor: Ingestor,
        db: Database,
        clock: Clock,
        interval: float,
        notices: NoticeSink | None = None,
    ) -> None:
        self.channel = channel
        self.source = source
        self.ingestor = ingestor
        self.db = db
        self.clock = clock
        self.interval = interval
        self.errors = 0
        self.notices = notices  # told when the channel breaks (health.error) and recovers (health.ok)
        self.health: str | None = None  # what this process last recorded

    async def poll_once(self) -> int:
        """Fetch and ingest one batch; returns how many events the source returned."""
        async with self.db.sessions() as session:
            cursor = await session.scalar(
                select(col(Channel.cursor)).where(col(Channel.name) == self.channel)
            )
        batch = await self.source.fetch(cursor)
        if batch.events or batch.cursor != cursor:
            await self.ingestor.ingest(batch)
        return len(batch.events)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; errors are logged, recorded as channel health, and retried."""
        while not stop.is_set():
            delay = self.interval
            try:
                fetched = await self.poll_once()
                if self.errors or self.health != "ok":
                    await self._set_health("ok", None)
                self.errors = 0
                if fetched:
                    delay = 0  # there may be more waiting: drain before sleeping
            except Exception as exc:  # a source failure must never stop the loop
                self.errors += 1
                delay = min(MAX_ERROR_BACKOFF, self.interval * 2 ** min(self.errors, 8))
                log.warning("channel %s: poll failed (%s); retrying in %.0fs", self.channel, exc, delay)
                await self._set_health("error", str(exc)[:500])
            await _sleep_or_stop(self.clock, delay, stop)

    async def _set_health(self, health: str, detail: str | None) -> None:
        try:
            async with self.db.transaction() as session:
                previous = await session.scalar(
                    select(col(Channel.health)).where(col(Channel.name) == self.channel)
                )
                await session.execute(
                    update(Channel)
                    .where(col(Channel.name) == self.channel)
                    .values(health=health, health_detail=detail, updated_at=self.clock.now())
                )
        except Exception:  # the database may be the thing that is down
            log.exception("channel %s: could not record health", self.channel)
            return
        self.health = health
        # Only changes to or from "error" are news (unknown -> ok at start is not).
        if self.notices is not None and previous != health and "error" in (previous, health):
            try:
                await self.notices.notice(f"health.{health}", channel=self.channel, detail=detail)
            except Exception:
                log.exception("channel %s: could not report its health to the team", self.channel)


async def _sleep_or_stop(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    if seconds <= 0:
        await asyncio.sleep(0)
        return
    await clock_wait(clock, seconds, stop)
