"""A Discord channel wired like ``inbox run`` wires it, against the emulator and the test database.

``discord_world`` starts one emulator (discord.py's endpoints are process-wide), builds the channel
through ``connectors.discord.assemble``, runs its gateway service, and gives tests the core pieces
(ingestor with the notifier, actions, command core, a dispatcher they drive by hand).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import col, select

from connectors.discord import DiscordParts, assemble
from connectors.discord.emulator import DiscordEmulator
from connectors.discord.emulator_world import Channel, MessageRecord, User
from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.commands import CommandCore
from inbox.config_sync import sync_config
from inbox.db import Database
from inbox.events import Actor
from inbox.ingest import Ingestor
from inbox.models import Conversation, Delivery, Message
from inbox.notify import Notifier
from inbox.outbox import Dispatcher, RetryPolicy
from inbox.registry import ConnectorContext
from inbox.settings import Settings, settings_from_dict

MESSAGES = "POST /channels/{channel_id}/messages"
_ESCAPED = re.compile(r"\\([^A-Za-z0-9\s])")
_LINK = re.compile(r"<(https?://[^\s<>]+)>")


def displayed(content: str) -> str:
    """What Discord shows for ``content``: backslash escapes and ``<link>`` brackets removed."""
    return _ESCAPED.sub(r"\1", _LINK.sub(r"\1", content))


async def eventually(predicate: Callable[[], Any], within: float = 5.0) -> Any:
    """Poll an async or sync predicate until it is truthy."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


def discord_settings(emu: DiscordEmulator, **channel: Any) -> Settings:
    """alice (admin) and bob (lead) with their Discord ids, carol (agent) without; one Discord channel
    whose team chat is #inbox of the team server."""
    team = emu.guild("Saluran Team")
    community = emu.guild("Saluran Community")
    return settings_from_dict({
        "members": [
            {"name": "alice", "role": "admin", "discord_id": emu.user("alice").id},
            {"name": "bob", "role": "lead", "discord_id": emu.user("bob").id},
            {"name": "carol", "role": "agent", "telegram_id": 1003},
        ],
        "channels": [{
            "name": "discord", "type": "discord", "token_env": "DISCORD_TOKEN",
            "api_base_url": emu.api_base, "gateway_url": emu.gateway_url, "team_guild_id": team.id,
            "support_channel_ids": [emu.channel("support", community).id],
            "community_guild_ids": [community.id], **channel,
        }],
        "team_chats": [{"name": "team", "channel": "discord", "chat_id": str(emu.channel("inbox", team).id),
                        "budget": 30, "window": "1m"}],
    }, environ={"DISCORD_TOKEN": emu.token})


@dataclass
class World:
    """The running Discord channel and the core around it."""

    emu: DiscordEmulator
    db: Database
    clock: FakeClock
    settings: Settings
    parts: DiscordParts
    core: CommandCore
    actions: Actions
    dispatcher: Dispatcher

    @property
    def team(self) -> Any:
        """The team server."""
        return self.emu.guild("Saluran Team")

    @property
    def inbox(self) -> Channel:
        """#inbox, the team chat."""
        return self.emu.channel("inbox", self.team)

    def user(self, name: str) -> User:
        """An emulated Discord user."""
        return self.emu.user(name)

    async def messages(self) -> list[Message]:
        """Every stored message, oldest first."""
        async with self.db.sessions() as session:
            return list((await session.execute(select(Message).order_by(col(Message.id)))).scalars())

    async def conversations(self) -> list[Conversation]:
        """Every conversation, oldest first."""
        async with self.db.sessions() as session:
            rows = await session.execute(select(Conversation).order_by(col(Conversation.id)))
            return list(rows.scalars())

    async def reply(self, conversation: Conversation, text: str) -> None:
        """alice replies, as ``/reply`` would (the reply waits in the outbox)."""
        assert conversation.id is not None
        await self.actions.reply(Actor("member", "alice", 1), conversation.id, text)

    async def deliveries(self) -> list[Delivery]:
        """Every outbox row, oldest first."""
        async with self.db.sessions() as session:
            return list((await session.execute(select(Delivery).order_by(col(Delivery.id)))).scalars())

    async def stored(self, external_id: str, within: float = 5.0) -> Message:
        """Wait until the message with this external id is in the database."""

        async def find() -> Message | None:
            return next((m for m in await self.messages() if m.external_id == external_id), None)

        found: Message = await eventually(find, within)
        return found

    async def card_for(self, customer: MessageRecord) -> MessageRecord:
        """Store the customer's message, send the outbox, and return the card posted in #inbox."""
        await self.stored(f"{customer.channel_id}:{customer.id}")
        before = len(self.emu.sent(self.inbox))
        await self.dispatcher.run_once()
        sent = await self.emu.wait_sent(before + 1, self.inbox)
        return sent[before]

    def answers(self, since: int = 0) -> list[MessageRecord]:
        """The bot's interaction answers and follow-ups, oldest first."""
        return [m for m in self.emu.sent() if m.via in ("interaction", "followup")][since:]


@pytest.fixture
async def discord_world(db: Database, clock: FakeClock) -> AsyncIterator[World]:
    """The Discord channel running against a fresh emulator and the test database."""
    emu = DiscordEmulator(clock=clock)
    async with emu:
        with emu.discord_py():
            settings = discord_settings(emu)
            await sync_config(db, settings, clock)
            notifier = Notifier(db, clock, settings)
            ingestor = Ingestor(db, clock, hooks=[notifier.ingest_hook])
            actions = Actions(db, clock)
            core = CommandCore(db, clock, settings, actions)
            context = ConnectorContext(clock=clock, db=db, notices=notifier, ingest=ingestor.ingest,
                                       commands=core.execute, settings=settings)
            channel = settings.channel("discord")
            assert channel is not None
            parts = assemble(channel, context)
            parts.service.ready_timeout = 0.05
            senders = {"discord": parts.connector.sender, "team:team": parts.connector.team_sender}
            dispatcher = Dispatcher(db, clock, {k: v for k, v in senders.items() if v is not None},
                                    worker_id="test", policy=RetryPolicy(jitter="none"))
            stop = asyncio.Event()
            assert parts.connector.service is not None
            service = asyncio.ensure_future(parts.connector.service(stop))
            try:
                await emu.wait_connected()
                await emu.wait_for(lambda: emu.commands(emu.guild("Saluran Team")))
                yield World(emu, db, clock, settings, parts, core, actions, dispatcher)
            finally:
                stop.set()
                await asyncio.wait_for(service, 10)
                await parts.aclose()
