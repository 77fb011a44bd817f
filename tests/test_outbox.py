"""The outbox: queueing, claiming, retries with backoff, rate limits, leases and fencing, racing workers."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.errors import DeliveryNotFound, InvalidAction
from inbox.events import Actor, Outbound, Receipt
from inbox.models import Channel, Contact, Conversation, Delivery, Event, Message
from inbox.outbox import ORPHAN_GRACE, Dispatcher, RetryPolicy, enqueue, outbox_stats, retry_delivery
from inbox.ports import DeliveryFailed, Paced, PermanentFailure, RateLimited, Sender
from inbox.settings import OutboxSettings
from tests.factories import seed

POLICY = RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=10), max_delay=timedelta(seconds=60))
LEASE = timedelta(seconds=30)


# --- fakes: the one place where a fake connector is right ------------------------------------------------


class FakeSender:
    """Plays a script of outcomes (an exception to raise, or a platform id to return), then ``forever``."""

    def __init__(self, *script: BaseException | str | None, forever: BaseException | None = None,
                 counts: Counter[int] | None = None) -> None:
        self.script = list(script)
        self.forever = forever
        self.calls: list[Outbound] = []
        self.counts: Counter[int] = counts if counts is not None else Counter()

    async def send(self, outbound: Outbound) -> Receipt:
        self.calls.append(outbound)
        self.counts[outbound.delivery_id] += 1
        await asyncio.sleep(0)  # a real sender awaits the network: let other tasks run meanwhile
        step: BaseException | str | None = f"p{outbound.delivery_id}"
        if self.script:
            step = self.script.pop(0)
        elif self.forever is not None:
            step = self.forever
        if isinstance(step, BaseException):
            raise step
        return Receipt(step)


class GatedSender(FakeSender):
    """Holds every send until the test opens the gate."""

    def __init__(self, platform_id: str) -> None:
        super().__init__()
        self.platform_id = platform_id
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def send(self, outbound: Outbound) -> Receipt:
        self.calls.append(outbound)
        self.entered.set()
        await self.gate.wait()
        return Receipt(self.platform_id)


class RendezvousSender(FakeSender):
    """Holds a worker's first send until every worker is sending, so the race really overlaps
    (a SQLite writer can otherwise starve the other one and drain the whole queue alone)."""

    def __init__(self, worker: str, started: set[str], everyone: int, all_in: asyncio.Event,
                 counts: Counter[int]) -> None:
        super().__init__(counts=counts)
        self.worker, self.started, self.everyone, self.all_in = worker, started, everyone, all_in

    async def send(self, outbound: Outbound) -> Receipt:
        self.started.add(self.worker)
        if len(self.started) == self.everyone:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), 5)
        return await super().send(outbound)


class BuggySender:
    """A connector with a bug."""

    async def send(self, outbound: Outbound) -> Receipt:
        return Receipt(str(1 / 0))


# --- helpers ----------------------------------------------------------------------------------------------


def make_dispatcher(db: Database, clock: FakeClock, senders: dict[str, Any], **kwargs: Any) -> Dispatcher:
    """A dispatcher with the test policy and a seeded rng; keyword arguments override."""
    options: dict[str, Any] = {"worker_id": "w1", "policy": POLICY, "lease": LEASE, "batch_size": 10,
                               "rng": random.Random(7)}
    options.update(kwargs)
    return Dispatcher(db, clock, senders, **options)


async def queue(db: Database, clock: FakeClock, destination: str = "support", text: str = "hello",
                **kwargs: Any) -> int:
    """Queue one delivery in its own transaction and return its id."""
    async with db.transaction() as session:
        delivery_id = await enqueue(session, destination=destination, purpose="reply",
                                    payload={"text": text, **kwargs.pop("payload", {})}, now=clock.now(),
                                    **kwargs)
    assert delivery_id is not None
    return delivery_id


async def load(db: Database, delivery_id: int) -> Delivery:
    """The delivery row as stored now."""
    async with db.sessions() as session:
        row = await session.get(Delivery, delivery_id)
    assert row is not None
    return row


async def events(db: Database, type_: str) -> list[Event]:
    """Audit events of one type, oldest first."""
    async with db.sessions() as session:
        found = await session.scalars(select(Event).where(col(Event.type) == type_).order_by(col(Event.id)))
        return list(found.all())


async def outgoing_message(db: Database, clock: FakeClock, external_id: str | None = None) -> tuple[int, int]:
    """A conversation on 'support' and an outbound message in it; returns (conversation id, message id)."""
    now = clock.now()
    async with db.transaction() as session:
        channel = select(col(Channel.id)).where(col(Channel.name) == "support")
        channel_id = (await session.scalars(channel)).one()
        contact_id = (await session.execute(
            insert(Contact).returning(col(Contact.id)),
            {"channel_id": channel_id, "external_id": f"u-{external_id}", "created_at": now,
             "updated_at": now},
        )).scalar_one()
        conversation_id = (await session.execute(
            insert(Conversation).returning(col(Conversation.id)),
            {"channel_id": channel_id, "contact_id": contact_id, "kind": "dm", "breached": [],
             "created_at": now, "updated_at": now},
        )).scalar_one()
        message_id = (await session.execute(
            insert(Message).returning(col(Message.id)),
            {"channel_id": channel_id, "conversation_id": conversation_id, "direction": "out",
             "external_id": external_id, "text": "hello", "attachments": [], "created_at": now},
        )).scalar_one()
    assert conversation_id is not None and message_id is not None
    return conversation_id, message_id


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait up to 5 s of real time until ``check`` holds; the dispatcher runs in another task meanwhile."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


async def drain(dispatcher: Dispatcher) -> int:
    """Run passes until one finds nothing due; return how many rows were attempted."""
    total = 0
    while processed := await dispatcher.run_once():
        total += processed
    return total


# --- queueing ---------------------------------------------------------------------------------------------


async def test_success_records_platform_id_and_message_external_id(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)
    conversation_id, message_id = await outgoing_message(db, clock)
    delivery_id = await queue(
        db, clock, conversation_id=conversation_id, message_id=message_id,
        payload={"recipient": 4242, "reply_to": "m-1", "thread_key": "t-1", "kind": "dm",
                 "parse_mode": "HTML"},
    )
    sender = FakeSender("tg-777")
    assert isinstance(sender, Sender)
    dispatcher = make_dispatcher(db, clock, {"support": sender})

    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0  # nothing left: sent exactly once

    assert sender.calls == [Outbound(
        delivery_id=delivery_id, destination="support", purpose="reply", text="hello", recipient="4242",
        reply_to="m-1", thread_key="t-1", kind="dm", extra={"parse_mode": "HTML"},
    )]
    row = await load(db, delivery_id)
    assert (row.status, row.platform_message_id, row.attempts, row.sent_at, row.lease_until) == (
        "sent", "tg-777", 1, clock.now(), None)
    async with db.sessions() as session:
        message = await session.get(Message, message_id)
    assert message is not None and message.external_id == "tg-777"
    queued, sent = await events(db, "delivery.queued"), await events(db, "delivery.sent")
    assert [e.data["delivery_id"] for e in queued] == [delivery_id]
    assert [(e.conversation_id, e.data["platform_message_id"]) for e in sent] == [(conversation_id, "tg-777")]


async def test_platform_id_already_on_another_message_keeps_delivery_sent(
    db: Database, clock: FakeClock,
) -> None:
    await seed(db, clock)
    await outgoing_message(db, clock, external_id="tg-1")  # e.g. ingest stored the echo first
    conversation_id, message_id = await outgoing_message(db, clock)
    delivery_id = await queue(db, clock, conversation_id=conversation_id, message_id=message_id)

    assert await make_dispatcher(db, clock, {"support": FakeSender("tg-1")}).run_once() == 1

    row = await load(db, delivery_id)
    assert (row.status, row.platform_message_id) == ("sent", "tg-1")
    async with db.sessions() as session:
        message = await session.get(Message, message_id)
    assert message is not None and message.external_id is None
    assert len(await events(db, "delivery.sent")) == 1


async def test_dedupe_key_queues_once(db: Database, clock: FakeClock) -> None:
    first = await queue(db, clock, dedupe_key="sla-warning:7")
    async with db.transaction() as session:
        again = await enqueue(session, destination="support", purpose="reply", payload={"text": "x"},
                              now=clock.now(), dedupe_key="sla-warning:7")
        other = await enqueue(session, destination="support", purpose="reply", payload={"text": "y"},
                              now=clock.now(), dedupe_key="sla-warning:8")
    assert again is None
    assert other is not None and other != first
    async with db.sessions() as session:
        texts = (await session.scalars(select(col(Delivery.payload)).order_by(col(Delivery.id)))).all()
    assert [t["text"] for t in texts] == ["hello", "y"]
    assert len(await events(db, "delivery.queued")) == 2


async def test_not_before_delays_the_first_attempt(db: Database, clock: FakeClock) -> None:
    sender = FakeSender()
    dispatcher = make_dispatcher(db, clock, {"support": sender})
    delivery_id = await queue(db, clock, not_before=clock.now() + timedelta(minutes=5))

    clock.advance(timedelta(minutes=4, seconds=59))
    assert await dispatcher.run_once() == 0
    clock.advance(1)
    assert await dispatcher.run_once() == 1
    assert [c.delivery_id for c in sender.calls] == [delivery_id]


# --- retry policy -----------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=timedelta(seconds=1), max_delay=timedelta(seconds=60),
                         jitter="none")
    rng = random.Random(1)
    assert [policy.backoff(n, rng).total_seconds() for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.ceiling(10_000) == timedelta(seconds=60)  # no overflow on absurd attempt counts
    assert not policy.exhausted(9) and policy.exhausted(10)


@pytest.mark.parametrize(("jitter", "low_share"), [("equal", 0.5), ("full", 0.0)])
def test_backoff_jitter_stays_within_bounds(jitter: Any, low_share: float) -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=timedelta(seconds=2), max_delay=timedelta(minutes=5),
                         jitter=jitter)
    rng = random.Random(42)
    for attempt in range(1, 11):
        top = policy.ceiling(attempt).total_seconds()
        draws = [policy.backoff(attempt, rng).total_seconds() for _ in range(300)]
        assert all(top * low_share <= d <= top for d in draws)
        assert len(set(draws)) > 250  # it really is jittered
        assert max(draws) > top * 0.95 and min(draws) < top * (low_share + 0.05)  # and uses its whole range
    # The same seed gives the same schedule, so tests and incident replays are reproducible.
    again = [policy.backoff(3, random.Random(5)) for _ in range(3)]
    assert again == [policy.backoff(3, random.Random(5)) for _ in range(3)]


async def test_policy_and_dispatcher_from_settings_and_bad_values(db: Database, clock: FakeClock) -> None:
    settings = OutboxSettings.model_validate({"max_attempts": 4, "base_delay": "3s", "max_delay": "10m",
                                              "lease": "90s", "batch_size": 7})
    policy = RetryPolicy.from_settings(settings, jitter="full")
    assert policy == RetryPolicy(4, timedelta(seconds=3), timedelta(minutes=10), "full")
    dispatcher = Dispatcher.from_settings(db, clock, {}, settings, worker_id="host-1")
    assert dispatcher.policy == RetryPolicy(4, timedelta(seconds=3), timedelta(minutes=10))
    assert (dispatcher.lease, dispatcher.batch_size) == (timedelta(seconds=90), 7)
    assert dispatcher.send_timeout == 90.0
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="base_delay"):
        RetryPolicy(base_delay=timedelta(minutes=5), max_delay=timedelta(minutes=1))


# --- failures ---------------------------------------------------------------------------------------------


async def test_transient_failures_back_off_then_fail_and_call_hook(db: Database, clock: FakeClock) -> None:
    hook_calls: list[tuple[int, str, int]] = []

    async def on_failed(session: AsyncSession, row: Delivery) -> None:
        assert row.id is not None
        hook_calls.append((row.id, row.status, row.attempts))
        # Runs inside the transaction that marks the row failed: what it queues commits with it.
        await enqueue(session, destination="team", purpose="notice", now=clock.now(),
                      payload={"text": f"delivery #{row.id} failed: {row.last_error}"})

    sender = FakeSender(forever=DeliveryFailed("HTTP 502 bad gateway"))
    dispatcher = make_dispatcher(db, clock, {"support": sender}, on_failed=on_failed)
    delivery_id = await queue(db, clock)

    for attempt in (1, 2):
        assert await dispatcher.run_once() == 1
        row = await load(db, delivery_id)
        assert (row.status, row.attempts, row.last_error) == ("pending", attempt, "HTTP 502 bad gateway")
        wait = (row.next_attempt_at - clock.now()).total_seconds()
        top = POLICY.ceiling(attempt).total_seconds()
        assert top / 2 <= wait <= top  # equal jitter: 5-10 s, then 10-20 s
        assert await dispatcher.run_once() == 0  # not due yet
        clock.set(row.next_attempt_at)

    assert await dispatcher.run_once() == 1
    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "HTTP 502 bad gateway")
    assert hook_calls == [(delivery_id, "failed", 3)]
    [failed] = await events(db, "delivery.failed")
    assert failed.data["delivery_id"] == delivery_id and failed.data["permanent"] is False
    async with db.sessions() as session:
        notice = (await session.scalars(select(Delivery).where(col(Delivery.destination) == "team"))).one()
    assert notice.payload["text"] == f"delivery #{delivery_id} failed: HTTP 502 bad gateway"

    clock.advance(timedelta(days=1))
    assert await dispatcher.run_once() == 1  # the notice, not the failed row
    assert len(sender.calls) == 3


async def test_retry_after_is_used_when_longer_than_backoff(db: Database, clock: FakeClock) -> None:
    dispatcher = make_dispatcher(db, clock, {"support": FakeSender(DeliveryFailed("busy", retry_after=300))})
    delivery_id = await queue(db, clock)
    await dispatcher.run_once()
    row = await load(db, delivery_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=300)


async def test_rate_limited_waits_exactly_retry_after_and_never_fails(db: Database, clock: FakeClock) -> None:
    limits = [RateLimited(42) for _ in range(POLICY.max_attempts + 4)]
    sender = FakeSender(*limits, "tg-9")
    dispatcher = make_dispatcher(db, clock, {"support": sender})
    delivery_id = await queue(db, clock)

    for _ in limits:
        assert await dispatcher.run_once() == 1
        row = await load(db, delivery_id)
        assert (row.status, row.attempts) == ("pending", 0)
        assert row.next_attempt_at == clock.now() + timedelta(seconds=42)
        assert row.last_error is not None and "retry after 42s" in row.last_error
        clock.advance(41.9)
        assert await dispatcher.run_once() == 0
        clock.advance(0.1)

    assert await dispatcher.run_once() == 1
    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.platform_message_id) == ("sent", 1, "tg-9")
    assert await events(db, "delivery.failed") == []


async def test_rate_limit_holds_back_the_rest_of_that_destination(db: Database, clock: FakeClock) -> None:
    support = FakeSender(RateLimited(20))
    social = FakeSender()
    dispatcher = make_dispatcher(db, clock, {"support": support, "social": social})
    first, second = await queue(db, clock, text="one"), await queue(db, clock, text="two")
    elsewhere = await queue(db, clock, destination="social")

    assert await dispatcher.run_once() == 2  # 'one' tried and limited, 'two' not tried, social sent
    assert [c.delivery_id for c in support.calls] == [first]
    assert [c.delivery_id for c in social.calls] == [elsewhere]
    held = await load(db, second)
    assert (held.status, held.attempts, held.claimed_by) == ("pending", 0, None)
    assert held.next_attempt_at == clock.now() + timedelta(seconds=20)

    clock.advance(20)
    assert await dispatcher.run_once() == 2
    assert [c.delivery_id for c in support.calls] == [first, first, second]  # order kept


async def test_our_own_pacing_waits_like_a_rate_limit_without_a_warning(
    db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    sender = FakeSender(Paced(3, "paced"), RateLimited(5))
    dispatcher = make_dispatcher(db, clock, {"support": sender})
    delivery_id = await queue(db, clock)

    def levels() -> list[int]:
        return [r.levelno for r in caplog.records if "will be retried" in r.getMessage()]

    with caplog.at_level(logging.DEBUG, logger="inbox.outbox"):
        assert await dispatcher.run_once() == 1  # paced: expected, so no warning
        row = await load(db, delivery_id)
        assert (row.status, row.attempts) == ("pending", 0)
        assert row.next_attempt_at == clock.now() + timedelta(seconds=3)
        assert levels() == [logging.DEBUG]
        clock.advance(3)
        assert await dispatcher.run_once() == 1  # the platform's own 429 still warns
        assert levels() == [logging.DEBUG, logging.WARNING]


async def test_permanent_failure_fails_at_once(db: Database, clock: FakeClock) -> None:
    failed_rows: list[int | None] = []

    async def on_failed(session: AsyncSession, row: Delivery) -> None:
        failed_rows.append(row.id)

    dispatcher = make_dispatcher(db, clock, {"support": FakeSender(PermanentFailure("bot was blocked"))},
                                 on_failed=on_failed)
    delivery_id = await queue(db, clock)
    assert await dispatcher.run_once() == 1
    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "bot was blocked")
    assert failed_rows == [delivery_id]
    [event] = await events(db, "delivery.failed")
    assert event.data["permanent"] is True


async def test_broken_failure_hook_still_marks_row_failed(db: Database, clock: FakeClock) -> None:
    async def on_failed(session: AsyncSession, row: Delivery) -> None:
        raise RuntimeError("notifier bug")

    dispatcher = make_dispatcher(db, clock, {"support": FakeSender(PermanentFailure("gone"))},
                                 on_failed=on_failed)
    delivery_id = await queue(db, clock)
    assert await dispatcher.run_once() == 1
    assert (await load(db, delivery_id)).status == "failed"
    assert len(await events(db, "delivery.failed")) == 1


async def test_retry_delivery_sends_a_failed_row_again(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)
    sender = FakeSender(PermanentFailure("chat not found"), "tg-2")
    dispatcher = make_dispatcher(db, clock, {"support": sender})
    delivery_id = await queue(db, clock)
    await dispatcher.run_once()
    assert (await load(db, delivery_id)).status == "failed"

    clock.advance(timedelta(hours=2))
    alice = Actor("member", "alice", 1)
    async with db.transaction() as session:
        await retry_delivery(session, delivery_id, alice, clock.now())
    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, clock.now())
    [retried] = await events(db, "delivery.retried")
    assert (retried.actor, retried.data["previous_error"]) == ("member:alice", "chat not found")

    assert await dispatcher.run_once() == 1
    assert [c.delivery_id for c in sender.calls] == [delivery_id, delivery_id]
    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.platform_message_id, row.last_error) == ("sent", 1, "tg-2", None)

    async with db.transaction() as session:
        with pytest.raises(InvalidAction, match=rf"^delivery #{delivery_id} is not failed \(it is sent\)$"):
            await retry_delivery(session, delivery_id, alice, clock.now())
        with pytest.raises(DeliveryNotFound, match="delivery #999 does not exist"):
            await retry_delivery(session, 999, alice, clock.now())


async def test_a_destination_this_process_cannot_send_is_left_to_one_that_can(
    db: Database, clock: FakeClock
) -> None:
    mastodon = FakeSender()
    other = make_dispatcher(db, clock, {"support": FakeSender()}, worker_id="other")
    able = make_dispatcher(db, clock, {"mastodon": mastodon}, worker_id="able")
    delivery_id = await queue(db, clock, destination="mastodon")
    await queue(db, clock, destination="support")
    assert await other.run_once() == 1  # its own row only
    # It would wait out the grace before taking the other row (at most the idle time asked for).
    assert await other._seconds_until_due(3600) == ORPHAN_GRACE.total_seconds()
    assert await able.run_once() == 1
    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.claimed_by) == ("sent", 1, "able")
    assert [c.delivery_id for c in mastodon.calls] == [delivery_id]


async def test_unknown_destination_is_a_retryable_failure(db: Database, clock: FakeClock) -> None:
    dispatcher = make_dispatcher(db, clock, {"support": FakeSender()})
    delivery_id = await queue(db, clock, destination="mastodon")
    assert await dispatcher.run_once() == 0  # a process that has the sender goes first
    clock.advance(ORPHAN_GRACE)
    assert await dispatcher.run_once() == 1
    row = await load(db, delivery_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == "no connector for destination 'mastodon' in this process"
    for _ in range(POLICY.max_attempts - 1):
        clock.advance(timedelta(minutes=5) + ORPHAN_GRACE)
        await dispatcher.run_once()
    assert (await load(db, delivery_id)).status == "failed"


async def test_sender_bug_does_not_kill_the_dispatcher(db: Database, clock: FakeClock) -> None:
    social = FakeSender()
    dispatcher = make_dispatcher(db, clock, {"support": BuggySender(), "social": social})
    broken = await queue(db, clock)
    fine = await queue(db, clock, destination="social")

    assert await dispatcher.run_once() == 2
    row = await load(db, broken)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == (
        "unexpected error in the 'support' connector: ZeroDivisionError: division by zero")
    assert (await load(db, fine)).status == "sent"

    clock.advance(timedelta(minutes=1))
    assert await dispatcher.run_once() == 1  # still alive, still retrying
    assert (await load(db, broken)).attempts == 2


async def test_hung_sender_times_out_as_a_retryable_failure(db: Database, clock: FakeClock) -> None:
    hung = GatedSender("never")
    dispatcher = make_dispatcher(db, clock, {"support": hung}, send_timeout=0.05)
    delivery_id = await queue(db, clock)
    assert await asyncio.wait_for(dispatcher.run_once(), 5) == 1
    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.last_error) == (
        "pending", 1, "sending to 'support' timed out after 0.05s")


# --- leases, fencing, shutdown ----------------------------------------------------------------------------


async def test_expired_lease_is_taken_over_and_late_result_is_fenced_off(
    db: Database, clock: FakeClock,
) -> None:
    slow = GatedSender("from-A")
    worker_a = make_dispatcher(db, clock, {"support": slow}, worker_id="A")
    worker_b = make_dispatcher(db, clock, {"support": FakeSender("from-B")}, worker_id="B")
    delivery_id = await queue(db, clock)

    a_pass = asyncio.create_task(worker_a.run_once())
    await asyncio.wait_for(slow.entered.wait(), 5)  # A claimed and committed, then hangs in the send
    row = await load(db, delivery_id)
    assert (row.status, row.claimed_by, row.lease_until) == ("sending", "A", clock.now() + LEASE)

    assert await worker_b.run_once() == 0  # the lease still holds
    clock.advance(LEASE + timedelta(seconds=1))
    assert await worker_b.run_once() == 1  # A looks dead: B takes over
    row = await load(db, delivery_id)
    assert (row.status, row.claimed_by, row.attempts, row.platform_message_id) == ("sent", "B", 2, "from-B")

    slow.gate.set()  # A wakes up and tries to record its own success
    assert await asyncio.wait_for(a_pass, 5) == 1
    row = await load(db, delivery_id)
    assert (row.status, row.claimed_by, row.platform_message_id) == ("sent", "B", "from-B")
    assert [e.data["platform_message_id"] for e in await events(db, "delivery.sent")] == ["from-B"]


async def test_row_whose_workers_keep_dying_fails_instead_of_looping(db: Database, clock: FakeClock) -> None:
    failed_rows: list[int | None] = []

    async def on_failed(session: AsyncSession, row: Delivery) -> None:
        failed_rows.append(row.id)

    sender = FakeSender()
    dispatcher = make_dispatcher(db, clock, {"support": sender}, on_failed=on_failed)
    delivery_id = await queue(db, clock)
    async with db.transaction() as session:  # the state after the last allowed attempt's worker died
        await session.execute(
            update(Delivery).where(col(Delivery.id) == delivery_id)
            .values(status="sending", claimed_by="ghost", attempts=POLICY.max_attempts,
                    lease_until=clock.now() - timedelta(seconds=1))
        )
    assert await dispatcher.run_once() == 1
    row = await load(db, delivery_id)
    assert (row.status, row.attempts) == ("failed", POLICY.max_attempts + 1)
    assert row.last_error == "gave up after 3 attempts; the last worker sending it (ghost) stopped responding"
    assert sender.calls == [] and failed_rows == [delivery_id]


async def test_release_claims_returns_held_rows_without_counting_an_attempt(
    db: Database, clock: FakeClock,
) -> None:
    slow = GatedSender("never")
    worker_a = make_dispatcher(db, clock, {"support": slow}, worker_id="A")
    delivery_id = await queue(db, clock)
    a_pass = asyncio.create_task(worker_a.run_once())
    await asyncio.wait_for(slow.entered.wait(), 5)
    a_pass.cancel()  # shutdown interrupted the send
    with pytest.raises(asyncio.CancelledError):
        await a_pass

    assert await worker_a.release_claims() == 1
    row = await load(db, delivery_id)
    assert (row.status, row.attempts, row.claimed_by, row.lease_until) == ("pending", 0, None, None)
    assert await worker_a.release_claims() == 0

    worker_b = make_dispatcher(db, clock, {"support": FakeSender()}, worker_id="B")
    assert await worker_b.run_once() == 1  # at once, without waiting for the lease to expire
    assert (await load(db, delivery_id)).status == "sent"


async def test_two_dispatchers_racing_send_each_delivery_exactly_once(
    db: Database, clock: FakeClock, db_url: str,
) -> None:
    async with db.transaction() as session:
        for n in range(200):
            await enqueue(session, destination=("support", "social")[n % 2], purpose="reply",
                          payload={"text": f"m{n}"}, now=clock.now())
    counts: Counter[int] = Counter()
    started: set[str] = set()
    all_in = asyncio.Event()
    engines = [Database(db_url), Database(db_url)]
    try:
        workers = [
            make_dispatcher(engine, clock, {
                destination: RendezvousSender(f"w{i}", started, len(engines), all_in, counts)
                for destination in ("support", "social")
            }, worker_id=f"w{i}", batch_size=10)
            for i, engine in enumerate(engines)
        ]
        totals = await asyncio.gather(*(drain(w) for w in workers))
    finally:
        for engine in engines:
            await engine.dispose()

    async with db.sessions() as session:
        rows = (await session.execute(
            select(col(Delivery.id), col(Delivery.status), col(Delivery.attempts)))).all()
    assert sum(totals) == 200
    assert counts == Counter({row.id: 1 for row in rows})
    assert {(row.status, row.attempts) for row in rows} == {("sent", 1)}
    assert len(await events(db, "delivery.sent")) == 200


async def test_run_sleeps_on_the_clock_wakes_on_wake_and_stops_promptly(
    db: Database, clock: FakeClock,
) -> None:
    sender = FakeSender()
    dispatcher = make_dispatcher(db, clock, {"support": sender})
    stop, wake = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop, wake, idle=1.0))
    await asyncio.sleep(0.05)  # idle now: nothing due, sleeping on the fake clock

    first = await queue(db, clock)
    await asyncio.sleep(0.1)
    assert sender.calls == []  # the fake clock has not moved, so only a wake can start a pass
    wake.set()

    async def sent(delivery_id: int) -> bool:
        return (await load(db, delivery_id)).status == "sent"

    await eventually(lambda: sent(first))

    # A row due in 0.5 s: after a wake the loop sleeps until then, not for the whole idle second.
    later = await queue(db, clock, not_before=clock.now() + timedelta(seconds=0.5))
    wake.set()
    await asyncio.sleep(0.1)
    assert not await sent(later)
    clock.advance(0.5)
    await eventually(lambda: sent(later))

    stop.set()
    await asyncio.wait_for(task, 1.0)


async def test_stop_finishes_the_send_in_flight_and_puts_back_the_rest(
    db: Database, clock: FakeClock,
) -> None:
    slow = GatedSender("tg-1")
    dispatcher = make_dispatcher(db, clock, {"support": slow})
    first, second = await queue(db, clock, text="one"), await queue(db, clock, text="two")
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await asyncio.wait_for(slow.entered.wait(), 5)

    stop.set()
    await asyncio.sleep(0.05)
    assert not task.done()  # it waits for the send in flight
    slow.gate.set()
    await asyncio.wait_for(task, 2.0)

    assert [c.delivery_id for c in slow.calls] == [first]
    assert (await load(db, first)).status == "sent"
    rest = await load(db, second)
    assert (rest.status, rest.attempts, rest.claimed_by) == ("pending", 0, None)
    assert await dispatcher.release_claims() == 0


# --- stats ------------------------------------------------------------------------------------------------


async def test_outbox_stats_counts_by_status_and_ages_oldest_pending(db: Database, clock: FakeClock) -> None:
    async with db.sessions() as session:
        empty = await outbox_stats(session, clock.now())
    assert empty == {"pending": 0, "sending": 0, "sent": 0, "failed": 0,
                     "oldest_pending_at": None, "oldest_pending_age": None}

    start = clock.now()
    doomed = await queue(db, clock, destination="nowhere-permanent")
    await queue(db, clock, destination="support")
    clock.advance(60)
    await queue(db, clock, destination="later", not_before=clock.now() + timedelta(hours=1))
    dispatcher = make_dispatcher(db, clock, {"support": FakeSender(),
                                             "nowhere-permanent": FakeSender(PermanentFailure("no"))})
    assert await dispatcher.run_once() == 2
    clock.advance(30)

    async with db.sessions() as session:
        stats = await outbox_stats(session, clock.now())
    assert stats == {"pending": 1, "sending": 0, "sent": 1, "failed": 1,
                     "oldest_pending_at": start + timedelta(seconds=60), "oldest_pending_age": 30.0}
    assert (await load(db, doomed)).status == "failed"
