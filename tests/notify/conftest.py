"""A seeded team with two team chats (English on a Telegram-hosted chat, Indonesian on a teamlog file),
an Ingestor wired to the notifier, and helpers to read what was queued."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import Conversation, Delivery, Kind
from inbox.notify import Notifier
from inbox.notify.budget import digest_conversation_ids
from inbox.settings import Settings
from inbox.view_codec import load
from inbox.views import View
from tests.factories import DEFAULT_CONFIG, seed

OPS = "team:ops"
TIM = "team:tim"


def team_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """The default team plus a Telegram-hosted chat 'ops' and an Indonesian teamlog chat 'tim'."""
    channels = [
        *DEFAULT_CONFIG["channels"],
        {"name": "tg", "type": "telegram"},
        {"name": "log", "type": "teamlog", "path": str(tmp_path / "team.jsonl")},
    ]
    team_chats = [
        {"name": "ops", "channel": "tg", "chat_id": -100123},
        {"name": "tim", "channel": "log", "chat_id": "tim", "language": "id"},
    ]
    return {**DEFAULT_CONFIG, "channels": channels, "team_chats": team_chats, **overrides}


def team_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings validated by the model (the telegram connector is not registered in this tree yet,
    so the connector-options check of ``settings_from_dict`` is skipped)."""
    return Settings.model_validate(team_config(tmp_path, **overrides))


@dataclass
class Rig:
    """The pieces a notifier test drives."""

    db: Database
    clock: FakeClock
    settings: Settings
    notifier: Notifier
    ingestor: Ingestor
    serial: int = 0

    async def customers_write(self, count: int = 1, *, channel: str = "support",
                              text: str = "Where is my order?", kind: Kind = Kind.DM) -> list[int]:
        """Ingest ``count`` messages from new customers in one batch; return the new conversation ids."""
        events = []
        for _ in range(count):
            self.serial += 1
            events.append(Inbound(channel=channel, external_id=f"m{self.serial}", kind=kind,
                                  author=Author(f"u{self.serial}", f"cust{self.serial}", None),
                                  text=f"{text} ({self.serial})", created_at=self.clock.now()))
        result = await self.ingestor.ingest(Batch(channel, events))
        return result.new_conversations

    async def conversation(self, conversation_id: int) -> Conversation:
        """A conversation row."""
        async with self.db.sessions() as session:
            row = await session.get(Conversation, conversation_id)
            assert row is not None
            return row

    async def deliveries(self, destination: str | None = None, purpose: str | None = None) -> list[Delivery]:
        """Outbox rows, oldest first."""
        query = select(Delivery).order_by(col(Delivery.id))
        if destination is not None:
            query = query.where(col(Delivery.destination) == destination)
        if purpose is not None:
            query = query.where(col(Delivery.purpose) == purpose)
        async with self.db.sessions() as session:
            return list((await session.execute(query)).scalars())

    async def covered(self, digest: Delivery) -> list[int]:
        """The conversations a digest row covers (its ``digest.folded`` events), in folding order."""
        assert digest.id is not None
        async with self.db.sessions() as session:
            return await digest_conversation_ids(session, digest.id)


def view_of(delivery: Delivery) -> View:
    """The view stored in a delivery's payload."""
    return load(delivery.payload["view"])


async def make_rig(db: Database, clock: FakeClock, settings: Settings, *hooks: Any) -> Rig:
    """Seed ``settings`` and wire a notifier into an Ingestor (after any ``hooks``, e.g. the SLA engine's)."""
    await seed(db, clock, settings)
    notifier = Notifier(db, clock, settings)
    ingestor = Ingestor(db, clock, hooks=[*hooks, notifier.ingest_hook])
    return Rig(db, clock, settings, notifier, ingestor)


@pytest.fixture
async def rig(db: Database, clock: FakeClock, tmp_path: Path) -> Rig:
    """The default rig: two team chats, no SLA."""
    return await make_rig(db, clock, team_settings(tmp_path))
