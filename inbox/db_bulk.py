"""Many rows in one statement, bound straight through the driver (executemany of plain tuples).

SQLAlchemy's executemany builds a parameter dict per row, fills every column default and runs each
value through its type's bind processor: for a batch of ingested events that was most of the time spent
in Python. Here each value is converted the way the column's type would store it (UTC timestamps, JSON)
by one function per column chosen once, and the rows go to the driver as tuples.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from inbox.db_types import UTCDateTime
from inbox.write_behind import driver_of, send_many

_Convert = Callable[[Any], Any]
_MARK = re.compile(r"(?<![:\w]):(\w+)")  # a named parameter, not a '::' cast


def _utc(value: datetime) -> datetime:
    """The instant in UTC; naive input is refused, as ``UTCDateTime`` does."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column; use the injected Clock")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


@lru_cache(maxsize=4096)  # a batch repeats its times: its own 'now', a message's time on its conversation
def _sqlite_time(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite format, microseconds always written, so that stored times compare as text.
    return None if value is None else _utc(value).isoformat(" ", "microseconds")[:26]


def _postgres_time(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def json_text(value: Any) -> str:
    """A JSON column's value as the driver takes it: the text SQLAlchemy's JSON type would bind."""
    # Most attachment lists are empty. SQLAlchemy's JSON type binds None as JSON 'null' too (none_as_null
    # is off).
    if not value and type(value) is list:
        return "[]"
    return json.dumps(value)


def time_binder(dialect: str) -> _Convert:
    """How a UTC timestamp column's value (or None) is handed to the dialect's driver (naive refused)."""
    return _sqlite_time if dialect == "sqlite" else _postgres_time


def _converter(type_: TypeEngine[Any] | None, dialect: str) -> _Convert | None:
    """How a value of the type is handed to the driver; None when as it is."""
    if isinstance(type_, UTCDateTime):
        return time_binder(dialect)
    if isinstance(type_, JSON):
        return json_text
    return None


class _Compiled:
    """A statement made ready for one dialect: its SQL and how to turn a row into the driver's tuple."""

    def __init__(self, statement: DriverStatement, dialect: str, paramstyle: str):
        names: list[str] = []

        def mark(match: re.Match[str]) -> str:
            name = match.group(1)
            if paramstyle == "numeric_dollar":
                if name not in names:
                    names.append(name)
                return f"${names.index(name) + 1}"
            names.append(name)  # qmark: a name used twice is bound twice
            return "?"

        if paramstyle not in ("qmark", "numeric_dollar"):
            raise ValueError(f"bulk binds qmark (sqlite3) or numeric_dollar (asyncpg), not {paramstyle}")
        self.sql = _MARK.sub(mark, statement.sql)
        # The set-based form (SQLite): each ``:name`` is the row's value, where the row ``j`` is the array
        # of the parameters ``sql`` binds, in its order.
        self.set_sql: str | None = None
        if statement.set_sql is not None and paramstyle == "qmark":
            self.set_sql = _MARK.sub(lambda m: f"json_extract(j.value, '$[{names.index(m.group(1))}]')",
                                     statement.set_sql)
        # The values of each row, then the constants (bound the same for every row, converted once).
        given = [name for name in names if name not in statement.constants]
        self.given = tuple(given)
        if names[len(given) :] != [name for name in names if name in statement.constants]:
            raise ValueError("the constants' parameters must come after the rows' in the SQL")
        self.get: Callable[[Mapping[str, Any]], tuple[Any, ...]]
        if len(given) > 1:
            self.get = itemgetter(*given)
        else:
            self.get = (lambda row: (row[given[0]],)) if given else (lambda row: ())
        converters = [_converter(statement.types.get(name), dialect) for name in names]
        self.constants = tuple(
            statement.constants[name] if convert is None else convert(statement.constants[name])
            for name, convert in zip(names[len(given) :], converters[len(given) :], strict=True)
        )
        self.converters = [
            (index, convert) for index, convert in enumerate(converters[: len(given)]) if convert is not None
        ]

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        get, converters, constants = self.get, self.converters, self.constants
        if not converters:
            return [get(row) + constants for row in rows]
        out = []
        for row in rows:
            values = list(get(row))
            for index, convert in converters:
                values[index] = convert(values[index])
            out.append((*values, *constants))
        return out


    def tuples(self, names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> Sequence[tuple[Any, ...]]:
        """Rows already converted, as ``names`` orders them, with the constants appended."""
        if tuple(names) != self.given or len(set(self.given)) != len(self.given):
            raise ValueError(f"rows give {tuple(names)}, the statement binds {self.given} (each once)")
        constants = self.constants
        return [row + constants for row in rows] if constants else rows


class DriverStatement:
    """SQL with ``:name`` parameters, run with executemany of converted tuples.

    ``types`` says how a named value is stored (names not in it go as they are); ``constants`` are values
    bound the same for every row, whose parameters come last in the SQL. Every ``:word`` not preceded by
    a word character or a colon is a parameter, so the SQL must not hold such text in a string literal.
    """

    def __init__(
        self,
        sql: str,
        types: Mapping[str, TypeEngine[Any] | None],
        constants: Mapping[str, Any] | None = None,
        *,
        set_sql: str | None = None,
    ) -> None:
        self.sql = sql
        self.types = dict(types)
        self.constants = dict(constants or {})
        # The same statement for all rows at once, on SQLite (see ``inbox.write_behind``): SQL whose rows come
        # from ``json_each(?) AS j``, one JSON array of every row's parameters; ``:name`` is the row's value.
        self.set_sql = set_sql
        self._compiled: dict[str, _Compiled] = {}

    async def execute_many(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row, in one executemany, in the session's transaction."""
        if not rows:
            return
        connection = await session.connection()
        compiled = self._compile(connection.dialect)
        await send_many(session, connection, compiled.sql, compiled.params(rows), compiled.set_sql)

    async def execute_tuples(
        self, session: AsyncSession, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """``execute_many`` of rows the caller already made the driver's tuples: no per-value work here.

        Each row holds the values of the parameters ``names`` (every row parameter of the SQL, each used
        once, in the SQL's order, checked), converted as their types ask: ``time_binder`` for UTC
        timestamps, ``json_text`` for JSON; the constants are appended.
        """
        if not rows:
            return
        connection = await session.connection()
        compiled = self._compile(connection.dialect)
        await send_many(session, connection, compiled.sql, compiled.tuples(names, rows), compiled.set_sql)

    def _compile(self, dialect: Any) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = _Compiled(self, dialect.name, dialect.paramstyle)
            self._compiled[dialect.name] = compiled
        return compiled


class BulkInsert(DriverStatement):
    """INSERT of rows that give ``columns``; the table's scalar column defaults fill the other columns,
    as SQLAlchemy's insert would."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        defaults: dict[str, Any] = {}
        for column in table.columns:
            if column.name in columns or column.default is None:
                continue
            if not column.default.is_scalar:
                raise ValueError(f"{table.name}.{column.name}: computed default, pass the column")
            defaults[column.name] = column.default.arg  # type: ignore[attr-defined]
        names = [*columns, *defaults]
        types = {name: table.c[name].type for name in names}
        marks = ", ".join(f":{name}" for name in names)
        into = f'INSERT INTO "{table.name}" ({", ".join(names)})'
        # ORDER BY: the rows get their ids in the order given, as with executemany.
        super().__init__(f"{into} VALUES ({marks})", types, defaults,
                         set_sql=f"{into} SELECT {marks} FROM json_each(?) AS j ORDER BY j.key")


def ids_condition(column: str, dialect: str) -> str:
    """SQL that holds when ``column`` is one of the ids given as the statement's one parameter
    (``ids_param``): an integer array on PostgreSQL, a JSON array read by ``json_each`` on SQLite.

    For statements sent through the driver: SQLAlchemy renders an expanding ``IN`` with a bound parameter
    per id on every execution, which for a few hundred ids costs more than the query."""
    if dialect == "postgresql":
        return f"{column} = ANY($1::integer[])"
    return f"{column} IN (SELECT value FROM json_each(?))"


def ids_param(ids: Iterable[int], dialect: str) -> Any:
    """The ids as ``ids_condition``'s parameter for ``dialect``."""
    return list(ids) if dialect == "postgresql" else json.dumps(list(ids))


async def fetch_rows(session: AsyncSession, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
    """The rows of a read sent through the driver (qmark SQL on SQLite, numeric on PostgreSQL).

    On SQLite the statement runs and its rows come back in one trip to aiosqlite's thread (as every
    statement does, ``inbox.sqlite_one_trip``), here without SQLAlchemy's execution context and result
    around it: for the hottest small reads.
    """
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        return list(await (await driver_of(connection)).execute_fetchall(sql, params))
    return list((await connection.exec_driver_sql(sql, tuple(params))).all())


def json_read(value: Any) -> Any:
    """A JSON column's value as read through the driver, decoded: SQLite gives its text, asyncpg decodes it
    itself (SQLAlchemy installs the codec on every connection)."""
    return json.loads(value) if isinstance(value, str) else value
