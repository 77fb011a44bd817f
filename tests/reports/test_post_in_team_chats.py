"""The weekly post end to end: queued by the report job, sent by the real Telegram and Discord team senders
(paced by the notifier, as ``inbox run`` wires them) into the emulators' team chats, exactly once per week
across a worker that dies holding its claims, a restart, and a second process racing on its own engine."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from connectors.discord.emulator import DiscordEmulator
from connectors.discord.emulator_world import MessageRecord
from connectors.telegram.emulator import EmuChat, FloodLimits, TelegramEmulator
from connectors.telegram.emulator_world import SentMessage
from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Actor, Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import Delivery, DeliveryStatus, Kind, Member
from inbox.notify import Notifier
from inbox.outbox import Dispatcher, RetryPolicy
from inbox.registry import Connector, ConnectorContext, build_connector
from inbox.reports.job import WeeklyReportJob
from inbox.settings import Settings, settings_from_dict
from tests.connectors.discord.conftest import displayed
from tests.factories import DEFAULT_CONFIG, seed
from tests.reports.scenario import TZ, local

JOB_LEASE = timedelta(minutes=10)
OUTBOX_LEASE = timedelta(minutes=2)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Chats:
    """The two emulated platforms and the team chat each one hosts."""

    telegram: TelegramEmulator
    ops: EmuChat  # the Telegram supergroup of team chat "ops"
    discord: DiscordEmulator
    leads: int  # the Discord channel id of team chat "leads" (#inbox of the team server)

    def telegram_posts(self) -> list[SentMessage]:
        """What the bot posted in the Telegram team chat."""
        return self.telegram.sent(self.ops)

    def discord_posts(self) -> list[MessageRecord]:
        """What the bot posted in the Discord team channel."""
        return self.discord.sent(self.leads)


def team_settings(chats: Chats) -> Settings:
    """The default team and jsonl channels, a Telegram and a Discord channel each hosting one team chat,
    Jakarta time and the weekly post on Monday 09:00."""
    discord_team = chats.discord.guild("Saluran Team")
    data: dict[str, Any] = {
        **DEFAULT_CONFIG,
        "general": {"timezone": TZ},
        "channels": [
            *DEFAULT_CONFIG["channels"],
            {"name": "tg", "type": "telegram", "token_env": "TG_TOKEN", "api_base_url": chats.telegram.url,
             "request_timeout": 5},
            {"name": "dc", "type": "discord", "token_env": "DISCORD_TOKEN",
             "api_base_url": chats.discord.api_base, "gateway_url": chats.discord.gateway_url,
             "team_guild_id": discord_team.id},
        ],
        "team_chats": [
            {"name": "ops", "channel": "tg", "chat_id": str(chats.ops.id)},
            {"name": "leads", "channel": "dc", "chat_id": str(chats.leads)},
        ],
        "reports": {"enabled": True, "weekly_day": "mon", "weekly_time": "09:00"},
    }
    environ = {"TG_TOKEN": chats.telegram.token, "DISCORD_TOKEN": chats.discord.token}
    return settings_from_dict(data, environ=environ)


@dataclass
class Worker:
    """One ``inbox run`` process as far as the weekly post goes: its report job, and a dispatcher whose
    senders are the connectors it built (team chats through ``Notifier.senders``)."""

    job: WeeklyReportJob
    dispatcher: Dispatcher
    connectors: list[Connector]

    async def close(self) -> None:
        """Release the connectors' HTTP sessions."""
        for connector in self.connectors:
            if connector.close is not None:
                await connector.close()


class Workers(list[Worker]):
    """The workers a test started; a "crashed" one is simply not used again, all are closed at the end."""

    def start(self, db: Database, clock: FakeClock, settings: Settings, name: str, base_dir: Path) -> Worker:
        """Build a worker the way ``inbox.runtime`` does, without starting any loop."""
        worker = start_worker(db, clock, settings, name, base_dir)
        self.append(worker)
        return worker


