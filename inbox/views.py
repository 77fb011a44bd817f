"""Platform-neutral views: what a command answers, for each console to render its own way.

Views hold data, not markup. Fixed labels are looked up in ``inbox.i18n`` by the renderer, using
the view's ``lang``; sentences composed by the core (confirmations, errors) arrive already
translated. Times are aware datetimes already in the team's timezone, and ``remaining`` values
are computed by the core from its Clock, so renderers never ask for the time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Button:
    """An action button; pressing it runs ``command`` exactly as if it had been typed."""

    label: str
    command: str
    style: str = "default"  # "default", "primary" or "danger": a hint renderers may ignore


@dataclass(frozen=True, kw_only=True)
class View:
    """Base of every view; ``ok`` is False only for errors and refusals."""

    lang: str = "en"

    @property
    def ok(self) -> bool:
        """Whether the command did what was asked."""
        return True


@dataclass(frozen=True, kw_only=True)
class ConversationCard(View):
    """One conversation in brief, with the buttons that act on it."""

    id: int
    status: str
    priority: str
    channel: str
    kind: str
    contact: str
    excerpt: str
    assignee: str | None = None
    tags: tuple[str, ...] = ()
    due_at: datetime | None = None
    remaining: timedelta | None = None  # negative when the deadline has passed
    breached: tuple[str, ...] = ()
    escalation_level: int = 0
    snoozed_until: datetime | None = None
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, kw_only=True)
class QueuePage(View):
    """One page of the queue; ``filters`` is the canonical filter text (e.g. ``mine #billing``)."""

    filters: str
    page: int
    page_size: int
    cards: tuple[ConversationCard, ...] = ()
    has_next: bool = False
    buttons: tuple[Button, ...] = ()  # previous / next page


@dataclass(frozen=True, kw_only=True)
class MessageItem:
    """A message in a conversation's story."""

    direction: str  # "in", "out" or "note"
    author: str
    text: str
    at: datetime
    attachments: tuple[str, ...] = ()  # attachment types, e.g. "photo"


@dataclass(frozen=True, kw_only=True)
class EventItem:
    """An audit event in a conversation's story."""

    type: str
    actor: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class ConversationDetailView(View):
    """The full story of one conversation: its card, its latest messages and events."""

    card: ConversationCard
    subject: str | None = None
    messages: tuple[MessageItem, ...] = ()
    older_messages: int = 0  # how many earlier messages are not shown
    events: tuple[EventItem, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Confirmation(View):
    """A command did what was asked; ``message`` says what, in the view's language."""

    message: str
    conversation_id: int | None = None
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ErrorView(View):
    """A command could not run: one line saying why, and the command's usage when it helps."""

    message: str
    kind: str = "error"  # "unknown_command", "usage", "not_found", "invalid", "refused", "internal"
    usage: str | None = None
    suggestion: str | None = None  # a command name the user may have meant

    @property
    def ok(self) -> bool:
        """Errors never count as success."""
        return False


@dataclass(frozen=True, kw_only=True)
class HelpEntry:
    """What ``/help`` says about one command; ``summary`` is in the view's language."""

    name: str
    usage: str
    summary: str
    role: str
    aliases: tuple[str, ...] = ()
    example: str | None = None
    subcommand_roles: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class HelpView(View):
    """Either the list of commands or, with ``detail``, one command explained."""

    entries: tuple[HelpEntry, ...] = ()
    detail: HelpEntry | None = None


@dataclass(frozen=True, kw_only=True)
class TemplateItem:
    """A canned reply."""

    name: str
    text: str


@dataclass(frozen=True, kw_only=True)
class TemplateList(View):
    """Every canned reply (``/template list``)."""

    templates: tuple[TemplateItem, ...] = ()


@dataclass(frozen=True, kw_only=True)
class TemplateView(View):
    """One canned reply in full (``/template show NAME``)."""

    template: TemplateItem
    placeholders: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, kw_only=True)
class SlaDeadline:
    """One SLA target of a conversation."""

    name: str  # "first_response", "next_response" or "resolution"
    due_at: datetime | None
    remaining: timedelta | None
    breached: bool = False


@dataclass(frozen=True, kw_only=True)
class SlaView(View):
    """The SLA state of one conversation (``/sla ID``)."""

    conversation_id: int
    status: str
    policy: str | None
    deadlines: tuple[SlaDeadline, ...] = ()
    first_response_at: datetime | None = None
    breached: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SlaLine:
    """A conversation in the SLA overview, with its nearest deadline."""

    conversation_id: int
    priority: str
    assignee: str | None
    deadline: str | None  # which target is nearest
    due_at: datetime | None
    remaining: timedelta | None
    breached: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SlaOverview(View):
    """Conversations whose deadlines are nearest or already passed (``/sla``)."""

    lines: tuple[SlaLine, ...] = ()
    buttons: tuple[Button, ...] = ()


# --- team notices (inbox.notifier): what a team chat hears without asking -------------------------


@dataclass(frozen=True, kw_only=True)
class ConversationNotice(View):
    """A conversation the team should look at: ``event`` is "new" or "reopened" (the customer wrote again)."""

    event: str
    card: ConversationCard
    mentions: tuple[str, ...] = ()  # member names; a console maps them to platform mentions


@dataclass(frozen=True, kw_only=True)
class SlaNotice(View):
    """An SLA moment: ``event`` is "warning", "breached" or "escalation" (a ladder step)."""

    event: str
    card: ConversationCard
    target: str  # "first_response", "next_response" or "resolution"
    due_at: datetime | None = None
    remaining: timedelta | None = None  # negative once the deadline has passed
    step: int | None = None  # 1-based ladder step
    urgent: bool = False
    priority_from: str | None = None  # set when the step raised the priority
    priority_to: str | None = None
    escalation_level: int = 0
    late: bool = False  # fired well after it was due (the scheduler was not running)
    deferred: bool = False  # the breach happened outside business hours and is announced now
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DigestItem:
    """One notification folded into a digest; ``kind`` is "new", "reopened", "sla", "failed" or "notice"."""

    kind: str
    conversation_id: int | None = None
    channel: str | None = None
    contact: str | None = None
    excerpt: str = ""
    detail: str = ""  # a short sentence in the chat's language, for items that are not new conversations


@dataclass(frozen=True, kw_only=True)
class Digest(View):
    """Notifications past a team chat's send budget, folded into one message per window.

    ``counts`` has one entry per item kind; ``items`` lists the first few (the most urgent first);
    every conversation stays in /queue.
    """

    start: datetime
    end: datetime
    counts: tuple[tuple[str, int], ...] = ()
    items: tuple[DigestItem, ...] = ()
    more: int = 0  # folded items not listed
    mentions: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FailedDeliveryNotice(View):
    """A delivery that kept failing and stopped being retried; a lead can /retry it."""

    delivery_id: int
    destination: str
    purpose: str
    attempts: int
    error: str | None = None
    conversation_id: int | None = None
    mentions: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, kw_only=True)
