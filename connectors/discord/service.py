"""The discord.py clients: a REST client for sending, and the gateway session run under a lease.

Two clients per channel, for two lifetimes:

- ``DiscordRest`` logs in lazily and only talks HTTP. The senders use it, so any worker can deliver
  outbox rows, whether or not it holds the gateway.
- ``DiscordService.run`` is the long-running loop the runtime starts while this process holds the
  lease ``discord:<hash of the token>`` (Discord allows one gateway session per token and shard). It
  registers the slash commands, connects, hands customer messages to the source and team input to
  the console, and closes the client when told to stop.

Reconnecting and resuming are discord.py's job: after a dropped connection it RESUMEs with the last
sequence number and Discord replays what was sent meanwhile. Every replayed frame reaches
``on_socket_raw_receive`` like any other, and ingest drops duplicates, so a message delivered while
the connection was down is stored once. A session Discord no longer resumes (a long outage) starts
afresh: Discord replays nothing from that gap, so every new session reads back what the channels
customers wrote in received after the newest stored message (``catch_up``, docs/discord.md).

Intents, and why each is needed (``gateway_intents``):

- ``guilds``: the channel and thread cache, to tell a thread's parent (support channels, the team's
  conversation threads) and to receive the threads the bot creates;
- ``guild_messages``: messages in servers: support channels, mentions, notes in team threads;
- ``dm_messages``: customers' direct messages to the bot;
- ``message_content`` (privileged, switched on in the developer portal): the text of server messages
  that do not mention the bot (support channels, replies inside threads, team notes). DMs and
  mentions carry their text without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import discord
import discord.gateway
import discord.http
import yarl

from connectors.discord.convert import Where, team_message
from connectors.discord.source import DiscordSource
from inbox.ports import NoticeSink

if TYPE_CHECKING:
    from connectors.discord.catch_up import CatchUp
    from connectors.discord.console import DiscordConsole

log = logging.getLogger(__name__)
T = TypeVar("T")

DISCORD_API = "https://discord.com/api/v10"
DISCORD_GATEWAY = "wss://gateway.discord.gg/"
# discord.py waits itself for a 429 up to this long (its minimum); a longer wait is raised to the
# outbox as RateLimited, which reschedules the row instead of holding a dispatcher.
MAX_RATE_LIMIT_WAIT = 30.0
_WHERE_CACHE = 1000  # channels remembered by id (their kind and parent never change)


def gateway_intents() -> discord.Intents:
    """The intents the gateway session asks for (the module docstring says why each)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    return intents


def lease_key(token: str) -> str:
    """The lease that keeps one gateway session per bot token across processes."""
    return "discord:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def point_discord_py(api_base_url: str | None, gateway_url: str | None) -> None:
    """Send discord.py's REST calls and first gateway connection to other URLs (an emulator, a proxy).

    discord.py keeps both in class attributes, so they hold for the whole process: two channels that
    want different URLs cannot share a process, and that is refused here with a clear message.
    """
    route = discord.http.Route
    socket = discord.gateway.DiscordWebSocket
    if api_base_url is not None:
        wanted = api_base_url.rstrip("/")
        if route.BASE not in (DISCORD_API, wanted):
            raise ValueError(f"discord.py already sends to {route.BASE}; api_base_url {wanted} cannot be "
                             "used by a second channel in the same process")
        route.BASE = wanted
    if gateway_url is not None:
        url = yarl.URL(gateway_url)
        if str(socket.DEFAULT_GATEWAY) not in (DISCORD_GATEWAY, str(url)):
            raise ValueError(f"discord.py already connects to {socket.DEFAULT_GATEWAY}; gateway_url "
                             f"{gateway_url} cannot be used by a second channel in the same process")
        socket.DEFAULT_GATEWAY = url


async def find_channel(client: discord.Client, channel_id: int, channel: str) -> Any | None:
    """A Discord channel from the client's cache, else one REST lookup; None (logged) if Discord has none."""
    found: Any = client.get_channel(channel_id)
    if found is None:
        try:
            found = await client.fetch_channel(channel_id)
        except (discord.HTTPException, discord.InvalidData) as exc:
            log.warning("discord %s: channel %s unknown (%s)", channel, channel_id, exc)
            return None
    return found

