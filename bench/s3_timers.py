"""Scenario 3, SLA timers: a million pending timers; finding the next one, firing 100,000 due at once, idling.

Setup (not timed): conversations and their timers are bulk-inserted with the raw driver, not ingested —
ingesting 250,000 conversations would take longer than the rest of the benchmark. The rows are what the
product would have: each conversation's SLA clocks from the engine's rules, and exactly the timers
``SlaEngine.desired_timers`` plans for them (a warning and a breach for first response and for
resolution, four per conversation). One cohort started 61 minutes ago and was never answered, so its
first-response warning and breach are due now: ``timers_due`` timers. The other cohort started in the
last 20 minutes and has nothing due before the scenario ends.

1. **Next due**: ``SlaScheduler.next_due()`` (the query the loop runs before each sleep), p99 of many
   calls. Baseline: the same SELECT through the raw driver.
2. **Firing**: the scheduler's ``drain`` — what ``inbox run``'s loop runs while a backlog is due: passes
   of 500 timers, two side by side on PostgreSQL — until nothing is due (or
   for at most ten minutes: the rate is steady), with the notifier attached as in ``inbox run``: every
   warning and breach writes its audit event, queues (or folds into the minute's digest) a team-chat
   notice and replans the conversation's timers. The clock runs at real speed from the seeded "now",
   so the team chat's budget windows roll as they would. Baseline: the raw driver marking the same
   number of timers fired, 100 per transaction.
3. **Idle CPU**: the scheduler loop (``run``) with nothing due for a while, on a clock that runs at real
   speed. Process CPU time (``time.process_time``: all threads, the SQLite driver's included) over a
   window of ``idle_seconds``, scaled to a minute, plus the CPU of the passes the loop makes in a
   minute (one per ``poll_interval``, 30 s: measured separately, since a short window may hold none).
   PostgreSQL's server-side CPU is not counted. Baseline: an asyncio loop doing nothing, same window.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlmodel import col

from bench.common import NOW, Goal, RealTimeClock, Result, StatementCounter, log, percentile
from bench.data import HistoryPlan
from bench.databases import Scratch, bench_settings
from bench.env import BenchEnv
from bench.seeding import seed_world, write_history
from inbox.app import App
from inbox.db import Database
from inbox.heap import freeze_startup_heap
from inbox.models import Delivery, Event, Timer, TimerStatus
from inbox.notify import install_notifier
from inbox.sla.scheduler import SlaScheduler

SCENARIO: Final = "3-timers"
NEXT_DUE_CALLS: Final = 500
PASSES_MEASURED: Final = 20
FIRE_LIMIT_SECONDS: Final = 600.0  # the firing rate is steady; ten minutes of it is enough to know it


async def run(env: BenchEnv) -> list[Result]:
    """Seed the timers, then measure next_due, the firing rate and the idle CPU."""
    sizes = env.sizes
    scratch = await env.scratch("timers")
    # Real speed from NOW, for the App too: the notifier's budget windows roll by the minute as in production.
    clock = RealTimeClock(NOW)
    size: dict[str, Any] = {
        "pending_timers": sizes.timers,
        "due_at_once": sizes.timers_due,
        "idle_window_s": sizes.idle_seconds,
    }
    try:
        settings = bench_settings(scratch.url, env.workdir)
        written = await _seed(env, scratch, settings, clock)
        size["rows"] = written
        app = await App.open(settings, clock)
        try:
            notifier = install_notifier(app)
            scheduler = SlaScheduler(app.db, clock, app.sla, "bench", notify=notifier.sla_notify)
            freeze_startup_heap()  # as `inbox run` does once it has started
            pending = await _count(app.db, Timer, col(Timer.status) == TimerStatus.PENDING.value)
            due = await _count(
                app.db, Timer, col(Timer.status) == TimerStatus.PENDING.value, col(Timer.due_at) <= NOW
            )
            size["pending_timers"], size["due_at_once"] = pending, due
            log(f"  {pending} pending timers, {due} due")
            results = [await _next_due(scratch, scheduler, size)]
            results.append(await _firing(app, scratch, scheduler, size, FIRE_LIMIT_SECONDS))
            results.append(await _idle(app, notifier, size, sizes.idle_seconds))
        finally:
            await app.close()
            gc.unfreeze()  # the next scenario starts with the collector as it found it
    finally:
        await scratch.drop()
    return results


async def _seed(env: BenchEnv, scratch: Scratch, settings: Any, clock: Any) -> dict[str, Any]:
    sizes = env.sizes
    due_conversations = sizes.timers_due // 2
    later_conversations = max(0, (sizes.timers - 4 * due_conversations) // 4)
    common: dict[str, Any] = {
        "now": NOW,
        "mean_messages": 1.0,
        "resolved_share": 0.0,
        "press_share": 0.0,
        "with_events": False,
        "scheduler_ran": False,
        "contacts_per_channel": max(1_000, (due_conversations + later_conversations) // 5),
    }
    plans = [
        HistoryPlan(
            conversations=due_conversations,
            start=NOW - timedelta(minutes=62),
            end=NOW - timedelta(minutes=61),
            **common,
        ),
        # Their first warnings fall 25 to 45 minutes after NOW: later than the firing and idle phases end.
        HistoryPlan(conversations=later_conversations, start=NOW - timedelta(minutes=20), end=NOW, **common),
    ]
    db = Database(scratch.url)
    try:
        world = await seed_world(db, settings, clock)
    finally:
        await db.dispose()
    return await write_history(
        scratch, world, plans, settings.sla.compile(), env.seed, NOW - timedelta(days=30)
    )


async def _count(db: Database, model: Any, *where: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# --- next due ----------------------------------------------------------------------------------------------


async def _next_due(scratch: Scratch, scheduler: SlaScheduler, size: dict[str, Any]) -> Result:
    for _ in range(5):
        await scheduler.next_due()
    ours = []
    for _ in range(NEXT_DUE_CALLS):
        started = time.perf_counter()
        await scheduler.next_due()
        ours.append((time.perf_counter() - started) * 1000)
    raw = await _raw_next_due(scratch, tuple(scheduler.engine.timer_kinds))
    p50, p99 = percentile(ours, 50), percentile(ours, 99)
    log(f"  next_due: p50 {p50:.3f} ms, p99 {p99:.3f} ms; raw p99 {percentile(raw, 99):.3f} ms")
    return Result(
        SCENARIO,
        "next_due_p99_ms",
        "Find the next due timer (p99)",
        p99,
        "ms",
        "lower",
        baseline=percentile(raw, 99),
        baseline_label="the same SELECT through the raw driver, p99",
        goal=Goal("<", 5.0, "< 5 ms"),
        size=size,
        notes=[f"p50 {p50:.3f} ms over {NEXT_DUE_CALLS} calls"],
    )


async def _raw_next_due(scratch: Scratch, kinds: tuple[str, ...]) -> list[float]:
    marks = ", ".join("?" for _ in kinds)
    sql = f"SELECT due_at FROM timers WHERE status = 'pending' AND kind IN ({marks}) ORDER BY due_at LIMIT 1"
    out = []
    if scratch.path is not None:
        conn = sqlite3.connect(scratch.path)
        try:
            for _ in range(NEXT_DUE_CALLS):
                started = time.perf_counter()
                conn.execute(sql, kinds).fetchone()
                out.append((time.perf_counter() - started) * 1000)
        finally:
            conn.close()
        return out
    conn = await _pg(scratch.url)
    try:
        pg_sql = sql
        for index in range(len(kinds)):
            pg_sql = pg_sql.replace("?", f"${index + 1}", 1)
        for _ in range(NEXT_DUE_CALLS):
            started = time.perf_counter()
            await conn.fetchval(pg_sql, *kinds)
            out.append((time.perf_counter() - started) * 1000)
    finally:
        await conn.close()
    return out


async def _pg(url: str) -> Any:
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


# --- firing ------------------------------------------------------------------------------------------------


async def _firing(
    app: App, scratch: Scratch, scheduler: SlaScheduler, size: dict[str, Any], limit: float
) -> Result:
    async with app.db.sessions() as session:
        due_ids = list(
            (
                await session.execute(
                    select(col(Timer.id))
                    .where(col(Timer.status) == TimerStatus.PENDING.value, col(Timer.due_at) <= NOW)
                    .order_by(col(Timer.due_at), col(Timer.id))
                )
            ).scalars()
        )
    events_before = await _count(app.db, Event)
    settled, passes_before = 0, scheduler.passes
    counter = StatementCounter(app.db.engine)
    stop = asyncio.Event()
    timeout = asyncio.get_running_loop().call_later(limit, stop.set)
    started = time.perf_counter()
    while not stop.is_set():
        # What `inbox run`'s loop does while a backlog is due: ``drain`` (passes side by side on PostgreSQL).
        settled += await scheduler.drain(stop)
        if scheduler.last_claimed == 0:
            break
    seconds = time.perf_counter() - started
    timeout.cancel()
    passes = scheduler.passes - passes_before
    counter.close()
    fired = await _count(app.db, Timer, col(Timer.status) == TimerStatus.FIRED.value)
    events = await _count(app.db, Event) - events_before
    notices = await _count(app.db, Delivery)
    baseline = await _raw_fire(scratch, [int(i) for i in due_ids if i is not None])
    rate = settled / seconds if seconds else None
    log(f"  fired {settled} timers in {seconds:.2f}s ({passes} passes); raw marking {baseline:.2f}s")
    notes = [
        f"{settled} settled ({fired} fired) in {seconds:.1f} s, {passes} passes; "
        f"{events} audit events and {notices} outbox rows (team notices) written",
        f"{counter.count / max(settled, 1):.1f} SQL statements per timer "
        f"({seconds / max(counter.count, 1) * 1000:.2f} ms per statement)",
    ]
    if settled < len(due_ids):
        notes.append(
            f"stopped after {limit:g} s with {len(due_ids) - settled} still due: the rate is over the "
            "first ones (it is steady: every pass does the same work)"
        )
    return Result(
        SCENARIO,
        "fired_per_second",
        f"Timers fired per second ({len(due_ids):,} due at once)",
        rate,
        "timers/s",
        "higher",
        baseline=len(due_ids) / baseline if baseline else None,
        baseline_label="raw UPDATE marking the same timers fired, 100 per transaction",
        goal=Goal(">=", 5_000, ">= 5,000 timers/s"),
        size=size,
        notes=notes,
    )


async def _raw_fire(scratch: Scratch, ids: list[int]) -> float:
    if not ids:
        return 0.0
    fired_at = NOW.strftime("%Y-%m-%d %H:%M:%S.%f")
    if scratch.path is not None:
        conn = sqlite3.connect(scratch.path, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            started = time.perf_counter()
            for start in range(0, len(ids), 100):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "UPDATE timers SET status = 'fired', fired_at = ?, claimed_by = 'raw' WHERE id = ?",
                    [(fired_at, i) for i in ids[start : start + 100]],
                )
                conn.execute("COMMIT")
            return time.perf_counter() - started
        finally:
            conn.close()
    conn = await _pg(scratch.url)
    try:
        started = time.perf_counter()
        for start in range(0, len(ids), 100):
            async with conn.transaction():
                await conn.executemany(
                    "UPDATE timers SET status = 'fired', fired_at = $1, claimed_by = 'raw' WHERE id = $2",
                    [(NOW, i) for i in ids[start : start + 100]],
                )
        return time.perf_counter() - started
    finally:
        await conn.close()


# --- idle CPU ----------------------------------------------------------------------------------------------


async def _idle(app: App, notifier: Any, size: dict[str, Any], window: float) -> Result:
    # Timers the capped firing phase left due would keep the loop busy: they are set aside (not timed).
    async with app.db.transaction() as session:
        done: Any = await session.execute(
            update(Timer)
            .where(col(Timer.status) == TimerStatus.PENDING.value, col(Timer.due_at) <= app.clock.now())
            .values(status=TimerStatus.CANCELLED.value)
        )
        left = int(done.rowcount or 0)
    if left:
        log(f"  {left} timers still due after the firing phase were cancelled before idling")
    scheduler = SlaScheduler(app.db, app.clock, app.sla, "bench-idle", notify=notifier.sla_notify)
    stop = asyncio.Event()
    task = asyncio.ensure_future(scheduler.run(stop, asyncio.Event()))
    await asyncio.sleep(1.0)  # its first pass (and whatever start-up costs) is not idling
    cpu = time.process_time()
    await asyncio.sleep(window)
    idle_cpu = time.process_time() - cpu
    stop.set()
    await task
    cpu = time.process_time()
    for _ in range(PASSES_MEASURED):
        await scheduler.run_once()
        await scheduler.next_due()
    per_pass = (time.process_time() - cpu) / PASSES_MEASURED
    passes_per_minute = 60 / scheduler.poll_interval
    per_minute = idle_cpu / window * 60 + passes_per_minute * per_pass
    cpu = time.process_time()
    await asyncio.sleep(window)
    floor = (time.process_time() - cpu) / window * 60
    share, floor_share = 100 * per_minute / 60, 100 * floor / 60
    log(
        f"  idle: {per_minute * 1000:.1f} ms CPU a minute ({share:.3f} % of a core); "
        f"pass {per_pass * 1000:.2f} ms; bare loop {floor * 1000:.1f} ms"
    )
    return Result(
        SCENARIO,
        "idle_cpu_percent",
        "Scheduler CPU with nothing due (% of a core)",
        share,
        "%",
        "lower",
        baseline=floor_share if floor_share > 0 else None,
        baseline_label="an idle asyncio loop, same window",
        goal=Goal("<", 1.0, "< 1 % of a core"),
        size=size,
        notes=[
            f"{idle_cpu * 1000:.1f} ms CPU in a {window:g} s window, scaled to a minute, plus "
            f"{passes_per_minute:g} passes a minute at {per_pass * 1000:.2f} ms each"
        ],
    )
