"""Scenario 2, command latency: ``/queue``, ``/show``, ``/tag``, ``/reply`` with 100,000 open conversations.

First through the command core (``CommandCore.execute`` on the services ``inbox run`` builds: the SLA
engine and the notifier hooked into the actions), one command at a time, each timed alone. Baseline: a
primary-key read of one conversation through the same engine and sessions, the least any command does.

Then the same commands typed by members into a Telegram team group: the emulator delivers them to the
real python-telegram-bot in our Telegram connector, and the time runs until the emulator has the bot's
answer. Baseline: a bare python-telegram-bot echo bot (``Application`` + ``MessageHandler``) answering
the same texts in the same group of the same emulator. Flood limits are off in both, because Telegram's
real limit (20 messages a minute in a group) would measure Telegram's pacing rather than our latency.

A few commands run first, untimed, so the figures are those of a running bot (warm caches and
compiled statements), not of the first command after start.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections import defaultdict
from datetime import timedelta
from typing import Any, Final

from bench.common import NOW, Goal, Result, StatementCounter, log, percentile
from bench.data import TAGS, HistoryPlan
from bench.databases import MEMBERS, Scratch, bench_config, bench_settings
from bench.env import BenchEnv
from bench.seeding import seed_world, write_history
from inbox.app import App
from inbox.clock import FakeClock
from inbox.commands import CommandCore, CommandInvocation
from inbox.config_sync import sync_channels
from inbox.db import Database
from inbox.heap import freeze_startup_heap
from inbox.models import Conversation
from inbox.notify import install_notifier
from inbox.settings import Settings

SCENARIO: Final = "2-commands"
WARM_UP: Final = 20
TOKEN_ENV: Final = "BENCH_TG_TOKEN"
REPLIES: Final = (
    "Thanks, we are looking into it.",
    "Could you send us your order number?",
    "Mohon maaf, dana akan kembali dalam 1x24 jam.",
    "Fixed now. Sorry for the trouble!",
)


def command_mix(count: int, conversations: int, seed: int) -> list[tuple[str, str]]:
    """(member, text) pairs: about 35 % /queue (filters, pages), 35 % /show, 15 % /tag, 15 % /reply."""
    rng = random.Random(seed)
    members = [name for name, _role, _tid in MEMBERS]
    queue_forms = (
        "/queue",
        "/queue mine",
        "/queue unassigned",
        "/queue #billing",
        "/queue channel:social",
        "/queue page 3",
        "/queue all",
    )
    out = []
    for _ in range(count):
        member = rng.choice(members)
        target = rng.randint(1, conversations)
        roll = rng.random()
        if roll < 0.35:
            text = rng.choice(queue_forms)
        elif roll < 0.70:
            text = f"/show {target}"
        elif roll < 0.85:
            text = f"/tag {target} " + " ".join(rng.sample(TAGS[:-1], rng.randint(1, 2)))
        else:
            text = f"/reply {target} {rng.choice(REPLIES)}"
        out.append((member, text))
    return out


async def run(env: BenchEnv) -> list[Result]:
    """Seed the conversations, then time the core, then the Telegram path and its echo baseline."""
    sizes = env.sizes
    scratch = await env.scratch("commands")
    clock = FakeClock(NOW)
    size: dict[str, Any] = {"open_conversations": sizes.command_conversations, "commands": sizes.commands}
    try:
        settings = bench_settings(scratch.url, env.workdir)
        written = await _seed(env, scratch, settings, clock)
        size["rows"] = written
        commands = command_mix(sizes.commands + WARM_UP, sizes.command_conversations, env.seed)
        app = await App.open(settings, clock)
        try:
            install_notifier(app)
            core = CommandCore.from_app(app)
            freeze_startup_heap()  # as `inbox run` does once it has started
            results = await _core_latency(app.db, core, commands, size)
            results += await _telegram(
                env,
                app,
                core,
                settings,
                commands[: sizes.telegram_commands + WARM_UP],
                {**size, "commands": sizes.telegram_commands},
            )
        finally:
            await app.close()
            gc.unfreeze()  # the next scenario starts with the collector as it found it
    finally:
        await scratch.drop()
    return results


async def _seed(env: BenchEnv, scratch: Scratch, settings: Settings, clock: FakeClock) -> dict[str, Any]:
    db = Database(scratch.url)
    try:
        world = await seed_world(db, settings, clock)
    finally:
        await db.dispose()
    plan = HistoryPlan(
        conversations=env.sizes.command_conversations,
        start=NOW - timedelta(days=3),
        end=NOW,
        now=NOW,
        mean_messages=3.0,
        resolved_share=0.0,
        contacts_per_channel=max(1_000, env.sizes.command_conversations // 5),
    )
    return await write_history(
        scratch, world, [plan], settings.sla.compile(), env.seed, NOW - timedelta(days=30)
    )


# --- the command core -------------------------------------------------------------------------------------


async def _core_latency(
    db: Database, core: CommandCore, commands: list[tuple[str, str]], size: dict[str, Any]
) -> list[Result]:
    timings: list[float] = []
    by_command: dict[str, list[float]] = defaultdict(list)
    statements: dict[str, int] = defaultdict(int)
    errors = 0
    counter = StatementCounter(db.engine)
    for index, (member, text) in enumerate(commands):
        before = counter.count
        started = time.perf_counter()
        view = await core.execute(CommandInvocation.terminal(member, text))
        elapsed = (time.perf_counter() - started) * 1000
        if index < WARM_UP:
            continue
        timings.append(elapsed)
        by_command[text.split()[0]].append(elapsed)
        statements[text.split()[0]] += counter.count - before
        errors += type(view).__name__ == "ErrorView"
    counter.close()
    floor = await _primary_key_reads(db, len(timings), size["open_conversations"])
    p50, p99 = percentile(timings, 50), percentile(timings, 99)
    detail = [
        f"{name}: p50 {percentile(v, 50):.2f} ms, p99 {percentile(v, 99):.2f} ms (n={len(v)}, "
        f"{statements[name] / len(v):.1f} SQL statements each)"
        for name, v in sorted(by_command.items())
    ]
    notes = [*detail, f"{errors} commands answered with an error view"]
    log(f"  core: p50 {p50:.2f} ms, p99 {p99:.2f} ms; " + "; ".join(detail))
    return [
        Result(
            SCENARIO,
            "core_p50_ms",
            "Command core latency p50",
            p50,
            "ms",
            "lower",
            baseline=percentile(floor, 50),
            baseline_label="primary-key read through the same engine, p50",
            size=size,
            notes=notes,
        ),
        Result(
            SCENARIO,
            "core_p99_ms",
            "Command core latency p99",
            p99,
            "ms",
            "lower",
            baseline=percentile(floor, 99),
            baseline_label="primary-key read through the same engine, p99",
            goal=Goal("<", 10.0, "p99 < 10 ms"),
            size=size,
            notes=notes,
        ),
    ]


async def _primary_key_reads(db: Database, count: int, conversations: int) -> list[float]:
    rng = random.Random(count)
    out = []
    for _ in range(count):
        started = time.perf_counter()
        async with db.sessions() as session:
            await session.get(Conversation, rng.randint(1, conversations))
        out.append((time.perf_counter() - started) * 1000)
    return out


# --- Telegram ---------------------------------------------------------------------------------------------


async def _telegram(
    env: BenchEnv,
    app: App,
    core: CommandCore,
    settings: Settings,
    commands: list[tuple[str, str]],
    size: dict[str, Any],
) -> list[Result]:
    try:
        from connectors.telegram import build
        from connectors.telegram.emulator import FloodLimits, TelegramEmulator
    except ImportError as exc:
        return [_not_measured(f"the Telegram connector cannot be imported ({exc})", size)]
    from inbox.registry import ConnectorContext
    from inbox.settings import settings_from_dict

    async with TelegramEmulator(clock=app.clock, flood_limits=FloodLimits(enabled=False)) as emu:
        users = {
            name: emu.user(name.title(), username=f"{name}_ops", user_id=tid) for name, _r, tid in MEMBERS
        }
        team = emu.supergroup("Ops", bot_status="administrator", members=list(users.values()))
        data = bench_config(settings.database.url, env.workdir)
        data["channels"].append(
            {
                "name": "tg",
                "type": "telegram",
                "token_env": TOKEN_ENV,
                "api_base_url": emu.url,
                "poll_timeout": 10,
            }
        )
        data["team_chats"] = [{"name": "ops", "channel": "tg", "chat_id": str(team.id)}]
        tg_settings = settings_from_dict(data, environ={TOKEN_ENV: emu.token})
        channel = tg_settings.channel("tg")
        assert channel is not None
        await sync_channels(app.db, tg_settings.channels, app.clock)
        context = ConnectorContext(
            clock=app.clock,
            db=app.db,
            ingest=app.ingestor.ingest,
            commands=core.execute,
            settings=tg_settings,
        )
        try:
            connector = build(channel, context)
        except Exception as exc:
            return [_not_measured(f"the Telegram connector could not be built ({exc})", size)]
        if connector.service is None:
            return [_not_measured("the Telegram connector has no update loop", size)]
        stop = asyncio.Event()
        task = asyncio.ensure_future(connector.service(stop))
        try:
            ours = await _round_trips(emu, team, users, commands)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)
            if connector.close is not None:
                await connector.close()
        echo = await _echo_round_trips(emu, team, users, commands)
    p50, p99 = percentile(ours, 50), percentile(ours, 99)
    e50, e99 = percentile(echo, 50), percentile(echo, 99)
    log(f"  telegram: p50 {p50:.2f} ms, p99 {p99:.2f} ms; echo p50 {e50:.2f} ms, p99 {e99:.2f} ms")
    note = "flood limits off in the emulator for both bots"
    return [
        Result(
            SCENARIO,
            "telegram_p50_ms",
            "Command via PTB + emulator, p50",
            p50,
            "ms",
            "lower",
            baseline=e50,
            baseline_label="bare PTB echo bot, same emulator, p50",
            size=size,
            notes=[note],
        ),
        Result(
            SCENARIO,
            "telegram_p99_ms",
            "Command via PTB + emulator, p99",
            p99,
            "ms",
            "lower",
            baseline=e99,
            baseline_label="bare PTB echo bot, same emulator, p99",
            size=size,
            notes=[note],
        ),
    ]


def _not_measured(why: str, size: dict[str, Any]) -> Result:
    return Result(
        SCENARIO,
        "telegram_p99_ms",
        "Command via PTB + emulator, p99",
        None,
        "ms",
        "lower",
        size=size,
        notes=[f"not measured: {why}"],
    )


async def _round_trips(
    emu: Any, team: Any, users: dict[str, Any], commands: list[tuple[str, str]]
) -> list[float]:
    """Milliseconds from a member's message reaching the emulator to the bot's first answer in the group."""
    timings = []
    for index, (member, text) in enumerate(commands):
        before = len(emu.sent(team))
        started = time.perf_counter()
        emu.group_message(team, users[member], text)
        await emu.wait_for(lambda before=before: len(emu.sent(team)) > before, within=30)
        if index >= WARM_UP:
            timings.append((time.perf_counter() - started) * 1000)
    return timings


async def _echo_round_trips(
    emu: Any, team: Any, users: dict[str, Any], commands: list[tuple[str, str]]
) -> list[float]:
    from telegram import Update
    from telegram.ext import Application, ContextTypes, MessageHandler, filters

    async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is not None and update.effective_message.text:
            await update.effective_message.reply_text(update.effective_message.text)

    application = (
        Application.builder().token(emu.token).base_url(emu.base_url).base_file_url(emu.base_file_url).build()
    )
    application.add_handler(MessageHandler(filters.ALL, echo))
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0.0, timeout=10)
        try:
            return await _round_trips(emu, team, users, commands)
        finally:
            await application.updater.stop()
            await application.stop()
