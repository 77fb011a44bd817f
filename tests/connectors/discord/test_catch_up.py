"""Catching up after a session that could not resume: which channels are read, and what a failure does."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest

from connectors.discord.catch_up import CatchUp, KnownChannel, known_channels
from connectors.discord.emulator_world import MessageRecord
from tests.connectors.discord.conftest import World, eventually

LIST_MESSAGES = "GET /channels/{channel_id}/messages"


async def _before_the_gap(w: World, dm_text: str, support_text: str) -> tuple[MessageRecord, MessageRecord]:
    """Once the first session's catch-up is done: dana's DM and eli's support message, stored."""
    await eventually(lambda: w.parts.service.catch_ups == 1)
    support = w.emu.channel("support", w.emu.guild("Saluran Community"))
    first = await w.emu.user_dm(w.user("dana"), dm_text)
    asked = await w.emu.guild_message(support, w.user("eli"), support_text)
    await w.stored(f"{first.channel_id}:{first.id}")
    await w.stored(f"{asked.channel_id}:{asked.id}")
    return first, asked


async def test_known_channels_are_where_customers_wrote_recently_newest_first(discord_world: World):
    w = discord_world
    dana, eli = w.user("dana"), w.user("eli")
    support = w.emu.channel("support", w.emu.guild("Saluran Community"))
    old = await w.emu.user_dm(eli, "a month ago")
    await w.stored(f"{old.channel_id}:{old.id}")
    w.clock.advance(timedelta(days=30))
    first = await w.emu.user_dm(dana, "hello")
    asked = await w.emu.guild_message(support, eli, "a question")
    newest = await w.emu.user_dm(dana, "hello again")
    stored = [await w.stored(f"{m.channel_id}:{m.id}") for m in (first, asked, newest)]
    (conversation,) = [c for c in await w.conversations() if c.id == stored[-1].conversation_id]
    await w.reply(conversation, "an answer is not a customer's message")
    await w.dispatcher.run_once()
    (answer,) = await eventually(lambda: w.emu.sent(newest.channel_id))
    assert answer.id > newest.id  # stored with its address, and newer: it must not count
    await w.stored(f"{answer.channel_id}:{answer.id}")

    found = await known_channels(w.db, "discord", w.clock)
    assert found == [KnownChannel(newest.channel_id, newest.id, True),
                     KnownChannel(asked.channel_id, asked.id, False)]
    assert await known_channels(w.db, "discord", w.clock, limit=1) == found[:1]
    assert await known_channels(w.db, "another channel", w.clock) == []


async def test_a_channel_that_cannot_be_read_is_skipped_and_the_rest_caught_up(
    discord_world: World, caplog: pytest.LogCaptureFixture
):
    w = discord_world
    service = w.parts.service
    first, _ = await _before_the_gap(w, "before", "support before")
    dana, eli = w.user("dana"), w.user("eli")
    support = w.emu.channel("support", w.emu.guild("Saluran Community"))
    w.emu.inject(f"/channels/{first.channel_id}/messages", 403, times=None,
                 body={"message": "Missing Access", "code": 50001})

    await w.emu.invalidate_sessions()
    lost = await w.emu.user_dm(dana, "in the gap, in a channel that cannot be read")
    caught = await w.emu.guild_message(support, eli, "support, in the gap")
    with caplog.at_level(logging.WARNING, logger="connectors.discord.catch_up"):
        await eventually(lambda: service.catch_ups == 2, within=10)
    await w.stored(f"{caught.channel_id}:{caught.id}")
    assert f"cannot read channel {first.channel_id} to catch up" in caplog.text
    assert lost.content not in [m.text for m in await w.messages()]

    later = await w.emu.user_dm(dana, "the live session goes on")
    await w.stored(f"{later.channel_id}:{later.id}")
    listed = [r for r in w.emu.requests if r.route == LIST_MESSAGES]
    assert sorted(r.status for r in listed) == [200, 403]


