"""Firing a claimed batch of due timers as a batch: a few statements per batch instead of ~18 per timer.

The batch's conversations (locked, skipping those another transaction holds) and their pending SLA
timers are read as plain rows (``inbox.sla.rows``: only the columns firing needs, no ORM objects), their
tags with one query (the three sent through the driver, the ids as one parameter); every timer then goes
through the engine's own ``fire_locked`` in claim order, in memory. The columns that changed are
written with one executemany per table and set of changed columns; the audit events
(``inbox.audit.batched``) and the replans' new timers (``batched_timers``) go in with one executemany
each; the notices reach the notifier as one list, so its facts, members and budget are read once per
batch and each team chat gets one ``post``. On SQLite the writes go behind (``inbox.write_behind``): a
round is fired in parts of ``WRITE_BEHIND_PART`` timers, and SQLite's thread writes one part, each table
in one statement, while the next part is fired.

The caller runs this inside a SAVEPOINT. A timer that raises is reported as TimerFailed (the caller sets
it aside and tries the rest again); on any other failure the caller fires the timers one by one: one
bad timer, or a notifier that fails, must not block the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.audit import batched, write_batched
from inbox.models import Conversation, TimerStatus
from inbox.sla.engine import (
    SLA_TIMER_KINDS,
    Notify,
    Outcome,
    SlaEngine,
    batched_timers,
    write_batched_timers,
)
from inbox.sla.rows import (
    AnyConversation,
    ConversationRow,
    TimerRow,
    conversation_tags,
    lock_conversations,
    pending_sla_timers,
    write_conversations,
    write_timers,
)
from inbox.write_behind import write_behind, writing_behind

_TIMER_PENDING: Final = TimerStatus.PENDING.value  # a plain string: an Enum's ``.value`` is a property
# Timers fired between two writes when SQLite writes behind (``inbox.write_behind``): small enough that
# SQLite has one part to write while the next is fired, large enough that a statement carries many rows.
WRITE_BEHIND_PART: Final = 100

Note = tuple[str, AnyConversation, dict[str, Any]]
"""One notification the engine asked for: ``(kind, conversation, data)``, as ``Notify`` takes them."""

NotifyMany = Callable[[AsyncSession, Sequence[Note]], Awaitable[None]]
"""``async notify_many(session, notes)``: queue a batch's notifications at once, in order."""


def notify_many_of(notify: Notify) -> NotifyMany | None:
    """The batch form of ``notify``, if it has one: a notifier's ``sla_notify_many`` when ``notify`` is
    its bound ``sla_notify`` (what ``inbox run`` passes). Without one, ``notify`` is called as each timer
    fires, as ``SlaEngine.fire`` does."""
    owner = getattr(notify, "__self__", None)
    many = getattr(owner, "sla_notify_many", None)
    if getattr(notify, "__name__", None) == "sla_notify" and callable(many):
        return cast(NotifyMany, many)
    return None


class TimerFailed(Exception):
    """Firing this timer of the batch raised (the cause is chained): the batch was not written."""

    def __init__(self, timer: TimerRow) -> None:
        super().__init__(f"timer #{timer.id} ({timer.kind}) failed")
        self.timer = timer


@dataclass
class _Loaded:
    """What the batch reads up front: locked conversations, their tags and pending timers."""

    convs: dict[int, ConversationRow]
    existing: set[int]  # conversations that exist but are locked elsewhere (their timers are BUSY)
    tags: dict[int, frozenset[str]]
    pending: dict[int, list[TimerRow]]


async def fire_batch(
    engine: SlaEngine, session: AsyncSession, timers: Sequence[TimerRow], now: datetime, *,
    notify: Notify, notify_many: NotifyMany | None, worker_id: str, grace: timedelta,
) -> list[Outcome | None]:
    """Fire the claimed ``timers`` (due_at, id order) in the caller's transaction; an outcome per timer.

    None marks a timer an earlier one of its conversation replanned away before its turn (as the
    one-by-one path skips it). With ``notify_many`` the notifications go out together after every
    timer has fired, so their cards show the conversations as the batch leaves them; else ``notify``
    is called as each one fires. An exception while a timer fires is raised as TimerFailed.
    """
    notes: list[Note] = []

    async def collect(_session: AsyncSession, kind: str, conv: AnyConversation, data: dict[str, Any]) -> None:
        notes.append((kind, conv, data))

    claimed = {t.id: t for t in timers}
    outcomes: list[Outcome | None] = []
    async with write_behind(session), batched(session, through_driver=True):
        # Written behind (SQLite), a round goes in parts: SQLite writes one part while the next is fired.
        size = WRITE_BEHIND_PART if writing_behind(session) else max(1, len(timers))
        loaded = await _load(engine, session, timers, claimed)
        for number, part in enumerate(_rounds(timers)):
            # A later round's conversations fired a timer in an earlier one: read what it replanned.
            ids = sorted({cid for t in part if (cid := t.conversation_id) in loaded.convs}) if number else []
            if ids:
                fresh = await _pending(session, ids, claimed)
                loaded.pending.update({cid: fresh.get(cid, []) for cid in ids})
            async with batched_timers(session):
                for start in range(0, len(part), size):
                    await _fire_part(engine, session, loaded, part[start : start + size], now,
                                     collect if notify_many else notify, worker_id, grace, outcomes)
        if notes and notify_many is not None:
            await notify_many(session, notes)
    return outcomes


