"""A report as Markdown (``inbox report --format md``, and the sample in docs/reports.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from inbox.durations import format_duration
from inbox.reports.numbers import DurationStats, Report
from inbox.sla.policy import TARGETS

_NAMES = {"first_response": "First response", "next_response": "Next response", "resolution": "Resolution"}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _time(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(timedelta(seconds=round(seconds)))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:g} %"


def _signed(value: float | None, *, duration: bool = False, unit: str = "") -> str:
    if value is None:
        return "-"
    if duration:
        sign = "+" if value > 0 else "-" if value < 0 else "±"
        return sign + format_duration(timedelta(seconds=abs(round(value))))
    return f"{value:+g}{unit}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _duration_row(name: str, stats: DurationStats) -> list[object]:
    return [_NAMES[name], stats.count, _time(stats.median_seconds), _time(stats.p90_seconds),
            stats.business_count, _time(stats.business_median_seconds), _time(stats.business_p90_seconds)]


def render_markdown(report: Report, *, chart_path: str | None = None) -> str:
    """The whole report as a Markdown document; ``chart_path`` embeds the chart image."""
    period = report.period
    last_day = period.local_days()[-1].isoformat()
    out = [f"# Response-time report {period.label}", "",
           f"{period.local_start().date().isoformat()} to {last_day} ({period.timezone}); "
           f"period `[{period.local_start().isoformat()}, {period.local_end().isoformat()})`.", ""]
    if chart_path:
        out += [f"![New conversations per day and median first response]({chart_path})", ""]
    prev = report.previous
    change = report.changes()
    out += ["## Headline", ""]
    rows: list[list[object]] = [
        ["New conversations", report.new, prev.new if prev else "-", _signed(change.get("new"))],
        ["Resolved", report.resolved, prev.resolved if prev else "-", _signed(change.get("resolved"))],
        ["First response, median", _time(report.first_response.median_seconds),
         _time(prev.first_response.median_seconds) if prev else "-",
         _signed(change.get("first_response_median_seconds"), duration=True)],
        ["First response, p90", _time(report.first_response.p90_seconds),
         _time(prev.first_response.p90_seconds) if prev else "-",
         _signed(change.get("first_response_p90_seconds"), duration=True)],
        ["SLA compliance", _percent(report.compliance), _percent(prev.compliance) if prev else "-",
         _signed(change.get("compliance_points"), unit=" pt")],
        ["SLA breaches", report.sla_breached, prev.sla_breached if prev else "-",
         _signed(change.get("sla_breached"))],
        ["Backlog at the end", report.backlog.count, prev.backlog.count if prev else "-",
         _signed(change.get("backlog"))],
    ]
    previous_title = f"previous ({prev.period.label})" if prev else "previous"
    out += _table(["", "this period", previous_title, "change"], rows)
    out += ["", "## Response times", "",
            *_table(["", "count", "median", "p90", "in business hours", "median", "p90"],
                    [_duration_row("first_response", report.first_response),
                     _duration_row("next_response", report.next_response),
                     _duration_row("resolution", report.resolution)]),
            "", "Medians and p90 use linear interpolation between closest ranks (see docs/reports.md).", ""]
    out += ["## SLA", "", *_table(["target", "met", "breached", "compliance"], [
        [_NAMES[name], report.sla[name].met, report.sla[name].breached, _percent(report.sla[name].compliance)]
        for name in TARGETS if name in report.sla
    ] + [["**all**", report.sla_met, report.sla_breached, _percent(report.compliance)]]), ""]
    if report.worst_breaches:
        out += ["Worst breaches (longest overdue):", "", *_table(
            ["conversation", "channel", "target", "due", "overdue", "assignee"],
            [[f"#{b.conversation_id}", b.channel, _NAMES[b.target],
              b.due_at.astimezone(period.zone).strftime("%Y-%m-%d %H:%M"),
              _time(b.overdue_seconds) + (" (still open)" if b.ended_at is None else ""), b.assignee or "-"]
             for b in report.worst_breaches]), ""]
    out += ["## By channel", "", *_table(
        ["channel", "new", "resolved", "customer messages", "replies", "median first response", "backlog"],
        [[name, f.new, f.resolved, f.messages_in, f.messages_out, _time(f.first_response_median_seconds),
          f.backlog] for name, f in sorted(report.by_channel.items())]), ""]
    kinds = sorted(set(report.new_by_kind) | set(report.resolved_by_kind))
    if kinds:
        out += ["By kind: " + ", ".join(
            f"{kind} {report.new_by_kind.get(kind, 0)} new / {report.resolved_by_kind.get(kind, 0)} resolved"
            for kind in kinds) + ".", ""]
    out += ["## By assignee", "", *_table(
        ["member", "handled", "replies", "median first response"],
        [[name, f.handled, f.replies, _time(f.first_response_median_seconds)]
         for name, f in sorted(report.by_assignee.items(),
                               key=lambda i: (-i[1].handled, -i[1].replies, i[0]))]),
        "", "Handled: conversations whose first reply or resolution fell in the period.", ""]
    if report.tags:
        out += ["## Top tags", "", ", ".join(f"`#{name}` {count}" for name, count in report.tags), ""]
    out += ["## Customer messages per hour of the week", "",
            *_table(["", *(f"{h:02d}" for h in range(24))],
                    [[_DAYS[d], *(n or "·" for n in row)] for d, row in enumerate(report.hour_of_week)]), ""]
    backlog = report.backlog
    out += ["## Backlog", ""]
    if backlog.count:
        out.append(f"{backlog.count} conversations open at the end of the period; the oldest, "
                   f"#{backlog.oldest_conversation_id}, had waited {_time(backlog.oldest_age_seconds)}.")
    else:
        out.append("Nothing was open at the end of the period.")
    return "\n".join(out) + "\n"
