"""The Discord emulator's gateway: the websocket protocol discord.py speaks (API v10, JSON encoding).

Handshake: HELLO → IDENTIFY → READY (+ one GUILD_CREATE per guild), or HELLO → RESUME → the
missed events → RESUMED. Heartbeats are acknowledged. Each session keeps a buffer of the frames
dispatched to it, numbered by sequence, so a client that lost its connection can RESUME and get
every event it did not see, including those dispatched while it was away; a session that cannot be
resumed gets INVALID_SESSION. Close codes follow Discord (4001 unknown opcode, 4002 decode error,
4003 not authenticated, 4004 authentication failed, 4005 already authenticated, 4010 invalid shard,
4013 invalid intents, 4014 disallowed intents); a client closing with 1000/1001 ends its session.

Frames are JSON text, unless the client asks for ``compress=zlib-stream`` in the query string (as
discord.py does unless zstandard is installed): then every frame is a binary message out of one
zlib stream per connection, each ending with a ``Z_SYNC_FLUSH`` (``00 00 ff ff``), as Discord does.
``zstd-stream`` is not emulated; a client asking for it gets plain text frames, which discord.py
also reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSMsgType, web

Json = dict[str, Any]

log = logging.getLogger(__name__)

# Opcodes.
DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
PRESENCE_UPDATE = 3
VOICE_STATE_UPDATE = 4
RESUME = 6
RECONNECT = 7
REQUEST_GUILD_MEMBERS = 8
INVALID_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11

# Intents (https://discord.com/developers/docs/events/gateway#gateway-intents).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
ALL_INTENTS = (1 << 26) - 1

_TRACE = ['["gateway-emulator",{"micros":0}]']


class GatewayHost(Protocol):
    """What the gateway needs from the emulator that owns it."""

    token: str
    privileged_intents: int

    def ready_payload(self, session: GatewaySession) -> Json:
        """The ``d`` of READY for a new session."""
        ...

    def guild_create_payloads(self, session: GatewaySession) -> list[Json]:
        """One GUILD_CREATE ``d`` per guild the session sees."""
        ...

    def members_chunk(self, request: Json) -> Json | None:
        """The GUILD_MEMBERS_CHUNK ``d`` answering a REQUEST_GUILD_MEMBERS, or None for unknown guilds."""
        ...

    def changed(self) -> None:
        """Wake whoever waits for the emulator's state to change."""
        ...


class GatewayConnection:
    """One websocket connection; writes are serialised so the zlib stream stays in order."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, *, compress: bool) -> None:
        self.ws = ws
        self.request = request
        self.compress = compress
        self.session: GatewaySession | None = None
        self.heartbeats = 0
        self.last_heartbeat_seq: int | None = None
        self.presence: Json | None = None
        self.dropped = False
        self._deflate = zlib.compressobj() if compress else None
        self._lock = asyncio.Lock()

    @property
    def open(self) -> bool:
        """Whether frames can still be written."""
        return not self.ws.closed and not self.dropped

    async def send(self, frame: Json) -> bool:
        """Write one frame; False when the connection is gone (the session buffer keeps it)."""
        text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
        async with self._lock:
            if not self.open:
                return False
            try:
                if self._deflate is not None:
                    chunk = self._deflate.compress(text.encode()) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(chunk)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return False
        return True

    async def close(self, code: int, message: str = "") -> None:
        """Close the websocket with a close code, as Discord does on protocol errors."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=message.encode())

    def abort(self) -> None:
        """Cut the TCP connection without a close frame: what a network failure looks like."""
        self.dropped = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()


@dataclass
class GatewaySession:
    """A gateway session: survives its connection, so it can be resumed."""

    id: str
    intents: int
    shard: tuple[int, int] | None
    buffer: deque[Json]
    seq: int = 0
    connection: GatewayConnection | None = None
    resumes: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def sees_guild(self, guild_id: int | None) -> bool:
        """Shard routing: guild events go to shard ``(guild_id >> 22) % count``, DMs to shard 0."""
        if self.shard is None:
            return True
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % count == shard_id

    def receives(self, intent: int, guild_id: int | None) -> bool:
        """Whether an event needing ``intent`` (0: none) about ``guild_id`` reaches this session."""
        return (intent == 0 or bool(self.intents & intent)) and self.sees_guild(guild_id)


