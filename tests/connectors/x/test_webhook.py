"""X Account Activity webhook: the emulator acts as X towards our routes on a local aiohttp server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select
from sqlmodel import col

from connectors.x.emulator import XEmulator, crc_response
from connectors.x.webhook import channel_webhook_routes, signature, signature_valid, webhook_routes
from inbox.events import Batch
from inbox.models import Conversation, Message
from tests.connectors.x.conftest import CHANNEL, MakeWorld, XWorld


async def serve(routes: list[web.RouteDef]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture
async def hooked(make_world: MakeWorld, emu: XEmulator) -> AsyncIterator[tuple[XWorld, str]]:
    world = await make_world(webhook_path="/hooks/x", user_id=emu.bot.id)
    runner, base = await serve(world.connector.routes)  # as the web server of `inbox run` mounts them
    try:
        yield world, f"{base}/hooks/x"
    finally:
        await runner.cleanup()


async def stored(world: XWorld) -> list[Message]:
    async with world.db.sessions() as session:
        return list((await session.execute(select(Message).order_by(col(Message.id)))).scalars())


async def test_crc_is_answered_with_the_hmac_token(hooked: tuple[XWorld, str]) -> None:
    world, url = hooked
    assert await world.emu.check_crc(url)
    assert await world.emu.check_crc(url, crc_token="another-token-123")
    async with aiohttp.ClientSession() as session, session.get(url, params={"crc_token": "abc"}) as response:
        assert await response.json() == crc_response(world.emu.consumer_secret, "abc")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 400


async def test_signed_mention_and_dm_are_ingested_and_threaded(hooked: tuple[XWorld, str]) -> None:
    world, url = hooked
    emu = world.emu
    mention = emu.post_mention("alice", "via webhook")
    status, _ = await emu.deliver_activity(url, emu.activity_payload(mention))
    assert status == 200
    dm = emu.send_dm("bob", "private")
    assert (await emu.deliver_activity(url, emu.activity_payload(dm)))[0] == 200
    assert (await emu.deliver_activity(url, emu.activity_payload(mention)))[0] == 200  # X retried: no dupe

    messages = await stored(world)
    assert [(m.external_id, m.text) for m in messages] == [
        (mention.id, "@saluran_help via webhook"), (dm.id, "private"),
    ]
    async with world.db.sessions() as session:
        convs = list((await session.execute(select(Conversation).order_by(col(Conversation.id)))).scalars())
    assert [(c.kind, c.thread_key) for c in convs] == [("mention", mention.id), ("dm", dm.dm_conversation_id)]
    # Polling afterwards finds the same items and stores nothing twice.
    await world.poll()
    assert len(await stored(world)) == 2


@pytest.mark.parametrize("tamper", [
    {"sign_with": "not-the-consumer-secret"},
    {"signature": "sha256=AAAA"},
    {"signed": False},
])
async def test_bad_or_missing_signature_gets_401_and_stores_nothing(
    hooked: tuple[XWorld, str], tamper: dict[str, Any]
) -> None:
    world, url = hooked
    payload = world.emu.activity_payload(world.emu.post_mention("mallory", "forged"))
    status, body = await world.emu.deliver_activity(url, payload, **tamper)
    assert status == 401 and "signature" in body
    assert await stored(world) == []


async def test_signed_but_unusable_bodies(hooked: tuple[XWorld, str]) -> None:
    world, url = hooked
    secret = world.emu.consumer_secret
    async with aiohttp.ClientSession() as session:
        bad_id = f'{{"for_user_id": "{world.emu.bot.id}", "tweet_create_events": [{{"id_str": "x"}}]}}'
        for body in (b"not json", b"[1, 2]", bad_id.encode()):
            headers = {"x-twitter-webhooks-signature": signature(secret, body)}
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 400
    other_account = {"for_user_id": "42", "direct_message_events": []}
    assert (await world.emu.deliver_activity(url, other_account))[0] == 200
    assert await stored(world) == []


async def test_ingest_failure_asks_x_to_deliver_again(emu: XEmulator) -> None:
    async def broken(batch: Batch) -> None:
        raise RuntimeError("database is down")

    runner, base = await serve(webhook_routes("xs", emu.consumer_secret, broken))
    try:
        payload = emu.activity_payload(emu.post_mention("alice", "hello"))
        assert (await emu.deliver_activity(f"{base}/webhooks/x/xs", payload))[0] == 500
    finally:
        await runner.cleanup()


async def test_webhooks_are_off_unless_a_path_is_set(world: XWorld) -> None:
    channel = world.settings.channel(CHANNEL)
    assert channel is not None
    assert world.connector.routes == []
    assert channel_webhook_routes(channel, world.ingestor.ingest) == []


def test_signature_helpers(emu: XEmulator) -> None:
    assert signature("s", b"body") == crc_response("s", "body")["response_token"]
    assert signature_valid("s", b"body", signature("s", b"body"))
    assert not signature_valid("s", b"body", None)
    assert not signature_valid("s", b"body", "sha256=ünicode")
    with pytest.raises(ValueError):
        webhook_routes("xs", "", lambda batch: None)  # type: ignore[arg-type, return-value]
