"""Writing audit events: every action and SLA transition leaves one row."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.db_bulk import BulkInsert
from inbox.events import Actor
from inbox.held_rows import held, holding, write_held
from inbox.models import Event

_BUFFER: Final = "audit.buffer"  # session.info key of the rows ``batched`` holds back
_EVENTS: Table = Event.__table__  # type: ignore[attr-defined]
_DRIVER_INSERT: Final = BulkInsert(_EVENTS, ("conversation_id", "actor", "type", "data", "created_at"))


def event_row(
    actor: Actor | str,
    type_: str,
    when: datetime,
    conversation_id: int | None = None,
    **data: Any,
) -> dict[str, Any]:
    """The column values of one audit event, for bulk inserts."""
    label = actor.label if isinstance(actor, Actor) else actor
    return {
        "conversation_id": conversation_id,
        "actor": label,
        "type": type_,
        "data": data,
        "created_at": when,
    }


async def record(
    session: AsyncSession,
    actor: Actor | str,
    type_: str,
    when: datetime,
    conversation_id: int | None = None,
    **data: Any,
) -> None:
    """Insert one audit event in the caller's transaction (held back until the end of ``batched``)."""
    row = event_row(actor, type_, when, conversation_id, **data)
    buffer = held(session, _BUFFER)
    if buffer is not None:
        buffer.append(row)
        return
    await session.execute(insert(Event).values(row))


def batched(session: AsyncSession, *, through_driver: bool = False) -> AbstractAsyncContextManager[None]:
    """Within the block, ``record`` collects the events; they are inserted with one executemany at its end.

    Nothing is written when the block raises. For batch work that records many events: one statement
    instead of one per event. Nested blocks join the outer one. ``through_driver`` binds the rows through
    the driver (``inbox.db_bulk``; the same stored values): for thousands of events a second (SLA firing),
    SQLAlchemy's executemany costs more per row than the INSERT.
    """
    if through_driver:
        return holding(session, _BUFFER, _DRIVER_INSERT)
    # render_nulls: one statement even when some rows have no conversation
    return holding(session, _BUFFER, insert(Event).execution_options(render_nulls=True))


async def write_batched(session: AsyncSession) -> None:
    """Insert the events a ``batched(..., through_driver=True)`` block has collected so far, now."""
    await write_held(session, _BUFFER, _DRIVER_INSERT)
