"""X source end to end: the real tweepy against the emulator, ingest into a real database."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from connectors.jsonl import JsonlSource
from connectors.x.emulator import XEmulator
from connectors.x.source import Cursor
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.models import Channel, Contact, Conversation, Message
from inbox.poller import Poller
from inbox.registry import CONNECTOR_PACKAGES, ConnectorContext, build_connector
from inbox.settings import ConfigError, settings_from_dict
from tests.connectors.x.conftest import CHANNEL, MakeWorld, XWorld, x_channel, x_environ

MENTIONS = "/2/users/:id/mentions"


async def conversation_of(db: Database, external_id: str) -> Conversation:
    async with db.sessions() as session:
        conv = (await session.execute(
            select(Conversation).join(Message, col(Message.conversation_id) == col(Conversation.id))
            .where(col(Message.external_id) == external_id)
        )).scalar_one()
        return conv


async def test_250_mentions_between_two_polls_are_all_ingested_once(world: XWorld) -> None:
    emu = world.emu
    early = [emu.post_mention(f"early{i}", f"first wave {i}") for i in range(3)]
    assert await world.poll() == 3
    assert json.loads(await world.cursor() or "")["mentions"] == {"since_id": early[-1].id}

    wave = [emu.post_mention(f"user{i % 40}", f"complaint {i}") for i in range(250)]
    assert await world.poll() == 250
    assert await world.messages() == 253
    assert await world.poll() == 0
    assert await world.messages() == 253

    calls = emu.calls("GET", MENTIONS)
    assert [c.query.get("since_id") for c in calls[1:4]] == [early[-1].id] * 3
    assert [c.query.get("pagination_token") is None for c in calls[1:4]] == [True, False, False]
    assert calls[4].query["since_id"] == wave[-1].id  # the next poll starts above the newest
    async with world.db.sessions() as session:
        stored = set((await session.execute(select(col(Message.external_id)))).scalars())
        handles = set((await session.execute(select(col(Contact.handle)))).scalars())
    assert stored == {p.id for p in early + wave}
    assert {"user0", "user39", "early2"} <= handles


async def test_a_sweep_cut_short_resumes_below_what_it_read(make_world: MakeWorld) -> None:
    world = await make_world(max_pages=2, dms=False)
    emu = world.emu
    await world.poll()  # nothing yet: the cursor starts empty
    wave = [emu.post_mention(f"u{i % 7}", f"n{i}") for i in range(250)]
    assert await world.poll() == 200  # two pages, then the sweep stops
    state = json.loads(await world.cursor() or "")["mentions"]
    assert state == {"until_id": wave[50].id, "newest_id": wave[-1].id}
    late = emu.post_mention("late", "arrived between the polls")
    assert await world.poll() == 50  # the rest of the old sweep, below until_id
    assert json.loads(await world.cursor() or "")["mentions"] == {"since_id": wave[-1].id}
    assert await world.poll() == 1  # then the newcomer
    assert await world.messages() == 251
    assert (await conversation_of(world.db, late.id)).thread_key == late.id


async def test_first_poll_only_backfills_the_newest(make_world: MakeWorld) -> None:
    world = await make_world(backfill=5)
    for i in range(12):
        world.emu.post_mention("alice", f"old {i}")
        world.emu.send_dm("bob", f"old dm {i}")
    assert await world.poll() == 10  # five of each
    assert [c.query["max_results"] for c in world.emu.calls("GET")] == ["5", "5"]
    world.emu.post_mention("alice", "new")
    world.emu.send_dm("bob", "new dm")
    assert await world.poll() == 2


async def test_threading_of_mentions_and_dms(world: XWorld) -> None:
    emu = world.emu
    root = emu.post_mention("alice", "my order #A12 never arrived")
    other = emu.post_mention("bob", "unrelated question")
    bot_reply = emu._create_post(emu.bot, "@alice Sorry! Checking now.", root)  # posted in the X app
    follow_up = emu.post_mention("alice", "still waiting", in_reply_to=bot_reply)
    dm1 = emu.send_dm("carol", "private question")
    dm2 = emu.send_dm("carol", "hello?")
    await world.poll()

    thread = await conversation_of(world.db, root.id)
    assert (await conversation_of(world.db, follow_up.id)).id == thread.id
    assert thread.thread_key == root.id and thread.kind == "mention"
    assert (await conversation_of(world.db, other.id)).id != thread.id
    dms = await conversation_of(world.db, dm1.id)
    assert (await conversation_of(world.db, dm2.id)).id == dms.id
    assert dms.kind == "dm" and dms.thread_key == dm1.dm_conversation_id
    async with world.db.sessions() as session:
        query = select(Message).where(col(Message.external_id) == follow_up.id)
        reply_row = (await session.execute(query)).scalar_one()
    assert reply_row.reply_to_external_id == bot_reply.id
    assert await world.messages() == 5  # the bot's own post is not a customer message


async def test_dm_events_are_read_down_to_the_last_seen_and_deduplicated(make_world: MakeWorld) -> None:
    world = await make_world(page_size=5, mentions=False)
    emu = world.emu
    first = [emu.send_dm("dina", f"before {i}") for i in range(2)]
    assert await world.poll() == 2
    later = [emu.send_dm(f"cust{i % 3}", f"after {i}") for i in range(12)]
    assert await world.poll() == 12
    # Three pages of five: the third reaches the newest event already seen and the sweep stops.
    assert len(emu.calls("GET", "/2/dm_events")) == 1 + 3
    assert json.loads(await world.cursor() or "")["dms"] == {"newest_id": later[-1].id}
    assert await world.poll() == 0

    # A cursor that lost its place (restored backup): events are read again, stored once.
    async with world.db.transaction() as session:
        await session.execute(update(Channel).where(col(Channel.name) == CHANNEL)
                              .values(cursor=Cursor(dms={"newest_id": first[-1].id}).dump()))
    assert await world.poll() == 12
    assert await world.messages() == 14


async def test_own_dms_are_not_ingested_as_customer_messages(world: XWorld) -> None:
    emu = world.emu
    emu.send_dm("erin", "hi")
    await world.poll()
    emu._create_dm(emu.bot, emu.user("erin"), "answered from the X app")
    assert await world.poll() == 0
    assert await world.messages() == 1


async def test_429_pauses_only_that_endpoint_until_reset(
    make_world: MakeWorld, db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    world = await make_world()
    emu = world.emu
    await world.poll()
    jsonl = Poller("support", _jsonl_source(tmp_path), world.ingestor, db, clock, 2.0)

    emu.inject(MENTIONS, status=429, reset_in=300)
    emu.post_mention("alice", "stuck behind the limit")
    emu.send_dm("bob", "dm keeps flowing")
    began = time.monotonic()
    assert await world.poll() == 1  # the DM; mentions answered 429
    assert time.monotonic() - began < 2  # nothing slept
    assert world.source.paused_until["mentions"].timestamp() == clock.now().timestamp() + 300
    mention_calls = len(emu.calls("GET", MENTIONS))

    for i in range(3):
        clock.advance(60)
        emu.send_dm("bob", f"still flowing {i}")
        _append_jsonl(tmp_path, f"web-{i}")
        assert await world.poll() == 1
        assert await jsonl.poll_once() == 1  # another channel is unaffected
    assert len(emu.calls("GET", MENTIONS)) == mention_calls  # not asked again before the reset

    clock.advance(120)  # past the reset
    assert await world.poll() == 1
    assert await world.messages() == 1 + 3 + 3 + 1  # DMs, web forms, the mention


async def test_a_used_up_window_pauses_without_meeting_a_429(make_world: MakeWorld, clock: FakeClock) -> None:
    world = await make_world(dms=False)
    emu = world.emu
    emu.set_rate_limit("GET /2/users/:id/mentions", 3)
    await world.poll()
    for i in range(250):
        emu.post_mention(f"p{i % 9}", f"burst {i}")
    assert await world.poll() == 200  # remaining hit 0 after the second page of this sweep
    assert [r.status for r in emu.calls("GET", MENTIONS)] == [200, 200, 200]
    assert await world.poll() == 0  # paused: no request at all
    assert len(emu.calls("GET", MENTIONS)) == 3
    clock.advance(900)
    assert await world.poll() == 50
    assert await world.messages() == 250


async def test_a_server_error_on_one_endpoint_keeps_the_other(world: XWorld, clock: FakeClock) -> None:
    emu = world.emu
    await world.poll()
    emu.post_mention("alice", "m")
    emu.send_dm("bob", "d")
    emu.inject("/2/dm_events", status=503)
    assert await world.poll() == 1
    assert await world.poll() == 1  # the DM, at the next poll
    emu.inject("/2/dm_events", status=503)
    emu.inject(MENTIONS, status=503)
    with pytest.raises(Exception, match="503"):  # nothing came through: the poller backs off
        await world.poll()


async def test_bearer_token_without_user_id_asks_users_me_once(make_world: MakeWorld) -> None:
    world = await make_world(consumer_key_env=None, consumer_secret_env=None, access_token_env=None,
                             access_token_secret_env=None, bearer_token_env="X_BEARER")
    world.emu.post_mention("alice", "via oauth2")
    world.emu.send_dm("bob", "dm via oauth2")
    assert await world.poll() == 2
    await world.poll()
    assert len(world.emu.calls("GET", "/2/users/me")) == 1
    assert {r.auth for r in world.emu.requests} == {"oauth2_user"}


async def test_options_are_validated_with_clear_messages(emu: XEmulator) -> None:
    assert CONNECTOR_PACKAGES["x"] == "connectors.x"
    with pytest.raises(ConfigError, match=r"channels\[0\]\.page_size: Input should be less than or equal"):
        settings_from_dict({"channels": [x_channel(emu, page_size=500)]}, environ=x_environ(emu))
    with pytest.raises(ConfigError, match="set bearer_token_env"):
        settings_from_dict({"channels": [{"name": "x1", "type": "x"}]}, environ={})
    with pytest.raises(ConfigError) as partial:
        settings_from_dict({"channels": [x_channel(emu, access_token_secret_env=None)]},
                           environ=x_environ(emu))
    assert "missing access_token_secret_env" in str(partial.value)
    with pytest.raises(ConfigError, match="environment variable X_CONSUMER_KEY is not set"):
        settings_from_dict({"channels": [x_channel(emu)]}, environ={})
    with pytest.raises(ConfigError, match="unknown key"):
        settings_from_dict({"channels": [x_channel(emu, pages=3)]}, environ=x_environ(emu))


async def test_budget_needs_the_database(emu: XEmulator, clock: FakeClock) -> None:
    settings = settings_from_dict({"channels": [x_channel(emu, monthly_budget=5.0)]}, environ=x_environ(emu))
    channel = settings.channel(CHANNEL)
    assert channel is not None
    with pytest.raises(ValueError, match="needs the database"):
        build_connector(channel, ConnectorContext(clock=clock))


async def test_unreadable_cursor_starts_afresh(world: XWorld) -> None:
    async with world.db.transaction() as session:
        await session.execute(update(Channel).where(col(Channel.name) == CHANNEL).values(cursor="12345"))
    world.emu.post_mention("alice", "hello")
    assert await world.poll() == 1


def _jsonl_source(tmp_path: Path) -> JsonlSource:
    return JsonlSource("support", tmp_path / "in.jsonl")


def _append_jsonl(tmp_path: Path, external_id: str) -> None:
    line = {"external_id": external_id, "kind": "form", "author": {"id": "w1"}, "text": "web form",
            "created_at": "2026-11-02T09:00:00Z"}
    with (tmp_path / "in.jsonl").open("a") as fh:
        fh.write(json.dumps(line) + "\n")


async def test_event_loop_stays_free_while_polling(world: XWorld) -> None:
    for i in range(30):
        world.emu.post_mention(f"f{i}", "x")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await world.poll()
    finally:
        task.cancel()
    assert ticks > 5
