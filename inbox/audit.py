"""Writing audit events: every action and SLA transition leaves one row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.events import Actor
from inbox.models import Event

_BUFFER: Final = "audit.buffer"  # session.info key of the rows ``batched`` holds back


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
    buffer: list[dict[str, Any]] | None = session.info.get(_BUFFER)
    if buffer is not None:
        buffer.append(row)
        return
    await session.execute(insert(Event).values(row))


@asynccontextmanager
async def batched(session: AsyncSession) -> AsyncIterator[None]:
    """Within the block, ``record`` collects the events; they are inserted with one executemany at its end.

    Nothing is written when the block raises. For batch work that records many events: one statement
    instead of one per event. Nested blocks join the outer one.
    """
    if session.info.get(_BUFFER) is not None:
        yield
        return
    rows: list[dict[str, Any]] = []
    session.info[_BUFFER] = rows
    try:
        yield
    finally:
        session.info.pop(_BUFFER, None)
    if rows:  # render_nulls: one statement even when some rows have no conversation
        await session.execute(insert(Event).execution_options(render_nulls=True), rows)
