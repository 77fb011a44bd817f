"""SQLite WAL checkpoints on a thread of their own: the log is copied back without a writer paying."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from inbox.db import Database, sqlite_file
from inbox.wal_checkpoint import SAFETY_PAGES, WalCheckpointer


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (real time) until ``condition`` holds: the checkpoint thread runs on its own schedule."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def _autocheckpoint(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(text("PRAGMA wal_autocheckpoint")))


async def _write_pages(db: Database, rows: int) -> None:
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, body TEXT)"))
        for start in range(0, rows, 100):
            await session.execute(text("INSERT INTO filler (body) VALUES (:body)"),
                                  [{"body": "x" * 2000} for _ in range(start, min(rows, start + 100))])


async def test_the_log_is_copied_back_by_the_thread_not_by_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    db = Database(f"sqlite:///{path}", background_checkpoints=True)
    try:
        assert db.checkpointer is not None and db.checkpointer.running
        # The writers' own threshold is only a safety net now, far above what one burst writes.
        assert await _autocheckpoint(db) == SAFETY_PAGES
        await _write_pages(db, 1500)  # about 750 pages of 4 KiB: under the safety net, over nothing
        checkpointer = db.checkpointer
        await _until(lambda: checkpointer.pages_copied >= 700)
        assert checkpointer.last is not None
        _busy, logged, copied = checkpointer.last
        assert logged == copied >= 700  # the thread copied the whole log: no writer had to
    finally:
        await db.dispose()
    assert not db.checkpointer.running


async def test_without_the_thread_sqlite_keeps_its_own_checkpoints(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'inbox.db'}")
    try:
        assert db.checkpointer is None
        assert await _autocheckpoint(db) == 1000  # SQLite's default
    finally:
        await db.dispose()


def test_only_a_sqlite_file_gets_a_thread(tmp_path: Path) -> None:
    assert sqlite_file(f"sqlite:///{tmp_path / 'a.db'}") == str(tmp_path / "a.db")
    assert sqlite_file("sqlite+aiosqlite:///relative.db") == "relative.db"
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql://postgres@127.0.0.1:5432/test") is None


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "not-yet.db"
    checkpointer = WalCheckpointer(str(path))
    assert checkpointer.checkpoint() is None
    assert not path.exists()
    assert checkpointer.passes == 0


async def test_a_failing_checkpoint_is_logged_once_and_the_thread_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not a SQLite file" * 100)
    checkpointer = WalCheckpointer(str(path), interval=0.005)
    caplog.set_level(logging.WARNING, logger="inbox.wal_checkpoint")
    checkpointer.start()
    try:
        await _until(lambda: checkpointer.failures >= 3)
        assert checkpointer.running
    finally:
        checkpointer.stop()
    assert not checkpointer.running
    warnings = [r for r in caplog.records if r.name == "inbox.wal_checkpoint"]
    assert len(warnings) == 1
    assert "not-a-database.db" in warnings[0].getMessage()
    assert "the writers' own checkpoints still run" in warnings[0].getMessage()
    # Once the file is a database again, the next pass works.
    path.unlink()
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").close()
    assert checkpointer.checkpoint() is not None
    checkpointer.stop()


async def test_an_unchanged_log_is_not_checkpointed_again(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    db = Database(f"sqlite:///{path}")  # no thread: the test drives the ticks itself
    checkpointer = WalCheckpointer(str(path))
    try:
        await _write_pages(db, 200)
        checkpointer.tick()
        assert (checkpointer.passes, checkpointer.skipped) == (1, 0)
        assert checkpointer.last is not None and checkpointer.last[1] == checkpointer.last[2] > 0
        checkpointer.tick()  # nothing committed since: a stat, no checkpoint
        checkpointer.tick()
        assert (checkpointer.passes, checkpointer.skipped) == (1, 2)
        await _write_pages(db, 10)
        checkpointer.tick()  # a commit changed the log: checkpointed again
        assert (checkpointer.passes, checkpointer.skipped) == (2, 2)
    finally:
        checkpointer.stop()
        await db.dispose()
