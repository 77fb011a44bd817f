"""``inbox demo``: a payment outage on emulated Telegram, X and Discord and a contact form, worked live.

``run_demo`` starts the world (``world``), plays the customers (``scenario``) and either lets the
person at the keyboard work the queue as a team member in the Telegram team group (``terminal``)
or plays the team's side too and checks the outcome (``script``; also whenever stdin is not a
terminal, so ``make demo`` in CI never waits for input).
"""

from __future__ import annotations

import sys
import time
import traceback
from typing import TextIO
from zoneinfo import ZoneInfo

from inbox.demo.scenario import Scenario
from inbox.demo.script import Interrupted, checks, render_summary, run_script, summarise
from inbox.demo.terminal import HELP, Feed, TeamTerminal, Transcript, run_interactive
from inbox.demo.world import TEAM, TIMEZONE, DemoError, DemoInterrupted, DemoWorld, discord_ready

__all__ = ["DEFAULT_SPEED", "SCRIPT_SPEED", "DemoError", "run_demo", "wants_script"]

DEFAULT_SPEED = 30.0  # interactive: a demo minute every two seconds, time to type
SCRIPT_SPEED = 120.0  # scripted: the whole morning in about half a minute


def banner(world: DemoWorld, scripted: bool) -> str:
    """What the demo is doing and, when interactive, what can be typed."""
    speed = world.speed
    per_minute = 60 / speed
    if per_minute >= 1:
        pace = f"a demo minute every {per_minute:.2g} s"
    else:
        pace = f"{speed / 60:.3g} demo minutes a second"
    platforms = "X, Telegram and a contact form"
    if world.discord is not None:
        platforms = "X, Telegram, Discord and a contact form"
    team = ", ".join(f"{name} ({role})" for name, _, role in TEAM)
    lines = [
        "Saluran demo: a payment outage, on emulated platforms (nothing leaves this machine).",
        f"  Customers write on {platforms}; the real connectors fetch them through the real SDKs",
        "  from local emulators, and the bot posts a card per conversation to the team's Telegram",
        f'  group "{world.team_chat.title}". SLA warnings, breaches and escalations follow on a clock',
        f"  running {speed:g}x faster than real time ({pace}).",
        f"  Database and log: {world.workdir} (removed at the end unless --keep).",
    ]
    if world.discord is None:
        lines.append("  (Discord is left out: its connector is not available in this installation.)")
    if scripted:
        lines.append(f"The team's side is scripted too: {team} work the queue from the group.")
    else:
        lines += [f"You are alice in the team group; the team is {team}.", HELP]
    return "\n".join(lines) + "\n"


def wants_script(script: bool, stdin: TextIO | None = None) -> bool:
    """Scripted when asked, or when nobody can type: stdin is not a terminal (CI, pipes, ``< /dev/null``)."""
    stream = sys.stdin if stdin is None else stdin
    try:
        return script or not stream.isatty()
    except (AttributeError, ValueError):  # no stdin at all, or a closed one
        return True


async def run_demo(*, keep: bool = False, script: bool = False, speed: float | None = None) -> int:
    """Run the demo; interactive when stdin is a terminal and ``script`` is False. Returns an exit code."""
    scripted = wants_script(script)
    speed = speed or (SCRIPT_SPEED if scripted else DEFAULT_SPEED)
    began = time.monotonic()
    world = DemoWorld(speed, keep=keep, with_discord=discord_ready())
    try:
        async with world:
            transcript = Transcript(world.clock, TIMEZONE, live=not scripted)
            transcript.note(banner(world, scripted))
            feed = Feed(world, transcript)
            scenario = Scenario(world, transcript.say)
            terminal = TeamTerminal(world, transcript, feed, echo=scripted)
            interrupted = False
            if scripted:
                try:
                    await run_script(world, scenario, transcript, feed, terminal)
                except Interrupted:
                    interrupted = True
                    transcript.note("(interrupted)")
            else:
                await run_interactive(world, scenario, transcript, feed, terminal)
            if not interrupted:
                await world.settle()  # replies typed in the last moments still reach their customers
            await world.stop_runtime()
            feed.collect()
            summary = await summarise(world, feed)
            transcript.note(render_summary(summary, TIMEZONE, time.monotonic() - began))
            code = 130 if interrupted else 0
            if scripted and not interrupted:
                results = checks(summary, terminal.unanswered)
                failed = [text for ok, text in results if not ok]
                transcript.note("\n".join(f"{'ok  ' if ok else 'FAIL'}  {text}" for ok, text in results))
                code = 1 if failed else 0
            if keep:
                transcript.note(f"\nKept {world.workdir}: explore it with (the demo's clock started on "
                                f"{world.started_at.astimezone(ZoneInfo(TIMEZONE)):%A %d %B %Y %H:%M} WIB; "
                                "inbox uses the real clock)\n"
                                f"  inbox -c {world.workdir / 'inbox.toml'} queue --all\n"
                                f"  inbox -c {world.workdir / 'inbox.toml'} show 1")
            return code
    except DemoInterrupted:
        return 130
    except DemoError as exc:
        print(f"inbox demo: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: everything was cleaned up; say what broke, with the traceback
        print(f"inbox demo: stopped by an unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        traceback.print_exc()
        return 1
