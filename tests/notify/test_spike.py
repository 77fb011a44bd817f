"""A spike of 1,000 new conversations in one minute: the team chats get at most their budget per window,
every conversation is in a card or a digest and in /queue, and the sends never exceed the budget."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import col

from inbox.clock import FakeClock
from inbox.events import Outbound, Receipt
from inbox.models import Delivery, DeliveryStatus
from inbox.notify import window_of
from inbox.outbox import Dispatcher, RetryPolicy
from inbox.queries import QueueFilter, list_queue
from inbox.views import Digest
from tests.notify.conftest import OPS, TIM, Rig, view_of

BATCHES, PER_BATCH = 50, 20  # like a poller: 20 new conversations every 1.2 s
TELEGRAM = (20, timedelta(minutes=1))
TEAMLOG = (30, timedelta(minutes=1))


class RecordingSender:
    """Remembers when each delivery went out."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[datetime, Outbound]] = []

    async def send(self, outbound: Outbound) -> Receipt:
        self.sent.append((self.clock.now(), outbound))
        return Receipt(f"p{outbound.delivery_id}")


def most_in_any_window(times: list[datetime], window: timedelta) -> int:
    """The largest number of sends inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    return max((sum(1 for u in ordered if t <= u < t + window) for t in ordered), default=0)


async def drain(dispatcher: Dispatcher, rig: Rig) -> None:
    """Send everything due now; repeat while something was sent."""
    while await dispatcher.run_once():
        pass


async def test_a_spike_is_folded_into_digests_within_the_budget(rig: Rig) -> None:
    clock = rig.clock
    clock.advance(timedelta(seconds=30))  # 09:00:30, so the spike spans two aligned windows
    telegram, teamlog = RecordingSender(clock), RecordingSender(clock)
    senders = rig.notifier.senders({"tg": telegram, "log": teamlog})
    assert set(senders) == {OPS, TIM}
    dispatcher = Dispatcher(rig.db, clock, senders, worker_id="w1", batch_size=50,
                            policy=RetryPolicy(max_attempts=3))
    spike_start = clock.now()
    conversations: list[int] = []
    for _ in range(BATCHES):
        conversations += await rig.customers_write(PER_BATCH, channel="social")
        await drain(dispatcher, rig)  # the dispatcher runs alongside, as in `inbox run`
        clock.advance(timedelta(seconds=1.2))
    assert len(conversations) == 1000 and clock.now() - spike_start <= timedelta(minutes=1)

    # What was queued: at most the budget per destination per aligned window.
    for destination, (budget, window) in ((OPS, TELEGRAM), (TIM, TEAMLOG)):
        rows = await rig.deliveries(destination)
        per_window = Counter(window_of(row.created_at, window)[0] for row in rows)
        assert max(per_window.values()) <= budget, (destination, per_window)
        assert len(rows) <= 2 * budget  # two windows: nothing like a backlog of 1,000
        cards = {row.conversation_id for row in rows if row.purpose == "card"}
        digests = [row for row in rows if row.purpose == "digest"]
        covered = {row.id: await rig.covered(row) for row in digests}
        folded = {i for ids in covered.values() for i in ids}
        assert cards | folded == set(conversations) and not cards & folded  # each exactly once
        for row in digests:
            view = view_of(row)
            assert isinstance(view, Digest)
            assert dict(view.counts)["new"] == len(covered[row.id])
            assert len(view.items) == 10 and view.more == dict(view.counts)["new"] - 10
        assert len(digests) == 2

    # Every conversation is still in /queue.
    async with rig.db.sessions() as session:
        queue = await list_queue(session, clock.now(), QueueFilter(limit=5000))
    assert {item.id for item in queue} >= set(conversations)

    # Send the rest; the paced senders keep every sliding window within the budget.
    for _ in range(100):
        await drain(dispatcher, rig)
        async with rig.db.sessions() as session:
            due = await session.scalar(select(func.min(Delivery.next_attempt_at))
                                       .where(col(Delivery.status) == DeliveryStatus.PENDING.value))
        if due is None:
            break
        clock.set(max(due, clock.now()))
    assert {row.status for row in await rig.deliveries()} == {"sent"}
    for sender, (budget, window) in ((telegram, TELEGRAM), (teamlog, TEAMLOG)):
        times = [at for at, _ in sender.sent]
        assert most_in_any_window(times, window) <= budget
    assert len(telegram.sent) == len(await rig.deliveries(OPS))
    digest_text = next(o.text for _, o in telegram.sent if o.purpose == "digest")
    assert "new conversation(s)" in digest_text and "Every conversation is in /queue." in digest_text


async def test_workers_ingesting_side_by_side_share_one_budget(rig: Rig) -> None:
    # Two ingestors on two channels run concurrently (on PostgreSQL their transactions overlap: ingest
    # only serialises per channel); the budget must hold across them.
    from inbox.events import Author, Batch, Inbound
    from inbox.ingest import Ingestor
    from inbox.models import Kind

    workers = [Ingestor(rig.db, rig.clock, hooks=[rig.notifier.ingest_hook]) for _ in range(2)]

    async def spike(worker: Ingestor, channel: str) -> None:
        for batch in range(8):
            events = [Inbound(channel=channel, external_id=f"{channel}-{batch}-{n}", kind=Kind.MENTION,
                              author=Author(f"{channel}{batch}{n}", None, None), text="hey",
                              created_at=rig.clock.now()) for n in range(5)]
            await worker.ingest(Batch(channel, events))

    await asyncio.gather(spike(workers[0], "support"), spike(workers[1], "social"))
    rows = await rig.deliveries(OPS)
    assert [r.purpose for r in rows].count("card") == 15 and len(rows) == 16
    [digest] = [r for r in rows if r.purpose == "digest"]
    cards = {r.conversation_id for r in rows if r.purpose == "card"}
    assert len(cards | set(await rig.covered(digest))) == 80
