"""Leases: one holder at a time, renewal, expiry and takeover, and the leased-task runner."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta

from sqlmodel import select

from inbox.clock import FakeClock, SystemClock
from inbox.db import Database
from inbox.leases import Leases, process_name, run_leased
from inbox.models import Event, Lease

TTL = timedelta(seconds=30)


async def test_one_holder_until_expiry(db: Database, clock: FakeClock) -> None:
    a, b = Leases(db, clock, "host-a:1", TTL), Leases(db, clock, "host-b:2", TTL)
    assert await a.acquire("source:x")
    assert not await b.acquire("source:x")
    assert await a.acquire("source:x")  # re-acquiring our own lease extends it
    clock.advance(TTL - timedelta(seconds=1))
    assert await a.renew("source:x")
    clock.advance(TTL - timedelta(seconds=1))
    assert not await b.acquire("source:x")  # renewed, so still valid
    clock.advance(timedelta(seconds=2))
    assert await b.acquire("source:x")  # expired: taken over
    assert not await a.renew("source:x")  # a learns it lost the lease
    assert await b.holder_of("source:x") == "host-b:2"
    async with db.sessions() as s:
        event = (await s.execute(select(Event).where(Event.type == "lease.taken_over"))).scalar_one()
    assert event.data == {"lease": "source:x", "previous": "host-a:1", "holder": "host-b:2"}


async def test_release_frees_at_once(db: Database, clock: FakeClock) -> None:
    a, b = Leases(db, clock, "host-a:1", TTL), Leases(db, clock, "host-b:2", TTL)
    assert await a.acquire("l")
    await b.release("l")  # not b's to release
    assert not await b.acquire("l")
    await a.release("l")
    assert await b.acquire("l")


async def test_a_dead_process_on_this_host_loses_its_lease_at_once(db: Database, clock: FakeClock) -> None:
    dead = process_name().rpartition(":")[0] + ":" + str(_finished_pid())
    assert await Leases(db, clock, dead, TTL).acquire("l")
    assert await Leases(db, clock, process_name(), TTL).acquire("l")


def _finished_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


async def test_racing_acquirers_get_one_winner(db: Database, db_url: str, clock: FakeClock) -> None:
    engines = [Database(db_url) for _ in range(5)]
    try:
        results = await asyncio.gather(
            *(Leases(e, clock, f"h:{i}", TTL).acquire("race") for i, e in enumerate(engines))
        )
    finally:
        for e in engines:
            await e.dispose()
    assert sorted(results) == [False, False, False, False, True]


async def test_run_leased_runs_only_while_held(db: Database) -> None:
    clock = SystemClock()
    # Real time: long enough that other's lease cannot lapse during the 0.3 s check on a loaded machine
    # (0.6 s did once, with the suite on two workers), short enough that renewals come every 0.67 s.
    ttl = timedelta(seconds=2)
    mine, other = Leases(db, clock, "me:1", ttl), Leases(db, clock, "other:2", ttl)
    started = asyncio.Event()
    stopped = asyncio.Event()

    async def work(inner_stop: asyncio.Event) -> None:
        started.set()
        await inner_stop.wait()
        stopped.set()

    assert await other.acquire("job")
    stop = asyncio.Event()
    runner = asyncio.create_task(run_leased("job", mine, work, stop))
    await asyncio.sleep(0.3)
    assert not started.is_set()  # someone else holds it
    await other.release("job")
    await asyncio.wait_for(started.wait(), 3)
    # steal it (as if our renewals had failed long enough for it to expire and be taken)
    async with db.transaction() as session:
        row = await session.get(Lease, "job")
        assert row is not None
        row.holder = "other:2"
    await asyncio.wait_for(stopped.wait(), 3)  # the task is stopped when the lease is lost
    stop.set()
    await asyncio.wait_for(runner, 3)
