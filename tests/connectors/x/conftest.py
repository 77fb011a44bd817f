"""Fixtures for the X connector: the emulator on the fake clock, a seeded team and an x channel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from connectors.x import XSender, XSource
from connectors.x.emulator import XEmulator
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.ingest import Ingestor
from inbox.models import Channel, Message
from inbox.poller import Poller
from inbox.registry import Connector, ConnectorContext, build_connector
from inbox.settings import Settings, settings_from_dict
from tests.factories import DEFAULT_CONFIG, seed

CHANNEL = "xsupport"


class RecordingNotices:
    """A NoticeSink that remembers what the team was told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, dict[str, object]]] = []

    async def notice(self, kind: str, *, channel: str | None = None, **data: object) -> None:
        self.sent.append((kind, channel, data))

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.sent]


def x_environ(emu: XEmulator) -> dict[str, str]:
    """Environment variables holding the emulator's OAuth 1.0a keys."""
    return {
        "X_CONSUMER_KEY": emu.consumer_key,
        "X_CONSUMER_SECRET": emu.consumer_secret,
        "X_ACCESS_TOKEN": emu.access_token,
        "X_ACCESS_TOKEN_SECRET": emu.access_token_secret,
        "X_BEARER": emu.bearer_token,
    }


def x_channel(emu: XEmulator, **overrides: Any) -> dict[str, Any]:
    """An x channel pointed at the emulator (OAuth 1.0a unless overridden)."""
    channel: dict[str, Any] = {
        "name": CHANNEL,
        "type": "x",
        "api_base_url": emu.base_url,
        "consumer_key_env": "X_CONSUMER_KEY",
        "consumer_secret_env": "X_CONSUMER_SECRET",
        "access_token_env": "X_ACCESS_TOKEN",
        "access_token_secret_env": "X_ACCESS_TOKEN_SECRET",
        "poll_interval": 30,
        "request_timeout": 5,
    }
    channel.update(overrides)
    return {k: v for k, v in channel.items() if v is not None}


@dataclass
class XWorld:
    """A seeded database, the emulator, and the built x connector."""

    db: Database
    clock: FakeClock
    emu: XEmulator
    settings: Settings
    notices: RecordingNotices
    connector: Connector
    ingestor: Ingestor
    extra: list[Connector] = field(default_factory=list)

    @property
    def source(self) -> XSource:
        assert isinstance(self.connector.source, XSource)
        return self.connector.source

    @property
    def sender(self) -> XSender:
        assert isinstance(self.connector.sender, XSender)
        return self.connector.sender

    def poller(self) -> Poller:
        return Poller(CHANNEL, self.source, self.ingestor, self.db, self.clock, self.connector.poll_interval)

    async def poll(self) -> int:
        return await self.poller().poll_once()

    async def cursor(self) -> str | None:
        async with self.db.sessions() as session:
            return await session.scalar(select(col(Channel.cursor)).where(col(Channel.name) == CHANNEL))

    async def messages(self, direction: str = "in") -> int:
        async with self.db.sessions() as session:
            return int(await session.scalar(
                select(func.count()).select_from(Message).where(col(Message.direction) == direction)
            ) or 0)

    def rebuild(self) -> Connector:
        """A second connector for the same channel, as after a restart (in-memory state gone)."""
        channel = self.settings.channel(CHANNEL)
        assert channel is not None
        built = build_connector(channel, ConnectorContext(clock=self.clock, db=self.db, notices=self.notices))
        self.extra.append(built)
        return built


@pytest.fixture
async def emu(clock: FakeClock) -> AsyncIterator[XEmulator]:
    """The X emulator, on the test's fake clock."""
    async with XEmulator(clock=lambda: clock.now().timestamp()) as emulator:
        yield emulator


MakeWorld = Callable[..., Awaitable[XWorld]]


@pytest.fixture
async def make_world(db: Database, clock: FakeClock, emu: XEmulator) -> AsyncIterator[MakeWorld]:
    """Build an XWorld with channel overrides; every client is closed at the end."""
    worlds: list[XWorld] = []

    async def make(**overrides: Any) -> XWorld:
        data = {**DEFAULT_CONFIG, "channels": [*DEFAULT_CONFIG["channels"], x_channel(emu, **overrides)]}
        settings = settings_from_dict(data, environ=x_environ(emu))
        await seed(db, clock, settings)
        notices = RecordingNotices()
        channel = settings.channel(CHANNEL)
        assert channel is not None
        ingestor = Ingestor(db, clock)
        context = ConnectorContext(clock=clock, db=db, notices=notices, ingest=ingestor.ingest)
        world = XWorld(db, clock, emu, settings, notices, build_connector(channel, context), ingestor)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        for connector in [world.connector, *world.extra]:
            assert isinstance(connector.sender, XSender)
            await connector.sender.client.close()


@pytest.fixture
async def world(make_world: MakeWorld) -> XWorld:
    """The default x channel: mentions and DMs, OAuth 1.0a, no budget."""
    return await make_world()
