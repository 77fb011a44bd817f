"""Scenario 1, ingest: mixed inbound events through ``Ingestor`` in batches, beside raw ``executemany``.

The events are stored twice, each time in a fresh database: through ``Ingestor.ingest`` alone (the
figure with the goal), and through the ingestor as ``inbox run`` wires it, with the SLA engine's and the
notifier's hooks (shown for information). The baseline of each is the raw driver (``sqlite3`` or
asyncpg) inserting exactly the rows that run left in the database — contacts, conversations (in their
final state), messages, events, and for the wired run timers and deliveries — with the same number of
transactions (one per batch) and the channel cursor update of each batch. Only the inserts are timed.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Final

from sqlalchemy import func, select, text

from bench.common import NOW, Goal, Result, StatementCounter, Stopwatch, log
from bench.data import inbound_batches
from bench.databases import Scratch, bench_settings, table_order, writable_columns
from bench.env import BenchEnv
from inbox.app import App
from inbox.clock import FakeClock
from inbox.config_sync import sync_config
from inbox.db import Database
from inbox.ingest import Ingestor
from inbox.notify import install_notifier

SCENARIO: Final = "1-ingest"
WRITTEN: Final = ("contacts", "conversations", "messages", "events", "timers", "deliveries")
SETUP_TABLES: Final = ("channels", "members")


async def run(env: BenchEnv) -> list[Result]:
    """Measure both ingest runs and their baselines."""
    sizes = env.sizes
    batches = inbound_batches(sizes.ingest_events, sizes.ingest_batch, env.seed, NOW)
    events = sum(len(b.events) for b in batches)
    size = {
        "events": events,
        "batches": len(batches),
        "batch_size": sizes.ingest_batch,
        "channels": len({b.channel for b in batches}),
    }
    results = []
    for hooked in (False, True):
        name = "ingest-hooks" if hooked else "ingest"
        scratch = await env.scratch(name)
        try:
            seconds, cuts, stored = await _ingest(env, scratch, batches, hooked)
            log(f"  {name}: {events} events in {seconds:.2f}s; rows {stored}")
            baseline = await _raw_baseline(env, scratch, cuts)
            log(f"  {name}: raw baseline {baseline:.2f}s")
        finally:
            await scratch.drop()
        if hooked:
            goal = None
            label = "Ingest, wired as in `inbox run` (SLA + notifier hooks)"
        elif env.backend == "sqlite":
            goal = Goal(">=", 10_000, ">= 10,000 events/s and ratio >= 0.10", min_ratio=0.10)
            label = "Ingest (Ingestor, batches)"
        else:
            goal = Goal(">=", None, "ratio >= 0.10", min_ratio=0.10)
            label = "Ingest (Ingestor, batches)"
        results.append(
            Result(
                SCENARIO,
                "events_per_second_hooks" if hooked else "events_per_second",
                label,
                events / seconds,
                "events/s",
                "higher",
                baseline=events / baseline,
                baseline_label="raw executemany of the same rows",
                goal=goal,
                size={**size, "rows": {k: v for k, v in stored.items() if k != "statements"}},
                notes=[
                    f"{stored.get('messages', 0)} messages stored, "
                    f"{stored.get('conversations', 0)} conversations",
                    f"{stored['statements'] / events:.2f} SQL statements per event "
                    f"({seconds / max(stored['statements'], 1) * 1000:.2f} ms per statement)",
                ],
            )
        )
    return results


async def _ingest(
    env: BenchEnv, scratch: Scratch, batches: list[Any], hooked: bool
) -> tuple[float, list[dict[str, int]], dict[str, int]]:
    """Ingest every batch; time only the ``ingest`` calls; note each table's last id after each batch."""
    clock = FakeClock(NOW)
    settings = bench_settings(scratch.url, env.workdir)
    db = Database(scratch.url)
    app = None
    try:
        if hooked:
            app = await App.open(settings, clock)
            install_notifier(app)
            ingestor = app.ingestor
        else:
            await sync_config(db, settings, clock)
            ingestor = Ingestor(db, clock)
        watch = Stopwatch()
        cuts: list[dict[str, int]] = []
        counter = StatementCounter(db.engine if app is None else app.db.engine)
        statements = 0
        for batch in batches:
            before = counter.count
            with watch:
                await ingestor.ingest(batch)
            statements += counter.count - before
            clock.advance(1)  # a second between polls, as far as the stored times go
            cuts.append(await _last_ids(db))
        async with db.sessions() as session:
            stored = {
                t: int(await session.scalar(select(func.count()).select_from(text(t))) or 0) for t in WRITTEN
            }
        counter.close()
        return watch.total, cuts, {**{k: v for k, v in stored.items() if v}, "statements": statements}
    finally:
        if app is not None:
            await app.close()
        await db.dispose()


