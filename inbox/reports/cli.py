"""``inbox report weekly``: a period's report as Markdown, JSON, CSV or the PNG chart, to stdout or a file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Protocol

from inbox.clock import Clock
from inbox.db import Database
from inbox.reports.period import Period, PeriodError, date_range, parse_date, parse_week, week_just_ended
from inbox.settings import Settings

FORMATS = ("md", "json", "csv", "png")


class ReportHost(Protocol):
    """What the report command needs of the App."""

    db: Database
    clock: Clock
    settings: Settings


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add ``weekly`` and its options to the ``report`` subcommand's parser."""
    kinds = parser.add_subparsers(dest="report_kind", required=True, metavar="KIND")
    weekly = kinds.add_parser("weekly", help="the response-time summary of a week (or of --from/--to)")
    which = weekly.add_mutually_exclusive_group()
    which.add_argument("--week", metavar="YYYY-Www", help="an ISO week, e.g. 2026-W47 (default: the week "
                                                          "just ended), in the team's timezone")
    which.add_argument("--from", dest="first", metavar="DATE", help="first day, YYYY-MM-DD (with --to)")
    weekly.add_argument("--to", dest="last", metavar="DATE", help="last day, included, YYYY-MM-DD")
    weekly.add_argument("--format", choices=FORMATS, default="md", help="output format (default: md)")
    weekly.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def period_from_args(args: argparse.Namespace, settings: Settings, clock: Clock) -> Period:
    """The period the options name, in the team's timezone."""
    timezone = settings.general.timezone
    if args.last and not args.first:
        raise PeriodError("--to needs --from")
    if args.first:
        return date_range(parse_date(args.first), parse_date(args.last or args.first), timezone)
    if args.week:
        return parse_week(args.week, timezone)
    return week_just_ended(clock.now(), timezone)


async def run_report(app: ReportHost, args: argparse.Namespace) -> int:
    """Compute the report and write it in the asked format; return the exit code."""
    from inbox.reports.numbers import compute_report

    period = period_from_args(args, app.settings, app.clock)
    report = await compute_report(app.db, app.settings.sla.compile(), period, app.clock.now())
    data: bytes
    if args.format == "json":
        data = (json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n").encode()
    elif args.format == "csv":
        from inbox.reports.render_csv import render_csv

        data = render_csv(report).encode()
    elif args.format == "png":
        from inbox.reports.chart import render_chart

        data = render_chart(report, app.settings.general.language)
    else:
        from inbox.reports.render_md import render_markdown

        data = render_markdown(report).encode()
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"{period.label}: {args.format} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