class DiscordRest:
    """An HTTP-only discord.py client, logged in on first use and shared by the senders."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._client: discord.Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> discord.Client:
        """The logged-in client (logging in once; a failed login is tried again on the next call)."""
        async with self._lock:
            if self._client is None:
                client = discord.Client(
                    intents=discord.Intents(guilds=True),  # never connects; guilds keeps discord.py quiet
                    allowed_mentions=discord.AllowedMentions.none(),
                    max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT,
                )
                try:
                    await client.login(self._token)
                except BaseException:
                    await client.close()
                    raise
                self._client = client
            return self._client

    async def aclose(self) -> None:
        """Close the HTTP session (the connector's ``close`` hook, run when ``inbox run`` stops)."""
        async with self._lock:
            if self._client is not None:
                await self._client.close()
                self._client = None


class GatewayClient(discord.Client):
    """The gateway session: hands raw message frames and interactions to the service."""

    def __init__(self, service: DiscordService, *, ready_timeout: float) -> None:
        super().__init__(
            intents=gateway_intents(),
            allowed_mentions=discord.AllowedMentions.none(),  # every message pings nobody unless it says so
            enable_debug_events=True,  # on_socket_raw_receive: the gateway payloads, in order
            guild_ready_timeout=ready_timeout,
        )
        self.service = service

    async def setup_hook(self) -> None:
        """After login, before the gateway connects: register the slash commands."""
        await self.service.setup(self)

    async def on_socket_raw_receive(self, message: str) -> None:
        """Every gateway frame, replays after a RESUME included; nothing is awaited before it is queued."""
        self.service.on_frame(self, message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Slash commands and button presses."""
        await self.service.on_interaction(interaction)

    async def on_ready(self) -> None:
        """Log the session; tell the team when it works again after a problem; read back the gap."""
        log.info("discord %s: gateway ready as %s", self.service.channel, self.user)
        await self.service.recovered()
        self.service.catch_up_from(self)

    async def on_resumed(self) -> None:
        """Log resumed sessions (Discord replays what was missed)."""
        log.info("discord %s: gateway session resumed", self.service.channel)


class DiscordService:
    """Runs one gateway session for a channel: customers to the source, the team to the console."""

    def __init__(self, channel: str, token: str, source: DiscordSource | None,
                 console: DiscordConsole | None, *, ready_timeout: float = 2.0,
                 notices: NoticeSink | None = None) -> None:
        self.channel = channel
        self._token = token
        self.source = source
        self.console = console
        self.ready_timeout = ready_timeout
        self.notices = notices
        self._reported: str | None = None  # the problem the team was told about, until it is over
        self._session_problem = False  # whether a working session ends it (a refused token does)
        self.client: GatewayClient | None = None
        self._where: OrderedDict[int, Where] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.catch_up: CatchUp | None = None  # reads back what a new session's gateway did not replay
        self._catching_up: asyncio.Task[int] | None = None
        self._catch_up_again: discord.Client | None = None
        self.catch_ups = 0  # catch-ups finished (for logs and tests)

    async def setup(self, client: GatewayClient) -> None:
        """Called once logged in: learn the bot's id, register commands."""
        if client.user is not None and self.source is not None:
            self.source.set_bot(client.user.id)
        if self.console is not None:
            problem = await self.console.setup(client)
            if problem is not None:
                await self._problem(problem, session=False)

    async def run(self, stop: asyncio.Event) -> None:
        """Connect and serve until ``stop`` is set; then close the client and store what was queued."""
        client = GatewayClient(self, ready_timeout=self.ready_timeout)
        self.client = client
        source_stop = asyncio.Event()
        source_task = None
        if self.source is not None:
            ingest = self.source.run(source_stop)
            source_task = asyncio.create_task(ingest, name=f"discord:{self.channel}:ingest")
        gateway: asyncio.Task[None] | None = None
        try:
            try:
                await client.login(self._token)
            except discord.LoginFailure as exc:
                await self._problem(f"the bot token was refused: {exc}")
                raise
            gateway = asyncio.create_task(client.connect(reconnect=True), name=f"discord:{self.channel}")
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({gateway, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if gateway.done() and not stop.is_set():
                ended = gateway.exception()
                await self._problem(f"the gateway connection ended: {ended!r}")
                if ended is not None:
                    raise ended
        finally:
            if self._tasks:  # notes being stored may still answer in their thread
                await asyncio.wait(set(self._tasks), timeout=5.0)
            await client.close()  # connect() returns once the client is closed
            if gateway is not None and not gateway.done():
                try:
                    await asyncio.wait_for(gateway, timeout=5.0)
                except (TimeoutError, asyncio.CancelledError):
                    pass
                except Exception as exc:
                    log.debug("discord %s: gateway task ended with %r", self.channel, exc)
            await asyncio.sleep(0)  # let event tasks discord.py scheduled while closing run (and queue)
            left = list(self._tasks)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            source_stop.set()
            if source_task is not None:
                await source_task
            self.client = None

    async def _problem(self, detail: str, *, session: bool = True) -> None:
        """Log a problem and tell the team once (the lease retries a failed session every few seconds)."""
        log.error("discord %s: %s", self.channel, detail)
        if self.notices is not None and detail != self._reported:
            self._reported = detail
            self._session_problem = session
            with contextlib.suppress(Exception):
                await self.notices.notice("health.error", channel=self.channel, detail=detail)

    def catch_up_from(self, client: discord.Client) -> None:
        """A new session is ready: feed the source what was sent since the newest stored messages."""
        if self.catch_up is None or self.source is None:
            return
        if self._catching_up is not None and not self._catching_up.done():
            # Another session came and went meanwhile: channels already read may have missed its gap,
            # so read them all again once this catch-up ends.
            self._catch_up_again = client
            return
        task = self._spawn(self.catch_up.run(client, self.source.feed))
        self._catching_up = task
        task.add_done_callback(self._caught_up)

    def _caught_up(self, task: asyncio.Task[int]) -> None:
        if task.cancelled():
            return
        self.catch_ups += 1
        again, self._catch_up_again = self._catch_up_again, None
        if again is not None:
            self.catch_up_from(again)

    async def recovered(self) -> None:
        """The session is ready: if the team heard of a problem, tell them it is over."""
        if self.notices is not None and self._reported is not None and self._session_problem:
            self._reported = None
            with contextlib.suppress(Exception):
                await self.notices.notice("health.ok", channel=self.channel)

    # --- gateway input ------------------------------------------------------------------------------

    def on_frame(self, client: discord.Client, message: str) -> None:
        """Route one raw gateway frame: customer messages to the source, team messages to the console."""
        try:
            frame = json.loads(message)
        except ValueError:
            return
        event = frame.get("t") if isinstance(frame, dict) else None
        payload = frame.get("d") if isinstance(frame, dict) else None
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE") or not isinstance(payload, dict):
            return
        if self.console is not None and event == "MESSAGE_CREATE":
            found = team_message(payload, self.console.scope)
            if found is not None:
                self._spawn(self.console.on_team_message(client, found))
                return
        if self.source is not None:
            self.source.feed(event, payload)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Hand slash commands and button presses to the console."""
        if self.console is not None:
            await self.console.on_interaction(interaction)

    def _spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        task: asyncio.Task[T] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def resolve(self, channel_id: int, guild_id: int | None) -> Where:
        """What kind of channel ``channel_id`` is: the cache first, else one REST lookup (remembered)."""
        if guild_id is None:
            return Where.dm()
        known = self._where.get(channel_id)
        if known is not None:
            return known
        client = self.client
        channel: Any = None
        if client is not None:
            channel = await find_channel(client, channel_id, self.channel)
            if channel is None:
                return Where.guild(guild_id)
        if isinstance(channel, discord.Thread):
            where = Where.thread(guild_id, channel.parent_id, channel.name)
        else:
            where = Where.guild(guild_id)
        self._where[channel_id] = where
        if len(self._where) > _WHERE_CACHE:
            self._where.popitem(last=False)
        return where
