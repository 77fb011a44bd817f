"""The report as chat text (both languages), Markdown, CSV and chart, and /stats on demand."""

from __future__ import annotations

import csv
import io
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from inbox import view_codec
from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.commands import CommandCore
from inbox.db import Database
from inbox.models import metadata
from inbox.render_text import render
from inbox.reports.chart import render_chart
from inbox.reports.numbers import Report, compute_report
from inbox.reports.period import parse_week
from inbox.reports.present import report_view
from inbox.reports.render_csv import render_csv
from inbox.reports.render_md import render_markdown
from inbox.settings import Settings
from inbox.terminal_console import run_terminal_command
from tests.reports import scenario
from tests.reports.scenario import local

Played = tuple[Database, FakeClock, Settings, dict[str, int]]

EXPECTED_TEXT = """\
Weekly report 2026-W47 (2026-11-16 to 2026-11-22, Asia/Jakarta)
Conversations: 7 new, 5 resolved (before: 2 new, 1 resolved)
First response: median 20m, p90 1d12h (7); in business hours: median 20m, p90 1h24m (before: median 20m)
Next response: median 1h45m, p90 3h42m (4)
Resolution: median 5h, p90 17h12m (5); in business hours: median 5h, p90 6h36m
SLA: 60% met (9 met, 6 breached) (before: 66.7%)
  first response 66.7% (4 of 6) · next response 50% (2 of 4) · resolution 60% (3 of 5)
Worst breaches:
  #{P2} resolution (support): overdue 4d8h and still open · carol
  #{C2} resolution (support): overdue 3d7h and still open · bob
  #{C7} next response (support): 2h late · alice
By channel:
  social: 2 new, 2 resolved, median first response 35m, 0 open
  support: 5 new, 3 resolved, median first response 20m, 3 open
By assignee:
  carol: 4 handled, 5 replies, median first response 40m
  alice: 1 handled, 4 replies, median first response 10m
  bob: 1 handled, 2 replies, median first response 17h15m
  unassigned: 1 handled, 0 replies, median first response 10m
Top tags: #billing 2, #refund 2, #praise 1
Busiest hour: Tue 10:00-11:00 (2 customer messages)
Backlog: 3 open, the oldest (#{P2}) waiting 9d8h (before: 1)
Chart: new conversations per day by channel, median first response against the SLA target."""


@pytest.fixture
async def played(tmp_path: Path) -> AsyncIterator[Played]:
    """The fixture played into a SQLite file (rendering does not depend on the database)."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    clock = FakeClock(local("2026-11-01 00:00"))
    conf, ids = await scenario.build(db, clock)
    yield db, clock, conf, ids
    await db.dispose()


async def _report(played: Played) -> Report:
    db, clock, conf, _ids = played
    return await compute_report(db, conf.sla.compile(), parse_week(scenario.WEEK, scenario.TZ), clock.now())


async def test_chat_text_in_english_and_indonesian(played: Played) -> None:
    report = await _report(played)
    ids = played[3]
    view = report_view(report, "en", has_chart=True)
    assert render(view) == EXPECTED_TEXT.format(**ids)
    assert len(render(view)) < 2000  # fits one Discord message and one Telegram message
    assert view_codec.load(view_codec.dump(view)) == view  # it can wait in an outbox payload
    indonesian = render(report_view(report, "id")).splitlines()
    assert indonesian[0] == "Laporan mingguan 2026-W47 (2026-11-16 s.d. 2026-11-22, Asia/Jakarta)"
    assert indonesian[1] == "Percakapan: 7 baru, 5 selesai (sebelumnya: 2 baru, 1 selesai)"
    assert "Jam tersibuk: Sel 10:00-11:00 (2 pesan pelanggan)" in indonesian


async def test_markdown_csv_and_chart(played: Played) -> None:
    report = await _report(played)
    markdown = render_markdown(report, chart_path="img/report.png")
    assert markdown.startswith("# Response-time report 2026-W47\n")
    assert "| New conversations | 7 | 2 | +5 |" in markdown
    assert "| First response | 7 | 20m | 1d12h | 5 | 20m | 1h24m |" in markdown
    assert "| **all** | 9 | 6 | 60 % |" in markdown
    assert "![New conversations per day and median first response](img/report.png)" in markdown
    rows = csv.DictReader(io.StringIO(render_csv(report)))
    table = {(row["metric"], row["group"]): row["value"] for row in rows}
    assert table[("conversations.new", "")] == "7"
    assert table[("first_response.p90_seconds", "")] == "131580.0"
    assert table[("sla.next_response.breached", "")] == "2"
    assert table[("channel.backlog", "channel=support")] == "3"
    assert table[("messages.in", "hour=tue-10")] == "2"
    assert table[("change.compliance_points", "")] == "-6.7"
    png = render_chart(report)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1200, 675)


async def test_stats_shows_the_figures_on_demand(played: Played) -> None:
    db, clock, conf, _ids = played
    core = CommandCore(db, clock, conf, Actions(db, clock))
    seven = await run_terminal_command(core, "carol", "/stats 7d")
    lines = seven.output.splitlines()
    assert seven.ok and lines[0] == "The last 7 days (2026-11-16 to 2026-11-23, Asia/Jakarta)"
    # Mon 16 09:00 to Mon 23 09:00: the same week's conversations (C1 starts at 09:00 exactly).
    assert lines[1] == "Conversations: 7 new, 5 resolved (before: 2 new, 1 resolved)"
    week = await run_terminal_command(core, "carol", "/stats")  # this week so far: Monday 00:00-09:00
    assert week.output.splitlines()[:2] == ["This week so far, 2026-W48 (since 2026-11-23, Asia/Jakarta)",
                                           "Conversations: 0 new, 0 resolved (before: 0 new, 0 resolved)"]
    assert "Chart:" not in week.output
    today = await run_terminal_command(core, "carol", "/stats today", language="id")
    assert today.output.startswith("Hari ini, 2026-11-23 (Asia/Jakarta)")
    bad = await run_terminal_command(core, "carol", "/stats month")
    assert not bad.ok
    assert bad.output == "'month' is not a period: use week, 7d or today\nUsage: /stats [week|7d|today]"


def test_the_sample_in_the_docs_is_the_fixture_as_rendered_today() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "reports.md").read_text(encoding="utf-8")
    ids = {"P1": 1, "P2": 2, "C1": 3, "C2": 4, "C7": 5, "C3": 6, "C6": 7, "C4": 8, "C5": 9}  # creation order
    assert EXPECTED_TEXT.format(**ids) in docs, "regenerate the sample: python -m tests.reports.sample"
    image = Path(__file__).resolve().parents[2] / "docs" / "img" / "report-sample.png"
    assert struct.unpack(">II", image.read_bytes()[16:24]) == (1200, 675)
