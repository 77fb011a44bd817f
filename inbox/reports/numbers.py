"""The figures of a report period, computed from the stored conversations, messages and events.

What each figure means (docs/reports.md has the full list and a worked example):

- **new**: conversations whose first message falls in the period; **resolved**: conversations with a
  ``conversation.resolved`` event in the period (counted once, at their last resolution in it).
- **first response**: conversations whose first public reply falls in the period, from the first
  message to that reply. **next response**: replies in the period that answer a customer follow-up
  (the first customer message after an earlier reply). **resolution**: from the first message to the
  resolution in the period. Each as median and p90 (``inbox.reports.percentiles``), in wall-clock
  time and, for conversations whose SLA policy has a calendar, in business time.
- **SLA**: every target of a conversation's policy is either met (dated when it was met) or breached
  (dated at its deadline); the outcomes dated in the period are counted. They come from the
  conversation's SLA clocks, so an imported history whose replies came late counts as breached even
  though no timer ever fired, and from the ``sla.breached`` audit events, which keep breaches of
  clocks that were replaced since (a later follow-up, a reopen). Compliance = met / (met + breached).
- **backlog**: conversations not resolved at the end of the period (or now, for a running period),
  replayed from the resolve/reopen events, with the oldest one's age.

Speed: every per-message figure is a GROUP BY in the database (hour buckets, or minute buckets for
timezones with a sub-hour offset); Python sees one row per conversation that was answered, resolved
or had an SLA outcome in the period, never one row per message.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, and_, case, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.clock import isoformat_utc
from inbox.db import Database
from inbox.db_types import UTCDateTime
from inbox.models import (
    Channel,
    Conversation,
    ConversationTag,
    Direction,
    Event,
    Member,
    Message,
    Status,
    Tag,
)
from inbox.reports.opentime import Clocks
from inbox.reports.percentiles import median, median_and_p90
from inbox.reports.period import Period
from inbox.sla.calendar import BusinessCalendar
from inbox.sla.engine import EVENT_BREACHED, SlaState, TargetClock
from inbox.sla.policy import TARGETS, Policy

RESOLVED_EVENT: Final = "conversation.resolved"
REOPENED_EVENT: Final = "conversation.reopened"
UNASSIGNED: Final = "(unassigned)"
"""The by_assignee key for conversations nobody is assigned to (member names cannot contain brackets)."""
WORST_BREACHES: Final = 5
TOP_TAGS: Final = 10
# Event-only breaches (their clock was replaced since) need one look-up each to know when they ended.
_MAX_END_LOOKUPS: Final = 200

Policies = Mapping[str, Policy]


# --- result types -----------------------------------------------------------------------------------


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass(frozen=True)
class DurationStats:
    """Median and p90 of one kind of duration, in wall-clock and in business time (seconds)."""

    count: int = 0
    median_seconds: float | None = None
    p90_seconds: float | None = None
    business_count: int = 0
    business_median_seconds: float | None = None
    business_p90_seconds: float | None = None

    @classmethod
    def of(cls, wall: Sequence[float], business: Sequence[float]) -> DurationStats:
        """Summarise durations; ``business`` holds only those measured against a calendar."""
        wall_median, wall_p90 = median_and_p90(wall)
        business_median, business_p90 = median_and_p90(business)
        return cls(len(wall), _round(wall_median), _round(wall_p90),
                   len(business), _round(business_median), _round(business_p90))

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "count": self.count, "median_seconds": self.median_seconds, "p90_seconds": self.p90_seconds,
            "business": {"count": self.business_count, "median_seconds": self.business_median_seconds,
                         "p90_seconds": self.business_p90_seconds},
        }


def compliance(met: int, breached: int) -> float | None:
    """Met as a percentage of decided outcomes (one decimal), or None when nothing was decided."""
    decided = met + breached
    return None if decided == 0 else round(100 * met / decided, 1)


@dataclass
class TargetOutcomes:
    """How one SLA target fared in the period."""

    met: int = 0
    breached: int = 0

    @property
    def compliance(self) -> float | None:
        """Percentage met."""
        return compliance(self.met, self.breached)

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"met": self.met, "breached": self.breached, "compliance": self.compliance}


@dataclass(frozen=True)
class Breach:
    """A breached target: when it was due and how long it stayed overdue (to its end, or the period's)."""

    conversation_id: int
    channel: str
    target: str
    policy: str | None
    due_at: datetime
    ended_at: datetime | None  # when it was finally met or stopped; None while still overdue
    overdue_seconds: float
    assignee: str | None

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "conversation_id": self.conversation_id, "channel": self.channel, "target": self.target,
            "policy": self.policy, "due_at": isoformat_utc(self.due_at),
            "ended_at": isoformat_utc(self.ended_at), "overdue_seconds": round(self.overdue_seconds, 1),
            "assignee": self.assignee,
        }


