"""Item 13: a 30-minute soak on fake time, with random faults everywhere.

Customers write on Telegram (DMs, real python-telegram-bot polling the emulator), on X (mentions and
DMs, real tweepy polling the emulator), on Discord (DMs and mentions in a community server, pushed over
the emulator's gateway to the real discord.py session of the connector) and through the inbound API;
members reply to many of the conversations (on Discord through the connector's sender, via the outbox);
a ten-minute first-response SLA runs on every conversation. Two dispatchers (one of them keeps dying
right after claiming a row) and two SLA schedulers (one restarted every few minutes) work on two database
engines. Faults, drawn at random each step: Telegram and X answer 5xx, 429 or drop the connection;
Discord answers 503 or 429 (short enough for discord.py to wait it out, or long enough to be the
outbox's) to message sends, and its gateway connection drops (a TCP cut or a resumable close) while
customers keep writing, so what they wrote meanwhile arrives only through the RESUME's replay; an ingest
dies inside its transaction; a worker dies holding a claim. Telegram's own flood limits apply to the team
chat. A step waits (real time) until the Discord messages of that step are stored, so a seed's traffic and
faults are the same in every run.

At the end (faults off, the backlog drained): every inbound message is stored exactly once; every reply
was delivered exactly once (counted on the platform: the Telegram, X and Discord emulators) or is
visibly failed (a ``delivery.failed`` event and a notice, or a digest entry, in the team chat); nothing
is left pending; every SLA timer that came due fired exactly once, with one audit event each; the gateway
did drop and resume. A Discord message that never arrives is reported with what the gateway did (drops,
RESUMEs, INVALID_SESSIONs, whether it was sent while the bot was away).

Size: 2,000 inbound events by default (CI; about a sixth on Discord); ``INBOX_SOAK_FULL=1`` runs the
full 50,000 (several minutes per database), ``INBOX_SOAK_EVENTS=N`` any other number. The random seed
is ``INBOX_SOAK_SEED`` (default 13), printed on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from connectors.discord import DiscordParts, assemble
from connectors.discord.emulator import DiscordEmulator, User
from connectors.telegram import build as build_telegram
from connectors.telegram.emulator import EmuUser, FloodLimits, TelegramEmulator
from connectors.telegram.service import TelegramService
from connectors.x import build as build_x
from connectors.x.emulator import XEmulator
from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Actor, Author, Batch, Inbound, Outbound, Receipt
from inbox.ingest import Ingestor, IngestResult
from inbox.models import (
    Channel,
    Conversation,
    Delivery,
    DeliveryStatus,
    Event,
    Kind,
    Message,
    Timer,
    TimerStatus,
)
from inbox.notify import Notifier
from inbox.outbox import Dispatcher
from inbox.poller import Poller
from inbox.ports import Sender
from inbox.registry import Connector, ConnectorContext
from inbox.settings import Settings
from inbox.sla.engine import SlaEngine
from inbox.sla.scheduler import SlaScheduler
from tests.factories import seed
from tests.reliability.support import api_channel, environ, rows, settings_for, telegram_channel, x_channel

FULL = os.environ.get("INBOX_SOAK_FULL") == "1"
EVENTS = int(os.environ.get("INBOX_SOAK_EVENTS") or (50_000 if FULL else 2_000))
SEED = int(os.environ.get("INBOX_SOAK_SEED", "13"))
SOAK = timedelta(minutes=30)
STEP = timedelta(seconds=60)
PACE_SLICE = timedelta(seconds=5)  # finer than a team chat's pace, coarse enough to stay fast
DRAIN_LIMIT = timedelta(hours=6)
CAROL = Actor("member", "carol", None)
DC_TOKEN_ENV = "REL_DC_TOKEN"
DC_MESSAGES = "POST /channels/{channel_id}/messages"
DC_SETTLE = 5.0  # real seconds a step waits for the gateway's messages to be stored


class Crash(Exception):
    """An injected fault: the process died here."""


@dataclass
class Faults:
    """Random faults of one step, drawn from the soak's seeded generator."""

    rng: random.Random
    # The dying worker draws from its own generator: how many rows it claims depends on its race with
    # the steady one, and that must not shift the faults of later steps (nor the traffic they lead to).
    worker_rng: random.Random
    on: bool = True
    crash_next_ingest: bool = False
    crashes: int = 0
    gateway_drop_at: int | None = None  # drop Discord's gateway before the step's n-th Discord message

    def chance(self, p: float) -> bool:
        return self.on and self.rng.random() < p

    def worker_dies(self, p: float) -> bool:
        return self.on and self.worker_rng.random() < p


