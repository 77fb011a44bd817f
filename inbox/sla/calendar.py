"""Business-hours calendars: weekly open periods in a timezone, holidays, and time arithmetic over them.

Rules (also in docs/sla-calendars.md):

- A period belongs to the day it starts on. ``fri 22:00-02:00`` is open from Friday 22:00 to
  Saturday 02:00 local time, and a holiday on Friday closes all of it (a holiday on Saturday does not).
- Open time is half-open: a period is open at its start instant and closed at its end instant.
- Periods are in local wall-clock time. Each boundary is the first instant at which the wall clock
  reads that time or later. So on spring-forward day a boundary inside the skipped hour is the
  instant the clocks jump (01:30-03:30 in Europe/Berlin lasts one real hour), and on fall-back day a
  boundary inside the repeated hour is its first occurrence; a period that spans the repeated hour
  lasts an hour longer, because that hour really elapses twice.
- All functions take timezone-aware datetimes and return aware UTC datetimes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from inbox.errors import InboxError

__all__ = [
    "ALWAYS_OPEN",
    "DAY_NAMES",
    "BusinessCalendar",
    "CalendarError",
    "WeeklyPeriod",
    "add_business_time",
    "add_time",
    "business_time_between",
    "is_open",
    "next_open",
    "time_between",
]

DAY_NAMES: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A policy with this "calendar" counts plain wall-clock time; it reads better than a bare None.
ALWAYS_OPEN: Final = None

_MINUTES_PER_DAY: Final = 24 * 60
_MINUTES_PER_WEEK: Final = 7 * _MINUTES_PER_DAY
_CLOCK_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ZERO = timedelta(0)
_ONE_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)


class CalendarError(InboxError, ValueError):
    """A business-hours calendar that cannot be built; the message names the problem."""


@dataclass(frozen=True)
class WeeklyPeriod:
    """One weekly open period: a weekday and local start/end as minutes after that day's midnight."""

    weekday: int  # 0 = Monday, as datetime.weekday()
    start_minute: int  # 0 .. 1439
    end_minute: int  # after start_minute, at most 24 h later; above 1440 means it ends the next day

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise CalendarError(f"weekday {self.weekday} is out of range (0 = Monday .. 6 = Sunday)")
        if not 0 <= self.start_minute < _MINUTES_PER_DAY:
            raise CalendarError(f"period start minute {self.start_minute} is out of range (0 .. 1439)")
        if self.end_minute <= self.start_minute:
            raise CalendarError(f"period {self} is empty: it must end after it starts")
        if self.end_minute - self.start_minute > _MINUTES_PER_DAY:
            raise CalendarError(f"period {self} is longer than 24 hours")

    def __str__(self) -> str:
        end = self.end_minute if self.end_minute == _MINUTES_PER_DAY else self.end_minute % _MINUTES_PER_DAY
        return f"{DAY_NAMES[self.weekday % 7]} {_format_minute(self.start_minute)}-{_format_minute(end)}"