@dataclass
class ChannelFigures:
    """One channel's share of the period."""

    new: int = 0
    resolved: int = 0
    new_by_kind: dict[str, int] = field(default_factory=dict)
    resolved_by_kind: dict[str, int] = field(default_factory=dict)
    messages_in: int = 0
    messages_out: int = 0
    first_response_median_seconds: float | None = None
    backlog: int = 0

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "new": self.new, "resolved": self.resolved, "new_by_kind": dict(sorted(self.new_by_kind.items())),
            "resolved_by_kind": dict(sorted(self.resolved_by_kind.items())),
            "messages_in": self.messages_in, "messages_out": self.messages_out,
            "first_response_median_seconds": self.first_response_median_seconds, "backlog": self.backlog,
        }


@dataclass
class AssigneeFigures:
    """One member's share: conversations handled (answered first or resolved in the period), replies sent."""

    handled: int = 0
    replies: int = 0
    first_response_median_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"handled": self.handled, "replies": self.replies,
                "first_response_median_seconds": self.first_response_median_seconds}


@dataclass(frozen=True)
class Backlog:
    """Unresolved conversations at the end of the period."""

    count: int = 0
    oldest_age_seconds: float | None = None
    oldest_conversation_id: int | None = None
    at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"count": self.count, "oldest_age_seconds": _round(self.oldest_age_seconds),
                "oldest_conversation_id": self.oldest_conversation_id, "at": isoformat_utc(self.at)}


@dataclass(frozen=True)
class DayFigures:
    """One local day: new conversations and customer messages per channel, median first response."""

    day: date
    new_by_channel: dict[str, int]
    messages_in_by_channel: dict[str, int]
    first_responses: int
    first_response_median_sla_seconds: float | None  # business time where the policy has a calendar

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"date": self.day.isoformat(), "new_by_channel": dict(sorted(self.new_by_channel.items())),
                "messages_in_by_channel": dict(sorted(self.messages_in_by_channel.items())),
                "first_responses": self.first_responses,
                "first_response_median_sla_seconds": self.first_response_median_sla_seconds}


@dataclass(frozen=True)
class TargetLine:
    """A policy's SLA target, for the chart's reference line."""

    policy: str
    seconds: float
    business_hours: bool


