"""Turning a computed Report into the platform-neutral ReportView that chats render."""

from __future__ import annotations

from datetime import timedelta

from inbox.reports.numbers import UNASSIGNED, DurationStats, Report
from inbox.sla.policy import TARGETS
from inbox.views import (
    ReportAssignee,
    ReportBreach,
    ReportChannel,
    ReportDuration,
    ReportTarget,
    ReportView,
)

CHAT_BREACHES = 3
CHAT_ASSIGNEES = 6
CHAT_TAGS = 5


def _delta(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=round(seconds))


def _duration(name: str, stats: DurationStats) -> ReportDuration:
    return ReportDuration(
        name=name, count=stats.count, median=_delta(stats.median_seconds), p90=_delta(stats.p90_seconds),
        business_median=_delta(stats.business_median_seconds),
        business_p90=_delta(stats.business_p90_seconds),
    )


def report_view(report: Report, lang: str = "en", *, has_chart: bool = False) -> ReportView:
    """The chat view of a report: headline figures, the worst few breaches, channels, people, tags."""
    period, zone = report.period, report.period.zone
    busiest = report.busiest_hour()
    assignees = sorted(report.by_assignee.items(),
                       key=lambda item: (-item[1].handled, -item[1].replies, item[0]))
    previous = report.previous
    return ReportView(
        lang=lang, scope=period.kind, label=period.label, start=period.start.astimezone(zone),
        end=period.end.astimezone(zone), timezone=period.timezone, new=report.new, resolved=report.resolved,
        durations=(_duration("first_response", report.first_response),
                   _duration("next_response", report.next_response),
                   _duration("resolution", report.resolution)),
        targets=tuple(ReportTarget(name=name, met=report.sla[name].met, breached=report.sla[name].breached,
                                   compliance=report.sla[name].compliance)
                      for name in TARGETS if name in report.sla),
        met=report.sla_met, breached=report.sla_breached, compliance=report.compliance,
        worst=tuple(ReportBreach(conversation_id=b.conversation_id, channel=b.channel, target=b.target,
                                 due_at=b.due_at.astimezone(zone),
                                 overdue=timedelta(seconds=round(b.overdue_seconds)),
                                 assignee=b.assignee, open=b.ended_at is None)
                    for b in report.worst_breaches[:CHAT_BREACHES]),
        channels=tuple(ReportChannel(name=name, new=f.new, resolved=f.resolved, backlog=f.backlog,
                                     first_response_median=_delta(f.first_response_median_seconds))
                       for name, f in sorted(report.by_channel.items())),
        assignees=tuple(ReportAssignee(name=None if name == UNASSIGNED else name, handled=f.handled,
                                       replies=f.replies,
                                       first_response_median=_delta(f.first_response_median_seconds))
                        for name, f in assignees[:CHAT_ASSIGNEES]),
        tags=tuple(report.tags[:CHAT_TAGS]),
        busiest_weekday=busiest[0] if busiest else None, busiest_hour=busiest[1] if busiest else None,
        busiest_count=busiest[2] if busiest else 0,
        backlog=report.backlog.count, oldest_age=_delta(report.backlog.oldest_age_seconds),
        oldest_id=report.backlog.oldest_conversation_id,
        previous_label=previous.period.label if previous else None,
        previous_new=previous.new if previous else None,
        previous_resolved=previous.resolved if previous else None,
        previous_first_response_median=_delta(previous.first_response.median_seconds) if previous else None,
        previous_compliance=previous.compliance if previous else None,
        previous_backlog=previous.backlog.count if previous else None,
        has_chart=has_chart,
    )
