"""SLA policies: the ``[sla]`` config section (calendars, policies, ladders) and first-match policy choice.

The pydantic models here validate config so that ``inbox check-config`` names the exact key that is
wrong (``sla.calendars.office.hours.mon: ...``, ``sla.policies[1].calendar: unknown calendar 'x'``).
``SlaSettings.compile()`` turns them into frozen ``Policy`` objects that the engine uses; matching
(``match_policy``) is pure.

This module must not import ``inbox.settings`` (which imports it), so it keeps its own duration type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from inbox.durations import DurationError, parse_duration
from inbox.models import Kind, Priority
from inbox.sla.calendar import DAY_NAMES, BusinessCalendar, CalendarError

TARGETS: Final = ("first_response", "next_response", "resolution")
"""The three SLA targets, in the order they are shown."""

SPECIAL_RECIPIENTS: Final = frozenset({"assignee", "leads", "admins", "team"})
"""Ladder ``notify`` words that name a group rather than a member."""

DEFAULT_WARN_AT: Final = 0.75
_TAG = re.compile(r"^[a-z0-9][a-z0-9_:.-]{0,59}$")
_HOURS_PREFIX = re.compile(r"^hours for \w+: ")


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("must be longer than zero")
        return timedelta(seconds=value)
    return value


def _offset(value: Any) -> Any:
    """Like _duration but zero is allowed: a ladder step ``after = "0m"`` fires at the breach."""
    if isinstance(value, str) and value.strip().rstrip("wdhmsWDHMS").strip() in ("0", "0.0"):
        return timedelta(0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("must not be negative")
        return timedelta(seconds=value)
    return _duration(value)


def _no_warning(value: Any) -> Any:
    """TOML has no null: ``warn_at = false`` (or 0) turns the warning off."""
    return None if value is False or (isinstance(value, int | float) and value == 0) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Offset = Annotated[timedelta, BeforeValidator(_offset)]
WarnAt = Annotated[Annotated[float, Field(gt=0, lt=1)] | None, BeforeValidator(_no_warning)]


class _Strict(BaseModel):
    """Unknown keys are errors, as in the rest of the settings."""

    model_config = ConfigDict(extra="forbid")


def _errors(title: str, problems: Sequence[tuple[tuple[str | int, ...], str, Any]]) -> ValidationError:
    """A ValidationError whose problems sit at the given locations (relative to the model)."""
    return ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError("sla_config", message), loc=loc, input=value)
        for loc, message, value in problems
    ])


# --- calendars --------------------------------------------------------------------------------------


class WeekHoursSettings(_Strict):
    """Open periods per day (``09:00-12:00``, several a day, past midnight allowed); weekdays = mon-fri."""

    weekdays: list[str] | None = None
    mon: list[str] | None = None
    tue: list[str] | None = None
    wed: list[str] | None = None
    thu: list[str] | None = None
    fri: list[str] | None = None
    sat: list[str] | None = None
    sun: list[str] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _one_period_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("*")
    @classmethod
    def _periods_parse(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if not value:
            return value
        day = "mon" if info.field_name == "weekdays" else str(info.field_name)
        try:
            BusinessCalendar.from_config("UTC", {day: value})
        except CalendarError as exc:
            # The key already names the day; the calendar's own prefix would repeat it (or misname it).
            raise ValueError(_HOURS_PREFIX.sub("", str(exc))) from None
        return value

    def as_mapping(self) -> dict[str, list[str]]:
        """The days that were given, as BusinessCalendar.from_config takes them."""
        return {day: list(periods) for day in ("weekdays", *DAY_NAMES)
                if (periods := getattr(self, day)) is not None}


class CalendarSettings(_Strict):
    """A business-hours calendar: timezone, weekly hours, holidays."""

    timezone: str
    hours: WeekHoursSettings
    holidays: list[date] = Field(default_factory=list)
    _calendar: BusinessCalendar | None = PrivateAttr(default=None)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone '{value}' (use an IANA name such as Asia/Jakarta)"
            ) from None
        return value

    @model_validator(mode="after")
    def _builds(self) -> CalendarSettings:
        try:
            self._calendar = BusinessCalendar.from_config(
                self.timezone, self.hours.as_mapping(), self.holidays
            )
        except CalendarError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def calendar(self) -> BusinessCalendar:
        """The validated calendar."""
        assert self._calendar is not None  # set by the validator
        return self._calendar


# --- policies ---------------------------------------------------------------------------------------


class LadderStepSettings(_Strict):
    """One escalation step: ``after`` the breach, notify people and optionally raise the priority."""

    after: Offset = timedelta(0)
    notify: list[str] = Field(default_factory=list)
    raise_priority: Priority | None = None
    urgent: bool = False

    @field_validator("notify")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip().lstrip("@") for v in value]
        if any(not v for v in cleaned):
            raise ValueError("recipients must be assignee, leads, admins, team or a member name")
        return cleaned

    @model_validator(mode="after")
    def _does_something(self) -> LadderStepSettings:
        if not self.notify and self.raise_priority is None:
            raise ValueError("a ladder step needs 'notify' or 'raise_priority'")
        return self


def _normalise_tag(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    tag = raw.strip().lstrip("#").lower()
    if not _TAG.match(tag):
        raise ValueError(f"'{raw}' is not a valid tag")
    return tag


class PolicySettings(_Strict):
    """A policy: what it matches (empty list = anything), its targets, calendar, warning and ladder."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    channels: list[str] = Field(default_factory=list)
    kinds: list[Kind] = Field(default_factory=list)
    priorities: list[Priority] = Field(default_factory=list)
    tags: list[Annotated[str, BeforeValidator(_normalise_tag)]] = Field(default_factory=list)
    first_response: Duration | None = None
    next_response: Duration | None = None
    resolution: Duration | None = None
    calendar: str | None = None
    warn_at: WarnAt = DEFAULT_WARN_AT
    pause_when_pending: bool = True
    pause_when_snoozed: bool = True
    ladder: list[LadderStepSettings] = Field(default_factory=list)

    @field_validator("ladder")
    @classmethod
    def _ladder_in_order(cls, value: list[LadderStepSettings]) -> list[LadderStepSettings]:
        afters = [step.after for step in value]
        if afters != sorted(afters):
            raise ValueError("ladder steps must be listed in order of 'after'")
        return value


