"""Follow-up rounds kept at write time: each reply that answers a customer follow-up records when it began.

A **follow-up** is a customer message after an earlier reply; the reply that comes next answers it. The
reports' next-response figure measures each such round, from the first customer message after the
previous reply to the reply. Rather than replaying every message of a conversation (window functions
over hundreds of thousands of rows per report), the round's start is kept on the answering reply in
``messages.follow_up_at`` (NULL on every other message), and the report reads only those replies.

Order is ``(created_at, id)`` within a conversation, in- and outbound messages only (notes do not count).
A message stored out of order (an import, a platform's late delivery) changes the rounds of the replies
after it, so every writer calls ``keep_follow_ups`` for what it stored, in the same transaction: one
set-based UPDATE (per 500 conversations) recomputes the replies at or after the earliest stored message
of each conversation (in time order that is only the new replies).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.models import Direction, Message

_MESSAGES: Final = Message.__table__  # type: ignore[attr-defined]
_IN: Final = Direction.IN.value
_OUT: Final = Direction.OUT.value
_CHUNK: Final = 500


def _before(a: Any, b: Any) -> Any:
    """Message row ``a`` comes before ``b`` in a conversation's order."""
    return tuple_(a.c.created_at, a.c.id) < tuple_(b.c.created_at, b.c.id)


def _round_start() -> Any:
    """For the UPDATE's row (a reply): the first customer message between the previous reply and it."""
    m = _MESSAGES
    previous, asked, reply = m.alias("fu_prev"), m.alias("fu_in"), m.alias("fu_last")
    last_reply = (
        select(previous.c.id)
        .where(previous.c.conversation_id == m.c.conversation_id, previous.c.direction == _OUT,
               _before(previous, m))
        .order_by(previous.c.created_at.desc(), previous.c.id.desc())
        .limit(1)
        .correlate_except(previous)  # the UPDATE's row, two levels out
        .scalar_subquery()
    )
    return (
        select(func.min(asked.c.created_at))
        .select_from(asked.join(reply, reply.c.id == last_reply))
        .where(asked.c.conversation_id == m.c.conversation_id, asked.c.direction == _IN,
               _before(reply, asked), _before(asked, m))
        .correlate_except(asked, reply)
        .scalar_subquery()
    )


async def keep_follow_ups(session: AsyncSession, stored: Iterable[tuple[int | None, datetime]]) -> None:
    """Recompute ``follow_up_at`` of the replies that messages just stored can affect.

    ``stored``: (conversation id, created_at) of each message written in this transaction.
    """
    earliest: dict[int, datetime] = {}
    for conversation_id, at in stored:
        if conversation_id is not None:
            earliest[conversation_id] = min(at, earliest.get(conversation_id, at))
    if not earliest:
        return
    # One statement per 500 conversations (IN lists as long as ingest's): their replies from the earliest
    # message stored on (a little more than needed for a conversation whose own earliest is later; the
    # result is the same). Stored in time order, that finds only the new replies.
    ids = sorted(earliest)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        since = min(earliest[cid] for cid in chunk)
        await session.execute(_UPDATE, {"ids": chunk, "since": since},
                              execution_options={"synchronize_session": False})


def _update() -> Any:
    """The UPDATE, built once: building it and its cache key per call cost ~3 ms of CPU per reply."""
    m = _MESSAGES
    return (
        update(m)
        .where(m.c.conversation_id.in_(bindparam("ids", expanding=True)), m.c.direction == _OUT,
               m.c.created_at >= bindparam("since", type_=m.c.created_at.type))
        .values(follow_up_at=_round_start())
    )


_UPDATE: Final = _update()
