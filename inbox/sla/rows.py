"""Plain rows for batch firing: the columns firing reads and writes, without the ORM's bookkeeping.

Firing a batch reads a few hundred conversations and their timers and changes a few columns of each.
As ORM objects every row costs an identity-map entry, instrumented attribute sets and a flush that
compares every attribute; as these plain objects it costs a tuple. The engine's rules read and set the
same attribute names on either, and ``write_conversations``/``write_timers`` send the columns that
changed, one executemany per set of changed columns (a batch has a few: fired, cancelled, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import Table, Text, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.db_bulk import DriverStatement
from inbox.models import Conversation, Timer, TimerStatus
from inbox.sla.outcomes import OUTCOME_COLUMN_NAMES

_CONVERSATIONS: Table = Conversation.__table__  # type: ignore[attr-defined]
_TIMERS: Table = Timer.__table__  # type: ignore[attr-defined]

# What firing may change on a conversation: the SLA columns (``_settle``), a ladder step's priority and
# escalation, a snooze's end.
CONVERSATION_WRITTEN: Final = (
    "status", "priority", "priority_rank", "escalation_level", "sla_policy", "sla_state", "breached",
    "first_response_due_at", "next_response_due_at", "resolution_due_at", *OUTCOME_COLUMN_NAMES,
    "snoozed_until", "updated_at",
)
CONVERSATION_READ: Final = ("id", "channel_id", "kind", *CONVERSATION_WRITTEN)
TIMER_WRITTEN: Final = ("status", "due_at", "fired_at", "late", "claimed_by")
TIMER_READ: Final = ("id", "kind", "conversation_id", "data", *TIMER_WRITTEN)


class ConversationRow:
    """A conversation's firing columns as plain attributes (the names of ``Conversation``'s)."""

    __slots__ = (*CONVERSATION_READ, "_saved")

    id: int | None
    channel_id: int
    kind: str
    status: str
    priority: str
    priority_rank: int
    escalation_level: int
    sla_policy: str | None
    sla_state: dict[str, Any] | None
    breached: list[str]
    first_response_due_at: datetime | None
    next_response_due_at: datetime | None
    resolution_due_at: datetime | None
    first_response_outcome_at: datetime | None
    first_response_ended_at: datetime | None
    next_response_outcome_at: datetime | None
    next_response_ended_at: datetime | None
    next_response_started_at: datetime | None
    resolution_outcome_at: datetime | None
    resolution_ended_at: datetime | None
    snoozed_until: datetime | None
    updated_at: datetime
    _saved: tuple[Any, ...]

    def __init__(self, values: Sequence[Any]) -> None:
        for name, value in zip(CONVERSATION_READ, values, strict=True):
            object.__setattr__(self, name, value)
        self.saved()

    def written(self) -> tuple[Any, ...]:
        """The values of the columns firing may change, as they are now."""
        return tuple(getattr(self, name) for name in CONVERSATION_WRITTEN)

    def saved(self) -> None:
        """What the database holds now (read, or just written)."""
        self._saved = self.written()


class TimerRow:
    """A timer's firing columns as plain attributes (the names of ``Timer``'s)."""

    __slots__ = (*TIMER_READ, "_saved")

    id: int | None
    kind: str
    conversation_id: int | None
    data: dict[str, Any]
    status: str
    due_at: datetime
    fired_at: datetime | None
    late: bool
    claimed_by: str | None
    _saved: tuple[Any, ...]

    def __init__(self, values: Sequence[Any]) -> None:
        for name, value in zip(TIMER_READ, values, strict=True):
            object.__setattr__(self, name, value)
        self.data = timer_data(values[3])
        self.saved()

    def written(self) -> tuple[Any, ...]:
        """The values of the columns firing may change, as they are now."""
        return (self.status, self.due_at, self.fired_at, self.late, self.claimed_by)

    def saved(self) -> None:
        """What the database holds now (read, or just written)."""
        self._saved = self.written()


def timer_data(text: str | None) -> dict[str, Any]:
    """A timer's ``data`` from its JSON text (read as text: see ``_TIMER_COLUMNS``), a dict of its own."""
    if not text:
        return {}
    flat, value = _decoded(text)
    return dict(value) if flat else json.loads(text)  # nested values must not be shared between rows


