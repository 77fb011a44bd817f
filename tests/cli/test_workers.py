"""Several `inbox run` processes: refused on SQLite; on PostgreSQL a killed worker's work is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_ENV, create_scratch_postgres, drop_scratch_postgres

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
[database]
url = "{url}"

[runtime]
lease_ttl = "{ttl}"

[outbox]
idle_interval = "0.2s"
lease = "3s"

[[members]]
name = "alice"
role = "admin"

[[channels]]
name = "website"
type = "jsonl"
inbound_path = "in.jsonl"
outbound_path = "out.jsonl"
poll_interval = 0.2
"""


def inbox(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "inbox.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start(config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INBOX_LOG_LEVEL": "INFO"}
    return subprocess.Popen(
        [sys.executable, "-m", "inbox.cli.main", "-c", str(config), "run"],
        cwd=config.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def append_events(path: Path, first: int, count: int) -> None:
    with path.open("a") as fh:
        for i in range(first, first + count):
            fh.write(
                json.dumps(
                    {
                        "external_id": str(i),
                        "kind": "dm",
                        "author": {"id": f"c{i}"},
                        "text": f"message {i}",
                        "created_at": "2026-11-02T09:00:00Z",
                    }
                )
                + "\n"
            )


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.stdout.read() if proc.stdout else ""


def test_a_second_process_is_refused_on_sqlite(tmp_path: Path) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text(CONFIG.format(url=f"sqlite:///{tmp_path / 'x.db'}", ttl="30s"))
    assert inbox("-c", str(config), "db", "upgrade", cwd=tmp_path).returncode == 0
    first = start(config)
    try:
        assert wait_for(lambda: _has_lease(tmp_path), timeout=20), "the first process never started"
        second = inbox("-c", str(config), "run", cwd=tmp_path)
        assert second.returncode == 1
        assert "another `inbox run`" in second.stderr and "use PostgreSQL" in second.stderr
    finally:
        stop(first)


def _has_lease(tmp_path: Path) -> bool:
    import sqlite3

    try:
        with sqlite3.connect(tmp_path / "x.db") as conn:
            return (
                conn.execute("SELECT count(*) FROM leases WHERE name = 'runtime:sqlite'").fetchone()[0] == 1
            )
    except sqlite3.Error:
        return False


@pytest.fixture
def pg_config(tmp_path: Path) -> Iterator[Path]:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"{POSTGRES_ENV} is not set")
    url = create_scratch_postgres("saluran_workers")
    config = tmp_path / "inbox.toml"
    config.write_text(CONFIG.format(url=url, ttl="2s"))
    yield config
    drop_scratch_postgres(url)


def queue_size(config: Path) -> int:
    done = inbox("-c", str(config), "queue", "--json", "--limit", "1000", cwd=config.parent)
    return len(json.loads(done.stdout)) if done.returncode == 0 else -1


@pytest.mark.postgres
def test_killed_worker_is_taken_over_without_loss(pg_config: Path) -> None:
    cwd = pg_config.parent
    assert inbox("-c", str(pg_config), "db", "upgrade", cwd=cwd).returncode == 0
    inbound = cwd / "in.jsonl"
    append_events(inbound, 0, 20)
    workers = [start(pg_config), start(pg_config)]
    outputs = []
    try:
        assert wait_for(lambda: queue_size(pg_config) == 20), "first events not ingested"
        # Both must still run: with one gone at start, nobody takes over and it would read as lost events.
        dead = [w for w in workers if w.poll() is not None]
        assert not dead, "a worker exited at start:\n" + "\n".join(stop(w) for w in dead)
        # find which worker holds the poller's lease and SIGKILL it mid-stream
        lease = subprocess.run(
            ["psql", _psql_url(pg_config), "-Atc", "SELECT holder FROM leases WHERE name = 'source:website'"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        pid = int(lease.rpartition(":")[2])
        victim = next(w for w in workers if w.pid == pid)
        append_events(inbound, 20, 30)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        append_events(inbound, 50, 30)
        assert wait_for(lambda: queue_size(pg_config) == 80, timeout=40), "events lost after the kill"
        survivor = next(w for w in workers if w is not victim)
        for i in (1, 2, 3):
            done = inbox("-c", str(pg_config), "cmd", "--as", "alice", f"/reply {i} answer {i}", cwd=cwd)
            assert done.returncode == 0, done.stdout + done.stderr
        out = cwd / "out.jsonl"
        assert wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 3)
        time.sleep(1.0)  # give a duplicate, if any, time to appear
        assert survivor.poll() is None
    finally:
        for w in workers:
            outputs.append(stop(w))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["text"] for line in lines) == ["answer 1", "answer 2", "answer 3"]
    check = subprocess.run(
        [
            "psql",
            _psql_url(pg_config),
            "-Atc",
            "SELECT count(*), count(DISTINCT external_id) FROM messages WHERE direction = 'in'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert check == "80|80"


def _psql_url(config: Path) -> str:
    import tomllib

    url = tomllib.loads(config.read_text())["database"]["url"]
    return url.replace("postgresql+asyncpg://", "postgresql://")
