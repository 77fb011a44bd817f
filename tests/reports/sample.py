"""Regenerate the sample in docs/reports.md from the hand-computed fixture:

    .venv/bin/python -m tests.reports.sample

writes docs/img/report-sample.png (the chart) and prints the chat text and the Markdown report.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.models import metadata
from inbox.render_text import render
from inbox.reports.chart import render_chart
from inbox.reports.numbers import Report, compute_report
from inbox.reports.period import parse_week
from inbox.reports.present import report_view
from inbox.reports.render_md import render_markdown
from tests.reports import scenario

IMAGE = Path(__file__).resolve().parents[2] / "docs" / "img" / "report-sample.png"


async def sample_report(folder: Path) -> Report:
    """The fixture's week as a Report, computed on a scratch SQLite database in ``folder``."""
    db = Database(f"sqlite+aiosqlite:///{folder / 'sample.db'}")
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        clock = FakeClock(scenario.local("2026-11-01 00:00"))
        conf, _ids = await scenario.build(db, clock)
        week = parse_week(scenario.WEEK, scenario.TZ)
        return await compute_report(db, conf.sla.compile(), week, clock.now())
    finally:
        await db.dispose()


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        report = await sample_report(Path(folder))
    IMAGE.write_bytes(render_chart(report))
    print(render(report_view(report, "en", has_chart=True)))
    print()
    print(render_markdown(report, chart_path="img/report-sample.png"))


if __name__ == "__main__":
    asyncio.run(main())
