"""The durable timer loop: sleep until the earliest due timer (or a wake-up), then fire what is due.

A pass claims due rows ordered by ``due_at`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` serialises passes) and fires them in the same transaction: the row becomes
``fired`` together with the audit event, the conversation's changes and the queued notification. So a
timer fires exactly once, even with several schedulers, and one that came due while no scheduler ran
fires once at the next pass, marked ``late``. The ``firing`` status and the lease columns are not
needed by this design (nothing is held between transactions); they stay for other timer users.

Each timer fires inside a SAVEPOINT: one that raises (a broken notifier) is retried later with a
backoff and cancelled after a few attempts, instead of rolling back and blocking the whole batch.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.audit import record
from inbox.clock import Clock, isoformat_utc
from inbox.db import Database
from inbox.events import Actor
from inbox.models import Timer, TimerStatus
from inbox.sla.engine import Notify, Outcome, SlaEngine, no_notify

log = logging.getLogger(__name__)

DEFAULT_GRACE: Final = timedelta(seconds=60)
# Real seconds to wait when due rows exist but could not be taken (another scheduler holds them, or
# an action holds their conversation): long enough not to spin, short next to any SLA.
BUSY_RETRY: Final = 0.05
_ACTOR: Final = Actor.system("scheduler")


class SlaScheduler:
    """Fires due SLA and snooze timers; ``run`` is the long-running loop, ``run_once`` one pass."""

    def __init__(
        self, db: Database, clock: Clock, engine: SlaEngine, worker_id: str = "scheduler", *,
        notify: Notify = no_notify, batch_size: int = 100, grace: timedelta = DEFAULT_GRACE,
        poll_interval: float = 30.0, retry_delay: timedelta = timedelta(minutes=1), max_errors: int = 5,
    ) -> None:
        self.db = db
        self.clock = clock
        self.engine = engine
        self.worker_id = worker_id
        self.notify = notify
        self.batch_size = batch_size
        self.grace = grace
        # Timers made by other processes cannot set our wake event; look again at least this often.
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.max_errors = max_errors
        self.last_claimed = 0
        self.last_busy = 0

    async def run_once(self) -> int:
        """Claim and fire one batch of due timers in one transaction; return how many were settled."""
        now = self.clock.now()
        settled = busy = 0
        async with self.db.transaction() as session:
            query = (
                select(Timer)
                .where(col(Timer.status) == TimerStatus.PENDING.value,
                       col(Timer.due_at) <= now,
                       col(Timer.kind).in_(self.engine.timer_kinds))
                .order_by(col(Timer.due_at), col(Timer.id))
                .limit(self.batch_size)
            )
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            timers = list((await session.execute(query)).scalars().all())
            for timer in timers:
                if timer.status != TimerStatus.PENDING.value:
                    continue  # replanned away by an earlier timer of the same conversation in this batch
                outcome = await self._fire(session, timer, now, timers)
                if outcome is Outcome.BUSY:
                    busy += 1
                else:
                    settled += 1
        self.last_claimed, self.last_busy = len(timers), busy
        return settled

    async def _fire(self, session: AsyncSession, timer: Timer, now: datetime, batch: list[Timer]) -> Outcome:
        late = now - timer.due_at > self.grace
        try:
            async with session.begin_nested():
                return await self.engine.fire(session, timer, now, notify=self.notify,
                                              worker_id=self.worker_id, late=late)
        except Exception:
            log.exception("scheduler %s: timer #%s (%s) failed", self.worker_id, timer.id, timer.kind)
            # The rolled-back savepoint expired what it touched; reload before anything reads it.
            for row in batch:
                await session.refresh(row)
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
        """The earliest pending due time of the kinds we fire: one query on the (status, due_at) index."""
        async with self.db.transaction() as session:
            due: datetime | None = await session.scalar(
                select(col(Timer.due_at))
                .where(col(Timer.status) == TimerStatus.PENDING.value,
                       col(Timer.kind).in_(self.engine.timer_kinds))
                .order_by(col(Timer.due_at))
                .limit(1)
            )
        return due

    async def run(self, stop: asyncio.Event, wake: asyncio.Event | None = None) -> None:
        """Fire timers until ``stop``, sleeping until the next due one or ``wake`` (default: the engine's)."""
        wake = wake if wake is not None else self.engine.wake
        while not stop.is_set():
            wake.clear()  # before the pass: a wake during the pass makes the next wait return at once
            try:
                settled = await self.run_once()
                if self.last_claimed >= self.batch_size:
                    continue  # more may be due right now
                due = await self.next_due()
            except Exception:
                log.exception("scheduler %s: pass failed; trying again in %gs", self.worker_id,
                              self.poll_interval)
                await self._wait(self.poll_interval, stop, wake)
                continue
            delay = self.poll_interval
            if due is not None:
                delay = min(delay, (due - self.clock.now()).total_seconds())
            if delay <= 0:
                if self.last_busy or not settled:
                    await _real_pause(BUSY_RETRY, stop)  # due rows held by someone else: do not spin
                continue
            await self._wait(delay, stop, wake)

    async def _wait(self, seconds: float, stop: asyncio.Event, wake: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(self.clock.sleep(seconds)), asyncio.ensure_future(stop.wait()),
                   asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)


async def _real_pause(seconds: float, stop: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
