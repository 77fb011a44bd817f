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
of each conversation (in time order that is only the new replies). A single new reply can instead be
stored with ``INSERT_REPLY``, which computes its round in the INSERT itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Insert, Integer, bindparam, exists, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.models import Direction, Message

_MESSAGES: Final = Message.__table__  # type: ignore[attr-defined]
_IN: Final = Direction.IN.value
_OUT: Final = Direction.OUT.value
_CHUNK: Final = 500


def _before(a: Any, b: Any) -> Any:
    """Message row ``a`` comes before ``b`` in a conversation's order."""
    return tuple_(a.c.created_at, a.c.id) < tuple_(b.c.created_at, b.c.id)


def _round_start(conversation: Any, before_reply: Callable[[Any], Any]) -> Any:
    """The first customer message between the previous reply and a reply (NULL when nothing was asked).

    ``conversation`` is the reply's conversation id and ``before_reply(row)`` says a message row comes
    before the reply: the UPDATE's own row (correlated) or a new reply's bound values (the INSERT).
    """
    m = _MESSAGES
    previous, asked, reply = m.alias("fu_prev"), m.alias("fu_in"), m.alias("fu_last")
    last_reply = (
        select(previous.c.id)
        .where(previous.c.conversation_id == conversation, previous.c.direction == _OUT,
               before_reply(previous))
        .order_by(previous.c.created_at.desc(), previous.c.id.desc())
        .limit(1)
        .correlate_except(previous)  # the UPDATE's row, two levels out
        .scalar_subquery()
    )
    return (
        select(func.min(asked.c.created_at))
        .select_from(asked.join(reply, reply.c.id == last_reply))
        .where(asked.c.conversation_id == conversation, asked.c.direction == _IN,
               _before(reply, asked), before_reply(asked))
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
        .values(follow_up_at=_round_start(m.c.conversation_id, lambda row: _before(row, m)))
    )


_UPDATE: Final = _update()


def _insert_reply() -> Insert:
    """INSERT of a reply at ``r_at`` that sets its ``follow_up_at`` too and says if a reply is dated later.

    For a reply that comes after every message stored so far (its id is the largest, so every message
    with ``created_at <= r_at`` comes before it). Computed inside the INSERT, so it sees the messages
    committed before the conversation's lock was granted; ``RETURNING`` (id, follow_up_at, replied_later)
    says whether a reply is dated later (an import, a platform's clock), whose round this one changes:
    only then must the caller run ``keep_follow_ups``. Parameters: ``r_conversation``, ``r_at``,
    ``r_channel_id``, ``r_direction``, ``r_member_id``, ``r_text``, ``r_attachments``.
    """
    m = _MESSAGES
    conversation = bindparam("r_conversation", type_=Integer)
    at = bindparam("r_at", type_=m.c.created_at.type)
    later = m.alias("r_later")
    replied_later = exists().where(later.c.conversation_id == conversation, later.c.direction == _OUT,
                                   later.c.created_at > at)
    values: dict[str, Any] = {
        name: bindparam(f"r_{name}", type_=m.c[name].type)
        for name in ("channel_id", "direction", "member_id", "text", "attachments")
    }
    round_start = _round_start(conversation, lambda row: row.c.created_at <= at)
    return (
        insert(m)
        .values(**values, conversation_id=conversation, created_at=at, follow_up_at=round_start)
        .returning(m.c.id, m.c.follow_up_at, replied_later)
    )


INSERT_REPLY: Final = _insert_reply()