async def _last_ids(db: Database) -> dict[str, int]:
    async with db.sessions() as session:
        return {
            t: int(await session.scalar(text(f"SELECT coalesce(max(id), 0) FROM {t}")) or 0) for t in WRITTEN
        }


# --- the baseline -----------------------------------------------------------------------------------------


async def _raw_baseline(env: BenchEnv, source: Scratch, cuts: list[dict[str, int]]) -> float:
    """Seconds the raw driver takes to insert what the ingest left, batch by batch, into a fresh database."""
    target = await env.scratch("ingest-raw")
    try:
        if env.backend == "sqlite":
            return _sqlite_baseline(source, target, cuts)
        return await _postgres_baseline(source, target, cuts)
    finally:
        await target.drop()


def _sqlite_rows(conn: sqlite3.Connection, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = conn.execute(f'SELECT {", ".join(writable_columns(table))} FROM "{table}" ORDER BY 1')
    return [d[0] for d in cursor.description], cursor.fetchall()


def _slices(
    rows: list[tuple[Any, ...]], cuts: list[dict[str, int]], table: str
) -> list[list[tuple[Any, ...]]]:
    """The rows of each batch: ids above the previous batch's last id, up to this batch's."""
    out, start = [], 0
    for cut in cuts:
        end = start
        while end < len(rows) and rows[end][0] <= cut[table]:
            end += 1
        out.append(rows[start:end])
        start = end
    return out


def _sqlite_baseline(source: Scratch, target: Scratch, cuts: list[dict[str, int]]) -> float:
    assert source.path is not None and target.path is not None
    src = sqlite3.connect(source.path)
    dst = sqlite3.connect(target.path, isolation_level=None)
    try:
        # The pragmas inbox.db sets on every connection, so both sides pay for the same durability.
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            dst.execute(f"PRAGMA {pragma}")
        for table in SETUP_TABLES:
            names, rows = _sqlite_rows(src, table)
            dst.execute("BEGIN")
            dst.executemany(
                f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})', rows
            )
            dst.execute("COMMIT")
        plan = []
        for table in table_order(WRITTEN):
            names, rows = _sqlite_rows(src, table)
            sql = f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})'
            plan.append((sql, _slices(rows, cuts, table)))
        started = time.perf_counter()
        for index in range(len(cuts)):
            dst.execute("BEGIN IMMEDIATE")
            for sql, slices in plan:
                if slices[index]:
                    dst.executemany(sql, slices[index])
            dst.execute("UPDATE channels SET cursor = ?, updated_at = updated_at WHERE id = 1", (str(index),))
            dst.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        src.close()
        dst.close()


async def _pg_connect(url: str) -> Any:
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )


async def _postgres_baseline(source: Scratch, target: Scratch, cuts: list[dict[str, int]]) -> float:
    src, dst = await _pg_connect(source.url), await _pg_connect(target.url)
    try:

        async def rows_of(table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            columns = ", ".join(writable_columns(table))
            records = await src.fetch(f'SELECT {columns} FROM "{table}" ORDER BY 1')
            names = list(records[0].keys()) if records else []
            return names, [tuple(r.values()) for r in records]

        def insert_sql(table: str, names: list[str]) -> str:
            marks = ", ".join(f"${i + 1}" for i in range(len(names)))
            return f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({marks})'

        for table in SETUP_TABLES:
            names, rows = await rows_of(table)
            await dst.executemany(insert_sql(table, names), rows)
        plan = []
        for table in table_order(WRITTEN):
            names, rows = await rows_of(table)
            if names:
                plan.append((insert_sql(table, names), _slices(rows, cuts, table)))
        started = time.perf_counter()
        for index in range(len(cuts)):
            async with dst.transaction():
                for sql, slices in plan:
                    if slices[index]:
                        await dst.executemany(sql, slices[index])
                await dst.execute("UPDATE channels SET cursor = $1 WHERE id = 1", str(index))
        return time.perf_counter() - started
    finally:
        await src.close()
        await dst.close()
