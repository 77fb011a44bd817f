"""Database engine and sessions: SQLite (WAL, busy timeout, one writer) or PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from inbox.sqlite_one_trip import one_trip_dbapi
from inbox.wal_checkpoint import SAFETY_PAGES, WalCheckpointer

SQLITE_BUSY_TIMEOUT_MS = 30_000
_READ_ONLY = "inbox_read_only"  # execution option: this connection's transactions only read
_NO_BEGIN = "inbox_no_begin"  # execution option (SQLite): no transaction, each statement stands alone
# PostgreSQL: a pooled connection idle for longer than this is pinged before use (see _configure_postgres).
PING_AFTER_IDLE_S: Final = 10.0
_IDLE_SINCE: Final = "inbox_idle_since"  # connection record info: monotonic time it went back to the pool


class DatabaseError(RuntimeError):
    """The database cannot be used (bad URL, unreachable, not migrated)."""


def normalise_url(url: str) -> str:
    """Pick the async driver for plain ``sqlite://`` and ``postgresql://`` URLs."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql" and parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend not in ("sqlite", "postgresql"):
        raise DatabaseError(f"unsupported database '{backend}': use sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for PostgreSQL and for an in-memory database."""
    parsed = make_url(normalise_url(url))
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
        return None
    return name


def create_engine(url: str, *, autocheckpoint: int | None = None, **kwargs: Any) -> AsyncEngine:
    """Create an async engine with the settings each backend needs.

    ``autocheckpoint`` (SQLite): the WAL size in pages at which a committing connection checkpoints
    itself; None keeps SQLite's 1,000 (see ``inbox.wal_checkpoint``).
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        # Each statement in one trip to aiosqlite's thread, not four (see inbox.sqlite_one_trip).
        engine = create_async_engine(url, connect_args=connect_args, module=one_trip_dbapi(), **kwargs)
        _configure_sqlite(engine, autocheckpoint)
        return engine
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _configure_postgres(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine, autocheckpoint: int | None) -> None:
    """WAL for concurrent readers, a busy timeout, and BEGIN IMMEDIATE so writers queue up
    instead of failing with 'database is locked' when a read transaction later writes."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if autocheckpoint is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
        cursor.close()

    # A rollback is a round trip to aiosqlite's thread, and SQLAlchemy makes two when a session ends (the
    # session's, then the pool's on return). sqlite3's rollback() does nothing outside a transaction, so
    # ask first: the answer is read from the connection without the round trip.
    dialect = engine.sync_engine.dialect
    rollback = dialect.do_rollback

    def _rollback_if_open(dbapi_connection: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            rollback(dbapi_connection)

    dialect.do_rollback = _rollback_if_open  # type: ignore[method-assign]

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get(_NO_BEGIN):
            return  # the driver is in autocommit mode (see _on_connect): a lone read is atomic by itself
        # A reader takes no write lock: in WAL mode it then runs beside the writer and other readers.
        conn.exec_driver_sql("BEGIN" if options.get(_READ_ONLY) else "BEGIN IMMEDIATE")


def _configure_postgres(engine: AsyncEngine) -> None:
    """Check each pooled connection before use, paying the ping only when the connection sat idle.

    SQLAlchemy's ``pool_pre_ping`` costs three round trips at every checkout (asyncpg's ping is BEGIN,
    an empty query, ROLLBACK), and a command checks out twice. A connection the server closed (restart,
    ``pg_terminate_backend``) is known to asyncpg without asking: the socket saw the end. Only one that
    sat idle for a while may have died silently (a firewall, a NAT timeout), so only that one is pinged.
    A failed check makes the pool discard the connection and open another.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed this pooled connection")
        if time.monotonic() - record.info.get(_IDLE_SINCE, 0.0) <= PING_AFTER_IDLE_S:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc


def is_postgres(engine: AsyncEngine) -> bool:
    """True when the engine talks to PostgreSQL (which supports SKIP LOCKED)."""
    return engine.dialect.name == "postgresql"


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


class Database:
    """An engine plus its session factory: the one handle the core passes around."""

    def __init__(self, url: str, *, background_checkpoints: bool = False, **engine_kwargs: Any) -> None:
        """``background_checkpoints``: on a SQLite file, checkpoint the WAL on a thread of its own
        (``inbox.wal_checkpoint``) rather than in whichever commit fills it; the long-lived ``App`` asks."""
        self.url = normalise_url(url)
        path = sqlite_file(self.url) if background_checkpoints else None
        self.checkpointer = WalCheckpointer(path) if path is not None else None
        autocheckpoint = SAFETY_PAGES if self.checkpointer is not None else None
        self.engine = create_engine(self.url, autocheckpoint=autocheckpoint, **engine_kwargs)
        self.sessions = session_factory(self.engine)
        if self.checkpointer is not None:
            self.checkpointer.start()

    @property
    def is_postgres(self) -> bool:
        """True on PostgreSQL."""
        return is_postgres(self.engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction, committed on success and rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads (reports): on SQLite it neither waits for nor blocks the writer."""
        async with self.sessions() as session:
            await session.connection(execution_options={_READ_ONLY: True})
            yield session

    @asynccontextmanager
    async def lone_reads(self) -> AsyncIterator[AsyncSession]:
        """A session whose statements are reads that each stand alone: no transaction is opened around
        them (each sees the latest commit), so a single lookup costs no BEGIN statement on SQLite, and
        no BEGIN and ROLLBACK round trips on PostgreSQL. Never write through it."""
        async with self.sessions() as session:
            options = {"isolation_level": "AUTOCOMMIT"} if self.is_postgres else {_NO_BEGIN: True}
            await session.connection(execution_options=options)
            yield session

    async def dispose(self) -> None:
        """Stop the checkpoint thread, if any, and close every pooled connection."""
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)
        await self.engine.dispose()
