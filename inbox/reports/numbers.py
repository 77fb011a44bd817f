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
timezones with a sub-hour offset), and SLA outcomes are counted there from the columns the engine
keeps per clock (``inbox.sla.outcomes``); each reply that answers a follow-up carries the round's
start, kept as messages are stored (``inbox.follow_ups``). Durations come back as columns of integer
microseconds (one row per conversation answered or resolved, or per follow-up answered, in the period)
and are measured with numpy, business time included (``inbox.reports.opentime.OpenTimeArrays``); the
database packs them into one text per query, which numpy parses (no Python object per row; on SQLite
the timestamps as stored, whose digits numpy reads, and the per-hour message counts grouped by numpy
too). On PostgreSQL the report's transactions run without JIT and with more work_mem. Three read
sessions work side by side (``compute_report``); the figures that need a pass over every conversation
(backlog, SLA clock outcomes, the clocks' worst breaches) are worked out in one pass for both periods.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Text,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
    text,
    type_coerce,
)
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
from inbox.reports.opentime import Clocks, Micros, OpenTimeArrays, from_us, to_us
from inbox.reports.percentiles import median_and_p90, percentile_of_sorted
from inbox.reports.period import Period, local_midnight
from inbox.sla.calendar import BusinessCalendar
from inbox.sla.engine import EVENT_BREACHED, TargetClock
from inbox.sla.outcomes import OUTCOME_COLUMNS, clock_dates
from inbox.sla.policy import TARGETS, Policy

RESOLVED_EVENT: Final = "conversation.resolved"
REOPENED_EVENT: Final = "conversation.reopened"
UNASSIGNED: Final = "(unassigned)"
"""The by_assignee key for conversations nobody is assigned to (member names cannot contain brackets)."""
WORST_BREACHES: Final = 5
TOP_TAGS: Final = 10
# Event-only breaches (their clock was replaced since) need a look-up to know when they ended; the
# earliest this many get one, the others count as overdue until the end of the period.
_MAX_END_LOOKUPS: Final = 200
_NO_TIME: Final = -(2**62)  # a NULL timestamp in microsecond columns
_ONE_US: Final = timedelta(microseconds=1)
_HIGH: Final = 1 << 32  # packs two counts in one sum
_TEXT_SEPARATOR: Final = "\x1f"  # joins text columns packed by the database (no name or kind holds it)
# SQLite reads the report's pages through memory-mapped I/O (no copy of each page from the OS cache:
# about a quarter of the report's CPU at a million messages); the library caps it at its own maximum.
_MMAP_BYTES: Final = 1 << 31
_PG_WORK_MEM: Final = "64MB"  # per sort or hash of each of the report's three sessions, while it runs

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

    @asynccontextmanager
    async def reading() -> AsyncIterator[AsyncSession]:
        async with db.reading() as session:
            mapped = session.get_bind().dialect.name == "sqlite"
            if mapped:  # reset below: other work on this pooled connection keeps plain reads
                await session.execute(text(f"PRAGMA mmap_size={_MMAP_BYTES}"))
            else:
                # For this transaction only. The report's queries cost enough for PostgreSQL to compile them
                # (JIT, on by default), which took longer than running them: the conversation pass spent
                # 0.9 s compiling. With the default work_mem (4 MB) its sort and the resolutions' grouping
                # spilled to disk, and joins read the conversations in batches.
                await session.execute(text("SELECT set_config('jit', 'off', true), "
                                           f"set_config('work_mem', '{_PG_WORK_MEM}', true)"))
            try:
                yield session
            finally:
                if mapped:
                    await session.execute(text("PRAGMA mmap_size=0"))

    earlier = period.previous()
    scanned = [period, earlier] if previous else [period]

    async def side() -> _Extras:
        async with reading() as session:
            return await _Computation(session, by_name, period, now, detail=True).extras(scanned)

    async def compute(which: Period, detail: bool, extras: asyncio.Task[_Extras] | None) -> _Computation:
        async with reading() as session:
            computation = _Computation(session, by_name, which, now, detail=detail)
            await computation.run(extras)
            return computation

    # Read sessions side by side: the database works on all at once (on SQLite each reads in its own
    # connection thread, in WAL mode without blocking writers or each other). One has the period's
    # figures, one the headline figures of the period before, and one the rest: the per-hour message
    # counts, the tags, the clocks' worst breaches, and the figures that need a pass over every
    # conversation (backlog, SLA clock outcomes), worked out for both periods in one pass.
    # A task group: should one session fail, the others are cancelled and awaited before the error is
    # raised, so no query is left running against a connection nobody will close.
    try:
        async with asyncio.TaskGroup() as group:
            extras = group.create_task(side())
            tasks = [group.create_task(compute(period, True, extras))]
            if previous:
                tasks.append(group.create_task(compute(earlier, False, None)))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None  # what failed, as callers know it (not in a group)
    computations = [task.result() for task in tasks]
    scans = extras.result().scans
    for computation in computations:
        computation.adopt(scans)
    report = computations[0].report
    if previous:
        report.previous = computations[1].report
    return report


@dataclass(frozen=True)
class _Extras:
    """The figures of the period that a session of their own works out (see ``compute_report``)."""

    messages: list[Any]
    tags: list[tuple[str, int]]
    scans: _Scans


@dataclass
class _Scans:
    """What one pass over every conversation found for some periods: per period, the backlog per channel
    (channel id: count) with the oldest conversation's start and id, and the SLA clock outcomes (met,
    breached per target)."""

    backlog: dict[Period, tuple[dict[int, int], datetime | None, int | None]] = field(default_factory=dict)
    clocks: dict[Period, list[tuple[int, int]]] = field(default_factory=dict)
    clock_breaches: list[_Ranked] = field(default_factory=list)


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


@dataclass(frozen=True)
class _Items:
    """Measured durations of one kind, one entry per item, as parallel int64 arrays (times in µs)."""

    cid: Micros
    channel: Micros
    assignee: Micros  # member id, or -1 for nobody
    policy: Micros  # index into _Computation.names; -1 without a policy, -2 for one not configured
    start: Micros
    end: Micros

    @classmethod
    def of(cls, columns: Sequence[Micros]) -> _Items:
        """From columns in field order."""
        return cls(*columns[:6])

    def __len__(self) -> int:
        return len(self.cid)


