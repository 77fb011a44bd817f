"""Plain-text rendering of Views, for the terminal console and for tests.

Buttons are shown with the command they run (``[Take → /assign 12 me]``), since a terminal
cannot press them. The output passes through ``terminal_safe``: customer text can carry escape
sequences or bidi overrides that must not reach an operator's terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from inbox.durations import format_duration
from inbox.i18n import t
from inbox.textsafe import terminal_safe
from inbox.views import (
    BudgetNotice,
    Button,
    Confirmation,
    ConversationCard,
    ConversationDetailView,
    ConversationNotice,
    Digest,
    DigestItem,
    ErrorView,
    FailedDeliveryNotice,
    HealthNotice,
    HelpEntry,
    HelpView,
    QueuePage,
    ReportDuration,
    ReportView,
    SlaNotice,
    SlaOverview,
    SlaView,
    TemplateList,
    TemplateView,
    View,
)

TIME_FORMAT = "%Y-%m-%d %H:%M %Z"
_MARKERS = {"in": "<", "out": ">", "note": "#"}
_TEMPLATE_PREVIEW = 70


def render(view: View) -> str:
    """The whole view as plain text."""
    renderer = _RENDERERS.get(type(view))
    text = renderer(view) if renderer else repr(view)
    return terminal_safe(text.rstrip("\n"))


def when(instant: datetime | None) -> str:
    """An instant (already in the team's timezone) as ``2026-11-02 16:00 WIB``."""
    return instant.strftime(TIME_FORMAT) if instant else "-"


def value_word(lang: str, value: str) -> str:
    """A status, priority or kind in the view's language (unknown values as they are)."""
    key = f"value.{value}"
    text = t(lang, key)
    return value if text == key else text


def target_word(lang: str, name: str) -> str:
    """An SLA target's name in the view's language."""
    text = t(lang, f"sla.{name}")
    return name if text == f"sla.{name}" else text


def _breached(lang: str, targets: Iterable[str]) -> str:
    return t(lang, "label.breached", targets=", ".join(target_word(lang, b) for b in targets))


def _buttons(buttons: Iterable[Button]) -> str:
    return " ".join(f"[{b.label} → {b.command}]" for b in buttons)


def due_phrase(lang: str, at: datetime | None, remaining: timedelta | None) -> str | None:
    """"Due in 15m (at …)" or "overdue by …"; None when there is no deadline."""
    if at is None or remaining is None:
        return None
    if remaining.total_seconds() >= 0:
        return t(lang, "label.due_in", duration=format_duration(remaining), at=when(at))
    return t(lang, "label.overdue", duration=format_duration(-remaining), at=when(at))


def _indent(text: str, prefix: str) -> str:
    lines = text.splitlines() or [""]
    return "\n".join([lines[0], *(prefix + line for line in lines[1:])])


def _card_lines(card: ConversationCard, *, buttons: bool = True) -> list[str]:
    lang = card.lang
    lines = [f"#{card.id} [{value_word(lang, card.priority)}] {value_word(lang, card.status)} · "
             f"{card.channel}/{value_word(lang, card.kind)} · {card.contact}"]
    if card.excerpt:
        lines.append(f'  "{card.excerpt}"')
    facts = [t(lang, "label.assignee", member=card.assignee) if card.assignee
             else t(lang, "label.unassigned")]
    if card.tags:
        facts.append(t(lang, "label.tags", tags=", ".join(card.tags)))
    due = due_phrase(lang, card.due_at, card.remaining)
    if due:
        facts.append(due)
    if card.snoozed_until is not None:
        facts.append(t(lang, "label.snoozed_until", at=when(card.snoozed_until)))
    if card.escalation_level:
        facts.append(t(lang, "label.escalation", level=card.escalation_level))
    lines.append("  " + " · ".join(facts))
    if card.breached:
        lines.append("  " + _breached(lang, card.breached))
    if buttons and card.buttons:
        lines.append("  " + _buttons(card.buttons))
    return lines


def _render_card(view: Any) -> str:
    return "\n".join(_card_lines(view))


def _render_queue(view: Any) -> str:
    page: QueuePage = view
    lang = page.lang
    title = (t(lang, "queue.title_filtered", filters=page.filters, page=page.page) if page.filters
             else t(lang, "queue.title", page=page.page))
    out = [title, ""]
    if not page.cards:
        out.append(t(lang, "queue.empty") if page.page == 1 else t(lang, "queue.empty_page", page=page.page))
    for card in page.cards:
        out.extend(_card_lines(card))
        out.append("")
    if page.buttons:
        out.append(_buttons(page.buttons))
    return "\n".join(out)


def _render_detail(view: Any) -> str:
    detail: ConversationDetailView = view
    lang, card = detail.lang, detail.card
    out = [t(lang, "detail.title", id=card.id, kind=value_word(lang, card.kind), channel=card.channel,
             contact=card.contact)]
    out.extend(_card_lines(card)[1:])
    if detail.subject:
        out.append(t(lang, "detail.subject", subject=detail.subject))
    out += ["", t(lang, "detail.messages")]
    if detail.older_messages:
        out.append("  " + t(lang, "detail.older", count=detail.older_messages))
    if not detail.messages:
        out.append("  " + t(lang, "detail.no_messages"))
    for m in detail.messages:
        author = f"{m.author} ({t(lang, 'label.note')})" if m.direction == "note" else m.author
        files = "".join(f" [{a}]" for a in m.attachments)
        prefix = f"  {_MARKERS.get(m.direction, '?')} {when(m.at)} {author}: "
        out.append(prefix + _indent(m.text, " " * len(prefix)) + files)
    if detail.events:
        out += ["", t(lang, "detail.events")]
        out += ["  " + t(lang, "detail.event", at=when(e.at), type=e.type, actor=e.actor)
                for e in detail.events]
    return "\n".join(out)


def _render_confirmation(view: Any) -> str:
    done: Confirmation = view
    return done.message + (f"\n{_buttons(done.buttons)}" if done.buttons else "")


def _render_error(view: Any) -> str:
    error: ErrorView = view
    text = error.message
    if error.usage:
        text += "\n" + t(error.lang, "label.usage", usage=error.usage)
    return text


def _help_detail(lang: str, entry: HelpEntry) -> list[str]:
    out = [entry.usage, "  " + entry.summary]
    if entry.aliases:
        out.append("  " + t(lang, "help.aliases", aliases=", ".join(f"/{a}" for a in entry.aliases)))
    out.append("  " + t(lang, "help.role", role=t(lang, f"role.{entry.role}")))
    for sub, role in entry.subcommand_roles:
        out.append("  " + t(lang, "help.subcommand_role", subcommand=sub, role=t(lang, f"role.{role}")))
    if entry.example:
        out.append("  " + t(lang, "help.example", example=entry.example))
    return out


def _render_help(view: Any) -> str:
    help_view: HelpView = view
    lang = help_view.lang
    if help_view.detail is not None:
        return "\n".join(_help_detail(lang, help_view.detail))
    out = [t(lang, "help.title")]
    for entry in help_view.entries:
        needs = ""
        if entry.role != "agent":
            needs = " " + t(lang, "help.needs_role", role=t(lang, f"role.{entry.role}"))
        by_role: dict[str, list[str]] = {}
        for sub, role in entry.subcommand_roles:
            by_role.setdefault(role, []).append(sub)
        for role, subs in by_role.items():
            needs += " " + t(lang, "help.sub_needs_role", subcommands=", ".join(subs),
                             role=t(lang, f"role.{role}"))
        names = ", ".join([f"/{entry.name}", *(f"/{a}" for a in entry.aliases)])
        out.append(f"  {names}{needs}")
        out.append(f"      {entry.summary}")
    out.append(t(lang, "help.more"))
    return "\n".join(out)


def _render_templates(view: Any) -> str:
    listing: TemplateList = view
    if not listing.templates:
        return t(listing.lang, "template.empty")
    out = [t(listing.lang, "template.title")]
    for item in listing.templates:
        flat = " ".join(item.text.split())
        preview = flat if len(flat) <= _TEMPLATE_PREVIEW else flat[:_TEMPLATE_PREVIEW - 1] + "…"
        out.append(f"  :{item.name} — {preview}")
    return "\n".join(out)


def _render_template(view: Any) -> str:
    shown: TemplateView = view
    lang = shown.lang
    out = [f":{shown.template.name}", shown.template.text]
    if shown.placeholders:
        names = ", ".join("{" + p + "}" for p in shown.placeholders)
        out.append(t(lang, "template.placeholders", placeholders=names))
    out.append(t(lang, "template.send_hint", name=shown.template.name))
    return "\n".join(out)


def _render_sla(view: Any) -> str:
    sla: SlaView = view
    lang = sla.lang
    out = [t(lang, "sla.title", id=sla.conversation_id, status=value_word(lang, sla.status)),
           t(lang, "sla.policy", policy=sla.policy) if sla.policy else t(lang, "sla.no_policy")]
    for d in sla.deadlines:
        value = due_phrase(lang, d.due_at, d.remaining) or t(lang, "sla.not_set")
        mark = f" {t(lang, 'sla.breached')}" if d.breached else ""
        out.append(f"  {target_word(lang, d.name)}: {value}{mark}")
    if sla.first_response_at is not None:
        out.append(t(lang, "sla.first_response_at", at=when(sla.first_response_at)))
    return "\n".join(out)


def _render_sla_overview(view: Any) -> str:
    overview: SlaOverview = view
    lang = overview.lang
    if not overview.lines:
        return t(lang, "sla.overview_empty")
    out = [t(lang, "sla.overview_title")]
    for line in overview.lines:
        parts = [f"#{line.conversation_id} [{value_word(lang, line.priority)}]"]
        if line.deadline:
            due = due_phrase(lang, line.due_at, line.remaining) or '-'
            parts.append(f"{target_word(lang, line.deadline)}: {due}")
        parts.append(t(lang, "label.assignee", member=line.assignee) if line.assignee
                     else t(lang, "label.unassigned"))
        if line.breached:
            parts.append(_breached(lang, line.breached))
        out.append("  " + " · ".join(parts))
    if overview.buttons:
        out.append(_buttons(overview.buttons))
    return "\n".join(out)


# --- team notices ---------------------------------------------------------------------------------


def _mentions(names: Iterable[str]) -> str:
    return " ".join(f"@{name}" for name in names)


def _render_conversation_notice(view: Any) -> str:
    notice: ConversationNotice = view
    header = t(notice.lang, "notice.new" if notice.event == "new" else "notice.reopened")
    if notice.mentions:
        header += " " + _mentions(notice.mentions)
    return "\n".join([header, *_card_lines(notice.card)])


def sla_sentence(notice: SlaNotice) -> str:
    """The first line of an SLA notice (also used for SLA items in a digest)."""
    lang, target = notice.lang, target_word(notice.lang, notice.target)
    overdue = format_duration(-notice.remaining) if notice.remaining is not None else "-"
    past = notice.remaining is not None and int(notice.remaining.total_seconds()) < 0
    if notice.event == "warning" and past:
        # Announced late (the process was down past the deadline): "due in -18m" would read as nonsense.
        text = t(lang, "notice.sla_warning_overdue", target=target, id=notice.card.id, duration=overdue,
                 at=when(notice.due_at))
    elif notice.event == "warning":
        left = format_duration(notice.remaining) if notice.remaining is not None else "-"
        text = t(lang, "notice.sla_warning", target=target, id=notice.card.id, duration=left,
                 at=when(notice.due_at))
    elif notice.event == "escalation":
        text = t(lang, "notice.sla_escalation", step=notice.step, target=target, id=notice.card.id,
                 duration=overdue)
    else:
        text = t(lang, "notice.sla_breached", target=target, id=notice.card.id, at=when(notice.due_at))
    if notice.urgent:
        text = f"{t(lang, 'notice.sla_urgent')} {text}"
    return text


def _render_sla_notice(view: Any) -> str:
    notice: SlaNotice = view
    lang = notice.lang
    header = sla_sentence(notice)
    if notice.mentions:
        header += " " + _mentions(notice.mentions)
    out = [header]
    if notice.priority_from and notice.priority_to:
        out.append(t(lang, "notice.sla_priority", before=value_word(lang, notice.priority_from),
                     after=value_word(lang, notice.priority_to)))
    if notice.deferred:
        out.append(t(lang, "notice.sla_deferred"))
    if notice.late:
        out.append(t(lang, "notice.sla_late"))
    return "\n".join([*out, *_card_lines(notice.card)])


def _digest_item(lang: str, item: DigestItem) -> str:
    if item.conversation_id is None or item.kind not in ("new", "reopened"):
        return f"  {item.detail}"
    where = item.channel or "-"
    if item.kind == "reopened":
        where += ", " + t(lang, "notice.digest_reopened")
    line = f"  #{item.conversation_id} {item.contact or '-'} ({where})"
    return line + (f": {item.excerpt}" if item.excerpt else "")


def _render_digest(view: Any) -> str:
    digest: Digest = view
    lang = digest.lang
    summary = ", ".join(t(lang, f"notice.digest_count_{kind}", count=count) for kind, count in digest.counts)
    head = t(lang, "notice.digest_title", start=digest.start.strftime("%H:%M"),
             end=digest.end.strftime("%H:%M %Z"), summary=summary)
    if digest.mentions:
        head += " " + _mentions(digest.mentions)
    out = [head, t(lang, "notice.digest_why")]
    out += [_digest_item(lang, item) for item in digest.items]
    out.append(t(lang, "notice.digest_more", count=digest.more) if digest.more
               else t(lang, "notice.digest_all_in_queue"))
    if digest.buttons:
        out.append(_buttons(digest.buttons))
    return "\n".join(out)


def _render_failed(view: Any) -> str:
    notice: FailedDeliveryNotice = view
    lang = notice.lang
    head = t(lang, "notice.failed", id=notice.delivery_id, purpose=notice.purpose,
             destination=notice.destination, attempts=notice.attempts)
    if notice.conversation_id is not None:
        head += " " + t(lang, "notice.failed_conversation", id=notice.conversation_id)
    if notice.mentions:
        head += " " + _mentions(notice.mentions)
    out = [head]
    if notice.error:
        out.append("  " + t(lang, "notice.failed_error", error=_indent(notice.error, "  ")))
    out.append(t(lang, "notice.failed_hint", id=notice.delivery_id))
    if notice.buttons:
        out.append(_buttons(notice.buttons))
    return "\n".join(out)


def _render_health(view: Any) -> str:
    notice: HealthNotice = view
    if notice.healthy:
        return t(notice.lang, "notice.health_ok", channel=notice.channel)
    detail = notice.detail or t(notice.lang, "notice.health_unknown")
    return t(notice.lang, "notice.health_error", channel=notice.channel, detail=detail)


def _render_budget(view: Any) -> str:
    notice: BudgetNotice = view
    out = [notice.message]
    if notice.details:
        out.append("  " + ", ".join(f"{key}: {value}" for key, value in notice.details))
    return "\n".join(out)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _short(delta: timedelta | None) -> str:
    return format_duration(delta) if delta is not None else "-"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:g}%"


