"""Config sync: several processes starting together on one PostgreSQL database all come up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.clock import FakeClock
from inbox.config_sync import sync_config
from inbox.db import Database
from inbox.models import Channel, Member
from tests.conftest import _truncate
from tests.factories import make_settings


async def _until_one_waits_for_a_lock(db: Database) -> None:
    """Return once some connection to this database is blocked on a lock."""
    while True:
        async with db.lone_reads() as session:
            found = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if found:
            return
        await asyncio.sleep(0.01)


@pytest.mark.postgres
async def test_two_processes_syncing_an_empty_database_at_once_both_succeed(
    postgres_schema_url: str, clock: FakeClock
) -> None:
    # Two `inbox run` started together: each reads the (empty) channels and members and inserts them.
    # The second must wait for the first to commit, not insert the same names and crash.
    settings = make_settings()
    first, second, observer = (Database(postgres_schema_url) for _ in range(3))
    await _truncate(observer)
    written, go_on = asyncio.Event(), asyncio.Event()
    real_transaction = first.transaction

    @asynccontextmanager
    async def held_before_commit() -> AsyncIterator[AsyncSession]:
        async with real_transaction() as session:
            yield session
            await session.flush()  # the first process's rows are written, not yet committed
            written.set()
            await go_on.wait()

    first.transaction = held_before_commit  # type: ignore[method-assign]
    try:
        one = asyncio.create_task(sync_config(first, settings, clock))
        await written.wait()
        two = asyncio.create_task(sync_config(second, settings, clock))
        # Let the first commit only once the second is inside its sync and blocked behind it (or done).
        watcher = asyncio.create_task(_until_one_waits_for_a_lock(observer))
        await asyncio.wait({two, watcher}, return_when=asyncio.FIRST_COMPLETED)
        watcher.cancel()
        go_on.set()
        await asyncio.gather(one, two)
        async with observer.sessions() as session:
            channels = await session.scalar(select(func.count()).select_from(Channel))
            members = await session.scalar(select(func.count()).select_from(Member))
        assert (channels, members) == (len(settings.channels), len(settings.members))
    finally:
        go_on.set()
        for db in (first, second, observer):
            await db.dispose()
