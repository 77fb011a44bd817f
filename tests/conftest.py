"""Shared fixtures: a fresh database per test on SQLite and (when configured) PostgreSQL,
a fake clock, and a guard that fails any test that tries to reach the network."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from inbox.clock import FakeClock
from inbox.db import Database, normalise_url
from inbox.logs import SDK_LOGGERS
from inbox.models import metadata

POSTGRES_ENV = "INBOX_TEST_POSTGRES_URL"
BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get(POSTGRES_ENV) else [])


# --- no network ----------------------------------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _allowed(address):
        raise RuntimeError(f"test tried to reach the network: {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _allowed(address):
        raise RuntimeError(f"test tried to reach the network: {address!r}")
    return _real_connect_ex(self, address)


setattr(socket.socket, "connect", _guarded_connect)  # noqa: B010  (mypy rejects assigning methods)
setattr(socket.socket, "connect_ex", _guarded_connect_ex)  # noqa: B010


# --- logging left as each test found it -------------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put the root and SDK loggers back after each test: ``inbox`` commands run in-process configure
    logging with a handler on the test's captured stderr, which pytest closes; left installed, it made
    later log lines (aiosmtpd's thread at teardown) print "--- Logging error ---" tracebacks."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    sdks = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
            for name in SDK_LOGGERS}
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, (handlers, propagate) in sdks.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate


# --- PostgreSQL: one scratch database per test session ---------------------------------------


def postgres_admin_url() -> str:
    """The configured PostgreSQL URL (async driver)."""
    return normalise_url(os.environ[POSTGRES_ENV])


async def _exec_admin(sql: str) -> None:
    import asyncpg

    url = make_url(postgres_admin_url())
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_scratch_postgres(prefix: str = "saluran_test") -> str:
    """Create an empty database next to the configured one and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_exec_admin(f'CREATE DATABASE "{name}"'))
    return make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)


def drop_scratch_postgres(url: str) -> None:
    """Drop a database made by create_scratch_postgres."""
    name = make_url(url).database
    asyncio.run(_exec_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL database with the models' schema, shared by the session's tests."""
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"{POSTGRES_ENV} is not set")
    url = create_scratch_postgres()

    async def create() -> None:
        database = Database(url)
        async with database.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await database.dispose()

    asyncio.run(create())
    yield url
    drop_scratch_postgres(url)


async def _truncate(database: Database) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with database.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Any, request: pytest.FixtureRequest) -> str:
    """URL of an empty database with the schema, on the test's backend."""
    if backend == "postgres":
        url: str = request.getfixturevalue("postgres_schema_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}"


@pytest.fixture
async def db(db_url: str, backend: str) -> AsyncIterator[Database]:
    """A Database with a fresh schema on the test's backend."""
    database = Database(db_url)
    if backend == "postgres":
        await _truncate(database)
    else:
        async with database.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting Monday 2026-11-02 09:00 UTC."""
    return FakeClock()
