"""``inbox``: the operator's console (config, database, import, queue, show, cmd, run, demo)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from inbox.app import App
from inbox.clock import isoformat_utc
from inbox.db import Database, DatabaseError
from inbox.durations import format_duration
from inbox.errors import InboxError
from inbox.importer import ImportReport, import_file
from inbox.queries import QueueFilter, QueueItem, conversation_detail, list_queue
from inbox.settings import DEFAULT_CONFIG_PATH, ConfigError, Settings, load_settings
from inbox.textsafe import terminal_safe

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """An error to print as one line, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _config_path(args: argparse.Namespace) -> str:
    return str(args.config or os.environ.get("INBOX_CONFIG") or DEFAULT_CONFIG_PATH)


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(_config_path(args))
    except ConfigError as exc:
        raise CliError("bad configuration:\n" + "\n".join(f"  {p}" for p in exc.problems)) from None


async def _with_app(args: argparse.Namespace, body: Callable[[App], Awaitable[int]]) -> int:
    app = await App.open(_settings(args))
    try:
        return await body(app)
    finally:
        await app.close()


# --- check-config ----------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the config file; print it (secrets masked) with --print."""
    path = _config_path(args)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    if args.print:
        print(json.dumps(settings.masked(), indent=2))
    else:
        print(f"{path}: OK ({len(settings.channels)} channels, {len(settings.members)} members)")
    return EXIT_OK


# --- db --------------------------------------------------------------------------------------


async def cmd_db(args: argparse.Namespace) -> int:
    """Migrate the database or show its revision."""
    from inbox import migrate

    settings = _settings(args)
    url = settings.database.url
    if args.db_command == "upgrade":
        await migrate.upgrade(url, args.revision)
        print(f"database at revision {args.revision}")
    elif args.db_command == "downgrade":
        await migrate.downgrade(url, args.revision)
        print(f"database at revision {args.revision}")
    else:
        db = Database(url)
        try:
            current = await migrate.current_revision(db)
        finally:
            await db.dispose()
        print(f"current: {current or 'none'}; head: {migrate.head_revision()}")
    return EXIT_OK


# --- import ----------------------------------------------------------------------------------


async def cmd_import(args: argparse.Namespace) -> int:
    """Ingest a JSONL file of neutral events."""
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")

    async def body(app: App) -> int:
        channels = {c.name for c in app.settings.channels}
        members = {m.name for m in app.settings.members}
        show = args.progress or (args.progress is None and path.stat().st_size > 1_000_000)
        report = await import_file(
            app.ingestor,
            path,
            channels=channels,
            members=members,
            progress=_progress_printer() if show else None,
        )
        _print_import_report(report)
        return EXIT_FAILED if report.failed else EXIT_OK

    return await _with_app(args, body)


def _progress_printer() -> Callable[[int, int, ImportReport], None]:
    def show(done: int, total: int, report: ImportReport) -> None:
        percent = 100 * done // max(total, 1)
        print(
            f"\r{percent:3d}%  {report.lines} lines, {report.stored} stored",
            end="",
            file=sys.stderr,
            flush=True,
        )
        if done >= total:
            print(file=sys.stderr)

    return show


def _print_import_report(report: ImportReport) -> None:
    for error in report.errors[:200]:
        print(error, file=sys.stderr)
    if report.failed > 200:
        print(f"... and {report.failed - 200} more bad lines", file=sys.stderr)
    print(
        f"{report.lines} lines: {report.stored} messages stored, {report.duplicates} duplicates, "
        f"{report.edited} edits, {report.conversations} new conversations, "
        f"{report.failed} bad lines"
    )


# --- queue / show ----------------------------------------------------------------------------


async def cmd_queue(args: argparse.Namespace) -> int:
    """List open work, most urgent first."""

    async def body(app: App) -> int:
        filt = QueueFilter(
            include_waiting=args.all,
            assignee=args.assignee,
            channel=args.channel,
            tag=args.tag,
            limit=args.limit,
        )
        async with app.db.sessions() as session:
            items = await list_queue(session, app.clock.now(), filt)
        if args.json:
            print(json.dumps([i.as_json() for i in items], indent=2, ensure_ascii=False))
        else:
            print(_queue_table(items, app))
        return EXIT_OK

    return await _with_app(args, body)


def _due_label(item: QueueItem, app: App) -> str:
    due = item.next_response_due_at or item.first_response_due_at or item.resolution_due_at
    if due is None:
        return "-"
    left = due - app.clock.now()
    return f"in {format_duration(left)}" if left.total_seconds() >= 0 else f"{format_duration(-left)} late"


