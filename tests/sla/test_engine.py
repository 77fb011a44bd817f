"""Rules of the clock, end to end: Ingestor and Actions with the SLA hooks, fired by the scheduler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.models import Direction, Kind, Status, TimerStatus
from inbox.sla.engine import TIMER_BREACH, TIMER_WARNING
from tests.sla.harness import CAROL, make_rig, policy

MON_9 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # the FakeClock's start


def at(hours: float = 0, minutes: float = 0) -> datetime:
    """An instant on Monday, counted from 09:00."""
    return MON_9 + timedelta(hours=hours, minutes=minutes)


async def test_first_response_warns_then_breaches_once_at_the_deadline(
    db: Database, clock: FakeClock
) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h"))
    cid = await rig.inbound()
    conv = await rig.conv(cid)
    assert conv.sla_policy == "default"
    assert conv.first_response_due_at == at(1)
    assert [(t.kind, t.due_at) for t in await rig.timers(cid)] == [(TIMER_WARNING, at(0, 45)),
                                                                   (TIMER_BREACH, at(1))]
    assert await rig.run_at(at(0, 44)) == 0
    await rig.run_at(at(0, 45))
    assert rig.kinds() == ["sla.warning"]
    assert rig.pings[0][2]["remaining_seconds"] == 15 * 60
    await rig.run_at(at(0, 59) + timedelta(seconds=59))
    assert rig.kinds() == ["sla.warning"]
    await rig.run_at(at(1))
    await rig.advance(timedelta(hours=5))
    assert rig.kinds() == ["sla.warning", "sla.breached"]
    breaches = await rig.events("sla.breached", cid)
    assert len(breaches) == 1
    assert breaches[0].created_at == at(1)
    assert breaches[0].data["late"] is False
    conv = await rig.conv(cid)
    assert conv.breached == ["first_response"]
    assert conv.first_response_due_at == at(1)  # still due, now overdue
    assert await rig.timers(cid) == []


async def test_a_reply_before_the_deadline_stops_the_clock(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h"))
    cid = await rig.inbound()
    await rig.run_at(at(0, 30))
    await rig.actions.reply(CAROL, cid, "on it")
    conv = await rig.conv(cid)
    assert conv.first_response_due_at is None
    assert await rig.timers(cid) == []
    cancelled = await rig.timers(cid, TimerStatus.CANCELLED.value)
    assert {t.kind for t in cancelled} == {TIMER_WARNING, TIMER_BREACH}
    await rig.advance(timedelta(days=2))
    assert rig.pings == []
    assert await rig.events("sla.breached") == []
    assert (await rig.conv(cid)).breached == []


async def test_a_note_stops_nothing(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None))
    cid = await rig.inbound()
    clock.set(at(0, 10))
    await rig.actions.note(CAROL, cid, "looking into it")
    assert (await rig.conv(cid)).first_response_due_at == at(1)
    await rig.run_at(at(1))
    assert rig.kinds() == ["sla.breached"]


async def test_next_response_runs_from_the_customer_follow_up(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", next_response="30m", warn_at=None))
    cid = await rig.inbound()
    clock.set(at(0, 10))
    await rig.actions.reply(CAROL, cid, "hello")
    conv = await rig.conv(cid)
    assert (conv.first_response_due_at, conv.next_response_due_at) == (None, None)
    clock.set(at(0, 20))
    await rig.inbound()
    clock.set(at(0, 25))
    await rig.inbound()  # a second message does not move the deadline: the wait began at 09:20
    assert (await rig.conv(cid)).next_response_due_at == at(0, 50)
    await rig.run_at(at(0, 50))
    assert rig.kinds() == ["sla.breached"]
    assert rig.pings[0][2]["target"] == "next_response"
    clock.set(at(1))
    await rig.actions.reply(CAROL, cid, "sorry for the wait")
    conv = await rig.conv(cid)
    assert conv.breached == ["next_response"]
    assert conv.next_response_due_at is None
    clock.set(at(2))
    await rig.inbound()  # a new cycle
    assert (await rig.conv(cid)).next_response_due_at == at(2, 30)


async def test_pending_pauses_and_a_customer_message_resumes_with_the_time_left(
    db: Database, clock: FakeClock
) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None))
    cid = await rig.inbound()
    clock.set(at(0, 20))
    await rig.actions.mark_pending(CAROL, cid)
    assert (await rig.conv(cid)).first_response_due_at is None
    assert await rig.timers(cid) == []
    await rig.run_at(at(3, 20))
    assert rig.pings == []
    await rig.inbound()  # the customer answers: 40 minutes were left
    conv = await rig.conv(cid)
    assert conv.status == Status.OPEN.value
    assert conv.first_response_due_at == at(4)
    await rig.run_at(at(4))
    assert rig.kinds() == ["sla.breached"]


async def test_pending_does_not_pause_when_the_policy_says_so(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None, pause_when_pending=False))
    cid = await rig.inbound()
    clock.set(at(0, 20))
    await rig.actions.mark_pending(CAROL, cid)
    assert (await rig.conv(cid)).first_response_due_at == at(1)
    await rig.run_at(at(1))
    assert rig.kinds() == ["sla.breached"]


async def test_snooze_pauses_and_the_wake_timer_reopens_and_resumes(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None))
    cid = await rig.inbound()
    clock.set(at(0, 30))
    await rig.actions.snooze(CAROL, cid, at(2, 30))
    conv = await rig.conv(cid)
    assert conv.status == Status.SNOOZED.value and conv.first_response_due_at is None
    assert [t.kind for t in await rig.timers(cid)] == ["snooze.wake"]
    await rig.run_at(at(2, 29))
    assert (await rig.conv(cid)).status == Status.SNOOZED.value
    await rig.run_at(at(2, 30))
    conv = await rig.conv(cid)
    assert conv.status == Status.OPEN.value and conv.snoozed_until is None
    assert conv.first_response_due_at == at(3)  # 30 minutes were left when it was snoozed
    resumed = await rig.events("conversation.resumed", cid)
    assert [e.data["reason"] for e in resumed] == ["snooze ended"]
    await rig.run_at(at(3))
    assert rig.kinds() == ["sla.breached"]


async def test_a_late_snooze_wake_resumes_the_clock_when_the_snooze_ended(
    db: Database, clock: FakeClock
) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None))
    cid = await rig.inbound()
    clock.set(at(0, 30))
    await rig.actions.snooze(CAROL, cid, at(1))
    clock.set(at(5))  # the scheduler was down; the snooze ended at 10:00 and 30 minutes were left
    await rig.drain()
    conv = await rig.conv(cid)
    assert conv.status == Status.OPEN.value
    breaches = await rig.events("sla.breached", cid)
    assert [(e.created_at, e.data["late"]) for e in breaches] == [(at(1, 30), True)]


async def test_resolve_stops_every_clock_and_timer(db: Database, clock: FakeClock) -> None:
    """chatwoot#10178: timers kept counting after a conversation was resolved."""
    rig = await make_rig(db, clock, policy(first_response="1h", resolution="4h",
                                           ladder=[{"after": "0m", "notify": ["assignee"]}]))
    cid = await rig.inbound()
    await rig.run_at(at(1))
    assert "sla.breached" in rig.kinds()
    clock.set(at(1, 5))
    await rig.actions.resolve(CAROL, cid)
    conv = await rig.conv(cid)
    assert conv.first_response_due_at is conv.next_response_due_at is conv.resolution_due_at is None
    assert await rig.timers(cid) == []
    before = list(rig.pings)
    await rig.advance(timedelta(days=3))
    assert rig.pings == before
    assert (await rig.conv(cid)).breached == ["first_response"]


