"""What ``inbox sla ID`` and ``/sla ID`` show: the policy, each target's deadline and state, timers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.clock import isoformat_utc
from inbox.errors import ConversationNotFound
from inbox.models import Conversation, Timer, TimerStatus
from inbox.sla.calendar import is_open
from inbox.sla.engine import SlaEngine, SlaState
from inbox.sla.policy import TARGETS

STATES = ("running", "paused", "met", "breached", "stopped", "idle")
"""Target states: ``idle`` means the clock has not started (e.g. next response before a follow-up)."""


@dataclass(frozen=True)
class TargetExplanation:
    """One target of the policy and where its clock stands."""

    name: str
    target: timedelta
    state: str
    started_at: datetime | None = None
    due_at: datetime | None = None  # the deadline, while the clock runs (past once breached)
    warn_at: datetime | None = None
    ended_at: datetime | None = None  # when it was met or stopped
    breached_at: datetime | None = None
    elapsed: timedelta = timedelta(0)  # counted time (business time with a calendar)
    remaining: timedelta | None = None  # before the breach
    overdue: timedelta | None = None  # after the breach (or by how much it was met late)
    ladder_steps_done: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name, "target_seconds": int(self.target.total_seconds()), "state": self.state,
            "started_at": isoformat_utc(self.started_at), "due_at": isoformat_utc(self.due_at),
            "warn_at": isoformat_utc(self.warn_at), "ended_at": isoformat_utc(self.ended_at),
            "breached_at": isoformat_utc(self.breached_at),
            "elapsed_seconds": int(self.elapsed.total_seconds()),
            "remaining_seconds": None if self.remaining is None else int(self.remaining.total_seconds()),
            "overdue_seconds": None if self.overdue is None else int(self.overdue.total_seconds()),
            "ladder_steps_done": self.ladder_steps_done,
        }


@dataclass(frozen=True)
class PendingTimer:
    """A timer that will fire for this conversation."""

    kind: str
    due_at: datetime
    target: str | None
    step: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "due_at": isoformat_utc(self.due_at), "target": self.target,
                "step": self.step}


@dataclass(frozen=True)
class SlaExplanation:
    """Everything the operator view shows for one conversation."""

    conversation_id: int
    status: str
    priority: str
    now: datetime
    policy: str | None
    calendar: str | None = None
    open_now: bool | None = None  # is the policy's calendar open now (None without a calendar)
    paused_since: datetime | None = None
    targets: list[TargetExplanation] = field(default_factory=list)
    breached: list[str] = field(default_factory=list)
    ladder_length: int = 0
    timers: list[PendingTimer] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (for ``inbox sla ID --json``)."""
        return {
            "conversation_id": self.conversation_id, "status": self.status, "priority": self.priority,
            "now": isoformat_utc(self.now), "policy": self.policy, "calendar": self.calendar,
            "open_now": self.open_now, "paused_since": isoformat_utc(self.paused_since),
            "targets": [t.as_dict() for t in self.targets], "breached": list(self.breached),
            "ladder_length": self.ladder_length, "timers": [t.as_dict() for t in self.timers],
        }


async def explain(
    session: AsyncSession, conversation_id: int, engine: SlaEngine, now: datetime
) -> SlaExplanation:
    """Explain a conversation's SLA as of ``now``; raises ConversationNotFound."""
    conv = await session.get(Conversation, conversation_id)
    if conv is None:
        raise ConversationNotFound(conversation_id)
    policy = await engine.policy_for(session, conv)
    state = SlaState.load(conv.sla_state)
    timers = (await session.execute(
        select(Timer).where(col(Timer.conversation_id) == conversation_id,
                            col(Timer.status) == TimerStatus.PENDING.value)
        .order_by(col(Timer.due_at), col(Timer.id))
    )).scalars().all()
    pending = [PendingTimer(t.kind, t.due_at, t.data.get("target"), t.data.get("step")) for t in timers]
    base = SlaExplanation(
        conversation_id=conversation_id, status=conv.status, priority=conv.priority, now=now,
        policy=policy.name if policy else None, breached=list(conv.breached), timers=pending,
    )
    if policy is None:
        return base
    cal = policy.calendar
    targets = []
    for name in TARGETS:
        if name not in policy.targets:
            continue
        target = policy.targets[name]
        clock = state.targets.get(name)
        if clock is None:
            targets.append(TargetExplanation(name, target, "idle"))
            continue
        elapsed = clock.elapsed(cal, now)
        due = clock.instant_at(cal, target) if clock.running else None
        warn = (clock.instant_at(cal, target * policy.warn_at)
                if clock.running and policy.warn_at is not None else None)
        if clock.breached_at is not None:
            kind = "breached"
        elif clock.ended:
            kind = clock.end or "stopped"
        else:
            kind = "running" if clock.running else "paused"
        over = elapsed - target
        targets.append(TargetExplanation(
            name=name, target=target, state=kind, started_at=clock.started_at,
            due_at=None if clock.ended else (clock.breached_at or due),
            warn_at=warn if kind == "running" else None, ended_at=clock.ended_at,
            breached_at=clock.breached_at, elapsed=elapsed,
            remaining=-over if over < timedelta(0) and not clock.ended else None,
            overdue=over if over >= timedelta(0) and (not clock.ended or clock.breached_at) else None,
            ladder_steps_done=len(clock.steps_done),
        ))
    return replace(
        base, calendar=policy.calendar_name, open_now=is_open(cal, now) if cal is not None else None,
        paused_since=state.paused_at, targets=targets, ladder_length=len(policy.ladder),
    )
