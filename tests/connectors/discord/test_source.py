"""The source's queue: gateway order kept, an edit folded into its message, a failing database waited out,
what was queued stored at shutdown. Recorded payloads, a fake ingest: no emulator, no database."""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.discord.convert import Where
from connectors.discord.source import DiscordSource
from inbox.events import Batch
from tests.connectors.discord.test_convert import SCOPE, fixture, where


class FakeIngest:
    """Records batches; fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[Batch] = []
        self.calls = 0
        self.stored = asyncio.Event()

    async def __call__(self, batch: Batch) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("database unreachable")
        self.batches.append(batch)
        self.stored.set()


async def resolve(channel_id: int, guild_id: int | None) -> Where:
    """The channel cache, as recorded with the fixtures."""
    return where({"channel_id": str(channel_id)})


def source(ingest: FakeIngest, **options: Any) -> DiscordSource:
    """A source that retries quickly."""
    return DiscordSource(SCOPE, ingest, resolve, retry_delay=0.01, **options)


async def test_events_are_stored_in_gateway_order_and_others_are_skipped() -> None:
    ingest = FakeIngest()
    feed = source(ingest)
    for name in ("support_post", "bot_echo", "support_reply", "general_chatter", "team_message"):
        feed.feed("MESSAGE_CREATE", fixture(name))
    feed.feed("GUILD_CREATE", {"id": "1"})
    assert feed.pending == 5
    stop = asyncio.Event()
    task = asyncio.create_task(feed.run(stop))
    await asyncio.wait_for(ingest.stored.wait(), 5)
    stop.set()
    await task
    texts = [e.text for b in ingest.batches for e in b.events]
    assert texts == ["My invoice is wrong", "Same here!"] and feed.stored == 2


async def test_an_edit_in_the_same_batch_is_folded_into_its_message() -> None:
    ingest = FakeIngest()
    feed = source(ingest)
    feed.feed("MESSAGE_CREATE", fixture("dm_text"))
    feed.feed("MESSAGE_UPDATE", fixture("dm_edit"))
    await feed.run(_stopped())
    ((event,),) = [b.events for b in ingest.batches]
    assert event.text == "Hi, my parcel is late (order 1234)" and event.edited_at is not None
    assert event.created_at < event.edited_at


async def test_a_failing_database_is_retried_until_the_batch_is_stored() -> None:
    ingest = FakeIngest(failures=3)
    feed = source(ingest)
    feed.feed("MESSAGE_CREATE", fixture("dm_text"))
    stop = asyncio.Event()
    task = asyncio.create_task(feed.run(stop))
    await asyncio.wait_for(ingest.stored.wait(), 5)
    stop.set()
    await task
    assert ingest.calls == 4 and [e.text for e in ingest.batches[0].events] == ["Hi, my parcel is late"]


async def test_what_is_queued_at_shutdown_is_stored_and_a_failed_lookup_does_not_lose_it() -> None:
    async def broken(channel_id: int, guild_id: int | None) -> Where:
        raise RuntimeError("cache gone")

    ingest = FakeIngest()
    feed = DiscordSource(SCOPE, ingest, broken, retry_delay=0.01)
    feed.feed("MESSAGE_CREATE", fixture("support_post"))  # the channel is known without the cache
    feed.feed("MESSAGE_CREATE", fixture("dm_text"))
    await feed.run(_stopped())
    texts = [e.text for b in ingest.batches for e in b.events]
    assert texts == ["My invoice is wrong", "Hi, my parcel is late"]
    assert feed.pending == 0


def _stopped() -> asyncio.Event:
    stop = asyncio.Event()
    stop.set()
    return stop
