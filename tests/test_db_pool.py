"""PostgreSQL's pooled connections: checked before use without a round trip unless they sat idle."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

import inbox.db
from inbox.db import Database


async def backend_pid(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(text("SELECT pg_backend_pid()")))


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every ping the pool sends, counted on the driver adapter (the real ping still runs)."""
    seen: list[str] = []
    real = AsyncAdapt_asyncpg_connection.ping

    def counted(self: Any) -> None:
        seen.append("ping")
        real(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    yield seen


@pytest.mark.postgres
async def test_a_connection_in_steady_use_is_not_pinged_and_an_idle_one_is(
    postgres_schema_url: str, pings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(postgres_schema_url, pool_size=1, max_overflow=0)
    try:
        first = await backend_pid(db)
        for _ in range(5):
            assert await backend_pid(db) == first  # the same pooled connection, no ping needed
        assert pings == []
        monkeypatch.setattr(inbox.db, "PING_AFTER_IDLE_S", 0.0)  # every connection counts as idle now
        await asyncio.sleep(0.01)
        assert await backend_pid(db) == first
        assert pings == ["ping"]
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_a_connection_the_server_closed_is_replaced_without_an_error(
    postgres_schema_url: str, pings: list[str]
) -> None:
    db, admin = Database(postgres_schema_url, pool_size=1, max_overflow=0), Database(postgres_schema_url)
    try:
        first = await backend_pid(db)
        async with admin.sessions() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        while True:  # the server has let the connection go
            async with admin.sessions() as session:
                if not await session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                            {"pid": first}):
                    break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the event loop reads the server's goodbye: no query needed to know
        second = await backend_pid(db)
        assert second != first
        assert pings == []  # known closed without asking the server
    finally:
        await db.dispose()
        await admin.dispose()


@pytest.mark.postgres
async def test_a_connection_that_fails_its_ping_is_replaced(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(postgres_schema_url, pool_size=1, max_overflow=0)
    try:
        first = await backend_pid(db)
        failed: list[int] = []
        real = AsyncAdapt_asyncpg_connection.ping

        def dead_once(self: Any) -> None:  # the first: as a connection a firewall dropped silently answers
            if not failed:
                failed.append(1)
                raise ConnectionResetError("connection reset by peer")
            real(self)

        monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", dead_once)
        monkeypatch.setattr(inbox.db, "PING_AFTER_IDLE_S", 0.0)
        await asyncio.sleep(0.01)
        second = await backend_pid(db)
        assert failed == [1] and second != first
    finally:
        await db.dispose()
