"""Fixtures for command tests: a seeded team, a command core, and conversations made by ingest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.commands import CommandCore
from inbox.db import Database
from inbox.events import Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import Event, Kind
from inbox.terminal_console import run_terminal_command
from tests.factories import make_settings, seed

Run = Callable[..., Awaitable[str]]
NewConversation = Callable[..., Awaitable[int]]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Top-level config overrides; tests override this fixture to change the team's settings."""
    return {"general": {"timezone": "Asia/Jakarta"}}


@pytest.fixture
async def core(db: Database, clock: FakeClock, settings_overrides: dict[str, Any]) -> CommandCore:
    """A command core on a seeded database: alice (admin), bob (lead), carol (agent)."""
    settings = await seed(db, clock, make_settings(**settings_overrides))
    return CommandCore(db, clock, settings, Actions(db, clock))


@pytest.fixture
def run(core: CommandCore) -> Run:
    """Run a command through the terminal console: ``await run("carol", "/queue")``."""

    async def call(member: str, text: str, **kwargs: Any) -> str:
        return (await run_terminal_command(core, member, text, **kwargs)).output

    return call


@pytest.fixture
def new_conversation(core: CommandCore, db: Database, clock: FakeClock) -> NewConversation:
    """Ingest one customer message that starts a conversation and return the conversation's id."""
    ingestor = Ingestor(db, clock)
    counter = iter(range(1, 1_000_000))

    async def make(text: str = "Where is my order?", *, channel: str = "support", kind: Kind = Kind.DM,
                   author: str | None = None, handle: str | None = "joe", name: str | None = "Joe Bloggs",
                   subject: str | None = None) -> int:
        n = next(counter)
        event = Inbound(channel=channel, external_id=f"m{n}", kind=kind,
                        author=Author(author or f"u{n}", handle, name), text=text,
                        created_at=clock.now(), subject=subject)
        result = await ingestor.ingest(Batch(channel, [event]))
        assert len(result.new_conversations) == 1
        return result.new_conversations[0]

    return make


async def count_events(db: Database, type_: str) -> int:
    """How many audit events of a type exist."""
    async with db.sessions() as session:
        query = select(func.count()).select_from(Event).where(col(Event.type) == type_)
        return int(await session.scalar(query) or 0)


async def events_of(db: Database, type_: str) -> list[Event]:
    """The audit events of a type, oldest first."""
    async with db.sessions() as session:
        query = select(Event).where(col(Event.type) == type_).order_by(col(Event.id))
        return list((await session.execute(query)).scalars())