def _report_duration(lang: str, d: ReportDuration) -> str:
    name = _sentence(target_word(lang, d.name))
    if not d.count:
        return t(lang, "report.duration_none", name=name)
    line = t(lang, "report.duration", name=name, median=_short(d.median), p90=_short(d.p90), count=d.count)
    if d.business_median is not None and (d.business_median, d.business_p90) != (d.median, d.p90):
        line += "; " + t(lang, "report.duration_business", median=_short(d.business_median),
                         p90=_short(d.business_p90))
    return line


def _render_report(view: Any) -> str:
    report: ReportView = view
    lang = report.lang
    last = (report.end - timedelta(microseconds=1)).date().isoformat()
    out = [t(lang, f"report.title.{report.scope}", label=report.label, first=report.start.date().isoformat(),
             last=last, timezone=report.timezone, days=report.label.removesuffix("d"))]
    line = t(lang, "report.conversations", new=report.new, resolved=report.resolved)
    if report.previous_new is not None:
        line += " " + t(lang, "report.previous_counts", new=report.previous_new,
                        resolved=report.previous_resolved)
    out.append(line)
    for index, duration in enumerate(report.durations):
        line = _report_duration(lang, duration)
        if index == 0 and report.previous_first_response_median is not None:
            line += " " + t(lang, "report.previous_median",
                            median=_short(report.previous_first_response_median))
        out.append(line)
    if report.met + report.breached:
        line = t(lang, "report.sla", compliance=_percent(report.compliance), met=report.met,
                 breached=report.breached)
    else:
        line = t(lang, "report.sla_none")
    if report.previous_compliance is not None:
        line += " " + t(lang, "report.previous_compliance", compliance=_percent(report.previous_compliance))
    out.append(line)
    targets = [t(lang, "report.target", name=target_word(lang, x.name), compliance=_percent(x.compliance),
                 met=x.met, total=x.met + x.breached) for x in report.targets if x.met + x.breached]
    if targets:
        out.append("  " + " · ".join(targets))
    if report.worst:
        out.append(t(lang, "report.worst"))
        for b in report.worst:
            key = "report.breach_open" if b.open else "report.breach_closed"
            text = t(lang, key, id=b.conversation_id, target=target_word(lang, b.target), channel=b.channel,
                     duration=format_duration(b.overdue))
            out.append(f"  {text}" + (f" · {b.assignee}" if b.assignee else ""))
    if report.channels:
        out.append(t(lang, "report.channels"))
        out += ["  " + t(lang, "report.channel", channel=c.name, new=c.new, resolved=c.resolved,
                         median=_short(c.first_response_median), backlog=c.backlog) for c in report.channels]
    if report.assignees:
        out.append(t(lang, "report.assignees"))
        out += ["  " + t(lang, "report.assignee", member=a.name or t(lang, "report.unassigned"),
                         handled=a.handled, replies=a.replies, median=_short(a.first_response_median))
                for a in report.assignees]
    if report.tags:
        out.append(t(lang, "report.tags", tags=", ".join(f"#{name} {count}" for name, count in report.tags)))
    if report.busiest_weekday is not None and report.busiest_hour is not None:
        out.append(t(lang, "report.busiest", day=t(lang, f"report.day.{report.busiest_weekday}"),
                     start=f"{report.busiest_hour:02d}:00", end=f"{(report.busiest_hour + 1) % 24:02d}:00",
                     count=report.busiest_count))
    line = (t(lang, "report.backlog", count=report.backlog, id=report.oldest_id,
              age=_short(report.oldest_age)) if report.backlog else t(lang, "report.backlog_empty"))
    if report.previous_backlog is not None:
        line += " " + t(lang, "report.previous_backlog", count=report.previous_backlog)
    out.append(line)
    if report.has_chart:
        out.append(t(lang, "report.chart_note"))
    return "\n".join(out)


_RENDERERS: dict[type, Callable[[Any], str]] = {
    ConversationCard: _render_card,
    QueuePage: _render_queue,
    ConversationDetailView: _render_detail,
    Confirmation: _render_confirmation,
    ErrorView: _render_error,
    HelpView: _render_help,
    TemplateList: _render_templates,
    TemplateView: _render_template,
    SlaView: _render_sla,
    SlaOverview: _render_sla_overview,
    ReportView: _render_report,
    ConversationNotice: _render_conversation_notice,
    SlaNotice: _render_sla_notice,
    Digest: _render_digest,
    FailedDeliveryNotice: _render_failed,
    HealthNotice: _render_health,
    BudgetNotice: _render_budget,
}
