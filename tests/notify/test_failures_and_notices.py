"""Failed deliveries (with a /retry button), connector health and budget notices."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlmodel import col, select

from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.commands import CommandCore
from inbox.events import Actor, Batch, Outbound, Receipt
from inbox.models import Event
from inbox.outbox import Dispatcher, RetryPolicy, enqueue
from inbox.poller import MAX_ERROR_BACKOFF, Poller
from inbox.ports import NoticeSink, PermanentFailure
from inbox.terminal_console import run_terminal_command
from inbox.views import BudgetNotice, FailedDeliveryNotice, HealthNotice
from tests.notify.conftest import OPS, TIM, Rig, view_of

CAROL = Actor("member", "carol", None)


class BrokenSender:
    """Refuses everything for good."""

    def __init__(self) -> None:
        self.calls: list[Outbound] = []

    async def send(self, outbound: Outbound) -> Receipt:
        self.calls.append(outbound)
        raise PermanentFailure("403 Forbidden: bot was blocked by the user")


class OkSender:
    """Accepts everything."""

    async def send(self, outbound: Outbound) -> Receipt:
        return Receipt(f"ok{outbound.delivery_id}")


def dispatcher(rig: Rig, senders: dict[str, object]) -> Dispatcher:
    return Dispatcher(rig.db, rig.clock, senders, worker_id="w1",  # type: ignore[arg-type]
                      policy=RetryPolicy(max_attempts=2), on_failed=rig.notifier.on_failed)


async def test_a_failed_reply_is_reported_with_a_retry_button_that_works(rig: Rig) -> None:
    [conv] = await rig.customers_write()
    await Actions(rig.db, rig.clock).assign(CAROL, conv, "carol")
    await Actions(rig.db, rig.clock).reply(CAROL, conv, "On its way!")
    [reply] = await rig.deliveries("support")
    await dispatcher(rig, {"support": BrokenSender()}).run_once()  # team chats have no sender: they wait
    [ops] = await rig.deliveries(OPS, "failed")
    [tim] = await rig.deliveries(TIM, "failed")
    view = view_of(ops)
    assert isinstance(view, FailedDeliveryNotice)
    assert (view.delivery_id, view.destination, view.purpose, view.conversation_id) == (
        reply.id, "support", reply.purpose, conv)
    assert view.error == "403 Forbidden: bot was blocked by the user" and view.mentions == ("carol",)
    assert [b.command for b in view.buttons] == [f"/retry {reply.id}", f"/show {conv}"]
    assert ops.conversation_id == conv and ops.payload["mentions"] == {"carol": "1003"}
    assert f"Delivery #{reply.id} (reply to support) failed after 1 attempt(s)." in ops.payload["text"]
    assert f"[Retry #{reply.id} → /retry {reply.id}]" in ops.payload["text"]
    assert f"[Kirim ulang #{reply.id} → /retry {reply.id}]" in tim.payload["text"]
    # The button's command, pressed by a lead, queues the delivery again.
    core = CommandCore(rig.db, rig.clock, rig.settings, Actions(rig.db, rig.clock))
    result = await run_terminal_command(core, "bob", view.buttons[0].command)
    assert result.ok and result.output == f"Delivery #{reply.id} queued again."
    [again] = await rig.deliveries("support")
    assert again.status == "pending"


async def test_a_broken_team_chat_is_reported_elsewhere_and_never_loops(rig: Rig) -> None:
    await rig.customers_write()  # one card to each chat
    broken = BrokenSender()
    await dispatcher(rig, {OPS: broken, TIM: OkSender()}).run_once()
    assert [d.purpose for d in await rig.deliveries(OPS)] == ["card"]  # nothing about itself to itself
    [notice] = await rig.deliveries(TIM, "failed")
    assert view_of(notice).destination == OPS  # type: ignore[attr-defined]
    # Now the failure notices fail too: no notice about a notice.
    async with rig.db.transaction() as session:
        await enqueue(session, destination=OPS, purpose="failed", payload={"text": "x"}, now=rig.clock.now())
    before = len(await rig.deliveries())
    await dispatcher(rig, {OPS: broken}).run_once()
    assert len(await rig.deliveries()) == before


class FlakySource:
    """Fails with the scripted errors, then returns nothing new."""

    def __init__(self, *errors: Exception | None) -> None:
        self.script = list(errors)

    async def fetch(self, cursor: str | None) -> Batch:
        step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step
        return Batch("support", [], cursor)


async def wait_for(condition: Callable[[], Awaitable[bool]], clock: FakeClock) -> None:
    """Let the poller run, moving fake time past its backoff, until ``condition`` holds."""
    for _ in range(300):
        if await condition():
            return
        clock.advance(timedelta(seconds=MAX_ERROR_BACKOFF + 1))
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def test_the_poller_reports_health_changes_through_the_notifier(rig: Rig) -> None:
    assert isinstance(rig.notifier, NoticeSink)
    source = FlakySource(None, RuntimeError("HTTP 503 from the platform"), RuntimeError("still 503"))
    poller = Poller("support", source, rig.ingestor, rig.db, rig.clock, interval=5.0, notices=rig.notifier)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))

    async def recovered() -> bool:
        return len(await rig.deliveries(OPS, "health")) >= 2 and not source.script

    try:
        await wait_for(recovered, rig.clock)
        await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    views = [view_of(d) for d in await rig.deliveries(OPS, "health")]
    # unknown -> ok at start is not news; two failures in a row make one notice; recovery one more.
    assert views == [
        HealthNotice(lang="en", channel="support", healthy=False, detail="HTTP 503 from the platform"),
        HealthNotice(lang="en", channel="support", healthy=True, detail=None),
    ]
    [error, ok] = await rig.deliveries(OPS, "health")
    assert error.payload["text"] == ("Channel support has a problem: HTTP 503 from the platform. "
                                     "New messages from it may arrive late.")
    assert ok.payload["text"] == "Channel support works again."
    [tim_error, _] = await rig.deliveries(TIM, "health")
    assert tim_error.payload["text"].startswith("Kanal support bermasalah: HTTP 503")
    async with rig.db.sessions() as session:
        types = list((await session.execute(
            select(col(Event.type)).where(col(Event.type).like("notice.health%")).order_by(col(Event.id))
        )).scalars())
    assert types == ["notice.health.error", "notice.health.ok"]


async def test_a_connector_budget_notice_is_recorded_and_announced(rig: Rig) -> None:
    # The data the X connector reports with its budget notices.
    await rig.notifier.notice("x.budget_warning", channel="social", spent=8.1, budget=10.0, percent=81.0,
                              period="2026-11")
    [row] = await rig.deliveries(OPS, "budget")
    view = view_of(row)
    assert isinstance(view, BudgetNotice) and view.kind == "x.budget_warning"
    assert view.details == (("spent", "8.1"), ("budget", "10.0"), ("percent", "81.0"), ("period", "2026-11"))
    assert row.payload["text"].splitlines() == [
        "X channel social has used 81.0% of its budget for 2026-11 (8.1 of 10.0).",
        "  spent: 8.1, budget: 10.0, percent: 81.0, period: 2026-11",
    ]
    [tim] = await rig.deliveries(TIM, "budget")
    assert tim.payload["text"].startswith("Kanal X social sudah memakai 81.0% anggaran 2026-11")
    async with rig.db.sessions() as session:
        event = (await session.execute(
            select(Event).where(col(Event.type) == "notice.x.budget_warning"))).scalar_one()
    assert event.actor == "system:connector:social" and event.data["spent"] == 8.1


async def test_an_unknown_connector_notice_is_still_announced(rig: Rig) -> None:
    await rig.notifier.notice("mastodon.quota_low", channel="social", left=3)
    [row] = await rig.deliveries(OPS, "budget")
    assert row.payload["text"] == "social: mastodon.quota_low\n  left: 3"