class SlaSettings(_Strict):
    """The ``[sla]`` section: named calendars and the policies, first match wins."""

    calendars: dict[str, CalendarSettings] = Field(default_factory=dict)
    policies: list[PolicySettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> SlaSettings:
        problems: list[tuple[tuple[str | int, ...], str, Any]] = []
        seen: set[str] = set()
        for index, policy in enumerate(self.policies):
            if policy.name in seen:
                problems.append((("policies", index, "name"), f"duplicate policy name '{policy.name}'",
                                 policy.name))
            seen.add(policy.name)
            if policy.calendar is not None and policy.calendar not in self.calendars:
                problems.append((("policies", index, "calendar"),
                                 f"unknown calendar '{policy.calendar}'", policy.calendar))
        if problems:
            raise _errors("SlaSettings", problems)
        return self

    def compile(self) -> list[Policy]:
        """The policies as frozen objects with their calendars built, in config order."""
        return [_compile(p, self.calendars) for p in self.policies]


# --- compiled policies and matching -----------------------------------------------------------------


@dataclass(frozen=True)
class LadderStep:
    """A compiled ladder step."""

    after: timedelta
    notify: tuple[str, ...] = ()
    raise_priority: Priority | None = None
    urgent: bool = False


@dataclass(frozen=True)
class ConversationFacts:
    """What policy matching looks at."""

    channel: str
    kind: str
    priority: str
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Policy:
    """A compiled policy: matching sets (empty = any), targets, calendar, warning fraction, ladder."""

    name: str
    targets: Mapping[str, timedelta]
    channels: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    priorities: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    calendar_name: str | None = None
    calendar: BusinessCalendar | None = None
    warn_at: float | None = DEFAULT_WARN_AT
    pause_when_pending: bool = True
    pause_when_snoozed: bool = True
    ladder: tuple[LadderStep, ...] = ()

    def matches(self, facts: ConversationFacts) -> bool:
        """True when every non-empty matcher accepts the conversation (tags: any one of them)."""
        return (
            (not self.channels or facts.channel in self.channels)
            and (not self.kinds or facts.kind in self.kinds)
            and (not self.priorities or facts.priority in self.priorities)
            and (not self.tags or not self.tags.isdisjoint(facts.tags))
        )

    def pauses_for(self, status: str) -> bool:
        """Whether this policy stops its clocks while a conversation has ``status``."""
        return (status == "pending" and self.pause_when_pending) or (
            status == "snoozed" and self.pause_when_snoozed
        )


def match_policy(policies: Iterable[Policy], facts: ConversationFacts) -> Policy | None:
    """The first policy that matches, or None (the conversation then has no SLA)."""
    return next((p for p in policies if p.matches(facts)), None)


def _compile(conf: PolicySettings, calendars: Mapping[str, CalendarSettings]) -> Policy:
    targets = {name: value for name in TARGETS if (value := getattr(conf, name)) is not None}
    calendar = calendars[conf.calendar].calendar if conf.calendar is not None else None
    return Policy(
        name=conf.name,
        targets=targets,
        channels=frozenset(conf.channels),
        kinds=frozenset(k.value for k in conf.kinds),
        priorities=frozenset(p.value for p in conf.priorities),
        tags=frozenset(conf.tags),
        calendar_name=conf.calendar,
        calendar=calendar,
        warn_at=conf.warn_at,
        pause_when_pending=conf.pause_when_pending,
        pause_when_snoozed=conf.pause_when_snoozed,
        ladder=tuple(
            LadderStep(s.after, tuple(s.notify), s.raise_priority, s.urgent) for s in conf.ladder
        ),
    )
