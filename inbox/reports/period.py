"""Report periods: ISO weeks in the team's timezone (Monday 00:00 to Monday 00:00 local), date ranges,
and the rolling windows of ``/stats`` (this week so far, the last 7 days, today).

A period is a half-open UTC interval ``[start, end)`` plus the timezone it was cut in. Weeks follow the
local calendar, so a week with a daylight-saving change is 167 or 169 hours long; every other period
is shifted by its own length to find the one before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from inbox.clock import isoformat_utc
from inbox.errors import InboxError

WEEK = "week"  # a whole ISO week
WEEK_TO_DATE = "week_to_date"  # Monday 00:00 of this week until now
LAST_DAYS = "last_days"  # a rolling window ending now
TODAY = "today"  # local midnight until now
RANGE = "range"  # whole local days, --from/--to

_WEEK_LABEL = re.compile(r"^(\d{4})-?[Ww](\d{1,2})$")


class PeriodError(InboxError, ValueError):
    """A period that cannot be understood; the message says what was expected."""


@dataclass(frozen=True)
class Period:
    """A half-open interval ``[start, end)`` in UTC, cut in ``timezone``; ``label`` names it for people."""

    start: datetime
    end: datetime
    timezone: str
    kind: str
    label: str

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("period bounds must be timezone-aware")
        if self.end <= self.start:
            raise PeriodError("the period must end after it starts")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    @property
    def zone(self) -> ZoneInfo:
        """The team's timezone."""
        return ZoneInfo(self.timezone)

    @property
    def length(self) -> timedelta:
        """How long the period lasts."""
        return self.end - self.start

    def contains(self, instant: datetime) -> bool:
        """Whether ``instant`` lies in ``[start, end)``."""
        return self.start <= instant < self.end

    def local_start(self) -> datetime:
        """The start in the team's timezone."""
        return self.start.astimezone(self.zone)

    def local_end(self) -> datetime:
        """The (exclusive) end in the team's timezone."""
        return self.end.astimezone(self.zone)

    def local_days(self) -> list[date]:
        """Every local date the period touches, in order (a partial last day included)."""
        first = self.local_start().date()
        last = (self.end - timedelta(microseconds=1)).astimezone(self.zone).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def previous(self) -> Period:
        """The period of the same length immediately before (for a whole week: the previous ISO week)."""
        if self.kind == WEEK:
            monday = self.local_start().date() - timedelta(days=7)
            return iso_week_of(monday, self.timezone)
        start = self.start - self.length
        return Period(start, self.start, self.timezone, self.kind, _range_label(start, self.start, self.zone))

    def as_json(self) -> dict[str, Any]:
        """JSON form: label, kind, UTC bounds and local bounds."""
        return {
            "label": self.label, "kind": self.kind,
            "start": isoformat_utc(self.start), "end": isoformat_utc(self.end),
            "start_local": self.local_start().isoformat(), "end_local": self.local_end().isoformat(),
        }


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ValueError, KeyError, OSError):
        raise PeriodError(f"unknown timezone '{timezone}'") from None


def local_midnight(day: date, timezone: str) -> datetime:
    """The instant (UTC) at which ``day`` begins in ``timezone``."""
    return datetime.combine(day, time(), tzinfo=_zone(timezone)).astimezone(UTC)


def week_label(day: date) -> str:
    """The ISO week of a date, as ``2026-W47``."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def iso_week_of(day: date, timezone: str) -> Period:
    """The ISO week (Monday 00:00 to Monday 00:00 local) that contains ``day``."""
    monday = day - timedelta(days=day.weekday())
    return Period(local_midnight(monday, timezone), local_midnight(monday + timedelta(days=7), timezone),
                  timezone, WEEK, week_label(monday))


def parse_week(label: str, timezone: str) -> Period:
    """The ISO week named ``2026-W47`` (or ``2026W47``), in the team's timezone."""
    match = _WEEK_LABEL.match(label.strip())
    if match is None:
        raise PeriodError(f"'{label}' is not an ISO week: use YYYY-Www, e.g. 2026-W47")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise PeriodError(f"'{label}' is not a week of {match.group(1)}") from None
    return iso_week_of(monday, timezone)


def week_just_ended(now: datetime, timezone: str) -> Period:
    """The last whole ISO week before ``now`` (on Monday morning: the week that ended at midnight)."""
    today = now.astimezone(_zone(timezone)).date()
    return iso_week_of(today - timedelta(days=today.weekday() + 7), timezone)


def week_to_date(now: datetime, timezone: str) -> Period:
    """This ISO week from Monday 00:00 local until ``now``."""
    week = iso_week_of(now.astimezone(_zone(timezone)).date(), timezone)
    end = max(now, week.start + timedelta(seconds=1))
    return Period(week.start, end, timezone, WEEK_TO_DATE, week.label)


def last_days(now: datetime, timezone: str, days: int = 7) -> Period:
    """The rolling window of ``days`` times 24 hours that ends at ``now``."""
    if days < 1:
        raise PeriodError("the window needs at least one day")
    start = now - timedelta(days=days)
    return Period(start, now, timezone, LAST_DAYS, f"{days}d")


def today(now: datetime, timezone: str) -> Period:
    """Today from local midnight until ``now``."""
    day = now.astimezone(_zone(timezone)).date()
    start = local_midnight(day, timezone)
    return Period(start, max(now, start + timedelta(seconds=1)), timezone, TODAY, day.isoformat())


def parse_date(text: str) -> date:
    """A ``YYYY-MM-DD`` date, or a PeriodError naming the bad text."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(f"'{text}' is not a date: use YYYY-MM-DD, e.g. 2026-11-16") from None


def date_range(first: date, last: date, timezone: str) -> Period:
    """Whole local days from ``first`` through ``last`` (both included)."""
    if last < first:
        raise PeriodError(f"--to {last} is before --from {first}")
    start = local_midnight(first, timezone)
    end = local_midnight(last + timedelta(days=1), timezone)
    return Period(start, end, timezone, RANGE, f"{first.isoformat()}..{last.isoformat()}")


def _range_label(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    first = start.astimezone(zone)
    last = end.astimezone(zone)
    if first.time() == time() and last.time() == time():
        return f"{first.date().isoformat()}..{(last.date() - timedelta(days=1)).isoformat()}"
    return f"{first.strftime('%Y-%m-%d %H:%M')}..{last.strftime('%Y-%m-%d %H:%M')}"