class DyingSender:
    """The sender of a worker that dies, now and then, right after it claimed a row (before the platform
    hears anything): the send never returns and the driver cancels the worker."""

    def __init__(self, inner: Sender, faults: Faults, died: asyncio.Future[None]) -> None:
        self.inner, self.faults, self.died = inner, faults, died

    async def send(self, outbound: Outbound) -> Receipt:
        if self.faults.worker_dies(0.15):
            if not self.died.done():
                self.died.set_result(None)
            await asyncio.Event().wait()
        return await self.inner.send(outbound)


@dataclass(frozen=True)
class DiscordPost:
    """A Discord customer's message: a DM, or a mention of the bot in the community's #general."""

    user: User
    mention: bool
    text: str


@dataclass
class Stored:
    """External ids of the Discord messages whose ingest committed; ``changed`` is set at each batch."""

    ids: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Expected:
    """What the customers sent and what the members replied."""

    telegram: set[str] = field(default_factory=set)
    x: set[str] = field(default_factory=set)
    api: set[str] = field(default_factory=set)
    api_queue: list[Batch] = field(default_factory=list)
    discord: set[str] = field(default_factory=set)
    discord_away: set[str] = field(default_factory=set)  # sent while the bot's gateway was down
    discord_posts: list[DiscordPost] = field(default_factory=list)  # decided, not sent yet
    replies: dict[str, str] = field(default_factory=dict)  # reply text -> destination channel


