"""Calendar-bound policies: business-time deadlines, pings that wait for opening hours, urgent steps."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.sla.engine import TIMER_BREACH, TIMER_PING, TIMER_STEP, TIMER_WARNING
from tests.sla.harness import CAROL, make_rig, policy

JAKARTA = ZoneInfo("Asia/Jakarta")  # UTC+7, no DST
OFFICE = {"office": {"timezone": "Asia/Jakarta", "hours": {"weekdays": ["09:00-17:00"]}}}


def wib(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in November 2026, Jakarta time, as UTC (the 6th is a Friday, the 9th a Monday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=JAKARTA).astimezone(UTC)


async def test_friday_afternoon_message_is_due_monday_and_warns_in_office_hours(
    db: Database, clock: FakeClock
) -> None:
    """zammad#4432: reminders came at midnight instead of in service hours."""
    rig = await make_rig(db, clock, policy(calendar="office", first_response="1h"), calendars=OFFICE)
    clock.set(wib(6, 16, 30))
    cid = await rig.inbound()
    conv = await rig.conv(cid)
    assert conv.first_response_due_at == wib(9, 9, 30)
    assert [(t.kind, t.due_at) for t in await rig.timers(cid)] == [
        (TIMER_WARNING, wib(9, 9, 15)), (TIMER_BREACH, wib(9, 9, 30))]
    for instant in (wib(6, 17), wib(7, 0), wib(8, 12), wib(9, 0), wib(9, 9, 14)):
        await rig.run_at(instant)
    assert rig.pings == []
    await rig.run_at(wib(9, 9, 15))
    assert rig.kinds() == ["sla.warning"]
    await rig.run_at(wib(9, 9, 30))
    assert rig.kinds() == ["sla.warning", "sla.breached"]
    breach = (await rig.events("sla.breached", cid))[0]
    assert breach.created_at == wib(9, 9, 30)


async def test_breach_is_recorded_at_the_deadline_but_its_ping_waits_unless_urgent(
    db: Database, clock: FakeClock
) -> None:
    rig = await make_rig(db, clock, policy(
        calendar="office", first_response="1h", warn_at=0.5,
        ladder=[{"after": "0m", "notify": ["assignee"]},
                {"after": "1h", "notify": ["leads"], "urgent": True}],
    ), calendars=OFFICE)
    clock.set(wib(6, 16))
    cid = await rig.inbound()
    await rig.run_at(wib(6, 16, 30))
    assert rig.kinds() == ["sla.warning"]
    await rig.run_at(wib(6, 17))  # the deadline is the closing instant: recorded now, pinged Monday
    assert rig.kinds() == ["sla.warning"]
    assert (await rig.conv(cid)).breached == ["first_response"]
    assert [e.created_at for e in await rig.events("sla.breached", cid)] == [wib(6, 17)]
    assert [(t.kind, t.due_at) for t in await rig.timers(cid)] == [
        (TIMER_STEP, wib(6, 18)), (TIMER_PING, wib(9, 9)), (TIMER_STEP, wib(9, 9))]
    await rig.run_at(wib(6, 18))  # the urgent step does not wait for Monday
    assert rig.kinds() == ["sla.warning", "sla.escalation"]
    assert rig.pings[-1][2]["step"] == 2
    await rig.run_at(wib(8, 23))
    assert len(rig.pings) == 2
    await rig.run_at(wib(9, 9))
    assert rig.kinds() == ["sla.warning", "sla.escalation", "sla.breached", "sla.escalation"]
    assert rig.pings[2][2]["deferred"] is True and rig.pings[3][2]["step"] == 1
    assert await rig.timers(cid) == []


