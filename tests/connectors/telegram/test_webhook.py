"""Webhook mode: Telegram posts updates to a route on the project's web server with a secret token;
a missing or wrong secret gets 403 and nothing is stored, the right one is processed like a poll."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from connectors.telegram.service import SECRET_HEADER
from connectors.telegram.source import load_cursor
from inbox.clock import FakeClock
from inbox.db import Database
from tests.connectors.telegram.harness import running_rig

SECRET = "s3cret-Token_1"  # what the harness puts in TG_WEBHOOK_SECRET
PATH = "/webhooks/telegram/tg"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def web_server() -> AsyncIterator[tuple[str, dict[str, Handler]]]:
    """A local web server whose POST route forwards to the handler a test puts in the dict."""
    routes: dict[str, Handler] = {}

    async def forward(request: web.Request) -> web.StreamResponse:
        return await routes[request.path](request)

    app = web.Application()
    app.router.add_post("/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", routes
    finally:
        await runner.cleanup()


async def post(url: str, body: Any, secret: str | None) -> tuple[int, Any]:
    """POST an update as Telegram would (or as an impostor would)."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=json.dumps(body), headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_webhook_refuses_bad_secrets_and_processes_telegrams_posts(
    db: Database, clock: FakeClock
) -> None:
    async with web_server() as (base, routes):
        options = {"mode": "webhook", "webhook_secret_env": "TG_WEBHOOK_SECRET", "webhook_url": base + PATH}
        async with running_rig(db, clock, channel=options) as rig:
            [route] = rig.connector.routes
            assert (route.method, route.path) == ("POST", PATH)
            routes[PATH] = route.handler
            await rig.emu.wait_for(lambda: rig.emu.bot.webhook is not None)
            hook = rig.emu.bot.webhook
            assert hook is not None and hook.url == base + PATH and hook.secret_token == SECRET
            assert hook.max_connections == 1  # one at a time, in order

            ana = rig.emu.user("Ana")
            forged = {
                "update_id": 5,
                "message": {
                    "message_id": 1,
                    "date": 1793610000,
                    "chat": {"id": ana.id, "type": "private", "first_name": "A"},
                    "from": {"id": ana.id, "is_bot": False, "first_name": "A"},
                    "text": "I am not Telegram",
                },
            }
            for secret in (None, "", "wrong", SECRET + "x"):
                assert await post(base + PATH, forged, secret) == (403, {"error": "forbidden"})
            assert await rig.messages() == [] and await load_cursor(db, "tg") is None
            assert (await post(base + PATH, ["not", "an", "update"], SECRET))[0] == 400

            # Telegram itself: the emulator posts the DM with the secret; it is stored with its cursor.
            rig.emu.user_dm(ana, "via the webhook")
            await rig.until(lambda: rig.messages())
            [message] = await rig.messages()
            assert message.text == "via the webhook"
            await rig.emu.wait_for(lambda: not rig.emu.pending_updates())
            [conversation] = await rig.conversations()
            assert await rig.dispatch() == 1  # the card

            # A team command arrives the same way and runs once, even if Telegram delivers it again.
            command = rig.emu.group_message(rig.team, rig.carol, f"/reply {conversation.id} Hello")
            await rig.until(lambda: rig.deliveries("tg"))
            update = {"update_id": rig.emu.bot.next_update_id, "message": command}
            assert await post(base + PATH, update, SECRET) == (200, {"ok": True})
            assert len(await rig.deliveries("tg")) == 1
            assert await rig.dispatch() == 1
            assert rig.emu.last_sent(ana).plain_text == "Hello"
