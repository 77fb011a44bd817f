"""The ``[reports]`` config section (kept free of other inbox imports: inbox.settings imports it)."""

from __future__ import annotations

import re
from datetime import time

from pydantic import BaseModel, ConfigDict, field_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


class ReportSettings(BaseModel):
    """When the weekly summary is posted to every team chat (in the team's ``general.timezone``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    weekly_day: str = "mon"
    weekly_time: str = "09:00"

    @field_validator("weekly_day")
    @classmethod
    def _known_day(cls, value: str) -> str:
        day = value.strip().lower()[:3]
        if day not in WEEKDAYS or not value.strip().lower().startswith(day):
            raise ValueError(f"'{value}' is not a weekday: use mon, tue, wed, thu, fri, sat or sun")
        return day

    @field_validator("weekly_time")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        match = _CLOCK.match(value.strip())
        if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise ValueError(f"'{value}' is not a time of day: use HH:MM, e.g. 09:00")
        return f"{int(match.group(1)):02d}:{match.group(2)}"

    @property
    def weekday(self) -> int:
        """The posting day, 0 = Monday."""
        return WEEKDAYS.index(self.weekly_day)

    @property
    def at(self) -> time:
        """The posting time of day (local)."""
        hours, minutes = self.weekly_time.split(":")
        return time(int(hours), int(minutes))
