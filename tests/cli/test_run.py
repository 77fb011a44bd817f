"""``inbox run`` as a real process: refuses an unmigrated database, polls, delivers, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inbox.cli.main import main

CONFIG = """
[database]
url = "sqlite:///{db}"

[outbox]
idle_interval = "0.2s"

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


def inbox_command() -> list[str]:
    return [sys.executable, "-m", "inbox.cli.main"]


def wait_for(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_run_refuses_an_unmigrated_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text(CONFIG.format(db=tmp_path / "x.db"))
    assert main(["-c", str(config), "run"]) == 1
    err = capsys.readouterr().err
    assert "is not migrated" in err and "inbox db upgrade" in err


def test_run_polls_delivers_and_stops_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text(CONFIG.format(db=tmp_path / "x.db"))
    (tmp_path / "in.jsonl").write_text(
        json.dumps(
            {
                "external_id": "1",
                "kind": "dm",
                "author": {"id": "cust"},
                "text": "hello",
                "created_at": "2026-11-02T09:00:00Z",
            }
        )
        + "\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [*inbox_command(), "-c", str(config), "run", "--migrate"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def stored() -> bool:
            done = subprocess.run(
                [*inbox_command(), "-c", str(config), "queue", "--json"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            return done.returncode == 0 and len(json.loads(done.stdout or "[]")) == 1

        assert wait_for(stored), "the polled message never reached the queue"
        reply = subprocess.run(
            [*inbox_command(), "-c", str(config), "cmd", "--as", "alice", "/reply 1 hi there"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert reply.returncode == 0, reply.stdout + reply.stderr
        out = tmp_path / "out.jsonl"
        assert wait_for(lambda: out.exists() and "hi there" in out.read_text()), "reply never delivered"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["recipient"], line["text"]) for line in lines] == [("cust", "hi there")]
