"""The migrations build exactly the models' schema on SQLite and PostgreSQL, and the app refuses
a database that is not at head."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from inbox.db import SQLITE_BUSY_TIMEOUT_MS, Database, DatabaseError
from inbox.migrate import (
    MIGRATIONS_DIR,
    alembic_config,
    context_options,
    current_revision,
    downgrade,
    ensure_migrated,
    head_revision,
    upgrade,
)
from inbox.models import metadata
from tests.conftest import create_scratch_postgres, drop_scratch_postgres

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables at all) on the test's backend."""
    if backend == "postgres":
        url = create_scratch_postgres("saluran_migrate")
        yield url
        drop_scratch_postgres(url)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}"


async def _run_sync(url: str, fn: Any) -> Any:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await db.dispose()


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts=context_options(conn.dialect.name))
    return list(compare_metadata(context, metadata))


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_upgrade_builds_exactly_the_models_schema(empty_url: str) -> None:
    await upgrade(empty_url)

    assert await _run_sync(empty_url, _diff) == []
    assert await _run_sync(empty_url, _tables) == set(metadata.tables) | {"alembic_version"}


async def test_downgrade_to_base_then_upgrade_again(empty_url: str) -> None:
    await upgrade(empty_url)
    await downgrade(empty_url, "base")

    assert await _run_sync(empty_url, _tables) <= {"alembic_version"}
    db = Database(empty_url)
    try:
        assert await current_revision(db) is None
    finally:
        await db.dispose()

    await upgrade(empty_url, "head")
    assert await _run_sync(empty_url, _diff) == []


async def test_ensure_migrated_refuses_an_empty_database_then_passes(empty_url: str, backend: str) -> None:
    if backend == "postgres":
        # Trust auth ignores the password; it is there to prove the message masks it.
        empty_url = make_url(empty_url).set(password="s3cret").render_as_string(hide_password=False)
    db = Database(empty_url)
    try:
        with pytest.raises(DatabaseError) as info:
            await ensure_migrated(db, config_path="inbox.toml")
        message = str(info.value)
        assert "is not migrated (at <none>, head is 0001)" in message
        assert "run `inbox db upgrade -c inbox.toml`" in message
        assert "s3cret" not in message

        await upgrade(empty_url)
        await ensure_migrated(db)
        assert await current_revision(db) == head_revision() == "0001"
    finally:
        await db.dispose()


async def test_ensure_migrated_refuses_a_revision_it_does_not_know(empty_url: str) -> None:
    await upgrade(empty_url)
    db = Database(empty_url)
    try:
        async with db.transaction() as session:
            await session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(DatabaseError, match="at revision 9999, which this version of Saluran does not"):
            await ensure_migrated(db)
    finally:
        await db.dispose()


async def test_failed_upgrade_leaves_nothing_behind(empty_url: str) -> None:
    # A table in the way makes the upgrade fail part-way; the whole upgrade is one transaction.
    db = Database(empty_url)
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE deliveries (id INTEGER PRIMARY KEY)"))
    finally:
        await db.dispose()

    with pytest.raises(DatabaseError, match="failed"):
        await upgrade(empty_url)

    assert await _run_sync(empty_url, _tables) <= {"deliveries", "alembic_version"}
    db = Database(empty_url)
    try:
        assert await current_revision(db) is None
    finally:
        await db.dispose()


async def test_unknown_revision_is_a_database_error(empty_url: str) -> None:
    with pytest.raises(DatabaseError, match="to nope failed"):
        await upgrade(empty_url, "nope")


async def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'pragmas.db'}")
    try:
        async with db.engine.connect() as conn:
            journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
            foreign_keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
    finally:
        await db.dispose()
    assert journal == "wal"
    assert timeout == SQLITE_BUSY_TIMEOUT_MS
    assert foreign_keys == 1


def test_migrations_are_found_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = alembic_config("sqlite:///x.db")
    assert Path(config.get_main_option("script_location") or "") == MIGRATIONS_DIR
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert head_revision() == "0001"


def test_offline_sql_renders_for_both_dialects() -> None:
    for url in ("sqlite:///offline.db", "postgresql://u@127.0.0.1/db"):
        config = alembic_config(url)
        config.output_buffer = io.StringIO()
        command.upgrade(config, "head", sql=True)
        sql = config.output_buffer.getvalue()
        assert "CREATE TABLE channels" in sql
        assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in sql


async def test_env_reads_the_url_from_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INBOX_DATABASE_URL", raising=False)
    monkeypatch.delenv("INBOX_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./inbox.toml here
    url = f"sqlite+aiosqlite:///{tmp_path / 'from_settings.db'}"
    settings = tmp_path / "custom.toml"
    settings.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")

    config = alembic_config(url)
    del config.attributes["url"]
    config.cmd_opts = argparse.Namespace(x=[f"config={settings}"])  # as `alembic -x config=...`
    # Called synchronously from inside the test's running loop: env.py must cope with that too.
    command.upgrade(config, "head")

    db = Database(url)
    try:
        await ensure_migrated(db)
    finally:
        await db.dispose()


async def test_env_falls_back_to_the_url_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'from_env.db'}"
    monkeypatch.delenv("INBOX_CONFIG", raising=False)
    monkeypatch.setenv("INBOX_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    config = alembic_config(url)
    del config.attributes["url"]
    await asyncio.to_thread(command.upgrade, config, "head")

    db = Database(url)
    try:
        assert await current_revision(db) == "0001"
    finally:
        await db.dispose()


def test_concurrent_upgrades_from_separate_processes(empty_url: str) -> None:
    # Workers started together all run `upgrade`; the PostgreSQL advisory lock (and SQLite's
    # BEGIN IMMEDIATE) make the later ones wait and find the schema already at head.
    script = "import asyncio, sys; from inbox.migrate import upgrade; asyncio.run(upgrade(sys.argv[1]))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command_line = [sys.executable, "-c", script, empty_url]
    workers = [
        subprocess.Popen(command_line, env=env, stderr=subprocess.PIPE, text=True) for _ in range(3)
    ]
    errors = [worker.communicate(timeout=60)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], errors

    async def check() -> None:
        assert await _run_sync(empty_url, _diff) == []
        db = Database(empty_url)
        try:
            await ensure_migrated(db)
        finally:
            await db.dispose()

    asyncio.run(check())
