"""Leases: rows that say which process may run something that must be unique, and until when.

A Telegram long poll per token, a Discord gateway per token, one poller per channel: each runs in
the process holding its lease. The holder renews it; when the holder dies (even by SIGKILL) the
lease expires and another process takes it over. PostgreSQL row locks make acquisition atomic;
on SQLite every transaction is already exclusive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from inbox.audit import record
from inbox.clock import Clock
from inbox.db import Database
from inbox.events import Actor
from inbox.models import Lease

log = logging.getLogger(__name__)
_LEASES = Actor.system("leases")


def process_name() -> str:
    """This process as a lease holder: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_local_process(holder: str) -> bool:
    """True when ``holder`` names a process on this host that no longer exists."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Leases:
    """Acquire, renew and release named leases for one holder."""

    def __init__(self, db: Database, clock: Clock, holder: str, ttl: timedelta) -> None:
        self.db = db
        self.clock = clock
        self.holder = holder
        self.ttl = ttl

    async def acquire(self, name: str) -> bool:
        """Take the lease if it is free, expired, ours, or held by a dead process on this host."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            insert = postgresql.insert if self.db.is_postgres else sqlite.insert
            inserted = await session.execute(
                insert(Lease)
                .values(name=name, holder=self.holder, acquired_at=now, expires_at=now + self.ttl)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(col(Lease.name))
            )
            if inserted.scalar_one_or_none() is not None:
                return True
            row = (
                await session.execute(select(Lease).where(col(Lease.name) == name).with_for_update())
            ).scalar_one()
            if row.holder == self.holder:
                row.expires_at = now + self.ttl
                return True
            if row.expires_at > now and not _dead_local_process(row.holder):
                return False
            await record(
                session, _LEASES, "lease.taken_over", now, lease=name, previous=row.holder, holder=self.holder
            )
            row.holder, row.acquired_at, row.expires_at = self.holder, now, now + self.ttl
            return True

    async def renew(self, name: str) -> bool:
        """Extend our lease; False when it was lost (expired and taken, or deleted)."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Lease)
                .where(col(Lease.name) == name, col(Lease.holder) == self.holder)
                .values(expires_at=now + self.ttl)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, name: str) -> None:
        """Give the lease up so another process can take it at once."""
        async with self.db.transaction() as session:
            await session.execute(
                delete(Lease).where(col(Lease.name) == name, col(Lease.holder) == self.holder)
            )

    async def holder_of(self, name: str) -> str | None:
        """Who holds the lease now (expired or not), if anyone."""
        async with self.db.sessions() as session:
            row = await session.get(Lease, name)
            return row.holder if row else None


TaskFactory = Callable[[asyncio.Event], Awaitable[Any]]


async def run_leased(name: str, leases: Leases, factory: TaskFactory, stop: asyncio.Event) -> None:
    """Run ``factory(inner_stop)`` only while this process holds lease ``name``.

    Retries acquisition every third of the lease time; when a renewal fails (the lease was lost,
    or the database is unreachable for longer than the lease) the task is stopped.
    """
    interval = leases.ttl.total_seconds() / 3
    while not stop.is_set():
        try:
            held = await leases.acquire(name)
        except Exception as exc:  # the database may be down: keep trying, hold nothing
            log.warning("lease %s: cannot acquire (%s)", name, exc)
            held = False
        if held:
            log.info("lease %s: acquired by %s", name, leases.holder)
            await _hold(name, leases, factory, stop, interval)
        await _wait(stop, interval)


async def _hold(
    name: str, leases: Leases, factory: TaskFactory, stop: asyncio.Event, interval: float
) -> None:
    inner_stop = asyncio.Event()
    task = asyncio.ensure_future(factory(inner_stop))
    lost = False
    while not stop.is_set() and not task.done():
        await _wait(stop, interval, task)
        if stop.is_set() or task.done():
            break
        try:
            renewed = await leases.renew(name)
        except Exception as exc:
            log.warning("lease %s: renewal failed (%s)", name, exc)
            renewed = False
        if not renewed:
            log.warning("lease %s: lost; stopping its task", name)
            lost = True
            break
    inner_stop.set()
    try:
        await asyncio.wait_for(task, timeout=max(interval, 5.0))
    except TimeoutError:
        task.cancel()
    except Exception:
        log.exception("leased task %s failed", name)
    if not lost:
        try:
            await leases.release(name)
        except Exception as exc:
            log.warning("lease %s: could not release (%s); it will expire", name, exc)


async def _wait(stop: asyncio.Event, seconds: float, task: asyncio.Task[Any] | None = None) -> None:
    # Real seconds on purpose: the renewal cadence must keep pace with the other processes'
    # real clocks, whatever clock this process was given.
    stopper = asyncio.ensure_future(stop.wait())
    waiters: set[asyncio.Future[Any]] = {stopper} if task is None else {stopper, task}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
