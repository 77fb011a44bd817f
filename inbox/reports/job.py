"""The weekly post: at ``[reports] weekly_day``/``weekly_time`` (team timezone) the summary of the week just
ended goes to every team chat, as text plus the chart, through the outbox, exactly once per week.

How exactly once holds across restarts and several workers:

- Each week's post is a durable ``Timer`` row (kind ``report.weekly``, dedupe key
  ``report.weekly:<week>``): inserting it twice is a no-op, so every worker may ensure it at start.
  A timer that came due while nothing ran is still pending at the next start and fires then, late.
- A worker claims a due timer like the SLA scheduler does (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
  SQLite's ``BEGIN IMMEDIATE`` serialises writers), marks it ``firing`` with a lease, and commits, so
  the slow part (queries, chart) holds no lock. If the worker dies, another takes the timer over when
  the lease ends.
- The posts are queued in one transaction with the timer's ``fired`` mark and the next week's timer,
  fenced on the claim; each outbox row carries the dedupe key ``report:weekly:<team>:<week>``, so even a
  worker whose lease was taken over cannot queue a second copy.

After an outage of several weeks only the oldest missed week is posted (late); ``inbox report weekly
--week`` prints the others.

The payload of each post: ``view`` (the ReportView, see inbox.view_codec), ``text`` (rendered in the
chat's language, at most about 1,500 characters), ``chat_id``, ``mentions`` (empty) and the chart:
``image_png_b64`` (base64 of a 1200x675 PNG, about 60-100 KB encoded), ``image_name``, ``image_mime``
and ``image_caption`` (short enough for a Telegram photo caption, 1,024 characters).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.audit import record
from inbox.clock import Clock, clock_wait, isoformat_utc, real_pause
from inbox.db import Database
from inbox.events import Actor
from inbox.i18n import t
from inbox.models import Timer, TimerStatus
from inbox.notify.chats import TeamChat, team_chats
from inbox.outbox import enqueue
from inbox.render_text import render
from inbox.reports.chart import render_chart
from inbox.reports.config import ReportSettings
from inbox.reports.numbers import Report, compute_report
from inbox.reports.period import Period, iso_week_of, local_midnight, parse_week, week_just_ended
from inbox.reports.present import report_view
from inbox.settings import Settings
from inbox.view_codec import dump

log = logging.getLogger(__name__)

REPORT_TIMER: Final = "report.weekly"
PURPOSE: Final = "report"
POSTED_EVENT: Final = "report.posted"
FAILED_EVENT: Final = "report.failed"
DEFAULT_LEASE: Final = timedelta(minutes=10)
DEFAULT_GRACE: Final = timedelta(seconds=60)
# Real seconds between passes while a due week cannot be posted yet (another worker holds its claim).
BUSY_RETRY: Final = 0.05
_ACTOR: Final = Actor.system("reports")


def timer_key(period: Period) -> str:
    """The Timer dedupe key of a week's post."""
    return f"{REPORT_TIMER}:{period.label}"


def delivery_key(team: str, period: Period) -> str:
    """The outbox dedupe key of a week's post to one team chat."""
    return f"report:weekly:{team}:{period.label}"


def posting_time(week: Period, conf: ReportSettings) -> datetime:
    """When a week's summary is due: the first configured weekday and time after the week ended."""
    monday_after = week.local_end().date()
    day = monday_after + timedelta(days=conf.weekday)
    return local_midnight(day, week.timezone) + timedelta(hours=conf.at.hour, minutes=conf.at.minute)


def next_posting(now: datetime, timezone: str, conf: ReportSettings) -> tuple[Period, datetime]:
    """The week whose post comes next after ``now``, and when."""
    week = week_just_ended(now, timezone)
    due = posting_time(week, conf)
    if due <= now:
        week = iso_week_of(week.local_end().date(), timezone)
        due = posting_time(week, conf)
    return week, due


@dataclass
class Posted:
    """What one pass did: which weeks were posted, to which chats."""

    weeks: list[str] = field(default_factory=list)
    deliveries: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Claim:
    timer_id: int
    week: str
    due_at: datetime


