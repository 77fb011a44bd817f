"""Item 4: a process SIGKILLed in the middle of an ingest batch (rows written, commit not yet made)
loses nothing and duplicates nothing: after a restart (a real `inbox run`) every event of the file is
stored exactly once and the channel's cursor is the end of the file.

The batch and the cursor are written in one transaction: the kill rolls both back, so the restarted
poller reads the batch again from the last committed cursor.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from inbox.db import Database
from inbox.settings import load_settings
from tests.reliability.support import (
    JsonlFeed,
    child_env,
    inbox_cli,
    start_run,
    stop_run,
    wait_until,
)

EVENTS = 1000
BATCH = 200

CONFIG = """
[database]
url = "{url}"

[outbox]
idle_interval = "0.1s"

[[members]]
name = "alice"
role = "admin"

[[channels]]
name = "website"
type = "jsonl"
inbound_path = "in.jsonl"
poll_interval = 0.1
max_batch = {batch}
"""


def stored(config: Path) -> tuple[int, int, str | None]:
    """(messages, distinct external ids, cursor) as the database holds them now."""

    async def read() -> tuple[int, int, str | None]:
        db = Database(load_settings(config, environ={}).database.url)
        try:
            async with db.sessions() as session:
                total, distinct = (
                    await session.execute(text("SELECT count(*), count(DISTINCT external_id) FROM messages"))
                ).one()
                cursor = await session.scalar(text("SELECT cursor FROM channels WHERE name = 'website'"))
        finally:
            await db.dispose()
        return int(total), int(distinct), cursor

    return asyncio.run(read())


def test_sigkill_inside_an_ingest_batch_then_restart_stores_every_event_once(
    fresh_db_url: str,
    tmp_path: Path,
) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text(CONFIG.format(url=fresh_db_url, batch=BATCH))
    feed = JsonlFeed(tmp_path / "in.jsonl")
    feed.append(EVENTS)
    assert inbox_cli("-c", str(config), "db", "upgrade", cwd=tmp_path).returncode == 0

    child = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.ingest_child", str(config), "website", "--block-at", "3"],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: (tmp_path / "blocked").exists() or child.poll() is not None, timeout=30)
        assert child.poll() is None, child.stdout.read() if child.stdout else ""
        assert (tmp_path / "blocked").read_text() == str(BATCH)  # the third batch is written, uncommitted
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    # Two batches were committed with their cursor; the third died with its transaction.
    total, distinct, cursor = stored(config)
    assert (total, distinct) == (2 * BATCH, 2 * BATCH)
    with (tmp_path / "in.jsonl").open("rb") as fh:
        offsets = [len(line) for line in fh]
    assert cursor == str(sum(offsets[: 2 * BATCH]))

    worker = start_run(config)
    try:
        wait_until(lambda: stored(config)[0] >= EVENTS, timeout=30)
        assert worker.poll() is None
    finally:
        log = stop_run(worker)
    total, distinct, cursor = stored(config)
    assert (total, distinct) == (EVENTS, EVENTS), log
    assert cursor == str((tmp_path / "in.jsonl").stat().st_size)
    ids = {json.loads(line)["external_id"] for line in (tmp_path / "in.jsonl").read_text().splitlines()}
    assert len(ids) == EVENTS