@dataclass
class Report:
    """Every figure of one period; ``previous`` holds the period before it (without detail)."""

    period: Period
    generated_at: datetime
    new: int = 0
    resolved: int = 0
    new_by_kind: dict[str, int] = field(default_factory=dict)
    resolved_by_kind: dict[str, int] = field(default_factory=dict)
    first_response: DurationStats = field(default_factory=DurationStats)
    next_response: DurationStats = field(default_factory=DurationStats)
    resolution: DurationStats = field(default_factory=DurationStats)
    sla: dict[str, TargetOutcomes] = field(default_factory=lambda: {t: TargetOutcomes() for t in TARGETS})
    worst_breaches: list[Breach] = field(default_factory=list)
    by_channel: dict[str, ChannelFigures] = field(default_factory=dict)
    by_assignee: dict[str, AssigneeFigures] = field(default_factory=dict)
    tags: list[tuple[str, int]] = field(default_factory=list)
    messages_in: int = 0
    messages_out: int = 0
    notes: int = 0
    hour_of_week: list[list[int]] = field(default_factory=lambda: [[0] * 24 for _ in range(7)])
    daily: list[DayFigures] = field(default_factory=list)
    first_response_targets: list[TargetLine] = field(default_factory=list)
    backlog: Backlog = field(default_factory=Backlog)
    previous: Report | None = None

    @property
    def sla_met(self) -> int:
        """Met outcomes over every target."""
        return sum(o.met for o in self.sla.values())

    @property
    def sla_breached(self) -> int:
        """Breached outcomes over every target."""
        return sum(o.breached for o in self.sla.values())

    @property
    def compliance(self) -> float | None:
        """Percentage of SLA outcomes met, over every target."""
        return compliance(self.sla_met, self.sla_breached)

    def busiest_hour(self) -> tuple[int, int, int] | None:
        """(weekday 0 = Monday, local hour, customer messages) of the busiest hour of the week, if any."""
        best = max(((d, h, n) for d, row in enumerate(self.hour_of_week) for h, n in enumerate(row)),
                   key=lambda item: (item[2], -item[0], -item[1]))
        return best if best[2] > 0 else None

    def summary_json(self) -> dict[str, Any]:
        """The headline figures (what ``previous`` shows)."""
        return {
            "period": self.period.as_json(),
            "conversations": {"new": self.new, "resolved": self.resolved},
            "first_response": self.first_response.as_json(),
            "resolution": self.resolution.as_json(),
            "sla": {"met": self.sla_met, "breached": self.sla_breached, "compliance": self.compliance},
            "backlog": self.backlog.as_json(),
        }

    def changes(self) -> dict[str, Any]:
        """Differences against the previous period (this minus previous; None where either is missing)."""
        prev = self.previous
        if prev is None:
            return {}

        def diff(now: float | None, before: float | None) -> float | None:
            return None if now is None or before is None else round(now - before, 1)

        def percent(now: int, before: int) -> float | None:
            return None if before == 0 else round(100 * (now - before) / before, 1)

        return {
            "new": self.new - prev.new, "new_percent": percent(self.new, prev.new),
            "resolved": self.resolved - prev.resolved,
            "resolved_percent": percent(self.resolved, prev.resolved),
            "first_response_median_seconds": diff(self.first_response.median_seconds,
                                                  prev.first_response.median_seconds),
            "first_response_p90_seconds": diff(self.first_response.p90_seconds,
                                               prev.first_response.p90_seconds),
            "sla_breached": self.sla_breached - prev.sla_breached,
            "compliance_points": diff(self.compliance, prev.compliance),
            "backlog": self.backlog.count - prev.backlog.count,
        }

    def as_json(self) -> dict[str, Any]:
        """The full JSON form (``inbox report --format json``)."""
        return {
            "period": self.period.as_json(),
            "timezone": self.period.timezone,
            "generated_at": isoformat_utc(self.generated_at),
            "conversations": {"new": self.new, "resolved": self.resolved,
                              "new_by_kind": dict(sorted(self.new_by_kind.items())),
                              "resolved_by_kind": dict(sorted(self.resolved_by_kind.items()))},
            "first_response": self.first_response.as_json(),
            "next_response": self.next_response.as_json(),
            "resolution": self.resolution.as_json(),
            "sla": {
                "met": self.sla_met, "breached": self.sla_breached, "compliance": self.compliance,
                "targets": {name: outcome.as_json() for name, outcome in self.sla.items()},
                "worst_breaches": [b.as_json() for b in self.worst_breaches],
                "first_response_targets": [
                    {"policy": t.policy, "seconds": t.seconds, "business_hours": t.business_hours}
                    for t in self.first_response_targets
                ],
            },
            "by_channel": {name: figures.as_json() for name, figures in sorted(self.by_channel.items())},
            "by_assignee": {name: figures.as_json() for name, figures in sorted(self.by_assignee.items())},
            "tags": [{"tag": name, "conversations": count} for name, count in self.tags],
            "messages": {"in": self.messages_in, "out": self.messages_out, "notes": self.notes,
                         "by_hour_of_week": [list(row) for row in self.hour_of_week]},
            "daily": [day.as_json() for day in self.daily],
            "backlog": self.backlog.as_json(),
            "previous": self.previous.summary_json() if self.previous is not None else None,
            "change": self.changes(),
        }


# --- entry point ------------------------------------------------------------------------------------


async def compute_report(
    db: Database, policies: Iterable[Policy], period: Period, now: datetime, *, previous: bool = True,
) -> Report:
    """Every figure for ``period`` (and the headline figures of the period before), as of ``now``."""
    by_name = {p.name: p for p in policies}

    async def one(which: Period, detail: bool) -> Report:
        async with db.sessions() as session:
            return await _Computation(session, by_name, which, now, detail=detail).run()

    if not previous:
        return await one(period, True)
    # Two sessions side by side: the database works on both at once (SQLite readers run in parallel in
    # WAL mode, each on its own connection thread), which nearly halves the wall time of a report.
    report, before = await asyncio.gather(one(period, True), one(period.previous(), False))
    report.previous = before
    return report


@dataclass(frozen=True)
class _Measured:
    """One measured duration of one conversation."""

    conversation_id: int
    channel: str
    kind: str
    assignee: str | None
    policy: str | None
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SlaOutcome:
    """One decided SLA target of a conversation: met (dated when met) or breached (dated at the deadline)."""

    conversation_id: int
    target: str
    breached: bool
    at: datetime
    policy: str | None
    ended_at: datetime | None = None
    end_known: bool = True


