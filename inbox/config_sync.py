"""Make the channels and members tables agree with the configuration at start."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from inbox.clock import Clock
from inbox.db import Database
from inbox.models import Channel, Member
from inbox.settings import ChannelSettings, MemberSettings, Settings

# Advisory-lock namespace of the sync (ingest uses 0x5A1, notification budgets 0x5A2).
_LOCK_NAMESPACE = 0x5A3


async def sync_config(db: Database, settings: Settings, clock: Clock) -> None:
    """Upsert configured channels and members; members missing from config are deactivated."""
    await sync_channels(db, settings.channels, clock)
    await sync_members(db, settings.members)


async def sync_channels(db: Database, channels: list[ChannelSettings], clock: Clock) -> None:
    """Create or update a row per configured channel (secrets are never stored)."""
    now = clock.now()
    async with db.transaction() as session:
        await _one_sync_at_a_time(db, session)
        existing = {c.name: c for c in (await session.execute(select(Channel))).scalars()}
        for conf in channels:
            options = {k: v for k, v in conf.options().items()}
            row = existing.get(conf.name)
            if row is None:
                session.add(
                    Channel(name=conf.name, type=conf.type, settings=options, created_at=now, updated_at=now)
                )
            elif row.type != conf.type or row.settings != options:
                row.type, row.settings, row.updated_at = conf.type, options, now


async def sync_members(db: Database, members: list[MemberSettings]) -> None:
    """Create or update a row per configured member; deactivate the others."""
    async with db.transaction() as session:
        await _one_sync_at_a_time(db, session)
        existing = {m.name: m for m in (await session.execute(select(Member))).scalars()}
        for conf in members:
            row = existing.pop(conf.name, None)
            if row is None:
                session.add(
                    Member(
                        name=conf.name,
                        display_name=conf.display_name,
                        role=conf.role.value,
                        platform_ids=conf.platform_ids(),
                    )
                )
            else:
                row.display_name, row.role = conf.display_name, conf.role.value
                row.platform_ids, row.active = conf.platform_ids(), True
        for row in existing.values():
            row.active = False


async def _one_sync_at_a_time(db: Database, session: AsyncSession) -> None:
    """Wait until no other process is syncing, and keep them waiting until this transaction ends.

    Every process syncs at start (``inbox run``, each CLI command): two that start together on an
    empty PostgreSQL database would both read no rows, both insert the same names, and the second
    would crash on the unique index. SQLite needs nothing: its writers already queue (BEGIN IMMEDIATE).
    """
    if db.is_postgres:
        await session.execute(text("SELECT pg_advisory_xact_lock(:ns, 0)"), {"ns": _LOCK_NAMESPACE})
