"""Scratch databases for the scenarios, the bench configuration, and a raw bulk writer for setup data.

Every scenario gets a fresh database migrated with the project's Alembic migrations (the schema
``inbox run`` uses): a file under the work folder on SQLite, a new database next to the configured one
on PostgreSQL (dropped afterwards). Setup rows are written with the raw drivers (``sqlite3``,
asyncpg ``COPY``), never timed, and PostgreSQL tables are ANALYZEd afterwards as autovacuum would;
SQLite gets no ANALYZE because ``inbox`` never runs one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy.engine import make_url

from inbox import migrate
from inbox.db import normalise_url
from inbox.models import metadata
from inbox.settings import Settings, settings_from_dict

POSTGRES_ENV: Final = "INBOX_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
CHANNELS: Final = ("social", "chat", "mail", "contact")
MEMBERS: Final = (
    ("alice", "admin", 1001),
    ("budi", "lead", 1002),
    ("citra", "agent", 1003),
    ("dewi", "agent", 1004),
    ("eko", "agent", 1005),
)
_JSON_COLUMNS: Final = {
    (table.name, column.name)
    for table in metadata.sorted_tables
    for column in table.columns
    if column.type.__class__.__name__ == "JSON"
}


def postgres_admin_url(explicit: str | None = None) -> str:
    """The PostgreSQL server to make scratch databases on: ``--postgres-url``, then the environment."""
    raw = (
        explicit
        or os.environ.get(POSTGRES_ENV)
        or os.environ.get("INBOX_TEST_POSTGRES_URL")
        or DEFAULT_POSTGRES
    )
    return normalise_url(raw)


async def _admin(url: str, sql: str) -> Any:
    import asyncpg

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def postgres_version(url: str) -> str | None:
    """The server's version, or None when it cannot be reached."""
    try:
        return str(await _admin(url, "SHOW server_version"))
    except Exception:
        return None