async def test_a_channel_reads_at_most_its_pages_and_says_so(
    discord_world: World, caplog: pytest.LogCaptureFixture
):
    w = discord_world
    service = w.parts.service
    assert service.catch_up is not None
    service.catch_up.max_pages = 1
    await eventually(lambda: service.catch_ups == 1)
    dana = w.user("dana")
    first = await w.emu.user_dm(dana, "before")
    await w.stored(f"{first.channel_id}:{first.id}")

    await w.emu.invalidate_sessions()
    gap = [await w.emu.user_dm(dana, f"gap {n}") for n in range(120)]
    with caplog.at_level(logging.WARNING, logger="connectors.discord.catch_up"):
        await eventually(lambda: service.catch_ups == 2, within=10)
    await w.stored(f"{gap[99].channel_id}:{gap[99].id}")
    assert "has more than 100 messages to catch up; the rest are not read" in caplog.text
    texts = [m.text for m in await w.messages()]
    assert texts == ["before", *(f"gap {n}" for n in range(100))]


async def test_a_session_that_cannot_resume_catches_up_what_the_gateway_never_delivered(discord_world: World):
    w = discord_world
    service = w.parts.service
    await _before_the_gap(w, "before the gap", "support question")
    # The first session's catch-up found nothing stored, so it read nothing.
    assert [r.path for r in w.emu.requests if r.route == LIST_MESSAGES] == []
    dana, eli = w.user("dana"), w.user("eli")
    support = w.emu.channel("support", w.emu.guild("Saluran Community"))
    identified = w.emu.identify_count

    await w.emu.invalidate_sessions()
    # No session exists until discord.py identifies again: the gateway delivers these to nobody.
    gap = [await w.emu.user_dm(dana, f"in the gap {n}") for n in range(150)]
    gap.append(await w.emu.guild_message(support, eli, "support, in the gap"))

    await eventually(lambda: service.catch_ups == 2, within=10)
    for missed in (gap[0], gap[-2], gap[-1]):
        await w.stored(f"{missed.channel_id}:{missed.id}")
    delivered = {e.data.get("id") for e in w.emu.gateway.dispatched if e.type == "MESSAGE_CREATE"}
    assert not delivered & {str(m.id) for m in gap}, "caught up through REST, not replayed"
    assert w.emu.identify_count == identified + 1 and w.emu.resume_count == 0
    listed = [r for r in w.emu.requests if r.route == LIST_MESSAGES]
    assert len(listed) == 3 and all(r.status == 200 for r in listed), "two pages of the DM, one of support"
    stored = await w.messages()
    texts = [m.text for m in stored]
    assert texts[:2] == ["before the gap", "support question"]
    assert [t for t in texts if t.startswith("in the gap")] == [f"in the gap {n}" for n in range(150)], \
        "in the order written, each once, over two pages"
    assert texts.count("support, in the gap") == 1 and len(texts) == 153
    by_text = {m.text: m.conversation_id for m in stored}
    assert by_text["in the gap 149"] == by_text["before the gap"], "the DM joined its conversation"
    (support_conversation,) = [c for c in await w.conversations() if c.id == by_text["support, in the gap"]]
    assert support_conversation.kind == "comment"

    after = await w.emu.user_dm(dana, "and after")
    await w.stored(f"{after.channel_id}:{after.id}")
    assert [m.text for m in await w.messages()].count("and after") == 1



async def test_a_session_ready_during_a_catch_up_gets_one_more_after_it(discord_world: World):
    """Channels already read may have missed the later session's gap: they are all read again after."""
    w = discord_world
    service = w.parts.service
    await eventually(lambda: service.catch_ups == 1)
    real, client = service.catch_up, service.client
    assert real is not None and client is not None
    release = asyncio.Event()
    runs: list[int] = []

    class Held(CatchUp):
        async def run(self, client: Any, feed: Any) -> int:
            runs.append(len(runs))
            if len(runs) == 1:
                await release.wait()
            return await super().run(client, feed)

    service.catch_up = Held(real.db, real.clock, real.channel)
    service.catch_up_from(client)  # a session is ready: its catch-up is held
    service.catch_up_from(client)  # two more sessions while it runs: one catch-up after it covers both
    service.catch_up_from(client)
    await asyncio.sleep(0.05)
    assert runs == [0]
    release.set()
    await eventually(lambda: service.catch_ups == 3)
    assert runs == [0, 1]
