"""A running Telegram connector against the emulator, on the test database, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, select

from connectors.telegram import build
from connectors.telegram.emulator import EmuChat, EmuUser, FloodLimits, TelegramEmulator
from connectors.telegram.service import TelegramService
from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.commands import CommandCore
from inbox.db import Database
from inbox.ingest import Ingestor
from inbox.models import Conversation, Delivery, Event, Message
from inbox.notify import Notifier
from inbox.outbox import Dispatcher
from inbox.registry import Connector, ConnectorContext
from inbox.settings import Settings, settings_from_dict
from tests.factories import DEFAULT_CONFIG, seed

TOKEN_ENV = "TG_TOKEN"
SECRET_ENV = "TG_WEBHOOK_SECRET"


def telegram_settings(
    emu: TelegramEmulator,
    team: EmuChat | None,
    *,
    channel: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """The default team plus one telegram channel "tg" on the emulator hosting team chat "ops"."""
    tg = {
        "name": "tg",
        "type": "telegram",
        "token_env": TOKEN_ENV,
        "api_base_url": emu.url,
        "poll_timeout": 0.5,
        **(channel or {}),
    }
    data: dict[str, Any] = {**DEFAULT_CONFIG, "channels": [*DEFAULT_CONFIG["channels"], tg]}
    if team is not None:
        data["team_chats"] = [{"name": "ops", "channel": "tg", "chat_id": str(team.id)}]
    data.update(overrides)
    env = {TOKEN_ENV: emu.token, SECRET_ENV: "s3cret-Token_1", **(environ or {})}
    return settings_from_dict(data, environ=env)


@dataclass
class Rig:
    """Emulator, core services and the built connector, with helpers to wait for what happens."""

    db: Database
    clock: FakeClock
    emu: TelegramEmulator
    team: EmuChat
    alice: EmuUser
    carol: EmuUser
    settings: Settings
    ingestor: Ingestor
    core: CommandCore
    connector: Connector
    dispatcher: Dispatcher
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Future[None] | None = None

    @property
    def service(self) -> TelegramService:
        """The connector's update loop object."""
        service = getattr(self.connector.service, "__self__", None)
        assert isinstance(service, TelegramService)
        return service

    async def until(self, check: Callable[[], Any], within: float = 5.0) -> Any:
        """Wait (real time) until ``await check()`` (or ``check()``) is truthy; return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if loop.time() > deadline:
                raise TimeoutError("the expected state was not reached in time")
            await asyncio.sleep(0.02)

    async def rows(self, model: Any, *where: Any) -> list[Any]:
        """Rows of a table, oldest first."""
        async with self.db.sessions() as session:
            return list(
                (await session.execute(select(model).where(*where).order_by(col(model.id)))).scalars()
            )

    async def deliveries(self, destination: str) -> list[Delivery]:
        """Outbox rows to one destination."""
        return await self.rows(Delivery, col(Delivery.destination) == destination)

    async def conversations(self) -> list[Conversation]:
        """Every conversation."""
        return await self.rows(Conversation)

    async def messages(self, direction: str | None = None) -> list[Message]:
        """Stored messages (of one direction)."""
        return await self.rows(Message, *([col(Message.direction) == direction] if direction else []))

    async def events(self, type_: str) -> list[Event]:
        """Audit events of one type."""
        return await self.rows(Event, col(Event.type) == type_)

    async def settle(self) -> None:
        """Wait until every update the bot has was processed (its cursor is stored and confirmed)."""
        from connectors.telegram.source import load_cursor

        target = self.emu.bot.next_update_id + 1

        async def done() -> bool:
            # Team updates run after their cursor is stored: wait until the batch is finished too.
            return (await load_cursor(self.db, "tg") or 0) >= target and not self.service.busy

        await self.until(done)

    async def dispatch(self) -> int:
        """One outbox pass."""
        return await self.dispatcher.run_once()


@dataclass
class Core:
    """The core services a connector is built on."""

    notifier: Notifier
    ingestor: Ingestor
    core: CommandCore

    def context(self, db: Database, clock: FakeClock, settings: Settings) -> ConnectorContext:
        """What the runtime hands a connector."""
        return ConnectorContext(
            clock=clock,
            db=db,
            notices=self.notifier,
            ingest=self.ingestor.ingest,
            commands=self.core.execute,
            settings=settings,
        )


async def start_core(db: Database, clock: FakeClock, settings: Settings) -> Core:
    """Sync the config into ``db`` and build the notifier, ingestor and command core on it."""
    await seed(db, clock, settings)
    notifier = Notifier(db, clock, settings)
    ingestor = Ingestor(db, clock, hooks=[notifier.ingest_hook])
    return Core(notifier, ingestor, CommandCore(db, clock, settings, Actions(db, clock)))


def build_channel(settings: Settings, name: str, context: ConnectorContext) -> Connector:
    """Build one configured channel's connector."""
    channel = settings.channel(name)
    assert channel is not None
    return build(channel, context)


@contextlib.asynccontextmanager
async def running_rig(
    db: Database,
    clock: FakeClock,
    *,
    forum: bool = True,
    flood_limits: FloodLimits | None = None,
    channel: dict[str, Any] | None = None,
) -> AsyncIterator[Rig]:
    """Start the emulator, the core on ``db`` and the telegram connector's update loop."""
    async with TelegramEmulator(clock=clock, flood_limits=flood_limits or FloodLimits(enabled=False)) as emu:
        alice = emu.user("Alice", username="alice_ops", user_id=1001)
        carol = emu.user("Carol", user_id=1003)
        team = emu.supergroup("Ops", is_forum=forum, bot_status="administrator", members=[alice, carol])
        settings = telegram_settings(emu, team, channel=channel)
        core = await start_core(db, clock, settings)
        connector = build_channel(settings, "tg", core.context(db, clock, settings))
        assert connector.sender is not None and connector.team_sender is not None
        dispatcher = Dispatcher(
            db, clock, {"tg": connector.sender, "team:ops": connector.team_sender}, worker_id="test"
        )
        rig = Rig(
            db, clock, emu, team, alice, carol, settings, core.ingestor, core.core, connector, dispatcher
        )
        assert connector.service is not None
        rig.task = asyncio.ensure_future(connector.service(rig.stop))
        try:
            yield rig
        finally:
            rig.stop.set()
            await asyncio.wait_for(rig.task, 10)
            await rig.service.client.close()