async def _fire_part(
    engine: SlaEngine, session: AsyncSession, loaded: _Loaded, part: Sequence[TimerRow], now: datetime,
    notify: Notify, worker_id: str, grace: timedelta, outcomes: list[Outcome | None],
) -> None:
    """Fire ``part`` (timers of distinct conversations), then write what changed: the conversations and
    timers, the replans' new timers, the audit events."""
    for timer in part:
        try:
            outcomes.append(await _fire_one(engine, session, loaded, timer, now, notify, worker_id, grace))
        except Exception as exc:
            raise TimerFailed(timer) from exc
    # In this order: a replan's cancelled timers before its new ones; all before the next round reads.
    ids = {cid for t in part if (cid := t.conversation_id) is not None}
    await write_conversations(session, (loaded.convs[cid] for cid in sorted(ids) if cid in loaded.convs))
    await write_timers(session, [*part, *(t for cid in ids for t in loaded.pending.get(cid, ()))])
    await write_batched_timers(session)
    await write_batched(session)


def _rounds(timers: Sequence[TimerRow]) -> list[list[TimerRow]]:
    """The claimed timers, in order, cut wherever a conversation comes again.

    Within a round the replans' new timers are only buffered (one executemany at the round's end), so a
    second timer of the same conversation waits for the next round, which reads its pending timers
    afresh. Usually one round: several timers of one conversation rarely come due at once.
    """
    rounds: list[list[TimerRow]] = [[]]
    seen: set[int] = set()
    for timer in timers:
        cid = timer.conversation_id
        if cid is not None and cid in seen:
            rounds.append([])
            seen = set()
        if cid is not None:
            seen.add(cid)
        rounds[-1].append(timer)
    return rounds


async def _pending(
    session: AsyncSession, ids: list[int], claimed: dict[int | None, TimerRow]
) -> dict[int, list[TimerRow]]:
    """The conversations' pending SLA timers; a claimed one is the claimed row itself (one object a row)."""
    return await pending_sla_timers(session, ids, SLA_TIMER_KINDS, claimed)


async def _load(
    engine: SlaEngine, session: AsyncSession, timers: Sequence[TimerRow], claimed: dict[int | None, TimerRow]
) -> _Loaded:
    ids = sorted({t.conversation_id for t in timers if t.conversation_id is not None})
    if not ids:
        return _Loaded({}, set(), {}, {})
    locked = {c.id: c for c in await lock_conversations(session, ids) if c.id is not None}
    missing = [i for i in ids if i not in locked]
    existing: set[int] = set()
    if missing:
        found = await session.execute(select(col(Conversation.id)).where(col(Conversation.id).in_(missing)))
        existing = {i for i in found.scalars() if i is not None}
    held = sorted(locked)
    # The engine reads tags only when a policy matches on them (``SlaEngine._tags``); so does the batch.
    tags = await conversation_tags(session, held) if held and any(p.tags for p in engine.policies) else {}
    pending = await _pending(session, held, claimed) if held else {}
    return _Loaded(locked, existing, tags, pending)


async def _fire_one(
    engine: SlaEngine, session: AsyncSession, loaded: _Loaded, timer: TimerRow, now: datetime, notify: Notify,
    worker_id: str, grace: timedelta,
) -> Outcome | None:
    if timer.status != _TIMER_PENDING:
        return None  # replanned away by an earlier timer of the same conversation in this batch
    cid = timer.conversation_id
    if cid is None:
        return engine._void(timer)
    conv = loaded.convs.get(cid)
    if conv is None:
        return Outcome.BUSY if cid in loaded.existing else engine._void(timer)
    return await engine.fire_locked(
        session, conv, timer, now, notify=notify, worker_id=worker_id, late=now - timer.due_at > grace,
        tags=loaded.tags.get(cid, frozenset()), pending=loaded.pending.get(cid, []))
