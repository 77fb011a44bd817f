"""SQLite statements through SQLAlchemy take one trip to aiosqlite's thread and behave as before."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.db import create_engine
from inbox.sqlite_one_trip import OneTripConnection, OneTripCursor

_META = MetaData()
_ITEMS = Table(
    "items", _META,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False, unique=True),
    Column("size", Integer),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'one_trip.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(_META.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the calls handed over to aiosqlite's thread, as they are made."""
    made: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    yield made


async def test_the_engine_adapts_connections_with_one_trip_cursors(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert type(raw.dbapi_connection) is OneTripConnection
        assert type(raw.dbapi_connection.cursor()) is OneTripCursor


async def test_each_statement_is_one_trip(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.begin() as connection:
        trips.clear()
        await connection.execute(insert(_ITEMS).values(name="a", size=1))
        assert trips == ["_run"]
        trips.clear()
        rows = (await connection.execute(select(_ITEMS.c.name, _ITEMS.c.size))).all()
        assert trips == ["_run"]
        assert [tuple(r) for r in rows] == [("a", 1)]
        trips.clear()
        await connection.execute(insert(_ITEMS), [{"name": "b", "size": 2}, {"name": "c", "size": 3}])
        assert trips == ["_run"]  # executemany too


async def test_results_are_what_sqlite_reports(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        inserted = await connection.execute(insert(_ITEMS).values(name="a", size=1))
        assert inserted.inserted_primary_key == (1,)  # from lastrowid
        many = await connection.execute(insert(_ITEMS), [{"name": n, "size": 5} for n in "bcde"])
        assert many.rowcount == 4
        changed = await connection.execute(update(_ITEMS).where(_ITEMS.c.size == 5).values(size=6))
        assert changed.rowcount == 4
        none = await connection.execute(update(_ITEMS).where(_ITEMS.c.size == 99).values(size=0))
        assert none.rowcount == 0
        returned = await connection.execute(
            delete(_ITEMS).where(_ITEMS.c.size == 6).returning(_ITEMS.c.name))
        assert sorted(returned.scalars()) == ["b", "c", "d", "e"]
        assert returned.rowcount == 4  # counted once the RETURNING rows were stepped through
        result = await connection.execute(text("SELECT id AS ident, name FROM items"))
        assert list(result.keys()) == ["ident", "name"]
        assert [tuple(r) for r in result] == [(1, "a")]
        driver = await connection.exec_driver_sql("SELECT ? + ?", (2, 3))
        assert driver.scalar() == 5


async def test_fetching_in_parts_and_closing_early(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(_ITEMS), [{"name": f"n{i}", "size": i} for i in range(10)])
        result = await connection.execute(select(_ITEMS.c.size).order_by(_ITEMS.c.size))
        assert [r[0] for r in result.fetchmany(3)] == [0, 1, 2]
        assert result.fetchone() == (3,)
        result.close()  # the remaining rows are dropped, the connection goes on
        assert (await connection.execute(select(_ITEMS.c.size).where(_ITEMS.c.size == 9))).scalar() == 9


async def test_streaming_keeps_sqlalchemys_server_side_cursor(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(_ITEMS), [{"name": f"n{i}", "size": i} for i in range(25)])
        streamed = await connection.stream(select(_ITEMS.c.size).order_by(_ITEMS.c.size))
        sizes = [row[0] async for row in streamed]
        assert sizes == list(range(25))


async def test_errors_are_sqlalchemys_and_the_transaction_goes_on(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(_ITEMS).values(name="a"))
        savepoint = await connection.begin_nested()
        with pytest.raises(IntegrityError, match=r"UNIQUE constraint failed: items\.name"):
            await connection.execute(insert(_ITEMS).values(name="a"))
        await savepoint.rollback()
        with pytest.raises(OperationalError, match="no such table: missing"):
            await connection.execute(text("SELECT * FROM missing"))
        assert (await connection.execute(select(_ITEMS.c.name))).scalars().all() == ["a"]
    async with engine.connect() as connection:
        assert (await connection.execute(select(_ITEMS.c.name))).scalars().all() == ["a"]
