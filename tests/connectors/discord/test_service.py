"""The gateway service's lifecycle against the emulator: a refused token or a team server the bot is not in
is told to the team once, a working session again is told too, and the client is closed every time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import discord
import pytest

from connectors.discord.console import DiscordConsole
from connectors.discord.convert import Scope
from connectors.discord.emulator import DiscordEmulator
from connectors.discord.render import ButtonSigner
from connectors.discord.service import DiscordService
from inbox.clock import FakeClock
from inbox.commands import CommandInvocation
from inbox.db import Database
from inbox.views import View


class Notices:
    """A NoticeSink that remembers what it was told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str | None, dict[str, object]]] = []

    async def notice(self, kind: str, *, channel: str | None = None, **data: object) -> None:
        """Remember the notice."""
        self.told.append((kind, channel, data))


@pytest.fixture
async def emu() -> AsyncIterator[DiscordEmulator]:
    """An emulator that discord.py talks to."""
    async with DiscordEmulator() as emulator:
        with emulator.discord_py():
            yield emulator


async def _serve_until_ready(service: DiscordService, emu: DiscordEmulator) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await emu.wait_connected()
    await asyncio.sleep(0.1)  # on_ready, after the (shortened) wait for the servers
    stop.set()
    await asyncio.wait_for(task, 5)
    assert service.client is None


async def test_a_refused_token_is_told_once_and_the_recovery_too(emu: DiscordEmulator) -> None:
    notices = Notices()
    service = DiscordService("dc", "wrong-token", None, None, ready_timeout=0.01, notices=notices)
    for _ in range(2):  # the lease starts the service again every few seconds
        with pytest.raises(discord.LoginFailure):
            await service.run(asyncio.Event())
    assert [(kind, channel) for kind, channel, _ in notices.told] == [("health.error", "dc")]
    assert "token was refused" in str(notices.told[0][2]["detail"])

    service._token = emu.token
    await _serve_until_ready(service, emu)
    assert [kind for kind, _, _ in notices.told] == ["health.error", "health.ok"]


async def test_commands_that_cannot_be_registered_are_reported_and_customers_still_heard(
    emu: DiscordEmulator, db: Database
) -> None:
    async def execute(invocation: CommandInvocation) -> View:
        return View()

    notices = Notices()
    scope = Scope(channel="dc", bot_id=0, team_guild_id=4242)  # a server the bot is not in
    console = DiscordConsole(scope=scope, commands=execute, specs=[], db=db, clock=FakeClock(),
                             signer=ButtonSigner.for_token(emu.token))
    service = DiscordService("dc", emu.token, None, console, ready_timeout=0.01, notices=notices)
    await _serve_until_ready(service, emu)
    ((kind, _, data),) = notices.told  # the session works, but that does not fix the commands: no "ok"
    assert kind == "health.error" and "cannot register the slash commands" in str(data["detail"])
    assert "4242" in str(data["detail"])
    assert emu.identify_count == 1  # the gateway ran all the same