async def test_a_reply_stops_the_escalation_ladder(db: Database, clock: FakeClock) -> None:
    """zammad#3140: escalation went on although an agent had replied."""
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None, ladder=[
        {"after": "0m", "notify": ["assignee"]},
        {"after": "30m", "notify": ["leads"], "raise_priority": "high"},
        {"after": "2h", "notify": ["admins"]},
    ]))
    cid = await rig.inbound()
    await rig.run_at(at(1))
    assert rig.kinds() == ["sla.breached", "sla.escalation"]
    clock.set(at(1, 10))
    await rig.actions.reply(CAROL, cid, "here")
    assert await rig.timers(cid) == []
    await rig.advance(timedelta(hours=5))
    assert rig.kinds() == ["sla.breached", "sla.escalation"]
    assert (await rig.conv(cid)).priority == "normal"


async def test_ladder_steps_fire_in_order_and_raise_priority(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", warn_at=None, ladder=[
        {"after": "0m", "notify": ["assignee"]},
        {"after": "30m", "notify": ["leads"], "raise_priority": "high"},
        {"after": "2h", "notify": ["admins", "bob"], "raise_priority": "urgent"},
    ]))
    cid = await rig.inbound()
    await rig.run_at(at(1))
    await rig.run_at(at(1, 29))
    assert rig.kinds() == ["sla.breached", "sla.escalation"]
    await rig.run_at(at(1, 30))
    conv = await rig.conv(cid)
    assert (conv.priority, conv.priority_rank, conv.escalation_level) == ("high", 2, 1)
    await rig.run_at(at(3))
    conv = await rig.conv(cid)
    assert (conv.priority, conv.priority_rank, conv.escalation_level) == ("urgent", 3, 2)
    steps = await rig.events("sla.escalation", cid)
    assert [(e.data["step"], e.data["notify"], e.created_at) for e in steps] == [
        (1, ["assignee"], at(1)), (2, ["leads"], at(1, 30)), (3, ["admins", "bob"], at(3))]
    assert steps[1].data["priority"] == {"from": "normal", "to": "high"}
    assert [d.get("step") for k, _, d in rig.pings if k == "sla.escalation"] == [1, 2, 3]
    await rig.advance(timedelta(days=1))
    assert len(await rig.events("sla.escalation", cid)) == 3


