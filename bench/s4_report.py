"""Scenario 4, weekly report: ``compute_report`` for the week just ended over a million stored messages.

Setup (not timed): two weeks of history — the report's week and the week before, which the report also
computes for its comparison — bulk-inserted with the raw driver: conversations with their messages,
audit events (created, messages, resolved, SLA breaches), tags, and SLA clocks kept by the engine's own
rules under the ``standard`` policy with a business-hours calendar, so business-time figures are
computed too. About 70 % of conversations are resolved.

Figure: wall time of ``inbox.reports.numbers.compute_report`` (what ``inbox report weekly`` and the
weekly post call), median of three runs. Baseline: the raw driver running the one GROUP BY over both
weeks' messages that any report needs (messages per channel, direction and hour).
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from datetime import timedelta
from typing import Any, Final

from bench.common import NOW, TIMEZONE, Goal, Result, log
from bench.data import HistoryPlan
from bench.databases import Scratch, bench_settings
from bench.env import BenchEnv
from bench.seeding import seed_world, write_history
from inbox.clock import FakeClock
from inbox.db import Database

SCENARIO: Final = "4-report"
RUNS: Final = 3
MESSAGES_PER_CONVERSATION: Final = 3.75  # what HistoryPlan(mean_messages=4) yields once cut at "now"


async def run(env: BenchEnv) -> list[Result]:
    """Seed two weeks, then time the report."""
    try:
        from inbox.reports.numbers import compute_report
        from inbox.reports.period import week_just_ended
    except ImportError as exc:
        return [
            Result(
                SCENARIO,
                "report_seconds",
                "Weekly report",
                None,
                "s",
                "lower",
                notes=[f"not measured: the report module is not there yet ({exc})"],
            )
        ]
    scratch = await env.scratch("report")
    clock = FakeClock(NOW)
    period = week_just_ended(NOW, TIMEZONE)
    try:
        settings = bench_settings(scratch.url, env.workdir, calendar=True)
        db = Database(scratch.url)
        try:
            world = await seed_world(db, settings, clock)
            plan = HistoryPlan(
                conversations=int(env.sizes.report_messages / MESSAGES_PER_CONVERSATION),
                start=period.previous().start,
                end=period.end,
                now=NOW,
                mean_messages=4.0,
                resolved_share=0.7,
                contacts_per_channel=max(1_000, env.sizes.report_messages // 20),
                with_timers=False,
            )
            written = await write_history(
                scratch,
                world,
                [plan],
                settings.sla.compile(),
                env.seed,
                period.previous().start - timedelta(days=30),
            )
            policies = settings.sla.compile()
            times, report = [], None
            for _ in range(RUNS):
                started = time.perf_counter()
                report = await compute_report(db, policies, period, NOW)
                times.append(time.perf_counter() - started)
        finally:
            await db.dispose()
        baseline = await _raw_group_by(scratch, period.previous().start, period.end)
    finally:
        await scratch.drop()
    seconds = statistics.median(times)
    assert report is not None
    log(
        f"  report: {', '.join(f'{t:.2f}s' for t in times)}; raw GROUP BY {baseline:.2f}s; "
        f"{report.new} new, {report.resolved} resolved, {report.messages_in} messages in"
    )
    return [
        Result(
            SCENARIO,
            "report_seconds",
            f"Weekly report over {written['messages']:,} messages",
            seconds,
            "s",
            "lower",
            baseline=baseline,
            baseline_label="raw GROUP BY over both weeks' messages",
            goal=Goal("<", 3.0, "< 3 s"),
            size={"messages": written["messages"], "rows": written, "period": period.label},
            notes=[
                f"runs: {', '.join(f'{t:.2f} s' for t in times)}",
                f"the week: {report.new} new conversations, {report.resolved} resolved, {report.messages_in} "
                f"messages in, {report.messages_out} out",
            ],
        )
    ]


async def _raw_group_by(scratch: Scratch, start: Any, end: Any) -> float:
    if scratch.path is not None:
        conn = sqlite3.connect(scratch.path)
        try:
            started = time.perf_counter()
            conn.execute(
                "SELECT channel_id, direction, member_id, substr(created_at, 1, 13), count(*) FROM messages "
                "WHERE created_at >= ? AND created_at < ? GROUP BY 1, 2, 3, 4",
                (start.strftime("%Y-%m-%d %H:%M:%S.%f"), end.strftime("%Y-%m-%d %H:%M:%S.%f")),
            ).fetchall()
            return time.perf_counter() - started
        finally:
            conn.close()
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(scratch.url)
    conn = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        started = time.perf_counter()
        await conn.fetch(
            "SELECT channel_id, direction, member_id, "
            "to_char(timezone('UTC', created_at), 'YYYY-MM-DD HH24'), "
            "count(*) FROM messages WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2, 3, 4",
            start,
            end,
        )
        return time.perf_counter() - started
    finally:
        await conn.close()
