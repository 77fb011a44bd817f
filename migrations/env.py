"""Alembic environment: URL and metadata come from the app; migrations run on the async drivers.

The target metadata and the autogenerate options (type and server-default comparison, batch mode
on SQLite, rendering of inbox.db_types.UTCDateTime) live in inbox.migrate.context_options, so the
migration test compares the schema exactly as autogenerate does."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Coroutine
from logging.config import fileConfig
from pathlib import Path
from typing import Any

from alembic import context
from alembic.util import CommandError
from sqlalchemy import event, pool, text
from sqlalchemy.engine import Connection, make_url

from inbox.db import create_engine, normalise_url
from inbox.migrate import context_options
from inbox.settings import DATABASE_URL_ENV, DEFAULT_CONFIG_PATH, ConfigError, load_settings, mask_url

CONFIG_ENV = "INBOX_CONFIG"
# Any constant works as long as every process that migrates the database uses the same one.
POSTGRES_MIGRATION_LOCK = 0x5A1_0DB

config = context.config

# inbox.migrate passes configure_logger=False: the app's own logging must not be replaced.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    """The URL given by the caller, else the one in the settings file, else $INBOX_DATABASE_URL."""
    given = config.attributes.get("url")
    if given:
        return str(given)
    path = context.get_x_argument(as_dictionary=True).get("config") or os.environ.get(CONFIG_ENV)
    # A missing default file is not an error (the URL may come from the environment);
    # a file the user named is.
    if path or Path(DEFAULT_CONFIG_PATH).is_file():
        try:
            return load_settings(path or DEFAULT_CONFIG_PATH).database.url
        except ConfigError as exc:
            raise CommandError(f"cannot read the settings: {exc}") from None
    if os.environ.get(DATABASE_URL_ENV):
        return os.environ[DATABASE_URL_ENV]
    raise CommandError(
        f"no database URL: pass -x config=inbox.toml, set {CONFIG_ENV}, or set {DATABASE_URL_ENV}"
    )


def run_migrations_offline(url: str) -> None:
    """Emit the migration SQL to stdout (`alembic upgrade head --sql`) without connecting."""
    url = normalise_url(url)
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **context_options(make_url(url).get_backend_name()),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations in one transaction on an open (sync-facade) connection."""
    dialect = connection.dialect.name
    context.configure(connection=connection, **context_options(dialect))
    with context.begin_transaction():
        if dialect == "postgresql":
            # Several workers may run `upgrade` at start; the lock makes the later ones wait and
            # then find the schema already at head instead of racing to create the same tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK})
        context.run_migrations()
        if dialect == "sqlite":
            _check_foreign_keys(connection)


def _check_foreign_keys(connection: Connection) -> None:
    """Foreign keys are off while migrating SQLite (batch mode drops and recreates tables), so
    check them before commit, as SQLite's documented ALTER TABLE procedure does."""
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        sample = ", ".join(f"{row[0]} row {row[1]} -> {row[2]}" for row in problems[:5])
        raise CommandError(f"migration broke {len(problems)} foreign key(s): {sample}")


async def run_async_migrations(url: str) -> None:
    """Connect with the app's async engine settings and run the migrations through run_sync."""
    engine = create_engine(url, poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":

        # Registered after the app's own connect hook, so it overrides its foreign_keys=ON.
        # PRAGMA foreign_keys is ignored inside a transaction, hence at connect time.
        @event.listens_for(engine.sync_engine, "connect")
        def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=OFF")
            cursor.close()

    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_coroutine(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion, even when called synchronously from inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    # A second loop cannot run in this thread; run it in a helper thread and wait for it.
    # (inbox.migrate avoids this by calling Alembic from a worker thread in the first place.)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="alembic") as executor:
        executor.submit(asyncio.run, coro).result()


def main() -> None:
    """Entry point run by Alembic for every command."""
    url = database_url()
    if context.is_offline_mode():
        run_migrations_offline(url)
        return
    try:
        run_coroutine(run_async_migrations(url))
    except OSError as exc:
        raise CommandError(f"cannot connect to {mask_url(url)}: {exc}") from None


main()
