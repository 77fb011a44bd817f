"""Rows held back in a session and inserted with one executemany: batch work's one statement per table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from inbox.db_bulk import DriverStatement


def held(session: AsyncSession, key: str) -> list[dict[str, Any]] | None:
    """The rows ``holding(session, key, …)`` collects now, or None outside such a block."""
    rows: list[dict[str, Any]] | None = session.info.get(key)
    return rows


@asynccontextmanager
async def holding(
    session: AsyncSession, key: str, statement: Insert | DriverStatement
) -> AsyncIterator[None]:
    """Collect rows under ``key`` of ``session.info``; insert them with ``statement`` at the block's end
    (an ``inbox.db_bulk`` statement binds them through the driver).

    Nothing is written when the block raises; nested blocks join the outer one.
    """
    if held(session, key) is not None:
        yield
        return
    rows: list[dict[str, Any]] = []
    session.info[key] = rows
    try:
        yield
    finally:
        session.info.pop(key, None)
    await _insert(session, statement, rows)


async def write_held(session: AsyncSession, key: str, statement: Insert | DriverStatement) -> None:
    """Insert the rows held under ``key`` so far, now; the block goes on collecting (none: nothing)."""
    rows = held(session, key)
    if rows:
        await _insert(session, statement, list(rows))
        rows.clear()


async def _insert(
    session: AsyncSession, statement: Insert | DriverStatement, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    if isinstance(statement, DriverStatement):
        await statement.execute_many(session, rows)
    else:
        await session.execute(statement, rows)
