"""The operator view: policy, each target's deadline and state, remaining or overdue time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.errors import ConversationNotFound
from inbox.sla.explain import SlaExplanation, explain
from tests.sla.harness import CAROL, Rig, make_rig, policy

MON_9 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def view(rig: Rig, cid: int) -> SlaExplanation:
    async with rig.db.sessions() as session:
        return await explain(session, cid, rig.engine, rig.clock.now())


async def test_explains_each_target_through_a_conversation(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(first_response="1h", next_response="30m", resolution="1d",
                                           ladder=[{"after": "0m", "notify": ["assignee"]}]))
    cid = await rig.inbound()
    clock.set(MON_9 + timedelta(minutes=20))
    shown = await view(rig, cid)
    assert (shown.policy, shown.calendar, shown.open_now, shown.ladder_length) == ("default", None, None, 1)
    first, nxt, resolution = shown.targets
    assert (first.name, first.state, first.due_at, first.remaining) == (
        "first_response", "running", MON_9 + timedelta(hours=1), timedelta(minutes=40))
    assert first.warn_at == MON_9 + timedelta(minutes=45)
    assert (nxt.name, nxt.state, nxt.due_at) == ("next_response", "idle", None)
    assert (resolution.state, resolution.remaining) == ("running", timedelta(hours=23, minutes=40))
    assert [t.kind for t in shown.timers] == ["sla.warning", "sla.breach", "sla.warning", "sla.breach"]

    await rig.run_at(MON_9 + timedelta(hours=1, minutes=10))
    first = (await view(rig, cid)).targets[0]
    assert (first.state, first.breached_at, first.overdue, first.remaining, first.ladder_steps_done) == (
        "breached", MON_9 + timedelta(hours=1), timedelta(minutes=10), None, 1)

    await rig.actions.reply(CAROL, cid, "sorry")
    clock.set(MON_9 + timedelta(hours=2))
    await rig.inbound()
    clock.set(MON_9 + timedelta(hours=2, minutes=5))
    await rig.actions.mark_pending(CAROL, cid)
    clock.set(MON_9 + timedelta(hours=3))
    shown = await view(rig, cid)
    first, nxt, resolution = shown.targets
    assert (first.state, first.ended_at, first.overdue) == (
        "breached", MON_9 + timedelta(hours=1, minutes=10), timedelta(minutes=10))
    assert (nxt.state, nxt.due_at, nxt.remaining) == ("paused", None, timedelta(minutes=25))
    assert shown.paused_since == MON_9 + timedelta(hours=2, minutes=5)
    assert shown.breached == ["first_response"]

    await rig.actions.reply(CAROL, cid, "done")
    await rig.actions.resolve(CAROL, cid)
    shown = await view(rig, cid)
    assert [t.state for t in shown.targets] == ["breached", "met", "met"]
    assert shown.timers == []
    json.dumps(shown.as_dict())  # the CLI prints this


async def test_calendar_and_stopped_targets(db: Database, clock: FakeClock) -> None:
    office = {"office": {"timezone": "UTC", "hours": {"weekdays": ["09:00-17:00"]}}}
    rig = await make_rig(db, clock, policy(calendar="office", first_response="2h"), calendars=office)
    cid = await rig.inbound()
    clock.set(MON_9 + timedelta(hours=9))  # 18:00, closed
    shown = await view(rig, cid)
    assert (shown.calendar, shown.open_now) == ("office", False)
    await rig.actions.resolve(CAROL, cid)
    shown = await view(rig, cid)
    assert [(t.state, t.remaining) for t in shown.targets] == [("stopped", None)]


async def test_no_policy_and_missing_conversation(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, policy(channels=["social"], first_response="1h"))
    cid = await rig.inbound()
    shown = await view(rig, cid)
    assert (shown.policy, shown.targets, shown.timers) == (None, [], [])
    with pytest.raises(ConversationNotFound):
        await view(rig, 999)