@dataclass(frozen=True)
class _Ranked:
    """A breach as the worst-breaches table ranks it: longest overdue first, then earliest, then by id."""

    overdue_us: int
    at_us: int
    conversation_id: int
    source: int  # 0 clock, 1 event, 2 follow-up round: keeps ties in one order
    target: str
    policy: str | None
    ended_us: int | None

    def key(self) -> tuple[int, int, int, int, int]:
        """The sort key."""
        return (-self.overdue_us, self.at_us, self.conversation_id, self.source, TARGETS.index(self.target))


class _Seconds(Sequence[float]):
    """Sorted microsecond values read as seconds (what ``timedelta.total_seconds`` gives), without a copy."""

    def __init__(self, micros: Micros) -> None:
        self.micros = micros

    def __len__(self) -> int:
        return len(self.micros)

    def __getitem__(self, index: Any) -> Any:
        return int(self.micros[index]) / 1_000_000


def _stats_of(wall: Micros, business: Micros) -> DurationStats:
    """Median and p90 of unsorted microsecond durations."""
    wall, business = _Seconds(np.sort(wall)), _Seconds(np.sort(business))
    return DurationStats(
        len(wall), _round(percentile_of_sorted(wall, 50)), _round(percentile_of_sorted(wall, 90)),
        len(business), _round(percentile_of_sorted(business, 50)), _round(percentile_of_sorted(business, 90)))


def _median_of(micros: Micros) -> float | None:
    return _round(percentile_of_sorted(_Seconds(np.sort(micros)), 50))


@dataclass(frozen=True)
class _Time:
    """A timestamp column that ``_columns`` reads as integer microseconds (``_NO_TIME`` when NULL)."""

    column: Any


# SQLite's stored timestamps: 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (SQLAlchemy's format, and db_bulk's).
_TIME_WIDTH: Final = 26
_NULL_TIME: Final = "0000-00-00 00:00:00.000000"  # year 0: NULL
_TIME_FIELDS: Final = ((0, 4), (5, 7), (8, 10), (11, 13), (14, 16), (17, 19), (20, 26))
_TIME_MARKS: Final = ((4, "-"), (7, "-"), (10, " "), (13, ":"), (16, ":"), (19, "."))


def _time_text(columns: Sequence[Any]) -> Any:
    """Timestamp columns as their stored text side by side, NULL as ``_NULL_TIME``, in SQL (SQLite)."""
    row: Any = None
    for column in columns:
        text_ = func.coalesce(type_coerce(column, Text), _NULL_TIME)
        row = text_ if row is None else row.concat(text_)
    return row


def _parse_times(packed: str, rows: int, width: int) -> list[Micros] | None:
    """The ``width`` timestamp columns of ``rows`` rows packed by ``_time_text``, as µs since the epoch
    (``_NO_TIME`` for NULL); None when the text is not made of timestamps in the stored format."""
    raw = np.frombuffer(packed.encode("ascii", errors="replace"), dtype=np.uint8)
    if raw.size != rows * width * _TIME_WIDTH:
        return None
    digits = _time_digits(raw.reshape(-1, _TIME_WIDTH), _TIME_WIDTH)
    if digits is None:
        return None
    year, month, day, hour, minute, second, micro = (_number(digits, *span) for span in _TIME_FIELDS)
    days = _days_since_epoch(year, month, day)
    micros = (((days * 24 + hour) * 60 + minute) * 60 + second) * 1_000_000 + micro
    micros = np.where(year == 0, _NO_TIME, micros)
    return list(micros.reshape(rows, width).T)


def _time_digits(texts: Any, width: int) -> Any | None:
    """The first ``width`` characters of fixed-width timestamp texts (``texts``: one row of bytes each),
    one row per character position, each minus '0'; None unless they are in the stored format."""
    # Transposed: numpy then works on contiguous arrays, one per character position.
    digits = np.ascontiguousarray((texts[:, :width] - ord("0")).T)
    marks = [(at, mark) for at, mark in _TIME_MARKS if at < width]
    if any((digits[at] != (ord(mark) - ord("0")) % 256).any() for at, mark in marks):
        return None
    if np.count_nonzero(digits > 9) != len(marks) * len(texts):  # every other character a digit
        return None
    return digits


def _number(digits: Any, start: int, end: int) -> Micros:
    """The decimal number written in character positions ``start:end`` of every packed text (``digits``:
    one row per position, each character minus '0')."""
    value = digits[start].astype(np.int64)
    for n in range(start + 1, end):
        value = value * 10 + digits[n]
    return value


def _days_since_epoch(year: Micros, month: Micros, day: Micros) -> Micros:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's days_from_civil)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def _first_of_each(*keys: Micros) -> Micros:
    """The positions, in order, of the first occurrence of each distinct tuple of ``keys`` (what
    ``np.unique(..., axis=1, return_index=True)`` gives, without its slow sort of structured rows)."""
    order = np.lexsort(keys[::-1])  # stable: equal tuples keep their order, the first one first
    same = np.ones(max(len(order) - 1, 0), dtype=bool)  # each sorted tuple equals the one before
    for key in keys:
        ranked = key[order]
        same &= ranked[1:] == ranked[:-1]
    first = np.concatenate([[True], ~same])[:len(order)]
    return np.sort(order[first])


def _first_seen(keys: Micros) -> list[int]:
    """The distinct values of ``keys`` in the order they first occur."""
    values, first = np.unique(keys, return_index=True)
    return [int(values[i]) for i in np.argsort(first, kind="stable")]


