"""Item 7: two SLA schedulers (two processes: each its own database engine, SLA engine and notifier) run
side by side, and one of them is restarted while pings are due: each warning and each breach fires once,
and the team chat is told once per ping.

Timers are rows claimed and fired inside one transaction (``SKIP LOCKED`` on PostgreSQL), so neither a
second scheduler nor a restart can fire one twice; timers that came due while a scheduler was away
fire at its next pass.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import col

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import Delivery, Event, Kind, Timer, TimerStatus
from inbox.notify import Notifier
from inbox.settings import Settings
from inbox.sla.engine import SlaEngine
from inbox.sla.scheduler import SlaScheduler
from tests.factories import DEFAULT_CONFIG, make_settings, seed
from tests.reliability.support import count, eventually, rows

CONVERSATIONS = 60
MON_9 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def sla_settings(tmp_path: Path) -> Settings:
    """A one-hour first-response SLA (warning at 45 minutes) and a team chat that hears every ping."""
    return make_settings(
        channels=[
            *DEFAULT_CONFIG["channels"],
            {"name": "log", "type": "teamlog", "path": str(tmp_path / "t")},
        ],
        team_chats=[{"name": "ops", "channel": "log", "chat_id": "ops", "budget": 10_000}],
        sla={"policies": [{"name": "default", "first_response": "1h"}]},
    )


@dataclass
class Process:
    """One scheduler process: its engine, SLA engine, notifier and running loop."""

    db: Database
    scheduler: SlaScheduler
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def kill(self) -> None:
        """Stop the loop (between two passes, as SIGTERM does) and drop the engine."""
        self.stop.set()
        await asyncio.wait_for(self.task, 10)
        await self.db.dispose()


def start(db_url: str, clock: FakeClock, settings: Settings, name: str) -> Process:
    db = Database(db_url)
    engine = SlaEngine(settings.sla, clock)
    scheduler = SlaScheduler(
        db,
        clock,
        engine,
        name,
        notify=Notifier(db, clock, settings).sla_notify,
        batch_size=7,
        poll_interval=5.0,
    )
    stop = asyncio.Event()
    return Process(db, scheduler, stop, asyncio.create_task(scheduler.run(stop)))


async def test_two_schedulers_and_a_restart_while_pings_are_due_ping_each_once(
    db: Database,
    db_url: str,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    settings = sla_settings(tmp_path)
    await seed(db, clock, settings)
    engine = SlaEngine(settings.sla, clock)
    ingestor = Ingestor(db, clock, hooks=[engine.ingest_hook, Notifier(db, clock, settings).ingest_hook])
    await ingestor.ingest(
        Batch(
            "support",
            [
                Inbound("support", f"m{i}", Kind.DM, Author(f"c{i}"), "Hello?", MON_9)
                for i in range(CONVERSATIONS)
            ],
        )
    )
    assert await count(db, Timer, col(Timer.status) == TimerStatus.PENDING) == 2 * CONVERSATIONS

    first, second = start(db_url, clock, settings, "one"), start(db_url, clock, settings, "two")

    async def fired(kind: str) -> bool:
        return await count(db, Event, col(Event.type) == kind) >= CONVERSATIONS

    try:
        clock.set(MON_9 + timedelta(minutes=46))  # the warnings are due: both schedulers race for them
        await eventually(lambda: fired("sla.warning"))
        clock.set(MON_9 + timedelta(hours=1, minutes=1))  # the breaches are due ...
        await asyncio.sleep(0)
        await first.kill()  # ... and "one" restarts right now
        await asyncio.sleep(0.05)
        first = start(db_url, clock, settings, "one-restarted")
        await eventually(lambda: fired("sla.breached"))
        await asyncio.sleep(0.2)  # a second firing, if any, would show now
    finally:
        await first.kill()
        await second.kill()

    events = await rows(db, Event, col(Event.type).in_(["sla.warning", "sla.breached"]))
    per_ping = Counter((e.conversation_id, e.type) for e in events)
    assert len(per_ping) == 2 * CONVERSATIONS and set(per_ping.values()) == {1}
    pings = await rows(db, Delivery, col(Delivery.destination) == "team:ops", col(Delivery.purpose) == "sla")
    told = Counter((d.conversation_id, d.payload["view"]["event"]) for d in pings)
    assert len(told) == 2 * CONVERSATIONS and set(told.values()) == {1}
    fired_rows = await rows(db, Timer, col(Timer.status) == TimerStatus.FIRED)
    assert len(fired_rows) == 2 * CONVERSATIONS
    claimants = Counter(t.claimed_by for t in fired_rows)
    assert set(claimants) <= {"one", "two", "one-restarted"}
    if db.is_postgres:  # SQLite runs one process at a time; PostgreSQL really shares the work
        assert len(claimants) >= 2
    assert await count(db, Timer, col(Timer.status) == TimerStatus.PENDING) == 0
