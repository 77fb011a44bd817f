"""The terminal console: ``inbox cmd --as MEMBER "TEXT"`` end to end, and its API on an App-like object."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from inbox.actions import Actions
from inbox.cli.main import main
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.terminal_console import run_terminal_command
from tests.commands.conftest import NewConversation
from tests.conftest import BACKENDS, create_scratch_postgres, drop_scratch_postgres
from tests.factories import make_settings

CONFIG = """
[database]
url = "{url}"

[general]
timezone = "Asia/Jakarta"

[[members]]
name = "alice"
role = "admin"

[[members]]
name = "carol"
role = "agent"

[[channels]]
name = "support"
type = "jsonl"
"""


@pytest.fixture(params=BACKENDS)
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    postgres = request.param == "postgres"
    url = create_scratch_postgres("saluran_cmd") if postgres else f"sqlite:///{tmp_path / 'c.db'}"
    path = tmp_path / "inbox.toml"
    path.write_text(CONFIG.format(url=url))
    yield path
    if postgres:
        drop_scratch_postgres(url)


def test_inbox_cmd_runs_commands_and_sets_the_exit_status(config: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "in.jsonl"
    events.write_text(json.dumps({
        "channel": "support", "external_id": "e1", "kind": "dm", "author": {"id": "u1", "handle": "cust"},
        "text": "hello \u001b[31mred", "created_at": "2026-11-02T09:00:00Z"}) + "\n")
    assert main(["-c", str(config), "db", "upgrade"]) == 0
    assert main(["-c", str(config), "import", str(events)]) == 0
    capsys.readouterr()

    assert main(["-c", str(config), "cmd", "--as", "carol", "/assign 1 me"]) == 0
    assert capsys.readouterr().out == "#1 assigned to carol.\n[Show → /show 1]\n"
    assert main(["-c", str(config), "cmd", "--as", "carol", "/show 1"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("#1 · DM on support · from @cust") and "\x1b" not in shown
    assert main(["-c", str(config), "cmd", "--as", "carol", "/resolve 9"]) == 1
    assert capsys.readouterr().out.startswith("Conversation #9 does not exist")
    assert main(["-c", str(config), "cmd", "--as", "mallory", "/queue"]) == 1
    assert "not on this team" in capsys.readouterr().out


async def test_console_accepts_anything_carrying_the_services(db: Database, clock: FakeClock,
                                                              new_conversation: NewConversation) -> None:
    conv = await new_conversation()  # seeds the team through the core fixture
    app = SimpleNamespace(db=db, clock=clock, settings=make_settings(), actions=Actions(db, clock))
    output, ok = await run_terminal_command(app, "carol", f"/resolve {conv}")
    assert ok and output.startswith(f"#{conv} resolved.")
    assert not (await run_terminal_command(app, "carol", f"/resolve {conv}")).ok
    assert (await run_terminal_command(app, "carol", "/sla")).output == (
        "No open conversation has an SLA deadline.")
