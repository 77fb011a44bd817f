"""The operator CLI end to end: db upgrade, import, queue, show, and the unmigrated guard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from inbox.cli.main import main
from tests.conftest import BACKENDS, create_scratch_postgres, drop_scratch_postgres

CONFIG = """
[database]
url = "{url}"

[[members]]
name = "alice"
role = "admin"

[[channels]]
name = "support"
type = "jsonl"

[[channels]]
name = "social"
type = "jsonl"
"""


def event(ext: str, **kw: object) -> str:
    base = {
        "channel": "support",
        "external_id": ext,
        "kind": "dm",
        "author": {"id": "u1", "handle": "cust"},
        "text": f"message {ext}",
        "created_at": "2026-11-02T09:00:00Z",
    }
    base.update(kw)
    return json.dumps(base)


@pytest.fixture(params=BACKENDS)
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    if request.param == "postgres":
        url = create_scratch_postgres("saluran_cli")
    else:
        url = f"sqlite:///{tmp_path / 'cli.db'}"
    path = tmp_path / "inbox.toml"
    path.write_text(CONFIG.format(url=url))
    yield path
    if request.param == "postgres":
        drop_scratch_postgres(url)


def run(config: Path, *args: str) -> int:
    return main(["-c", str(config), *args])


def test_commands_refuse_an_unmigrated_database(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, "queue") == 1
    assert "not migrated" in capsys.readouterr().err
    assert run(config, "db", "current") == 0
    assert "current: none" in capsys.readouterr().out


def test_import_keeps_good_lines_and_reports_bad_ones(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "db", "upgrade") == 0
    data = tmp_path / "history.jsonl"
    data.write_text(
        "\n".join(
            [
                event("1"),
                "{not json",
                event("2", kind="tweet"),
                event("3", channel="nowhere"),
                event("4", direction="out", member="alice", created_at="2026-11-02T09:05:00Z"),
                event("5", created_at="yesterday"),
                event("6", author={"id": "u2"}, kind="mention", thread_key="post-1"),
                "",
            ]
        )
        + "\n"
    )
    capsys.readouterr()
    assert run(config, "import", str(data)) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert errors[0].startswith("line 2: not valid JSON")
    assert errors[1] == "line 3: 'kind' must be one of dm, mention, comment, email, form, got 'tweet'"
    assert errors[2] == "line 4: unknown channel 'nowhere' (configured: social, support)"
    assert errors[3] == "line 6: 'created_at' must be an ISO 8601 timestamp, got 'yesterday'"
    assert "3 messages stored, 0 duplicates, 0 edits, 2 new conversations, 4 bad lines" in captured.out
    # importing again stores nothing new and says so
    assert run(config, "import", str(data)) == 1
    assert "0 messages stored, 3 duplicates" in capsys.readouterr().out


def test_import_shows_progress_when_asked(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "db", "upgrade") == 0
    data = tmp_path / "big.jsonl"
    data.write_text("\n".join(event(str(i), author={"id": f"u{i % 50}"}) for i in range(1200)) + "\n")
    capsys.readouterr()
    assert run(config, "import", "--progress", str(data)) == 0
    captured = capsys.readouterr()
    assert "100%" in captured.err and "1200 lines" in captured.err
    assert "1200 messages stored" in captured.out


def test_queue_json_and_show(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, "db", "upgrade") == 0
    data = tmp_path / "h.jsonl"
    data.write_text(
        "\n".join(
            [
                event("1", text="\u001b[31mred alert\u001b[0m"),
                event("2", author={"id": "u9", "handle": "other"}, created_at="2026-11-02T08:00:00Z"),
            ]
        )
        + "\n"
    )
    assert run(config, "import", str(data)) == 0
    capsys.readouterr()
    assert run(config, "queue", "--json") == 0
    items = json.loads(capsys.readouterr().out)
    assert [i["id"] for i in items] == [2, 1]  # same priority, no deadline: oldest first
    keys = {
        "id",
        "status",
        "priority",
        "channel",
        "kind",
        "assignee",
        "tags",
        "created_at",
        "first_response_due_at",
    }
    assert keys <= set(items[0])
    assert items[0]["created_at"] == "2026-11-02T08:00:00Z"
    assert items[0]["first_response_due_at"] is None
    assert run(config, "queue") == 0
    table = capsys.readouterr().out
    assert "#1" in table and "\u001b" not in table  # terminal escapes from customers are defused
    assert run(config, "show", "1") == 0
    shown = capsys.readouterr().out
    assert "red alert" in shown and "\u001b" not in shown and "conversation.created" in shown
    assert run(config, "show", "99") == 1
    assert "conversation #99 does not exist" in capsys.readouterr().err


def test_import_of_a_missing_file(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, "import", "/nonexistent.jsonl") == 2
    assert "no such file" in capsys.readouterr().err


def test_bad_config_is_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[database]\nurl = 5\n")
    assert main(["-c", str(path), "queue"]) == 2
    assert "database.url:" in capsys.readouterr().err


def test_channels_lists_health_and_cursor(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "db", "upgrade") == 0
    capsys.readouterr()
    assert run(config, "channels", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["type"], r["health"], r["usage"]) for r in rows] == [
        ("social", "jsonl", "unknown", None),
        ("support", "jsonl", "unknown", None),
    ]
    assert run(config, "channels") == 0
    assert "support" in capsys.readouterr().out


SLA_CONFIG = """
[[sla.policies]]
name = "fast"
first_response = "30m"
"""


def test_sla_explains_a_conversation(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(config.read_text() + SLA_CONFIG)
    assert run(config, "db", "upgrade") == 0
    data = tmp_path / "h.jsonl"
    data.write_text(event("1", created_at="2026-11-02T09:00:00Z") + "\n")
    assert run(config, "import", str(data)) == 0
    capsys.readouterr()
    assert run(config, "sla", "1", "--json") == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained["policy"] == "fast"
    target = explained["targets"][0]
    assert (target["name"], target["target_seconds"]) == ("first_response", 1800)
    assert target["due_at"] == "2026-11-02T09:30:00Z"
    assert run(config, "sla", "1") == 0
    text = capsys.readouterr().out
    assert "policy: fast" in text and "first_response (30m)" in text
    assert run(config, "sla", "7") == 1
    assert "conversation #7 does not exist" in capsys.readouterr().err
