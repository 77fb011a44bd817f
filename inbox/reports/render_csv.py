"""A report as CSV in long form: one figure per row (``metric``, ``group``, ``value``), for spreadsheets.

``group`` is empty for the whole team, or ``channel=NAME``, ``kind=KIND``, ``member=NAME``, ``tag=NAME``,
``date=YYYY-MM-DD`` or ``hour=mon-09``. Times are in seconds; compliance is in percent.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from inbox.clock import isoformat_utc
from inbox.reports.numbers import DurationStats, Report

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Row = tuple[str, str, object]


def _durations(name: str, stats: DurationStats) -> Iterator[Row]:
    yield f"{name}.count", "", stats.count
    yield f"{name}.median_seconds", "", stats.median_seconds
    yield f"{name}.p90_seconds", "", stats.p90_seconds
    yield f"{name}.business.count", "", stats.business_count
    yield f"{name}.business.median_seconds", "", stats.business_median_seconds
    yield f"{name}.business.p90_seconds", "", stats.business_p90_seconds


def rows(report: Report) -> Iterator[Row]:
    """Every figure of the report as (metric, group, value)."""
    period = report.period
    yield "period.label", "", period.label
    yield "period.start", "", isoformat_utc(period.start)
    yield "period.end", "", isoformat_utc(period.end)
    yield "timezone", "", period.timezone
    yield "conversations.new", "", report.new
    yield "conversations.resolved", "", report.resolved
    for kind, count in sorted(report.new_by_kind.items()):
        yield "conversations.new", f"kind={kind}", count
    for kind, count in sorted(report.resolved_by_kind.items()):
        yield "conversations.resolved", f"kind={kind}", count
    yield from _durations("first_response", report.first_response)
    yield from _durations("next_response", report.next_response)
    yield from _durations("resolution", report.resolution)
    yield "sla.met", "", report.sla_met
    yield "sla.breached", "", report.sla_breached
    yield "sla.compliance", "", report.compliance
    for target, outcome in report.sla.items():
        yield f"sla.{target}.met", "", outcome.met
        yield f"sla.{target}.breached", "", outcome.breached
        yield f"sla.{target}.compliance", "", outcome.compliance
    for rank, breach in enumerate(report.worst_breaches, start=1):
        group = f"rank={rank}"
        yield "worst_breach.conversation_id", group, breach.conversation_id
        yield "worst_breach.target", group, breach.target
        yield "worst_breach.due_at", group, isoformat_utc(breach.due_at)
        yield "worst_breach.overdue_seconds", group, round(breach.overdue_seconds, 1)
    for name, figures in sorted(report.by_channel.items()):
        for key, value in figures.as_json().items():
            if not isinstance(value, dict):
                yield f"channel.{key}", f"channel={name}", value
    for name, member in sorted(report.by_assignee.items()):
        for key, value in member.as_json().items():
            yield f"assignee.{key}", f"member={name}", value
    for tag, count in report.tags:
        yield "tag.conversations", f"tag={tag}", count
    for day in report.daily:
        for channel, count in sorted(day.new_by_channel.items()):
            yield "daily.new", f"date={day.day.isoformat()};channel={channel}", count
        yield "daily.first_response_median_sla_seconds", f"date={day.day.isoformat()}", \
            day.first_response_median_sla_seconds
    for weekday, hours in enumerate(report.hour_of_week):
        for hour, count in enumerate(hours):
            if count:
                yield "messages.in", f"hour={_DAYS[weekday]}-{hour:02d}", count
    yield "messages.in", "", report.messages_in
    yield "messages.out", "", report.messages_out
    yield "messages.notes", "", report.notes
    yield "backlog.count", "", report.backlog.count
    yield "backlog.oldest_age_seconds", "", report.backlog.oldest_age_seconds
    yield "backlog.oldest_conversation_id", "", report.backlog.oldest_conversation_id
    for key, value in report.changes().items():
        yield f"change.{key}", "", value


def render_csv(report: Report) -> str:
    """The report as CSV text with a header row; empty cells for missing values."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("metric", "group", "value"))
    for metric, group, value in rows(report):
        writer.writerow((metric, group, "" if value is None else value))
    return buffer.getvalue()
