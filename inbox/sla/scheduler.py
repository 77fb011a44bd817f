"""The durable timer loop: sleep until the earliest due timer (or a wake-up), then fire what is due.

A pass claims due rows ordered by ``due_at`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` serialises passes) and fires them in the same transaction: the row becomes
``fired`` together with the audit event, the conversation's changes and the queued notification. So a
timer fires exactly once, even with several schedulers, and one that came due while no scheduler ran
fires once at the next pass, marked ``late``. The ``firing`` status and the lease columns are not
needed by this design (nothing is held between transactions); they stay for other timer users.

The claimed batch fires as a batch (``inbox.sla.batch_fire``: a few statements for the whole batch, the
notices handed to the notifier at once) inside a SAVEPOINT. A timer that raises is rolled back with it,
set aside and the others fire again as a batch; any other failure falls back to one SAVEPOINT per timer.
Either way a timer that raises (a broken notifier) is retried later with a backoff and cancelled after a
few attempts, instead of blocking the others.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.audit import record
from inbox.clock import Clock, clock_wait, isoformat_utc, real_pause
from inbox.db import Database
from inbox.events import Actor
from inbox.models import Timer, TimerStatus
from inbox.sla.batch_fire import NotifyMany, TimerFailed, fire_batch, notify_many_of
from inbox.sla.engine import Notify, Outcome, SlaEngine, no_notify
from inbox.sla.rows import TimerRow, claim_timers, first_due, timers_by_id

log = logging.getLogger(__name__)

DEFAULT_GRACE: Final = timedelta(seconds=60)
# Real seconds to wait when due rows exist but could not be taken (another scheduler holds them, or
# an action holds their conversation): long enough not to spin, short next to any SLA.
BUSY_RETRY: Final = 0.05
_ACTOR: Final = Actor.system("scheduler")
# Batch attempts per pass: each failing timer is set aside and the rest tried again as a batch; past
# this many, the rest fire one by one.
BATCH_ATTEMPTS: Final = 3
# Passes side by side on PostgreSQL while a backlog is due (see SlaScheduler.passes_at_once).
BACKLOG_PASSES_POSTGRES: Final = 2


class SlaScheduler:
    """Fires due SLA and snooze timers; ``run`` is the long-running loop, ``run_once`` one pass."""

    def __init__(
        self, db: Database, clock: Clock, engine: SlaEngine, worker_id: str = "scheduler", *,
        notify: Notify = no_notify, batch_size: int = 500, grace: timedelta = DEFAULT_GRACE,
        poll_interval: float = 30.0, retry_delay: timedelta = timedelta(minutes=1), max_errors: int = 5,
        notify_many: NotifyMany | None = None, passes_at_once: int | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.engine = engine
        self.worker_id = worker_id
        self.notify = notify
        # The batch form of notify; None: derived from ``notify`` at each pass (see notify_many_of).
        self.notify_many = notify_many
        # 500 a pass: per-batch costs (round trips, the digest's rewrite, the commit) spread over more
        # timers, while a pass still holds SQLite's write lock only about 0.1 s in a burst.
        self.batch_size = batch_size
        self.grace = grace
        # Timers made by other processes cannot set our wake event; look again at least this often.
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.max_errors = max_errors
        # Passes run side by side while a backlog is due. On PostgreSQL SKIP LOCKED gives each pass
        # its own timers and conversations, and one pass's round trips to the server overlap another's
        # Python work; SQLite's writers queue for one lock, so there a second pass would only wait.
        self.passes_at_once = passes_at_once or (BACKLOG_PASSES_POSTGRES if db.is_postgres else 1)
        self.last_claimed = 0
        self.last_busy = 0
        self.passes = 0  # passes run so far (for diagnostics and the benchmark)

    async def run_once(self) -> int:
        """Claim and fire one batch of due timers in one transaction; return how many were settled."""
        settled, self.last_claimed, self.last_busy = await self._pass()
        return settled

    async def drain(self, stop: asyncio.Event | None = None) -> int:
        """Fire a backlog: ``passes_at_once`` workers, each running passes until one claims less than a
        full batch (or ``stop`` is set); the timers settled by all.

        Each worker's passes follow one another, so the workers drift apart: one claims and fires while
        another waits on the server or for the team chat's budget lock (``notify.budget``).
        """
        self.last_busy = 0

        async def worker() -> int:
            settled = 0
            while stop is None or not stop.is_set():
                done, self.last_claimed, busy = await self._pass()
                settled, self.last_busy = settled + done, self.last_busy + busy
                if self.last_claimed < self.batch_size:
                    break
            return settled

        if self.passes_at_once <= 1:
            return await worker()
        # Every worker runs to its end before an error is raised: none is left running unawaited.
        done = await asyncio.gather(*(worker() for _ in range(self.passes_at_once)), return_exceptions=True)
        failed = [d for d in done if isinstance(d, BaseException)]
        if failed:
            raise failed[0]
        return sum(d for d in done if not isinstance(d, BaseException))

    async def _pass(self) -> tuple[int, int, int]:
        """One pass: (timers settled, timers claimed, timers whose conversation another pass held)."""
        now = self.clock.now()
        self.passes += 1
        async with self.db.transaction() as session:
            timers = await claim_timers(session, self.engine.timer_kinds, now, self.batch_size,
                                        skip_locked=self.db.is_postgres)
            outcomes = await self._fire_claimed(session, timers, now) if timers else []
        busy = outcomes.count(Outcome.BUSY)
        return len(outcomes) - outcomes.count(None) - busy, len(timers), busy

    async def _fire_claimed(
        self, session: AsyncSession, timers: list[TimerRow], now: datetime
    ) -> list[Outcome | None]:
        """Fire the claimed timers as a batch, inside a SAVEPOINT; an outcome per timer (None: skipped).

        A timer that raises is rolled back with its batch, counted as failed (retried later) and the
        others go again as a batch; any other failure, or a third attempt, falls back to one SAVEPOINT
        per timer.
        """
        notify_many = self.notify_many or notify_many_of(self.notify)
        done: dict[int | None, Outcome | None] = {}
        todo = list(timers)
        for _attempt in range(BATCH_ATTEMPTS):
            if not todo:
                break
            try:
                async with session.begin_nested():
                    outcomes = await fire_batch(self.engine, session, todo, now, notify=self.notify,
                                                notify_many=notify_many, worker_id=self.worker_id,
                                                grace=self.grace)
            except TimerFailed as failed:
                log.error("scheduler %s: %s", self.worker_id, failed, exc_info=failed.__cause__)
                await self._failed(session, await _orm_timer(session, failed.timer), now)
                await session.flush()  # before the next attempt reads and writes timer rows itself
                done[failed.timer.id] = Outcome.VOID
                # The rolled-back attempt changed the rows in memory: read the rest as they are again.
                todo = await timers_by_id(session, [t.id for t in todo if t is not failed.timer and t.id])
                continue
            except Exception:
                log.exception("scheduler %s: a batch of %d timers failed; firing them one by one",
                              self.worker_id, len(todo))
                break
            done.update(zip((t.id for t in todo), outcomes, strict=True))
            todo = []
        if todo:  # the fallback: each in its own SAVEPOINT, so one cannot block the others
            batch = await _orm_timers(session, [t.id for t in todo if t.id is not None])
            for timer in batch:
                if timer.status != TimerStatus.PENDING.value:
                    done[timer.id] = None  # replanned away by an earlier timer of the same conversation
                else:
                    done[timer.id] = await self._fire(session, timer, now, batch)
        return [done.get(t.id) for t in timers]

    async def _fire(self, session: AsyncSession, timer: Timer, now: datetime, batch: list[Timer]) -> Outcome:
        late = now - timer.due_at > self.grace
        try:
            async with session.begin_nested():
                return await self.engine.fire(session, timer, now, notify=self.notify,
                                              worker_id=self.worker_id, late=late)
        except Exception:
            log.exception("scheduler %s: timer #%s (%s) failed", self.worker_id, timer.id, timer.kind)
            await _reload(session, batch)
            await self._failed(session, timer, now)
            return Outcome.VOID

    async def _failed(self, session: AsyncSession, timer: Timer, now: datetime) -> None:
        errors = int(timer.data.get("errors", 0)) + 1
        timer.data = {**timer.data, "errors": errors}
        if errors >= self.max_errors:
            timer.status = TimerStatus.CANCELLED.value
            await record(session, _ACTOR, "timer.failed", now, timer.conversation_id, timer_id=timer.id,
                         kind=timer.kind, errors=errors, due_at=isoformat_utc(timer.due_at))
        else:
            timer.due_at = now + self.retry_delay * errors

    async def next_due(self) -> datetime | None:
        """The earliest pending due time of the kinds we fire: one query on the (status, due_at) index,
        standing alone (no transaction: on SQLite it neither waits for a writer nor holds one up)."""
        async with self.db.lone_reads() as session:
            return await first_due(session, self.engine.timer_kinds)

    async def run(self, stop: asyncio.Event, wake: asyncio.Event | None = None) -> None:
        """Fire timers until ``stop``, sleeping until the next due one or ``wake`` (default: the engine's)."""
        wake = wake if wake is not None else self.engine.wake
        while not stop.is_set():
            wake.clear()  # before the pass: a wake during the pass makes the next wait return at once
            try:
                settled = await self.run_once()
                if self.last_claimed >= self.batch_size:  # more may be due right now
                    settled += await self.drain(stop)
                due = await self.next_due()
            except Exception:
                log.exception("scheduler %s: pass failed; trying again in %gs", self.worker_id,
                              self.poll_interval)
                await clock_wait(self.clock, self.poll_interval, stop, wake)
                continue
            delay = self.poll_interval
            if due is not None:
                delay = min(delay, (due - self.clock.now()).total_seconds())
            if delay <= 0:
                if self.last_busy or not settled:
                    await real_pause(BUSY_RETRY, stop)  # due rows held by someone else: do not spin
                continue
            await clock_wait(self.clock, delay, stop, wake)


async def _orm_timers(session: AsyncSession, ids: list[int]) -> list[Timer]:
    """The claimed timers as ORM objects read afresh (what the one-by-one path works on), in ``ids`` order."""
    query = select(Timer).where(col(Timer.id).in_(ids)).execution_options(populate_existing=True)
    found = {t.id: t for t in (await session.execute(query)).scalars()}
    return [found[i] for i in ids if i in found]


async def _orm_timer(session: AsyncSession, row: TimerRow) -> Timer:
    """One claimed timer as an ORM object, as the database holds it."""
    assert row.id is not None
    [timer] = await _orm_timers(session, [row.id])
    return timer


async def _reload(session: AsyncSession, timers: list[Timer]) -> None:
    """A rolled-back savepoint expired what it touched: reload the claimed timers (one query) before
    anything reads them."""
    ids = [inspect(t).identity[0] for t in timers]  # reading ``t.id`` of an expired row would load it
    query = select(Timer).where(col(Timer.id).in_(ids))
    await session.execute(query.execution_options(populate_existing=True))