@lru_cache(maxsize=4096)
def _decoded(text: str) -> tuple[bool, dict[str, Any]]:
    """Decoded once per distinct text: a batch's timers carry a handful of different ``data`` values."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"timer data is not an object: {text[:80]!r}")
    return all(not isinstance(v, dict | list) for v in value.values()), value


# ``data`` as its JSON text: decoding it once per distinct value instead of once per row (json.loads per
# row was a tenth of a batch's reading).
_TIMER_COLUMNS: Final = tuple(
    cast(_TIMERS.c.data, Text).label("data") if name == "data" else _TIMERS.c[name] for name in TIMER_READ)

AnyConversation = Conversation | ConversationRow
"""A conversation as the ORM loads it, or as batch firing reads it (the same attribute names)."""
AnyTimer = Timer | TimerRow
"""A timer as the ORM loads it, or as batch firing reads it (the same attribute names)."""


async def claim_timers(
    session: AsyncSession, kinds: Sequence[str], now: datetime, limit: int, *, skip_locked: bool
) -> list[TimerRow]:
    """Up to ``limit`` pending timers of ``kinds`` due by ``now``, oldest first, locked (skipping those
    another transaction holds, on PostgreSQL)."""
    query = (
        select(*_TIMER_COLUMNS)
        .where(_TIMERS.c.status == TimerStatus.PENDING.value, _TIMERS.c.due_at <= now,
               _TIMERS.c.kind.in_(kinds))
        .order_by(_TIMERS.c.due_at, _TIMERS.c.id)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return [TimerRow(row) for row in await session.execute(query)]


async def timers_by_id(session: AsyncSession, ids: Sequence[int]) -> list[TimerRow]:
    """These timers as they are in the database now, in the order of ``ids`` (missing ones left out)."""
    rows = await session.execute(select(*_TIMER_COLUMNS)
                                 .where(_TIMERS.c.id.in_(ids)))
    found = {row.id: row for row in map(TimerRow, rows)}
    return [found[i] for i in ids if i in found]


async def pending_sla_timers(
    session: AsyncSession, conversation_ids: Sequence[int], kinds: Sequence[str]
) -> dict[int, list[TimerRow]]:
    """Pending timers of ``kinds`` of these conversations by id order, locked (skipping held rows)."""
    rows = await session.execute(
        select(*_TIMER_COLUMNS)
        .where(_TIMERS.c.conversation_id.in_(conversation_ids),
               _TIMERS.c.status == TimerStatus.PENDING.value, _TIMERS.c.kind.in_(kinds))
        .order_by(_TIMERS.c.id).with_for_update(skip_locked=True)
    )
    found: dict[int, list[TimerRow]] = {}
    for timer in map(TimerRow, rows):
        assert timer.conversation_id is not None
        found.setdefault(timer.conversation_id, []).append(timer)
    return found


async def lock_conversations(session: AsyncSession, ids: Sequence[int]) -> list[ConversationRow]:
    """These conversations' firing columns, locked in id order, skipping those another transaction holds."""
    rows = await session.execute(
        select(*(_CONVERSATIONS.c[name] for name in CONVERSATION_READ))
        .where(_CONVERSATIONS.c.id.in_(ids))
        .order_by(_CONVERSATIONS.c.id)  # one lock order everywhere, so two writers cannot deadlock
        .with_for_update(skip_locked=True)
    )
    return list(map(ConversationRow, rows))


async def write_conversations(session: AsyncSession, rows: Iterable[ConversationRow]) -> None:
    """Write the columns that changed: one executemany per set of changed columns (a batch has a few)."""
    await _write(session, _CONVERSATIONS, CONVERSATION_WRITTEN, rows)


async def write_timers(session: AsyncSession, rows: Iterable[TimerRow]) -> None:
    """Write the columns that changed: one executemany per set of changed columns (fired, cancelled)."""
    await _write(session, _TIMERS, TIMER_WRITTEN, rows)


async def _write(
    session: AsyncSession, table: Table, names: tuple[str, ...], rows: Iterable[ConversationRow | TimerRow]
) -> None:
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    for row in rows:
        values, saved = row.written(), row._saved
        if values == saved:
            continue
        # Only what changed: binding a dozen unchanged timestamps per row costs more than the UPDATE.
        changed = tuple(i for i, (new, old) in enumerate(zip(values, saved, strict=True)) if new != old)
        params = {names[i]: values[i] for i in changed}
        params["_id"] = row.id
        groups.setdefault(changed, []).append(params)
        row._saved = values
    for changed, batch in groups.items():
        await _update(table, tuple(names[i] for i in changed)).execute_many(session, batch)


_UPDATES: dict[tuple[str, tuple[str, ...]], DriverStatement] = {}


def _update(table: Table, names: tuple[str, ...]) -> DriverStatement:
    """``UPDATE table SET name = :name, ... WHERE id = :_id``, made once per set of columns, bound
    through the driver (``inbox.db_bulk``: SQLAlchemy's executemany costs more per row than the UPDATE)."""
    key = (table.name, names)
    if key not in _UPDATES:
        sets = ", ".join(f"{name} = :{name}" for name in names)
        _UPDATES[key] = DriverStatement(f'UPDATE "{table.name}" SET {sets} WHERE id = :_id',
                                        {name: table.c[name].type for name in names})
    return _UPDATES[key]
