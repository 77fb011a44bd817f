"""Schema migrations: run Alembic from the app, and refuse to start on a database that is not at head."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

import migrations
from inbox.db import Database, DatabaseError, normalise_url
from inbox.db_types import UTCDateTime
from inbox.models import metadata
from inbox.settings import mask_url

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
ALEMBIC_INI = MIGRATIONS_DIR / "alembic.ini"

# Alembic publishes the running environment through module-level proxies (alembic.context,
# alembic.op), so two commands running at once in one process would see each other's state.
_command_lock = threading.Lock()


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render the project's own column types as importable code in revision files."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("import inbox.db_types")
        return "inbox.db_types.UTCDateTime()"
    return False


def context_options(dialect_name: str) -> dict[str, Any]:
    """Alembic context options used by env.py and by the schema comparison in the tests."""
    return {
        "target_metadata": metadata,
        "compare_type": True,
        "compare_server_default": True,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        "render_as_batch": dialect_name == "sqlite",
        # SQLite runs DDL inside transactions too, so a failed upgrade leaves nothing behind.
        "transactional_ddl": True,
        "render_item": render_item,
    }


def alembic_config(url: str) -> Config:
    """An Alembic config for the packaged migrations and this database, usable from any directory."""
    config = Config(str(ALEMBIC_INI), attributes={"url": url, "configure_logger": False})
    # alembic.ini says %(here)s already; set it again so a config copied elsewhere still works.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of Saluran."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:
        raise DatabaseError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _known_revision(revision: str) -> bool:
    try:
        return ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(revision) is not None
    except (CommandError, RevisionError):
        return False


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (all of it runs in one transaction)."""
    await _run_command(url, command.upgrade, revision)


async def downgrade(url: str, revision: str) -> None:
    """Migrate the database down to ``revision`` ('base' drops every table)."""
    await _run_command(url, command.downgrade, revision)


async def _run_command(url: str, fn: Callable[[Config, str], None], revision: str) -> None:
    config = alembic_config(normalise_url(url))

    def run() -> None:
        with _command_lock:
            fn(config, revision)

    # Alembic's API is synchronous and env.py starts its own event loop, which cannot run
    # inside ours: a worker thread gives it a thread of its own and keeps our loop responsive.
    try:
        await asyncio.to_thread(run)
    except (CommandError, RevisionError, SQLAlchemyError, OSError) as exc:
        raise DatabaseError(f"migrating {mask_url(url)} to {revision} failed: {exc}") from exc


def _read_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    try:
        async with db.engine.connect() as connection:
            return await connection.run_sync(_read_revision)
    except (CommandError, SQLAlchemyError, OSError) as exc:
        raise DatabaseError(f"cannot read the schema revision of {mask_url(db.url)}: {exc}") from exc


async def ensure_migrated(db: Database, *, config_path: str | Path | None = None) -> None:
    """Raise DatabaseError unless the database is at the head revision."""
    current = await current_revision(db)
    head = head_revision()
    if current == head:
        return
    where = mask_url(db.url)
    if current is not None and not _known_revision(current):
        raise DatabaseError(
            f"database at {where} is at revision {current}, which this version of Saluran does not "
            f"know (head is {head}): run a newer Saluran, or downgrade the database with the one "
            "that migrated it"
        )
    hint = "inbox db upgrade" + (f" -c {config_path}" if config_path is not None else "")
    raise DatabaseError(
        f"database at {where} is not migrated (at {current or '<none>'}, head is {head}): run `{hint}`"
    )
