"""SQLAlchemy's aiosqlite driver with each statement run in one trip to the connection's thread.

aiosqlite runs SQLite on a thread of its own and hands each call over to it. SQLAlchemy's cursor makes
four calls per statement: open a cursor, execute, fetch the rows, close. Each hand-over costs 0.1-0.35 ms
on a small machine, more than an indexed lookup costs SQLite: a command of eight statements spent most of
its time handing over. Here the four calls are one function, run on the thread in one hand-over; the
cursor keeps what SQLite said (rows, description, row count, last row id) for SQLAlchemy to read.

Streaming (server-side) cursors are SQLAlchemy's own, unchanged: they fetch in parts on purpose.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

_Outcome = tuple[Any, int, int | None, list[Any] | None]


def _run(connection: aiosqlite.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    """On the connection's thread: run the statement and read everything SQLAlchemy asks of the cursor."""
    cursor = connection._conn.cursor()  # the sqlite3 connection, used on its own thread
    try:
        if many:
            cursor.executemany(sql, parameters)
        elif parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        # After the fetch: a RETURNING statement counts its rows as they are stepped through.
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement, fetch and close are one call on the connection's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")
    # Nothing to close on the thread: SQLAlchemy's async results must not await a close.
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # Not the parent's: it opens an aiosqlite cursor, a trip of its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        """The columns of the last statement's rows (None for a statement without rows)."""
        return self._description

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed (-1 for a query)."""
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        """The row id of the last row inserted, as sqlite3 reports it."""
        return self._lastrowid  # type: ignore[return-value]  # None before any statement, as sqlite3's

    @property
    def arraysize(self) -> int:
        """Rows ``fetchmany`` returns by default."""
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._send(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._send(operation, seq_of_parameters, many=True)

    async def _send(self, sql: str, parameters: Any, *, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            outcome = await self._connection._execute(_run, self._connection, sql, parameters, many)
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows or ())

    def setinputsizes(self, *inputsizes: Any) -> None:
        """Nothing to do: SQLite takes no input sizes."""

    def nextset(self) -> None:
        """SQLite returns one result set per statement."""

    def close(self) -> None:
        """Drop unread rows; the SQLite cursor was closed on the thread."""
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection adapter, handing out one-trip cursors for buffered results."""

    __slots__ = ()

    def cursor(self, server_side: bool = False) -> Any:
        """A one-trip cursor; a streaming one stays SQLAlchemy's."""
        return super().cursor(server_side=True) if server_side else OneTripCursor(self)


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """The DB-API module SQLAlchemy's aiosqlite dialect uses, connecting with ``OneTripConnection``."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        """Connect as SQLAlchemy does, then adapt the connection with one-trip cursors."""
        connection = super().connect(*arg, **kw)
        # Same slots, only the cursor class differs: changing the class keeps SQLAlchemy's connect,
        # which knows each aiosqlite version's threading.
        connection.__class__ = OneTripConnection
        return connection


def one_trip_dbapi() -> OneTripDbapi:
    """The module to give ``create_engine(module=...)`` for a SQLite URL."""
    return OneTripDbapi(aiosqlite, sqlite3)

