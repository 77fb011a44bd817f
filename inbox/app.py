"""Wiring: build the core services from settings, once, for the CLI and the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field

from inbox.actions import ActionHook, Actions
from inbox.clock import Clock, SystemClock
from inbox.config_sync import sync_config
from inbox.db import Database
from inbox.ingest import IngestHook, Ingestor
from inbox.settings import Settings
from inbox.sla.engine import SlaEngine


@dataclass
class App:
    """The core services sharing one database and one clock."""

    settings: Settings
    db: Database
    clock: Clock
    actions: Actions
    ingestor: Ingestor
    sla: SlaEngine
    ingest_hooks: list[IngestHook] = field(default_factory=list)
    action_hooks: list[ActionHook] = field(default_factory=list)

    @classmethod
    async def open(cls, settings: Settings, clock: Clock | None = None, *, migrate: bool = False) -> App:
        """Connect, check (or apply) migrations, sync config into the database."""
        from inbox import migrate as migrations

        clock = clock or SystemClock()
        db = Database(settings.database.url, background_checkpoints=True)
        try:
            if migrate:
                await migrations.upgrade(db.url)
            await migrations.ensure_migrated(db)
            await sync_config(db, settings, clock)
        except BaseException:
            await db.dispose()
            raise
        sla = SlaEngine(settings.sla, clock)
        # The SLA engine runs first so that notices queued by later hooks see fresh deadlines.
        ingest_hooks: list[IngestHook] = [sla.ingest_hook]
        action_hooks: list[ActionHook] = [sla.action_hook]
        ingestor = Ingestor(db, clock, reopen_window=settings.general.reopen_window, hooks=ingest_hooks)
        actions = Actions(db, clock, hooks=action_hooks)
        return cls(settings, db, clock, actions, ingestor, sla, ingest_hooks, action_hooks)

    async def close(self) -> None:
        """Release the database."""
        await self.db.dispose()
