"""Item 6: the database goes away under a running `inbox run`, and comes back.

- PostgreSQL: every connection of the app is killed with ``pg_terminate_backend``, again and again,
  while customers write and members reply (the shared server itself is never restarted).
- SQLite: another process holds a write transaction; once within the 30 s busy timeout (writers just
  wait), and once, in process with a short timeout, for longer than it (writes fail and are retried).

In every case the process keeps running, reconnects, and loses nothing: every event is stored once
and every reply is written.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import inbox.db
from connectors.jsonl import JsonlSender, JsonlSource
from inbox.actions import Actions
from inbox.clock import SystemClock
from inbox.db import Database
from inbox.events import Actor
from inbox.ingest import Ingestor
from inbox.models import Conversation, Delivery, DeliveryStatus, Message, metadata
from inbox.outbox import Dispatcher, RetryPolicy
from inbox.poller import Poller
from inbox.settings import load_settings
from tests.factories import seed
from tests.reliability.support import (
    JsonlFeed,
    count,
    eventually,
    inbox_cli,
    psql,
    rows,
    start_run,
    stop_run,
    wait_until,
)

CONFIG = """
[database]
url = "{url}"

[runtime]
lease_ttl = "3s"

[outbox]
idle_interval = "0.1s"
base_delay = "0.2s"
max_delay = "1s"
lease = "5s"

[[members]]
name = "alice"
role = "admin"

[[channels]]
name = "website"
type = "jsonl"
inbound_path = "in.jsonl"
outbound_path = "out.jsonl"
poll_interval = 0.1
"""


def state(config: Path) -> tuple[int, int]:
    """(messages stored, distinct external ids), read with a connection of our own."""

    async def read() -> tuple[int, int]:
        db = Database(load_settings(config, environ={}).database.url)
        try:
            async with db.sessions() as session:
                total, distinct = (
                    await session.execute(
                        text(
                            "SELECT count(*), count(DISTINCT external_id) FROM messages"
                            " WHERE direction = 'in'"
                        )
                    )
                ).one()
        finally:
            await db.dispose()
        return int(total), int(distinct)

    return asyncio.run(read())


def replies(out: Path) -> list[tuple[int, str]]:
    """(delivery id, text) of the replies written so far, one per delivery id."""
    if not out.exists():
        return []
    found = {}
    for line in out.read_text().splitlines():
        record = json.loads(line)
        found[record["delivery_id"]] = record["text"]
    return sorted(found.items())


def terminate_app_connections(url: str) -> int:
    """Kill every connection to the database but this one; return how many were killed."""
    name = make_url(url).database
    done = psql(
        url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )
    return int(done or 0)


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE channels SET health = health")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_sqlite_write_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process takes SQLite's write lock and holds it for ``seconds``; returns once it holds it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_the_database_going_away_under_inbox_run_loses_nothing(
    fresh_db_url: str,
    backend: str,
    tmp_path: Path,
) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text(CONFIG.format(url=fresh_db_url))
    out = tmp_path / "out.jsonl"
    feed = JsonlFeed(tmp_path / "in.jsonl")
    assert inbox_cli("-c", str(config), "db", "upgrade", cwd=tmp_path).returncode == 0
    worker = start_run(config)
    killed = 0
    try:
        feed.append(20)
        wait_until(lambda: state(config)[0] == 20)
        if backend == "postgres":
            for round_ in range(3):
                feed.append(10)
                for _ in range(5):
                    killed += terminate_app_connections(fresh_db_url)
                    time.sleep(0.1)
                done = inbox_cli(
                    "-c",
                    str(config),
                    "cmd",
                    "--as",
                    "alice",
                    f"/reply {round_ + 1} Reply {round_}",
                    cwd=tmp_path,
                )
                assert done.returncode == 0, done.stdout + done.stderr
            assert killed > 0
        else:
            path = Path(make_url(fresh_db_url).database or "")
            holder = hold_sqlite_write_lock(path, 3.0)
            feed.append(30)  # arrives while nobody but the holder may write
            time.sleep(1.0)
            with sqlite3.connect(path) as reader:  # a plain reader is never blocked in WAL mode
                stored = reader.execute("SELECT count(*) FROM messages WHERE direction = 'in'").fetchone()[0]
            assert stored == 20  # the writer waits its turn
            for round_ in range(3):  # each waits for the lock like any writer would
                done = inbox_cli(
                    "-c",
                    str(config),
                    "cmd",
                    "--as",
                    "alice",
                    f"/reply {round_ + 1} Reply {round_}",
                    cwd=tmp_path,
                )
                assert done.returncode == 0, done.stdout + done.stderr
            assert holder.wait(10) == 0
        wait_until(lambda: state(config) == (50, 50), timeout=40)
        wait_until(lambda: len(replies(out)) == 3, timeout=40)
        assert worker.poll() is None, "inbox run died"
    finally:
        log = stop_run(worker)
    assert worker.returncode == 0, log
    assert [t for _, t in replies(out)] == ["Reply 0", "Reply 1", "Reply 2"]
    assert state(config) == (50, 50)


async def test_sqlite_locked_longer_than_the_busy_timeout_is_retried_until_it_frees(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inbox.db, "SQLITE_BUSY_TIMEOUT_MS", 100)  # so a 1.5 s lock outlasts it
    path = tmp_path / "inbox.db"
    clock = SystemClock()
    db = Database(f"sqlite+aiosqlite:///{path}")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await seed(db, clock)
    feed = JsonlFeed(tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    ingestor = Ingestor(db, clock)
    poller = Poller("support", JsonlSource("support", feed.path), ingestor, db, clock, 0.05)
    dispatcher = Dispatcher(
        db,
        clock,
        {"support": JsonlSender(out, clock)},
        worker_id="w",
        policy=RetryPolicy(base_delay=timedelta(seconds=0.05), max_delay=timedelta(seconds=0.2)),
    )
    stop = asyncio.Event()
    loops = [asyncio.create_task(poller.run(stop)), asyncio.create_task(dispatcher.run(stop, idle=0.05))]
    try:
        feed.append(5)
        await eventually(lambda: count(db, Message))
        holder = await asyncio.to_thread(hold_sqlite_write_lock, path, 1.5)
        feed.append(5)
        await asyncio.sleep(0.5)
        assert poller.errors > 0  # the poller hit "database is locked" ...
        assert not any(loop.done() for loop in loops)  # ... and is still running
        assert await asyncio.to_thread(holder.wait, 10) == 0

        async def all_ten() -> bool:
            return await count(db, Message) == 10

        await eventually(all_ten, within=15)
        [conversation, *_] = await rows(db, Conversation)
        assert conversation.id is not None
        await Actions(db, clock).reply(Actor("member", "alice", None), conversation.id, "Thanks!")

        async def sent() -> bool:
            return [d.status for d in await rows(db, Delivery)] == [DeliveryStatus.SENT]

        await eventually(sent, within=15)
    finally:
        stop.set()
        await asyncio.gather(*loops)
        await db.dispose()
    assert [t for _, t in replies(out)] == ["Thanks!"]
