"""The weekly post: due at the configured local weekday and time, queued once per team chat and week,
after a restart (late), with two workers racing, and when a worker dies holding the claim."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import Awaitable, Callable, Sized
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Outbound, Receipt
from inbox.models import Delivery, Event, Timer, TimerStatus
from inbox.outbox import Dispatcher
from inbox.reports.config import ReportSettings
from inbox.reports.job import (
    POSTED_EVENT,
    REPORT_TIMER,
    WeeklyReportJob,
    delivery_key,
    next_posting,
    posting_time,
)
from inbox.reports.period import parse_week
from inbox.settings import Settings
from tests.factories import make_settings, seed
from tests.reports.scenario import TZ, local

CHATS = [{"name": "ops", "channel": "support", "chat_id": "-100"},
         {"name": "leads", "channel": "support", "chat_id": "-200", "language": "id"}]


def settings(**reports: Any) -> Settings:
    return make_settings(general={"timezone": TZ}, team_chats=CHATS, reports=reports)


@pytest.fixture
async def conf(db: Database, clock: FakeClock) -> Settings:
    return await seed(db, clock, settings())


async def deliveries(db: Database) -> list[Delivery]:
    async with db.sessions() as session:
        return list((await session.execute(select(Delivery).order_by(col(Delivery.id)))).scalars())


async def report_timers(db: Database) -> list[Timer]:
    async with db.sessions() as session:
        query = select(Timer).where(col(Timer.kind) == REPORT_TIMER).order_by(col(Timer.due_at))
        return list((await session.execute(query)).scalars())


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_posting_time_is_the_configured_local_weekday_after_the_week() -> None:
    week = parse_week("2026-W47", TZ)
    assert posting_time(week, ReportSettings()) == local("2026-11-23 09:00")  # Monday 09:00 WIB
    wednesday = ReportSettings(weekly_day="wed", weekly_time="14:30")
    assert posting_time(week, wednesday) == local("2026-11-25 14:30")
    conf = ReportSettings()
    assert next_posting(local("2026-11-23 08:59"), TZ, conf) == (week, local("2026-11-23 09:00"))
    later, due = next_posting(local("2026-11-23 09:00"), TZ, conf)  # this week's is due now: the next one
    assert (later.label, due) == ("2026-W48", local("2026-11-30 09:00"))


async def test_a_post_due_while_down_goes_out_once_late_after_the_restart(
    db: Database, clock: FakeClock, conf: Settings
) -> None:
    clock.set(local("2026-11-22 12:00"))  # Sunday: the process starts and plans Monday's post
    first = WeeklyReportJob(db, clock, conf, "w1")
    assert await first.ensure_timer() == local("2026-11-23 09:00")
    assert (await first.run_once()).weeks == []
    # The process is down from Sunday until Monday 15:00, six hours after the post was due.
    clock.set(local("2026-11-23 15:00"))
    second = WeeklyReportJob(db, clock, conf, "w2")
    await second.ensure_timer()  # plans W48; W47's timer is still pending
    posted = await second.run_once()
    assert posted.weeks == ["2026-W47"]
    rows = await deliveries(db)
    assert sorted((d.destination, d.purpose, d.dedupe_key) for d in rows) == [
        ("team:leads", "report", "report:weekly:leads:2026-W47"),
        ("team:ops", "report", "report:weekly:ops:2026-W47"),
    ]
    by_chat = {d.destination: d.payload for d in rows}
    ops, leads = by_chat["team:ops"], by_chat["team:leads"]
    assert ops["text"].startswith("Weekly report 2026-W47 (2026-11-16 to 2026-11-22, Asia/Jakarta)")
    assert leads["text"].startswith("Laporan mingguan 2026-W47")
    assert ops["view"]["$type"] == "ReportView" and ops["chat_id"] == "-100"
    image = base64.b64decode(ops["image_png_b64"])
    assert png_size(image) == (1200, 675) and len(image) < 200_000
    assert ops["image_mime"] == "image/png" and ops["image_name"] == "saluran-report-2026-W47.png"
    assert len(ops["image_caption"]) <= 1024 and len(ops["text"]) <= 2000  # Telegram caption, Discord message
    timers = await report_timers(db)
    assert [(t.data["week"], t.status, t.late, t.claimed_by) for t in timers] == [
        ("2026-W47", TimerStatus.FIRED.value, True, "w2"),
        ("2026-W48", TimerStatus.PENDING.value, False, None),
    ]
    # Another restart, another worker: nothing more goes out.
    assert (await WeeklyReportJob(db, clock, conf, "w3").run_once()).weeks == []
    assert (await second.run_once()).weeks == []
    assert len(await deliveries(db)) == 2
    async with db.sessions() as session:
        events = list((await session.execute(select(Event).where(col(Event.type) == POSTED_EVENT))).scalars())
    assert len(events) == 1 and events[0].data["late"] is True and events[0].data["week"] == "2026-W47"


async def test_two_workers_racing_post_once(
    db_url: str, db: Database, clock: FakeClock, conf: Settings
) -> None:
    clock.set(local("2026-11-23 08:00"))
    await WeeklyReportJob(db, clock, conf, "setup").ensure_timer()
    clock.set(local("2026-11-23 09:00"))
    other = Database(db_url)  # a second process: its own engine and connections
    try:
        jobs = [WeeklyReportJob(db, clock, conf, "a"), WeeklyReportJob(other, clock, conf, "b")]
        results = await asyncio.gather(*(job.run_once() for job in jobs))
    finally:
        await other.dispose()
    assert sorted(week for result in results for week in result.weeks) == ["2026-W47"]
    rows = await deliveries(db)
    assert sorted(d.dedupe_key or "" for d in rows) == [delivery_key("leads", parse_week("2026-W47", TZ)),
                                                       delivery_key("ops", parse_week("2026-W47", TZ))]


async def test_a_claim_whose_worker_died_is_taken_over_after_the_lease(
    db: Database, clock: FakeClock, conf: Settings
) -> None:
    clock.set(local("2026-11-23 08:00"))
    dead = WeeklyReportJob(db, clock, conf, "dead", lease=timedelta(minutes=10))
    await dead.ensure_timer()
    clock.set(local("2026-11-23 09:00"))
    claim = await dead._claim()  # it claims the week, then its process dies before posting
    assert claim is not None
    alive = WeeklyReportJob(db, clock, conf, "alive", lease=timedelta(minutes=10))
    assert (await alive.run_once()).weeks == []  # the lease still holds
    clock.advance(timedelta(minutes=11))
    assert (await alive.run_once()).weeks == ["2026-W47"]
    # Had the first worker only been slow, its late finish is fenced off: no second copy.
    assert await dead._post(claim) is None
    assert len(await deliveries(db)) == 2


async def test_a_failing_pass_gives_the_timer_back(db: Database, clock: FakeClock, conf: Settings,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    clock.set(local("2026-11-23 08:00"))
    job = WeeklyReportJob(db, clock, conf, "w", retry_delay=timedelta(minutes=5))
    await job.ensure_timer()
    clock.set(local("2026-11-23 09:00"))

    async def broken(report: Any) -> dict[str, Any]:
        raise RuntimeError("chart failed")

    monkeypatch.setattr(job, "_payloads", broken)
    assert (await job.run_once()).weeks == []
    (timer, *_rest) = await report_timers(db)
    assert (timer.status, timer.due_at, timer.data["errors"]) == ("pending", local("2026-11-23 09:05"), 1)
    assert await deliveries(db) == []


class Recorder:
    """A team chat's Sender that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[Outbound] = []

    async def send(self, outbound: Outbound) -> Receipt:
        self.sent.append(outbound)
        return Receipt(platform_message_id=str(len(self.sent)))


