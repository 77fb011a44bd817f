"""Item 12: malformed configuration and malformed `inbox import` lines get clear messages (naming the key
or the line) and exit codes, never a traceback; an import keeps every good line of a file.

Exit codes: 0 done, 1 failed (bad lines, unknown conversation), 2 unusable input (bad config, no file).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inbox.cli.main import main
from tests.reliability.support import inbox_cli

GOOD_CONFIG = """
[database]
url = "{url}"

[[members]]
name = "alice"
role = "admin"

[[channels]]
name = "website"
type = "jsonl"
inbound_path = "in.jsonl"
"""


@pytest.mark.parametrize(
    "text, environ, problem",
    [
        ("[database\nurl = 1", {}, "not valid TOML"),
        ("[outbox]\nretries = 3", {}, "outbox.retries: unknown key"),
        ('[outbox]\nmax_attempts = "many"', {}, "outbox.max_attempts:"),
        ("[outbox]\nmax_attempts = 0", {}, "outbox.max_attempts:"),
        ('[outbox]\nlease = "soon"', {}, "outbox.lease:"),
        ('[general]\ntimezone = "Mars/Olympus"', {}, "general.timezone: unknown timezone 'Mars/Olympus'"),
        ('[general]\nlanguage = "xx"', {}, "general.language:"),
        ('[database]\nurl = "mysql://u@h/db"', {}, "database.url: unsupported database 'mysql'"),
        ('[[channels]]\nname = "a"\ntype = "fax"', {}, "channels[0].type: unknown channel type 'fax'"),
        (
            '[[channels]]\nname = "tg"\ntype = "telegram"\ntoken_env = "REL_NOT_SET"',
            {},
            "channels[0].token_env: environment variable REL_NOT_SET is not set",
        ),
        (
            '[[channels]]\nname = "tg"\ntype = "telegram"\ntoken_env = "T"\nmode = "webhook"',
            {"T": "x" * 20},
            'channels[0].(top level): Value error, mode = "webhook" needs webhook_secret_env',
        ),
        ('[[channels]]\nname = "bad name!"\ntype = "jsonl"', {}, "channels[0].name:"),
        (
            '[[channels]]\nname = "a"\ntype = "jsonl"\n[[channels]]\nname = "a"\ntype = "jsonl"',
            {},
            "channels: duplicate name(s) a",
        ),
        (
            '[[team_chats]]\nname = "ops"\nchannel = "nowhere"\nchat_id = 1',
            {},
            "team_chats[0].channel: 'nowhere' is not a configured channel",
        ),
        ('[[members]]\nname = "eve"\nrole = "owner"', {}, "members[0].role:"),
    ],
)
def test_malformed_config_is_refused_naming_the_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    environ: dict[str, str],
    problem: str,
) -> None:
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    config = tmp_path / "inbox.toml"
    config.write_text(text)
    assert main(["-c", str(config), "check-config"]) == 2
    err = capsys.readouterr().err
    assert problem.replace("Value error, ", "") in err, err
    assert "Traceback" not in err
    assert main(["-c", str(config), "run"]) == 2  # `inbox run` refuses to start, with the same message
    err = capsys.readouterr().err
    assert err.startswith("inbox: bad configuration:") and problem.replace("Value error, ", "") in err


def test_every_problem_of_a_config_is_listed_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text('[outbox]\nretries = 3\nmax_attempts = -1\n[general]\ntimezone = "Nowhere"\n')
    assert main(["-c", str(config), "check-config"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(":" in line for line in lines)


def test_a_missing_config_file_and_a_missing_import_file_are_usage_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["-c", str(tmp_path / "nope.toml"), "check-config"]) == 2
    assert "config file not found" in capsys.readouterr().err
    config = tmp_path / "inbox.toml"
    config.write_text(GOOD_CONFIG.format(url=f"sqlite:///{tmp_path / 'x.db'}"))
    assert main(["-c", str(config), "import", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def event(n: int, **changes: object) -> dict[str, object]:
    return {
        "channel": "website",
        "external_id": f"e{n}",
        "kind": "dm",
        "author": {"id": f"c{n}"},
        "text": f"good {n}",
        "created_at": "2026-11-02T09:00:00Z",
        **changes,
    }


BAD_LINES: list[tuple[bytes, str]] = [
    (b"{not json", "not valid JSON"),
    (b"[1, 2, 3]", "each event must be a JSON object"),
    (json.dumps(event(90, external_id=None)).encode(), "'external_id' is required"),
    (json.dumps(event(91, kind="telepathy")).encode(), "'kind' must be one of"),
    (json.dumps(event(92, created_at="yesterday")).encode(), "ISO 8601"),
    (json.dumps(event(93, created_at="2026-11-02T09:00:00")).encode(), "needs a timezone"),
    (json.dumps(event(94, channel="elsewhere")).encode(), "unknown channel 'elsewhere'"),
    (json.dumps(event(95, direction="out", member="mallory")).encode(), "unknown member 'mallory'"),
    (json.dumps(event(96, colour="red")).encode(), "unknown key(s): colour"),
    (json.dumps(event(97, text=["a"])).encode(), "'text' must be a string"),
    (json.dumps(event(98, author="me")).encode(), "'author' must be an object"),
    (b'{"text": "\xff\xfe broken utf-8"}', "not valid JSON"),
    (b"NaN", "each event must be a JSON object"),
]


def test_import_keeps_the_good_lines_and_names_each_bad_one(
    fresh_db_url: str,
    tmp_path: Path,
) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text(GOOD_CONFIG.format(url=fresh_db_url))
    assert inbox_cli("-c", str(config), "db", "upgrade", cwd=tmp_path).returncode == 0
    lines: list[bytes] = []
    expected: dict[int, str] = {}
    good = 0
    for n, (bad, problem) in enumerate(BAD_LINES):
        lines.append(json.dumps(event(n)).encode())
        good += 1
        lines.append(bad)
        expected[len(lines)] = problem
        lines.append(b"   ")  # blank lines are skipped, not errors
    lines.append(json.dumps(event(500, text="hostile \ud800 and \u0000 still stored")).encode())
    good += 1
    source = tmp_path / "history.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")

    done = inbox_cli("-c", str(config), "import", str(source), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    reported = {int(line.split(":", 1)[0].removeprefix("line ")): line for line in done.stderr.splitlines()}
    assert set(reported) == set(expected)
    for number, problem in expected.items():
        assert problem in reported[number], (number, reported[number])
    assert f"{len(lines)} lines: {good} messages stored, 0 duplicates" in done.stdout
    assert f"{len(BAD_LINES)} bad lines" in done.stdout

    again = inbox_cli("-c", str(config), "import", str(source), cwd=tmp_path)  # a second run: nothing new
    assert again.returncode == 1 and f"0 messages stored, {good} duplicates" in again.stdout
    shown = inbox_cli("-c", str(config), "queue", "--json", "--limit", "1000", cwd=tmp_path)
    assert len(json.loads(shown.stdout)) == good