@dataclass(frozen=True)
class BusinessCalendar:
    """A timezone, weekly open periods (several a day, possibly past midnight) and holiday dates."""

    timezone: str
    periods: tuple[WeeklyPeriod, ...]
    holidays: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _by_weekday: tuple[tuple[tuple[timedelta, timedelta], ...], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        periods = tuple(sorted(self.periods, key=lambda p: (p.weekday, p.start_minute)))
        if not periods:
            raise CalendarError("the calendar has no open periods: give hours for at least one day")
        _check_no_overlap(periods)
        holidays = frozenset(self.holidays)
        for holiday in holidays:
            if not isinstance(holiday, date) or isinstance(holiday, datetime):
                raise CalendarError(f"holiday {holiday!r} is not a date")
        object.__setattr__(self, "_zone", _load_zone(self.timezone))
        object.__setattr__(self, "periods", periods)
        object.__setattr__(self, "holidays", holidays)
        # Offsets from local midnight per weekday, precomputed because the interval walk is the hot loop.
        by_weekday = tuple(
            tuple(
                (timedelta(minutes=p.start_minute), timedelta(minutes=p.end_minute))
                for p in periods
                if p.weekday == weekday
            )
            for weekday in range(7)
        )
        object.__setattr__(self, "_by_weekday", by_weekday)

    @classmethod
    def from_config(
        cls,
        timezone: str,
        hours: Mapping[str, Sequence[str] | str],
        holidays: Iterable[str | date] = (),
    ) -> BusinessCalendar:
        """Build a calendar from config data: ``{"weekdays": ["09:00-17:00"], "sat": [...]}`` etc.

        Keys are ``mon`` .. ``sun`` or ``weekdays`` (mon-fri); a single day's key replaces the
        ``weekdays`` entry for that day (``fri = []`` closes Friday). Periods are ``HH:MM-HH:MM``; an
        end at or before the start runs past midnight; ``24:00`` is allowed as an end. Holidays are
        ``YYYY-MM-DD`` strings or dates.
        """
        weekdays: list[str] | None = None
        single_days: dict[int, list[str]] = {}
        for key, value in hours.items():
            name = str(key).strip().lower()
            texts = _period_texts(name, value)
            if name == "weekdays":
                if weekdays is not None:
                    raise CalendarError("hours: 'weekdays' is given twice")
                weekdays = texts
            elif name in DAY_NAMES:
                index = DAY_NAMES.index(name)
                if index in single_days:
                    raise CalendarError(f"hours: day '{name}' is given twice")
                single_days[index] = texts
            else:
                raise CalendarError(
                    f"hours: unknown day '{key}' (use mon, tue, wed, thu, fri, sat, sun or weekdays)"
                )
        days: dict[int, list[str]] = dict.fromkeys(range(5), weekdays) if weekdays is not None else {}
        days.update(single_days)
        periods = tuple(_parse_period(weekday, text) for weekday in sorted(days) for text in days[weekday])
        _load_zone(timezone)  # report a bad zone before "no periods", it is the likelier mistake
        return cls(
            timezone=timezone,
            periods=periods,
            holidays=frozenset(_parse_holiday(item) for item in holidays),
        )

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's timezone."""
        return self._zone


def add_business_time(cal: BusinessCalendar, start: datetime, duration: timedelta) -> datetime:
    """Return the instant (UTC) at which ``duration`` of open time has elapsed, counting from ``start``.

    Counting begins at ``start`` if it is open, else at the next opening. A duration of zero gives
    ``start`` itself if open, else the next opening. A positive duration ends inside an open period
    or exactly at a period's end (the closing instant), never at a later opening.
    """
    instant = _as_utc(start, "start")
    if duration < _ZERO:
        raise ValueError("duration must not be negative")
    remaining = duration
    for opens, closes in _open_intervals(cal, instant):
        length = closes - opens
        if remaining <= length:
            return opens + remaining
        remaining -= length
    raise AssertionError("unreachable: the open intervals never run out")


def business_time_between(cal: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """Return the open time in ``[start, end)``; zero when ``end <= start``."""
    begin = _as_utc(start, "start")
    finish = _as_utc(end, "end")
    total = _ZERO
    if finish <= begin:
        return total
    for opens, closes in _open_intervals(cal, begin):
        if opens >= finish:
            break
        total += min(closes, finish) - opens
    return total


def is_open(cal: BusinessCalendar, instant: datetime) -> bool:
    """Return whether the calendar is open at ``instant`` (open at a period's start, closed at its end)."""
    moment = _as_utc(instant, "instant")
    return next_open(cal, moment) == moment


def next_open(cal: BusinessCalendar, instant: datetime) -> datetime:
    """Return ``instant`` (in UTC) if the calendar is open then, else the next opening."""
    moment = _as_utc(instant, "instant")
    for opens, _closes in _open_intervals(cal, moment):
        return opens
    raise AssertionError("unreachable: the open intervals never run out")


def add_time(cal: BusinessCalendar | None, start: datetime, duration: timedelta) -> datetime:
    """Add business time with a calendar, or plain wall-clock time without one (``ALWAYS_OPEN``)."""
    if cal is not None:
        return add_business_time(cal, start, duration)
    if duration < _ZERO:
        raise ValueError("duration must not be negative")
    return _as_utc(start, "start") + duration


def time_between(cal: BusinessCalendar | None, start: datetime, end: datetime) -> timedelta:
    """Measure business time with a calendar, or plain elapsed time without one; never negative."""
    if cal is not None:
        return business_time_between(cal, start, end)
    return max(_as_utc(end, "end") - _as_utc(start, "start"), _ZERO)


def _open_intervals(cal: BusinessCalendar, instant: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Yield the open intervals ``[opens, closes)`` in UTC that end after ``instant``, in order.

    The first one is clipped to start no earlier than ``instant``. Intervals never overlap (the
    weekly periods do not, and local-to-UTC conversion keeps order) but may touch.
    """
    zone = cal._zone
    by_weekday = cal._by_weekday
    holidays = cal.holidays
    # Periods last at most 24 h, so one that could still be open began at most two local days back;
    # the second day is slack for zones whose offset jumps by a whole day (Pacific/Apia, 2011).
    day = instant.astimezone(zone).date() - 2 * _ONE_DAY
    while True:
        offsets = by_weekday[day.weekday()]
        if offsets and day not in holidays:
            midnight = datetime.combine(day, time())
            for start_offset, end_offset in offsets:
                closes = _local_to_utc(midnight + end_offset, zone)
                if closes <= instant:
                    continue
                opens = _local_to_utc(midnight + start_offset, zone)
                if opens < closes:  # both ends inside one DST gap: nothing of it exists
                    yield max(opens, instant), closes
        day += _ONE_DAY


def _local_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Return the first instant at which the wall clock in ``zone`` reads ``wall`` or later."""
    # fold=0 picks the earlier offset: the first occurrence of a repeated time.
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # ``wall`` does not exist (skipped by a forward jump). With fold=0 it maps to a point after the
    # jump, with fold=1 to one before it; the jump itself lies in between.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _transition_between(before, instant, zone)


def _transition_between(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """Return the instant in ``(before, after]`` where the UTC offset of ``zone`` changes."""
    # tzdata transitions fall on whole seconds, and both ends are whole seconds, so bisect seconds.
    offset_before = before.astimezone(zone).utcoffset()
    while after - before > _ONE_SECOND:
        half = timedelta(seconds=(after - before) // _ONE_SECOND // 2)
        middle = before + half
        if middle.astimezone(zone).utcoffset() == offset_before:
            before = middle
        else:
            after = middle
    return after


def _as_utc(value: datetime, name: str) -> datetime:
    """Return an aware datetime converted to UTC; refuse naive ones, whose meaning would be a guess."""
    if value.tzinfo is UTC:
        return value  # what the database gives back: the clock arithmetic's common case, made cheap
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _check_no_overlap(periods: Sequence[WeeklyPeriod]) -> None:
    """Refuse periods that overlap anywhere in the week, including Sunday night into Monday."""
    spans: list[tuple[int, int, WeeklyPeriod]] = []
    for period in periods:
        start = period.weekday * _MINUTES_PER_DAY + period.start_minute
        end = period.weekday * _MINUTES_PER_DAY + period.end_minute
        if end > _MINUTES_PER_WEEK:  # Sunday past midnight wraps to Monday
            spans.append((start, _MINUTES_PER_WEEK, period))
            spans.append((0, end - _MINUTES_PER_WEEK, period))
        else:
            spans.append((start, end, period))
    spans.sort(key=lambda span: (span[0], span[1]))
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        if start < end:
            raise CalendarError(f"periods overlap: {first} and {second}")


def _period_texts(day: str, value: Sequence[str] | str) -> list[str]:
    """Return the period strings given for a day; a lone string counts as a one-item list."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence):
        raise CalendarError(f"hours for {day} must be a list of periods like ['09:00-17:00']")
    return list(value)


def _parse_period(weekday: int, text: str) -> WeeklyPeriod:
    """Parse ``HH:MM-HH:MM`` for a weekday; an end at or before the start means the next day."""
    day = DAY_NAMES[weekday]
    if not isinstance(text, str):
        raise CalendarError(f"hours for {day}: {text!r} is not a period like '09:00-17:00'")
    parts = text.replace("\u2013", "-").split("-")
    if len(parts) != 2:
        raise CalendarError(f"hours for {day}: '{text}' is not a period like '09:00-17:00'")
    start = _parse_clock_time(day, text, parts[0], is_end=False)
    end = _parse_clock_time(day, text, parts[1], is_end=True)
    if start == end % _MINUTES_PER_DAY and end != _MINUTES_PER_DAY:
        raise CalendarError(
            f"hours for {day}: period '{text}' is empty (it starts and ends at the same time)"
        )
    if end <= start:
        end += _MINUTES_PER_DAY
    return WeeklyPeriod(weekday, start, end)


def _parse_clock_time(day: str, period: str, text: str, *, is_end: bool) -> int:
    """Parse ``HH:MM`` into minutes after midnight; ``24:00`` only as an end."""
    match = _CLOCK_TIME.fullmatch(text.strip())
    if match is not None:
        hours, minutes = int(match.group(1)), int(match.group(2))
        if minutes < 60 and (hours < 24 or (hours == 24 and minutes == 0 and is_end)):
            return hours * 60 + minutes
    raise CalendarError(
        f"hours for {day}: bad time '{text.strip()}' in '{period}' "
        "(use HH:MM from 00:00 to 23:59; 24:00 only as an end)"
    )


def _parse_holiday(value: str | date) -> date:
    """Parse a ``YYYY-MM-DD`` holiday (TOML gives real dates, which pass through)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise CalendarError(f"bad holiday date {value!r} (use YYYY-MM-DD, e.g. 2026-12-25)")


def _load_zone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name`` or raise a CalendarError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise CalendarError(f"unknown timezone {name!r} (use an IANA name such as Europe/Berlin)") from None


def _format_minute(minute: int) -> str:
    """Format minutes after midnight as ``HH:MM``."""
    return f"{minute // 60:02d}:{minute % 60:02d}"
