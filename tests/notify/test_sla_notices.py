"""SLA warnings, breaches and ladder steps, fired by the real SLA engine and scheduler, mention the
right people; and the budget's priority reserve keeps them out of a spike's digest."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Actor
from inbox.sla.engine import SlaEngine
from inbox.sla.scheduler import SlaScheduler
from inbox.views import Digest, SlaNotice
from tests.notify.conftest import OPS, TIM, Rig, make_rig, team_settings, view_of

CAROL = Actor("member", "carol", None)
POLICY = {
    "name": "standard", "first_response": "10m", "warn_at": 0.5,
    "ladder": [
        {"after": "0m", "notify": ["assignee", "leads"]},
        {"after": "30m", "notify": ["admins"], "raise_priority": "high", "urgent": True},
    ],
}


async def sla_rig(db: Database, clock: FakeClock, tmp_path: Path) -> tuple[Rig, SlaScheduler, Actions]:
    settings = team_settings(tmp_path, sla={"policies": [POLICY]})
    engine = SlaEngine(settings.sla, clock)
    rig = await make_rig(db, clock, settings, engine.ingest_hook)
    scheduler = SlaScheduler(db, clock, engine, notify=rig.notifier.sla_notify)
    return rig, scheduler, Actions(db, clock, hooks=[engine.action_hook])


async def fire(rig: Rig, scheduler: SlaScheduler, delta: timedelta) -> None:
    rig.clock.advance(delta)
    while await scheduler.run_once():
        pass


async def test_sla_notices_mention_the_assignee_then_the_leads_then_the_admins(
    db: Database, clock: FakeClock, tmp_path: Path,
) -> None:
    rig, scheduler, actions = await sla_rig(db, clock, tmp_path)
    [conv] = await rig.customers_write()
    [card] = await rig.deliveries(OPS, "card")
    assert view_of(card).card.due_at is not None  # type: ignore[attr-defined]  # SLA hook ran first
    await actions.assign(CAROL, conv, "carol")

    await fire(rig, scheduler, timedelta(minutes=5))
    [warning] = await rig.deliveries(OPS, "sla")
    view = view_of(warning)
    assert isinstance(view, SlaNotice) and (view.event, view.target, view.mentions) == (
        "warning", "first_response", ("carol",))
    assert view.remaining == timedelta(minutes=5)
    assert warning.payload["mentions"] == {"carol": "1003"} and warning.conversation_id == conv
    assert warning.payload["text"].startswith(
        f"SLA warning: first response of #{conv} is due in 5m (2026-11-02 09:10 UTC) @carol")

    await fire(rig, scheduler, timedelta(minutes=5))
    breach, step1 = (await rig.deliveries(OPS, "sla"))[1:]
    assert (view_of(breach).event, view_of(breach).mentions) == ("breached", ("carol",))  # type: ignore[attr-defined]
    step = view_of(step1)
    assert isinstance(step, SlaNotice) and (step.event, step.step, step.mentions) == (
        "escalation", 1, ("carol", "bob"))
    assert step1.payload["mentions"] == {"carol": "1003", "bob": "1002"}

    await fire(rig, scheduler, timedelta(minutes=30))
    step2 = view_of((await rig.deliveries(OPS, "sla"))[-1])
    assert isinstance(step2, SlaNotice)
    assert (step2.step, step2.mentions, step2.urgent) == (2, ("alice",), True)
    assert (step2.priority_from, step2.priority_to, step2.card.priority) == ("normal", "high", "high")
    text = (await rig.deliveries(OPS, "sla"))[-1].payload["text"]
    assert text.startswith(f"URGENT Escalation step 2: first response of #{conv} is overdue by 30m @alice")
    assert "Priority raised from normal to high." in text
    tim = view_of((await rig.deliveries(TIM, "sla"))[-1])
    assert tim.lang == "id"
    assert (await rig.deliveries(TIM, "sla"))[-1].payload["text"].startswith(
        f"MENDESAK Eskalasi tahap 2: respons pertama #{conv} terlambat 30m @alice")


async def test_an_unassigned_breach_pings_the_leads(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    rig, scheduler, _ = await sla_rig(db, clock, tmp_path)
    await rig.customers_write()
    await fire(rig, scheduler, timedelta(minutes=10))
    views = [view_of(d) for d in await rig.deliveries(OPS, "sla")]
    assert [(v.event, v.mentions) for v in views] == [  # type: ignore[attr-defined]
        ("warning", ()), ("breached", ("bob",)), ("escalation", ("bob",))]


async def test_sla_pings_use_the_reserve_and_fold_with_their_mentions_past_it(
    db: Database, clock: FakeClock, tmp_path: Path,
) -> None:
    rig, _, _ = await sla_rig(db, clock, tmp_path)
    ids = await rig.customers_write(40)  # a spike: 15 cards (20 - 1 digest - 4 reserve), 25 folded
    assert len(await rig.deliveries(OPS, "card")) == 15
    conv = await rig.conversation(ids[-1])
    for _ in range(6):
        async with rig.db.transaction() as session:
            await rig.notifier.sla_notify(session, "sla.escalation", conv,
                                          {"target": "first_response", "step": 1, "notify": ["leads"],
                                           "due_at": "2026-11-02T08:50:00Z"})
    singles = await rig.deliveries(OPS, "sla")
    assert len(singles) == 4  # the reserve; the 5th and 6th fold into the digest
    [digest] = await rig.deliveries(OPS, "digest")
    view = view_of(digest)
    assert isinstance(view, Digest)
    assert dict(view.counts) == {"sla": 2, "new": 25} and view.counts[0][0] == "sla"
    assert [i.kind for i in view.items[:2]] == ["sla", "sla"]  # listed first
    assert view.mentions == ("bob",) and digest.payload["mentions"] == {"bob": "1002"}
    assert len(await rig.deliveries(OPS)) == 20  # the whole budget, digest included
    lines = digest.payload["text"].splitlines()
    assert lines[:4] == [
        "Digest 09:00-09:01 UTC: 2 SLA alert(s), 25 new conversation(s) @bob",
        "(folded into one message to keep this chat readable)",
        f"  Escalation step 1: first response of #{ids[-1]} is overdue by 10m",
        f"  Escalation step 1: first response of #{ids[-1]} is overdue by 10m",
    ]
    assert lines[4] == f"  #{ids[15]} @cust16 (support): Where is my order? (16)"
    assert lines[-2:] == ["… and 17 more. Every conversation is in /queue.", "[Open the queue → /queue]"]
    assert digest.next_attempt_at == clock.now().replace(minute=1)  # sent when the window ends


async def test_a_warning_announced_after_its_deadline_says_how_long_ago_it_was_due(
    db: Database, clock: FakeClock, tmp_path: Path,
) -> None:
    rig, scheduler, _actions = await sla_rig(db, clock, tmp_path)
    [conv] = await rig.customers_write()
    await fire(rig, scheduler, timedelta(minutes=28))  # the scheduler was down from 09:00 to 09:28
    texts = {}
    for destination in (OPS, TIM):
        [warning] = [d for d in await rig.deliveries(destination, "sla")
                     if view_of(d).event == "warning"]  # type: ignore[attr-defined]
        assert view_of(warning).remaining == timedelta(minutes=-18)  # type: ignore[attr-defined]
        texts[destination] = warning.payload["text"]
    assert texts[OPS].startswith(
        f"SLA warning: first response of #{conv} was due 18m ago (2026-11-02 09:10 UTC)")
    assert texts[TIM].startswith(f"Peringatan SLA: respons pertama #{conv} jatuh tempo 18m yang lalu")
    assert all("-18m" not in text for text in texts.values())
