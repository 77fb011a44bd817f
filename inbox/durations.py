"""Parsing of human durations such as ``90s``, ``15m``, ``2h``, ``1d12h`` used in config and commands."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


class DurationError(ValueError):
    """A duration string that cannot be understood."""


def parse_duration(text: str) -> timedelta:
    """Parse ``1d2h30m``-style text (units w, d, h, m, s) into a positive timedelta."""
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise DurationError("empty duration")
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(compact):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2).lower()]
        pos = match.end()
    if pos != len(compact):
        raise DurationError(f"'{text}' is not a duration (examples: 90s, 15m, 2h, 1d12h)")
    if seconds <= 0:
        raise DurationError(f"'{text}' must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Format a timedelta compactly, e.g. ``1d2h`` or ``45m``; negative values get a minus sign."""
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
        if len(parts) == 2:
            break
    return sign + ("".join(parts) or "0s")