async def soon(check: Callable[[], Awaitable[Sized]], seconds: float = 30) -> bool:
    """Poll ``check`` until it returns something non-empty or ``seconds`` of wall time pass."""
    deadline = time.monotonic() + seconds
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)


class _ClockMovesDuringTheQuery(WeeklyReportJob):
    """Moves the clock to the due time while the loop asks when the next week is due (what a test that
    sets the clock, or real time passing, can do at that moment)."""

    moved = False

    async def next_due(self) -> datetime | None:
        due = await super().next_due()
        if due is not None and not self.moved:
            self.clock.set(due)
            self.moved = True
        return due


async def test_a_week_that_comes_due_while_the_loop_looks_goes_out_without_the_clock_moving_again(
    db: Database, clock: FakeClock
) -> None:
    # The loop once slept "at least 0.01 s" of clock time when the week was already due: on a clock
    # that does not move on (the report job test's intermittent failure) it never woke.
    conf = await seed(db, clock, make_settings(general={"timezone": TZ}, team_chats=CHATS[:1]))
    clock.set(local("2026-11-23 08:30"))
    stop = asyncio.Event()
    task = asyncio.create_task(_ClockMovesDuringTheQuery(db, clock, conf, "looker").run(stop))
    try:
        await soon(lambda: deliveries(db), seconds=15)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert clock.now() == local("2026-11-23 09:00")
    assert [d.dedupe_key for d in await deliveries(db)] == ["report:weekly:ops:2026-W47"]


async def test_the_loop_posts_at_the_time_and_a_sender_finds_the_image(
    db: Database, clock: FakeClock
) -> None:
    conf = await seed(db, clock, make_settings(general={"timezone": TZ}, team_chats=CHATS[:1]))
    clock.set(local("2026-11-23 08:30"))
    job = WeeklyReportJob(db, clock, conf, "loop")
    stop = asyncio.Event()
    task = asyncio.create_task(job.run(stop))
    try:
        # Deadlines rather than counts of polls: on a loaded machine the job's start and the chart's
        # rendering can take seconds; the loop stops as soon as each step is seen.
        assert await soon(lambda: report_timers(db)), "the job planned no report timer"
        assert await deliveries(db) == []
        clock.set(local("2026-11-23 09:00"))
        await soon(lambda: deliveries(db))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert [d.dedupe_key for d in await deliveries(db)] == ["report:weekly:ops:2026-W47"]
    chat = Recorder()
    await Dispatcher(db, clock, {"team:ops": chat}, worker_id="d").run_once()
    (outbound,) = chat.sent
    assert outbound.purpose == "report" and outbound.text.startswith("Weekly report 2026-W47")
    assert png_size(base64.b64decode(outbound.extra["image_png_b64"])) == (1200, 675)
    assert outbound.extra["chat_id"] == "-100"
