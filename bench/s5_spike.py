"""Scenario 5, spike: 10,000 mentions a minute for two minutes through the X emulator and the real tweepy.

The emulators run in their own process (``bench.platforms``): they stand for X's and Telegram's servers.
This process runs what ``inbox run`` runs — ``inbox.runtime.Runtime`` with the X channel's source
(``XSource`` on tweepy) behind a ``Poller`` into the ``Ingestor`` with the SLA and notifier hooks, the
SLA scheduler, the outbox dispatcher, the weekly-report job, and a Telegram channel (python-telegram-bot)
hosting the team chat that the notifier posts to within its send budget (20 a minute).

Config choices, because the real X would not allow the spike at all: on X's Basic and Pro tiers the
mentions endpoint allows 180-300 requests per 15 minutes, at most 100 posts each, so at most about 2,000
mentions a minute can be read. The emulator is given an Enterprise-like limit (``MENTIONS_LIMIT``
requests per 15 minutes) and keeps X's other rules (newest 800 mentions reachable, 429 with reset
headers). The channel polls every second (``poll_interval = 1``) and reads pages of 100. Telegram's flood
limits are on (20 messages a minute in a group, about one a second per chat).

Figures: ingest lag (a mention's ``created_at`` on X to the commit of the transaction that stored it),
p99; the most messages the bot posted to the team chat in any 60 s; 429 answers from either platform.
Baseline for the lag: a bare tweepy loop against a fresh emulator with the same stream, reading the
mentions the same way without storing anything.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event, select
from sqlmodel import col

from bench.common import Goal, Result, log, percentile
from bench.databases import bench_config
from bench.env import BenchEnv
from inbox.app import App
from inbox.clock import SystemClock
from inbox.ingest import IngestResult
from inbox.models import Channel
from inbox.settings import settings_from_dict

SCENARIO: Final = "5-spike"
MENTIONS_LIMIT: Final = 15_000
BUDGET: Final = 20  # Telegram's default team-chat budget a minute (inbox.settings.TEAM_CHAT_BUDGETS)
DRAIN_SECONDS: Final = 60.0


class Platforms:
    """The ``bench.platforms`` subprocess."""

    def __init__(self, process: asyncio.subprocess.Process, ready: dict[str, Any], seconds: float) -> None:
        self.process = process
        self.ready = ready
        self.seconds = seconds

    @classmethod
    async def start(cls, env: BenchEnv) -> Platforms:
        """Start it and read its endpoints."""
        sizes = env.sizes
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.platforms",
            "--rate",
            str(sizes.spike_per_minute),
            "--seconds",
            str(sizes.spike_seconds),
            "--seed",
            str(env.seed),
            "--mentions-limit",
            str(MENTIONS_LIMIT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).parent.parent,
        )
        return cls(process, await cls._read(process), sizes.spike_seconds)

    @staticmethod
    async def _read(process: asyncio.subprocess.Process, within: float = 60.0) -> dict[str, Any]:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=within)
        if not line:
            raise RuntimeError("bench.platforms ended without answering")
        data: dict[str, Any] = json.loads(line)
        return data

    async def send(self, command: str) -> dict[str, Any]:
        """Send a command; return the answer line (``start``: once the stream is over)."""
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return await self._read(self.process) if command == "stop" else {}

    async def produced(self) -> dict[str, Any]:
        """Wait for the end of the stream."""
        return await self._read(self.process, self.seconds + 60)

    async def close(self) -> None:
        """Make sure the process is gone."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


async def run(env: BenchEnv) -> list[Result]:
    """The bare tweepy baseline first, then the product, each against fresh emulators."""
    baseline = await _bare_tweepy(env)
    log(f"  bare tweepy: {len(baseline)} mentions read, lag p99 {percentile(baseline, 99) or 0:.2f}s")
    return await _product(env, baseline)


# --- the product ------------------------------------------------------------------------------------------


