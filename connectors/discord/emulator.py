"""A fake Discord (HTTP API v10 and gateway) that the real discord.py runs against, for tests and the demo.

What it serves
    REST under ``/api/v10``: the current user and application, the gateway URL, channel messages
    (create, fetch, list by ``after``/``before``/``around``, edit; replies, ``allowed_mentions``,
    buttons, embeds, file uploads), DM channels, threads (with and without a starter message),
    bulk-overwritten application commands, interaction callbacks (types 4, 5, 6, 7) with the
    ``@original`` response and follow-ups.
    The gateway websocket at ``/gateway`` (see ``emulator_gateway``): HELLO, IDENTIFY → READY and
    GUILD_CREATE, heartbeats, RESUME with replay of missed events, INVALID_SESSION, intents
    (MESSAGE_CONTENT empties content of guild messages that do not mention the bot).

Behaving like Discord
    Every JSON response has ``Content-Type: application/json`` exactly (discord.py compares the
    header verbatim) and Discord's rate-limit headers (``X-RateLimit-Limit``, ``-Remaining``,
    ``-Reset``, ``-Reset-After``, ``-Bucket``). Sending messages is limited per channel (5 per 5 s
    by default) and an exceeded bucket answers 429 with Discord's JSON body, ``Retry-After``,
    ``X-RateLimit-Scope`` and ``Via: 1.1 google`` (discord.py treats a 429 without ``Via`` as a
    Cloudflare ban). Errors carry Discord's codes (50035 Invalid Form Body for a message over 2,000
    characters, 10003 Unknown Channel, 40060 interaction already acknowledged, ...).

Pointing discord.py at it (the seams)
    discord.py has no per-client base URL. REST URLs are built from the class attribute
    ``discord.http.Route.BASE``, which discord.py itself rewrites when the API version changes
    (``discord.http._set_api_version``), so setting it is a supported seam; webhooks and
    interaction callbacks use the same ``Route``. Subclassing ``HTTPClient`` would not help: the
    ``Client`` builds its own ``HTTPClient`` and ``ConnectionState`` keeps a reference to it.
    A plain ``Client`` never asks ``GET /gateway/bot``: its first connection, and every one after an
    INVALID_SESSION, goes to the class attribute ``DiscordWebSocket.DEFAULT_GATEWAY``; resumes go to
    the ``resume_gateway_url`` of READY, which the emulator points at itself, so discord.py never
    falls back to ``wss://gateway.discord.gg`` as long as ``DEFAULT_GATEWAY`` is set too.
    ``discord_py_endpoints()`` sets both and restores them; both are process-wide, so one process
    talks to one Discord (or emulator) at a time.

Acting as users, and looking at what the bot did
    ``user_dm``, ``guild_message``, ``user_edit``, ``slash_command`` and ``press_button`` dispatch
    gateway events as Discord would; ``sent()``, ``interaction_responses``, ``registered_commands``
    and ``requests`` record what the bot did; ``wait_for``/``wait_sent`` wait for it. Faults:
    ``inject()`` (429, 5xx or any status, ``times`` in a row, optional delay for slow responses),
    ``drop_gateway()`` (the connection breaks; discord.py reconnects and RESUMEs),
    ``request_reconnect()``, ``invalidate_sessions()`` and ``close_dms()``.

Like Discord, it echoes the bot's own messages back as MESSAGE_CREATE, posts a "thread created"
system message (type 18) in the parent of a thread created without a starter message, and pings
everything in the content when a request has no ``allowed_mentions`` (discord.py sends none unless
the client or the call sets them). A thread started from a message takes that message's id.

Not emulated: permission overwrites (the bot may post anywhere; ``inject(..., 403)`` simulates a
refusal), zombie-connection detection (missed heartbeats), ETF encoding and zstd-stream, gateway
rate limits, and routes outside the list above (they answer Discord's JSON 404).

Timestamps and snowflakes come from an injectable wall clock (anything with ``now()``, such as
``inbox.clock.FakeClock``); rate-limit windows and the 3-second interaction deadline use the event
loop's monotonic time, since discord.py sleeps in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from aiohttp import BodyPartReader, web

from connectors.discord.emulator_gateway import (
    DIRECT_MESSAGES,
    GUILD_MEMBERS,
    GUILD_MESSAGES,
    GUILDS,
    PRIVILEGED_INTENTS,
    DispatchedEvent,
    Gateway,
    GatewaySession,
)
from connectors.discord.emulator_http import (
    ALLOWED_MESSAGE_FLAGS,
    API_PREFIX,
    DEFAULT_FAULT_BODIES,
    ROUTES,
    Call,
    DiscordHTTPError,
    Fault,
    FormErrors,
    RateLimitedError,
    RateLimits,
    RequestRecord,
    RestRoute,
    allowed_mentions,
    command_payload,
    field_error,
    message_components,
    message_content,
    message_embeds,
)
from connectors.discord.emulator_world import (
    ADMINISTRATOR,
    BOT_PERMISSIONS,
    CHAT_INPUT_COMMAND,
    DM,
    EPHEMERAL,
    GUILD_CATEGORY,
    GUILD_TEXT,
    LOADING,
    MENTION_EVERYONE,
    PUBLIC_THREAD,
    REPLY,
    THREAD_CREATED,
    Attachment,
    Channel,
    Guild,
    InteractionRecord,
    InteractionResponse,
    Json,
    Member,
    MessageRecord,
    Pings,
    Role,
    Snowflakes,
    User,
    WallClock,
    compute_pings,
    iso,
)
from inbox.clock import SystemClock

__all__ = [
    "DEFAULT_TOKEN",
    "ROUTES",
    "Attachment",
    "Channel",
    "DiscordEmulator",
    "DiscordHTTPError",
    "DispatchedEvent",
    "Fault",
    "Guild",
    "InteractionRecord",
    "InteractionResponse",
    "Member",
    "MessageRecord",
    "Pings",
    "RequestRecord",
    "RestRoute",
    "Role",
    "User",
    "discord_py_endpoints",
]

log = logging.getLogger(__name__)

GATEWAY_PATH = "/gateway"
DEFAULT_TOKEN = "emulator-bot-token"
INTERACTION_DEADLINE = 3.0  # seconds Discord waits for the first interaction callback


# --- pointing discord.py at the emulator -----------------------------------------------------


@contextlib.contextmanager
def discord_py_endpoints(api_base: str, gateway_url: str) -> Iterator[None]:
    """Point discord.py's REST base (``Route.BASE``) and default gateway at other URLs, then restore them."""
    import discord.gateway
    import discord.http
    import yarl

    route = discord.http.Route
    socket = discord.gateway.DiscordWebSocket
    saved_base, saved_gateway = route.BASE, socket.DEFAULT_GATEWAY
    route.BASE = api_base.rstrip("/")
    socket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        route.BASE = saved_base
        socket.DEFAULT_GATEWAY = saved_gateway


# --- the emulator --------------------------------------------------------------------------------