class _Computation:
    """The queries and arithmetic of one period, on one session."""

    def __init__(self, session: AsyncSession, policies: Policies, period: Period, now: datetime, *,
                 detail: bool) -> None:
        self.session = session
        self.policies = policies
        self.period = period
        self.now = now
        # Nothing after "now" has happened yet: a period that is still running ends here for outcomes.
        self.bound = min(period.end, now)
        self.detail = detail
        self.zone = period.zone
        self.report = Report(period=period, generated_at=now)
        self.clocks = Clocks()  # business-time arithmetic by bisection: thousands of durations per report
        self.channels: dict[int, str] = {}
        self.members: dict[int, str] = {}
        offsets = {bound.astimezone(self.zone).utcoffset() for bound in (period.start, period.end)}
        # Hour buckets in UTC map onto local hours only when the zone's offset is whole hours.
        self.minute_buckets = any(o is None or o.total_seconds() % 3600 for o in offsets)

    @property
    def dialect(self) -> str:
        """The database dialect name."""
        return self.session.get_bind().dialect.name

    async def run(self) -> Report:
        """Run every query and fill the report."""
        self.channels = {int(i or 0): str(n) for i, n in await self.session.execute(
            select(col(Channel.id), col(Channel.name)))}
        self.members = {int(i or 0): str(n) for i, n in await self.session.execute(
            select(col(Member.id), col(Member.name)))}
        new_buckets = await self._new_conversations()
        first = await self._first_responses()
        resolved = await self._resolutions()
        follow_ups = await self._next_responses()
        self.report.first_response = self._stats(first)
        self.report.resolution = self._stats(resolved)
        self.report.next_response = self._stats(follow_ups)
        outcomes = await self._sla_outcomes(follow_ups)
        await self._backlog()
        if self.detail:
            message_buckets = await self._messages()
            self._per_channel_first_response(first)
            self._per_assignee(first, resolved)
            self.report.tags = await self._tags()
            self.report.worst_breaches = await self._worst(outcomes)
            self.report.daily = self._daily(new_buckets, message_buckets, first)
            self.report.first_response_targets = self._targets(first)
        return self.report

    # --- helpers ---

    def _in_period(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.period.start, column < self.period.end)

    def _bucket(self, column: Any) -> Any:
        """A text label of the UTC hour (or minute) of a timestamp column, for GROUP BY."""
        if self.dialect == "sqlite":
            # SQLAlchemy stores SQLite timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC here).
            return func.substr(column, 1, 16 if self.minute_buckets else 13)
        pattern = "YYYY-MM-DD HH24:MI" if self.minute_buckets else "YYYY-MM-DD HH24"
        return func.to_char(func.timezone("UTC", column), pattern)

    def _bucket_local(self, label: str) -> datetime:
        parsed = datetime.strptime(label, "%Y-%m-%d %H:%M" if self.minute_buckets else "%Y-%m-%d %H")
        return parsed.replace(tzinfo=UTC).astimezone(self.zone)

    def _calendar(self, policy: str | None) -> BusinessCalendar | None:
        found = self.policies.get(policy) if policy else None
        return found.calendar if found is not None else None

    def _stats(self, items: Sequence[_Measured]) -> DurationStats:
        wall: list[float] = []
        business: list[float] = []
        for item in items:
            wall.append(max((item.end - item.start).total_seconds(), 0.0))
            cal = self._calendar(item.policy)
            if cal is not None:
                business.append(self.clocks.between(cal, item.start, item.end).total_seconds())
        return DurationStats.of(wall, business)

    def _sla_seconds(self, item: _Measured) -> float:
        """The duration as the conversation's SLA counts it: business time with a calendar."""
        return self.clocks.between(self._calendar(item.policy), item.start, item.end).total_seconds()

    def _channel(self, channel_id: int) -> ChannelFigures:
        name = self.channels.get(channel_id, f"#{channel_id}")
        return self.report.by_channel.setdefault(name, ChannelFigures())

    def _member(self, member_id: int | None) -> str | None:
        return None if member_id is None else self.members.get(member_id, f"#{member_id}")

    # --- conversations ---

    async def _new_conversations(self) -> list[tuple[str, str, datetime, int]]:
        bucket = self._bucket(col(Conversation.created_at))
        rows = await self.session.execute(
            select(col(Conversation.channel_id), col(Conversation.kind), bucket, func.count())
            .where(self._in_period(col(Conversation.created_at)))
            .group_by(col(Conversation.channel_id), col(Conversation.kind), bucket)
        )
        out = []
        kinds: Counter[str] = Counter()
        for channel_id, kind, label, count in rows:
            figures = self._channel(channel_id)
            figures.new += count
            figures.new_by_kind[kind] = figures.new_by_kind.get(kind, 0) + count
            kinds[kind] += count
            name = self.channels.get(channel_id, f"#{channel_id}")
            out.append((name, kind, self._bucket_local(label), count))
        self.report.new = sum(kinds.values())
        self.report.new_by_kind = dict(kinds)
        return out

    async def _first_responses(self) -> list[_Measured]:
        rows = await self.session.execute(
            select(col(Conversation.id), col(Conversation.channel_id), col(Conversation.kind),
                   col(Conversation.assignee_id), col(Conversation.sla_policy), col(Conversation.created_at),
                   col(Conversation.first_response_at))
            .where(self._in_period(col(Conversation.first_response_at)))
        )
        return [_Measured(cid, self.channels.get(ch, f"#{ch}"), kind, self._member(who), policy, start, end)
                for cid, ch, kind, who, policy, start, end in cast(Any, rows)]

    async def _resolutions(self) -> list[_Measured]:
        last = (
            select(col(Event.conversation_id).label("cid"), func.max(col(Event.created_at)).label("at"))
            .where(col(Event.type) == RESOLVED_EVENT, self._in_period(col(Event.created_at)),
                   col(Event.conversation_id).is_not(None))
            .group_by(col(Event.conversation_id))
            .subquery()
        )
        rows = await self.session.execute(
            select(col(Conversation.id), col(Conversation.channel_id), col(Conversation.kind),
                   col(Conversation.assignee_id), col(Conversation.sla_policy), col(Conversation.created_at),
                   type_coerce(last.c.at, UTCDateTime))
            .join(last, last.c.cid == col(Conversation.id))
        )
        items = []
        kinds: Counter[str] = Counter()
        for cid, ch, kind, who, policy, start, end in cast(Any, rows):
            figures = self._channel(ch)
            figures.resolved += 1
            figures.resolved_by_kind[kind] = figures.resolved_by_kind.get(kind, 0) + 1
            kinds[kind] += 1
            items.append(_Measured(cid, self.channels.get(ch, f"#{ch}"), kind, self._member(who), policy,
                                   start, end))
        self.report.resolved = len(items)
        self.report.resolved_by_kind = dict(kinds)
        return items

    async def _next_responses(self) -> list[_Measured]:
        """Replies in the period that answer a follow-up (window functions, answered conversations only)."""
        m = Message.__table__.c  # type: ignore[attr-defined]  # the Core columns, for window functions
        candidates = select(col(Conversation.id)).where(
            col(Conversation.last_outbound_at) >= self.period.start)
        prev_out = func.max(case((m.direction == Direction.OUT.value, m.created_at))).over(
            partition_by=m.conversation_id, order_by=(m.created_at, m.id), rows=(None, -1))
        inner = (
            select(m.conversation_id, m.direction, m.created_at, prev_out.label("prev_out"))
            .where(m.conversation_id.in_(candidates),
                   m.direction.in_((Direction.IN.value, Direction.OUT.value)), m.created_at < self.period.end)
            .subquery()
        )
        # Inbound messages sharing the previous reply belong to the same follow-up; its first one starts it.
        asked = func.min(case((inner.c.direction == Direction.IN.value, inner.c.created_at))).over(
            partition_by=(inner.c.conversation_id, inner.c.prev_out))
        outer = select(inner.c.conversation_id, inner.c.direction, inner.c.created_at,
                       inner.c.prev_out, asked.label("asked_at")).subquery()
        rows = await self.session.execute(
            select(outer.c.conversation_id, type_coerce(outer.c.asked_at, UTCDateTime),
                   type_coerce(outer.c.created_at, UTCDateTime), col(Conversation.channel_id),
                   col(Conversation.kind), col(Conversation.assignee_id), col(Conversation.sla_policy))
            .join(Conversation, col(Conversation.id) == outer.c.conversation_id)
            .where(outer.c.direction == Direction.OUT.value, outer.c.prev_out.is_not(None),
                   outer.c.asked_at.is_not(None), outer.c.created_at >= self.period.start)
        )
        return [_Measured(cid, self.channels.get(ch, f"#{ch}"), kind, self._member(who), policy, start, end)
                for cid, start, end, ch, kind, who, policy in rows]

    # --- messages ---

    async def _messages(self) -> list[tuple[str, datetime, int]]:
        """Messages per channel, direction, member and UTC bucket; fills totals and the hour-of-week grid."""
        bucket = self._bucket(col(Message.created_at))
        rows = await self.session.execute(
            select(col(Message.channel_id), col(Message.direction), col(Message.member_id), bucket,
                   func.count())
            .where(self._in_period(col(Message.created_at)))
            .group_by(col(Message.channel_id), col(Message.direction), col(Message.member_id), bucket)
        )
        inbound: list[tuple[str, datetime, int]] = []
        for channel_id, direction, member_id, label, count in rows:
            figures = self._channel(channel_id)
            if direction == Direction.IN.value:
                local = self._bucket_local(label)
                self.report.messages_in += count
                figures.messages_in += count
                self.report.hour_of_week[local.weekday()][local.hour] += count
                inbound.append((self.channels.get(channel_id, f"#{channel_id}"), local, count))
            elif direction == Direction.OUT.value:
                self.report.messages_out += count
                figures.messages_out += count
                name = self._member(member_id)
                if name is not None:
                    self.report.by_assignee.setdefault(name, AssigneeFigures()).replies += count
            else:
                self.report.notes += count
        return inbound

    # --- per channel, per assignee, per day ---

    def _per_channel_first_response(self, first: Sequence[_Measured]) -> None:
        by_channel: dict[str, list[float]] = defaultdict(list)
        for item in first:
            by_channel[item.channel].append((item.end - item.start).total_seconds())
        for name, values in by_channel.items():
            self.report.by_channel.setdefault(name, ChannelFigures()).first_response_median_seconds = \
                _round(median(values))

    def _per_assignee(self, first: Sequence[_Measured], resolved: Sequence[_Measured]) -> None:
        handled: dict[str, set[int]] = defaultdict(set)
        times: dict[str, list[float]] = defaultdict(list)
        for item in first:
            key = item.assignee or UNASSIGNED
            handled[key].add(item.conversation_id)
            times[key].append((item.end - item.start).total_seconds())
        for item in resolved:
            handled[item.assignee or UNASSIGNED].add(item.conversation_id)
        for key, ids in handled.items():
            figures = self.report.by_assignee.setdefault(key, AssigneeFigures())
            figures.handled = len(ids)
            figures.first_response_median_seconds = _round(median(times[key]))

    def _daily(self, new: Sequence[tuple[str, str, datetime, int]],
               inbound: Sequence[tuple[str, datetime, int]], first: Sequence[_Measured]) -> list[DayFigures]:
        new_by_day: dict[date, Counter[str]] = defaultdict(Counter)
        for channel, _kind, local, count in new:
            new_by_day[local.date()][channel] += count
        inbound_by_day: dict[date, Counter[str]] = defaultdict(Counter)
        for channel, local, count in inbound:
            inbound_by_day[local.date()][channel] += count
        first_by_day: dict[date, list[float]] = defaultdict(list)
        for item in first:
            first_by_day[item.end.astimezone(self.zone).date()].append(self._sla_seconds(item))
        return [
            DayFigures(day, dict(new_by_day[day]), dict(inbound_by_day[day]), len(first_by_day[day]),
                       _round(median(first_by_day[day])))
            for day in self.period.local_days()
        ]

    def _targets(self, first: Sequence[_Measured]) -> list[TargetLine]:
        used = Counter(item.policy for item in first if item.policy)
        names = [name for name, _ in used.most_common()] or list(self.policies)
        lines = []
        for name in names:
            policy = self.policies.get(name)
            if policy is not None and "first_response" in policy.targets:
                lines.append(TargetLine(name, policy.targets["first_response"].total_seconds(),
                                        policy.calendar is not None))
        return lines[:3]

    async def _tags(self) -> list[tuple[str, int]]:
        count = func.count(col(ConversationTag.conversation_id))
        rows = await self.session.execute(
            select(col(Tag.name), count)
            .join(ConversationTag, col(ConversationTag.tag_id) == col(Tag.id))
            .join(Conversation, col(Conversation.id) == col(ConversationTag.conversation_id))
            .where(self._in_period(col(Conversation.created_at)))
            .group_by(col(Tag.name))
            .order_by(count.desc(), col(Tag.name))
            .limit(TOP_TAGS)
        )
        return [(str(name), int(n)) for name, n in rows]

    # --- backlog ---

    async def _backlog(self) -> None:
        """Conversations created before the end and not resolved at it.

        A conversation not updated since the end had no resolve or reopen since (both update it), so its
        status tells its state then; only the others are replayed from their last such event before it.
        """
        at = self.bound
        state_events = (RESOLVED_EVENT, REOPENED_EVENT)
        steady = and_(col(Conversation.created_at) < at, col(Conversation.updated_at) < at,
                      col(Conversation.status) != Status.RESOLVED.value)
        changed = select(col(Conversation.id)).where(col(Conversation.updated_at) >= at,
                                                     col(Conversation.created_at) < at)
        last = (
            select(col(Event.conversation_id).label("cid"), func.max(col(Event.id)).label("eid"))
            .where(col(Event.conversation_id).in_(changed), col(Event.type).in_(state_events),
                   col(Event.created_at) < at)
            .group_by(col(Event.conversation_id))
            .subquery()
        )
        state = select(col(Event.id).label("eid"), col(Event.type).label("type")).subquery()
        replayed = and_(col(Conversation.created_at) < at, col(Conversation.updated_at) >= at,
                        or_(last.c.eid.is_(None), state.c.type == REOPENED_EVENT))

        def joined(query: Any) -> Any:
            return (query.outerjoin(last, last.c.cid == col(Conversation.id))
                    .outerjoin(state, state.c.eid == last.c.eid))

        total, oldest, oldest_id = 0, None, None
        for where, join in ((steady, False), (replayed, True)):
            query = select(col(Conversation.channel_id), func.count(), func.min(col(Conversation.created_at)))
            query = (joined(query) if join else query).where(where).group_by(col(Conversation.channel_id))
            found = 0
            for channel_id, count, first in await self.session.execute(query):
                self._channel(channel_id).backlog += count
                found += count
                oldest = first if oldest is None else min(oldest, first)
            if found:
                first_query = select(col(Conversation.id), col(Conversation.created_at))
                first_query = (joined(first_query) if join else first_query).where(where).order_by(
                    col(Conversation.created_at), col(Conversation.id)).limit(1)
                row = (await self.session.execute(first_query)).first()
                if row is not None and (oldest_id is None or row[1] < oldest_id[1]):
                    oldest_id = (row[0], row[1])
            total += found
        age = None if oldest is None else (at - oldest).total_seconds()
        self.report.backlog = Backlog(total, age, oldest_id[0] if oldest_id else None, at)

    # --- SLA ---

    async def _sla_outcomes(self, follow_ups: Sequence[_Measured]) -> list[SlaOutcome]:
        outcomes: dict[tuple[int, str, datetime, bool], SlaOutcome] = {}
        clocks, running_since = await self._clock_outcomes()
        for outcome in clocks:
            outcomes[(outcome.conversation_id, outcome.target, outcome.at, outcome.breached)] = outcome
        events = await self._breach_events()
        for outcome in events:
            outcomes.setdefault((outcome.conversation_id, outcome.target, outcome.at, True), outcome)
        # A next-response clock is replaced by the next follow-up, so earlier rounds answered in the period
        # are measured from the messages: unless the current clock or a breach event already covers them.
        event_dates: dict[int, list[datetime]] = defaultdict(list)
        for outcome in events:
            if outcome.target == "next_response":
                event_dates[outcome.conversation_id].append(outcome.at)
        for item in follow_ups:
            if running_since.get(item.conversation_id) == item.start:
                continue
            if any(item.start <= at <= item.end for at in event_dates.get(item.conversation_id, ())):
                continue
            measured = self._measured_outcome(item)
            if measured is not None:
                key = (measured.conversation_id, measured.target, measured.at, measured.breached)
                outcomes.setdefault(key, measured)
        for outcome in outcomes.values():
            tally = self.report.sla.setdefault(outcome.target, TargetOutcomes())
            if outcome.breached:
                tally.breached += 1
            else:
                tally.met += 1
        return list(outcomes.values())

    def _measured_outcome(self, item: _Measured) -> SlaOutcome | None:
        """A follow-up round's next-response outcome from its message times (no pause is known here)."""
        policy = self.policies.get(item.policy) if item.policy else None
        amount = policy.targets.get("next_response") if policy is not None else None
        if policy is None or amount is None:
            return None
        deadline = self.clocks.add(policy.calendar, item.start, amount)
        breached = item.end > deadline
        at = deadline if breached else item.end
        if not self.period.start <= at < self.bound:
            return None
        return SlaOutcome(item.conversation_id, "next_response", breached, at, policy.name, item.end)

    async def _clock_outcomes(self) -> tuple[list[SlaOutcome], dict[int, datetime]]:
        """Outcomes read from the SLA clocks of conversations that could have one in the period, and when
        each of their current next-response clocks started."""
        start, end = self.period.start, self.period.end
        due_in_period = [self._in_period(col(c)) for c in (Conversation.first_response_due_at,
                                                           Conversation.next_response_due_at,
                                                           Conversation.resolution_due_at)]
        # A clock met in the period ended with a reply or a resolve in it; a clock breached in it and
        # still running has its deadline in a *_due_at column; one that was paused since was paused by
        # an action in it (updated_at). Anything else had its outcome before the period.
        rows = await self.session.execute(
            select(col(Conversation.id), col(Conversation.sla_policy), col(Conversation.sla_state))
            .where(col(Conversation.sla_policy).is_not(None), col(Conversation.sla_state).is_not(None),
                   col(Conversation.created_at) < end,
                   or_(col(Conversation.last_outbound_at) >= start, col(Conversation.resolved_at) >= start,
                       *due_in_period,
                       and_(col(Conversation.status).in_((Status.PENDING.value, Status.SNOOZED.value)),
                            col(Conversation.updated_at) >= start)))
        )
        found = []
        since: dict[int, datetime] = {}
        for conversation_id, policy_name, raw in rows:
            policy = self.policies.get(policy_name)
            if policy is None:
                continue  # a policy no longer configured: only its breach events count
            state = SlaState.load(raw)
            if "next_response" in state.targets:
                since[conversation_id] = state.targets["next_response"].started_at
            for target, clock in state.targets.items():
                outcome = clock_outcome(conversation_id, target, clock, policy, self.bound, self.clocks)
                if outcome is not None and self.period.start <= outcome.at < self.bound:
                    found.append(outcome)
        return found, since

    async def _breach_events(self) -> list[SlaOutcome]:
        rows = await self.session.execute(
            select(col(Event.conversation_id), col(Event.created_at), col(Event.data))
            .where(col(Event.type) == EVENT_BREACHED, col(Event.created_at) >= self.period.start,
                   col(Event.created_at) < self.bound, col(Event.conversation_id).is_not(None))
        )
        return [SlaOutcome(int(cid), str(data.get("target")), True, at, data.get("policy"), end_known=False)
                for cid, at, data in rows if data.get("target") in TARGETS]

    async def _worst(self, outcomes: Sequence[SlaOutcome]) -> list[Breach]:
        breaches = [o for o in outcomes if o.breached]
        ends: dict[tuple[int, str, datetime], datetime | None] = {}
        unknown = sorted((o for o in breaches if not o.end_known), key=lambda o: o.at)[:_MAX_END_LOOKUPS]
        for outcome in unknown:
            ends[(outcome.conversation_id, outcome.target, outcome.at)] = await self._end_after(outcome)
        ranked = []
        for outcome in breaches:
            ended = outcome.ended_at if outcome.end_known else ends.get(
                (outcome.conversation_id, outcome.target, outcome.at))
            until = min(ended, self.bound) if ended is not None else self.bound
            ranked.append((max((until - outcome.at).total_seconds(), 0.0), outcome, ended))
        ranked.sort(key=lambda item: (-item[0], item[1].at, item[1].conversation_id))
        top = ranked[:WORST_BREACHES]
        ids = [o.conversation_id for _, o, _ in top]
        info = {}
        if ids:
            info = {cid: (ch, who) for cid, ch, who in await self.session.execute(
                select(col(Conversation.id), col(Conversation.channel_id), col(Conversation.assignee_id))
                .where(col(Conversation.id).in_(ids)))}
        breaches_out = []
        for overdue, o, ended in top:
            channel_id, assignee_id = info.get(o.conversation_id, (0, None))
            breaches_out.append(Breach(o.conversation_id, self.channels.get(channel_id, "?"), o.target,
                                       o.policy, o.at, ended, overdue, self._member(assignee_id)))
        return breaches_out

    async def _end_after(self, outcome: SlaOutcome) -> datetime | None:
        """When a breach recorded only as an event ended: the next reply, or the next resolution."""
        if outcome.target == "resolution":
            query = (select(func.min(col(Event.created_at)))
                     .where(col(Event.conversation_id) == outcome.conversation_id,
                            col(Event.type) == RESOLVED_EVENT, col(Event.created_at) >= outcome.at))
        else:
            query = (select(func.min(col(Message.created_at)))
                     .where(col(Message.conversation_id) == outcome.conversation_id,
                            col(Message.direction) == Direction.OUT.value,
                            col(Message.created_at) >= outcome.at))
        found: datetime | None = await self.session.scalar(query)
        return found


def clock_outcome(
    conversation_id: int, target: str, clock: TargetClock, policy: Policy, bound: datetime,
    clocks: Clocks | None = None,
) -> SlaOutcome | None:
    """The decided outcome of one SLA clock as of ``bound``, or None while it is still open (or exempt).

    Met: the clock ended as met no later than its deadline, dated when it ended. Breached: the deadline
    passed before the clock ended (or it has not ended), dated at the deadline.
    """
    amount = policy.targets.get(target)
    if amount is None:
        return None
    deadline = clock.breached_at or (clocks or Clocks()).instant_at(policy.calendar, clock.segments, amount)
    ended = clock.ended_at if clock.ended else None
    if clock.breached_at is None and clock.end == "met" and ended is not None and (
            deadline is None or ended <= deadline):
        return SlaOutcome(conversation_id, target, False, ended, policy.name, ended)
    if deadline is None or deadline >= bound:
        return None
    if ended is not None and ended <= deadline:
        return None  # stopped (not met) in time: the target no longer applies
    return SlaOutcome(conversation_id, target, True, deadline, policy.name, ended)
