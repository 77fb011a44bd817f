"""Putting a scenario's starting state into its database: the configured team, tags, customers, history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import col, select

from bench.common import log
from bench.data import TAGS, History, HistoryPlan, Ids, World, contact_rows
from bench.databases import BulkWriter, Scratch, table_order
from inbox.clock import Clock
from inbox.config_sync import sync_config
from inbox.db import Database
from inbox.models import Channel, Member, Tag
from inbox.settings import Settings
from inbox.sla.policy import Policy


async def seed_world(db: Database, settings: Settings, clock: Clock) -> World:
    """Sync the configuration (channels, members) and create the tags; return their ids."""
    await sync_config(db, settings, clock)
    async with db.transaction() as session:
        await session.execute(insert(Tag), [{"name": name} for name in TAGS])
    async with db.sessions() as session:
        channels = {
            str(n): int(i or 0) for i, n in await session.execute(select(col(Channel.id), col(Channel.name)))
        }
        members = [
            int(i or 0)
            for i in (await session.execute(select(col(Member.id)).order_by(col(Member.id)))).scalars()
        ]
        tags = {str(n): int(i or 0) for i, n in await session.execute(select(col(Tag.id), col(Tag.name)))}
    return World(channels, members, tags)


async def write_history(
    scratch: Scratch,
    world: World,
    plans: Sequence[HistoryPlan],
    policies: Sequence[Policy],
    seed: int,
    contacts_at: datetime,
    chunk: int = 5_000,
) -> dict[str, Any]:
    """Write the customers and every plan's conversations with the raw driver; return what was written."""
    ids = Ids()
    totals: dict[str, int] = {}
    per_channel = max(p.contacts_per_channel for p in plans)
    async with BulkWriter(scratch.backend, scratch.url) as writer:
        contacts, first = contact_rows(world, per_channel, ids, contacts_at)
        for start in range(0, len(contacts), 50_000):
            await writer.insert("contacts", contacts[start : start + 50_000])
        totals["contacts"] = len(contacts)
        for index, plan in enumerate(plans):
            history = History(plan, world, policies, seed + index, ids, first)
            for rows in history.chunks(chunk):
                for table in table_order(rows):
                    await writer.insert(table, rows[table])
            for key, value in history.stats.items():
                totals[key] = totals.get(key, 0) + value
            log(f"  history {index + 1}/{len(plans)} written: {history.stats}")
    return totals