class DiscordEmulator:
    """An aiohttp server speaking Discord's REST API v10 and gateway, with a test API on the side."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        bot_name: str = "Saluran",
        clock: WallClock | None = None,
        seed: bool = True,
        privileged_intents: int = PRIVILEGED_INTENTS,
        message_rate_limit: tuple[int, float] = (5, 5.0),
        default_rate_limit: tuple[int, float] = (50, 1.0),
        heartbeat_interval_ms: int = 41_250,
        interaction_deadline: float = INTERACTION_DEADLINE,
    ) -> None:
        self.token = token
        self.privileged_intents = privileged_intents
        self.message_rate_limit = message_rate_limit
        self.default_rate_limit = default_rate_limit
        self.interaction_deadline = interaction_deadline
        self.clock: WallClock = clock or SystemClock()
        self.snowflakes = Snowflakes(self.clock)
        self.gateway = Gateway(self, heartbeat_interval_ms=heartbeat_interval_ms)

        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, MessageRecord] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.interaction_responses: list[InteractionResponse] = []
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self.dms_closed: set[int] = set()
        self._dm_channels: dict[int, Channel] = {}
        self._commands: dict[int | None, list[Json]] = {}

        self.bot = self.add_user(bot_name, bot=True)
        self.application_id = self.bot.id  # modern bots share their application's id
        self.owner = self.add_user("owner", global_name="Workspace Owner")
        self.verify_key = secrets.token_hex(32)

        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self._rate_limits: RateLimits | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        if seed:
            self.seed_world()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0: any free port; read ``port`` afterwards)."""
        self._rate_limits = RateLimits(asyncio.get_running_loop().time)
        app = web.Application(middlewares=[self._unknown_route_middleware], client_max_size=25 * 1024 * 1024)
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        self._host = host
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close gateway connections and stop listening."""
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._site = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The TCP port the emulator listens on."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self._host}:{self._port}"

    @property
    def api_base(self) -> str:
        """The REST base URL, the emulator's ``Route.BASE``."""
        return f"{self.base_url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """The gateway URL (READY's ``resume_gateway_url`` and ``GET /gateway/bot``'s ``url``)."""
        return f"ws://{self._host}:{self._port}{GATEWAY_PATH}"

    def discord_py(self) -> contextlib.AbstractContextManager[None]:
        """Point discord.py at this emulator for the duration of a ``with`` block."""
        return discord_py_endpoints(self.api_base, self.gateway_url)

    # --- world building (call before the bot connects; no events are dispatched) ---------------

    def seed_world(self) -> None:
        """Seed a community server (customers dana, eli) and a team server (alice, bob, carol: Agents)."""
        community = self.add_guild("Saluran Community", channels=("general", "support", "announcements"))
        self.add_role(community, "Moderators", mentionable=True)
        for name, display in (("dana", "Dana Customer"), ("eli", "Eli Customer")):
            self.add_member(community, self.add_user(name, global_name=display))
        team = self.add_guild("Saluran Team", channels=("inbox", "alerts"))
        agents = self.add_role(team, "Agents", mentionable=True)
        for name, display in (("alice", "Alice Admin"), ("bob", "Bob Lead"), ("carol", "Carol Agent")):
            self.add_member(team, self.add_user(name, global_name=display), roles=[agents])

    def add_user(self, username: str, *, global_name: str | None = None, bot: bool = False) -> User:
        """Create a Discord user."""
        user = User(self.snowflakes.next(), username, global_name, bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self, name: str, *, channels: Sequence[str] = ("general",), owner: User | None = None
    ) -> Guild:
        """Create a server with a text category, text channels, an ``@everyone`` role, the bot as member."""
        guild_id = self.snowflakes.next()
        owner = owner or self.owner
        guild = Guild(guild_id, name, owner.id, self.clock.now())
        guild.roles.append(Role(guild_id, guild_id, "@everyone"))
        self.guilds[guild_id] = guild
        category = self.add_channel(guild, "Text Channels", type=GUILD_CATEGORY)
        for channel_name in channels:
            self.add_channel(guild, channel_name, parent=category)
        self.add_member(guild, owner)
        bot_role = self.add_role(guild, self.bot.username, permissions=BOT_PERMISSIONS)
        self.add_member(guild, self.bot, roles=[bot_role])
        return guild

    def add_channel(
        self,
        guild: Guild | int,
        name: str,
        *,
        type: int = GUILD_TEXT,
        parent: Channel | None = None,
        topic: str | None = None,
    ) -> Channel:
        """Create a guild channel."""
        guild = self._guild(guild)
        channel = Channel(
            self.snowflakes.next(),
            type,
            name,
            guild.id,
            parent.id if parent else None,
            position=len(guild.channels),
            topic=topic,
            created_at=self.clock.now(),
        )
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        return channel

    def add_role(
        self,
        guild: Guild | int,
        name: str,
        *,
        mentionable: bool = False,
        permissions: int = 0,
    ) -> Role:
        """Create a role."""
        guild = self._guild(guild)
        role = Role(self.snowflakes.next(), guild.id, name, permissions, len(guild.roles), mentionable)
        guild.roles.append(role)
        return role

    def add_member(self, guild: Guild | int, user: User | int, *, roles: Sequence[Role | int] = ()) -> Member:
        """Make a user a member of a server (no-op if already)."""
        guild = self._guild(guild)
        user = self._user(user)
        member = guild.members.get(user.id)
        if member is None:
            member = Member(user, guild.id, self.clock.now())
            guild.members[user.id] = member
        for role in roles:
            role_id = role.id if isinstance(role, Role) else int(role)
            if role_id not in member.roles:
                member.roles.append(role_id)
        return member

    def close_dms(self, user: User | int) -> None:
        """Make the bot's messages to this user's DMs fail with 50007, as when a user blocks DMs."""
        self.dms_closed.add(self._user(user).id)

    # --- lookups -------------------------------------------------------------------------------

    def user(self, username: str) -> User:
        """The user with this username."""
        for user in self.users.values():
            if user.username == username:
                return user
        raise KeyError(f"no user named {username!r}")

    def guild(self, name: str) -> Guild:
        """The server with this name."""
        for guild in self.guilds.values():
            if guild.name == name:
                return guild
        raise KeyError(f"no guild named {name!r}")

    def channel(self, name: str, guild: Guild | int | str | None = None) -> Channel:
        """The guild channel or thread with this name (in ``guild`` if given)."""
        guilds = (
            [self.guild(guild) if isinstance(guild, str) else self._guild(guild)]
            if guild
            else list(self.guilds.values())
        )
        for candidate in guilds:
            with contextlib.suppress(KeyError):
                return candidate.channel_named(name)
        raise KeyError(f"no channel named {name!r}")

    def dm_channel(self, user: User | int) -> Channel:
        """The DM channel between the bot and a user (created on first use, like Discord)."""
        user = self._user(user)
        channel = self._dm_channels.get(user.id)
        if channel is None:
            channel = Channel(self.snowflakes.next(), DM, recipients=[user], created_at=self.clock.now())
            self._dm_channels[user.id] = channel
            self.channels[channel.id] = channel
        return channel

    def message(self, message_id: int) -> MessageRecord:
        """A stored message by id."""
        return self.messages[message_id]

    def sent(self, channel_id: Channel | int | None = None, *, via: str | None = None) -> list[MessageRecord]:
        """Messages the bot created (REST, interaction responses, follow-ups), oldest first."""
        wanted = channel_id.id if isinstance(channel_id, Channel) else channel_id
        return [
            m
            for m in self.messages.values()
            if m.author.id == self.bot.id
            and m.via != "system"
            and (wanted is None or m.channel_id == wanted)
            and (via is None or m.via == via)
        ]

    @property
    def registered_commands(self) -> list[Json]:
        """Every application command the bot registered: global ones first, then per guild."""
        out = list(self._commands.get(None, []))
        for guild_id, commands in self._commands.items():
            if guild_id is not None:
                out.extend(commands)
        return out

    def commands(self, guild: Guild | int | None = None) -> list[Json]:
        """The global commands, or a guild's commands."""
        key = None if guild is None else self._guild(guild).id
        return list(self._commands.get(key, []))

    def requests_to(self, route: str) -> list[RequestRecord]:
        """Logged requests to a route (``"POST /channels/{channel_id}/messages"`` or a concrete path)."""
        probe = Fault(route, None, None)
        return [
            r
            for r in self.requests
            if probe.matches(r.method, r.route.partition(" ")[2] if r.route else "", r.path)
        ]

    @property
    def dispatched(self) -> list[DispatchedEvent]:
        """Every gateway event sent (or buffered) for a session."""
        return self.gateway.dispatched

    @property
    def connected(self) -> bool:
        """Whether some identified session has a live connection."""
        return any(s.connection is not None and s.connection.open for s in self.gateway.sessions.values())

    @property
    def identify_count(self) -> int:
        """How many IDENTIFYs succeeded."""
        return self.gateway.identify_count

    @property
    def resume_count(self) -> int:
        """How many RESUMEs succeeded."""
        return self.gateway.resume_count

    # --- waiting -------------------------------------------------------------------------------

    def changed(self) -> None:
        """Wake ``wait_for`` callers: something was recorded or dispatched."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait_for(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        """Wait until ``predicate()`` is truthy and return its value; TimeoutError after ``within`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {within} s")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, remaining)

    async def wait_sent(
        self,
        count: int = 1,
        channel: Channel | int | None = None,
        within: float = 5.0,
    ) -> list[MessageRecord]:
        """Wait until the bot has sent at least ``count`` messages (in ``channel``), and return them."""

        def enough() -> list[MessageRecord] | None:
            """The sent messages once there are enough of them."""
            sent = self.sent(channel)
            return sent if len(sent) >= count else None

        return list(await self.wait_for(enough, within))

    async def wait_connected(self, within: float = 5.0) -> None:
        """Wait until the bot has an identified, live gateway session."""
        await self.wait_for(lambda: self.connected, within)

    # --- faults --------------------------------------------------------------------------------

    def inject(
        self,
        route: str,
        status: int | None = 429,
        *,
        times: int | None = 1,
        retry_after: float = 1.0,
        delay: float = 0.0,
        body: Json | str | None = None,
        scope: str = "user",
    ) -> Fault:
        """Make the next ``times`` matching requests fail with ``status`` (and/or wait ``delay`` seconds).

        429s look like Discord's (``scope``: ``user``, ``shared`` or ``global``); other statuses get
        Discord's JSON error body unless ``body`` is given (a string is sent as text/html, as a
        proxy in front of Discord would).
        """
        fault = Fault(route, status, times, retry_after, delay, body, scope)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.faults.clear()

    async def drop_gateway(self, code: int | None = None) -> int:
        """Break the gateway connections (TCP cut, or close ``code``); sessions stay resumable."""
        return await self.gateway.drop(code)

    async def request_reconnect(self) -> int:
        """Ask connected clients to reconnect and resume (opcode 7)."""
        return await self.gateway.request_reconnect()

    async def invalidate_sessions(self) -> int:
        """End all sessions: clients get INVALID_SESSION and must IDENTIFY again."""
        return await self.gateway.invalidate_sessions()

    # --- acting as users -----------------------------------------------------------------------

    async def user_dm(self, user: User | int, content: str) -> MessageRecord:
        """A user writes to the bot in DM."""
        user = self._user(user)
        channel = self.dm_channel(user)
        pings = compute_pings(content, None, can_mention_everyone=False, can_mention_any_role=False)
        record = MessageRecord(
            self.snowflakes.next(), channel.id, None, user, content, self.clock.now(), "user", pings=pings
        )
        await self._publish(record)
        return record

    async def guild_message(
        self,
        channel: Channel | int,
        user: User | int,
        content: str,
        *,
        reply_to: MessageRecord | int | None = None,
        mention_author: bool = True,
    ) -> MessageRecord:
        """A member writes in a guild channel or thread (``<@botid>`` in the content mentions the bot)."""
        channel = self._channel(channel)
        user = self._user(user)
        if channel.guild_id is None:
            raise ValueError("guild_message needs a guild channel; use user_dm for DMs")
        guild = self.guilds[channel.guild_id]
        self.add_member(guild, user)
        reference, referenced = self._user_reference(channel, reply_to)
        perms = guild.permissions_of(user.id)
        pings = compute_pings(
            content,
            None,
            replied_author=referenced.author.id if referenced and mention_author else None,
            can_mention_everyone=bool(perms & MENTION_EVERYONE),
            mentionable_roles=[r.id for r in guild.roles if r.mentionable],
            can_mention_any_role=bool(perms & MENTION_EVERYONE),
        )
        record = MessageRecord(
            self.snowflakes.next(),
            channel.id,
            guild.id,
            user,
            content,
            self.clock.now(),
            "user",
            type=REPLY if reference else 0,
            reference=reference,
            referenced_id=referenced.id if referenced else None,
            pings=pings,
        )
        if channel.is_thread:
            channel.member_ids.add(user.id)
        await self._publish(record)
        return record

    async def user_edit(self, message: MessageRecord | int, content: str) -> MessageRecord:
        """The author of a user message edits it (MESSAGE_UPDATE)."""
        record = self._message(message)
        if record.author.id == self.bot.id:
            raise ValueError("user_edit edits users' messages; the bot edits through REST")
        record.history.append(record.content)
        record.content = content
        record.edited_at = self.clock.now()
        await self._dispatch_message("MESSAGE_UPDATE", record)
        return record

    async def slash_command(
        self,
        guild: Guild | int | None,
        channel: Channel | int | None,
        user: User | int,
        name: str,
        options: Mapping[str, Any] | None = None,
    ) -> InteractionRecord:
        """A user runs a registered slash command (``"group sub"`` names a subcommand).

        ``guild=None`` runs it in the user's DM with the bot. Options are given by name; their
        types come from the registered command, and users, channels and roles may be given as
        objects or ids (they are resolved as Discord does).
        """
        user = self._user(user)
        guild_obj = self._guild(guild) if guild is not None else None
        if guild_obj is None:
            channel_obj = self.dm_channel(user)
        else:
            channel_obj = (
                self._channel(channel)
                if channel is not None
                else next(c for c in guild_obj.channels if c.type == GUILD_TEXT)
            )
            self.add_member(guild_obj, user)
        if guild_obj is not None and channel_obj.guild_id != guild_obj.id:
            raise ValueError(f"channel {channel_obj.name!r} is not in {guild_obj.name!r}")
        top, *path = name.split()
        command = self._find_command(guild_obj, top)
        self._check_command_visible(command, guild_obj, user)
        resolved: Json = {}
        data: Json = {"id": command["id"], "name": top, "type": 1}
        option_defs = command.get("options") or []
        container = data
        for sub in path:
            sub_def = next((o for o in option_defs if o["name"] == sub and o["type"] in (1, 2)), None)
            if sub_def is None:
                raise LookupError(f"command {top!r} has no subcommand {sub!r}")
            node: Json = {"name": sub, "type": sub_def["type"], "options": []}
            container["options"] = [node]
            container = node
            option_defs = sub_def.get("options") or []
        container["options"] = self._command_options(option_defs, options or {}, guild_obj, resolved)
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return await self._interact(2, guild_obj, channel_obj, user, data)

    async def press_button(
        self, message: MessageRecord | int, user: User | int, custom_id: str
    ) -> InteractionRecord:
        """A user presses a button of a message the bot sent."""
        record = self._message(message)
        user = self._user(user)
        component = record.component(custom_id)
        if component is None or component.get("type") != 2:
            raise LookupError(f"message {record.id} has no button with custom_id {custom_id!r}")
        if component.get("disabled"):
            raise ValueError(f"button {custom_id!r} is disabled")
        guild = self.guilds.get(record.guild_id) if record.guild_id else None
        if guild is not None:
            self.add_member(guild, user)
        data = {"custom_id": custom_id, "component_type": 2, "id": component.get("id")}
        return await self._interact(3, guild, self.channels[record.channel_id], user, data, message=record)

    # --- gateway host --------------------------------------------------------------------------

    def ready_payload(self, session: GatewaySession) -> Json:
        """The ``d`` of READY for a new session."""
        data: Json = {
            "v": 10,
            "user": self.bot.private_payload(),
            "guilds": [
                {"id": str(g.id), "unavailable": True}
                for g in self.guilds.values()
                if session.sees_guild(g.id)
            ],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": self.application_flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["us-east", "us-central", "us-west"],
            "user_settings": {},
            "auth": {},
            "_trace": ['["gateway-emulator",{"micros":0}]'],
        }
        if session.shard is not None:
            data["shard"] = list(session.shard)
        return data

    def guild_create_payloads(self, session: GatewaySession) -> list[Json]:
        """One GUILD_CREATE ``d`` per guild the session sees."""
        out = []
        for guild in self.guilds.values():
            if not session.sees_guild(guild.id):
                continue
            members = list(guild.members.values())
            if not session.intents & GUILD_MEMBERS:
                members = [m for m in members if m.user.id == self.bot.id]  # only the bot, as Discord does
            data = guild.payload()
            data.update(
                {
                    "joined_at": iso(guild.members[self.bot.id].joined_at),
                    "large": len(guild.members) > 250,
                    "unavailable": False,
                    "member_count": len(guild.members),
                    "members": [m.payload() for m in members],
                    "channels": [c.payload() for c in guild.channels],
                    "threads": [t.payload() for t in guild.threads],
                    "presences": [],
                    "voice_states": [],
                    "stage_instances": [],
                    "guild_scheduled_events": [],
                    "soundboard_sounds": [],
                    "lazy": True,
                }
            )
            out.append(data)
        return out

    def members_chunk(self, request: Json) -> Json | None:
        """The GUILD_MEMBERS_CHUNK answering a REQUEST_GUILD_MEMBERS."""
        try:
            guild = self.guilds[int(request.get("guild_id", 0))]
        except (KeyError, TypeError, ValueError):
            return None
        members = list(guild.members.values())
        wanted_ids = {int(u) for u in request.get("user_ids") or []}
        not_found = []
        if wanted_ids:
            not_found = [str(u) for u in wanted_ids if u not in guild.members]
            members = [m for m in members if m.user.id in wanted_ids]
        else:
            query = str(request.get("query") or "").lower()
            members = [m for m in members if m.user.username.lower().startswith(query)]
            limit = int(request.get("limit") or 0)
            if limit:
                members = members[:limit]
        data: Json = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": not_found,
        }
        if request.get("nonce"):
            data["nonce"] = request["nonce"]
        return data

    @property
    def application_flags(self) -> int:
        """Application flags: the *_LIMITED privileged-intent flags the app has, and the command badge."""
        flags = 1 << 23  # APPLICATION_COMMAND_BADGE
        if self.privileged_intents & (1 << 8):
            flags |= 1 << 13
        if self.privileged_intents & GUILD_MEMBERS:
            flags |= 1 << 15
        if self.privileged_intents & (1 << 15):
            flags |= 1 << 19
        return flags

    # --- HTTP plumbing -------------------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        resources: dict[str, web.Resource] = {}
        for route in ROUTES:
            resource = resources.get(route.path)
            if resource is None:
                resource = resources[route.path] = app.router.add_resource(API_PREFIX + route.path)
            resource.add_route(route.method, self._endpoint(route))
        app.router.add_get(GATEWAY_PATH, self.gateway.handle)

    def _endpoint(self, route: RestRoute) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        handler: Callable[[Call], Awaitable[tuple[int, Any]]] = getattr(self, route.handler)

        async def endpoint(request: web.Request) -> web.StreamResponse:
            """Log, authenticate, apply faults and rate limits, then run the handler."""
            record = RequestRecord(
                request.method,
                request.path,
                route.name,
                dict(request.query),
                None,
                asyncio.get_running_loop().time(),
            )
            self.requests.append(record)
            headers: dict[str, str] = {"Via": "1.1 google"}
            try:
                call = await self._read_call(request, route, record)
                if route.auth and request.headers.get("Authorization") != f"Bot {self.token}":
                    raise DiscordHTTPError(401, 0, "401: Unauthorized")
                fault_response = await self._apply_fault(route, request, record, headers)
                if fault_response is not None:
                    return fault_response
                self._count_rate_limit(route, call, headers)
                status, payload = await handler(call)
            except DiscordHTTPError as exc:
                status, payload = exc.status, exc.body()
            return self._respond(record, status, payload, headers)

        return endpoint

    @web.middleware
    async def _unknown_route_middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            record = RequestRecord(
                request.method,
                request.path,
                None,
                dict(request.query),
                None,
                asyncio.get_running_loop().time(),
            )
            self.requests.append(record)
            return self._respond(
                record,
                exc.status,
                {"message": f"{exc.status}: {exc.reason}", "code": 0},
                {"Via": "1.1 google"},
            )

    def _respond(
        self, record: RequestRecord, status: int, payload: Any, headers: dict[str, str]
    ) -> web.Response:
        record.status = status
        record.response = payload
        self.changed()
        if payload is None:
            return web.Response(status=status, headers=headers)
        if isinstance(payload, str):
            return web.Response(
                status=status, body=payload.encode(), headers={**headers, "Content-Type": "text/html"}
            )
        # Exactly "application/json", no charset: discord.py compares the header verbatim.
        return web.Response(
            status=status,
            body=json.dumps(payload, ensure_ascii=False).encode(),
            headers={**headers, "Content-Type": "application/json"},
        )

    async def _read_call(self, request: web.Request, route: RestRoute, record: RequestRecord) -> Call:
        call = Call(request, route, dict(request.match_info), None)
        if not request.can_read_body:
            return call
        if request.content_type == "multipart/form-data":
            call.body, call.files = await self._read_multipart(request)
        else:
            raw = await request.read()
            if raw.strip():
                try:
                    call.body = json.loads(raw)
                except ValueError:
                    raise DiscordHTTPError(400, 50109, "The request body contains invalid JSON.") from None
        record.body = call.body
        record.files = tuple(a.filename for a in call.files)
        if isinstance(call.body, dict):
            top = {f.split(".")[0].split("[")[0] for f in route.accepts}
            record.ignored_fields = tuple(sorted(k for k in call.body if k not in top))
        return call

    async def _read_multipart(self, request: web.Request) -> tuple[Any, list[Attachment]]:
        body: Any = None
        uploads: list[tuple[int, str, bytes, str | None]] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            name = part.name or ""
            if name == "payload_json":
                try:
                    body = json.loads(await part.text())
                except ValueError:
                    raise DiscordHTTPError(400, 50109, "The request body contains invalid JSON.") from None
            elif match := re.fullmatch(r"files\[(\d+)\]", name):
                content_type = part.headers.get("Content-Type")
                uploads.append(
                    (
                        int(match.group(1)),
                        part.filename or f"file{match.group(1)}",
                        bytes(await part.read()),
                        content_type,
                    )
                )
        described = {}
        if isinstance(body, dict):
            for item in body.get("attachments") or []:
                if isinstance(item, dict) and "id" in item:
                    described[int(item["id"])] = item
        files = []
        for index, filename, data, content_type in sorted(uploads):
            meta = described.get(index, {})
            files.append(
                Attachment(
                    self.snowflakes.next(),
                    str(meta.get("filename") or filename),
                    data,
                    content_type,
                    meta.get("description"),
                )
            )
        return body, files

    async def _apply_fault(
        self,
        route: RestRoute,
        request: web.Request,
        record: RequestRecord,
        headers: dict[str, str],
    ) -> web.Response | None:
        fault = next(
            (
                f
                for f in self.faults
                if not f.exhausted and f.matches(request.method, route.path, request.path)
            ),
            None,
        )
        if fault is None:
            return None
        fault.hits += 1
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return None
        if fault.status == 429:
            headers.update(self._rate_limit_headers(route, 0, fault.retry_after))
            headers["Retry-After"] = str(max(1, math.ceil(fault.retry_after)))
            headers["X-RateLimit-Scope"] = fault.scope
            if fault.scope == "global":
                headers["X-RateLimit-Global"] = "true"
                for name in (
                    "X-RateLimit-Limit",
                    "X-RateLimit-Remaining",
                    "X-RateLimit-Reset",
                    "X-RateLimit-Reset-After",
                    "X-RateLimit-Bucket",
                ):
                    headers.pop(name, None)
            body: Any = (
                fault.body
                if fault.body is not None
                else {
                    "message": "You are being rate limited.",
                    "retry_after": fault.retry_after,
                    "global": fault.scope == "global",
                    "code": 0,
                }
            )
            return self._respond(record, 429, body, headers)
        code, message = DEFAULT_FAULT_BODIES.get(fault.status, (0, f"{fault.status}: Error"))
        payload = fault.body if fault.body is not None else {"message": message, "code": code}
        return self._respond(record, fault.status, payload, headers)

    def _count_rate_limit(self, route: RestRoute, call: Call, headers: dict[str, str]) -> None:
        assert self._rate_limits is not None
        limit, per = self.message_rate_limit if route.bucket == "messages" else self.default_rate_limit
        major = next((call.params[k] for k in ("channel_id", "guild_id") if k in call.params), "")
        if "webhook_id" in call.params or "interaction_id" in call.params:
            major = "/".join(v for k, v in call.params.items() if k.startswith(("webhook", "interaction")))
        allowed, remaining, reset_after = self._rate_limits.hit(route.bucket_hash, major, limit, per)
        headers.update(self._rate_limit_headers(route, remaining, reset_after, limit))
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(reset_after)))
            headers["X-RateLimit-Scope"] = "user"
            raise RateLimitedError(reset_after)

    def _rate_limit_headers(
        self, route: RestRoute, remaining: int, reset_after: float, limit: int | None = None
    ) -> dict[str, str]:
        if limit is None:
            limit = (self.message_rate_limit if route.bucket == "messages" else self.default_rate_limit)[0]
        reset_at = self.clock.now().timestamp() + reset_after
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{reset_at:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": route.bucket_hash,
        }

    # --- REST handlers -------------------------------------------------------------------------

    async def _get_me(self, call: Call) -> tuple[int, Any]:
        return 200, self.bot.private_payload()

    async def _get_user(self, call: Call) -> tuple[int, Any]:
        user = self.users.get(call.int_param("user_id"))
        if user is None:
            raise DiscordHTTPError(404, 10013, "Unknown User")
        return 200, user.payload()

    async def _get_application(self, call: Call) -> tuple[int, Any]:
        scopes = ["applications.commands", "bot"]
        return 200, {
            "id": str(self.application_id),
            "name": self.bot.username,
            "icon": None,
            "description": "",
            "type": None,
            "bot": self.bot.payload(),
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": self.verify_key,
            "flags": self.application_flags,
            "flags_new": str(self.application_flags),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "owner": self.owner.payload(),
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0,
            "team": None,
            "eligible_oauth2_scopes": scopes,
            "install_params": {"scopes": scopes, "permissions": str(BOT_PERMISSIONS)},
            "integration_types_config": {
                "0": {"oauth2_install_params": {"scopes": scopes, "permissions": "0"}}
            },
        }

    async def _get_gateway(self, call: Call) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url}

    async def _get_gateway_bot(self, call: Call) -> tuple[int, Any]:
        return 200, {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 1000 - self.gateway.identify_count,
                "reset_after": 86_400_000,
                "max_concurrency": 1,
            },
        }

    async def _get_channel(self, call: Call) -> tuple[int, Any]:
        return 200, self._channel_or_404(call.int_param("channel_id")).payload()

    async def _typing(self, call: Call) -> tuple[int, Any]:
        self._channel_or_404(call.int_param("channel_id"))
        return 204, None

    async def _create_dm(self, call: Call) -> tuple[int, Any]:
        body = call.body if isinstance(call.body, dict) else {}
        try:
            user = self.users[int(body.get("recipient_id"))]  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            raise DiscordHTTPError(
                400,
                50035,
                "Invalid Form Body",
                {"recipient_id": field_error("NUMBER_TYPE_COERCE", "Value is not snowflake.")},
            ) from None
        return 200, self.dm_channel(user).payload()

    async def _create_message(self, call: Call) -> tuple[int, Any]:
        channel = self._channel_or_404(call.int_param("channel_id"))
        if channel.type == GUILD_CATEGORY:
            raise DiscordHTTPError(400, 50008, "Cannot send messages in a non-text channel")
        if channel.type == DM and channel.recipients and channel.recipients[0].id in self.dms_closed:
            raise DiscordHTTPError(403, 50007, "Cannot send messages to this user")
        body = self._object_body(call)
        record = self._bot_message(channel, body, call.files, "rest")
        await self._publish(record)
        return 200, self._message_payload(record)

    async def _list_messages(self, call: Call) -> tuple[int, Any]:
        """A channel's messages, newest first, as Discord pages them: ``after``, ``before`` or ``around`` a
        message id (at most one), ``limit`` 1 to 100 (default 50)."""
        channel = self._channel_or_404(call.int_param("channel_id"))
        query = call.request.query
        errors = FormErrors()
        limit = 50
        if "limit" in query:
            raw = query["limit"]
            if not raw.isdigit():
                errors.add(["limit"], "NUMBER_TYPE_COERCE", f"Value \"{raw}\" is not int.")
            elif not 1 <= int(raw) <= 100:
                errors.add(["limit"], "NUMBER_TYPE_MAX" if int(raw) > 100 else "NUMBER_TYPE_MIN",
                           "Int value should be between 1 and 100.")
            else:
                limit = int(raw)
        anchors: dict[str, int] = {}
        for name in ("around", "before", "after"):
            if name in query:
                if not query[name].isdigit():
                    errors.add([name], "NUMBER_TYPE_COERCE", "Value is not snowflake.")
                else:
                    anchors[name] = int(query[name])
        if len(anchors) > 1:
            errors.add([], "BASE_TYPE_INVALID", "Only one of around, before or after may be given.")
        errors.raise_if_any()
        ids = sorted(m.id for m in self.messages.values() if m.channel_id == channel.id)
        if "after" in anchors:
            picked = [i for i in ids if i > anchors["after"]][:limit]
        elif "before" in anchors:
            picked = [i for i in ids if i < anchors["before"]][-limit:]
        elif "around" in anchors:
            older = [i for i in ids if i < anchors["around"]][-(limit // 2):] if limit > 1 else []
            newer = [i for i in ids if i >= anchors["around"]][: limit - len(older)]
            picked = older + newer
        else:
            picked = ids[-limit:]
        return 200, [self._message_payload(self.messages[i]) for i in reversed(picked)]

    async def _get_message(self, call: Call) -> tuple[int, Any]:
        record = self._message_in(call.int_param("channel_id"), call.int_param("message_id"))
        return 200, self._message_payload(record)

    async def _edit_message(self, call: Call) -> tuple[int, Any]:
        record = self._message_in(call.int_param("channel_id"), call.int_param("message_id"))
        if record.author.id != self.bot.id:
            raise DiscordHTTPError(403, 50005, "Cannot edit a message authored by another user")
        self._apply_edit(record, self._object_body(call), call.files)
        await self._dispatch_message("MESSAGE_UPDATE", record)
        return 200, self._message_payload(record)

    async def _create_thread(self, call: Call) -> tuple[int, Any]:
        parent = self._channel_or_404(call.int_param("channel_id"))
        body = self._object_body(call)
        if parent.type != GUILD_TEXT:
            raise DiscordHTTPError(400, 50024, "Cannot execute action on this channel type")
        kind = body.get("type") if body.get("type") is not None else 12
        if kind not in (PUBLIC_THREAD, 12):
            raise DiscordHTTPError(
                400,
                50035,
                "Invalid Form Body",
                {"type": field_error("BASE_TYPE_CHOICES", "Value must be one of {11, 12}.")},
            )
        thread = self._new_thread(parent, body, kind, thread_id=self.snowflakes.next())
        await self.gateway.dispatch(
            "THREAD_CREATE",
            {**thread.payload(), "newly_created": True},
            intent=GUILDS,
            guild_id=thread.guild_id,
        )
        if kind == PUBLIC_THREAD:
            notice = MessageRecord(
                self.snowflakes.next(),
                parent.id,
                parent.guild_id,
                self.bot,
                thread.name or "",
                self.clock.now(),
                "system",
                type=THREAD_CREATED,
                reference={"type": 0, "channel_id": str(thread.id), "guild_id": str(parent.guild_id)},
            )
            await self._publish(notice)
        return 201, {**thread.payload(), "member": thread.thread_member_payload(self.bot.id)}

    async def _create_thread_from_message(self, call: Call) -> tuple[int, Any]:
        parent = self._channel_or_404(call.int_param("channel_id"))
        record = self._message_in(parent.id, call.int_param("message_id"))
        if parent.type != GUILD_TEXT:
            raise DiscordHTTPError(400, 50024, "Cannot execute action on this channel type")
        if record.thread_id is not None:
            raise DiscordHTTPError(400, 160004, "A thread has already been created for this message")
        body = self._object_body(call)
        # A thread started from a message has that message's id, as on Discord.
        thread = self._new_thread(parent, body, PUBLIC_THREAD, thread_id=record.id)
        record.thread_id = thread.id
        await self.gateway.dispatch(
            "THREAD_CREATE",
            {**thread.payload(), "newly_created": True},
            intent=GUILDS,
            guild_id=thread.guild_id,
        )
        await self._dispatch_message("MESSAGE_UPDATE", record)
        return 201, {**thread.payload(), "member": thread.thread_member_payload(self.bot.id)}

    async def _get_commands(self, call: Call) -> tuple[int, Any]:
        key = self._command_scope(call)
        return 200, list(self._commands.get(key, []))

    async def _put_commands(self, call: Call) -> tuple[int, Any]:
        key = self._command_scope(call)
        if not isinstance(call.body, list):
            raise DiscordHTTPError(
                400, 50035, "Invalid Form Body", field_error("BASE_TYPE_ARRAY", "Must be an array.")
            )
        errors = FormErrors()
        existing = {(c["name"], c["type"]): c for c in self._commands.get(key, [])}
        seen: set[tuple[str, int]] = set()
        commands: list[Json] = []
        version = str(self.snowflakes.next())
        for index, spec in enumerate(call.body):
            if not isinstance(spec, dict):
                errors.add([index], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
                continue
            command = command_payload(
                spec,
                application_id=self.application_id,
                guild_id=key,
                previous=existing.get((str(spec.get("name")), spec.get("type") or 1)),
                new_id=self.snowflakes.next,
                version=version,
                errors=errors,
                path=[index],
            )
            ident = (command["name"], command["type"])
            if ident in seen:
                errors.add(
                    [index, "name"],
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            seen.add(ident)
            commands.append(command)
        errors.raise_if_any()
        self._commands[key] = commands
        self.changed()
        return 200, commands

    async def _interaction_callback(self, call: Call) -> tuple[int, Any]:
        interaction = self._interaction_by_token(
            call.int_param("interaction_id"), call.params["interaction_token"]
        )
        loop = asyncio.get_running_loop()
        if loop.time() - interaction.created_at > self.interaction_deadline:
            raise DiscordHTTPError(404, 10062, "Unknown interaction")
        if interaction.acknowledged:
            raise DiscordHTTPError(400, 40060, "Interaction has already been acknowledged.")
        body = self._object_body(call)
        kind = body.get("type")
        raw_data = body.get("data")
        data: Json = raw_data if isinstance(raw_data, dict) else {}
        channel = self.channels[interaction.channel_id]
        message: MessageRecord | None = None
        if kind in (4, 5):
            flags = int(data.get("flags") or 0)
            if kind == 5:
                data = {"flags": (flags & EPHEMERAL) | LOADING}
            message = self._bot_message(
                channel, data, call.files, "interaction", interaction=interaction, allow_empty=kind == 5
            )
            interaction.original_message_id = message.id
        elif kind in (6, 7):
            if interaction.message_id is None:
                raise DiscordHTTPError(
                    400,
                    50035,
                    "Invalid Form Body",
                    {
                        "type": field_error(
                            "INTERACTION_RESPONSE_TYPE_INVALID",
                            "This response type is only valid for component interactions.",
                        )
                    },
                )
            interaction.original_message_id = interaction.message_id
            if kind == 7:
                message = self.messages[interaction.message_id]
                self._apply_edit(message, data, call.files)
        elif kind not in (8, 9):
            raise DiscordHTTPError(
                400,
                50035,
                "Invalid Form Body",
                {"type": field_error("BASE_TYPE_CHOICES", "Value must be one of {4, 5, 6, 7, 8, 9}.")},
            )
        interaction.response_type = kind
        self.interaction_responses.append(
            InteractionResponse(interaction.id, kind, body.get("data") or {}, message.id if message else None)
        )
        if message is not None:
            if kind != 7:
                await self._publish(message)
            elif not message.ephemeral:
                await self._dispatch_message("MESSAGE_UPDATE", message)
        self.changed()
        if not call.flag("with_response"):
            return 204, None
        result: Json = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(message and message.ephemeral),
            }
        }
        if message is not None:
            result["interaction"]["response_message_id"] = str(message.id)
        if kind in (4, 7) and message is not None:
            result["resource"] = {"type": kind, "message": self._message_payload(message)}
        return 200, result

    async def _get_original(self, call: Call) -> tuple[int, Any]:
        return 200, self._message_payload(self._original(call))

    async def _edit_original(self, call: Call) -> tuple[int, Any]:
        record = self._original(call)
        self._apply_edit(record, self._object_body(call), call.files)
        record.flags &= ~LOADING
        if not record.ephemeral:
            await self._dispatch_message("MESSAGE_UPDATE", record)
        self.changed()
        return 200, self._message_payload(record)

    async def _followup(self, call: Call) -> tuple[int, Any]:
        interaction = self._webhook_interaction(call)
        if not interaction.acknowledged:
            raise DiscordHTTPError(404, 10015, "Unknown Webhook")
        record = self._bot_message(
            self.channels[interaction.channel_id],
            self._object_body(call),
            call.files,
            "followup",
            interaction=interaction,
        )
        interaction.followup_ids.append(record.id)
        await self._publish(record)
        return (200, self._message_payload(record)) if call.flag("wait") else (204, None)

    # --- messages ------------------------------------------------------------------------------

    def _bot_message(
        self,
        channel: Channel,
        body: Json,
        files: list[Attachment],
        via: str,
        *,
        interaction: InteractionRecord | None = None,
        allow_empty: bool = False,
    ) -> MessageRecord:
        errors = FormErrors()
        content = message_content(body, errors)
        embeds = message_embeds(body, errors)
        components = message_components(body.get("components"), errors)
        allowed = allowed_mentions(body.get("allowed_mentions"), errors)
        reference, referenced = self._bot_reference(channel, body.get("message_reference"), errors)
        errors.raise_if_any()
        if not (content or embeds or components or files or allow_empty):
            raise DiscordHTTPError(400, 50006, "Cannot send an empty message")
        flags = int(body.get("flags") or 0)
        keep = ALLOWED_MESSAGE_FLAGS | (EPHEMERAL | LOADING if interaction is not None else 0)
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        pings = compute_pings(
            content,
            allowed,
            replied_author=referenced.author.id if referenced else None,
            can_mention_everyone=guild is not None,
            can_mention_any_role=guild is not None,
        )
        record = MessageRecord(
            self.snowflakes.next(),
            channel.id,
            channel.guild_id,
            self.bot,
            content,
            self.clock.now(),
            via,
            flags=flags & keep,
            tts=bool(body.get("tts")),
            nonce=body.get("nonce"),
            embeds=embeds,
            components=components,
            attachments=list(files),
            reference=reference,
            referenced_id=referenced.id if referenced else None,
            pings=pings,
            allowed_mentions=allowed,
        )
        if reference is not None:
            record.type = REPLY
        if interaction is not None:
            record.webhook_id = self.application_id
            record.application_id = self.application_id
            record.interaction_metadata = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": interaction.user.payload(),
                "authorizing_integration_owners": {"0": str(interaction.guild_id or 0)},
            }
            if interaction.type == 3 and interaction.message_id is not None:
                record.interaction_metadata["interacted_message_id"] = str(interaction.message_id)
            if interaction.type == 2 and via == "interaction":
                record.type = CHAT_INPUT_COMMAND
        return record

    def _apply_edit(self, record: MessageRecord, body: Json, files: list[Attachment]) -> None:
        errors = FormErrors()
        content = message_content(body, errors) if "content" in body else record.content
        embeds = message_embeds(body, errors) if "embeds" in body else record.embeds
        components = (
            message_components(body.get("components"), errors) if "components" in body else record.components
        )
        allowed = (
            allowed_mentions(body.get("allowed_mentions"), errors)
            if "allowed_mentions" in body
            else record.allowed_mentions
        )
        errors.raise_if_any()
        if content != record.content:
            record.history.append(record.content)
        record.content = content
        record.embeds = embeds
        record.components = components
        record.allowed_mentions = allowed
        if "attachments" in body or files:
            kept = {int(a["id"]) for a in body.get("attachments") or [] if isinstance(a, dict) and "id" in a}
            record.attachments = [a for a in record.attachments if a.id in kept] + list(files)
        if "flags" in body and body["flags"] is not None:
            record.flags = (record.flags & (EPHEMERAL | LOADING)) | (
                int(body["flags"]) & ALLOWED_MESSAGE_FLAGS
            )
        if record.author.id == self.bot.id:
            guild_known = record.guild_id is not None
            referenced = self.messages.get(record.referenced_id) if record.referenced_id else None
            record.pings = compute_pings(
                content,
                allowed,
                replied_author=referenced.author.id if referenced else None,
                can_mention_everyone=guild_known,
                can_mention_any_role=guild_known,
            )
        record.edited_at = self.clock.now()

    def _bot_reference(
        self,
        channel: Channel,
        value: Any,
        errors: FormErrors,
    ) -> tuple[Json | None, MessageRecord | None]:
        if not isinstance(value, dict) or value.get("message_id") is None:
            return None, None
        try:
            target = self.messages.get(int(value["message_id"]))
        except (TypeError, ValueError):
            target = None
        wanted_channel = value.get("channel_id")
        if target is not None and wanted_channel is not None and int(wanted_channel) != target.channel_id:
            target = None
        if target is None or target.channel_id != channel.id:
            if value.get("fail_if_not_exists", True) is False:
                return None, None
            errors.add(["message_reference"], "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            return None, None
        return self._reference_payload(target), target

    def _user_reference(
        self,
        channel: Channel,
        reply_to: MessageRecord | int | None,
    ) -> tuple[Json | None, MessageRecord | None]:
        if reply_to is None:
            return None, None
        target = self._message(reply_to)
        if target.channel_id != channel.id:
            raise ValueError("a reply must be in the same channel as the message it answers")
        return self._reference_payload(target), target

    def _reference_payload(self, target: MessageRecord) -> Json:
        data: Json = {"type": 0, "channel_id": str(target.channel_id), "message_id": str(target.id)}
        if target.guild_id is not None:
            data["guild_id"] = str(target.guild_id)
        return data

    def _message_payload(self, record: MessageRecord, *, nested: bool = False) -> Json:
        """The message object (``MessageResponse``)."""
        data: Json = {
            "type": record.type,
            "content": record.content,
            "mentions": [self.users[u].payload() for u in sorted(record.pings.users) if u in self.users],
            "mention_roles": [str(r) for r in sorted(record.pings.roles)],
            "attachments": [a.payload(self.base_url, record.channel_id) for a in record.attachments],
            "embeds": [dict(e) for e in record.embeds],
            "timestamp": iso(record.created_at),
            "edited_timestamp": iso(record.edited_at) if record.edited_at else None,
            "flags": record.flags,
            "components": json.loads(json.dumps(record.components)),
            "id": str(record.id),
            "channel_id": str(record.channel_id),
            "author": record.author.payload(),
            "pinned": False,
            "mention_everyone": record.pings.everyone,
            "tts": record.tts,
        }
        if record.nonce is not None:
            data["nonce"] = record.nonce
        if record.webhook_id is not None:
            data["webhook_id"] = str(record.webhook_id)
        if record.application_id is not None:
            data["application_id"] = str(record.application_id)
        if record.interaction_metadata is not None:
            data["interaction_metadata"] = dict(record.interaction_metadata)
        if record.reference is not None:
            data["message_reference"] = dict(record.reference)
        if record.referenced_id is not None and not nested:
            referenced = self.messages.get(record.referenced_id)
            data["referenced_message"] = (
                self._message_payload(referenced, nested=True) if referenced else None
            )
        if record.thread_id is not None and not nested and record.thread_id in self.channels:
            data["thread"] = self.channels[record.thread_id].payload()
        return data

    def _gateway_message(self, record: MessageRecord) -> Json:
        data = self._message_payload(record)
        if record.guild_id is not None:
            data["guild_id"] = str(record.guild_id)
            member = self.guilds[record.guild_id].members.get(record.author.id)
            if member is not None:
                data["member"] = member.payload(with_user=False)
        return data

    async def _publish(self, record: MessageRecord) -> None:
        """Store a new message and dispatch MESSAGE_CREATE (ephemeral ones stay out of the gateway)."""
        self.messages[record.id] = record
        channel = self.channels.get(record.channel_id)
        if channel is not None:
            channel.last_message_id = record.id
            if channel.is_thread:
                channel.message_count += 1
                channel.total_message_sent += 1
        if not record.ephemeral:
            await self._dispatch_message("MESSAGE_CREATE", record)
        self.changed()

    async def _dispatch_message(self, event: str, record: MessageRecord) -> None:
        in_guild = record.guild_id is not None
        gated = in_guild and record.author.id != self.bot.id and self.bot.id not in record.pings.users
        await self.gateway.dispatch(
            event,
            self._gateway_message(record),
            intent=GUILD_MESSAGES if in_guild else DIRECT_MESSAGES,
            guild_id=record.guild_id,
            content_gated=gated,
        )

    def _new_thread(self, parent: Channel, body: Json, kind: int, *, thread_id: int) -> Channel:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise DiscordHTTPError(
                400,
                50035,
                "Invalid Form Body",
                {"name": field_error("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")},
            )
        archive = body.get("auto_archive_duration") or 1440
        if archive not in (60, 1440, 4320, 10080):
            raise DiscordHTTPError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "auto_archive_duration": field_error(
                        "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}."
                    )
                },
            )
        thread = Channel(
            thread_id,
            kind,
            name,
            parent.guild_id,
            parent.id,
            owner_id=self.bot.id,
            created_at=self.clock.now(),
            auto_archive_duration=archive,
            invitable=bool(body.get("invitable", True)),
            member_ids={self.bot.id},
        )
        assert parent.guild_id is not None
        self.guilds[parent.guild_id].threads.append(thread)
        self.channels[thread.id] = thread
        return thread

    # --- commands and interactions -------------------------------------------------------------

    def _command_scope(self, call: Call) -> int | None:
        if call.int_param("application_id") != self.application_id:
            raise DiscordHTTPError(403, 50001, "Missing Access")
        if "guild_id" not in call.params:
            return None
        guild = self.guilds.get(call.int_param("guild_id"))
        if guild is None or self.bot.id not in guild.members:
            raise DiscordHTTPError(403, 50001, "Missing Access")
        return guild.id

    def _find_command(self, guild: Guild | None, name: str) -> Json:
        scopes: list[int | None] = ([guild.id] if guild else []) + [None]
        for scope in scopes:
            for command in self._commands.get(scope, []):
                if command["name"] == name and command["type"] == 1:
                    return command
        raise LookupError(
            f"no slash command {name!r} is registered" + (f" in {guild.name!r}" if guild else "")
        )

    def _check_command_visible(self, command: Json, guild: Guild | None, user: User) -> None:
        """Discord only offers a command where its contexts and ``default_member_permissions`` allow."""
        if guild is None:
            contexts = command.get("contexts")
            if not command.get("dm_permission", True) or (contexts is not None and 1 not in contexts):
                raise PermissionError(f"/{command['name']} is not offered in DMs")
            return
        required = command.get("default_member_permissions")
        if required is not None:
            needed = int(required) or ADMINISTRATOR  # "0": nobody but administrators
            if guild.permissions_of(user.id) & needed != needed:
                raise PermissionError(f"/{command['name']} is not offered to {user.username} in {guild.name}")

    def _command_options(
        self,
        defs: list[Json],
        values: Mapping[str, Any],
        guild: Guild | None,
        resolved: Json,
    ) -> list[Json]:
        by_name = {d["name"]: d for d in defs}
        unknown = set(values) - set(by_name)
        if unknown:
            raise LookupError(f"unknown option(s): {', '.join(sorted(unknown))}")
        missing = [d["name"] for d in defs if d.get("required") and d["name"] not in values]
        if missing:
            raise ValueError(f"missing required option(s): {', '.join(missing)}")
        out = []
        for name, value in values.items():
            kind = by_name[name]["type"]
            out.append(
                {"name": name, "type": kind, "value": self._option_value(kind, value, guild, resolved)}
            )
        return out

    def _option_value(self, kind: int, value: Any, guild: Guild | None, resolved: Json) -> Any:
        if kind == 3:
            return str(value)
        if kind == 4:
            return int(value)
        if kind == 10:
            return float(value)
        if kind == 5:
            return bool(value)
        if kind in (6, 9) and (isinstance(value, User) or (isinstance(value, int) and value in self.users)):
            user = self._user(value)
            resolved.setdefault("users", {})[str(user.id)] = user.payload()
            if guild is not None and user.id in guild.members:
                member = guild.members[user.id].payload(with_user=False)
                member["permissions"] = str(guild.permissions_of(user.id))
                resolved.setdefault("members", {})[str(user.id)] = member
            return str(user.id)
        if kind in (8, 9) and guild is not None:
            role_id = value.id if isinstance(value, Role) else int(value)
            role = next((r for r in guild.roles if r.id == role_id), None)
            if role is None:
                raise LookupError(f"no role {role_id} in {guild.name!r}")
            resolved.setdefault("roles", {})[str(role.id)] = role.payload()
            return str(role.id)
        if kind == 7:
            channel = self._channel(value)
            data = channel.payload()
            data["permissions"] = str(BOT_PERMISSIONS)
            resolved.setdefault("channels", {})[str(channel.id)] = data
            return str(channel.id)
        raise ValueError(f"cannot give {value!r} to an option of type {kind}")

    async def _interact(
        self,
        kind: int,
        guild: Guild | None,
        channel: Channel,
        user: User,
        data: Json,
        message: MessageRecord | None = None,
    ) -> InteractionRecord:
        interaction = InteractionRecord(
            self.snowflakes.next(),
            f"aW50ZXJhY3Rpb246{secrets.token_urlsafe(48)}",
            kind,
            guild.id if guild else None,
            channel.id,
            user,
            data,
            asyncio.get_running_loop().time(),
            message_id=message.id if message else None,
        )
        self.interactions[interaction.id] = interaction
        payload: Json = {
            "id": str(interaction.id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "channel_id": str(channel.id),
            "channel": {**channel.payload(), "permissions": str(BOT_PERMISSIONS)},
            "token": interaction.token,
            "version": 1,
            "app_permissions": str(BOT_PERMISSIONS),
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id if guild else 0)},
            "context": 0 if guild else 1,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild is not None:
            member = guild.members[user.id].payload()
            member["permissions"] = str(guild.permissions_of(user.id))
            payload.update(
                {
                    "guild_id": str(guild.id),
                    "guild_locale": "en-US",
                    "member": member,
                    "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
                }
            )
        else:
            payload["user"] = user.payload()
        if message is not None:
            payload["message"] = self._message_payload(message)
        await self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=interaction.guild_id)
        self.changed()
        return interaction

    def _interaction_by_token(self, interaction_id: int, token: str) -> InteractionRecord:
        interaction = self.interactions.get(interaction_id)
        if interaction is None or not secrets.compare_digest(interaction.token, token):
            raise DiscordHTTPError(404, 10062, "Unknown interaction")
        return interaction

    def _webhook_interaction(self, call: Call) -> InteractionRecord:
        token = call.params["webhook_token"]
        if call.int_param("webhook_id") != self.application_id:
            raise DiscordHTTPError(404, 10015, "Unknown Webhook")
        for interaction in self.interactions.values():
            if secrets.compare_digest(interaction.token, token):
                return interaction
        raise DiscordHTTPError(404, 10015, "Unknown Webhook")

    def _original(self, call: Call) -> MessageRecord:
        interaction = self._webhook_interaction(call)
        if interaction.original_message_id is None:
            raise DiscordHTTPError(404, 10008, "Unknown Message")
        return self.messages[interaction.original_message_id]

    # --- small helpers -------------------------------------------------------------------------

    def _object_body(self, call: Call) -> Json:
        if call.body is None:
            return {}
        if not isinstance(call.body, dict):
            raise DiscordHTTPError(
                400,
                50035,
                "Invalid Form Body",
                field_error("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"),
            )
        return call.body

    def _channel_or_404(self, channel_id: int) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise DiscordHTTPError(404, 10003, "Unknown Channel")
        return channel

    def _message_in(self, channel_id: int, message_id: int) -> MessageRecord:
        self._channel_or_404(channel_id)
        record = self.messages.get(message_id)
        if record is None or record.channel_id != channel_id or record.ephemeral:
            raise DiscordHTTPError(404, 10008, "Unknown Message")
        return record

    def _user(self, user: User | int) -> User:
        return user if isinstance(user, User) else self.users[int(user)]

    def _guild(self, guild: Guild | int) -> Guild:
        return guild if isinstance(guild, Guild) else self.guilds[int(guild)]

    def _channel(self, channel: Channel | int) -> Channel:
        return channel if isinstance(channel, Channel) else self.channels[int(channel)]

    def _message(self, message: MessageRecord | int) -> MessageRecord:
        return message if isinstance(message, MessageRecord) else self.messages[int(message)]