class LagRecorder:
    """An ingest hook noting, at commit, how late each stored inbound message is (seconds)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.target: int | None = None
        self.reached = asyncio.Event()

    def add(self, lags: list[float]) -> None:
        """Record lags; signal once ``target`` of them are in."""
        self.lags.extend(lags)
        if self.target is not None and len(self.lags) >= self.target:
            self.reached.set()

    async def wait_for(self, target: int, within: float) -> None:
        """Wait until ``target`` lags are recorded, or ``within`` seconds."""
        self.target = target
        self.add([])
        try:
            await asyncio.wait_for(self.reached.wait(), timeout=within)
        except TimeoutError:
            pass

    async def hook(self, session: Any, result: IngestResult) -> None:
        """Record the stored messages' creation times; measure them when the transaction commits."""
        created = [m.created_at for m in result.stored]

        def committed(_session: Any) -> None:
            at = time.time()
            self.add([at - c.timestamp() for c in created])

        event.listen(session.sync_session, "after_commit", committed, once=True)


async def _product(env: BenchEnv, baseline: list[float]) -> list[Result]:
    from inbox.runtime import Runtime

    sizes = env.sizes
    scratch = await env.scratch("spike")
    platforms = await Platforms.start(env)
    size = {
        "mentions_per_minute": sizes.spike_per_minute,
        "seconds": sizes.spike_seconds,
        "x_mentions_limit_per_15min": MENTIONS_LIMIT,
        "budget_per_minute": BUDGET,
    }
    try:
        ready = platforms.ready
        environ = {
            "X_CONSUMER_KEY": ready["x"]["consumer_key"],
            "X_CONSUMER_SECRET": ready["x"]["consumer_secret"],
            "X_ACCESS_TOKEN": ready["x"]["access_token"],
            "X_ACCESS_TOKEN_SECRET": ready["x"]["access_token_secret"],
            "TG_TOKEN": ready["tg_token"],
        }
        config = bench_config(scratch.url, env.workdir)
        config["channels"] += [
            {
                "name": "x",
                "type": "x",
                "api_base_url": ready["x_url"],
                "user_id": str(ready["x_user_id"]),
                "consumer_key_env": "X_CONSUMER_KEY",
                "consumer_secret_env": "X_CONSUMER_SECRET",
                "access_token_env": "X_ACCESS_TOKEN",
                "access_token_secret_env": "X_ACCESS_TOKEN_SECRET",
                "poll_interval": 1.0,
                "dms": False,
                "page_size": 100,
                "backfill": 5,
                "request_timeout": 10,
            },
            {
                "name": "tg",
                "type": "telegram",
                "token_env": "TG_TOKEN",
                "api_base_url": ready["tg_url"],
                "poll_timeout": 10,
                "customers": False,
            },
        ]
        config["team_chats"] = [{"name": "ops", "channel": "tg", "chat_id": str(ready["team_chat_id"])}]
        settings = settings_from_dict(config, environ=environ)
        app = await App.open(settings, SystemClock())
        recorder = LagRecorder()
        app.ingest_hooks.append(recorder.hook)
        runtime = Runtime(app, env.workdir)
        dispatcher = None
        try:
            runtime.build_connectors()
            dispatcher = runtime.start()
            await _first_poll(app)  # it reads the (empty) timeline and stores the cursor
            began = time.monotonic()
            await platforms.send("start")
            produced = (await platforms.produced())["produced"]
            log(
                f"  {produced} mentions posted in {time.monotonic() - began:.1f}s; "
                f"{len(recorder.lags)} ingested so far"
            )
            await recorder.wait_for(produced, DRAIN_SECONDS)
            await asyncio.sleep(1.0)  # let the dispatcher send what the last batches queued
        finally:
            runtime.stop.set()
            if dispatcher is not None:
                await asyncio.wait_for(runtime.wait(dispatcher), timeout=60)
            await app.close()
        seen = await platforms.send("stop")
    finally:
        await platforms.close()
        await scratch.drop()
    return _results(recorder.lags, produced, seen, baseline, size)


