"""The outbox: every side effect on a platform is a row first, then a dispatcher sends it.

``enqueue`` adds a row inside the caller's transaction, so a reply and the record of it commit
together. A ``Dispatcher`` claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` serialises claims), commits the claim, sends through the destination's
``Sender`` and records the outcome behind a fence, so a worker whose lease was taken over cannot
overwrite the newer result. Rows are retried with backoff, honour the platform's retry-after,
and end as ``failed`` (never dropped) when they keep failing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypedDict

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.audit import record
from inbox.clock import Clock, clock_wait, isoformat_utc, real_pause
from inbox.db import Database
from inbox.errors import DeliveryNotFound, InvalidAction
from inbox.events import Actor, Outbound, Receipt
from inbox.models import Delivery, DeliveryStatus, Message
from inbox.ports import DeliveryFailed, Paced, RateLimited, Sender
from inbox.settings import OutboxSettings

log = logging.getLogger(__name__)

_OUTBOX = Actor.system("outbox")
_OUTBOUND_KEYS = ("text", "recipient", "reply_to", "thread_key", "kind")
# Errors end up in chat notices and the CLI; a sender that dumps a whole HTTP body must not bloat rows.
MAX_ERROR_LENGTH = 2000
# Real seconds to pause when something looks due but could not be claimed (another worker holds it, or
# a lease ends exactly now): a zero sleep would spin, and a clock wait would never end on a stopped clock.
MIN_IDLE_SLEEP = 0.01
# How long a row for a destination this process cannot send waits before this process takes it anyway
# (and retries it as "no connector", so that it ends failed and reported rather than pending forever).
ORPHAN_GRACE = timedelta(minutes=10)

Jitter = Literal["full", "equal", "none"]
FailedHook = Callable[[AsyncSession, Delivery], Awaitable[None]]


# --- queueing ---------------------------------------------------------------------------------------


# Built once, values bound at execution: building a statement and its cache key per delivery cost more
# than the INSERT itself (every reply, card and notice goes through here).
_INSERT = insert(Delivery).returning(col(Delivery.id))
_UPSERT_PG = (postgresql.insert(Delivery).on_conflict_do_nothing(index_elements=["dedupe_key"])
              .returning(col(Delivery.id)))
_UPSERT_SQLITE = (sqlite.insert(Delivery).on_conflict_do_nothing(index_elements=["dedupe_key"])
                  .returning(col(Delivery.id)))


async def enqueue(
    session: AsyncSession, *, destination: str, purpose: str, payload: Mapping[str, Any], now: datetime,
    conversation_id: int | None = None, message_id: int | None = None, dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Queue one delivery in the caller's transaction; return its id, or None if the dedupe key exists."""
    due = max(now, not_before) if not_before is not None else now
    values = {
        "destination": destination, "purpose": purpose, "payload": dict(payload),
        "conversation_id": conversation_id, "message_id": message_id, "dedupe_key": dedupe_key,
        "status": DeliveryStatus.PENDING.value, "attempts": 0, "next_attempt_at": due, "created_at": now,
    }
    if dedupe_key is None:
        delivery_id: int | None = (await session.execute(_INSERT, values)).scalar_one()
    else:
        upsert = _UPSERT_PG if session.get_bind().dialect.name == "postgresql" else _UPSERT_SQLITE
        delivery_id = (await session.execute(upsert, values)).scalar_one_or_none()
        if delivery_id is None:
            return None
    await record(session, _OUTBOX, "delivery.queued", now, conversation_id, delivery_id=delivery_id,
                 destination=destination, purpose=purpose, dedupe_key=dedupe_key,
                 not_before=isoformat_utc(not_before))
    return delivery_id


def build_outbound(delivery_id: int, destination: str, purpose: str, payload: Mapping[str, Any]) -> Outbound:
    """The Outbound a Sender receives for an outbox row: known payload keys as fields, the rest in extra."""

    def text_or_none(key: str) -> str | None:
        value = payload.get(key)
        return None if value is None else str(value)

    return Outbound(
        delivery_id=delivery_id, destination=destination, purpose=purpose,
        text=str(payload.get("text") or ""),
        recipient=text_or_none("recipient"), reply_to=text_or_none("reply_to"),
        thread_key=text_or_none("thread_key"), kind=text_or_none("kind"),
        extra={k: v for k, v in payload.items() if k not in _OUTBOUND_KEYS},
    )