def start_worker(db: Database, clock: FakeClock, settings: Settings, name: str, base_dir: Path) -> Worker:
    """Build a worker's connectors, paced team senders, dispatcher and report job."""
    notifier = Notifier(db, clock, settings)
    # No ingest and no commands: the platforms' update loops are not what this test is about.
    context = ConnectorContext(clock=clock, db=db, notices=notifier, settings=settings,
                               extra={"base_dir": base_dir, "language": "en"})
    connectors = {channel.name: build_connector(channel, context) for channel in settings.channels}
    senders: dict[str, Any] = {n: c.sender for n, c in connectors.items() if c.sender is not None}
    senders.update(notifier.senders({n: c.team_sender for n, c in connectors.items() if c.team_sender}))
    dispatcher = Dispatcher(db, clock, senders, worker_id=name, lease=OUTBOX_LEASE,
                            policy=RetryPolicy(jitter="none"), on_failed=notifier.on_failed)
    job = WeeklyReportJob(db, clock, settings, name, lease=JOB_LEASE)
    return Worker(job, dispatcher, list(connectors.values()))


@pytest.fixture
async def chats(clock: FakeClock) -> AsyncIterator[Chats]:
    """Both emulators, on the test's fake clock; discord.py points at the Discord one meanwhile."""
    flood = FloodLimits(enabled=False)
    async with TelegramEmulator(clock=clock, flood_limits=flood) as telegram, \
            DiscordEmulator(clock=clock) as dc:
        with dc.discord_py():
            ops = telegram.supergroup("Ops", bot_status="administrator")
            yield Chats(telegram, ops, dc, dc.channel("inbox", dc.guild("Saluran Team")).id)


@pytest.fixture
async def workers(chats: Chats) -> AsyncIterator[Workers]:
    """The test's workers, closed after it (before the emulators stop)."""
    started = Workers()
    yield started
    for worker in started:
        await worker.close()


async def play_week(db: Database, clock: FakeClock, dispatcher: Dispatcher) -> None:
    """Three conversations in 2026-W47, answered with /reply (first responses 20m, 90m and 10m), one
    resolved; the replies go out through the jsonl channels."""
    ingestor = Ingestor(db, clock)
    actions = Actions(db, clock)
    async with db.sessions() as session:
        members = {m.name: m.id for m in (await session.execute(select(Member))).scalars()}
    story = [  # key, channel, kind, customer writes, who answers, answered, resolved
        ("a", "support", Kind.DM, "2026-11-16 10:00", "carol", "2026-11-16 10:20", "2026-11-16 11:00"),
        ("b", "support", Kind.DM, "2026-11-18 14:00", "bob", "2026-11-18 15:30", None),
        ("c", "social", Kind.MENTION, "2026-11-20 09:00", "alice", "2026-11-20 09:10", None),
    ]
    for key, channel, kind, wrote, member, answered, resolved in story:
        clock.set(local(wrote))
        event = Inbound(channel=channel, external_id=f"{key}-1", kind=kind, author=Author(f"cust-{key}", key),
                        text=f"question {key}", created_at=clock.now(), thread_key=key)
        stored = await ingestor.ingest(Batch(channel, [event]))
        conversation = stored.stored[0].conversation_id
        assert conversation is not None
        actor = Actor("member", member, members[member])
        await actions.assign(actor, conversation, member)
        clock.set(local(answered))
        await actions.reply(actor, conversation, f"answer {key}")
        if resolved is not None:
            clock.set(local(resolved))
            await actions.resolve(actor, conversation)
    assert await dispatcher.run_once() == 3  # the three replies, to the customers' channels


async def report_rows(db: Database) -> list[Delivery]:
    """The outbox rows of weekly posts."""
    async with db.sessions() as session:
        query = select(Delivery).where(col(Delivery.purpose) == "report").order_by(col(Delivery.id))
        return list((await session.execute(query)).scalars())


async def restart_and_race(workers: Workers, db: Database, db_url: str, clock: FakeClock, settings: Settings,
                           base_dir: Path, name: str) -> tuple[Worker, list[str]]:
    """A restarted worker and a second process (its own engine) run the report job side by side; return
    the restarted worker and the weeks the two posted together."""
    restarted = workers.start(db, clock, settings, name, base_dir)
    other_db = Database(db_url)
    try:
        racer = WeeklyReportJob(other_db, clock, settings, f"{name}-racer", lease=JOB_LEASE)
        for job in (restarted.job, racer):
            await job.ensure_timer()  # each process ensures the next timer at start: a no-op for one of them
        results = await asyncio.gather(restarted.job.run_once(), racer.run_once())
    finally:
        await other_db.dispose()
    return restarted, [week for result in results for week in result.weeks]


