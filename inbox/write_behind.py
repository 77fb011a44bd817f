"""SQLite writes handed to the driver's thread without waiting for them, so Python work goes on meanwhile.

aiosqlite runs each connection's statements on a thread of its own, in the order they were queued. A
batch that computes rows on the event loop's thread and then writes them keeps one core busy at a time:
the loop waits while SQLite writes, and SQLite waits while the loop computes. Within a ``write_behind``
block on SQLite, ``inbox.db_bulk`` statements are queued and not awaited, so the next part of the batch
is computed while SQLite writes the last one.

- **Order.** Statements still run in the order they were issued: each is queued before ``send_many``
  returns, and later statements, reads included, queue behind it on the same connection and thread.
- **Nothing unchecked.** The block's end awaits every write and raises the first failure, so the caller's
  SAVEPOINT or transaction sees it before it commits; a block that raises still awaits its writes.
- **One statement per batch.** A statement with a set-based form (``DriverStatement.set_sql``) goes as one
  statement over a JSON array of all the rows. An executemany takes the GIL for every row, and the loop's
  thread, busy computing, gives it up only every switch interval: the driver would advance a row or two
  per interval. One statement runs within a single step, without the GIL.
- **Switch interval.** Even so the driver's thread needs the GIL for a moment before and after each
  statement. Within the blocks the interpreter's switch interval is 0.5 ms instead of 5 ms
  (``SWITCH_INTERVAL``), so the driver is not held up for whole 5 ms slices; it is put back when the
  last block ends.

On PostgreSQL the block changes nothing: asyncpg runs one statement at a time on the loop's thread.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

SWITCH_INTERVAL: Final = 0.0005  # seconds; Python's default is 0.005
_KEY: Final = "write_behind.tasks"  # session.info key of a block's writes in flight


class _Interval:
    """The switch interval lowered while any block is open, and put back when the last one ends."""

    def __init__(self) -> None:
        self.open = 0
        self.saved = sys.getswitchinterval()

    def enter(self) -> None:
        if self.open == 0:
            self.saved = sys.getswitchinterval()
            sys.setswitchinterval(min(self.saved, SWITCH_INTERVAL))
        self.open += 1

    def leave(self) -> None:
        self.open -= 1
        if self.open == 0:
            sys.setswitchinterval(self.saved)


_INTERVAL: Final = _Interval()


@asynccontextmanager
async def write_behind(session: AsyncSession) -> AsyncIterator[None]:
    """Within the block, ``send_many`` queues SQLite writes without awaiting them; at its end every one is
    awaited and the first failure raised. Nested blocks join the outer one; on PostgreSQL, a plain block."""
    if _KEY in session.info or session.get_bind().dialect.name != "sqlite":
        yield
        return
    tasks: list[asyncio.Future[Any]] = []
    session.info[_KEY] = tasks
    _INTERVAL.enter()
    try:
        yield
    finally:
        session.info.pop(_KEY, None)
        try:
            # Every write is awaited, even when the block raised: none may still run once the caller
            # rolls back.
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            _INTERVAL.leave()
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def driver_of(connection: AsyncConnection) -> Any:
    """The driver's own connection under ``connection`` (aiosqlite's on SQLite, asyncpg's on PostgreSQL)."""
    raw = await connection.get_raw_connection()
    if raw.driver_connection is None:
        raise RuntimeError("the pooled connection has no driver connection")
    return raw.driver_connection


def writing_behind(session: AsyncSession) -> bool:
    """Whether ``session`` is inside a ``write_behind`` block on SQLite (its writes are queued)."""
    return _KEY in session.info


def in_flight(session: AsyncSession) -> int:
    """How many of the block's queued writes have not finished yet (0 outside a block)."""
    tasks: list[asyncio.Future[Any]] = session.info.get(_KEY, [])
    return sum(not task.done() for task in tasks)


async def send_many(
    session: AsyncSession, connection: AsyncConnection, sql: str, rows: Sequence[Sequence[Any]],
    set_sql: str | None = None,
) -> None:
    """``executemany(sql, rows)`` on ``connection``, run and awaited; inside a ``write_behind`` block,
    queued on the driver's thread without waiting, as the one statement ``set_sql`` (its one parameter a
    JSON array of the rows) when given."""
    tasks: list[asyncio.Future[Any]] | None = session.info.get(_KEY)
    if tasks is None:
        await connection.exec_driver_sql(sql, rows)
        return
    driver = await driver_of(connection)
    if set_sql is not None:
        write = driver.execute(set_sql, (json.dumps(rows),))
    else:
        write = driver.executemany(sql, rows)
    tasks.append(asyncio.ensure_future(write))
    # One turn of the loop: the new task runs first (it was scheduled first) and queues the statement on
    # the driver's thread, so it runs before anything the caller sends next.
    await asyncio.sleep(0)