async def _first_poll(app: App, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with app.db.sessions() as session:
            cursor = await session.scalar(select(col(Channel.cursor)).where(col(Channel.name) == "x"))
        if cursor:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the X channel did not poll within 30 s")


def _per_minute_peak(times: list[int]) -> int:
    """The most messages in any 60-second window."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - 60:
            start += 1
        best = max(best, end - start + 1)
    return best


def _results(
    lags: list[float], produced: int, seen: dict[str, Any], baseline: list[float], size: dict[str, Any]
) -> list[Result]:
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    sent = [int(t) for t in seen.get("team_sent_at", []) if t is not None]
    peak = _per_minute_peak(sent)
    errors = int(seen.get("x_429", 0)) + int(seen.get("tg_429", 0))
    lost = produced - len(lags)
    log(
        f"  spike: lag p50 {p50 or 0:.2f}s p99 {p99 or 0:.2f}s; {len(lags)}/{produced} ingested; team chat "
        f"{len(sent)} messages, peak {peak}/min; 429s: X {seen.get('x_429')}, Telegram {seen.get('tg_429')}"
    )
    lag_notes = [
        f"p50 {p50 or 0:.2f} s, max {max(lags, default=0):.2f} s",
        f"{len(lags)} of {produced} mentions ingested ({lost} not read: X serves only the newest 800)"
        if lost
        else f"all {produced} mentions ingested",
    ]
    return [
        Result(
            SCENARIO,
            "ingest_lag_p99_s",
            "Spike: ingest lag p99",
            p99,
            "s",
            "lower",
            baseline=percentile(baseline, 99),
            baseline_label="bare tweepy poll loop, same stream, p99",
            goal=Goal("<", 5.0, "< 5 s"),
            size=size,
            notes=lag_notes,
        ),
        Result(
            SCENARIO,
            "team_chat_per_minute",
            "Spike: team-chat messages in the busiest minute",
            float(peak),
            "msgs/min",
            "lower",
            baseline=float(size["mentions_per_minute"]),
            baseline_label="one card per new mention (no budget)",
            goal=Goal("<=", float(BUDGET), f"<= budget ({BUDGET}/min)"),
            size=size,
            notes=[f"{len(sent)} messages posted to the team chat in all"],
        ),
        Result(
            SCENARIO,
            "http_429",
            "Spike: 429 answers received (X + Telegram)",
            float(errors),
            "429s",
            "lower",
            goal=Goal("<=", 0.0, "none"),
            size=size,
            notes=[
                f"X: {seen.get('x_429')} of {seen.get('x_requests')} requests; "
                f"Telegram: {seen.get('tg_429')} "
                f"of {seen.get('tg_requests')}"
            ],
        ),
    ]


# --- the baseline -----------------------------------------------------------------------------------------


async def _bare_tweepy(env: BenchEnv) -> list[float]:
    """Lags of a bare tweepy loop reading the same stream (no storing, same poll interval and pages)."""
    from tweepy.asynchronous import AsyncClient

    from connectors.x.session import XApiSession

    platforms = await Platforms.start(env)
    recorder = LagRecorder()
    ready = platforms.ready
    creds = ready["x"]
    client = AsyncClient(
        consumer_key=creds["consumer_key"],
        consumer_secret=creds["consumer_secret"],
        access_token=creds["access_token"],
        access_token_secret=creds["access_token_secret"],
    )
    session = XApiSession(ready["x_url"])
    client.session = session
    user = str(ready["x_user_id"])
    stop = asyncio.Event()
    task: asyncio.Future[None] | None = None
    try:

        async def poll() -> None:
            since: str | None = None
            first = await client.get_users_mentions(user, max_results=5, user_auth=True)
            since = (first.meta or {}).get("newest_id")
            while not stop.is_set():
                token, newest, read = None, None, 0
                while True:
                    page = await client.get_users_mentions(
                        user,
                        since_id=since,
                        pagination_token=token,
                        max_results=100,
                        tweet_fields=["created_at", "author_id", "conversation_id"],
                        user_auth=True,
                    )
                    now = time.time()
                    recorder.add([now - post.created_at.timestamp() for post in page.data or []])
                    read += len(page.data or [])
                    meta = page.meta or {}
                    newest = newest or meta.get("newest_id")
                    token = meta.get("next_token")
                    if not token:
                        break
                since = newest or since
                if not read:
                    await asyncio.sleep(1.0)

        task = asyncio.ensure_future(poll())
        await asyncio.sleep(1.0)
        await platforms.send("start")
        produced = (await platforms.produced())["produced"]
        await recorder.wait_for(produced, DRAIN_SECONDS)
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await platforms.send("stop")
    finally:
        if task is not None and not task.done():
            task.cancel()
        await session.close()
        await platforms.close()
    return recorder.lags
