"""Item 5: the platform misbehaves (real python-telegram-bot against the Telegram emulator, the real outbox
and notifier on fake time).

- 429 with retry_after: nothing reaches the platform before the wait is over, everything is delivered
  once, nothing is counted as a failed attempt or marked failed.
- 5xx for ten minutes: retries back off exponentially with jitter, then the row is failed and the team
  chat gets a notice whose Retry button, pressed by an admin, really calls Telegram again.
- Timeouts and dropped connections: retried until delivered; a send that timed out after Telegram did
  post it is the documented at-least-once case and is sent again.
"""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta

from sqlmodel import col

from connectors.telegram.emulator import EmuUser
from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Actor
from inbox.models import Delivery, DeliveryStatus, Event
from inbox.notify import Notifier
from inbox.outbox import Dispatcher, RetryPolicy
from tests.connectors.telegram.harness import Rig, running_rig
from tests.reliability.support import rows

CAROL = Actor("member", "carol", None)


def dispatcher_of(rig: Rig, *, policy: RetryPolicy | None = None, seed: int = 1) -> Dispatcher:
    """The outbox as `inbox run` wires it: the channel's senders and the notifier's failure hook."""
    notifier = Notifier(rig.db, rig.clock, rig.settings)
    connector = rig.connector
    assert connector.sender is not None and connector.team_sender is not None
    return Dispatcher(
        rig.db,
        rig.clock,
        {"tg": connector.sender, "team:ops": connector.team_sender},
        worker_id="w1",
        policy=policy or RetryPolicy(),
        rng=random.Random(seed),
        on_failed=notifier.on_failed,
    )


async def customers_with_replies(rig: Rig, dispatcher: Dispatcher, count: int) -> list[EmuUser]:
    """``count`` customers write in; their cards are posted; carol queues a reply to each."""
    people = [rig.emu.user(f"Customer{i}") for i in range(count)]
    for person in people:
        rig.emu.user_dm(person, f"Hello from {person.first_name}")
    await rig.settle()
    assert await dispatcher.run_once() == count  # the cards, before the platform acts up
    for conversation in await rig.conversations():
        assert conversation.id is not None
        await Actions(rig.db, rig.clock).reply(CAROL, conversation.id, f"Answer to #{conversation.id}")
    return people


async def test_429_with_retry_after_sends_nothing_early_and_everything_once(
    db: Database,
    clock: FakeClock,
) -> None:
    async with running_rig(db, clock) as rig:
        dispatcher = dispatcher_of(rig)
        people = await customers_with_replies(rig, dispatcher, 5)
        rig.emu.inject("sendMessage", 429, retry_after=20, times=3)
        seen = len(rig.emu.calls("sendMessage"))
        calls: list[tuple[datetime, int | None]] = []
        for _ in range(120):
            await dispatcher.run_once()
            for call in rig.emu.calls("sendMessage")[seen:]:
                calls.append((clock.now(), call.status))
            seen = len(rig.emu.calls("sendMessage"))
            clock.advance(1)
        refused = [at for at, status in calls if status == 429]
        assert len(refused) == 3
        for at in refused:  # after each 429, the platform hears nothing from us for 20 seconds
            assert not [c for c, _ in calls if at < c < at + timedelta(seconds=20)]
        assert [len(rig.emu.sent(person)) for person in people] == [1] * 5
        replies = await rig.deliveries("tg")
        assert {(d.status, d.attempts) for d in replies} == {(DeliveryStatus.SENT, 1)}
        assert await rows(db, Event, col(Event.type) == "delivery.failed") == []


async def test_ten_minutes_of_5xx_back_off_with_jitter_then_a_notice_whose_retry_really_sends(
    db: Database,
    clock: FakeClock,
) -> None:
    async with running_rig(db, clock) as rig:
        dispatcher = dispatcher_of(rig, seed=11)
        [ana] = await customers_with_replies(rig, dispatcher, 1)
        policy = dispatcher.policy
        rig.emu.inject("sendMessage", 502, times=None)  # Telegram is down
        down_since = clock.now()
        attempts: list[datetime] = []
        while True:
            [reply] = await rig.deliveries("tg")
            if reply.status == DeliveryStatus.FAILED:
                break
            assert clock.now() - down_since < timedelta(minutes=11), "still retrying after 11 minutes"
            clock.set(max(clock.now(), reply.next_attempt_at))
            await dispatcher.run_once()
            attempts.append(clock.now())
        assert len(attempts) == policy.max_attempts == 8
        waits = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
        ceilings = [policy.ceiling(n).total_seconds() for n in range(1, len(attempts))]
        assert all(top / 2 <= wait <= top for wait, top in zip(waits, ceilings, strict=True))  # equal jitter
        assert waits != ceilings and len({w / t for w, t in zip(waits, ceilings, strict=True)}) > 1
        assert attempts[-1] - down_since <= timedelta(minutes=10, seconds=35)
        assert rig.emu.sent(ana) == []

        rig.emu.clear_faults()  # Telegram is back: the failure notice reaches the team chat
        assert await dispatcher.run_once() == 1
        notice = rig.emu.last_sent(rig.team)
        assert f"#{reply.id}" in (notice.plain_text or "") and "failed" in (notice.plain_text or "")
        retry = next(b for b in notice.buttons if b["text"] == f"Retry #{reply.id}")
        calls_before = len(rig.emu.calls("sendMessage"))
        rig.emu.press_button(rig.team, notice.message_id, rig.alice, retry["callback_data"])
        await rig.settle()
        assert await dispatcher.run_once() >= 1
        [answer] = rig.emu.sent(ana)  # Telegram really got the call this time
        assert answer.plain_text == "Answer to #1"
        assert any(
            c.params.get("chat_id") in (ana.id, str(ana.id))
            for c in rig.emu.calls("sendMessage")[calls_before:]
        )
        [reply] = await rig.deliveries("tg")
        assert reply.status == DeliveryStatus.SENT
        assert [e.actor for e in await rows(db, Event, col(Event.type) == "delivery.retried")] == [
            "member:alice"
        ]


async def test_dropped_connections_are_retried_and_a_late_answer_is_sent_again(
    db: Database,
    clock: FakeClock,
) -> None:
    async with running_rig(db, clock, channel={"request_timeout": 0.3}) as rig:
        dispatcher = dispatcher_of(rig)
        [ana, ben] = await customers_with_replies(rig, dispatcher, 2)
        rig.emu.drop("sendMessage", times=2)  # the connection breaks before Telegram did anything
        for _ in range(6):
            await dispatcher.run_once()
            clock.advance(timedelta(minutes=1))
        assert [len(rig.emu.sent(p)) for p in (ana, ben)] == [1, 1]
        # Telegram posts the message but answers too late: the send timed out, so it goes again.
        [conversation, _] = await rig.conversations()
        assert conversation.id is not None
        await Actions(rig.db, rig.clock).reply(CAROL, conversation.id, "One more thing")
        rig.emu.slow("sendMessage", 1.0, times=1)
        for _ in range(4):
            await dispatcher.run_once()
            clock.advance(timedelta(minutes=1))
        assert [m.plain_text for m in rig.emu.sent(ana)].count("One more thing") == 2
        assert {d.status for d in await rows(db, Delivery)} == {DeliveryStatus.SENT}