def _queue_table(items: Sequence[QueueItem], app: App) -> str:
    if not items:
        return "The queue is empty."
    rows = [("ID", "PRIORITY", "STATUS", "CHANNEL", "KIND", "ASSIGNEE", "DUE", "FROM", "TEXT")]
    for i in items:
        rows.append(
            (
                f"#{i.id}",
                i.priority,
                i.status,
                i.channel,
                i.kind,
                i.assignee or "-",
                _due_label(i, app),
                terminal_safe(i.contact)[:24],
                terminal_safe(i.excerpt)[:60],
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    )


async def cmd_show(args: argparse.Namespace) -> int:
    """Show one conversation with its messages and events."""

    async def body(app: App) -> int:
        async with app.db.sessions() as session:
            detail = await conversation_detail(session, args.id)
        if args.json:
            print(json.dumps(detail.as_json(), indent=2, ensure_ascii=False))
            return EXIT_OK
        data = detail.as_json()
        contact = data["contact"]
        who = terminal_safe(str(contact["handle"] or contact["name"] or contact["id"]))
        print(f"#{data['id']} {data['kind']} on {data['channel']} from {who}")
        print(
            f"status {data['status']}, priority {data['priority']}, assignee {data['assignee'] or '-'}, "
            f"tags {', '.join(data['tags']) or '-'}"
        )
        for key in ("first_response_due_at", "next_response_due_at", "resolution_due_at"):
            if data[key]:
                print(f"{key.replace('_', ' ')}: {data[key]}")
        print("\nMessages:")
        for m in detail.messages:
            marker = {"in": "<", "out": ">", "note": "#"}.get(m.direction, "?")
            print(
                f"  {marker} {isoformat_utc(m.created_at)} {terminal_safe(m.author)}: {terminal_safe(m.text)}"
            )
            for attachment in m.attachments:
                print(f"      [{attachment.get('type')}: {terminal_safe(str(attachment.get('name') or ''))}]")
        print("\nEvents:")
        for e in detail.events:
            print(f"  {isoformat_utc(e.created_at)} {e.type} by {e.actor}")
        return EXIT_OK

    return await _with_app(args, body)


# --- sla -------------------------------------------------------------------------------------


async def cmd_sla(args: argparse.Namespace) -> int:
    """Explain a conversation's SLA: policy, each deadline and its state."""
    from inbox.sla.explain import explain

    async def body(app: App) -> int:
        async with app.db.sessions() as session:
            result = await explain(session, args.id, app.sla, app.clock.now())
        data = result.as_dict()
        if args.json:
            print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        else:
            print(render_sla_explanation(data))
        return EXIT_OK

    return await _with_app(args, body)


def _seconds(value: int) -> str:
    return format_duration(timedelta(seconds=value))


def render_sla_explanation(data: dict[str, Any]) -> str:
    """Plain-text form of ``inbox sla ID``."""
    lines = [f"#{data['conversation_id']} ({data['status']}, {data['priority']})"]
    if not data.get("policy"):
        lines.append("No SLA policy applies to this conversation.")
        return "\n".join(lines)
    calendar = data.get("calendar")
    lines.append(f"policy: {data['policy']}" + (f" (business hours: {calendar})" if calendar else ""))
    if data.get("paused_since"):
        lines.append(f"paused since {data['paused_since']}")
    for target in data.get("targets", []):
        parts = [f"  {target['name']} ({_seconds(target['target_seconds'])}): {target['state']}"]
        for key in ("due_at", "warn_at", "breached_at", "ended_at"):
            if target.get(key):
                parts.append(f"{key.removesuffix('_at').replace('_', ' ')} {target[key]}")
        if target.get("remaining_seconds") is not None:
            parts.append(f"{_seconds(target['remaining_seconds'])} left")
        if target.get("overdue_seconds") is not None:
            parts.append(f"{_seconds(target['overdue_seconds'])} overdue")
        lines.append(", ".join(parts))
    if data.get("breached"):
        lines.append("breached: " + ", ".join(data["breached"]))
    for timer in data.get("timers", []):
        lines.append(f"  timer {timer['kind']} at {timer['due_at']}")
    return "\n".join(lines)


# --- channels --------------------------------------------------------------------------------


async def cmd_channels(args: argparse.Namespace) -> int:
    """List channels with their health, cursor and connector usage (e.g. the X cost budget)."""
    from sqlmodel import select

    from inbox.models import Channel
    from inbox.registry import usage_summary_of

    async def body(app: App) -> int:
        rows: list[dict[str, Any]] = []
        async with app.db.sessions() as session:
            channels = list((await session.execute(select(Channel).order_by(Channel.name))).scalars())
            for channel in channels:
                summary = usage_summary_of(channel.type)
                usage = await summary(session, channel.name, app.clock.now()) if summary else None
                rows.append(
                    {
                        "name": channel.name,
                        "type": channel.type,
                        "health": channel.health,
                        "health_detail": channel.health_detail,
                        "cursor": channel.cursor,
                        "updated_at": isoformat_utc(channel.updated_at),
                        "usage": usage,
                    }
                )
        if args.json:
            print(json.dumps(rows, indent=2, ensure_ascii=False))
            return EXIT_OK
        for row in rows:
            line = f"{row['name']:<20} {row['type']:<10} {row['health']:<8}"
            if row["health_detail"]:
                line += f" ({terminal_safe(str(row['health_detail']))[:80]})"
            print(line)
            if row["usage"]:
                print("    usage: " + ", ".join(f"{k} {v}" for k, v in row["usage"].items()))
        return EXIT_OK

    return await _with_app(args, body)


# --- report ----------------------------------------------------------------------------------


async def cmd_report(args: argparse.Namespace) -> int:
    """Print a period's response-time report (md, json, csv) or its chart (png)."""
    from inbox.reports.cli import run_report

    return await _with_app(args, lambda app: run_report(app, args))


# --- cmd -------------------------------------------------------------------------------------


async def cmd_cmd(args: argparse.Namespace) -> int:
    """Run a chat command as a team member and print what the chat would show."""
    from inbox.terminal_console import run_terminal_command

    async def body(app: App) -> int:
        output, ok = await run_terminal_command(app, args.member, args.text)
        print(output)
        return EXIT_OK if ok else EXIT_FAILED

    return await _with_app(args, body)


# --- run / demo ------------------------------------------------------------------------------


async def cmd_run(args: argparse.Namespace) -> int:
    """Run the bot until SIGTERM or SIGINT."""
    from inbox.runtime import run_forever

    settings = _settings(args)
    from inbox.logs import configure_logging, settings_secrets

    configure_logging(
        os.environ.get("INBOX_LOG_LEVEL") or settings.runtime.log_level,
        json_lines=settings.runtime.log_format == "json",
        secrets=settings_secrets(settings),
    )
    app = await App.open(settings, migrate=args.migrate)
    try:
        await run_forever(app, base_dir=Path(_config_path(args)).resolve().parent)
    finally:
        await app.close()
    return EXIT_OK


async def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo: interactive on a terminal, scripted with --script or when stdin is not a terminal."""
    from inbox.demo import run_demo

    return await run_demo(keep=args.keep, script=args.script, speed=args.speed)


# --- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``inbox``."""
    parser = argparse.ArgumentParser(prog="inbox", description="Saluran: a unified inbox worked from chat.")
    parser.add_argument(
        "-c", "--config", help=f"config file (default: $INBOX_CONFIG or {DEFAULT_CONFIG_PATH})"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check-config", help="validate the config file")
    p.add_argument("--print", action="store_true", help="print the config with secrets masked")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("db", help="database migrations")
    dbsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = dbsub.add_parser("upgrade", help="migrate to the newest schema")
    up.add_argument("revision", nargs="?", default="head")
    down = dbsub.add_parser("downgrade", help="migrate back to a revision ('base' for empty)")
    down.add_argument("revision")
    dbsub.add_parser("current", help="show the database's revision")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("import", help="ingest neutral events from a JSONL file")
    p.add_argument("file")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress (default: for files over 1 MB)",
    )
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("queue", help="list open work, most urgent first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--all", action="store_true", help="include pending and snoozed conversations")
    p.add_argument("--assignee")
    p.add_argument("--channel")
    p.add_argument("--tag")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_queue)

    p = sub.add_parser("show", help="show a conversation")
    p.add_argument("id", type=_conversation_id)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("sla", help="explain a conversation's SLA")
    p.add_argument("id", type=_conversation_id)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sla)

    p = sub.add_parser("channels", help="list channels with health and usage")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_channels)

    p = sub.add_parser("report", help="response-time reports (docs/reports.md)")
    from inbox.reports.cli import configure_parser

    configure_parser(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("cmd", help="run a chat command as a team member")
    p.add_argument("--as", dest="member", required=True, metavar="MEMBER")
    p.add_argument("text")
    p.set_defaults(func=cmd_cmd)

    p = sub.add_parser("run", help="run the bot")
    p.add_argument("--migrate", action="store_true", help="apply pending migrations first")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run the built-in demo on emulated platforms (no tokens needed)")
    p.add_argument("--keep", action="store_true", help="keep the demo's working folder")
    p.add_argument(
        "--script",
        action="store_true",
        help="play the team's side too, print a summary and exit (the default when stdin is not a terminal)",
    )
    p.add_argument(
        "--speed",
        type=_speed,
        default=None,
        help="how much faster than real time the demo clock runs (60: a demo minute per second; "
        "default 30, or 120 with --script)",
    )
    p.set_defaults(func=cmd_demo)
    return parser


def _speed(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{raw}' is not a number") from None
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError("speed must be between 0 and 10000 (60: a demo minute per second)")
    return value


def _conversation_id(raw: str) -> int:
    try:
        value = int(raw.lstrip("#"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{raw}' is not a conversation id") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"'{raw}' is not a conversation id")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inbox`` console script."""
    args = build_parser().parse_args(argv)
    try:
        result: Any = args.func(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result)
    except CliError as exc:
        print(f"inbox: {exc}", file=sys.stderr)
        return exc.code
    except (InboxError, DatabaseError) as exc:
        print(f"inbox: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