class _Computation:
    """The queries and arithmetic of one period, on one session."""

    def __init__(self, session: AsyncSession, policies: Policies, period: Period, now: datetime, *,
                 detail: bool) -> None:
        self.session = session
        self.policies = policies
        self.names = list(policies)  # a policy's code in queries is its index here
        self.period = period
        self.now = now
        # Nothing after "now" has happened yet: a period that is still running ends here for outcomes.
        self.bound = min(period.end, now)
        self.start_us, self.bound_us = to_us(period.start), to_us(self.bound)
        self.detail = detail
        self.zone = period.zone
        self.report = Report(period=period, generated_at=now)
        self.open_time: dict[int, OpenTimeArrays] = {}  # by id(calendar)
        self.channels: dict[int, str] = {}
        self.members: dict[int, str] = {}
        offsets = {bound.astimezone(self.zone).utcoffset() for bound in (period.start, period.end)}
        # Hour buckets in UTC map onto local hours only when the zone's offset is whole hours.
        self.minute_buckets = any(o is None or o.total_seconds() % 3600 for o in offsets)

    @property
    def dialect(self) -> str:
        """The database dialect name."""
        return self.session.get_bind().dialect.name

    async def extras(self, scanned: Sequence[Period]) -> _Extras:
        """The figures that ``run`` leaves to another session: per-hour messages, tags, the clocks' worst
        breaches, and the backlog and clock outcomes of the ``scanned`` periods."""
        return _Extras(await self._message_rows(), await self._tags(), await self.scans(scanned, worst=True))

    async def run(self, extras: Awaitable[_Extras] | None = None) -> Report:
        """Run every query and fill the report; with detail, ``extras`` brings what another session read."""
        self.channels = {int(i or 0): str(n) for i, n in await self._execute(
            select(col(Channel.id), col(Channel.name)))}
        self.members = {int(i or 0): str(n) for i, n in await self._execute(
            select(col(Member.id), col(Member.name)))}
        new_buckets = await self._new_conversations()
        first = await self._first_responses()
        resolved = await self._resolutions()
        follow_ups, rounds = await self._next_responses()
        self.report.first_response = self._stats(first)
        self.report.resolution = self._stats(resolved)
        self.report.next_response = self._stats(follow_ups)
        breaches = await self._sla_outcomes(follow_ups, rounds)
        if self.detail:
            assert extras is not None
            found = await extras
            message_buckets = self._messages(found.messages)
            self._per_channel_first_response(first)
            self._per_assignee(first, resolved)
            self.report.tags = found.tags
            self.report.worst_breaches = await self._worst(found.scans.clock_breaches, breaches)
            self.report.daily = self._daily(new_buckets, message_buckets, first)
            self.report.first_response_targets = self._targets(first)
        return self.report

    # --- helpers ---

    def _in_period(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.period.start, column < self.period.end)

    def _bucket(self, column: Any) -> Any:
        """The UTC hour (or minute) of a timestamp column, for GROUP BY: a text label on SQLite, the UTC
        time truncated on PostgreSQL (a quarter cheaper than formatting it with ``to_char``)."""
        if self.dialect == "sqlite":
            # SQLAlchemy stores SQLite timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC here).
            return func.substr(column, 1, 16 if self.minute_buckets else 13)
        return func.date_trunc("minute" if self.minute_buckets else "hour", func.timezone("UTC", column))

    def _bucket_local(self, label: str | datetime) -> datetime:
        """A bucket (``_bucket``'s label or UTC time) as the local time it starts."""
        if isinstance(label, str):
            label = datetime.strptime(label, "%Y-%m-%d %H:%M" if self.minute_buckets else "%Y-%m-%d %H")
        return label.replace(tzinfo=UTC).astimezone(self.zone)

    def _us(self, column: Any) -> Any:
        """A timestamp column as integer microseconds since the epoch (NULL as ``_NO_TIME``), in SQL.

        Python then handles columns of plain integers: no datetime objects, exact arithmetic.
        """
        if self.dialect == "sqlite":
            # 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds from strftime, the microseconds from the text.
            seconds = cast(func.strftime("%s", func.substr(column, 1, 19)), BigInteger)
            micros = seconds * 1_000_000 + cast(func.substr(column, 21, 6), BigInteger)
        else:
            micros = cast(extract("epoch", column) * 1_000_000, BigInteger)
        return func.coalesce(micros, _NO_TIME)

    def _policy_code(self, column: Any) -> Any:
        """A policy name column as its index in ``names`` (-1: none, -2: not configured), in SQL."""
        known = case({name: index for index, name in enumerate(self.names)}, value=column, else_=-2) \
            if self.names else literal(-2)
        return case((column.is_(None), -1), else_=known)

    def _calendar(self, code: int) -> BusinessCalendar | None:
        return self.policies[self.names[code]].calendar if code >= 0 else None

    def _open_time(self, calendar: BusinessCalendar, low_us: int) -> OpenTimeArrays:
        """The calendar's open intervals laid out from before ``low_us`` (rebuilt further back if need be)."""
        found = self.open_time.get(id(calendar))
        if found is None or found.low_us > low_us:
            found = OpenTimeArrays(calendar, from_us(low_us))
            self.open_time[id(calendar)] = found
        return found

    def _sla_us(self, items: _Items) -> tuple[Micros, Micros]:
        """Each duration as its SLA counts it (business time with a calendar, else wall-clock time, never
        negative) and whether it was measured against a calendar."""
        values = np.maximum(items.end - items.start, 0)
        business = np.zeros(len(items), dtype=bool)
        for calendar, mask in self._by_calendar(items.policy).items():
            index = self._open_time(calendar, int(items.start[mask].min()))
            values[mask] = index.between(items.start[mask], items.end[mask])
            business |= mask
        return values, business

    def _by_calendar(self, codes: Micros) -> dict[BusinessCalendar, Micros]:
        """Masks of the items per calendar (policies may share one)."""
        masks: dict[int, tuple[BusinessCalendar, Micros]] = {}
        for code in np.unique(codes):
            calendar = self._calendar(int(code))
            if calendar is None:
                continue
            _, mask = masks.get(id(calendar), (calendar, np.zeros(len(codes), dtype=bool)))
            masks[id(calendar)] = (calendar, mask | (codes == code))
        return dict(masks.values())

    def _stats(self, items: _Items) -> DurationStats:
        values, business = self._sla_us(items)
        return _stats_of(np.maximum(items.end - items.start, 0), values[business])

    def _channel(self, channel_id: int) -> ChannelFigures:
        name = self.channels.get(channel_id, f"#{channel_id}")
        return self.report.by_channel.setdefault(name, ChannelFigures())

    def _member(self, member_id: int | None) -> str | None:
        return None if member_id is None else self.members.get(member_id, f"#{member_id}")

    async def _execute(self, query: Any) -> Any:
        """Run a query on the session's connection: Core rows, without the ORM's per-row result machinery."""
        connection = await self.session.connection()
        return await connection.execute(query)

    async def _scalar(self, query: Any) -> Any:
        return (await self._execute(query)).scalar()

    async def _columns(
        self, columns: Sequence[Any], build: Any, *texts: Any, plain: bool = False
    ) -> tuple[list[Micros], list[list[str]]]:
        """Integer columns (and ``_Time`` columns as µs) as int64 arrays, and text columns as lists, of the
        query that ``build`` makes from a select of what it is given.

        The database packs every row into one text (comma-separated integers; texts apart, separated by
        a control character), parsed by numpy: a hundred thousand rows of Python objects, built one by
        one in the connection's thread while holding the GIL, kept the report's sessions from working
        side by side. On SQLite the timestamps are packed apart as they are stored, fixed-width text,
        and numpy reads their digits (``_row_parts``).
        """
        row, stamps = self._row_parts(columns, plain=plain)
        packed = [func.count(), self._aggregate_text(row, ","),
                  *([] if stamps is None else [self._aggregate_text(stamps, "")]),
                  *(self._aggregate_text(t, _TEXT_SEPARATOR) for t in texts)]
        count, *values = (await self._execute(build(select(*packed)))).one()
        found = self._unpack(columns, values[0], None if stamps is None else values[1] or "", plain=plain)
        if found is None:  # a timestamp stored in another shape: let the database convert every one
            return await self._columns(columns, build, *texts, plain=True)
        if len(found[0]) != count:  # a NULL column would drop its row from the text: never silently
            raise RuntimeError(f"packed {len(found[0])} rows of {count}")
        rest = values[1 if stamps is None else 2:]
        return found, [[] if v is None else str(v).split(_TEXT_SEPARATOR) for v in rest]

    def _row_parts(self, columns: Sequence[Any], *, plain: bool = False) -> tuple[Any, Any]:
        """A row of integer and ``_Time`` columns as SQL texts to aggregate: its integers, comma-separated,
        and on SQLite its timestamps as stored (None elsewhere, or with ``plain``: the database converts
        them to integers with the others). SQLite's own date arithmetic (``strftime``) cost half of
        each query; numpy reads a timestamp's digits in a few nanoseconds."""
        times = [c.column for c in columns if isinstance(c, _Time)]
        if plain or self.dialect != "sqlite" or not times:
            return self._pack_row([self._us(c.column) if isinstance(c, _Time) else c for c in columns]), None
        return self._pack_row([c for c in columns if not isinstance(c, _Time)]), _time_text(times)

    def _unpack(self, columns: Sequence[Any], ints: str | None, stamps: str | None, *,
                plain: bool = False) -> list[Micros] | None:
        """The columns of rows packed by ``_row_parts`` as int64 arrays; None when a packed timestamp is
        not in the stored format."""
        if stamps is None or plain:
            return list(np.fromstring(ints or "", dtype=np.int64, sep=",").reshape(-1, len(columns)).T)
        kinds = [isinstance(c, _Time) for c in columns]
        values = np.fromstring(ints or "", dtype=np.int64, sep=",").reshape(-1, kinds.count(False)).T
        times = _parse_times(stamps, values.shape[1], kinds.count(True))
        if times is None:
            return None
        plain_values, time_values = iter(values), iter(times)
        return [next(time_values) if kind else next(plain_values) for kind in kinds]

    @staticmethod
    def _pack_row(columns: Sequence[Any]) -> Any:
        """Integer columns as one comma-separated text, in SQL."""
        row: Any = cast(columns[0], Text)
        for column in columns[1:]:
            row = row + "," + cast(column, Text)
        return row

    def _aggregate_text(self, column: Any, separator: str) -> Any:
        """Every row's text joined with ``separator``, in the order the rows come (NULL without rows)."""
        if self.dialect == "sqlite":
            return func.group_concat(column, separator)
        return func.string_agg(column, separator)

    # --- conversations ---

    async def _new_conversations(self) -> list[tuple[str, str, datetime, int]]:
        bucket = self._bucket(col(Conversation.created_at))
        rows = await self._execute(
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

    def _item_columns(self, start: Any, end: Any) -> tuple[Any, ...]:
        c = Conversation
        return (col(c.id), col(c.channel_id), func.coalesce(col(c.assignee_id), -1),
                self._policy_code(col(c.sla_policy)), _Time(start), _Time(end))

    async def _first_responses(self) -> _Items:
        ints, _ = await self._columns(
            self._item_columns(col(Conversation.created_at), col(Conversation.first_response_at)),
            lambda query: query.where(self._in_period(col(Conversation.first_response_at))))
        return _Items.of(ints)

    async def _resolutions(self) -> _Items:
        last = (
            select(col(Event.conversation_id).label("cid"), func.max(col(Event.created_at)).label("at"))
            .where(col(Event.type) == RESOLVED_EVENT, self._in_period(col(Event.created_at)),
                   col(Event.conversation_id).is_not(None))
            .group_by(col(Event.conversation_id))
            .subquery()
        )
        ints, (kind_of,) = await self._columns(
            self._item_columns(col(Conversation.created_at), last.c.at),
            lambda query: query.select_from(last).join(Conversation, last.c.cid == col(Conversation.id)),
            col(Conversation.kind))
        items = _Items.of(ints)
        kinds: Counter[str] = Counter()
        for (channel_id, kind), count in Counter(zip(items.channel.tolist(), kind_of, strict=True)).items():
            figures = self._channel(channel_id)
            figures.resolved += count
            figures.resolved_by_kind[kind] = figures.resolved_by_kind.get(kind, 0) + count
            kinds[kind] += count
        self.report.resolved = len(items)
        self.report.resolved_by_kind = dict(kinds)
        return items

    async def _next_responses(self) -> tuple[_Items, _Rounds]:
        """Replies in the period that answer a follow-up (kept at write time, ``inbox.follow_ups``), with
        what the conversation's next-response clock says (to tell which rounds it measured). Their
        channel and assignee are not read: no figure of next responses is split by them."""
        m = Message.__table__.c  # type: ignore[attr-defined]
        c = Conversation
        ints, _ = await self._columns(
            (m.conversation_id, self._policy_code(col(c.sla_policy)), _Time(m.follow_up_at),
             _Time(m.created_at), _Time(col(c.next_response_started_at)),
             _Time(col(c.next_response_outcome_at)), _Time(col(c.next_response_ended_at))),
            lambda query: query.select_from(m.conversation_id.table)
            .join(Conversation, col(Conversation.id) == m.conversation_id)
            .where(m.follow_up_at.is_not(None), self._in_period(m.created_at)))
        cid, policy, start, end = ints[:4]
        none = np.full(len(cid), -1, dtype=np.int64)
        return _Items(cid, none, none, policy, start, end), _Rounds.of(ints[4:])

    # --- messages ---

    async def _message_rows(self) -> list[Any]:
        """Messages per channel, direction, member and UTC bucket."""
        if self.dialect == "sqlite":
            return await self._message_rows_packed()
        return await self._message_rows_grouped()

    async def _message_rows_grouped(self) -> list[Any]:
        """``_message_rows`` grouped by the database."""
        bucket = self._bucket(col(Message.created_at))
        return list(await self._execute(
            select(col(Message.channel_id), col(Message.direction), col(Message.member_id), bucket,
                   func.count())
            .where(self._in_period(col(Message.created_at)))
            .group_by(col(Message.channel_id), col(Message.direction), col(Message.member_id), bucket)
        ))

    async def _message_rows_packed(self) -> list[tuple[int, str, int | None, str, int]]:
        """``_message_rows`` counted by numpy from every message's packed bucket, direction, channel and
        member: SQLite's GROUP BY sorted half a million rows, twice the time of reading them."""
        m = Message
        width = 16 if self.minute_buckets else 13
        codes = {Direction.IN.value: "i", Direction.OUT.value: "o"}
        # The bucket's text and one letter for the direction, fixed width: no separator to parse.
        label = func.substr(col(m.created_at), 1, width).concat(
            case(codes, value=col(m.direction), else_="n"))
        ids = self._pack_row((col(m.channel_id), func.coalesce(col(m.member_id), -1)))
        count, labels, packed = (await self._execute(
            select(func.count(), self._aggregate_text(label, ""), self._aggregate_text(ids, ","))
            .where(self._in_period(col(m.created_at))))).one()
        raw = np.frombuffer((labels or "").encode("ascii", errors="replace"), dtype=np.uint8)
        channel, member = np.fromstring(packed or "", dtype=np.int64, sep=",").reshape(-1, 2).T
        if len(channel) != count:  # a NULL column would drop its row from the text: never silently
            raise RuntimeError(f"packed {len(channel)} messages of {count}")
        if raw.size != count * (width + 1):  # a timestamp stored in another shape: let SQLite group them
            return await self._message_rows_grouped()
        raw = raw.reshape(count, width + 1)
        digits = _time_digits(raw, width)
        if digits is None:
            return await self._message_rows_grouped()
        # The bucket as a number (hours or minutes since the epoch): sorting numbers is cheap, texts not.
        year, month, day, hour = (_number(digits, *span) for span in _TIME_FIELDS[:4])
        bucket = _days_since_epoch(year, month, day) * 24 + hour
        if self.minute_buckets:
            bucket = bucket * 60 + _number(digits, *_TIME_FIELDS[4])
        direction = raw[:, width]
        # In the order of the GROUP BY it replaces (channel, direction, member, bucket), so that figures
        # filled in turn (the assignees) come in the same order.
        order = np.lexsort((bucket, member, direction, channel))
        keys = (channel, direction, member, bucket)
        changed = np.ones(len(order), dtype=bool)  # each sorted message starts a group or joins the last
        if len(order):
            changed[1:] = np.any([key[order][1:] != key[order][:-1] for key in keys], axis=0)
        starts = np.flatnonzero(changed)
        sizes = np.diff(np.append(starts, len(order)))
        names = {ord(code): value for value, code in codes.items()}
        rows = []
        for first, size in zip(order[starts].tolist(), sizes.tolist(), strict=True):
            member_id = int(member[first])
            rows.append((int(channel[first]), names.get(int(direction[first]), Direction.NOTE.value),
                         None if member_id < 0 else member_id, raw[first, :width].tobytes().decode(), size))
        return rows

    def _messages(self, rows: Iterable[Any]) -> list[tuple[str, datetime, int]]:
        """Fill the message totals and the hour-of-week grid from ``_message_rows``; return the inbound
        buckets per channel."""
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

    def _per_channel_first_response(self, first: _Items) -> None:
        wall = first.end - first.start
        for channel_id in _first_seen(first.channel):
            name = self.channels.get(channel_id, f"#{channel_id}")
            self.report.by_channel.setdefault(name, ChannelFigures()).first_response_median_seconds = \
                _median_of(wall[first.channel == channel_id])

    def _per_assignee(self, first: _Items, resolved: _Items) -> None:
        """Handled = distinct conversations answered first or resolved, by the conversation's assignee."""
        who = np.concatenate([first.assignee, resolved.assignee])
        pairs = _first_of_each(who, np.concatenate([first.cid, resolved.cid]))
        handled = dict(zip(*(a.tolist() for a in np.unique(who[pairs], return_counts=True)), strict=True))
        wall = first.end - first.start
        for member_id in _first_seen(who):
            key = self._member(member_id if member_id >= 0 else None) or UNASSIGNED
            figures = self.report.by_assignee.setdefault(key, AssigneeFigures())
            figures.handled = handled[member_id]
            figures.first_response_median_seconds = _median_of(wall[first.assignee == member_id])

    def _daily(self, new: Sequence[tuple[str, str, datetime, int]],
               inbound: Sequence[tuple[str, datetime, int]], first: _Items) -> list[DayFigures]:
        new_by_day: dict[date, Counter[str]] = defaultdict(Counter)
        for channel, _kind, local, count in new:
            new_by_day[local.date()][channel] += count
        inbound_by_day: dict[date, Counter[str]] = defaultdict(Counter)
        for channel, local, count in inbound:
            inbound_by_day[local.date()][channel] += count
        days = self.period.local_days()
        # The local day of each first reply: count the local midnights at or before it.
        midnights = np.array([to_us(local_midnight(day, self.period.timezone)) for day in days[1:]],
                             dtype=np.int64)
        which = np.searchsorted(midnights, first.end, side="right")
        sla, _ = self._sla_us(first)
        return [
            DayFigures(day, dict(new_by_day[day]), dict(inbound_by_day[day]), int((which == n).sum()),
                       _median_of(sla[which == n]))
            for n, day in enumerate(days)
        ]

    def _targets(self, first: _Items) -> list[TargetLine]:
        named = first.policy[first.policy != -1]
        counts = Counter(named.tolist())
        # Most used first; ties in the order the policies first appear (as Counter.most_common does).
        order = sorted(_first_seen(named), key=lambda code: -counts[code])
        names = [self.names[code] if code >= 0 else None for code in order]
        lines = []
        for name in names or list(self.policies):
            policy = self.policies.get(name) if name is not None else None
            if policy is not None and "first_response" in policy.targets:
                lines.append(TargetLine(policy.name, policy.targets["first_response"].total_seconds(),
                                        policy.calendar is not None))
        return lines[:3]

    async def _tags(self) -> list[tuple[str, int]]:
        count = func.count(col(ConversationTag.conversation_id))
        rows = await self._execute(
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

    def _bound_of(self, period: Period) -> datetime:
        return min(period.end, self.now)

    def _open_at(self, at: datetime) -> ColumnElement[bool]:
        """The conversation was created before ``at`` and not resolved at it.

        A conversation not updated since ``at`` had no resolve or reopen since (both update it), so its
        status tells its state then; only the others are replayed from their last such event before it.
        """
        last_state = (
            select(col(Event.type))
            .where(col(Event.conversation_id) == col(Conversation.id),
                   col(Event.type).in_((RESOLVED_EVENT, REOPENED_EVENT)), col(Event.created_at) < at)
            .order_by(col(Event.id).desc())
            .limit(1)
            .scalar_subquery()
        )
        return and_(col(Conversation.created_at) < at, or_(
            and_(col(Conversation.updated_at) < at, col(Conversation.status) != Status.RESOLVED.value),
            and_(col(Conversation.updated_at) >= at,
                 func.coalesce(last_state, REOPENED_EVENT) == REOPENED_EVENT)))

    async def scans(self, periods: Sequence[Period], *, worst: bool = False, plain: bool = False) -> _Scans:
        """What one pass over the conversations finds for every period at once: the backlog at its end and
        its SLA clock outcomes; with ``worst``, this period's clock breaches that stayed overdue longest.

        Not grouped: the backlog's channels come as the packed channel ids of the open conversations
        (counted by numpy), as do the breaches. A GROUP BY sorted every row, and on SQLite had to be by
        an expression (else SQLite walks ix_conversations_contact for the order, fetching each wide row
        through it); on PostgreSQL the sort spilled to disk.
        """
        found = _Scans()
        if not periods:
            return found
        c = Conversation
        bounds = [self._bound_of(p) for p in periods]
        columns: list[Any] = []
        for at in bounds:
            is_open = self._open_at(at)
            columns += [self._aggregate_text(case((is_open, cast(col(c.channel_id), Text))), ","),
                        func.min(case((is_open, col(c.created_at))))]
        # Met and breached outcomes of a target in a period in one sum (breached in the high 32 bits): the
        # dates are compared once per row instead of twice.
        for period in periods:
            for target, (at_name, end_name) in OUTCOME_COLUMNS.items():
                at, end = getattr(c, at_name), getattr(c, end_name)
                verdict = case((end == at, 1), (or_(end.is_(None), end > at), _HIGH), else_=0)
                columns.append(func.sum(case((self._clock_in_period(target, period), verdict), else_=0)))
        breach_rows = []
        if worst:
            for target, (at_name, end_name) in OUTCOME_COLUMNS.items():
                at, end = getattr(c, at_name), getattr(c, end_name)
                breached = and_(self._clock_in_period(target), or_(end.is_(None), end > at))
                row = (col(c.id), self._policy_code(col(c.sla_policy)), _Time(at), _Time(end))
                ints, stamps = self._row_parts(row, plain=plain)
                breach_rows.append((row, stamps is not None))
                columns.append(self._aggregate_text(case((breached, ints)), ","))
                if stamps is not None:
                    columns.append(self._aggregate_text(case((breached, stamps)), ""))
        values = list((await self._execute(select(*columns))).one())
        width = len(OUTCOME_COLUMNS)
        for n, (period, at) in enumerate(zip(periods, bounds, strict=True)):
            channels, oldest = values[2 * n], values[2 * n + 1]
            open_channels = np.fromstring(channels or "", dtype=np.int64, sep=",")
            ids, counts = np.unique(open_channels, return_counts=True)
            oldest_id = None
            if oldest is not None:
                oldest_id = await self._scalar(
                    select(col(c.id)).where(col(c.created_at) == oldest, self._open_at(at))
                    .order_by(col(c.id)).limit(1))
            found.backlog[period] = (dict(zip(ids.tolist(), counts.tolist(), strict=True)), oldest, oldest_id)
            sums = values[2 * len(periods) + width * n:2 * len(periods) + width * (n + 1)]
            found.clocks[period] = [(int(v or 0) % _HIGH, int(v or 0) // _HIGH) for v in sums]
        if worst:
            packed = iter(values[(2 + width) * len(periods):])
            unpacked = []
            for row, has_stamps in breach_rows:
                ints = next(packed)
                parsed = self._unpack(row, ints, (next(packed) or "") if has_stamps else None, plain=plain)
                if parsed is None:  # a timestamp stored in another shape: let the database convert them
                    return await self.scans(periods, worst=worst, plain=True)
                unpacked.append(parsed)
            found.clock_breaches = self._clock_breaches(unpacked)
        return found

    def _clock_breaches(self, rows: Sequence[Sequence[Micros]]) -> list[_Ranked]:
        """The clocks' breaches that stayed overdue longest (a few per target), from the columns of every
        breach per target: conversation, policy code, due date, end."""
        found = []
        for target, (cid, policy, at, end) in zip(OUTCOME_COLUMNS, rows, strict=True):
            until = np.where((end != _NO_TIME) & (end < self.bound_us), end, self.bound_us)
            overdue = until - at
            for n in np.lexsort((cid, at, -overdue))[:WORST_BREACHES]:
                found.append(_Ranked(int(overdue[n]), int(at[n]), int(cid[n]), 0, target,
                                     self.names[int(policy[n])], None if end[n] == _NO_TIME else int(end[n])))
        return found

    def adopt(self, scans: _Scans) -> None:
        """Take this period's backlog and SLA clock outcomes from the pass that found them."""
        channels, oldest, oldest_id = scans.backlog[self.period]
        for channel_id, count in channels.items():
            self._channel(channel_id).backlog += count
        total = sum(channels.values())
        age = None if oldest is None else (self.bound - oldest).total_seconds()
        self.report.backlog = Backlog(total, age, oldest_id, self.bound)
        for target, (met, breached) in zip(TARGETS, scans.clocks[self.period], strict=True):
            tally = self.report.sla.setdefault(target, TargetOutcomes())
            tally.met += met
            tally.breached += breached

    # --- SLA ---

    def _has(self, target: str) -> list[str]:
        """The configured policies that set ``target``."""
        return [name for name, policy in self.policies.items() if target in policy.targets]

    def _clock_in_period(self, target: str, period: Period | None = None) -> ColumnElement[bool]:
        """The conversation's clock for ``target`` has its outcome dated in the period (this one unless
        given), under a policy that is configured and sets the target."""
        period = period or self.period
        at = getattr(Conversation, OUTCOME_COLUMNS[target][0])
        # The dates first: most rows fail there (for all but one period), before the policy list.
        return and_(at >= period.start, at < self._bound_of(period),
                    col(Conversation.sla_policy).in_(self._has(target)))

    async def _sla_outcomes(self, follow_ups: _Items, rounds: _Rounds) -> list[_Ranked]:
        """Tally met and breached per target; return the breaches for the worst-breaches table.

        Outcomes come from three places, each counted once: the clocks (conversation columns, counted by
        ``scans`` and adopted), the breach events (which keep breaches of clocks replaced since) and the
        follow-up rounds that neither covers.
        """
        event_only, asked_dates = await self._breach_events()
        measured = self._round_outcomes(follow_ups, rounds, asked_dates)
        return event_only + measured

    async def _breach_events(self) -> tuple[list[_Ranked], dict[int, list[int]]]:
        """Breach events in the period that no clock outcome covers (tallied), and every next-response
        breach date per conversation."""
        events = (
            select(col(Event.conversation_id).label("cid"), col(Event.created_at).label("at"),
                   col(Event.data)["target"].as_string().label("target"),
                   col(Event.data)["policy"].as_string().label("policy"))
            .where(col(Event.type) == EVENT_BREACHED, col(Event.created_at) >= self.period.start,
                   col(Event.created_at) < self.bound, col(Event.conversation_id).is_not(None))
            .subquery()
        )
        # The event of a clock's own breach (same target and date) is counted with the clock.
        at = type_coerce(events.c.at, UTCDateTime)
        own = case(*((and_(events.c.target == name, self._clock_breach_at(name, at)), 1) for name in TARGETS),
                   else_=0)
        target = case({name: index for index, name in enumerate(TARGETS)}, value=events.c.target, else_=-1)
        ints, (policies,) = await self._columns(
            (events.c.cid, _Time(at), target, own),
            lambda query: query.select_from(events)
            .outerjoin(Conversation, col(Conversation.id) == events.c.cid),
            func.coalesce(events.c.policy, ""))
        cids, ats, codes, counted = ints
        asked: dict[int, list[int]] = defaultdict(list)
        for n in np.flatnonzero(codes == TARGETS.index("next_response")).tolist():
            asked[int(cids[n])].append(int(ats[n]))
        seen: set[tuple[int, str, int]] = set()
        found = []
        # Most events are a clock's own breach, counted with the clock: only the others are looked at.
        for n in np.flatnonzero((codes >= 0) & (counted == 0)).tolist():
            cid, when, name, policy = int(cids[n]), int(ats[n]), TARGETS[int(codes[n])], policies[n] or None
            if (cid, name, when) in seen:
                continue
            seen.add((cid, name, when))
            self.report.sla.setdefault(name, TargetOutcomes()).breached += 1
            found.append(_Ranked(self.bound_us - when, when, cid, 1, name, policy, None))
        return found, asked

    def _clock_breach_at(self, target: str, at: Any) -> ColumnElement[bool]:
        """The conversation's clock for ``target`` was breached at ``at`` (and counts: its policy is
        configured and sets the target)."""
        due, end = (getattr(Conversation, name) for name in OUTCOME_COLUMNS[target])
        return and_(col(Conversation.sla_policy).in_(self._has(target)), due == at,
                    or_(end.is_(None), end > due))

    def _round_outcomes(
        self, items: _Items, rounds: _Rounds, asked: Mapping[int, list[int]]
    ) -> list[_Ranked]:
        """Next-response outcomes of the follow-up rounds that no clock or breach event covers, measured
        from the message times (no pause is known here); tallied, and their breaches returned."""
        amounts = {code: self.policies[name].targets.get("next_response")
                   for code, name in enumerate(self.names)}
        keep = np.isin(items.policy, [code for code, amount in amounts.items() if amount is not None])
        keep &= rounds.since != items.start  # the current clock measures this round
        for n in np.flatnonzero(keep & np.isin(items.cid, list(asked))):
            start, end = int(items.start[n]), int(items.end[n])
            if any(start <= at <= end for at in asked[int(items.cid[n])]):
                keep[n] = False  # a breach event covers this round
        deadline = np.zeros(len(items), dtype=np.int64)
        for code, amount in amounts.items():
            mask = keep & (items.policy == code)
            if amount is None or not mask.any():
                continue
            calendar = self._calendar(code)
            if calendar is None:
                deadline[mask] = items.start[mask] + amount // _ONE_US
            else:
                deadline[mask] = self._open_time(calendar, int(items.start[mask].min())).add(
                    items.start[mask], amount)
        breached = items.end > deadline
        at = np.where(breached, deadline, items.end)
        keep &= (at >= self.start_us) & (at < self.bound_us)
        # An outcome equal to the clock's own (same date, same verdict) is counted once.
        clock_breached = (rounds.clock_end == _NO_TIME) | (rounds.clock_end > rounds.clock_at)
        keep &= ~((rounds.clock_at == at) & (clock_breached == breached)
                  & (rounds.clock_at >= self.start_us) & (rounds.clock_at < self.bound_us))
        chosen = np.flatnonzero(keep)
        chosen = chosen[_first_of_each(items.cid[chosen], at[chosen], breached[chosen])]
        tally = self.report.sla.setdefault("next_response", TargetOutcomes())
        late = chosen[breached[chosen]]
        tally.breached += len(late)
        tally.met += len(chosen) - len(late)
        overdue = np.minimum(items.end[late], self.bound_us) - at[late]
        top = late[np.lexsort((items.cid[late], at[late], -overdue))[:WORST_BREACHES]]
        return [_Ranked(int(min(items.end[n], self.bound_us) - at[n]), int(at[n]), int(items.cid[n]), 2,
                        "next_response", self.names[int(items.policy[n])], int(items.end[n])) for n in top]

    async def _worst(self, clocks: Sequence[_Ranked], others: Sequence[_Ranked]) -> list[Breach]:
        candidates = [*clocks, *await self._ends_of_events(others)]
        top = sorted(candidates, key=_Ranked.key)[:WORST_BREACHES]
        ids = [b.conversation_id for b in top]
        info = {}
        if ids:
            info = {cid: (ch, who) for cid, ch, who in await self._execute(
                select(col(Conversation.id), col(Conversation.channel_id), col(Conversation.assignee_id))
                .where(col(Conversation.id).in_(ids)))}
        breaches = []
        for b in top:
            channel_id, assignee_id = info.get(b.conversation_id, (0, None))
            breaches.append(Breach(b.conversation_id, self.channels.get(channel_id, "?"), b.target, b.policy,
                                   from_us(b.at_us), None if b.ended_us is None else from_us(b.ended_us),
                                   b.overdue_us / 1_000_000, self._member(assignee_id)))
        return breaches

    async def _ends_of_events(self, breaches: Sequence[_Ranked]) -> list[_Ranked]:
        """Breaches with the end of the earliest event-only ones looked up: the next reply, or the next
        resolution (two queries); the others count as overdue until the end of the period."""
        unknown = sorted((b for b in breaches if b.source == 1), key=lambda b: (b.at_us, b.conversation_id))
        looked = unknown[:_MAX_END_LOOKUPS]
        if not looked:
            return list(breaches)
        ids = sorted({b.conversation_id for b in looked})
        since = from_us(min(b.at_us for b in looked))
        replies = await self._times(
            select(col(Message.conversation_id), self._us(col(Message.created_at)))
            .where(col(Message.conversation_id).in_(ids), col(Message.direction) == Direction.OUT.value,
                   col(Message.created_at) >= since))
        resolves = await self._times(
            select(col(Event.conversation_id), self._us(col(Event.created_at)))
            .where(col(Event.conversation_id).in_(ids), col(Event.type) == RESOLVED_EVENT,
                   col(Event.created_at) >= since))
        ended = {}
        for b in looked:
            times = (resolves if b.target == "resolution" else replies).get(b.conversation_id, [])
            after = times[bisect.bisect_left(times, b.at_us):]
            if after:
                until = min(after[0], self.bound_us)
                ended[id(b)] = replace(b, overdue_us=until - b.at_us, ended_us=after[0])
        return [ended.get(id(b), b) for b in breaches]

    async def _times(self, query: Any) -> dict[int, list[int]]:
        """(conversation id, µs) rows as each conversation's sorted times."""
        found: dict[int, list[int]] = defaultdict(list)
        for cid, at in await self._execute(query):
            found[cid].append(at)
        return {cid: sorted(times) for cid, times in found.items()}


@dataclass(frozen=True)
class _Rounds:
    """Per follow-up round, what its conversation's next-response clock says (µs; ``_NO_TIME`` when unset)."""

    since: Micros  # when the current clock started
    clock_at: Micros  # its outcome's date
    clock_end: Micros  # when it ended

    @classmethod
    def of(cls, columns: Sequence[Micros]) -> _Rounds:
        """From columns in field order."""
        return cls(*columns)


def clock_outcome(
    conversation_id: int, target: str, clock: TargetClock, policy: Policy, bound: datetime,
    clocks: Clocks | None = None,
) -> SlaOutcome | None:
    """The decided outcome of one SLA clock as of ``bound``, or None while it is still open (or exempt).

    Met: the clock ended as met no later than its deadline, dated when it ended. Breached: the deadline
    passed before the clock ended (or it has not ended), dated at the deadline. The rule is
    ``inbox.sla.outcomes.clock_dates``, which the engine applies to keep the columns reports count.
    """
    index = clocks or Clocks()
    at, ended = clock_dates(clock, policy.targets.get(target), policy.calendar,
                            lambda calendar, c, amount: index.instant_at(calendar, c.segments, amount))
    if at is None:
        return None
    met = at == ended
    if not met and at >= bound:
        return None
    return SlaOutcome(conversation_id, target, not met, at, policy.name, ended)