# --- retry policy -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long apart a failing delivery is retried (exponential backoff with jitter).

    ``equal`` jitter is the default: it waits at least half the backoff, so a flapping platform is
    never hit again at once, while still spreading retries of many rows apart.
    """

    max_attempts: int = 8
    base_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(hours=1)
    jitter: Jitter = "equal"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay <= timedelta(0) or self.max_delay < self.base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError("jitter must be 'full', 'equal' or 'none'")

    @classmethod
    def from_settings(cls, settings: OutboxSettings, *, jitter: Jitter = "equal") -> RetryPolicy:
        """The policy configured in the ``[outbox]`` section."""
        return cls(max_attempts=settings.max_attempts, base_delay=settings.base_delay,
                   max_delay=settings.max_delay, jitter=jitter)

    def ceiling(self, attempts: int) -> timedelta:
        """The un-jittered wait after the ``attempts``-th failed attempt: base * 2^(attempts-1), capped."""
        exponent = min(max(attempts, 1) - 1, 60)  # 2^60 * base is past any cap; avoid overflow
        seconds = min(self.base_delay.total_seconds() * 2.0 ** exponent, self.max_delay.total_seconds())
        return timedelta(seconds=seconds)

    def backoff(self, attempts: int, rng: random.Random) -> timedelta:
        """The jittered wait after the ``attempts``-th failed attempt."""
        top = self.ceiling(attempts).total_seconds()
        if self.jitter == "full":
            return timedelta(seconds=rng.uniform(0.0, top))
        if self.jitter == "equal":
            return timedelta(seconds=top / 2 + rng.uniform(0.0, top / 2))
        return timedelta(seconds=top)

    def exhausted(self, attempts: int) -> bool:
        """True when no attempt is left after ``attempts`` failed ones."""
        return attempts >= self.max_attempts


# --- dispatching ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claim:
    """What a dispatcher holds of a row it claimed; ``attempts`` is the value after the claim (the fence)."""

    id: int
    destination: str
    purpose: str
    payload: dict[str, Any]
    conversation_id: int | None
    message_id: int | None
    attempts: int
    next_attempt_at: datetime
    previous_holder: str | None

    def outbound(self) -> Outbound:
        return build_outbound(self.id, self.destination, self.purpose, self.payload)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """The result of one send attempt."""

    kind: Literal["sent", "rate_limited", "retry", "failed"]
    error: str | None = None
    retry_after: float | None = None
    platform_message_id: str | None = None
    quiet: bool = False  # a wait our own pacing asked for: expected, not worth a warning


class Dispatcher:
    """Claims due outbox rows, sends them through the destination's Sender, and records what happened."""

    def __init__(
        self, db: Database, clock: Clock, senders: Mapping[str, Sender], *, worker_id: str,
        policy: RetryPolicy | None = None, lease: timedelta = timedelta(minutes=2), batch_size: int = 50,
        rng: random.Random | None = None, on_failed: FailedHook | None = None,
        send_timeout: float | None = None, orphan_grace: timedelta = ORPHAN_GRACE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if lease <= timedelta(0):
            raise ValueError("lease must be positive")
        self.db = db
        self.clock = clock
        self.senders = senders
        self.worker_id = worker_id
        self.policy = policy or RetryPolicy()
        self.lease = lease
        self.batch_size = batch_size
        self.rng = rng or random.Random()
        self.on_failed = on_failed
        # Real seconds. Past the lease another worker may take the row over, so waiting longer is moot.
        self.send_timeout = send_timeout if send_timeout is not None else lease.total_seconds()
        self.orphan_grace = orphan_grace
        self._stopping: asyncio.Event | None = None

    @classmethod
    def from_settings(
        cls, db: Database, clock: Clock, senders: Mapping[str, Sender], settings: OutboxSettings, *,
        worker_id: str, rng: random.Random | None = None, on_failed: FailedHook | None = None,
    ) -> Dispatcher:
        """A dispatcher configured by the ``[outbox]`` section."""
        return cls(db, clock, senders, worker_id=worker_id, policy=RetryPolicy.from_settings(settings),
                   lease=settings.lease, batch_size=settings.batch_size, rng=rng, on_failed=on_failed)

    # --- one pass ---

    async def run_once(self) -> int:
        """Claim the due rows, send them, record the outcomes; return how many rows were attempted."""
        claims = await self._claim()
        if not claims:
            return 0
        by_destination: dict[str, list[_Claim]] = {}
        for claim in claims:
            by_destination.setdefault(claim.destination, []).append(claim)
        # Destinations are independent, so they go out side by side; one destination stays in order.
        results = await asyncio.gather(
            *(self._send_in_order(rows) for rows in by_destination.values()), return_exceptions=True,
        )
        processed = 0
        for result in results:
            if isinstance(result, BaseException):
                log.error("outbox %s: a send loop crashed", self.worker_id, exc_info=result)
            else:
                processed += result
        return processed

    def _mine(self) -> ColumnElement[bool]:
        """Rows for a destination this process has a sender for."""
        return col(Delivery.destination).in_(sorted(self.senders))

    def _due(self, now: datetime) -> ColumnElement[bool]:
        """Rows to claim now: pending and due, or sent by a worker whose lease ran out. Another
        destination's rows only once they have waited ``orphan_grace`` on top: a worker that has the
        sender goes first, and a row no worker can send still fails visibly instead of waiting forever."""
        mine, orphaned = self._mine(), now - self.orphan_grace
        attempt, lease = col(Delivery.next_attempt_at), col(Delivery.lease_until)
        pending = col(Delivery.status) == DeliveryStatus.PENDING.value
        sending = col(Delivery.status) == DeliveryStatus.SENDING.value
        return (pending & ((mine & (attempt <= now)) | (attempt <= orphaned))) \
            | (sending & ((mine & (lease < now)) | (lease < orphaned)))

    async def _claim(self) -> list[_Claim]:
        now = self.clock.now()
        due = self._due(now)
        query = (
            select(col(Delivery.id), col(Delivery.claimed_by)).where(due)
            .order_by(col(Delivery.next_attempt_at), col(Delivery.id)).limit(self.batch_size)
        )
        if self.db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        async with self.db.transaction() as session:
            picked = (await session.execute(query)).all()
            if not picked:
                return []
            holders = {row_id: holder for row_id, holder in picked}
            rows = await session.execute(
                update(Delivery).where(col(Delivery.id).in_(list(holders)))
                .values(status=DeliveryStatus.SENDING.value, claimed_by=self.worker_id,
                        lease_until=now + self.lease, attempts=Delivery.attempts + 1)
                .returning(col(Delivery.id), col(Delivery.destination), col(Delivery.purpose),
                           col(Delivery.payload), col(Delivery.conversation_id), col(Delivery.message_id),
                           col(Delivery.attempts), col(Delivery.next_attempt_at))
            )
            claims = [
                _Claim(id=r.id, destination=r.destination, purpose=r.purpose, payload=r.payload,
                       conversation_id=r.conversation_id, message_id=r.message_id, attempts=r.attempts,
                       next_attempt_at=r.next_attempt_at, previous_holder=holders[r.id])
                for r in rows
            ]
        claims.sort(key=lambda c: (c.next_attempt_at, c.id))
        for claim in claims:
            if claim.previous_holder is not None:
                log.warning("outbox %s: took over delivery #%s from %s after its lease expired",
                            self.worker_id, claim.id, claim.previous_holder)
        return claims

    async def _send_in_order(self, claims: Sequence[_Claim]) -> int:
        attempted = 0
        for index, claim in enumerate(claims):
            if self._stopping is not None and self._stopping.is_set():
                await self._put_back(claims[index:], None, "dispatcher stopped before sending")
                break
            if claim.previous_holder is not None and claim.attempts > self.policy.max_attempts:
                # Only takeovers push attempts past the limit: a row whose send keeps killing its worker
                # must fail (and be reported) rather than take down every worker in turn.
                outcome = _Outcome("failed", f"gave up after {claim.attempts - 1} attempts; the last worker "
                                             f"sending it ({claim.previous_holder}) stopped responding")
            else:
                outcome = await self._attempt(claim)
            attempted += 1
            try:
                await self._record(claim, outcome)
            except Exception:
                log.exception("outbox %s: could not record the outcome of delivery #%s; it is retried "
                              "when its lease expires", self.worker_id, claim.id)
            if outcome.kind == "rate_limited":
                # The platform will refuse the rest of this destination too until the wait is over.
                until = self.clock.now() + timedelta(seconds=max(0.0, outcome.retry_after or 0.0))
                reason = f"waiting: delivery #{claim.id} to '{claim.destination}' was rate limited"
                await self._put_back(claims[index + 1:], until, reason)
                break
        return attempted

    async def _attempt(self, claim: _Claim) -> _Outcome:
        sender = self.senders.get(claim.destination)
        if sender is None:
            return _Outcome("retry", f"no connector for destination '{claim.destination}' in this process")
        try:
            async with asyncio.timeout(self.send_timeout):
                receipt = await sender.send(claim.outbound())
        except RateLimited as exc:
            return _Outcome("rate_limited", str(exc), retry_after=exc.retry_after,
                            quiet=isinstance(exc, Paced))
        except DeliveryFailed as exc:
            return _Outcome("retry" if exc.retryable else "failed", str(exc) or type(exc).__name__,
                            retry_after=exc.retry_after)
        except TimeoutError:
            return _Outcome("retry",
                            f"sending to '{claim.destination}' timed out after {self.send_timeout:g}s")
        except Exception as exc:
            # A bug in one connector must not stop deliveries to every other destination.
            log.exception("outbox %s: sender for '%s' raised on delivery #%s",
                          self.worker_id, claim.destination, claim.id)
            return _Outcome("retry", f"unexpected error in the '{claim.destination}' connector: "
                                     f"{type(exc).__name__}: {exc}")
        platform_id = receipt.platform_message_id if isinstance(receipt, Receipt) else None
        return _Outcome("sent", platform_message_id=None if platform_id is None else str(platform_id))

    # --- recording ---

    def _fence(self, claim: _Claim) -> ColumnElement[bool]:
        """Matches the row only while this worker still holds this very claim."""
        return (
            (col(Delivery.id) == claim.id) & (col(Delivery.claimed_by) == self.worker_id)
            & (col(Delivery.status) == DeliveryStatus.SENDING.value)
            & (col(Delivery.attempts) == claim.attempts)
        )

    async def _record(self, claim: _Claim, outcome: _Outcome) -> None:
        now = self.clock.now()
        async with self.db.transaction() as session:
            if outcome.kind == "sent":
                done = await self._record_sent(session, claim, outcome, now)
            elif outcome.kind == "rate_limited":
                wait = timedelta(seconds=max(0.0, outcome.retry_after or 0.0))
                done = await self._reschedule(session, claim, now + wait, outcome.error, count_attempt=False)
            elif outcome.kind == "retry" and not self.policy.exhausted(claim.attempts):
                wait = self.policy.backoff(claim.attempts, self.rng)
                if outcome.retry_after is not None:
                    wait = max(wait, timedelta(seconds=outcome.retry_after))
                done = await self._reschedule(session, claim, now + wait, outcome.error, count_attempt=True)
            else:
                done = await self._record_failed(session, claim, outcome, now)
        if not done:
            log.warning("outbox %s: delivery #%s was taken over while sending; its outcome (%s) is dropped",
                        self.worker_id, claim.id, outcome.kind)
        elif outcome.kind in ("retry", "rate_limited"):
            log.log(logging.DEBUG if outcome.quiet else logging.WARNING,
                    "outbox %s: delivery #%s to '%s' will be retried: %s",
                    self.worker_id, claim.id, claim.destination, outcome.error)

    async def _record_sent(
        self, session: AsyncSession, claim: _Claim, outcome: _Outcome, now: datetime,
    ) -> bool:
        updated = await session.execute(
            update(Delivery).where(self._fence(claim))
            .values(status=DeliveryStatus.SENT.value, sent_at=now, lease_until=None, last_error=None,
                    platform_message_id=outcome.platform_message_id)
            .returning(col(Delivery.id))
        )
        if updated.first() is None:
            return False
        if claim.message_id is not None and outcome.platform_message_id is not None:
            await self._link_message(session, claim, outcome.platform_message_id)
        await record(session, _OUTBOX, "delivery.sent", now, claim.conversation_id, delivery_id=claim.id,
                     destination=claim.destination, purpose=claim.purpose,
                     platform_message_id=outcome.platform_message_id, attempts=claim.attempts)
        return True

    async def _link_message(self, session: AsyncSession, claim: _Claim, platform_id: str) -> None:
        # The savepoint keeps the delivery 'sent' if the platform id already belongs to another message
        # (e.g. ingest stored the echo of our own reply first): the send did happen.
        try:
            async with session.begin_nested():
                await session.execute(
                    update(Message).where(col(Message.id) == claim.message_id).values(external_id=platform_id)
                )
        except IntegrityError:
            log.warning("outbox %s: delivery #%s sent as '%s', but that id is already stored on another "
                        "message; message #%s keeps no external id", self.worker_id, claim.id, platform_id,
                        claim.message_id)

    async def _reschedule(
        self, session: AsyncSession, claim: _Claim, when: datetime, error: str | None, *, count_attempt: bool,
    ) -> bool:
        attempts = claim.attempts if count_attempt else claim.attempts - 1
        updated = await session.execute(
            update(Delivery).where(self._fence(claim))
            .values(status=DeliveryStatus.PENDING.value, attempts=attempts, next_attempt_at=when,
                    claimed_by=None, lease_until=None, last_error=_clip(error))
            .returning(col(Delivery.id))
        )
        return updated.first() is not None

    async def _record_failed(
        self, session: AsyncSession, claim: _Claim, outcome: _Outcome, now: datetime,
    ) -> bool:
        updated = await session.execute(
            update(Delivery).where(self._fence(claim))
            .values(status=DeliveryStatus.FAILED.value, claimed_by=None, lease_until=None,
                    last_error=_clip(outcome.error))
            .returning(col(Delivery.id))
        )
        if updated.first() is None:
            return False
        await record(session, _OUTBOX, "delivery.failed", now, claim.conversation_id, delivery_id=claim.id,
                     destination=claim.destination, purpose=claim.purpose, attempts=claim.attempts,
                     permanent=outcome.kind == "failed", error=_clip(outcome.error))
        log.error("outbox %s: delivery #%s to '%s' failed after %s attempt(s): %s",
                  self.worker_id, claim.id, claim.destination, claim.attempts, outcome.error)
        if self.on_failed is not None:
            row = await session.get(Delivery, claim.id)
            assert row is not None  # updated just above in this transaction
            try:
                # A broken hook must not keep the row from failing (it would be retried forever).
                async with session.begin_nested():
                    await self.on_failed(session, row)
            except Exception:
                log.exception("outbox %s: on_failed hook raised for delivery #%s", self.worker_id, claim.id)
        return True

    async def _put_back(self, claims: Sequence[_Claim], not_before: datetime | None, reason: str) -> None:
        """Return claimed but unsent rows to pending without counting an attempt."""
        if not claims:
            return
        async with self.db.transaction() as session:
            for claim in claims:
                when = claim.next_attempt_at if not_before is None else max(claim.next_attempt_at, not_before)
                await self._reschedule(session, claim, when, reason, count_attempt=False)

    async def release_claims(self) -> int:
        """On clean shutdown, put rows this worker still holds back to pending; return how many.

        Call it only after ``run()`` returned: a row released while its send is in flight may go twice.
        """
        async with self.db.transaction() as session:
            released = await session.execute(
                update(Delivery)
                .where(col(Delivery.claimed_by) == self.worker_id,
                       col(Delivery.status) == DeliveryStatus.SENDING.value)
                .values(status=DeliveryStatus.PENDING.value, attempts=Delivery.attempts - 1,
                        claimed_by=None, lease_until=None)
                .returning(col(Delivery.id))
            )
            return len(released.all())

    # --- the loop ---

    async def run(self, stop: asyncio.Event, wake: asyncio.Event | None = None, idle: float = 1.0) -> None:
        """Dispatch until ``stop`` is set; sleep until the next row is due (at most ``idle``) or ``wake``."""
        self._stopping = stop
        try:
            while not stop.is_set():
                if wake is not None:
                    wake.clear()  # before the pass: a wake during the pass makes the next wait return at once
                try:
                    if await self.run_once():
                        continue
                    delay = await self._seconds_until_due(idle)
                except Exception:
                    log.exception("outbox %s: dispatch pass failed; trying again in %gs",
                                  self.worker_id, idle)
                    delay = idle
                if delay <= 0:
                    await real_pause(MIN_IDLE_SLEEP, stop)
                    continue
                await clock_wait(self.clock, delay, stop, wake)
        finally:
            self._stopping = None

    async def _seconds_until_due(self, idle: float) -> float:
        mine = self._mine()

        def first(status: DeliveryStatus, column: Any, which: ColumnElement[bool]) -> Any:
            # The earliest in index order (status, then the time): a few index entries, not every row.
            return (select(column).where(col(Delivery.status) == status.value, which, column.is_not(None))
                    .order_by(column).limit(1).scalar_subquery())

        attempt, lease = col(Delivery.next_attempt_at), col(Delivery.lease_until)
        async with self.db.transaction() as session:
            own_due, other_due, own_lease, other_lease = (await session.execute(select(
                first(DeliveryStatus.PENDING, attempt, mine), first(DeliveryStatus.PENDING, attempt, ~mine),
                first(DeliveryStatus.SENDING, lease, mine), first(DeliveryStatus.SENDING, lease, ~mine),
            ))).one()
        now = self.clock.now()
        delay = idle
        for own, other in ((own_due, other_due), (own_lease, other_lease)):
            for instant in (own, None if other is None else other + self.orphan_grace):
                if instant is not None:
                    delay = min(delay, (instant - now).total_seconds())
        return delay


def _clip(error: str | None) -> str | None:
    if error is None or len(error) <= MAX_ERROR_LENGTH:
        return error
    return error[:MAX_ERROR_LENGTH - 1] + "…"


# --- operator actions and metrics ------------------------------------------------------------------


async def retry_delivery(session: AsyncSession, delivery_id: int, actor: Actor, now: datetime) -> None:
    """Send a failed delivery again from scratch (in the caller's transaction)."""
    row = (
        await session.execute(select(Delivery).where(col(Delivery.id) == delivery_id).with_for_update())
    ).scalar_one_or_none()
    if row is None:
        raise DeliveryNotFound(delivery_id)
    if row.status != DeliveryStatus.FAILED.value:
        raise InvalidAction(f"delivery #{delivery_id} is not failed (it is {row.status})")
    await session.execute(
        update(Delivery).where(col(Delivery.id) == delivery_id)
        .values(status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now,
                claimed_by=None, lease_until=None)
    )
    await record(session, actor, "delivery.retried", now, row.conversation_id, delivery_id=delivery_id,
                 destination=row.destination, purpose=row.purpose, previous_error=row.last_error,
                 previous_attempts=row.attempts)


class OutboxStats(TypedDict):
    """Row counts by status and how long the oldest pending row has waited."""

    pending: int
    sending: int
    sent: int
    failed: int
    oldest_pending_at: datetime | None
    oldest_pending_age: float | None  # seconds since the oldest pending row was queued


async def outbox_stats(session: AsyncSession, now: datetime) -> OutboxStats:
    """Counts by status and the age of the oldest pending row (``now`` comes from the Clock)."""
    counts = {status.value: 0 for status in DeliveryStatus}
    rows = await session.execute(select(col(Delivery.status), func.count()).group_by(col(Delivery.status)))
    for status, count in rows:
        counts[status] = int(count)
    oldest = await session.scalar(
        select(func.min(Delivery.created_at)).where(col(Delivery.status) == DeliveryStatus.PENDING.value)
    )
    return OutboxStats(
        pending=counts["pending"], sending=counts["sending"], sent=counts["sent"], failed=counts["failed"],
        oldest_pending_at=oldest,
        oldest_pending_age=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
    )
