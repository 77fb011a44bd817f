"""Writing audit events: every action and SLA transition leaves one row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.events import Actor
from inbox.models import Event


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
    """Insert one audit event in the caller's transaction."""
    await session.execute(insert(Event).values(event_row(actor, type_, when, conversation_id, **data)))
