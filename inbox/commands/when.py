"""Reading a point in time as people type it: ``2h``, ``tomorrow 9:00``, ``monday``, ``2026-12-01 10:00``.

Wall-clock forms are read in the team's timezone and returned in UTC. Indonesian day words
(``besok``, ``senin`` …) are understood too, since teams type in the language they work in.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from inbox.commands.errors import CommandInvalid, UsageError
from inbox.durations import DurationError, parse_duration

DEFAULT_TIME = time(9, 0)  # "tomorrow" alone means the start of a working day

_WEEKDAYS = {
    "monday": 0, "mon": 0, "senin": 0,
    "tuesday": 1, "tue": 1, "selasa": 1,
    "wednesday": 2, "wed": 2, "rabu": 2,
    "thursday": 3, "thu": 3, "kamis": 3,
    "friday": 4, "fri": 4, "jumat": 4, "jum'at": 4,
    "saturday": 5, "sat": 5, "sabtu": 5,
    "sunday": 6, "sun": 6, "minggu": 6,
}
_RELATIVE_DAYS = {"today": 0, "hari ini": 0, "tomorrow": 1, "besok": 1, "lusa": 2}
_TIME = re.compile(r"^(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm)?$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def _bad(text: str) -> UsageError:
    return UsageError("error.bad_time", value=text)


def _parse_time(text: str, *, bare_hour: bool) -> time | None:
    """``9:00``, ``09.30``, ``5pm``; a bare ``9`` only when ``bare_hour`` (after a day word)."""
    match = _TIME.match(text)
    if match is None:
        return None
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if match.group(2) is None and half is None and not bare_hour:
        return None
    if half is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def _split_day(text: str) -> tuple[str, str]:
    """Separate a leading day word (possibly two words, like ``hari ini``) from the time after it."""
    for word in sorted(_RELATIVE_DAYS, key=len, reverse=True):
        if text == word or text.startswith(word + " "):
            return word, text[len(word):].strip()
    head, _, tail = text.partition(" ")
    return head, tail.strip()


def _day(word: str, today: date) -> date | None:
    if word in _RELATIVE_DAYS:
        return today + timedelta(days=_RELATIVE_DAYS[word])
    if word in _WEEKDAYS:
        # The next such day, never today: "monday" typed on a Monday means next week.
        ahead = (_WEEKDAYS[word] - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead)
    match = _DATE.match(word)
    if match is None:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def parse_when(text: str, now: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant ``text`` names, which must lie after ``now``; usage error if unreadable."""
    cleaned = " ".join(text.lower().split())
    if not cleaned:
        raise UsageError("error.missing_argument", argument="TIME")
    try:
        instant = now + parse_duration(cleaned)
    except DurationError:
        instant = _wall_clock(cleaned, now, tz, text)
    if instant <= now:
        raise CommandInvalid("error.time_past", value=text.strip())
    return instant


def _wall_clock(cleaned: str, now: datetime, tz: ZoneInfo, original: str) -> datetime:
    today = now.astimezone(tz).date()
    lone_time = _parse_time(cleaned, bare_hour=False)
    if lone_time is not None:
        day, at = today, lone_time
    else:
        word, tail = _split_day(cleaned)
        found = _day(word, today)
        if found is None:
            raise _bad(original.strip())
        parsed = _parse_time(tail, bare_hour=True) if tail else DEFAULT_TIME
        if parsed is None:
            raise _bad(original.strip())
        day, at = found, parsed
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
