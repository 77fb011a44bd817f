"""The outcome of each SLA clock, kept in conversation columns so that reports can count them in SQL.

A target's clock is **met** when it ended as met no later than its deadline (dated when it ended), and
**breached** when its deadline passed before it ended or while it still runs (dated at the deadline).
The deadline is the breach the scheduler recorded, else the instant the clock's running segments
count the policy's target under its calendar. A clock stopped in time (the conversation was resolved
unanswered) has no outcome, nor has a target the policy does not set.

``<target>_outcome_at`` holds the date the outcome has or will have: the end of a met clock, else the
deadline (a breach once the deadline has passed: a running clock's outcome is not decided yet, but its
date is known). ``<target>_ended_at`` holds when the clock ended, so a met outcome is the one whose two
columns are equal and a breach ended (was met late or stopped) when its end is set. The engine writes
them with the clock (``SlaEngine._settle``), with the policy it matched then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from inbox.sla.policy import TARGETS, Policy

if TYPE_CHECKING:  # the engine imports this module
    from inbox.sla.calendar import BusinessCalendar
    from inbox.sla.engine import SlaState, TargetClock

OUTCOME_COLUMNS: Final = {target: (f"{target}_outcome_at", f"{target}_ended_at") for target in TARGETS}
"""Per target: the column of its outcome's date and the column of when its clock ended."""
NEXT_RESPONSE_STARTED: Final = "next_response_started_at"
"""When the current next-response clock started: the follow-up it measures (reports skip that round)."""
OUTCOME_COLUMN_NAMES: Final = (
    *(name for pair in OUTCOME_COLUMNS.values() for name in pair), NEXT_RESPONSE_STARTED)
"""Every column ``outcome_columns`` fills."""

Deadline = Callable[["BusinessCalendar | None", "TargetClock", timedelta], "datetime | None"]
"""How a deadline is computed: the clock's own calendar walk, or a report's faster index."""


def _instant_at(calendar: BusinessCalendar | None, clock: TargetClock, amount: timedelta) -> datetime | None:
    return clock.instant_at(calendar, amount)


def clock_dates(
    clock: TargetClock, amount: timedelta | None, calendar: BusinessCalendar | None,
    deadline_of: Deadline = _instant_at,
) -> tuple[datetime | None, datetime | None]:
    """``(outcome date, end)`` of one clock under a target of ``amount`` (None: the policy sets none)."""
    if amount is None:
        return None, clock.ended_at if clock.ended else None
    return dates_by(clock, clock.breached_at or deadline_of(calendar, clock, amount))


def dates_by(clock: TargetClock, deadline: datetime | None) -> tuple[datetime | None, datetime | None]:
    """``clock_dates`` once the clock's deadline is known (its recorded breach, else when it reaches the
    target; None if it does not while paused)."""
    ended = clock.ended_at if clock.ended else None
    if clock.breached_at is None and clock.end == "met" and ended is not None and (
            deadline is None or ended <= deadline):
        return ended, ended
    if deadline is None or (ended is not None and ended <= deadline):
        return None, ended  # paused before its deadline, or stopped in time
    return deadline, ended


def outcome_columns(
    state: SlaState, policy: Policy | None, deadlines: Mapping[str, datetime | None] | None = None
) -> dict[str, datetime | None]:
    """The values of ``OUTCOME_COLUMN_NAMES`` for a conversation's clocks under its policy; ``deadlines``
    (by target, as the engine computed them for the same state and policy) saves computing them again."""
    values: dict[str, datetime | None] = dict.fromkeys(OUTCOME_COLUMN_NAMES)
    for target, (at_column, end_column) in OUTCOME_COLUMNS.items():
        clock = state.targets.get(target)
        if clock is None:
            continue
        amount = policy.targets.get(target) if policy is not None else None
        if amount is not None and deadlines is not None:
            values[at_column], values[end_column] = dates_by(clock, deadlines[target])
            continue
        calendar = policy.calendar if policy is not None else None
        values[at_column], values[end_column] = clock_dates(clock, amount, calendar)
    follow_up = state.targets.get("next_response")
    values[NEXT_RESPONSE_STARTED] = follow_up.started_at if follow_up is not None else None
    return values
