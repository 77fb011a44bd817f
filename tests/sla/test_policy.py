"""SLA config validation (problems name their key), first-match policy choice, and the pure clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from inbox.settings import ConfigError, settings_from_dict
from inbox.sla.calendar import BusinessCalendar
from inbox.sla.engine import SlaState, TargetClock, close, on_inbound, on_outbound, reopen, sync_pause
from inbox.sla.policy import ConversationFacts, Policy, SlaSettings, match_policy

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday
OFFICE = BusinessCalendar.from_config("UTC", {"weekdays": ["09:00-17:00"]})


def problems(sla: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"sla": sla}, environ={})
    return info.value.problems


def test_calendar_problems_name_the_day() -> None:
    found = problems({"calendars": {"office": {
        "timezone": "Europe/Berlin", "hours": {"mon": ["09:00-25:00"], "funday": ["10:00-11:00"]}}}})
    assert found == [
        "sla.calendars.office.hours.mon: bad time '25:00' in '09:00-25:00' "
        "(use HH:MM from 00:00 to 23:59; 24:00 only as an end)",
        "sla.calendars.office.hours.funday: unknown key",
    ]
    found = problems({"calendars": {"x": {"timezone": "Mars/Base", "hours": {"weekdays": "09:00-17:00"}}}})
    assert found == [
        "sla.calendars.x.timezone: unknown timezone 'Mars/Base' (use an IANA name such as Asia/Jakarta)"]


def test_calendar_wide_problems_name_the_calendar() -> None:
    found = problems({"calendars": {"late": {"timezone": "UTC",
                                             "hours": {"mon": ["22:00-03:00"], "tue": ["02:00-05:00"]}}}})
    assert found == ["sla.calendars.late: periods overlap: mon 22:00-03:00 and tue 02:00-05:00"]


def test_policy_problems_name_the_key() -> None:
    found = problems({"calendars": {"office": {"timezone": "UTC", "hours": {"weekdays": ["09:00-17:00"]}}},
                      "policies": [{"name": "a", "calendar": "office", "first_response": "1h"},
                                   {"name": "b", "calendar": "x", "first_response": "2h"},
                                   {"name": "a"}]})
    assert found == ["sla.policies[1].calendar: unknown calendar 'x'",
                     "sla.policies[2].name: duplicate policy name 'a'"]
    found = problems({"policies": [{"name": "p", "kinds": ["fax"], "first_response": "0s", "warn_at": 1.5,
                                    "ladder": [{"after": "1h", "notify": ["leads"]}, {"after": "5m"}]}]})
    assert found == [
        "sla.policies[0].kinds[0]: Input should be 'dm', 'mention', 'comment', 'email' or 'form'",
        "sla.policies[0].first_response: '0s' must be longer than zero",
        "sla.policies[0].warn_at: Input should be less than 1",
        "sla.policies[0].ladder[1]: a ladder step needs 'notify' or 'raise_priority'",
    ]
    found = problems({"policies": [{"name": "p", "ladder": [{"after": "1h", "notify": ["leads"]},
                                                            {"after": "0m", "notify": ["admins"]}]}]})
    assert found == ["sla.policies[0].ladder: ladder steps must be listed in order of 'after'"]


def test_compiled_policies_and_first_match_wins() -> None:
    settings = SlaSettings.model_validate({
        "calendars": {"office": {"timezone": "Asia/Jakarta", "hours": {"weekdays": "09:00-17:00", "fri": []},
                                 "holidays": ["2026-12-25"]}},
        "policies": [
            {"name": "vip", "tags": ["#VIP", "press"], "first_response": "15m", "calendar": "office",
             "ladder": [{"after": 0, "notify": ["@bob"], "urgent": True}]},
            {"name": "dm", "channels": ["support"], "kinds": ["dm"], "priorities": ["high", "urgent"],
             "first_response": "1h", "next_response": "30m", "resolution": "2d", "warn_at": 0.5},
            {"name": "exempt", "tags": ["spam"]},
        ]})
    vip, dm, exempt = policies = settings.compile()
    assert vip.tags == frozenset({"vip", "press"}) and vip.calendar is not None
    assert vip.ladder[0].after == timedelta(0) and vip.ladder[0].notify == ("bob",)
    assert dm.targets == {"first_response": timedelta(hours=1), "next_response": timedelta(minutes=30),
                          "resolution": timedelta(days=2)}
    assert exempt.targets == {}

    def pick(**facts: Any) -> str | None:
        chosen = match_policy(policies, ConversationFacts(**{
            "channel": "support", "kind": "dm", "priority": "high", "tags": frozenset(), **facts}))
        return chosen.name if chosen else None

    assert pick(tags=frozenset({"press", "x"})) == "vip"
    assert pick() == "dm"
    assert pick(priority="normal") is None
    assert pick(kind="mention", tags=frozenset({"spam"})) == "exempt"
    assert pick(channel="social") is None


def test_clock_keeps_segments_and_measures_them_under_any_calendar() -> None:
    clock = TargetClock.start(T0 + timedelta(hours=7))  # Monday 16:00
    clock.pause(T0 + timedelta(hours=7, minutes=30))
    clock.resume(T0 + timedelta(days=1, hours=-1))  # Tuesday 08:00
    now = T0 + timedelta(days=1, hours=1)  # Tuesday 10:00
    assert clock.elapsed(None, now) == timedelta(hours=2, minutes=30)
    assert clock.elapsed(OFFICE, now) == timedelta(hours=1, minutes=30)
    assert clock.instant_at(None, timedelta(hours=1)) == T0 + timedelta(days=1, hours=-0.5)
    assert clock.instant_at(OFFICE, timedelta(hours=1)) == T0 + timedelta(days=1, minutes=30)
    assert TargetClock.load(clock.dump()) == clock


def test_rules_of_the_clock_without_a_database() -> None:
    state = SlaState()
    on_inbound(state, T0)
    assert set(state.targets) == {"first_response", "resolution"}
    on_outbound(state, T0 - timedelta(minutes=1))  # an older echo of ours does not meet a newer wait
    assert not state.targets["first_response"].ended
    on_outbound(state, T0 + timedelta(minutes=5))
    assert state.targets["first_response"].end == "met"
    on_inbound(state, T0 + timedelta(minutes=10))
    sync_pause(state, "pending", None, T0 + timedelta(minutes=12))
    sync_pause(state, "open", None, T0 + timedelta(minutes=20))
    assert state.targets["next_response"].segments == [
        (T0 + timedelta(minutes=10), T0 + timedelta(minutes=12)), (T0 + timedelta(minutes=20), None)]
    close(state, T0 + timedelta(hours=1))
    assert [(n, c.end) for n, c in state.targets.items()] == [
        ("first_response", "met"), ("resolution", "met"), ("next_response", "stopped")]
    reopen(state, T0 + timedelta(hours=2))
    assert state.targets["next_response"].running and state.targets["resolution"].running
    assert state.targets["first_response"].end == "met"
    assert SlaState.load(state.dump()) == state


def test_policy_pause_rules() -> None:
    keeps_running = Policy(name="p", targets={}, pause_when_pending=False)
    assert not keeps_running.pauses_for("pending") and keeps_running.pauses_for("snoozed")
    assert not keeps_running.pauses_for("open")
