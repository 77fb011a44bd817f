"""Scenario 6, memory: peak RSS of a real ``inbox run`` process with a million conversations in the database.

Setup (not timed): conversations spread over the last 60 days with their messages, tags, SLA clocks and
pending timers (80 % resolved), bulk-inserted with the raw driver; audit events are left out to keep the
setup short (``inbox run`` reads none at start). The config has the bench team, four JSONL channels — one
of them fed a file of fresh events to ingest while it runs — a team chat written to a log file, and the
SLA policies, so the outbox, the scheduler, the notifier, the pollers and the weekly-report job all run.

Figure: the process's peak resident set (``VmHWM`` in ``/proc/<pid>/status``, Linux) from start until it
has run ``memory_seconds`` and stopped on SIGTERM. Baseline: a Python process that only imports what
``inbox run`` imports, the floor of the code itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy import func, select

from bench.common import Goal, Result, log
from bench.data import HistoryPlan, inbound_batches
from bench.databases import bench_config
from bench.env import BenchEnv
from bench.seeding import seed_world, write_history
from inbox.clock import SystemClock
from inbox.db import Database
from inbox.models import Message
from inbox.settings import settings_from_dict

SCENARIO: Final = "6-memory"
FEED_CHANNEL: Final = "social"
IMPORTS: Final = (
    "import inbox.cli.main, inbox.runtime, inbox.app, inbox.reports.job, connectors.jsonl, "
    "connectors.teamlog, sqlalchemy.ext.asyncio, aiosqlite, asyncpg; import time; time.sleep(1.5)"
)


async def run(env: BenchEnv) -> list[Result]:
    """Seed, run ``inbox run`` as a subprocess, read its peak RSS; the same for the import-only baseline."""
    sizes = env.sizes
    scratch = await env.scratch("memory")
    clock = SystemClock()
    now = clock.now()
    feed = env.workdir / "feed-social.jsonl"
    try:
        config = bench_config(scratch.url, env.workdir)
        for channel in config["channels"]:
            if channel["name"] == FEED_CHANNEL:
                channel.update(inbound_path=str(feed), poll_interval=1.0)
        settings = settings_from_dict(config, environ={})
        db = Database(scratch.url)
        try:
            world = await seed_world(db, settings, clock)
        finally:
            await db.dispose()
        plan = HistoryPlan(
            conversations=sizes.memory_conversations,
            start=now - timedelta(days=60),
            end=now,
            now=now,
            mean_messages=1.5,
            resolved_share=0.8,
            with_events=False,
            contacts_per_channel=max(1_000, sizes.memory_conversations // 5),
        )
        written = await write_history(
            scratch, world, [plan], settings.sla.compile(), env.seed, now - timedelta(days=90)
        )
        fed = _write_feed(feed, max(200, sizes.memory_conversations // 500), env.seed, now)
        path = env.workdir / "inbox.toml"
        path.write_text(to_toml(config), encoding="utf-8")
        peak, log_tail, code = await _peak_rss(_inbox_command(path), sizes.memory_seconds, env.workdir)
        db = Database(scratch.url)
        try:
            async with db.sessions() as session:
                stored = int(await session.scalar(select(func.count()).select_from(Message)) or 0)
        finally:
            await db.dispose()
        ingested = stored - written["messages"]
        floor, _tail, _code = await _peak_rss([sys.executable, "-c", IMPORTS], 0, env.workdir)
    finally:
        await scratch.drop()
    log(
        f"  inbox run: peak {peak:.1f} MB (exit {code}); imports only {floor:.1f} MB; "
        f"{ingested} of {fed} fed events ingested"
    )
    notes = [
        f"`inbox run` exited with {code} after SIGTERM",
        f"{ingested} new messages stored during the run ({sizes.memory_seconds:g} s) from {fed} fed lines "
        "(re-deliveries among them are dropped)",
    ]
    if log_tail:
        notes.append("last log lines: " + " | ".join(log_tail))
    return [
        Result(
            SCENARIO,
            "peak_rss_mb",
            f"Peak RSS of `inbox run`, {sizes.memory_conversations:,} conversations",
            peak,
            "MB",
            "lower",
            baseline=floor,
            baseline_label="python importing what `inbox run` imports",
            goal=Goal("<", 250.0, "< 250 MB"),
            size={
                "conversations": sizes.memory_conversations,
                "rows": written,
                "seconds": sizes.memory_seconds,
            },
            notes=notes,
        )
    ]


def _write_feed(path: Path, count: int, seed: int, now: Any) -> int:
    events = [
        e for b in inbound_batches(count * 3, 500, seed, now) for e in b.events if e.channel == FEED_CHANNEL
    ]
    with path.open("w", encoding="utf-8") as fh:
        for ev in events[:count]:
            fh.write(
                json.dumps(
                    {
                        "channel": ev.channel,
                        "external_id": ev.external_id,
                        "kind": ev.kind.value,
                        "direction": ev.direction.value,
                        "thread_key": ev.thread_key,
                        "reply_to": ev.reply_to,
                        "member": ev.member,
                        "author": {"id": ev.author.id, "handle": ev.author.handle, "name": ev.author.name},
                        "text": ev.text,
                        "created_at": ev.created_at.isoformat(),
                    }
                )
                + "\n"
            )
    return min(count, len(events))


def _inbox_command(config: Path) -> list[str]:
    script = Path(sys.executable).with_name("inbox")
    if script.exists():
        return [str(script), "-c", str(config), "run"]
    return [
        sys.executable,
        "-c",
        "from inbox.cli.main import main; raise SystemExit(main())",
        "-c",
        str(config),
        "run",
    ]


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


async def _peak_rss(command: list[str], seconds: float, cwd: Path) -> tuple[float, list[str], int | None]:
    """Start the command, let it run ``seconds`` (0: until it ends), SIGTERM it; peak RSS in MB (10^6 B)."""
    log_path = cwd / "process.log"
    with log_path.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            stdout=out,
            stderr=out,
            env={**os.environ, "INBOX_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"},
        )
        peak_kb = 0
        deadline = time.monotonic() + seconds
        stopped = False
        while process.returncode is None:
            peak_kb = max(peak_kb, _status_kb(process.pid, "VmHWM") or 0)
            if seconds and not stopped and time.monotonic() >= deadline:
                process.send_signal(signal.SIGTERM)
                stopped = True
                deadline = time.monotonic() + 30
            elif stopped and time.monotonic() >= deadline:
                process.kill()
            try:
                await asyncio.wait_for(process.wait(), timeout=0.1)
            except TimeoutError:
                pass
    lines = [
        line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()
    ]
    return peak_kb * 1024 / 1e6, lines[-3:], process.returncode


# --- a small TOML writer (the standard library only reads TOML) ---------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """TOML for nested dicts and lists of dicts (tables and arrays of tables; deeper lists inline)."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif not prefix and isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.append((key, value))  # top-level arrays of tables; deeper ones are written inline
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in tables:
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines.append(f"\n[{name}]")
            lines.append(to_toml(value, f"{name}."))
        else:
            for item in value:
                lines.append(f"\n[[{name}]]")
                lines.append(to_toml(item, f"{name}.").strip("\n"))
    return "\n".join(line for line in lines if line != "") + "\n"
