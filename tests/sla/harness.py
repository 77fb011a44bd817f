"""A small rig for SLA tests: a seeded database, the engine wired into Ingestor and Actions, a scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Actor, Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import Conversation, Direction, Event, Kind, Timer, TimerStatus
from inbox.sla.engine import SlaEngine
from inbox.sla.rows import AnyConversation
from inbox.sla.scheduler import SlaScheduler
from tests.factories import make_settings, seed

CAROL = Actor("member", "carol", None)
OFFICE = {"timezone": "UTC", "hours": {"weekdays": ["09:00-17:00"]}}


def policy(name: str = "default", **fields: Any) -> dict[str, Any]:
    """A policy dict for the [sla] section."""
    return {"name": name, **fields}


@dataclass
class Rig:
    """Everything a test drives; ``pings`` records every notify call as (kind, conversation id, data)."""

    db: Database
    clock: FakeClock
    engine: SlaEngine
    ingestor: Ingestor
    actions: Actions
    scheduler: SlaScheduler
    pings: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    _serial: int = 0

    async def notify(
        self, session: AsyncSession, kind: str, conv: AnyConversation, data: dict[str, Any]
    ) -> None:
        """The notify callback: remember the ping."""
        assert conv.id is not None
        self.pings.append((kind, conv.id, dict(data)))

    async def inbound(
        self, author: str = "u1", *, at: datetime | None = None, channel: str = "support",
        kind: Kind = Kind.DM, direction: Direction = Direction.IN, member: str | None = None,
    ) -> int:
        """Ingest one message and return its conversation id."""
        self._serial += 1
        event = Inbound(channel=channel, external_id=f"m{self._serial}", kind=kind,
                        author=Author(author, author, None), text="hello",
                        created_at=at or self.clock.now(), direction=direction, member=member)
        result = await self.ingestor.ingest(Batch(channel, [event]))
        return result.stored[0].conversation_id

    async def conv(self, conversation_id: int) -> Conversation:
        """A fresh copy of the conversation row."""
        async with self.db.sessions() as session:
            row = await session.get(Conversation, conversation_id)
            assert row is not None
            return row

    async def events(self, type_: str, conversation_id: int | None = None) -> list[Event]:
        """Events of one type, oldest first."""
        async with self.db.sessions() as session:
            query = select(Event).where(col(Event.type) == type_)
            if conversation_id is not None:
                query = query.where(col(Event.conversation_id) == conversation_id)
            return list((await session.execute(query.order_by(col(Event.id)))).scalars())

    async def timers(self, conversation_id: int, status: str = TimerStatus.PENDING.value) -> list[Timer]:
        """The conversation's timers with that status, by due time."""
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Timer).where(col(Timer.conversation_id) == conversation_id,
                                    col(Timer.status) == status)
                .order_by(col(Timer.due_at), col(Timer.id)))
            return list(rows.scalars())

    async def count_timers(self, status: str) -> int:
        """How many timers have that status."""
        async with self.db.sessions() as session:
            found = await session.scalar(
                select(func.count()).select_from(Timer).where(col(Timer.status) == status))
            return int(found or 0)

    async def run_at(self, instant: datetime) -> int:
        """Move the clock to ``instant`` and fire everything due; return how many timers settled."""
        self.clock.set(instant)
        return await self.drain()

    async def advance(self, delta: timedelta) -> int:
        """Move the clock forward and fire everything due."""
        return await self.run_at(self.clock.now() + delta)

    async def drain(self) -> int:
        """Fire due timers until none is due."""
        total = 0
        while n := await self.scheduler.run_once():
            total += n
        return total

    def kinds(self) -> list[str]:
        """The kinds of the pings so far, in order."""
        return [kind for kind, _, _ in self.pings]


async def make_rig(db: Database, clock: FakeClock, *policies: dict[str, Any],
                   calendars: dict[str, Any] | None = None) -> Rig:
    """Seed the default team and channels with the given SLA config and wire everything together."""
    settings = make_settings(sla={"calendars": calendars or {}, "policies": list(policies)})
    await seed(db, clock, settings)
    engine = SlaEngine(settings.sla, clock)
    ingestor = Ingestor(db, clock, hooks=[engine.ingest_hook])
    actions = Actions(db, clock, hooks=[engine.action_hook])
    rig = Rig(db, clock, engine, ingestor, actions, scheduler=None)  # type: ignore[arg-type]
    rig.scheduler = SlaScheduler(db, clock, engine, "s1", notify=rig.notify)
    return rig