@dataclass
class Scratch:
    """One scenario's database: its URL (async driver) and how to throw it away."""

    backend: str
    url: str
    admin_url: str | None = None
    path: Path | None = None

    @classmethod
    async def create(cls, backend: str, name: str, workdir: Path, admin_url: str | None) -> Scratch:
        """A new, migrated, empty database."""
        if backend == "sqlite":
            path = workdir / f"{name}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            scratch = cls(backend, normalise_url(f"sqlite:///{path}"), path=path)
        else:
            assert admin_url is not None
            db_name = f"saluran_bench_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
            await _admin(admin_url, f'CREATE DATABASE "{db_name}"')
            scratch = cls(
                backend,
                make_url(admin_url).set(database=db_name).render_as_string(hide_password=False),
                admin_url=admin_url,
            )
        await migrate.upgrade(scratch.url)
        return scratch

    async def drop(self) -> None:
        """Remove the database (its files on SQLite)."""
        if self.path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        elif self.admin_url is not None:
            name = make_url(self.url).database
            await _admin(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- configuration ---------------------------------------------------------------------------------------


def bench_config(url: str, workdir: Path, *, calendar: bool = False, **extra: Any) -> dict[str, Any]:
    """The bench team: five members, four customer channels, a team log, two SLA policies.

    ``standard`` counts business hours when ``calendar`` is set (the report scenario), wall-clock time
    otherwise (so that every due timer fires at once in the timer scenario).
    """
    standard: dict[str, Any] = {
        "name": "standard",
        "first_response": "1h",
        "next_response": "2h",
        "resolution": "2d",
        "warn_at": 0.75,
        "ladder": [
            {"after": "30m", "notify": ["assignee"]},
            {"after": "2h", "notify": ["leads"], "raise_priority": "high"},
        ],
    }
    if calendar:
        standard["calendar"] = "office"
    config: dict[str, Any] = {
        "database": {"url": url},
        "general": {"timezone": "Asia/Jakarta", "language": "en"},
        "members": [{"name": n, "role": r, "telegram_id": t} for n, r, t in MEMBERS],
        "channels": [
            *(
                {"name": name, "type": "jsonl", "outbound_path": str(workdir / f"{name}-out.jsonl")}
                for name in CHANNELS
            ),
            {"name": "team", "type": "teamlog", "path": str(workdir / "team.jsonl")},
        ],
        "team_chats": [{"name": "ops", "channel": "team", "chat_id": "ops"}],
        "sla": {
            "calendars": {"office": {"timezone": "Asia/Jakarta", "hours": {"weekdays": ["09:00-17:00"]}}},
            "policies": [
                {
                    "name": "press",
                    "tags": ["press"],
                    "first_response": "15m",
                    "resolution": "4h",
                    "ladder": [{"after": "30m", "notify": ["leads"], "urgent": True}],
                },
                standard,
            ],
        },
    }
    config.update(extra)
    return config


def bench_settings(
    url: str, workdir: Path, *, calendar: bool = False, environ: Mapping[str, str] | None = None, **extra: Any
) -> Settings:
    """``bench_config`` validated."""
    return settings_from_dict(bench_config(url, workdir, calendar=calendar, **extra), environ=environ or {})


# --- raw bulk writes -------------------------------------------------------------------------------------


def columns_of(table: str) -> list[str]:
    """Column names of a table, in schema order."""
    return [c.name for c in metadata.tables[table].columns]


def writable_columns(table: str) -> list[str]:
    """``columns_of`` without the generated columns, which the database computes and refuses to be given."""
    return [c.name for c in metadata.tables[table].columns if c.computed is None]


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # SQLAlchemy's storage format for SQLite DATETIME, in UTC without a zone (inbox.db_types).
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


class BulkWriter:
    """Writes row dicts with the raw driver; missing columns are NULL, JSON columns are serialised."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None
        self.tables: set[str] = set()

    async def __aenter__(self) -> BulkWriter:
        if self.backend == "sqlite":
            path = make_url(self.url).database
            assert path is not None
            self._sqlite = sqlite3.connect(path, isolation_level=None)
            self._sqlite.execute("PRAGMA journal_mode=WAL")
            self._sqlite.execute("PRAGMA synchronous=OFF")  # setup data only: nothing to lose
        else:
            import asyncpg

            parsed = make_url(self.url)
            self._pg = await asyncpg.connect(
                host=parsed.host,
                port=parsed.port or 5432,
                user=parsed.username,
                password=parsed.password,
                database=parsed.database,
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            if exc[0] is None:
                for table in sorted(self.tables):
                    # Ids were given explicitly: move the sequence past them, as inserts by the app expect.
                    await self._pg.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f'GREATEST((SELECT max(id) FROM "{table}"), 1))'
                    )
                    await self._pg.execute(f'ANALYZE "{table}"')
            await self._pg.close()

    async def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert the rows in one transaction."""
        if not rows:
            return
        names = columns_of(table)
        used = [n for n in names if any(n in row for row in rows[:50])]
        json_cols = {n for n in used if (table, n) in _JSON_COLUMNS}
        if "id" in used:
            self.tables.add(table)
        if self._sqlite is not None:
            records = [
                tuple(_sqlite_value(json.dumps(row.get(n)) if n in json_cols else row.get(n)) for n in used)
                for row in rows
            ]
            sql = f'INSERT INTO "{table}" ({", ".join(used)}) VALUES ({", ".join("?" for _ in used)})'
            self._sqlite.execute("BEGIN")
            self._sqlite.executemany(sql, records)
            self._sqlite.execute("COMMIT")
        else:
            records = [
                tuple(json.dumps(row.get(n)) if n in json_cols else row.get(n) for n in used) for row in rows
            ]
            await self._pg.copy_records_to_table(table, records=records, columns=used)

    async def insert_all(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Insert several tables' rows, parents first (the order of the mapping)."""
        for table, rows in tables.items():
            await self.insert(table, rows)


def table_order(names: Iterable[str]) -> list[str]:
    """Table names sorted parents first, as foreign keys need."""
    order = [t.name for t in metadata.sorted_tables]
    return sorted(names, key=order.index)