@dataclass
class Soak:
    """The whole rig: emulators, the core on two engines, the connectors, the loops' objects."""

    db: Database
    other: Database
    clock: FakeClock
    settings: Settings
    tg: TelegramEmulator
    x: XEmulator
    dc: DiscordEmulator
    faults: Faults
    ingestor: Ingestor
    actions: Actions
    notifier: Notifier
    telegram: Connector
    xconn: Connector
    x_poller: Poller
    discord: DiscordParts
    discord_stored: Stored
    senders: dict[str, Sender]
    expected: Expected = field(default_factory=Expected)
    schedulers: list[SlaScheduler] = field(default_factory=list)
    deaths: int = 0
    incarnation: int = 0
    customers: list[EmuUser] = field(default_factory=list)
    dc_customers: list[User] = field(default_factory=list)
    gateway_drops: int = 0
    seen_conversation: int = 0

    @property
    def service(self) -> TelegramService:
        service = getattr(self.telegram.service, "__self__", None)
        assert isinstance(service, TelegramService)
        return service

    # --- customers ------------------------------------------------------------------------------

    def customers_write(self, count: int, rng: random.Random) -> None:
        api: list[Inbound] = []
        for _ in range(count):
            roll = rng.random()
            if roll < 0.33:
                if not self.customers or rng.random() < 0.4:
                    self.customers.append(self.tg.user(f"Customer{len(self.customers)}"))
                person = rng.choice(self.customers)
                message = self.tg.user_dm(
                    person, f"tg message {len(self.expected.telegram)} from {person.id}"
                )
                self.expected.telegram.add(f"{message['chat']['id']}:{message['message_id']}")
            elif roll < 0.45:
                item = self.x.send_dm(f"xdm{rng.randrange(200)}", f"x dm {len(self.expected.x)}")
                self.expected.x.add(item.id)
            elif roll < 0.57:
                post = self.x.post_mention(f"fan{rng.randrange(500)}", f"mention {len(self.expected.x)}")
                self.expected.x.add(post.id)
            elif roll < 0.75:
                if not self.dc_customers or rng.random() < 0.4:
                    self.dc_customers.append(self.dc.add_user(f"dcustomer{len(self.dc_customers)}"))
                writer = rng.choice(self.dc_customers)
                number = len(self.expected.discord) + len(self.expected.discord_posts)
                text = f"discord message {number} from {writer.id}"
                self.expected.discord_posts.append(DiscordPost(writer, rng.random() < 0.35, text))
            else:
                number = len(self.expected.api)
                external = f"api-{number}"
                self.expected.api.add(external)
                api.append(
                    Inbound(
                        "partner",
                        external,
                        Kind.DM,
                        Author(f"crm-{rng.randrange(300)}"),
                        f"api message {number}",
                        self.clock.now(),
                    )
                )
        if api:  # the other system posts what it has as one request
            self.expected.api_queue.append(Batch("partner", api))

    async def discord_write(self) -> None:
        """The Discord customers send what they decided to, over the gateway (which may drop meanwhile)."""
        posts, self.expected.discord_posts = self.expected.discord_posts, []
        drop_at, self.faults.gateway_drop_at = self.faults.gateway_drop_at, None
        if drop_at is not None and not posts:
            await self.drop_gateway()
        general = self.dc.channel("general", "Saluran Community")
        for index, post in enumerate(posts):
            if index == drop_at:
                await self.drop_gateway()
            away = not self.dc.connected
            if post.mention:
                record = await self.dc.guild_message(general, post.user, f"{self.dc.bot.mention} {post.text}")
            else:
                record = await self.dc.user_dm(post.user, post.text)
            external = f"{record.channel_id}:{record.id}"
            self.expected.discord.add(external)
            if away:
                self.expected.discord_away.add(external)
        # Stored before the other platforms' ingest, so conversations are numbered the same in every run
        # of a seed (which ones get a reply depends on it).
        await self.discord_settle()

    async def drop_gateway(self) -> None:
        """Discord's gateway connection breaks: a TCP cut, or a close frame with a resumable code."""
        self.gateway_drops += await self.dc.drop_gateway(None if self.faults.rng.random() < 0.5 else 4000)

    async def discord_settle(self, within: float = DC_SETTLE) -> None:
        """Wait (real time: the gateway and discord.py run on their own) until every Discord message the
        customers sent is stored, or ``within`` seconds passed (what is missing then shows at the end)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not self.expected.discord <= self.discord_stored.ids:
                    self.discord_stored.changed.clear()
                    await self.discord_stored.changed.wait()

    # --- the loops, one step each --------------------------------------------------------------

    async def ingest_step(self) -> None:
        for _ in range(20):  # drain what arrived, up to a bound per step
            try:
                got = await self.service.poll_once()
            except Exception:
                break  # the update loop logs and retries; so do we, next step
            if got < 100:
                break
        try:
            await self.x_poller.poll_once()
        except Exception:
            pass
        waiting, self.expected.api_queue = self.expected.api_queue, []
        for position, batch in enumerate(waiting):
            try:
                await self.ingestor.ingest(batch)
            except Exception:
                self.expected.api_queue.extend(waiting[position:])  # the caller gets a 5xx and retries
                break
        await self.discord_settle()

    async def dispatch_step(self, steady: Dispatcher) -> None:
        self.incarnation += 1
        died: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        dying = Dispatcher(
            self.db,
            self.clock,
            {k: DyingSender(v, self.faults, died) for k, v in self.senders.items()},
            worker_id=f"flaky-{self.incarnation}",
            batch_size=1,
            on_failed=self.notifier.on_failed,
            rng=random.Random(self.incarnation),
        )
        flaky = asyncio.ensure_future(dying.run_once())
        for _ in range(5):  # the real loop dispatches again at once while rows are due
            if not await steady.run_once():
                break
        watched: set[asyncio.Future[Any]] = {flaky, died}
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if died.done() and not flaky.done():
            flaky.cancel()  # killed: its claim stays until the lease expires
            await asyncio.gather(flaky, return_exceptions=True)
            self.deaths += 1
        elif not died.done():
            died.cancel()

    async def schedule_step(self) -> None:
        async def drain(scheduler: SlaScheduler) -> None:
            while await scheduler.run_once():
                pass

        await asyncio.gather(*(drain(s) for s in self.schedulers))

    def inject_faults(self, force_drop: bool = False) -> None:
        f = self.faults
        if f.chance(0.05):
            self.tg.inject("getUpdates", 502)
        if f.chance(0.03):
            self.tg.drop("getUpdates")
        if f.chance(0.05):
            self.tg.inject("sendMessage", 502)
        if f.chance(0.03):
            self.tg.inject("sendMessage", 429, retry_after=5)
        if f.chance(0.03):
            self.tg.drop("sendMessage")
        if f.chance(0.05):
            self.x.inject("/2/users/*/mentions", 503)
        if f.chance(0.03):
            self.x.inject("/2/dm_events", 429, reset_in=20)
        if f.chance(0.05):
            self.x.inject("/2/tweets", 503, method="POST")
        if f.chance(0.05):
            self.dc.inject(DC_MESSAGES, 503)
        if f.chance(0.03):
            self.dc.inject(DC_MESSAGES, 429, retry_after=60)  # longer than discord.py waits: the outbox's
        if f.chance(0.03):
            self.dc.inject(DC_MESSAGES, 429, retry_after=0.05)  # discord.py waits this out itself
        if f.chance(0.08) or (force_drop and self.gateway_drops == 0):
            f.gateway_drop_at = f.rng.randrange(max(1, len(self.expected.discord_posts)))
        if f.chance(0.05):
            f.crash_next_ingest = True

    async def reply_some(self, rng: random.Random) -> None:
        """Members answer some of the conversations that appeared since last time."""
        async with self.db.sessions() as session:
            fresh = (
                await session.execute(
                    select(col(Conversation.id), col(Channel.name))
                    .join(Channel, col(Channel.id) == col(Conversation.channel_id))
                    .where(col(Conversation.id) > self.seen_conversation)
                    .order_by(col(Conversation.id))
                )
            ).all()
        for found, channel in fresh:
            assert found is not None
            conversation_id = int(found)
            self.seen_conversation = max(self.seen_conversation, conversation_id)
            if rng.random() < 0.3:
                text = f"reply {len(self.expected.replies)} to #{conversation_id}"
                await self.actions.reply(CAROL, conversation_id, text)
                self.expected.replies[text] = channel


def discord_channel(dc: DiscordEmulator) -> dict[str, Any]:
    """The discord channel ``dc``: DMs, and mentions in the community server (no team console here)."""
    return {
        "name": "dc",
        "type": "discord",
        "token_env": DC_TOKEN_ENV,
        "api_base_url": dc.api_base,
        "gateway_url": dc.gateway_url,
        "community_guild_ids": [dc.guild("Saluran Community").id],
    }


@contextlib.asynccontextmanager
async def discord_running(
    settings: Settings, context: ConnectorContext, stored: Stored
) -> AsyncIterator[DiscordParts]:
    """The Discord channel built as ``inbox run`` builds it, its gateway service running; ``stored`` collects
    the external ids of every batch the source managed to store."""
    ingest = context.ingest
    assert ingest is not None

    async def counted(batch: Batch) -> object:
        result = await ingest(batch)
        stored.ids.update(event.external_id for event in batch.events)
        stored.changed.set()
        return result

    conf = settings.channel("dc")
    assert conf is not None
    parts = assemble(conf, dataclasses.replace(context, ingest=counted))
    parts.service.ready_timeout = 0.05  # no guild to wait for before READY counts
    stop = asyncio.Event()
    assert parts.connector.service is not None
    service = asyncio.ensure_future(parts.connector.service(stop))
    try:
        yield parts
    finally:
        stop.set()
        await asyncio.wait_for(service, 10)
        await parts.aclose()


@pytest.fixture
async def soak(db: Database, db_url: str, clock: FakeClock) -> AsyncIterator[Soak]:
    faults = Faults(random.Random(SEED), random.Random(SEED + 1))
    # Telegram's per-chat limits as documented, but with a burst as large as the per-minute group limit:
    # the soak's coarse steps (one dispatcher pass per 30 s) would otherwise turn "1 per second" into
    # "3 per step" and the team chat's backlog would never drain.
    flood = FloodLimits(per_chat_burst=20)
    async with (
        TelegramEmulator(clock=clock, flood_limits=flood) as tg,
        XEmulator(clock=lambda: clock.now().timestamp()) as x,
        # Discord's per-channel send limit is tested elsewhere; here every mention is answered in #general
        # and discord.py would sleep out the bucket in real time.
        DiscordEmulator(clock=clock, message_rate_limit=(10_000, 1.0)) as dc,
    ):
        for key in (
            "GET /2/users/:id/mentions",
            "GET /2/dm_events",
            "POST /2/tweets",
            "POST /2/dm_conversations/with/:participant_id/messages",
        ):
            x.set_rate_limit(key, 5000)  # X's limits are tested elsewhere; here they would only starve
        carol = tg.user("Carol", user_id=1003)
        team = tg.supergroup("Ops", bot_status="administrator", members=[carol])
        channels = [
            telegram_channel(tg, mode="polling", poll_timeout=0.01),
            x_channel(x, poll_interval=10),
            discord_channel(dc),
            api_channel(),
        ]
        settings = settings_for(
            db_url,
            channels,
            {**environ(tg, x), DC_TOKEN_ENV: dc.token},
            team=team,
            team_budget=None,
            sla={"policies": [{"name": "default", "first_response": "10m"}]},
        )
        await seed(db, clock, settings)
        engine = SlaEngine(settings.sla, clock)
        notifier = Notifier(db, clock, settings)

        async def crash(session: AsyncSession, result: IngestResult) -> None:
            if faults.crash_next_ingest and result.stored:
                faults.crash_next_ingest = False
                faults.crashes += 1
                raise Crash("the process died inside the ingest transaction")

        ingestor = Ingestor(db, clock, hooks=[engine.ingest_hook, notifier.ingest_hook, crash])
        actions = Actions(db, clock, hooks=[engine.action_hook])
        context = ConnectorContext(
            clock=clock, db=db, notices=notifier, ingest=ingestor.ingest, settings=settings
        )
        tg_channel, x_conf = settings.channel("tg"), settings.channel("xs")
        assert tg_channel is not None and x_conf is not None
        telegram = build_telegram(tg_channel, context)
        xconn = build_x(x_conf, context)
        assert telegram.sender and telegram.team_sender and xconn.sender and xconn.source
        x_poller = Poller("xs", xconn.source, ingestor, db, clock, 10)  # type: ignore[arg-type]
        other = Database(db_url)
        discord_stored = Stored()
        try:
            with dc.discord_py():
                async with discord_running(settings, context, discord_stored) as discord:
                    await dc.wait_connected()
                    assert discord.connector.sender is not None
                    senders: dict[str, Sender] = {
                        "tg": telegram.sender,
                        "xs": xconn.sender,
                        "dc": discord.connector.sender,
                        **notifier.senders({"tg": telegram.team_sender}),
                    }
                    yield Soak(
                        db=db,
                        other=other,
                        clock=clock,
                        settings=settings,
                        tg=tg,
                        x=x,
                        dc=dc,
                        faults=faults,
                        ingestor=ingestor,
                        actions=actions,
                        notifier=notifier,
                        telegram=telegram,
                        xconn=xconn,
                        x_poller=x_poller,
                        discord=discord,
                        discord_stored=discord_stored,
                        senders=senders,
                    )
        finally:
            for connector in (telegram, xconn):
                if connector.close is not None:
                    await connector.close()
            await other.dispose()


def scheduler(soak: Soak, db: Database, name: str) -> SlaScheduler:
    return SlaScheduler(
        db,
        soak.clock,
        SlaEngine(soak.settings.sla, soak.clock),
        name,
        notify=Notifier(db, soak.clock, soak.settings).sla_notify,
    )


async def pass_time(soak: Soak, steady: Dispatcher, span: timedelta) -> None:
    """Let ``span`` pass in slices, dispatching after each, as the real loop would while time runs."""
    # Team chats are paced (a few messages, then one a second): one pass per minute would turn that
    # into a few messages a minute and the backlog would outgrow what a real bot sends.
    for _ in range(int(span / PACE_SLICE)):
        soak.clock.advance(PACE_SLICE)
        for _ in range(5):
            if not await steady.run_once():
                break


async def test_a_30_minute_soak_with_random_faults_loses_and_repeats_nothing(soak: Soak) -> None:
    rng = random.Random(SEED)
    steps = int(SOAK / STEP)
    per_step = [EVENTS // steps + (1 if i < EVENTS % steps else 0) for i in range(steps)]
    steady = Dispatcher(
        soak.other,
        soak.clock,
        soak.senders,
        worker_id="steady",
        on_failed=Notifier(soak.other, soak.clock, soak.settings).on_failed,
        rng=random.Random(1),
    )
    soak.schedulers = [scheduler(soak, soak.db, "s1"), scheduler(soak, soak.other, "s2")]
    # The X channel is set up before the traffic starts: its very first poll reads only the newest few
    # items on purpose (docs/x.md, backfill), so what came before it is not the inbox's to miss.
    await soak.x_poller.poll_once()
    start = soak.clock.now()
    for index, count in enumerate(per_step):
        soak.customers_write(count, rng)
        soak.inject_faults(force_drop=index >= steps // 2)  # the gateway drops at least once
        await soak.discord_write()
        await soak.ingest_step()
        await soak.reply_some(rng)
        await soak.dispatch_step(steady)
        if index % 3 == 2:  # every three minutes, scheduler s1 restarts (a new process)
            soak.schedulers[0] = scheduler(soak, soak.db, f"s1-{index}")
        await soak.schedule_step()
        await pass_time(soak, steady, STEP)

    soak.faults.on = False  # the platforms recover; drain the backlog
    soak.tg.clear_faults()
    soak.x.clear_faults()
    soak.dc.clear_faults()
    stalled, missing = 0, -1
    while True:
        await soak.ingest_step()
        await soak.dispatch_step(steady)
        await soak.schedule_step()
        left = await unsettled(soak)
        if not left:
            break
        assert soak.clock.now() - start < SOAK + DRAIN_LIMIT, f"did not settle (seed {SEED}): {left}"
        # Discord pushes; once its gateway stops bringing the missing messages, waiting longer is no use.
        now_missing = len(soak.expected.discord - soak.discord_stored.ids)
        stalled, missing = (stalled + 1 if now_missing and now_missing == missing else 0), now_missing
        if stalled >= 3:
            break
        await pass_time(soak, steady, timedelta(minutes=1))

    await check_inbound(soak)
    await check_replies(soak)
    await check_timers(soak)
    # The faults really happened: workers died holding claims, ingests died inside their transaction,
    # Discord's gateway dropped with customers writing and was resumed.
    assert soak.deaths > 0 and soak.faults.crashes > 0, (soak.deaths, soak.faults.crashes)
    assert soak.gateway_drops > 0 and soak.dc.resume_count > 0, (soak.gateway_drops, soak.dc.resume_count)


async def unsettled(soak: Soak) -> str:
    """What is left to ingest, send or fire ("" when nothing)."""
    async with soak.db.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Message).where(col(Message.direction) == "in")
        )
        busy = await session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(col(Delivery.status).in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]))
        )
        due = await session.scalar(
            select(func.count())
            .select_from(Timer)
            .where(col(Timer.status) == TimerStatus.PENDING, col(Timer.due_at) <= soak.clock.now())
        )
    left = {
        "api requests": len(soak.expected.api_queue),
        "telegram updates": len(soak.tg.pending_updates()),
        "discord events queued": soak.discord.source.pending if soak.discord.source else 0,
        "messages not stored": EVENTS - int(stored or 0),
        "deliveries": int(busy or 0),
        "due timers": int(due or 0),
    }
    if left["messages not stored"]:
        stored_ids = {
            str(m.external_id) for m in await rows(soak.db, Message, col(Message.direction) == "in")
        }
        for name, ids in (
            ("telegram", soak.expected.telegram),
            ("x", soak.expected.x),
            ("discord", soak.expected.discord),
            ("api", soak.expected.api),
        ):
            left[f"missing on {name}"] = len(ids - stored_ids)
    if left["deliveries"]:  # which ones, and why
        busy_rows = await rows(
            soak.db, Delivery, col(Delivery.status).in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING])
        )
        kinds = Counter(f"{d.status} {d.purpose} to {d.destination} ({d.last_error})" for d in busy_rows)
        left.update({f"[{what}]": n for what, n in kinds.items()})
    return ", ".join(f"{n} {what}" for what, n in left.items() if n)


async def check_inbound(soak: Soak) -> None:
    channels = {c.id: c.name for c in await rows(soak.db, Channel)}
    stored: dict[str, list[str]] = {}
    for message in await rows(soak.db, Message, col(Message.direction) == "in"):
        stored.setdefault(channels[message.channel_id], []).append(str(message.external_id))
    expected = {
        "tg": soak.expected.telegram,
        "xs": soak.expected.x,
        "dc": soak.expected.discord,
        "partner": soak.expected.api,
    }
    assert sum(len(ids) for ids in expected.values()) == EVENTS
    for channel, ids in expected.items():
        found = stored.get(channel, [])
        assert len(found) == len(set(found)), f"{channel}: a message stored twice (seed {SEED})"
        detail = discord_loss(soak, ids - set(found)) if channel == "dc" else ""
        assert set(found) == ids, (
            f"{channel}: {len(ids - set(found))} lost, {len(set(found) - ids)} extra{detail}"
        )


def discord_loss(soak: Soak, lost: set[str]) -> str:
    """What the gateway did with the Discord messages that were not stored, to say when they were lost."""
    if not lost:
        return ""
    gateway = soak.dc.gateway
    ids = {external.partition(":")[2] for external in lost}
    frames = Counter(
        e.session_id for e in gateway.dispatched if e.type == "MESSAGE_CREATE" and e.data["id"] in ids
    )
    away = len(lost & soak.expected.discord_away)
    return (
        f" (seed {SEED}): {away} of them sent while the gateway was down; "
        f"{soak.gateway_drops} drops, {gateway.identify_count} IDENTIFY, {gateway.resume_count} RESUME, "
        f"{gateway.invalid_session_count} INVALID_SESSION; dispatched to sessions {dict(frames)}; "
        f"{soak.discord.source.pending if soak.discord.source else 0} still queued in the source; "
        f"e.g. {sorted(lost)[:5]}"
    )


def platform_copies(soak: Soak) -> Counter[str]:
    """How many times each text reached a customer on the platforms."""
    seen: Counter[str] = Counter(m.plain_text or "" for m in soak.tg.sent() if m.chat_id > 0)
    seen.update(p.text for p in soak.x.posts_by_bot())
    seen.update(d.text for d in soak.x.dms_by_bot())
    seen.update(m.content for m in soak.dc.sent())  # what the Discord emulator received (no team chat there)
    return seen


async def check_replies(soak: Soak) -> None:
    deliveries = await rows(soak.db, Delivery)
    assert {d.status for d in deliveries} <= {DeliveryStatus.SENT, DeliveryStatus.FAILED}
    failed_events = {
        e.data["delivery_id"] for e in await rows(soak.db, Event, col(Event.type) == "delivery.failed")
    }
    # The team hears of a failure in a notice of its own, or, over the chat's budget, in its digest.
    noticed = {d.payload["view"]["delivery_id"] for d in deliveries if d.purpose == "failed"}
    digest_ids = {d.id for d in deliveries if d.purpose == "digest"}
    digested = {c for e in await rows(soak.db, Event, col(Event.type) == "digest.folded")
                if e.data["delivery_id"] in digest_ids for c in e.data["conversation_ids"]}
    copies = platform_copies(soak)
    replies = {d.payload["text"]: d for d in deliveries if d.purpose == "reply"}
    assert set(replies) == set(soak.expected.replies)
    for text, delivery in replies.items():
        platform_text = text if delivery.destination != "xs" or delivery.payload.get("kind") == "dm" else None
        if delivery.status == DeliveryStatus.SENT:
            matches = (
                [n for seen, n in copies.items() if text in seen] if platform_text is None else [copies[text]]
            )
            assert matches == [1], f"{text!r} reached the customer {matches} times (seed {SEED})"
        else:  # visibly failed: audited, and the team was told
            assert delivery.id in failed_events, text
            assert delivery.id in noticed or delivery.conversation_id in digested, text
    api = [d for d in replies.values() if d.destination == "partner"]
    assert all(d.status == DeliveryStatus.FAILED for d in api)  # inbound-only channel: failed, not lost


async def check_timers(soak: Soak) -> None:
    timers = await rows(soak.db, Timer)
    assert not [t for t in timers if t.status == TimerStatus.FIRING]
    assert not [t for t in timers if t.status == TimerStatus.PENDING and t.due_at <= soak.clock.now()]
    fired = Counter((t.conversation_id, t.kind) for t in timers if t.status == TimerStatus.FIRED)
    assert fired and set(fired.values()) == {1}
    events = Counter(
        (e.conversation_id, e.type)
        for e in await rows(soak.db, Event, col(Event.type).in_(["sla.warning", "sla.breached"]))
    )
    assert set(events.values()) == {1}, f"an SLA event twice (seed {SEED})"
    as_events = Counter(
        {
            (c, "sla.warning" if k == "sla.warning" else "sla.breached"): n
            for (c, k), n in fired.items()
            if k in ("sla.warning", "sla.breach")
        }
    )
    assert events == as_events
