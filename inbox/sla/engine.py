"""SLA bookkeeping: per-conversation clocks, deadlines, and the durable timers that act on them.

Each conversation keeps, in ``Conversation.sla_state``, one clock per target (first_response,
next_response, resolution). A clock is a list of running segments ``[start, end)``; pausing closes the
current segment and resuming opens a new one. Clocks are kept whether or not a policy applies, so a
policy chosen later (a tag, a new priority) measures the real running time under its own calendar:
the elapsed time is kept, the deadline is recomputed.

The policy turns clocks into deadlines (``*_due_at`` columns) and into ``Timer`` rows: a warning and a
breach timer per running target, then, after a breach, a (possibly deferred) breach ping and the next
ladder step. Every change replans the conversation's pending timers in the same transaction, and a
firing timer re-checks the clock before acting, so a stale timer can never breach or escalate.

Rules of the clock (docs/sla-engine.md has a worked example):

- first_response starts at the first inbound message; a public reply meets it.
- next_response starts at the first inbound message after our reply; a reply meets it.
- resolution starts at the first inbound message; resolving meets it (and stops the others).
- notes change nothing; pending and snoozed pause (per policy), a customer message resumes.
- a reopened conversation starts a new resolution clock, and a new response clock if one was stopped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any, Final, NamedTuple

from sqlalchemy import Select, Table, bindparam, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import col

from inbox.actions import SNOOZE_TIMER, Change
from inbox.audit import batched, record
from inbox.clock import Clock, isoformat_utc
from inbox.db_bulk import BulkInsert
from inbox.events import Actor
from inbox.held_rows import held, holding, write_held
from inbox.ingest import IngestResult, StoredMessage
from inbox.models import (
    PRIORITY_RANK,
    Channel,
    Conversation,
    ConversationTag,
    Direction,
    Status,
    Tag,
    Timer,
    TimerStatus,
)
from inbox.sla.calendar import BusinessCalendar, add_time, is_open, next_open, time_between
from inbox.sla.outcomes import OUTCOME_COLUMN_NAMES, outcome_columns
from inbox.sla.policy import TARGETS, ConversationFacts, Policy, SlaSettings, match_policy
from inbox.sla.rows import AnyConversation, AnyTimer, ConversationRow

Notify = Callable[[AsyncSession, str, AnyConversation, dict[str, Any]], Awaitable[None]]
"""``async notify(session, kind, conversation, data)``: queue a team notification (the notifier's job)."""

TIMER_WARNING: Final = "sla.warning"
TIMER_BREACH: Final = "sla.breach"
TIMER_PING: Final = "sla.ping"  # a breach notification deferred to business hours
TIMER_STEP: Final = "sla.step"
SLA_TIMER_KINDS: Final = (TIMER_WARNING, TIMER_BREACH, TIMER_PING, TIMER_STEP)

EVENT_WARNING: Final = "sla.warning"
EVENT_BREACHED: Final = "sla.breached"
EVENT_ESCALATION: Final = "sla.escalation"
EVENT_POLICY: Final = "sla.policy"

DUE_COLUMNS: Final = {
    "first_response": "first_response_due_at",
    "next_response": "next_response_due_at",
    "resolution": "resolution_due_at",
}
_RESPONSE_TARGETS: Final = ("first_response", "next_response")
_ACTOR: Final = Actor.system("sla")
_STATE_VERSION: Final = 1
_TIMER_BUFFER: Final = "sla.timer_buffer"  # session.info key of the new timers ``batched_timers`` holds back
_UNMATCHED: Final[Any] = object()  # not matched yet (None is "no policy")
_TIMERS: Table = Timer.__table__  # type: ignore[attr-defined]
# Plain strings for the hot paths: an Enum member's ``.value`` is a property lookup each time.
_TIMER_PENDING: Final = TimerStatus.PENDING.value
_TIMER_FIRED: Final = TimerStatus.FIRED.value
_TIMER_CANCELLED: Final = TimerStatus.CANCELLED.value
_RESOLVED: Final = Status.RESOLVED.value
# What ``_settle`` sets.
_SETTLED_COLUMNS: Final = ("sla_policy", *DUE_COLUMNS.values(), *OUTCOME_COLUMN_NAMES, "sla_state")


async def no_notify(
    session: AsyncSession, kind: str, conversation: AnyConversation, data: dict[str, Any]
) -> None:
    """The default notify callback: nothing is sent."""


# --- clocks (pure) ----------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _start(value: str) -> datetime:
    """A time that is never null (a clock's start, a segment's start)."""
    parsed = _dt(value)
    assert parsed is not None
    return parsed


# The JSON text of the state, written directly: what ``json.dumps(state.dump())`` makes, byte for byte
# (stored states and the code that reads them expect that text), for a fraction of its cost (firing
# encodes a state per timer). ``tests/sla/test_state_text.py`` compares the two.


def _json_time(value: datetime | None) -> str:
    if value is None:
        return "null"
    return _utc_json_time(value) if value.tzinfo is UTC else f'"{value.isoformat()}"'


@lru_cache(maxsize=512)  # a state repeats its times (a clock's start is its first segment's)
def _utc_json_time(value: datetime) -> str:
    # Only UTC times come here: an equal instant in another zone has another text. An ISO time is ASCII
    # without quotes or backslashes: nothing to escape.
    return f'"{value.isoformat()}"'


def _json_flag(value: Any) -> str:
    return "true" if value is True else "false" if value is False else json.dumps(value)


@lru_cache(maxsize=256)  # target names and clock ends: a handful of strings
def _json_str(value: str | None) -> str:
    return json.dumps(value)


def _json_ints(values: list[int]) -> str:
    if not values:
        return "[]"
    if all(type(i) is int for i in values):  # not a bool: json writes those as true/false
        return "[" + ", ".join(map(str, values)) + "]"
    return json.dumps(values)


@dataclass
class TargetClock:
    """The running time of one target: segments ``[start, end)``; an open end means it is running."""

    started_at: datetime
    segments: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    end: str | None = None  # "met" or "stopped" once the clock is over
    ended_at: datetime | None = None
    warned: bool = False
    breached_at: datetime | None = None
    pinged: bool = False  # the breach notification went out
    steps_done: list[int] = field(default_factory=list)  # ladder step indexes taken

    @classmethod
    def start(cls, at: datetime, *, running: bool = True) -> TargetClock:
        """A new clock started at ``at`` (paused from the start when ``running`` is false)."""
        return cls(started_at=at, segments=[(at, None)] if running else [])

    @property
    def running(self) -> bool:
        """True while time counts."""
        return bool(self.segments) and self.segments[-1][1] is None

    @property
    def ended(self) -> bool:
        """True once met or stopped."""
        return self.end is not None

    def pause(self, at: datetime) -> None:
        """Close the running segment at ``at`` (never before it began)."""
        if self.running:
            start = self.segments[-1][0]
            self.segments[-1] = (start, max(at, start))

    def resume(self, at: datetime) -> None:
        """Open a new segment at ``at`` (never before the last one ended)."""
        if self.running or self.ended:
            return
        last_end = self.segments[-1][1] if self.segments else self.started_at
        assert last_end is not None
        self.segments.append((max(at, last_end), None))

    def finish(self, how: str, at: datetime) -> None:
        """End the clock as ``met`` or ``stopped``."""
        if self.ended:
            return
        self.pause(at)
        self.end, self.ended_at = how, at

    def elapsed(self, cal: BusinessCalendar | None, now: datetime) -> timedelta:
        """Counted time up to ``now`` (business time with a calendar)."""
        total = timedelta(0)
        for start, end in self.segments:
            total += time_between(cal, start, min(end, now) if end is not None else now)
        return total

    def instant_at(self, cal: BusinessCalendar | None, amount: timedelta) -> datetime | None:
        """When the counted time reaches ``amount``, or None if it does not while paused."""
        return _instant_at(cal, self.segments, amount)

    def ladder_instant(self, after: timedelta) -> datetime | None:
        """When ``after`` of running wall-clock time has passed since the breach (pauses excluded)."""
        if self.breached_at is None:
            return None
        since = self.breached_at
        clipped = [(max(s, since), e) for s, e in self.segments if e is None or e > since]
        return _instant_at(None, clipped, after)

    def dump(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "started_at": _iso(self.started_at),
            "segments": [[_iso(s), _iso(e)] for s, e in self.segments],
            "end": self.end, "ended_at": _iso(self.ended_at), "warned": self.warned,
            "breached_at": _iso(self.breached_at), "pinged": self.pinged, "steps_done": list(self.steps_done),
        }

    def dump_text(self) -> str:
        """``json.dumps(self.dump())``, written directly (see ``_json_time``)."""
        segments = ", ".join([f"[{_json_time(s)}, {_json_time(e)}]" for s, e in self.segments])
        return (
            f'{{"started_at": {_json_time(self.started_at)}, "segments": [{segments}], '
            f'"end": {_json_str(self.end)}, "ended_at": {_json_time(self.ended_at)}, '
            f'"warned": {_json_flag(self.warned)}, "breached_at": {_json_time(self.breached_at)}, '
            f'"pinged": {_json_flag(self.pinged)}, "steps_done": {_json_ints(self.steps_done)}}}'
        )

    @classmethod
    def load(cls, data: dict[str, Any]) -> TargetClock:
        """Read the JSON form."""
        get = data.get
        return cls(
            started_at=_start(data["started_at"]),
            segments=[(_start(start), _dt(end)) for start, end in get("segments", ())],
            end=get("end"), ended_at=_dt(get("ended_at")), warned=bool(get("warned")),
            breached_at=_dt(get("breached_at")), pinged=bool(get("pinged")),
            steps_done=list(map(int, get("steps_done", ()))),
        )


def _instant_at(
    cal: BusinessCalendar | None, segments: Sequence[tuple[datetime, datetime | None]], amount: timedelta
) -> datetime | None:
    remaining = amount
    for start, end in segments:
        if end is None:
            return add_time(cal, start, remaining)
        length = time_between(cal, start, end)
        if remaining <= length:
            return add_time(cal, start, remaining)
        remaining -= length
    return None


@dataclass
class SlaState:
    """A conversation's clocks plus the facts the rules need (did we reply, is it closed or paused)."""

    targets: dict[str, TargetClock] = field(default_factory=dict)
    replied: bool = False
    closed_at: datetime | None = None
    paused_at: datetime | None = None

    def running(self) -> Iterable[TargetClock]:
        """Clocks that are counting now."""
        return (c for c in self.targets.values() if c.running)

    def dump(self) -> dict[str, Any]:
        """JSON form for the ``sla_state`` column."""
        return {
            "v": _STATE_VERSION, "replied": self.replied, "closed_at": _iso(self.closed_at),
            "paused_at": _iso(self.paused_at),
            "targets": {name: clock.dump() for name, clock in self.targets.items()},
        }

    def dump_text(self) -> str:
        """The column's JSON text: ``json.dumps(self.dump())``, written directly (see ``_json_time``)."""
        targets = ", ".join([f"{_json_str(name)}: {clock.dump_text()}"
                             for name, clock in self.targets.items()])
        return (
            f'{{"v": {_STATE_VERSION}, "replied": {_json_flag(self.replied)}, '
            f'"closed_at": {_json_time(self.closed_at)}, "paused_at": {_json_time(self.paused_at)}, '
            f'"targets": {{{targets}}}}}'
        )

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> SlaState:
        """Read the column (None for a conversation the engine has not seen yet)."""
        if not data:
            return cls()
        return cls(
            targets={name: TargetClock.load(v) for name, v in (data.get("targets") or {}).items()},
            replied=bool(data.get("replied")), closed_at=_dt(data.get("closed_at")),
            paused_at=_dt(data.get("paused_at")),
        )


# --- rules of the clock (pure) ----------------------------------------------------------------------


def pauses(policy: Policy | None, status: str) -> bool:
    """Whether clocks stop while the conversation has ``status`` (without a policy: the defaults)."""
    if policy is None:
        return status in (Status.PENDING.value, Status.SNOOZED.value)
    return policy.pauses_for(status)


def on_inbound(state: SlaState, at: datetime) -> None:
    """A customer message at ``at``: start the clocks that wait for our answer."""
    running = state.paused_at is None
    if not state.replied:
        if "first_response" not in state.targets:
            state.targets["first_response"] = TargetClock.start(at, running=running)
    else:
        nxt = state.targets.get("next_response")
        if nxt is None or nxt.ended:
            state.targets["next_response"] = TargetClock.start(at, running=running)
    if "resolution" not in state.targets:
        state.targets["resolution"] = TargetClock.start(at, running=running)


def on_outbound(state: SlaState, at: datetime) -> None:
    """A public reply at ``at``: it meets the response clocks that started before it."""
    state.replied = True
    for name in _RESPONSE_TARGETS:
        clock = state.targets.get(name)
        if clock is not None and not clock.ended and clock.started_at <= at:
            clock.finish("met", at)


def close(state: SlaState, at: datetime) -> None:
    """Resolved: resolution is met, every other clock stops."""
    state.closed_at, state.paused_at = at, None
    for name, clock in state.targets.items():
        clock.finish("met" if name == "resolution" else "stopped", at)


def reopen(state: SlaState, at: datetime) -> None:
    """Reopened: a new resolution clock, and a new response clock where one was stopped unanswered."""
    state.closed_at, state.paused_at = None, None
    state.targets["resolution"] = TargetClock.start(at)
    for name in _RESPONSE_TARGETS:
        clock = state.targets.get(name)
        if clock is not None and clock.end == "stopped":
            state.targets[name] = TargetClock.start(at)


def sync_pause(state: SlaState, status: str, policy: Policy | None, at: datetime) -> None:
    """Pause or resume every clock so that they agree with the status and the policy."""
    if state.closed_at is not None:
        return
    if pauses(policy, status):
        if state.paused_at is None:
            state.paused_at = at
            for clock in state.targets.values():
                clock.pause(at)
    elif state.paused_at is not None:
        resume_at = max(at, state.paused_at)
        state.paused_at = None
        for clock in state.targets.values():
            clock.resume(resume_at)


# --- the engine -------------------------------------------------------------------------------------


class Outcome(Enum):
    """What firing a timer did."""

    FIRED = "fired"  # it acted (event written, notification queued)
    DEFERRED = "deferred"  # a ping outside business hours: moved to the next opening
    VOID = "void"  # no longer applies: cancelled (the replan made the right timer, if any)
    BUSY = "busy"  # its conversation is locked by another transaction: try again shortly


class _Desired(NamedTuple):  # a NamedTuple: made several times a timer, cheaper than a frozen dataclass
    due: datetime
    data: dict[str, Any]


class _Ctx(NamedTuple):
    conv: AnyConversation
    state: SlaState
    policy: Policy | None


class SlaEngine:
    """Keeps SLA clocks, deadlines and timers in step with ingest, actions and firing timers."""

    def __init__(
        self, policies: SlaSettings | Sequence[Policy], clock: Clock, *, wake: asyncio.Event | None = None
    ) -> None:
        self.policies: list[Policy] = (
            policies.compile() if isinstance(policies, SlaSettings) else list(policies)
        )
        self.clock = clock
        self.wake = wake if wake is not None else asyncio.Event()
        self._channel_names: dict[int, str] = {}
        # (channel id, kind, priority, tags) -> the policy that matches them
        self._matched: dict[tuple[int, str, str, frozenset[str]], Policy | None] = {}

    @property
    def timer_kinds(self) -> tuple[str, ...]:
        """Timer kinds this engine fires."""
        return (*SLA_TIMER_KINDS, SNOOZE_TIMER)

    # --- hooks ---------------------------------------------------------------------------------------

    async def ingest_hook(self, session: AsyncSession, result: IngestResult) -> None:
        """Apply a stored batch: messages in time order per conversation, at their own timestamps."""
        by_conv: dict[int, list[StoredMessage]] = {}
        for message in result.stored:
            if message.direction is not Direction.NOTE:
                by_conv.setdefault(message.conversation_id, []).append(message)
        if not by_conv:
            return
        now = self.clock.now()
        ids = sorted(by_conv)
        tags = await self._tags(session, ids)
        convs = await self._lock(session, ids)
        pending = await self._pending_timers(session, ids)  # one query for the batch, not one each
        # The batch's audit events and new timers go in with one executemany each, and the changed
        # conversations and cancelled timers with the one flush before them.
        async with batched(session), batched_timers(session):
            for conv in convs:
                assert conv.id is not None
                state = SlaState.load(conv.sla_state)
                policy = await self._match(session, conv, tags.get(conv.id, frozenset()))
                for message in sorted(by_conv[conv.id], key=lambda m: (m.created_at, m.id)):
                    at = message.created_at
                    if state.closed_at is not None and conv.status != Status.RESOLVED.value:
                        reopen(state, at)  # ingest reopened it for this message
                    if message.direction is Direction.IN:
                        sync_pause(state, conv.status, policy, at)  # a customer message resumes
                        on_inbound(state, at)
                    else:
                        on_outbound(state, at)
                await self._settle(session, conv, state, policy, now, pending.get(conv.id, []))
                # Every row then writes the same columns, so the flush sends one executemany, not one
                # UPDATE per run of rows that changed the same ones (the rows are locked: values are current).
                for column in _SETTLED_COLUMNS:
                    flag_modified(conv, column)

    async def action_hook(self, session: AsyncSession, change: Change) -> None:
        """Apply a team action (times from the clock, as the action ran)."""
        if change.action in ("noted", "assigned", "unassigned", "escalated"):
            return  # nothing here moves a clock or changes what the policy matches
        conv = change.conversation
        state = SlaState.load(conv.sla_state)
        if change.action == "replied":
            on_outbound(state, change.at)
        policy = await self._match(session, conv, change.tags)  # tags the action read: not read again
        await self._settle(session, conv, state, policy, change.at)

    # --- firing --------------------------------------------------------------------------------------

    async def fire(
        self, session: AsyncSession, timer: Timer, now: datetime, *, notify: Notify = no_notify,
        worker_id: str | None = None, late: bool = False,
    ) -> Outcome:
        """Act on one due timer inside the caller's transaction and update its row accordingly."""
        if timer.conversation_id is None:
            return self._void(timer)
        locked = await self._lock(session, [timer.conversation_id], skip_locked=True)
        if not locked:
            exists = await session.scalar(select(col(Conversation.id)).where(
                col(Conversation.id) == timer.conversation_id))
            return Outcome.BUSY if exists is not None else self._void(timer)
        return await self.fire_locked(session, locked[0], timer, now, notify=notify, worker_id=worker_id,
                                      late=late)

    async def fire_locked(
        self, session: AsyncSession, conv: AnyConversation, timer: AnyTimer, now: datetime, *,
        notify: Notify = no_notify, worker_id: str | None = None, late: bool = False,
        tags: frozenset[str] | None = None, pending: Sequence[AnyTimer] | None = None,
    ) -> Outcome:
        """``fire`` once the caller holds the conversation's lock; a batch passes its tags and pending timers.

        ``pending`` is the conversation's pending SLA timers as loaded before this timer fired (this one
        and any other no longer pending are left out here); without it they are queried.
        """
        state = SlaState.load(conv.sla_state)
        policy = await self._match(session, conv, tags)
        priority = conv.priority
        ctx = _Ctx(conv, state, policy)
        if timer.kind == SNOOZE_TIMER:
            outcome = await self._wake_snooze(session, ctx, timer, now)
        else:
            outcome = await self._fire_sla(session, ctx, timer, now, notify, late)
            if outcome is Outcome.DEFERRED:
                assert policy is not None and policy.calendar is not None
                timer.due_at = next_open(policy.calendar, now)
        if outcome is Outcome.FIRED:
            timer.status, timer.fired_at, timer.late = _TIMER_FIRED, now, late
            timer.claimed_by = worker_id
        elif outcome is Outcome.VOID:
            self._void(timer)
        if conv.priority != priority:  # a ladder step raised it: the policy may change with it
            policy = await self._match(session, conv, tags)
        # The scheduler never waits for a lock: a timer of this conversation claimed by another
        # scheduler (which cannot lock the conversation, so will not touch it) is skipped rather than
        # waited for, which could close a lock cycle. Should that leave a duplicate, the firing-time
        # checks (warned, breached, pinged, steps done) make the second one void.
        assert conv.id is not None
        if pending is None:
            pending = (await self._pending_timers(session, [conv.id], skip_locked=True)).get(conv.id, [])
        else:
            pending = [t for t in pending if t.status == _TIMER_PENDING]
        await self._settle(session, conv, state, policy, now, pending)
        return outcome

    @staticmethod
    def _void(timer: AnyTimer) -> Outcome:
        timer.status = _TIMER_CANCELLED
        return Outcome.VOID

    async def _wake_snooze(self, session: AsyncSession, ctx: _Ctx, timer: AnyTimer, now: datetime) -> Outcome:
        conv = ctx.conv
        if conv.status != Status.SNOOZED.value:
            return Outcome.VOID
        conv.status, conv.snoozed_until, conv.updated_at = Status.OPEN.value, None, now
        await record(session, Actor.system("scheduler"), "conversation.resumed", now, conv.id,
                     previous=Status.SNOOZED.value, reason="snooze ended", due_at=isoformat_utc(timer.due_at))
        # The clocks resume when the snooze was meant to end, even if the scheduler ran late.
        sync_pause(ctx.state, conv.status, ctx.policy, timer.due_at)
        return Outcome.FIRED

    async def _fire_sla(
        self, session: AsyncSession, ctx: _Ctx, timer: AnyTimer, now: datetime, notify: Notify, late: bool
    ) -> Outcome:
        name = str(timer.data.get("target"))
        policy, clock = ctx.policy, ctx.state.targets.get(name)
        if (policy is None or name not in policy.targets or clock is None or clock.ended
                or not clock.running or ctx.state.closed_at is not None):
            return Outcome.VOID
        target = policy.targets[name]
        deadline = clock.instant_at(policy.calendar, target)
        assert deadline is not None  # the clock is running
        # Once breached, the recorded deadline is the one to report (a later policy may compute another).
        data: dict[str, Any] = {"target": name, "policy": policy.name,
                                "due_at": isoformat_utc(clock.breached_at or deadline), "late": late}
        if timer.kind == TIMER_WARNING:
            return await self._warn(session, ctx, policy, clock, target, now, notify, data)
        if timer.kind == TIMER_BREACH:
            return await self._breach(session, ctx, policy, clock, deadline, now, notify, data)
        if timer.kind == TIMER_PING:
            if clock.breached_at is None or clock.pinged:
                return Outcome.VOID
            if not _can_ping(policy, now, urgent=False):
                return Outcome.DEFERRED
            clock.pinged = True
            await notify(session, EVENT_BREACHED, ctx.conv, {**data, "deferred": True})
            return Outcome.FIRED
        if timer.kind == TIMER_STEP:
            return await self._step(session, ctx, policy, clock, int(timer.data.get("step", -1)), now,
                                    notify, data)
        return Outcome.VOID

    async def _warn(
        self, session: AsyncSession, ctx: _Ctx, policy: Policy, clock: TargetClock, target: timedelta,
        now: datetime, notify: Notify, data: dict[str, Any],
    ) -> Outcome:
        if clock.warned or clock.breached_at is not None or policy.warn_at is None:
            return Outcome.VOID
        warn = clock.instant_at(policy.calendar, target * policy.warn_at)
        if warn is None or warn > now:
            return Outcome.VOID
        if not _can_ping(policy, now, urgent=False):
            return Outcome.DEFERRED
        clock.warned = True
        remaining = target - clock.elapsed(policy.calendar, now)
        data["remaining_seconds"] = max(0, int(remaining.total_seconds()))
        await record(session, _ACTOR, EVENT_WARNING, now, ctx.conv.id, **data)
        await notify(session, EVENT_WARNING, ctx.conv, data)
        return Outcome.FIRED

    async def _breach(
        self, session: AsyncSession, ctx: _Ctx, policy: Policy, clock: TargetClock, deadline: datetime,
        now: datetime, notify: Notify, data: dict[str, Any],
    ) -> Outcome:
        if clock.breached_at is not None or deadline > now:
            return Outcome.VOID
        name = data["target"]
        clock.breached_at, clock.warned = deadline, True  # a warning after the breach is noise
        if name not in ctx.conv.breached:
            ctx.conv.breached = [*ctx.conv.breached, name]  # a new list: JSON columns miss in-place edits
        # Recorded at the true deadline, even when the scheduler fires late or the ping has to wait.
        await record(session, _ACTOR, EVENT_BREACHED, deadline, ctx.conv.id,
                     recorded_at=isoformat_utc(now), **data)
        if _can_ping(policy, now, urgent=False):
            clock.pinged = True
            await notify(session, EVENT_BREACHED, ctx.conv, data)
        return Outcome.FIRED

    async def _step(
        self, session: AsyncSession, ctx: _Ctx, policy: Policy, clock: TargetClock, index: int,
        now: datetime, notify: Notify, data: dict[str, Any],
    ) -> Outcome:
        if clock.breached_at is None or index in clock.steps_done or not 0 <= index < len(policy.ladder):
            return Outcome.VOID
        step = policy.ladder[index]
        due = clock.ladder_instant(step.after)
        if due is None or due > now:
            return Outcome.VOID
        if not _can_ping(policy, now, urgent=step.urgent):
            return Outcome.DEFERRED
        clock.steps_done = sorted({*clock.steps_done, index})
        conv = ctx.conv
        raised = None
        if step.raise_priority is not None:
            if PRIORITY_RANK[step.raise_priority] > conv.priority_rank:
                raised = {"from": conv.priority, "to": step.raise_priority.value}
                conv.priority = step.raise_priority.value
                conv.priority_rank = PRIORITY_RANK[step.raise_priority]
            conv.escalation_level += 1
            conv.updated_at = now
        data.update(step=index + 1, notify=list(step.notify), urgent=step.urgent,
                    raise_priority=step.raise_priority.value if step.raise_priority else None,
                    priority=raised, escalation_level=conv.escalation_level)
        await record(session, _ACTOR, EVENT_ESCALATION, now, conv.id, **data)
        await notify(session, EVENT_ESCALATION, conv, data)
        return Outcome.FIRED

    # --- settling: status, policy, columns, timers ------------------------------------------------

    async def _settle(
        self, session: AsyncSession, conv: AnyConversation, state: SlaState, policy: Policy | None,
        now: datetime, pending: Sequence[AnyTimer] | None = None,
    ) -> None:
        if conv.status == _RESOLVED:
            if state.closed_at is None:
                close(state, now)
        elif state.closed_at is not None:
            reopen(state, now)
        sync_pause(state, conv.status, policy, now)
        name = policy.name if policy else None
        if name != conv.sla_policy:
            await record(session, _ACTOR, EVENT_POLICY, now, conv.id, policy=name, previous=conv.sla_policy)
            conv.sla_policy = name
        # Each deadline once (a calendar's walk is not cheap), for the due columns, outcomes and timers.
        deadlines = _deadlines(state, policy)
        for target, column in DUE_COLUMNS.items():
            setattr(conv, column, self._deadline(state, policy, target, deadlines))
        for column, value in outcome_columns(state, policy, deadlines).items():  # what reports count
            setattr(conv, column, value)
        if isinstance(conv, ConversationRow):
            conv.set_sla_state_text(state.dump_text())  # the row keeps the text: no dict to build and encode
        else:
            conv.sla_state = state.dump()
        await self._replan(session, conv, state, policy, now, pending, deadlines)

    @staticmethod
    def _deadline(
        state: SlaState, policy: Policy | None, name: str, deadlines: Mapping[str, datetime | None]
    ) -> datetime | None:
        clock = state.targets.get(name)
        if policy is None or name not in policy.targets or clock is None or clock.ended or not clock.running:
            return None
        return deadlines[name]

    def desired_timers(
        self, state: SlaState, policy: Policy | None, now: datetime,
        deadlines: Mapping[str, datetime | None] | None = None,
    ) -> dict[tuple[str, str, int | None], _Desired]:
        """The SLA timers a conversation should have pending, keyed by (kind, target, step); ``deadlines``
        (``_deadlines`` of the same state and policy) saves computing them again."""
        wanted: dict[tuple[str, str, int | None], _Desired] = {}
        if policy is None or state.closed_at is not None:
            return wanted
        cal = policy.calendar
        for name, target in policy.targets.items():
            clock = state.targets.get(name)
            if clock is None or clock.ended or not clock.running:
                continue
            base = {"target": name, "policy": policy.name}
            if clock.breached_at is None:
                due = deadlines[name] if deadlines is not None else clock.instant_at(cal, target)
                assert due is not None
                wanted[(TIMER_BREACH, name, None)] = _Desired(due, base)
                if policy.warn_at is not None and not clock.warned and due > now:
                    warn = clock.instant_at(cal, target * policy.warn_at)
                    if warn is not None and warn < due:
                        when = _ping_time(policy, warn, now, False)
                        wanted[(TIMER_WARNING, name, None)] = _Desired(when, base)
                continue
            if not clock.pinged:
                when = _ping_time(policy, clock.breached_at, now, False)
                wanted[(TIMER_PING, name, None)] = _Desired(when, base)
            # Every remaining step gets its own timer: an urgent step must not wait behind an earlier
            # one that is deferred to business hours.
            for index, step in enumerate(policy.ladder):
                if index in clock.steps_done:
                    continue
                at = clock.ladder_instant(step.after)
                assert at is not None
                wanted[(TIMER_STEP, name, index)] = _Desired(
                    _ping_time(policy, at, now, step.urgent), {**base, "step": index})
        return wanted

    async def _replan(
        self, session: AsyncSession, conv: AnyConversation, state: SlaState, policy: Policy | None,
        now: datetime, pending: Sequence[AnyTimer] | None, deadlines: Mapping[str, datetime | None],
    ) -> None:
        """Make the conversation's pending SLA timers exactly the desired ones (kept when unchanged)."""
        assert conv.id is not None
        wanted = self.desired_timers(state, policy, now, deadlines)
        if pending is None:
            pending = (await self._pending_timers(session, [conv.id])).get(conv.id, [])
        for timer in pending:
            key = (timer.kind, str(timer.data.get("target")), timer.data.get("step"))
            want = wanted.get(key)
            if want is not None and _same_due(timer.due_at, want.due, now):
                del wanted[key]
            else:
                timer.status = _TIMER_CANCELLED
        waiting = held(session, _TIMER_BUFFER)
        for (kind, _name, _step), want in wanted.items():
            row: dict[str, Any] = {"kind": kind, "conversation_id": conv.id, "data": want.data,
                                   "due_at": want.due, "created_at": now}
            if waiting is not None:
                waiting.append(row)
            else:
                session.add(Timer(**row))
        if wanted:
            self._wake_after_commit(session)

    def _wake_after_commit(self, session: AsyncSession) -> None:
        """Wake the scheduler once this transaction has committed (not before: it could not see the rows)."""
        sync = session.sync_session
        if sync.info.get("sla_wake"):
            return
        sync.info["sla_wake"] = True

        def wake(_session: Any) -> None:
            sync.info.pop("sla_wake", None)
            self.wake.set()

        event.listen(sync, "after_commit", wake, once=True)

    # --- loading -------------------------------------------------------------------------------------

    async def policy_for(self, session: AsyncSession, conv: Conversation) -> Policy | None:
        """The policy that matches the conversation now."""
        return await self._match(session, conv)

    async def _match(
        self, session: AsyncSession, conv: AnyConversation, tags: frozenset[str] | None = None
    ) -> Policy | None:
        if not self.policies:
            return None
        if tags is None:
            assert conv.id is not None
            tags = (await self._tags(session, [conv.id])).get(conv.id, frozenset())
        # Matching depends on these facts only, and a batch asks for the same few combinations again (a
        # plain tuple for the key: cheaper than making the frozen ConversationFacts every time).
        key = (conv.channel_id, conv.kind, conv.priority, tags)
        found = self._matched.get(key, _UNMATCHED)
        if found is _UNMATCHED:
            facts = ConversationFacts(channel=await self._channel_name(session, conv.channel_id),
                                      kind=conv.kind, priority=conv.priority, tags=tags)
            found = self._matched[key] = match_policy(self.policies, facts)
        return found

    async def _channel_name(self, session: AsyncSession, channel_id: int) -> str:
        if channel_id not in self._channel_names:
            name = await session.scalar(select(col(Channel.name)).where(col(Channel.id) == channel_id))
            self._channel_names[channel_id] = str(name)
        return self._channel_names[channel_id]

    async def _tags(self, session: AsyncSession, conversation_ids: list[int]) -> dict[int, frozenset[str]]:
        if not self.policies or not any(p.tags for p in self.policies):
            return {}
        rows = await session.execute(
            select(col(ConversationTag.conversation_id), col(Tag.name))
            .join(Tag, col(Tag.id) == col(ConversationTag.tag_id))
            .where(col(ConversationTag.conversation_id).in_(conversation_ids))
        )
        found: dict[int, set[str]] = {}
        for conv_id, name in rows:
            found.setdefault(conv_id, set()).add(name)
        return {k: frozenset(v) for k, v in found.items()}

    @staticmethod
    async def _pending_timers(
        session: AsyncSession, ids: list[int], *, skip_locked: bool = False
    ) -> dict[int, list[Timer]]:
        """Pending SLA timers of these conversations, locked (FOR UPDATE waits and sees the latest rows)."""
        statement = _PENDING_SKIP_LOCKED if skip_locked else _PENDING
        rows = (await session.execute(statement, {"ids": ids})).scalars().all()
        found: dict[int, list[Timer]] = {}
        for timer in rows:
            assert timer.conversation_id is not None
            found.setdefault(timer.conversation_id, []).append(timer)
        return found

    @staticmethod
    async def _lock(
        session: AsyncSession, ids: list[int], *, skip_locked: bool = False
    ) -> list[Conversation]:
        query = (
            select(Conversation).where(col(Conversation.id).in_(ids))
            .order_by(col(Conversation.id))  # one lock order everywhere, so two writers cannot deadlock
            .with_for_update(skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
        return list((await session.execute(query)).scalars().all())


def _pending_statement(*, skip_locked: bool) -> Select[Any]:
    """``_pending_timers``' query, built once (building it and its cache key cost more than running it)."""
    return (
        select(Timer).where(
            col(Timer.conversation_id).in_(bindparam("ids", expanding=True)),
            col(Timer.status) == TimerStatus.PENDING.value,
            col(Timer.kind).in_(SLA_TIMER_KINDS),
        ).order_by(col(Timer.id)).with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )


_PENDING: Final = _pending_statement(skip_locked=False)
_PENDING_SKIP_LOCKED: Final = _pending_statement(skip_locked=True)
_INSERT_TIMERS: Final = BulkInsert(_TIMERS, ("kind", "conversation_id", "data", "due_at", "created_at"))


def batched_timers(session: AsyncSession) -> AbstractAsyncContextManager[None]:
    """Within the block, the SLA timers ``_replan`` makes are inserted with one executemany at its end.

    Added to the session one by one, each would be its own INSERT on SQLite (the ORM reads every new
    id back). Nothing is written when the block raises; nested blocks join the outer one.
    """
    return holding(session, _TIMER_BUFFER, _INSERT_TIMERS)


async def write_batched_timers(session: AsyncSession) -> None:
    """Insert the timers a ``batched_timers`` block has collected so far, now."""
    await write_held(session, _TIMER_BUFFER, _INSERT_TIMERS)


def _deadlines(state: SlaState, policy: Policy | None) -> dict[str, datetime | None]:
    """Each policy target's deadline for its clock: the recorded breach, else when the clock's running
    time reaches the target (None if it does not while paused); targets without a clock left out."""
    if policy is None:
        return {}
    found: dict[str, datetime | None] = {}
    for name, amount in policy.targets.items():
        clock = state.targets.get(name)
        if clock is not None:
            found[name] = clock.breached_at or clock.instant_at(policy.calendar, amount)
    return found


def _can_ping(policy: Policy, now: datetime, *, urgent: bool) -> bool:
    """Pings wait for business hours on a calendar-bound policy, unless urgent."""
    return urgent or policy.calendar is None or is_open(policy.calendar, now)


def _ping_time(policy: Policy, instant: datetime, now: datetime, urgent: bool) -> datetime:
    """When a ping due at ``instant`` may go out: then, or at the next opening of the calendar."""
    if urgent or policy.calendar is None:
        return instant
    return next_open(policy.calendar, max(instant, now))


def _same_due(current: datetime, wanted: datetime, now: datetime) -> bool:
    """A pending timer can stay if it is due at the wanted time, or both are already due."""
    return current == wanted or (current <= now and wanted <= now)


__all__ = [
    "DUE_COLUMNS", "EVENT_BREACHED", "EVENT_ESCALATION", "EVENT_POLICY", "EVENT_WARNING", "SLA_TIMER_KINDS",
    "TARGETS", "TIMER_BREACH", "TIMER_PING", "TIMER_STEP", "TIMER_WARNING", "Notify", "Outcome", "SlaEngine",
    "SlaState", "TargetClock", "close", "no_notify", "on_inbound", "on_outbound", "pauses", "reopen",
    "sync_pause",
]
