"""The report figures against the hand-computed fixture (tests/reports/scenario.py), on both databases.

All times are Jakarta local (WIB). The week is Mon 16 Nov 00:00 to Mon 23 Nov 00:00; W46 the week before.
Percentiles interpolate linearly: with n sorted values, the p-th sits at (n - 1) * p / 100.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.models import Conversation
from inbox.reports.numbers import UNASSIGNED, Report, clock_outcome, compute_report
from inbox.reports.period import parse_week
from inbox.sla.engine import SlaState, TargetClock
from inbox.sla.outcomes import outcome_columns
from inbox.sla.policy import SlaSettings
from tests.reports import scenario
from tests.reports.scenario import local

H, M = 3600, 60


@pytest.fixture
async def fixture(db: Database) -> tuple[Report, dict[str, int]]:
    clock = FakeClock(local("2026-11-01 00:00"))
    conf, ids = await scenario.build(db, clock)
    report = await compute_report(db, conf.sla.compile(), parse_week(scenario.WEEK, scenario.TZ), clock.now())
    return report, ids


async def test_conversations_new_and_resolved(fixture: tuple[Report, dict[str, int]]) -> None:
    report, _ = fixture
    # New in W47: C1..C7 = 7; support C1 C2 C5 C6 C7 (dm 4, email C2), social C3 (mention) C4 (comment).
    assert report.new == 7
    assert report.new_by_kind == {"dm": 4, "email": 1, "mention": 1, "comment": 1}
    # Resolved in W47: C1 (Mon), C7 (Tue), C3 (Wed), C6 (Thu), C4 (Fri) = 5; P1 was resolved in W46.
    assert report.resolved == 5
    assert report.resolved_by_kind == {"dm": 3, "mention": 1, "comment": 1}
    support, social = report.by_channel["support"], report.by_channel["social"]
    assert (support.new, support.resolved, social.new, social.resolved) == (5, 3, 2, 2)
    assert support.new_by_kind == {"dm": 4, "email": 1}


async def test_first_response_times(fixture: tuple[Report, dict[str, int]]) -> None:
    report, _ = fixture
    # First replies in W47 (first message -> first reply), wall clock:
    #   P2 Fri 13 16:00 -> Mon 16 09:30 = 2d17h30m = 235800 s; C1 20m = 1200; C2 Mon 16:30 -> Tue 09:45
    #   = 17h15m = 62100; C3 10m = 600; C4 1h = 3600; C6 5m = 300; C7 10m = 600.
    # Sorted: 300 600 600 1200 3600 62100 235800 (n = 7).
    #   median at 3.0 -> 1200; p90 at 5.4 -> 62100 + 0.4 * (235800 - 62100) = 131580.
    fr = report.first_response
    assert (fr.count, fr.median_seconds, fr.p90_seconds) == (7, 1200, 131580)
    # Business time for the 'standard' (calendar) ones, office 09-17 Mon-Fri:
    #   P2 Fri 16-17 + Mon 09-09:30 = 5400; C1 1200; C2 Mon 16:30-17 + Tue 09-09:45 = 4500; C6 300; C7 600.
    #   Sorted 300 600 1200 4500 5400: median 1200; p90 at 3.6 -> 4500 + 0.6 * 900 = 5040.
    assert (fr.business_count, fr.business_median_seconds, fr.business_p90_seconds) == (5, 1200, 5040)
    # Per channel: support 300 600 1200 62100 235800 -> 1200; social 600, 3600 -> 2100.
    assert report.by_channel["support"].first_response_median_seconds == 1200
    assert report.by_channel["social"].first_response_median_seconds == 2100


async def test_next_response_and_resolution_times(fixture: tuple[Report, dict[str, int]]) -> None:
    report, _ = fixture
    # Follow-ups answered in W47: C2 Tue 10:00 -> 10:30 = 1800; C6 Thu 10:00 -> 13:00 = 10800;
    # C7 Tue 10:00 -> 14:00 = 14400 and 15:00 -> 15:30 = 1800. Sorted 1800 1800 10800 14400:
    #   median at 1.5 -> (1800 + 10800) / 2 = 6300; p90 at 2.7 -> 10800 + 0.7 * 3600 = 13320.
    # All inside office hours, so business time is the same.
    nr = report.next_response
    assert (nr.count, nr.median_seconds, nr.p90_seconds) == (4, 6300, 13320)
    assert (nr.business_count, nr.business_median_seconds, nr.business_p90_seconds) == (4, 6300, 13320)
    # Resolutions: C1 1h = 3600; C3 1h = 3600; C4 Thu 12:00 -> Fri 12:00 = 86400; C6 5h = 18000;
    # C7 7h = 25200. Sorted 3600 3600 18000 25200 86400: median 18000; p90 at 3.6 -> 25200 + 0.6 * 61200
    # = 61920. Business (standard only: C1 3600, C6 18000, C7 25200): median 18000; p90 at 1.8 ->
    # 18000 + 0.8 * 7200 = 23760.
    res = report.resolution
    assert (res.count, res.median_seconds, res.p90_seconds) == (5, 18000, 61920)
    assert (res.business_count, res.business_median_seconds, res.business_p90_seconds) == (3, 18000, 23760)


async def test_sla_met_breached_and_worst(fixture: tuple[Report, dict[str, int]]) -> None:
    report, ids = fixture
    # first_response: met C1 (20m < 1h), C3 (10m < 30m), C6, C7; breached C2 (due Tue 09:30: 30m Mon +
    # 30m Tue), C4 (social 30m, due Thu 12:30). P2's breach (due Fri 13 17:00) belongs to W46; C5 is
    # due Mon 23 10:00, after the week.
    assert report.sla["first_response"].as_json() == {"met": 4, "breached": 2, "compliance": 66.7}
    # next_response (2h): met C2 (30m) and C7's second round (30m); breached C6 (due Thu 12:00) and C7's
    # first round (due Tue 12:00; its clock was replaced by the 15:00 follow-up, the event keeps it).
    assert report.sla["next_response"].as_json() == {"met": 2, "breached": 2, "compliance": 50.0}
    # resolution (1d = 24 open hours): met C1, C6, C7; breached P2 (Fri 1h + Mon 8 + Tue 8 + Wed 7 ->
    # Wed 18 16:00) and C2 (Mon 0.5 + Tue 8 + Wed 8 + Thu 7.5 -> Thu 19 16:30). C5 is not due yet.
    assert report.sla["resolution"].as_json() == {"met": 3, "breached": 2, "compliance": 60.0}
    # All targets: 9 met, 6 breached -> 9 / 15 = 60 %.
    assert (report.sla_met, report.sla_breached, report.compliance) == (9, 6, 60.0)
    # Longest overdue, to the end of the week (Mon 23 00:00) when still open:
    #   P2 resolution Wed 16:00 -> 4d8h = 374400; C2 resolution Thu 16:30 -> 3d7h30m = 286200;
    #   C7 next response 12:00 -> 14:00 = 7200; C6 next response 12:00 -> 13:00 = 3600;
    #   C4 first response 12:30 -> 13:00 = 1800 (C2's first response, 15 minutes, is sixth).
    worst = [(b.conversation_id, b.target, b.overdue_seconds, b.ended_at is None)
             for b in report.worst_breaches]
    assert worst == [
        (ids["P2"], "resolution", 374400, True), (ids["C2"], "resolution", 286200, True),
        (ids["C7"], "next_response", 7200, False), (ids["C6"], "next_response", 3600, False),
        (ids["C4"], "first_response", 1800, False),
    ]
    assert report.worst_breaches[0].due_at == local("2026-11-18 16:00")
    assert [b.assignee for b in report.worst_breaches] == ["carol", "bob", "alice", "carol", "carol"]


async def test_people_tags_hours_backlog(fixture: tuple[Report, dict[str, int]]) -> None:
    report, ids = fixture
    # Handled = first reply or resolution in the week, by the conversation's assignee.
    #   carol: P2, C1, C4, C6 (first replies 235800, 1200, 3600, 300 -> median (1200 + 3600) / 2 = 2400);
    #   bob: C2 (62100); alice: C7 (600); unassigned: C3 (600).
    # Replies sent in the week: carol P2 C1 C4 C6 C6 = 5; bob C2 C2 = 2; alice C3 C7 C7 C7 = 4.
    assert {name: (f.handled, f.replies, f.first_response_median_seconds)
            for name, f in report.by_assignee.items()} == {
        "carol": (4, 5, 2400), "bob": (1, 2, 62100), "alice": (1, 4, 600), UNASSIGNED: (1, 0, 600),
    }
    # Tags of conversations created in the week: billing C1 C2, refund C2 C4, praise C3 (P2's billing
    # is from W46).
    assert report.tags == [("billing", 2), ("refund", 2), ("praise", 1)]
    # Customer messages: 11 (C1 1, C2 2, C3 1, C4 1, C5 1, C6 2, C7 3); replies 11; Tue 10:00 has two.
    assert (report.messages_in, report.messages_out, report.notes) == (11, 11, 0)
    grid = {(d, h): n for d, row in enumerate(report.hour_of_week) for h, n in enumerate(row) if n}
    assert grid == {(0, 9): 1, (0, 16): 1, (1, 9): 1, (1, 10): 2, (1, 15): 1, (2, 20): 1, (3, 9): 1,
                    (3, 10): 1, (3, 12): 1, (5, 10): 1}
    assert report.busiest_hour() == (1, 10, 2)
    # Backlog at Mon 23 00:00: P2, C2, C5 open; the oldest, P2 (Fri 13 16:00), waited 9d8h = 806400 s.
    assert report.backlog.as_json() == {"count": 3, "oldest_age_seconds": 806400, "oldest_conversation_id":
                                        ids["P2"], "at": "2026-11-22T17:00:00Z"}
    assert report.by_channel["support"].backlog == 3 and report.by_channel["social"].backlog == 0
    # Daily SLA-time medians: Mon P2 5400 (business) and C1 1200 -> 3300; Tue C2 4500, C7 600 -> 2550;
    # Wed C3 600; Thu C4 3600 (wall, social), C6 300 -> 1950.
    assert [d.first_response_median_sla_seconds for d in report.daily] == [3300, 2550, 600, 1950, None,
                                                                           None, None]
    assert [sum(d.new_by_channel.values()) for d in report.daily] == [2, 1, 1, 2, 0, 1, 0]


async def test_previous_week_and_changes(fixture: tuple[Report, dict[str, int]]) -> None:
    report, _ = fixture
    prev = report.previous
    assert prev is not None and prev.period.label == "2026-W46"
    # W46: P1 and P2 new; P1 resolved (1h); P1's first reply 20m; SLA: P1 first response and resolution
    # met, P2 first response breached -> 2 / 3 = 66.7 %; backlog at Mon 16 00:00: P2, waiting 2d8h.
    assert (prev.new, prev.resolved, prev.first_response.median_seconds, prev.resolution.median_seconds) == \
        (2, 1, 1200, 3600)
    assert (prev.sla_met, prev.sla_breached, prev.compliance) == (2, 1, 66.7)
    assert (prev.backlog.count, prev.backlog.oldest_age_seconds) == (1, 201600)
    assert report.changes() == {
        "new": 5, "new_percent": 250.0, "resolved": 4, "resolved_percent": 400.0,
        "first_response_median_seconds": 0.0, "first_response_p90_seconds": 130380.0,  # 131580 - 1200
        "sla_breached": 5, "compliance_points": -6.7, "backlog": 2,
    }


async def test_json_has_the_documented_keys(fixture: tuple[Report, dict[str, int]]) -> None:
    data = fixture[0].as_json()
    for key in ("period", "timezone", "conversations", "first_response", "sla", "by_channel", "by_assignee",
                "tags", "backlog"):
        assert key in data
    assert data["timezone"] == "Asia/Jakarta" and data["period"]["label"] == "2026-W47"
    assert data["conversations"]["new"] == 7 and data["conversations"]["resolved"] == 5
    assert (data["first_response"]["median_seconds"], data["first_response"]["p90_seconds"]) == (1200, 131580)
    assert data["sla"]["met"] == 9 and data["sla"]["breached"] == 6 and data["sla"]["compliance"] == 60.0


async def test_a_running_week_counts_only_what_happened_so_far(db: Database) -> None:
    clock = FakeClock(local("2026-11-01 00:00"))
    conf, _ = await scenario.build(db, clock)
    # As of Tue 17 Nov 12:00 (not yet happened: everything after), with the same week.
    report = await compute_report(db, conf.sla.compile(), parse_week(scenario.WEEK, scenario.TZ),
                                  local("2026-11-17 12:00"))
    # Resolutions and replies after Tue 12:00 are in the database but not yet "happened" for SLA
    # outcomes; the backlog is taken at the bound: P2, C2, C7 open (C1 resolved Mon).
    assert report.backlog.count == 3
    assert report.backlog.at == local("2026-11-17 12:00")
    # SLA outcomes dated before Tue 12:00: C1 FR met, C7 FR met (09:10), C2 FR breached (09:30),
    # C2 NR met (10:30), C1 resolution met; C7's NR deadline is exactly 12:00, not before the bound.
    assert (report.sla_met, report.sla_breached) == (4, 1)


def test_clock_outcome_rules() -> None:
    policy = SlaSettings.model_validate({"policies": [{"name": "p", "first_response": "1h"}]}).compile()[0]
    start = local("2026-11-16 09:00")
    bound = local("2026-11-23 00:00")
    met = TargetClock.start(start)
    met.finish("met", start + timedelta(minutes=59))
    assert clock_outcome(1, "first_response", met, policy, bound).breached is False  # type: ignore[union-attr]
    late = TargetClock.start(start)
    late.finish("met", start + timedelta(minutes=61))
    outcome = clock_outcome(1, "first_response", late, policy, bound)
    assert outcome is not None and outcome.breached and outcome.at == start + timedelta(hours=1)
    running = TargetClock.start(start)
    assert clock_outcome(1, "first_response", running, policy, start + timedelta(minutes=30)) is None
    stopped = TargetClock.start(start)
    stopped.finish("stopped", start + timedelta(minutes=10))  # resolved without reply, in time
    assert clock_outcome(1, "first_response", stopped, policy, bound) is None
    assert clock_outcome(1, "resolution", running, policy, bound) is None  # the policy has no such target


async def test_the_engine_keeps_each_clock_outcome_in_columns(db: Database) -> None:
    clock = FakeClock(local("2026-11-01 00:00"))
    conf, ids = await scenario.build(db, clock)
    policies = {p.name: p for p in conf.sla.compile()}
    async with db.sessions() as session:
        convs = {c.id: c for c in (await session.execute(select(Conversation))).scalars()}
    for conv in convs.values():
        policy = policies.get(conv.sla_policy) if conv.sla_policy else None
        expected = outcome_columns(SlaState.load(conv.sla_state), policy)
        assert {name: getattr(conv, name) for name in expected} == expected
    c1, c2, c5 = convs[ids["C1"]], convs[ids["C2"]], convs[ids["C5"]]
    # C1 answered at 09:20, in time: met, dated when met.
    assert c1.first_response_outcome_at == c1.first_response_ended_at == local("2026-11-16 09:20")
    # C2 was due Tue 09:30 (Mon 16:30-17:00 + Tue 09:00-09:30) and answered at 09:45: breached at 09:30.
    assert (c2.first_response_outcome_at, c2.first_response_ended_at) == (local("2026-11-17 09:30"),
                                                                          local("2026-11-17 09:45"))
    # C2's follow-up at Tue 10:00 was answered at 10:30; C5 (Sat) still waits: due Mon 23 10:00.
    assert c2.next_response_started_at == local("2026-11-17 10:00")
    assert (c5.first_response_outcome_at, c5.first_response_ended_at) == (local("2026-11-23 10:00"), None)


async def test_a_report_reads_beside_a_writer(db: Database) -> None:
    clock = FakeClock(local("2026-11-01 00:00"))
    conf, ids = await scenario.build(db, clock)
    async with db.reading() as reader:
        await reader.execute(select(Conversation.id))  # the read transaction has begun
        # A writer meanwhile neither waits for the report (SQLite's busy timeout is 30 s) nor fails.
        async with asyncio.timeout(5), db.transaction() as writer:
            await writer.execute(update(Conversation).where(Conversation.id == ids["C5"]).values(subject="x"))
        report = await compute_report(db, conf.sla.compile(), parse_week(scenario.WEEK, scenario.TZ),
                                      clock.now(), previous=False)
    assert report.new == 7


async def test_the_period_alone_has_the_same_figures(db: Database) -> None:
    clock = FakeClock(local("2026-11-01 00:00"))
    conf, _ = await scenario.build(db, clock)
    week = parse_week(scenario.WEEK, scenario.TZ)
    # With the week before, the passes over every conversation (backlog, clock outcomes, worst breaches)
    # serve both periods at once; alone, the period's own: the figures must not depend on it.
    both = (await compute_report(db, conf.sla.compile(), week, clock.now())).as_json()
    alone = (await compute_report(db, conf.sla.compile(), week, clock.now(), previous=False)).as_json()
    assert both.pop("previous") is not None and alone.pop("previous") is None
    assert both.pop("change") and alone.pop("change") == {}
    assert alone == both
    assert alone["backlog"]["count"] == 3 and alone["sla"]["worst_breaches"]
