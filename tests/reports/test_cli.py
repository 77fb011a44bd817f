"""``inbox report weekly`` end to end, on a week of history brought in with ``inbox import``.

The JSONL holds the fixture's messages only (an import carries no assignments, tags or resolutions), and
no scheduler ran, so every SLA outcome comes from the clocks and the message times. Expected figures,
all times WIB (see tests/reports/scenario.py and test_numbers.py for the same arithmetic):

- new 7, resolved 0; first response 7, median 1200 s, p90 131580 s (business: 5, 1200, 5040);
  next response 4, median 6300 s, p90 13320 s.
- SLA first response: met C1 C3 C6 C7, breached C2 C4 -> 4 / 2. Next response: met C2 and C7's second
  round; breached C6 (clock) and C7's first round (measured from its messages: asked Tue 10:00, due 12:00,
  answered 14:00) -> 2 / 2. Resolution (24 open hours), nothing resolved: P2 due Wed 16:00, C1 Wed 17:00,
  C2 Thu 16:30, C7 Thu 17:00 -> 0 / 4 (C6 is due Mon 23 17:00 and C5 later: after the week).
  All: 6 met, 8 breached -> 6 / 14 = 42.9 %.
- backlog: all 9 conversations; the oldest, P1 (Tue 10 Nov 10:00), waited 12d14h = 1087200 s.
- W46: 2 new; P1 first response met, P2 first response breached, P1 resolution breached (due Fri 13 10:00)
  -> 1 / 2 = 33.3 %; backlog 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from inbox.cli.main import main
from tests.conftest import BACKENDS, create_scratch_postgres, drop_scratch_postgres
from tests.reports import scenario

CONFIG = """
[database]
url = "{url}"

[general]
timezone = "Asia/Jakarta"

[[members]]
name = "alice"
role = "admin"

[[members]]
name = "bob"
role = "lead"

[[members]]
name = "carol"

[[channels]]
name = "support"
type = "jsonl"

[[channels]]
name = "social"
type = "jsonl"

[sla.calendars.office]
timezone = "Asia/Jakarta"
hours = {{ weekdays = ["09:00-17:00"] }}

[[sla.policies]]
name = "social"
channels = ["social"]
first_response = "30m"

[[sla.policies]]
name = "standard"
calendar = "office"
first_response = "1h"
next_response = "2h"
resolution = "1d"
"""


@pytest.fixture(params=BACKENDS)
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    url = create_scratch_postgres("saluran_report") if request.param == "postgres" else \
        f"sqlite:///{tmp_path / 'report.db'}"
    path = tmp_path / "inbox.toml"
    path.write_text(CONFIG.format(url=url))
    yield path
    if request.param == "postgres":
        drop_scratch_postgres(url)


def run(config: Path, *args: str) -> int:
    return main(["-c", str(config), *args])


def test_a_week_of_imported_history_gives_the_expected_figures(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "db", "upgrade") == 0
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(scenario.jsonl_lines()) + "\n")
    assert run(config, "import", str(history)) == 0
    imported = capsys.readouterr().out
    assert "25 lines: 25 messages stored, 0 duplicates, 0 edits, 9 new conversations" in imported
    out = tmp_path / "w47.json"
    assert run(config, "report", "weekly", "--week", "2026-W47", "--format", "json", "-o", str(out)) == 0
    data = json.loads(out.read_text())
    assert data["timezone"] == "Asia/Jakarta"
    period = data["period"]
    assert (period["start"], period["end"]) == ("2026-11-15T17:00:00Z", "2026-11-22T17:00:00Z")
    assert data["conversations"]["new"] == 7 and data["conversations"]["resolved"] == 0
    assert data["first_response"] == {
        "count": 7, "median_seconds": 1200.0, "p90_seconds": 131580.0,
        "business": {"count": 5, "median_seconds": 1200.0, "p90_seconds": 5040.0}}
    follow_ups = data["next_response"]
    assert (follow_ups["median_seconds"], follow_ups["p90_seconds"]) == (6300.0, 13320.0)
    assert data["resolution"]["count"] == 0 and data["resolution"]["median_seconds"] is None
    sla = data["sla"]
    assert {name: (t["met"], t["breached"]) for name, t in sla["targets"].items()} == {
        "first_response": (4, 2), "next_response": (2, 2), "resolution": (0, 4)}
    assert (sla["met"], sla["breached"], sla["compliance"]) == (6, 8, 42.9)
    # Longest overdue: P2 resolution 4d8h, C1 resolution Wed 17:00 -> Mon 00:00 = 103h, C2 3d7h30m,
    # C7 resolution Thu 17:00 -> Mon 00:00 = 79h, C7's first follow-up 2h.
    assert [(b["target"], b["overdue_seconds"]) for b in sla["worst_breaches"]] == [
        ("resolution", 374400.0), ("resolution", 370800.0), ("resolution", 286200.0),
        ("resolution", 284400.0), ("next_response", 7200.0)]
    assert data["by_channel"]["support"]["new"] == 5 and data["by_channel"]["social"]["messages_in"] == 2
    assert data["by_assignee"]["(unassigned)"]["handled"] == 7
    assert {n: a["replies"] for n, a in data["by_assignee"].items()} == {
        "(unassigned)": 0, "alice": 4, "bob": 2, "carol": 5}
    assert data["tags"] == []
    assert data["backlog"]["count"] == 9 and data["backlog"]["oldest_age_seconds"] == 1087200.0
    assert data["messages"]["by_hour_of_week"][1][10] == 2
    assert data["previous"]["conversations"]["new"] == 2 and data["previous"]["sla"]["compliance"] == 33.3
    assert data["change"]["backlog"] == 7


def test_markdown_csv_png_and_bad_periods(config: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, "db", "upgrade") == 0
    capsys.readouterr()
    assert run(config, "report", "weekly", "--from", "2026-11-16", "--to", "2026-11-22") == 0
    assert capsys.readouterr().out.startswith("# Response-time report 2026-11-16..2026-11-22\n")
    assert run(config, "report", "weekly", "--week", "2026-W47", "--format", "csv") == 0
    assert "conversations.new,,0" in capsys.readouterr().out
    png = tmp_path / "chart.png"
    assert run(config, "report", "weekly", "--week", "2026-W47", "--format", "png", "-o", str(png)) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert run(config, "report", "weekly", "--week", "2026-47") == 1
    assert "'2026-47' is not an ISO week" in capsys.readouterr().err
    assert run(config, "report", "weekly", "--to", "2026-11-22") == 1
    assert "--to needs --from" in capsys.readouterr().err