class WeeklyReportJob:
    """Posts the weekly summary once per week; ``run`` is the loop of ``inbox run``, ``run_once`` one pass."""

    def __init__(
        self, db: Database, clock: Clock, settings: Settings, worker_id: str = "reports", *,
        chats: Iterable[TeamChat] | None = None, lease: timedelta = DEFAULT_LEASE,
        grace: timedelta = DEFAULT_GRACE, poll_interval: float = 300.0,
        retry_delay: timedelta = timedelta(minutes=5), max_errors: int = 5,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.conf = settings.reports
        self.timezone = settings.general.timezone
        self.worker_id = worker_id
        self.chats = list(chats) if chats is not None else team_chats(settings)
        self.policies = settings.sla.compile()
        self.lease = lease
        self.grace = grace
        # Timers made by another process cannot wake this one; look again at least this often.
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.max_errors = max_errors

    # --- the timer row ---

    async def ensure_timer(self) -> datetime:
        """Make sure the next week's timer exists (no-op if another worker made it); return its due time."""
        week, due = next_posting(self.clock.now(), self.timezone, self.conf)
        async with self.db.transaction() as session:
            await self._insert_timer(session, week, due)
        return due

    async def _insert_timer(self, session: AsyncSession, week: Period, due: datetime) -> None:
        values = {
            "kind": REPORT_TIMER, "dedupe_key": timer_key(week), "data": {"week": week.label},
            "due_at": due, "status": TimerStatus.PENDING.value, "late": False, "created_at": self.clock.now(),
        }
        upsert = postgresql.insert if self.db.is_postgres else sqlite.insert
        await session.execute(
            upsert(Timer).values(values).on_conflict_do_nothing(index_elements=["dedupe_key"]))

    async def next_due(self) -> datetime | None:
        """The earliest time a report timer needs attention (pending due time, or a claim's lease end)."""
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(col(Timer.status), col(Timer.due_at), col(Timer.lease_until))
                .where(col(Timer.kind) == REPORT_TIMER,
                       col(Timer.status).in_((TimerStatus.PENDING.value, TimerStatus.FIRING.value)))
            )
            times = [lease if status == TimerStatus.FIRING.value else due for status, due, lease in rows]
        known = [time for time in times if time is not None]
        return min(known) if known else None

    # --- one pass ---

    async def run_once(self) -> Posted:
        """Post every week whose timer is due (normally none or one)."""
        posted = Posted()
        while (claim := await self._claim()) is not None:
            try:
                deliveries = await self._post(claim)
            except Exception:
                log.exception("reports %s: posting week %s failed", self.worker_id, claim.week)
                await self._failed(claim)
                break  # try again later, not in a tight loop
            if deliveries is not None:
                posted.weeks.append(claim.week)
                posted.deliveries.extend(deliveries)
        return posted

    async def _claim(self) -> _Claim | None:
        now = self.clock.now()
        due = or_(
            and_(col(Timer.status) == TimerStatus.PENDING.value, col(Timer.due_at) <= now),
            and_(col(Timer.status) == TimerStatus.FIRING.value, col(Timer.lease_until) < now),
        )
        query = (select(Timer).where(col(Timer.kind) == REPORT_TIMER, due)
                 .order_by(col(Timer.due_at), col(Timer.id)).limit(1))
        if self.db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        async with self.db.transaction() as session:
            timer = (await session.execute(query)).scalars().first()
            if timer is None or timer.id is None:
                return None
            if timer.status == TimerStatus.FIRING.value:
                log.warning("reports %s: taking over week %s from %s after its lease ended", self.worker_id,
                            timer.data.get("week"), timer.claimed_by)
            timer.status, timer.claimed_by = TimerStatus.FIRING.value, self.worker_id
            timer.lease_until = now + self.lease
            return _Claim(timer.id, str(timer.data.get("week")), timer.due_at)

    async def _post(self, claim: _Claim) -> list[int] | None:
        """Compute, render and queue one week's posts; None when the claim was lost meanwhile."""
        week = parse_week(claim.week, self.timezone)
        report = await compute_report(self.db, self.policies, week, self.clock.now())
        payloads = await self._payloads(report)
        now = self.clock.now()
        async with self.db.transaction() as session:
            fenced = await session.execute(
                update(Timer).where(col(Timer.id) == claim.timer_id, col(Timer.claimed_by) == self.worker_id,
                                    col(Timer.status) == TimerStatus.FIRING.value)
                .values(status=TimerStatus.FIRED.value, fired_at=now, lease_until=None,
                        late=now - claim.due_at > self.grace)
                .returning(col(Timer.id))
            )
            if fenced.first() is None:
                log.warning("reports %s: week %s was taken over by another worker; not posting",
                            self.worker_id, claim.week)
                return None
            deliveries = []
            for chat in self.chats:
                delivery_id = await enqueue(session, destination=chat.destination, purpose=PURPOSE,
                                            payload=payloads[chat.name], now=now,
                                            dedupe_key=delivery_key(chat.name, week))
                if delivery_id is not None:
                    deliveries.append(delivery_id)
            await record(session, _ACTOR, POSTED_EVENT, now, None, week=claim.week, worker=self.worker_id,
                         chats=[c.name for c in self.chats], deliveries=deliveries,
                         due_at=isoformat_utc(claim.due_at), late=now - claim.due_at > self.grace)
            next_week, next_due = next_posting(now, self.timezone, self.conf)
            await self._insert_timer(session, next_week, next_due)
        log.info("reports %s: week %s posted to %d team chat(s)", self.worker_id, claim.week, len(deliveries))
        return deliveries

    async def _payloads(self, report: Report) -> dict[str, dict[str, Any]]:
        """One payload per chat, each in the chat's language (charts drawn once per language)."""
        charts: dict[str, str] = {}
        out: dict[str, dict[str, Any]] = {}
        for chat in self.chats:
            if chat.lang not in charts:
                png = await asyncio.to_thread(render_chart, report, chat.lang)
                charts[chat.lang] = base64.b64encode(png).decode("ascii")
            view = report_view(report, chat.lang, has_chart=True)
            out[chat.name] = {
                "view": dump(view), "text": render(view), "chat_id": chat.chat_id, "mentions": [],
                "image_png_b64": charts[chat.lang], "image_name": f"saluran-report-{report.period.label}.png",
                "image_mime": "image/png",
                "image_caption": t(chat.lang, "report.caption", label=report.period.label),
            }
        return out

    async def _failed(self, claim: _Claim) -> None:
        """Give the timer back with a growing delay; after ``max_errors`` failures cancel it, audited."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            timer = await session.get(Timer, claim.timer_id, with_for_update=True)
            mine = timer is not None and timer.claimed_by == self.worker_id
            if timer is None or not mine or timer.status != TimerStatus.FIRING.value:
                return
            errors = int(timer.data.get("errors", 0)) + 1
            timer.data = {**timer.data, "errors": errors}
            timer.lease_until = None
            if errors >= self.max_errors:
                timer.status = TimerStatus.CANCELLED.value
                await record(session, _ACTOR, FAILED_EVENT, now, None, week=claim.week, errors=errors)
                next_week, next_due = next_posting(now, self.timezone, self.conf)
                await self._insert_timer(session, next_week, next_due)
            else:
                timer.status = TimerStatus.PENDING.value
                timer.due_at = now + self.retry_delay * errors

    # --- the loop ---

    async def run(self, stop: asyncio.Event) -> None:
        """Post due weeks until ``stop``, sleeping until the next due time (or ``poll_interval``)."""
        while not stop.is_set():
            try:
                await self.ensure_timer()
                await self.run_once()
                due = await self.next_due()
            except Exception:
                log.exception("reports %s: pass failed; trying again in %gs", self.worker_id,
                              self.poll_interval)
                due = None
            delay = self.poll_interval
            if due is not None:
                delay = min(delay, (due - self.clock.now()).total_seconds())
            if delay <= 0:
                # Due already: it came due during the pass (go again at once), or another worker is
                # claiming it. A short real pause either way, not a clock wait: "0.01 s more" never comes on a
                # stopped clock, and the week would wait for the next poll instead of going out now.
                await real_pause(BUSY_RETRY, stop)
                continue
            await clock_wait(self.clock, delay, stop)