def assert_posted(chats: Chats, weeks: list[str]) -> None:
    """Each chat holds one summary and one chart per week, in order, and nothing else."""
    telegram = chats.telegram_posts()
    assert [(p.kind, p.file is not None) for p in telegram] == [("text", False), ("photo", True)] * len(weeks)
    texts = [p.plain_text or "" for p in telegram if p.kind == "text"]
    assert [text.split("\n")[0] for text in texts] == [title(week) for week in weeks]
    for photo, week in zip([p for p in telegram if p.kind == "photo"], weeks, strict=True):
        assert photo.file is not None and photo.file.data.startswith(PNG_MAGIC)
        assert (photo.plain_text or "").startswith(week)  # the caption names the week
    discord = chats.discord_posts()
    assert len(discord) == len(weeks)  # the summary fits one message; the chart is attached to it
    for post, week in zip(discord, weeks, strict=True):
        assert displayed(post.content).split("\n")[0] == title(week)
        (attachment,) = post.attachments
        assert attachment.filename == f"saluran-report-{week}.png" and attachment.data.startswith(PNG_MAGIC)


def title(week: str) -> str:
    """The first line of a week's summary."""
    first, last = {"2026-W47": ("2026-11-16", "2026-11-22"), "2026-W48": ("2026-11-23", "2026-11-29")}[week]
    return f"Weekly report {week} ({first} to {last}, {TZ})"


async def test_the_weekly_post_appears_once_in_both_team_chats_across_a_restart(
    db: Database, db_url: str, clock: FakeClock, chats: Chats, workers: Workers, tmp_path: Path
) -> None:
    settings = team_settings(chats)
    await seed(db, clock, settings)
    clock.set(local("2026-11-16 09:30"))  # the first process starts (after last week's post)
    first = workers.start(db, clock, settings, "w1", tmp_path)
    assert await first.job.ensure_timer() == local("2026-11-23 09:00")
    await play_week(db, clock, first.dispatcher)
    assert (await first.job.run_once()).weeks == [] and await report_rows(db) == []

    # Monday 09:00: the first process queues the week's posts, its dispatcher claims them, and the
    # process dies before sending anything.
    clock.set(local("2026-11-23 09:00"))
    assert (await first.job.run_once()).weeks == ["2026-W47"]
    assert len(await first.dispatcher._claim()) == 2
    assert chats.telegram_posts() == [] and chats.discord_posts() == []

    # The restart, with a second process racing it: neither queues the week again, and once the dead
    # dispatcher's lease is over the restarted one sends each post once.
    clock.advance(OUTBOX_LEASE + timedelta(seconds=1))
    second, weeks = await restart_and_race(workers, db, db_url, clock, settings, tmp_path, "w2")
    assert weeks == []
    assert await second.dispatcher.run_once() == 2
    assert await second.dispatcher.run_once() == 0
    rows = await report_rows(db)
    assert [(r.destination, r.status, r.attempts) for r in rows] == [
        ("team:leads", DeliveryStatus.SENT.value, 2), ("team:ops", DeliveryStatus.SENT.value, 2),
    ]
    assert_posted(chats, ["2026-W47"])

    # The figures of the week, as both chats show them (10m, 20m and 90m to a first response).
    for text in (chats.telegram_posts()[0].plain_text or "", displayed(chats.discord_posts()[0].content)):
        lines = text.split("\n")
        assert "Conversations: 3 new, 1 resolved (before: 0 new, 0 resolved)" in lines
        assert "First response: median 20m, p90 1h16m (3)" in lines
        assert "  support: 2 new, 1 resolved, median first response 55m, 1 open" in lines
        assert "Backlog: 2 open, the oldest (#2) waiting 4d10h (before: 0)" in lines
    chart = next(r.payload["image_png_b64"] for r in rows if r.destination == "team:ops")
    photo = chats.telegram_posts()[1].file
    assert photo is not None and photo.data == base64.b64decode(chart)  # the chart the job drew

    # The next Monday: the restarted worker claims week 48 and dies holding the claim; after the job's
    # lease a new process takes it over (racing another), and each chat gets one more post, not two.
    clock.set(local("2026-11-30 09:00"))
    assert await second.job._claim() is not None
    clock.advance(JOB_LEASE + timedelta(seconds=1))
    third, weeks = await restart_and_race(workers, db, db_url, clock, settings, tmp_path, "w3")
    assert weeks == ["2026-W48"]
    assert await third.dispatcher.run_once() == 2
    assert await third.dispatcher.run_once() == 0
    assert_posted(chats, ["2026-W47", "2026-W48"])
    week48 = chats.telegram_posts()[2].plain_text or ""
    assert "Conversations: 0 new, 0 resolved (before: 3 new, 1 resolved)" in week48
    assert len(await report_rows(db)) == 4