@dataclass(frozen=True)
class DispatchedEvent:
    """One event the gateway sent (or buffered) for a session."""

    session_id: str
    seq: int
    type: str
    data: Json


class Gateway:
    """Serves the gateway websocket and dispatches events to the sessions."""

    def __init__(
        self, host: GatewayHost, *, heartbeat_interval_ms: int = 41_250, buffer_size: int = 1000
    ) -> None:
        self.host = host
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.buffer_size = buffer_size
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[GatewayConnection] = set()
        self.dispatched: list[DispatchedEvent] = []
        self.identify_count = 0
        self.resume_count = 0
        self.invalid_session_count = 0

    # --- websocket handler ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The ``GET /gateway`` websocket endpoint."""
        encoding = request.query.get("encoding", "json")
        if encoding != "json":
            raise web.HTTPBadRequest(text=f"encoding {encoding!r} is not emulated; use json")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = GatewayConnection(ws, request, compress=request.query.get("compress") == "zlib-stream")
        self.connections.add(conn)
        self.host.changed()
        try:
            await conn.send(
                {
                    "op": HELLO,
                    "d": {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": _TRACE},
                    "s": None,
                    "t": None,
                }
            )
            async for message in ws:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    raw = message.data if isinstance(message.data, str) else message.data.decode()
                    frame = json.loads(raw)
                    if not isinstance(frame, dict):
                        raise ValueError("a gateway payload is a JSON object")
                except ValueError:
                    await conn.close(4002, "Error while decoding payload.")
                    break
                if not await self._on_frame(conn, frame):
                    break
        finally:
            self.connections.discard(conn)
            session = conn.session
            if session is not None and session.connection is conn:
                session.connection = None
                # A client that closes with 1000/1001 ends its session; any other way keeps it resumable.
                if not conn.dropped and ws.close_code in (1000, 1001):
                    self.sessions.pop(session.id, None)
            self.host.changed()
        return ws

    async def _on_frame(self, conn: GatewayConnection, frame: Json) -> bool:
        op = frame.get("op")
        data = frame.get("d")
        if op == HEARTBEAT:
            conn.heartbeats += 1
            conn.last_heartbeat_seq = data if isinstance(data, int) else None
            await conn.send({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
            self.host.changed()
            return True
        if op == IDENTIFY:
            return await self._identify(conn, data if isinstance(data, dict) else {})
        if op == RESUME:
            return await self._resume(conn, data if isinstance(data, dict) else {})
        if conn.session is None:
            await conn.close(4003, "Not authenticated.")
            return False
        if op == PRESENCE_UPDATE:
            conn.presence = data if isinstance(data, dict) else None
            return True
        if op == VOICE_STATE_UPDATE:
            return True
        if op == REQUEST_GUILD_MEMBERS:
            chunk = self.host.members_chunk(data if isinstance(data, dict) else {})
            if chunk is not None:
                await self._send(conn.session, "GUILD_MEMBERS_CHUNK", chunk)
            return True
        await conn.close(4001, "Unknown opcode.")
        return False

    async def _identify(self, conn: GatewayConnection, data: Json) -> bool:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return False
        if data.get("token") != self.host.token:
            await conn.close(4004, "Authentication failed.")
            return False
        intents = data.get("intents")
        if not isinstance(intents, int) or isinstance(intents, bool) or intents < 0 or intents & ~ALL_INTENTS:
            await conn.close(4013, "Invalid intent(s).")
            return False
        if intents & PRIVILEGED_INTENTS & ~self.host.privileged_intents:
            await conn.close(4014, "Disallowed intent(s).")
            return False
        shard = data.get("shard")
        shard_pair: tuple[int, int] | None = None
        if shard is not None:
            if (
                not isinstance(shard, list)
                or len(shard) != 2
                or not all(isinstance(x, int) for x in shard)
                or not 0 <= shard[0] < shard[1]
            ):
                await conn.close(4010, "Invalid shard.")
                return False
            shard_pair = (shard[0], shard[1])
        session = GatewaySession(
            id=secrets.token_hex(16), intents=intents, shard=shard_pair, buffer=deque(maxlen=self.buffer_size)
        )
        self.sessions[session.id] = session
        session.connection = conn
        conn.session = session
        self.identify_count += 1
        await self._send(session, "READY", self.host.ready_payload(session))
        if intents & GUILDS:
            for guild in self.host.guild_create_payloads(session):
                await self._send(session, "GUILD_CREATE", guild)
        self.host.changed()
        return True

    async def _resume(self, conn: GatewayConnection, data: Json) -> bool:
        session = self.sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        seq = seq if isinstance(seq, int) else 0
        oldest = session.buffer[0]["s"] if session is not None and session.buffer else None
        if (
            session is None
            or data.get("token") != self.host.token
            or seq > session.seq
            or (oldest is not None and seq < oldest - 1)
        ):
            self.invalid_session_count += 1
            await conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            self.host.changed()
            return True  # the client closes and identifies again
        previous = session.connection
        if previous is not None and previous is not conn:
            previous.dropped = True  # a stale connection of a resumed session is replaced, not ended
            await previous.close(4000, "Session resumed elsewhere.")
        async with session.lock:
            session.connection = conn
            conn.session = session
            for frame in list(session.buffer):
                if frame["s"] > seq and not await conn.send(frame):
                    break
            session.seq += 1
            resumed = {"op": DISPATCH, "t": "RESUMED", "s": session.seq, "d": {"_trace": _TRACE}}
            session.buffer.append(resumed)
            await conn.send(resumed)
        session.resumes += 1
        self.resume_count += 1
        self.host.changed()
        return True

    # --- dispatching ---------------------------------------------------------------------------

    async def dispatch(
        self,
        event: str,
        data: Json,
        *,
        intent: int = 0,
        guild_id: int | None = None,
        content_gated: bool = False,
    ) -> int:
        """Send an event to every session that receives it; returns how many sessions did.

        ``content_gated`` marks a message whose content only sessions with the MESSAGE_CONTENT
        intent may read: the others get it with empty content, embeds, attachments and components.
        """
        count = 0
        for session in list(self.sessions.values()):
            if not session.receives(intent, guild_id):
                continue
            payload = data
            if content_gated and not session.intents & MESSAGE_CONTENT:
                payload = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
                payload.pop("poll", None)
            await self._send(session, event, payload)
            count += 1
        return count

    async def _send(self, session: GatewaySession, event: str, data: Json) -> None:
        async with session.lock:
            session.seq += 1
            frame = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
            session.buffer.append(frame)
            self.dispatched.append(DispatchedEvent(session.id, session.seq, event, data))
            conn = session.connection
            if conn is not None:
                await conn.send(frame)  # a failed write is replayed on RESUME
        self.host.changed()

    # --- faults --------------------------------------------------------------------------------

    async def drop(self, code: int | None = None) -> int:
        """Break every live connection: cut TCP (``code=None``) or close with ``code``; sessions stay."""
        dropped = 0
        for conn in list(self.connections):
            if conn.dropped or conn.ws.closed:
                continue
            dropped += 1
            if code is None:
                conn.abort()
            else:
                conn.dropped = True
                await conn.close(code, "Dropped by the emulator.")
        self.host.changed()
        return dropped

    async def request_reconnect(self) -> int:
        """Send RECONNECT (op 7) on every live connection, as Discord does before maintenance."""
        count = 0
        for conn in list(self.connections):
            if conn.session is not None and await conn.send(
                {"op": RECONNECT, "d": None, "s": None, "t": None}
            ):
                count += 1
        return count

    async def invalidate_sessions(self) -> int:
        """End every session: live clients get INVALID_SESSION (not resumable), others fail to RESUME."""
        count = len(self.sessions)
        self.sessions.clear()
        for conn in list(self.connections):
            if conn.session is not None:
                conn.session = None
                self.invalid_session_count += 1
                await conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
        self.host.changed()
        return count

    async def close_all(self) -> None:
        """Close every connection with 1001 (going away), for shutdown."""
        for conn in list(self.connections):
            conn.dropped = True
            await conn.close(1001, "Emulator stopping.")