async def test_pending_after_a_breach_holds_the_ladder_and_shifts_it(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(resolution="1h", warn_at=None, ladder=[
        {"after": "1h", "notify": ["leads"]}]))
    cid = await rig.inbound()
    await rig.run_at(at(1))
    clock.set(at(1, 30))
    await rig.actions.mark_pending(CAROL, cid)
    await rig.run_at(at(5))
    assert rig.kinds() == ["sla.breached"]
    await rig.inbound()  # resumes at 14:00 with 30 minutes of the ladder's hour gone
    await rig.run_at(at(5, 29))
    assert rig.kinds() == ["sla.breached"]
    await rig.run_at(at(5, 30))
    assert rig.kinds() == ["sla.breached", "sla.escalation"]


async def test_tagging_reevaluates_the_policy_and_keeps_elapsed_time(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy("vip", tags=["vip"], first_response="15m", warn_at=None),
                         policy("default", first_response="1h", warn_at=None))
    cid = await rig.inbound()
    assert (await rig.conv(cid)).first_response_due_at == at(1)
    clock.set(at(0, 10))
    await rig.actions.tag(CAROL, cid, ["VIP"])
    conv = await rig.conv(cid)
    assert (conv.sla_policy, conv.first_response_due_at) == ("vip", at(0, 15))
    assert [t.due_at for t in await rig.timers(cid)] == [at(0, 15)]
    clock.set(at(0, 12))
    await rig.actions.untag(CAROL, cid, ["vip"])
    conv = await rig.conv(cid)
    assert (conv.sla_policy, conv.first_response_due_at) == ("default", at(1))
    changes = await rig.events("sla.policy", cid)
    assert [(e.data["previous"], e.data["policy"]) for e in changes] == [
        (None, "default"), ("default", "vip"), ("vip", "default")]
    clock.set(at(0, 20))
    await rig.actions.tag(CAROL, cid, ["vip"])  # already 20 minutes in: the vip deadline has passed
    await rig.drain()
    breaches = await rig.events("sla.breached", cid)
    assert [(e.created_at, e.data["policy"]) for e in breaches] == [(at(0, 15), "vip")]


async def test_reprioritising_reevaluates_and_no_match_means_no_sla(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy("urgent", priorities=["urgent"], first_response="10m"),
                         policy("support", channels=["support"], first_response="1h"))
    social = await rig.inbound(channel="social", kind=Kind.MENTION)
    conv = await rig.conv(social)
    assert (conv.sla_policy, conv.first_response_due_at) == (None, None)
    assert await rig.timers(social) == []
    clock.set(at(0, 5))
    await rig.actions.set_priority(CAROL, social, "urgent")
    conv = await rig.conv(social)
    assert (conv.sla_policy, conv.first_response_due_at) == ("urgent", at(0, 10))
    clock.set(at(0, 6))
    await rig.actions.set_priority(CAROL, social, "low")
    conv = await rig.conv(social)
    assert (conv.sla_policy, conv.first_response_due_at) == (None, None)
    assert await rig.timers(social) == []


async def test_history_import_gets_historically_right_deadlines(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", next_response="30m", warn_at=None))
    clock.set(at(10))
    t0 = at(5)
    cid = await rig.inbound(at=t0)
    await rig.inbound(at=t0 + timedelta(minutes=40), direction=Direction.OUT, member="carol")
    await rig.inbound(at=t0 + timedelta(hours=2))
    conv = await rig.conv(cid)
    assert conv.first_response_due_at is None
    assert conv.next_response_due_at == t0 + timedelta(hours=2, minutes=30)
    await rig.drain()
    breaches = await rig.events("sla.breached", cid)
    assert [(e.data["target"], e.created_at) for e in breaches] == [
        ("next_response", t0 + timedelta(hours=2, minutes=30))]


async def test_reopening_starts_a_new_resolution_clock(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(resolution="8h", warn_at=None))
    cid = await rig.inbound()
    clock.set(at(1))
    await rig.actions.resolve(CAROL, cid)
    assert (await rig.conv(cid)).resolution_due_at is None
    clock.set(at(2))
    assert await rig.inbound() == cid  # within the reopen window: the same conversation
    assert (await rig.conv(cid)).resolution_due_at == at(10)
    clock.set(at(3))
    await rig.actions.resolve(CAROL, cid)
    clock.set(at(4))
    await rig.actions.reopen(CAROL, cid)
    assert (await rig.conv(cid)).resolution_due_at == at(12)