class HealthNotice(View):
    """A channel's connector stopped working (``healthy`` False) or works again (True)."""

    channel: str
    healthy: bool
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class BudgetNotice(View):
    """Something a connector reports about its budgets, quotas or rate limits (e.g. X's monthly reads).

    ``message`` is already in the view's language; ``details`` are the reported values as text.
    """

    channel: str | None
    kind: str
    message: str
    details: tuple[tuple[str, str], ...] = ()


# --- reports (inbox.reports): /stats and the weekly post -----------------------------------------


@dataclass(frozen=True, kw_only=True)
class ReportDuration:
    """Median and p90 of one response measure; the business-hours pair where a policy has a calendar."""

    name: str  # "first_response", "next_response" or "resolution"
    count: int
    median: timedelta | None = None
    p90: timedelta | None = None
    business_median: timedelta | None = None
    business_p90: timedelta | None = None


@dataclass(frozen=True, kw_only=True)
class ReportTarget:
    """How one SLA target fared: met and breached outcomes, compliance in percent (None: nothing due)."""

    name: str
    met: int
    breached: int
    compliance: float | None = None


@dataclass(frozen=True, kw_only=True)
class ReportBreach:
    """One of the worst breaches: how long its target stayed overdue (``open``: it still is)."""

    conversation_id: int
    channel: str
    target: str
    due_at: datetime
    overdue: timedelta
    assignee: str | None = None
    open: bool = False


@dataclass(frozen=True, kw_only=True)
class ReportChannel:
    """One channel's share of the period."""

    name: str
    new: int
    resolved: int
    first_response_median: timedelta | None = None
    backlog: int = 0


@dataclass(frozen=True, kw_only=True)
class ReportAssignee:
    """One member's share (``name`` None: conversations nobody was assigned to)."""

    name: str | None
    handled: int
    replies: int
    first_response_median: timedelta | None = None


@dataclass(frozen=True, kw_only=True)
class ReportView(View):
    """The response-time summary of a period (``/stats`` and the weekly post); times in the team's zone.

    ``scope`` is "week" (a whole ISO week), "week_to_date", "last_days", "today" or "range". The
    ``previous_*`` fields describe the period of the same length just before (None: not computed).
    """

    scope: str
    label: str
    start: datetime
    end: datetime  # exclusive
    timezone: str
    new: int = 0
    resolved: int = 0
    durations: tuple[ReportDuration, ...] = ()
    targets: tuple[ReportTarget, ...] = ()
    met: int = 0
    breached: int = 0
    compliance: float | None = None
    worst: tuple[ReportBreach, ...] = ()
    channels: tuple[ReportChannel, ...] = ()
    assignees: tuple[ReportAssignee, ...] = ()
    tags: tuple[tuple[str, int], ...] = ()
    busiest_weekday: int | None = None  # 0 = Monday
    busiest_hour: int | None = None
    busiest_count: int = 0
    backlog: int = 0
    oldest_age: timedelta | None = None
    oldest_id: int | None = None
    previous_label: str | None = None
    previous_new: int | None = None
    previous_resolved: int | None = None
    previous_first_response_median: timedelta | None = None
    previous_compliance: float | None = None
    previous_backlog: int | None = None
    has_chart: bool = False  # the weekly post carries a chart image next to this text