async def test_a_scheduler_down_overnight_does_not_ping_at_night(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(calendar="office", first_response="1h", warn_at=0.5),
                         calendars=OFFICE)
    clock.set(wib(4, 16))
    cid = await rig.inbound()
    clock.set(wib(4, 23))  # nothing ran since 16:00; warning (16:30) and breach (17:00) are overdue
    await rig.drain()
    assert rig.pings == []
    assert [e.created_at for e in await rig.events("sla.breached", cid)] == [wib(4, 17)]
    # The warning was deferred to the morning, then overtaken by the breach: only the breach is pinged.
    assert [(t.kind, t.due_at) for t in await rig.timers(cid)] == [(TIMER_PING, wib(5, 9))]
    await rig.run_at(wib(5, 9))
    assert rig.kinds() == ["sla.breached"]


async def test_pending_over_the_weekend_keeps_business_time(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(calendar="office", resolution="8h", warn_at=None),
                         calendars=OFFICE)
    clock.set(wib(6, 13))
    cid = await rig.inbound()  # Friday 13:00: 4 business hours until the close
    clock.set(wib(6, 15))
    await rig.actions.mark_pending(CAROL, cid)  # 2 h counted
    clock.set(wib(9, 11))
    await rig.inbound()  # Monday 11:00: 6 h left
    assert (await rig.conv(cid)).resolution_due_at == wib(9, 17)


WORKED_EXAMPLE = """
[sla.calendars.office]
timezone = "Asia/Jakarta"
holidays = [2026-12-25]

[sla.calendars.office.hours]
weekdays = ["09:00-12:00", "13:00-17:00"]   # several periods a day
# fri = ["09:00-11:30"]                     # a day's own key replaces 'weekdays' for that day
# sat = ["22:00-02:00"]                     # a period may run past midnight

[[sla.policies]]
name = "standard"
channels = ["support"]
kinds = ["dm", "email", "form"]
calendar = "office"
first_response = "2h"
next_response = "4h"
resolution = "14h"
warn_at = 0.75
ladder = [
  { after = "0m",  notify = ["assignee"] },
  { after = "30m", notify = ["leads"], raise_priority = "high" },
  { after = "2h",  notify = ["admins"], urgent = true },
]
"""


async def test_the_worked_example_of_the_docs(db: Database, clock: FakeClock) -> None:
    """docs/sla-engine.md, step by step; two periods a day (chatwoot#14009 allowed only one)."""
    sla = tomllib.loads(WORKED_EXAMPLE)["sla"]
    rig = await make_rig(db, clock, *sla["policies"], calendars=sla["calendars"])
    clock.set(wib(6, 15, 30))
    cid = await rig.inbound()
    conv = await rig.conv(cid)
    assert (conv.first_response_due_at, conv.resolution_due_at) == (wib(9, 9, 30), wib(10, 15, 30))
    assert (await rig.timers(cid))[0].due_at == wib(9, 9)  # the warning waits for Monday's opening
    for instant in (wib(6, 17), wib(7, 3), wib(9, 8, 59)):
        await rig.run_at(instant)
    assert rig.pings == []
    await rig.run_at(wib(9, 9))
    await rig.run_at(wib(9, 9, 30))
    await rig.run_at(wib(9, 10))
    assert [(k, d.get("step")) for k, _, d in rig.pings] == [
        ("sla.warning", None), ("sla.breached", None), ("sla.escalation", 1), ("sla.escalation", 2)]
    assert (await rig.conv(cid)).priority == "high"
    clock.set(wib(9, 10, 15))
    await rig.actions.reply(CAROL, cid, "sorry for the wait")
    clock.set(wib(9, 11, 50))
    await rig.inbound()
    assert (await rig.conv(cid)).next_response_due_at == wib(9, 16, 50)
    clock.set(wib(9, 14))
    await rig.actions.mark_pending(CAROL, cid)
    clock.set(wib(10, 10))
    await rig.inbound()
    conv = await rig.conv(cid)
    assert (conv.next_response_due_at, conv.resolution_due_at) == (wib(10, 13, 50), wib(11, 11, 30))
    assert len(rig.pings) == 4  # step 3 (urgent, 11:30 Monday) was cancelled by the reply
