"""An X (Twitter) API v2 emulator: an aiohttp server the real tweepy ``AsyncClient`` talks to.

Tweepy hard-codes ``https://api.twitter.com``; point it here through the session seam in
:mod:`connectors.x.session` (``client.session = XApiSession(emulator.base_url)``).

What it speaks, following X's v2 documentation (X publishes no machine-readable spec):

* ``GET /2/users/me``; ``GET /2/users/:id/mentions`` (``since_id``, ``until_id``,
  ``start_time``, ``end_time``, ``pagination_token``, ``max_results`` 5 to 100, default 10,
  ``expansions``, ``tweet.fields``, ``user.fields``; newest first; only the newest 800 mentions
  are reachable, as on X); ``GET /2/dm_events`` and the two per-conversation variants
  (``dm_event.fields``, ``event_types``, ``expansions``, ``pagination_token``, ``max_results``
  1 to 100, default 100; last 30 days; no ``since_id`` — unknown query parameters get X's 400);
  ``POST /2/tweets`` (``text``, ``reply.in_reply_to_tweet_id``; 201) and
  ``POST /2/dm_conversations/with/:participant_id/messages`` (201).
* Pagination tokens are opaque but exact: a ``next_token`` names the oldest item of its page,
  so following it never repeats or skips an item, even while new items arrive.
* Auth: OAuth 2 bearer (the user-context token, or an app-only token which, as on X, is refused
  with 403 on user-context-only endpoints) and OAuth 1.0a user context, whose HMAC-SHA1
  signature is verified against the original ``https://api.twitter.com`` (or ``api.x.com``) URL.
  Each recorded request says which was used. Missing or wrong credentials get X's 401 body.
* Rate limits per endpoint, per user (or app) and per window (default 15 minutes, limits as
  on X and configurable), with ``x-rate-limit-limit/-remaining/-reset`` on every authenticated
  response and X's 429 body when exceeded. The clock is injected (a callable returning epoch
  seconds), e.g. ``clock=lambda: fake_clock.now().timestamp()``.
* Faults: :meth:`XEmulator.inject` (a status N times), :meth:`XEmulator.slow` (delay, to
  trigger client timeouts). Usage counters (:class:`Usage`) mirror X's pay-per-use billing:
  reads per resource returned, writes per successful request.
* Post length is counted like X's twitter-text (URLs 23, CJK and emoji 2, others 1); 280 max.
  Posting the same text twice from the bot is refused with 403, as X refuses duplicates.
* Account Activity webhooks: :func:`crc_response`, :func:`webhook_signature`,
  :meth:`XEmulator.check_crc` and :meth:`XEmulator.deliver_activity` let the emulator act as X
  towards a webhook, including signing wrongly.

This module never imports ``inbox``; it is a fake platform, not part of the product.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fnmatch
import hashlib
import hmac
import http
import json
import math
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web
from oauthlib.oauth1.rfc5849 import signature as oauth_signature
from oauthlib.oauth1.rfc5849 import utils as oauth_utils

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "DMEvent",
    "RecordedRequest",
    "Usage",
    "XEmulator",
    "XPost",
    "XUser",
    "crc_response",
    "crc_response_token",
    "post_length",
    "webhook_signature",
]

# Requests per window, per user token (or per app for app-only bearer calls). From X's v2
# rate-limit tables; the three DM lookup endpoints share one limit on X, so they share a key.
DEFAULT_RATE_LIMITS: dict[str, int] = {
    "GET /2/users/me": 75,
    "GET /2/users/:id/mentions": 180,
    "GET /2/dm_events": 300,
    "POST /2/tweets": 100,
    "POST /2/dm_conversations/with/:participant_id/messages": 200,
}
WINDOW_SECONDS = 15 * 60
POST_MAX_LENGTH = 280  # weighted characters, as counted by twitter-text
DM_MAX_LENGTH = 10_000
MENTIONS_TIMELINE_CAP = 800  # X serves only the newest 800 mentions
DM_HISTORY_DAYS = 30  # /2/dm_events reaches back 30 days
TWITTER_EPOCH_MS = 1_288_834_974_657  # snowflake ids count milliseconds from here
URL_WEIGHT = 23  # every URL counts as a t.co link

UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
TOO_MANY_REQUESTS = {
    "title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429,
}
INVALID_REQUEST_TYPE = "https://api.twitter.com/2/problems/invalid-request"

TWEET_FIELDS = frozenset({
    "attachments", "author_id", "card_uri", "context_annotations", "conversation_id", "created_at",
    "edit_controls", "edit_history_tweet_ids", "entities", "geo", "id", "in_reply_to_user_id", "lang",
    "non_public_metrics", "note_tweet", "organic_metrics", "possibly_sensitive", "promoted_metrics",
    "public_metrics", "referenced_tweets", "reply_settings", "scopes", "source", "text", "withheld",
})
USER_FIELDS = frozenset({
    "affiliation", "connection_status", "created_at", "description", "entities", "id", "location",
    "most_recent_tweet_id", "name", "pinned_tweet_id", "profile_banner_url", "profile_image_url",
    "protected", "public_metrics", "receives_your_dm", "subscription_type", "url", "username",
    "verified", "verified_type", "withheld",
})
DM_EVENT_FIELDS = frozenset({
    "attachments", "created_at", "dm_conversation_id", "entities", "event_type", "id",
    "participant_ids", "referenced_tweets", "sender_id", "text",
})
TWEET_EXPANSIONS = frozenset({
    "attachments.media_keys", "attachments.poll_ids", "author_id", "edit_history_tweet_ids",
    "entities.mentions.username", "geo.place_id", "in_reply_to_user_id", "referenced_tweets.id",
    "referenced_tweets.id.author_id",
})
DM_EXPANSIONS = frozenset({"attachments.media_keys", "participant_ids", "referenced_tweets.id", "sender_id"})
DM_EVENT_TYPES = frozenset({"MessageCreate", "ParticipantsJoin", "ParticipantsLeave"})

_MENTION_RE = re.compile(r"(?<![\w@])@(\w{1,15})")
_HASHTAG_RE = re.compile(r"(?<![\w#])#(\w+)")
_URL_RE = re.compile(r"https?://\S+", re.IGNORECASE)
_ID_RE = re.compile(r"^[0-9]{1,19}$")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# twitter-text v3: code points in these ranges weigh 1, all others 2.
_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))


# --- public helpers ------------------------------------------------------------------------


def post_length(text: str) -> int:
    """Length of a post as X counts it (twitter-text v3 weights, NFC-normalised, URLs 23)."""
    text = unicodedata.normalize("NFC", text)
    length = 0
    position = 0
    for match in _URL_RE.finditer(text):
        length += _weighted(text[position:match.start()]) + URL_WEIGHT
        position = match.end()
    return length + _weighted(text[position:])


def _weighted(text: str) -> int:
    return sum(1 if any(lo <= ord(ch) <= hi for lo, hi in _LIGHT_RANGES) else 2 for ch in text)


def crc_response_token(consumer_secret: str, crc_token: str) -> str:
    """The ``response_token`` an Account Activity webhook must answer a CRC check with."""
    digest = hmac.new(consumer_secret.encode(), crc_token.encode(), hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def crc_response(consumer_secret: str, crc_token: str) -> dict[str, str]:
    """The JSON body of a correct CRC answer: ``{"response_token": "sha256=..."}``."""
    return {"response_token": crc_response_token(consumer_secret, crc_token)}


def webhook_signature(consumer_secret: str, body: bytes) -> str:
    """The ``x-twitter-webhooks-signature`` value X sends with a POSTed event body."""
    digest = hmac.new(consumer_secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def iso_time(epoch: float) -> str:
    """Epoch seconds as X's v2 timestamp, e.g. ``2026-11-02T09:00:00.000Z``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def legacy_time(epoch: float) -> str:
    """Epoch seconds as X's v1.1 timestamp (used by Account Activity payloads)."""
    m = datetime.fromtimestamp(epoch, UTC)
    return f"{_WEEKDAYS[m.weekday()]} {_MONTHS[m.month - 1]} {m:%d %H:%M:%S} +0000 {m.year}"


# --- state ---------------------------------------------------------------------------------


@dataclass
class XUser:
    """An account on the emulated X."""

    id: str
    username: str
    name: str
    created_at: float
    description: str = ""
    accepts_dms: bool = True

    def render(self, fields: Iterable[str] = ()) -> dict[str, Any]:
        """The v2 user object with the default and the requested fields."""
        data: dict[str, Any] = {"id": self.id, "name": self.name, "username": self.username}
        optional: dict[str, Any] = {
            "created_at": iso_time(self.created_at), "description": self.description,
            "protected": False, "verified": False, "verified_type": "none",
        }
        data.update({name: optional[name] for name in fields if name in optional})
        return data


@dataclass
class XPost:
    """A post (tweet) on the emulated X."""

    id: str
    author_id: str
    text: str
    created_at: float
    conversation_id: str
    in_reply_to_id: str | None = None
    in_reply_to_user_id: str | None = None
    mention_ids: tuple[str, ...] = ()
    entities: dict[str, Any] = field(default_factory=dict)

    def render(self, fields: Iterable[str] = ()) -> dict[str, Any]:
        """The v2 post object with the default and the requested fields."""
        data: dict[str, Any] = {"id": self.id, "text": self.text, "edit_history_tweet_ids": [self.id]}
        optional: dict[str, Any] = {
            "author_id": self.author_id, "conversation_id": self.conversation_id,
            "created_at": iso_time(self.created_at), "possibly_sensitive": False,
            "reply_settings": "everyone",
        }
        if self.entities:
            optional["entities"] = self.entities
        if self.in_reply_to_id is not None:
            optional["in_reply_to_user_id"] = self.in_reply_to_user_id
            optional["referenced_tweets"] = [{"type": "replied_to", "id": self.in_reply_to_id}]
        data.update({name: optional[name] for name in fields if name in optional})
        return data


@dataclass
class DMEvent:
    """A direct-message event on the emulated X (only ``MessageCreate`` is produced)."""

    id: str
    sender_id: str
    recipient_id: str
    text: str
    created_at: float
    dm_conversation_id: str
    event_type: str = "MessageCreate"

    def render(self, fields: Iterable[str] = ()) -> dict[str, Any]:
        """The v2 DM event object with the default and the requested fields."""
        data: dict[str, Any] = {"id": self.id, "event_type": self.event_type, "text": self.text}
        optional: dict[str, Any] = {
            "created_at": iso_time(self.created_at), "sender_id": self.sender_id,
            "dm_conversation_id": self.dm_conversation_id,
        }
        data.update({name: optional[name] for name in fields if name in optional})
        return data


@dataclass
class RecordedRequest:
    """One request the emulator received, as a test may want to inspect it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float
    auth: str | None = None  # "oauth2_user", "oauth2_app", "oauth1_user" or None
    status: int | None = None  # None when the client went away before the answer


@dataclass
class Usage:
    """What X would bill: reads per resource returned, writes per successful request.

    ``*_read`` count every resource returned; ``billed_*_read`` apply X's deduplication (the same
    resource is charged once per UTC day).
    """

    posts_read: int = 0
    users_read: int = 0
    dm_events_read: int = 0
    billed_posts_read: int = 0
    billed_users_read: int = 0
    billed_dm_events_read: int = 0
    posts_created: int = 0
    dms_created: int = 0

    @property
    def reads(self) -> int:
        """All resources returned."""
        return self.posts_read + self.users_read + self.dm_events_read

    @property
    def writes(self) -> int:
        """All successful write requests."""
        return self.posts_created + self.dms_created


@dataclass
class _Fault:
    pattern: str
    method: str | None
    status: int
    remaining: int | None
    reset_in: float | None


@dataclass
class _Delay:
    pattern: str
    method: str | None
    seconds: float
    remaining: int | None
    after: bool


@dataclass
class _Window:
    start: float
    used: int = 0


@dataclass(frozen=True)
class _Endpoint:
    rate_key: str
    app_only_allowed: bool
    params: frozenset[str]
    handler: str  # name of the XEmulator method that answers it


@dataclass(frozen=True)
class _Context:
    """What the middleware learnt about a request, handed to the endpoint's handler."""

    body: Any
    user_id: str | None  # the authenticated user; None for app-only calls


@dataclass(frozen=True)
class _PageToken:
    direction: str  # "n" (older page) or "p" (newer page)
    id: int


class _ApiError(Exception):
    """Raised by handlers; becomes an X-shaped error response."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _problem(status: int, title: str, detail: str, type_: str = "about:blank") -> _ApiError:
    return _ApiError(status, {"title": title, "detail": detail, "type": type_, "status": status})


def _invalid(parameter: str, value: str, message: str) -> _ApiError:
    return _ApiError(400, {
        "errors": [{"parameters": {parameter: [value]}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": INVALID_REQUEST_TYPE,
    })


def _status_body(status: int) -> dict[str, Any]:
    if status == 429:
        return dict(TOO_MANY_REQUESTS)
    if status == 401:
        return dict(UNAUTHORIZED)
    phrase = http.HTTPStatus(status).phrase
    return {"title": phrase, "detail": phrase, "type": "about:blank", "status": status}


def _check_id(name: str, value: str) -> None:
    if not _ID_RE.match(value):
        raise _invalid(name, value, f"The `{name}` value [{value}] does not match ^[0-9]{{1,19}}$")


def _path_matches(pattern: str, path: str) -> bool:
    # ":id"-style segments (as in the rate-limit keys) match any single segment.
    glob = re.sub(r":[A-Za-z_]+", "*", pattern)
    return fnmatch.fnmatchcase(path, glob)


MENTION_PARAMS = frozenset({
    "end_time", "expansions", "max_results", "media.fields", "pagination_token", "place.fields",
    "poll.fields", "since_id", "start_time", "tweet.fields", "until_id", "user.fields",
})
DM_LOOKUP_PARAMS = frozenset({
    "dm_event.fields", "event_types", "expansions", "max_results", "media.fields", "pagination_token",
    "tweet.fields", "user.fields",
})
ME_PARAMS = frozenset({"expansions", "tweet.fields", "user.fields"})

_ENDPOINTS: dict[tuple[str, str], _Endpoint] = {
    ("GET", "/2/users/me"): _Endpoint("GET /2/users/me", False, ME_PARAMS, "_users_me"),
    ("GET", "/2/users/{id}/mentions"): _Endpoint(
        "GET /2/users/:id/mentions", True, MENTION_PARAMS, "_mentions"),
    ("GET", "/2/dm_events"): _Endpoint("GET /2/dm_events", False, DM_LOOKUP_PARAMS, "_dm_lookup"),
    ("GET", "/2/dm_conversations/with/{participant_id}/dm_events"): _Endpoint(
        "GET /2/dm_events", False, DM_LOOKUP_PARAMS, "_dm_lookup"),
    ("GET", "/2/dm_conversations/{dm_conversation_id}/dm_events"): _Endpoint(
        "GET /2/dm_events", False, DM_LOOKUP_PARAMS, "_dm_lookup"),
    ("POST", "/2/tweets"): _Endpoint("POST /2/tweets", False, frozenset(), "_create_tweet"),
    ("POST", "/2/dm_conversations/with/{participant_id}/messages"): _Endpoint(
        "POST /2/dm_conversations/with/:participant_id/messages", False, frozenset(), "_create_dm_message"),
}


# --- the emulator --------------------------------------------------------------------------


class XEmulator:
    """A fake X API v2 server for tweepy's ``AsyncClient``, with a test API to drive it."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        bot_user_id: str = "1580000000000000001",
        bot_username: str = "saluran_help",
        bot_name: str = "Saluran Help",
        bearer_token: str = "emulator-oauth2-user-token",
        app_bearer_token: str | None = "emulator-app-only-bearer-token",
        consumer_key: str = "emulator-consumer-key",
        consumer_secret: str = "emulator-consumer-secret",
        access_token: str | None = None,
        access_token_secret: str = "emulator-access-token-secret",
        rate_limits: Mapping[str, int] | None = None,
        window_seconds: float = WINDOW_SECONDS,
        post_max_length: int = POST_MAX_LENGTH,
        mentions_cap: int = MENTIONS_TIMELINE_CAP,
        reject_duplicate_posts: bool = True,
    ) -> None:
        unknown = set(rate_limits or {}) - set(DEFAULT_RATE_LIMITS)
        if unknown:
            raise ValueError(f"unknown rate-limit keys {sorted(unknown)}; use {sorted(DEFAULT_RATE_LIMITS)}")
        self._clock = clock or time.time
        self.bearer_token = bearer_token
        self.app_bearer_token = app_bearer_token
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        # tweepy derives the user id from an OAuth 1.0a access token's prefix, as X's tokens have it.
        self.access_token = access_token or f"{bot_user_id}-emulatoraccesstoken"
        self.access_token_secret = access_token_secret
        self.rate_limits: dict[str, int] = {**DEFAULT_RATE_LIMITS, **(rate_limits or {})}
        self.window_seconds = window_seconds
        self.post_max_length = post_max_length
        self.mentions_cap = mentions_cap
        self.reject_duplicate_posts = reject_duplicate_posts

        self.requests: list[RecordedRequest] = []
        self.usage = Usage()
        self._users: dict[str, XUser] = {}
        self._usernames: dict[str, str] = {}
        self._posts: dict[str, XPost] = {}  # insertion order is id order
        self._dm_events: dict[str, DMEvent] = {}
        self._windows: dict[tuple[str, str], _Window] = {}
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []
        self._billed: set[tuple[str, str, str]] = set()
        self._last_id = 0
        self._next_user_id = 2_000_000_001
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.base_url = ""
        self.bot = self._add_user(bot_user_id, bot_username, bot_name)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving; return the base URL (``http://host:port``)."""
        app = web.Application(middlewares=[self._middleware])
        for (method, path) in _ENDPOINTS:
            app.router.add_route(method, path, _answered_by_middleware)
        self._stopping = asyncio.Event()
        # handler_cancellation: a client that times out really goes away, as on the internet.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving; pending slow responses are released at once."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> XEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def credentials(self) -> dict[str, str]:
        """Keyword arguments for ``AsyncClient``: the bearer token and the OAuth 1.0a keys."""
        return {
            "bearer_token": self.bearer_token,
            "consumer_key": self.consumer_key,
            "consumer_secret": self.consumer_secret,
            "access_token": self.access_token,
            "access_token_secret": self.access_token_secret,
        }

    # --- test API: the world -----------------------------------------------------------------

    def add_user(self, username: str, name: str | None = None, *, accepts_dms: bool = True) -> XUser:
        """Create an account (or return the existing one with that username)."""
        existing = self._usernames.get(username.lower())
        if existing is not None:
            return self._users[existing]
        user = self._add_user(str(self._next_user_id), username, name or username.title())
        self._next_user_id += 1
        user.accepts_dms = accepts_dms
        return user

    def user(self, username: str) -> XUser:
        """The account with this username."""
        return self._users[self._usernames[username.lower()]]

    def post_mention(
        self, user: XUser | str, text: str, in_reply_to: XPost | str | None = None
    ) -> XPost:
        """Have ``user`` post ``text`` mentioning the bot (``@handle`` is prepended if missing)."""
        author = user if isinstance(user, XUser) else self.add_user(user)
        handle = f"@{self.bot.username}"
        if not re.search(rf"(?<![\w@]){re.escape(handle)}\b", text, re.IGNORECASE):
            text = f"{handle} {text}"
        parent = None
        if in_reply_to is not None:
            parent_id = in_reply_to.id if isinstance(in_reply_to, XPost) else str(in_reply_to)
            if parent_id not in self._posts:
                raise KeyError(f"no post {parent_id} to reply to")
            parent = self._posts[parent_id]
        return self._create_post(author, text, parent)

    def send_dm(self, user: XUser | str, text: str) -> DMEvent:
        """Have ``user`` send the bot a direct message."""
        sender = user if isinstance(user, XUser) else self.add_user(user)
        return self._create_dm(sender, self.bot, text)

    @property
    def posts(self) -> list[XPost]:
        """Every post, oldest first."""
        return list(self._posts.values())

    @property
    def dm_events(self) -> list[DMEvent]:
        """Every DM event, oldest first."""
        return list(self._dm_events.values())

    def post(self, post_id: str) -> XPost:
        """The post with this id."""
        return self._posts[str(post_id)]

    def posts_by_bot(self) -> list[XPost]:
        """What the bot posted (replies included), oldest first."""
        return [p for p in self._posts.values() if p.author_id == self.bot.id]

    def dms_by_bot(self) -> list[DMEvent]:
        """What the bot sent as direct messages, oldest first."""
        return [e for e in self._dm_events.values() if e.sender_id == self.bot.id]

    def calls(self, method: str | None = None, path_pattern: str = "*") -> list[RecordedRequest]:
        """Recorded requests matching a method and a path pattern (glob or ``:id`` segments)."""
        return [
            r for r in self.requests
            if (method is None or r.method == method.upper()) and _path_matches(path_pattern, r.path)
        ]

    # --- test API: faults and limits ---------------------------------------------------------

    def inject(
        self,
        path_pattern: str,
        status: int = 503,
        times: int | None = 1,
        *,
        method: str | None = None,
        reset_in: float | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests (None: all) with ``status`` in X's shape.

        An injected 429 carries rate-limit headers with ``remaining`` 0 and a reset ``reset_in``
        seconds from now (default: the end of the current window).
        """
        if not 400 <= status < 600:
            raise ValueError("inject() takes a 4xx or 5xx status")
        self._faults.append(_Fault(path_pattern, method and method.upper(), status, times, reset_in))

    def slow(
        self,
        path_pattern: str,
        seconds: float,
        *,
        times: int | None = None,
        method: str | None = None,
        after: bool = False,
    ) -> None:
        """Delay matching requests by real ``seconds`` (to trigger client timeouts).

        By default the delay comes before the request is processed, so a client that gives up
        changes nothing; with ``after=True`` the request is processed first (a write happens)
        and only the answer is late.
        """
        self._delays.append(_Delay(path_pattern, method and method.upper(), seconds, times, after))

    def clear_faults(self) -> None:
        """Remove all injected faults and delays."""
        self._faults.clear()
        self._delays.clear()

    def set_rate_limit(self, key: str, limit: int) -> None:
        """Change one endpoint's limit per window (key as in :data:`DEFAULT_RATE_LIMITS`)."""
        if key not in DEFAULT_RATE_LIMITS:
            raise ValueError(f"unknown rate-limit key {key!r}")
        self.rate_limits[key] = limit

    def rate_limit_reset(self, key: str, identity: str | None = None) -> int | None:
        """Epoch second at which the current window of ``key`` ends (None: no window open)."""
        window = self._windows.get((key, identity or f"user:{self.bot.id}"))
        return None if window is None else math.ceil(window.start + self.window_seconds)

    # --- test API: Account Activity webhooks -------------------------------------------------

    def activity_payload(self, item: XPost | DMEvent) -> dict[str, Any]:
        """An Account Activity event for a post or DM, in X's (v1.1-shaped) webhook format."""
        if isinstance(item, XPost):
            return {"for_user_id": self.bot.id, "tweet_create_events": [self._legacy_post(item)]}
        users = {uid: self._legacy_user(self._users[uid]) for uid in (item.sender_id, item.recipient_id)}
        return {
            "for_user_id": self.bot.id,
            "direct_message_events": [{
                "type": "message_create",
                "id": item.id,
                "created_timestamp": str(int(item.created_at * 1000)),
                "message_create": {
                    "target": {"recipient_id": item.recipient_id},
                    "sender_id": item.sender_id,
                    "message_data": {"text": item.text, "entities": {"hashtags": [], "urls": [],
                                                                     "user_mentions": [], "symbols": []}},
                },
            }],
            "users": users,
        }

    async def check_crc(self, url: str, crc_token: str = "emulator-crc-token") -> bool:
        """Do X's CRC check against a webhook URL; True when it answers with the right token."""
        async with aiohttp.ClientSession() as session, session.get(
            url, params={"crc_token": crc_token}
        ) as response:
            if response.status != 200:
                return False
            try:
                body = await response.json(content_type=None)
            except ValueError:
                return False
        expected = crc_response_token(self.consumer_secret, crc_token)
        return isinstance(body, dict) and body.get("response_token") == expected

    async def deliver_activity(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        sign_with: str | None = None,
        signature: str | None = None,
        signed: bool = True,
    ) -> tuple[int, str]:
        """POST an event to a webhook as X does; return (status, body text).

        Signed with the consumer secret unless ``sign_with`` names another secret, ``signature``
        gives the exact header value, or ``signed=False`` leaves the header out.
        """
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["x-twitter-webhooks-signature"] = signature or webhook_signature(
                sign_with if sign_with is not None else self.consumer_secret, body
            )
        async with aiohttp.ClientSession() as session, session.post(
            url, data=body, headers=headers
        ) as response:
            return response.status, await response.text()

    # --- internals: state changes ------------------------------------------------------------

    def _now(self) -> float:
        return float(self._clock())

    def _add_user(self, user_id: str, username: str, name: str) -> XUser:
        user = XUser(id=user_id, username=username, name=name, created_at=self._now())
        self._users[user_id] = user
        self._usernames[username.lower()] = user_id
        return user

    def _next_id(self) -> str:
        # Snowflake-like: increasing with time, strictly increasing even if the clock stands still.
        candidate = (int(self._now() * 1000) - TWITTER_EPOCH_MS) << 22
        self._last_id = max(candidate, self._last_id + 1)
        return str(self._last_id)

    def _entities(self, text: str) -> dict[str, Any]:
        entities: dict[str, Any] = {}
        mentions = []
        for match in _MENTION_RE.finditer(text):
            user_id = self._usernames.get(match.group(1).lower())
            if user_id is not None:
                mentions.append({"start": match.start(), "end": match.end(),
                                 "username": self._users[user_id].username, "id": user_id})
        if mentions:
            entities["mentions"] = mentions
        hashtags = [
            {"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in _HASHTAG_RE.finditer(text)
        ]
        if hashtags:
            entities["hashtags"] = hashtags
        return entities

    def _create_post(self, author: XUser, text: str, parent: XPost | None) -> XPost:
        post_id = self._next_id()
        entities = self._entities(text)
        mentioned = [m["id"] for m in entities.get("mentions", [])]
        if parent is not None:
            mentioned.append(parent.author_id)  # a reply implicitly mentions who it answers
        post = XPost(
            id=post_id,
            author_id=author.id,
            text=text,
            created_at=self._now(),
            conversation_id=parent.conversation_id if parent else post_id,
            in_reply_to_id=parent.id if parent else None,
            in_reply_to_user_id=parent.author_id if parent else None,
            mention_ids=tuple(dict.fromkeys(uid for uid in mentioned if uid != author.id)),
            entities=entities,
        )
        self._posts[post_id] = post
        return post

    def _create_dm(self, sender: XUser, recipient: XUser, text: str) -> DMEvent:
        low, high = sorted((sender.id, recipient.id), key=int)
        event = DMEvent(
            id=self._next_id(), sender_id=sender.id, recipient_id=recipient.id, text=text,
            created_at=self._now(), dm_conversation_id=f"{low}-{high}",
        )
        self._dm_events[event.id] = event
        return event

    def _bill(self, kind: str, ids: Iterable[str]) -> int:
        day = datetime.fromtimestamp(self._now(), UTC).date().isoformat()
        fresh = 0
        for resource_id in ids:
            key = (day, kind, resource_id)
            if key not in self._billed:
                self._billed.add(key)
                fresh += 1
        return fresh

    def _count_reads(self, posts: list[str], users: list[str], dm_events: list[str]) -> None:
        self.usage.posts_read += len(posts)
        self.usage.users_read += len(users)
        self.usage.dm_events_read += len(dm_events)
        self.usage.billed_posts_read += self._bill("post", posts)
        self.usage.billed_users_read += self._bill("user", users)
        self.usage.billed_dm_events_read += self._bill("dm_event", dm_events)

    # --- internals: HTTP plumbing ------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        record = RecordedRequest(
            method=request.method, path=request.path, query=dict(request.query),
            headers=dict(request.headers), body=body, at=self._now(),
        )
        self.requests.append(record)
        response = await self._process(request, body, record)
        record.status = response.status
        return response

    async def _process(self, request: web.Request, body: Any, record: RecordedRequest) -> web.Response:
        endpoint = self._endpoint(request)
        if endpoint is None:
            return web.json_response(
                {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}, status=404
            )
        try:
            record.auth, identity = self._authenticate(request)
        except _ApiError as error:
            return web.json_response(error.body, status=error.status)
        if record.auth == "oauth2_app" and not endpoint.app_only_allowed:
            return web.json_response(_unsupported_authentication(), status=403)
        context = _Context(body, identity.removeprefix("user:") if identity.startswith("user:") else None)

        allowed, headers = self._consume(endpoint.rate_key, identity)
        if not allowed:
            return web.json_response(dict(TOO_MANY_REQUESTS), status=429, headers=headers)
        delay = self._take(self._delays, request)
        if delay is not None and not delay.after:
            await self._pause(delay.seconds)
        fault = self._take(self._faults, request)
        if fault is not None:
            if fault.status == 429:
                headers["x-rate-limit-remaining"] = "0"
                if fault.reset_in is not None:
                    headers["x-rate-limit-reset"] = str(math.ceil(self._now() + fault.reset_in))
            return web.json_response(_status_body(fault.status), status=fault.status, headers=headers)
        try:
            self._check_params(request, endpoint)
            handler: Callable[[web.Request, _Context], Awaitable[web.Response]] = getattr(
                self, endpoint.handler
            )
            response = await handler(request, context)
        except _ApiError as error:
            response = web.json_response(error.body, status=error.status)
        if delay is not None and delay.after:
            await self._pause(delay.seconds)
        response.headers.update(headers)
        return response

    def _endpoint(self, request: web.Request) -> _Endpoint | None:
        route = request.match_info.route
        if request.match_info.http_exception is not None or route.resource is None:
            return None
        return _ENDPOINTS.get((request.method, route.resource.canonical))

    def _authenticate(self, request: web.Request) -> tuple[str, str]:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            if hmac.compare_digest(value.encode(), self.bearer_token.encode()):
                return "oauth2_user", f"user:{self.bot.id}"
            if self.app_bearer_token and hmac.compare_digest(value.encode(), self.app_bearer_token.encode()):
                return "oauth2_app", "app"
        elif scheme.lower() == "oauth" and self._oauth1_valid(request, header):
            return "oauth1_user", f"user:{self.bot.id}"
        raise _ApiError(401, dict(UNAUTHORIZED))

    def _oauth1_valid(self, request: web.Request, header: str) -> bool:
        try:
            oauth = dict(oauth_signature.collect_parameters(
                headers={"Authorization": header}, exclude_oauth_signature=False
            ))
            params = oauth_signature.collect_parameters(
                uri_query=request.rel_url.raw_query_string, headers={"Authorization": header},
            )
        except ValueError:
            return False
        if (
            oauth.get("oauth_consumer_key") != self.consumer_key
            or oauth.get("oauth_token") != self.access_token
            or oauth.get("oauth_signature_method") != "HMAC-SHA1"
        ):
            return False
        given = oauth.get("oauth_signature", "")
        normalized = oauth_signature.normalize_parameters(params)
        # The client signed the public URL; the seam only changed where it was sent.
        for origin in ("https://api.twitter.com", "https://api.x.com"):
            base_uri = oauth_signature.base_string_uri(origin + request.rel_url.raw_path)
            base = oauth_signature.signature_base_string(request.method, base_uri, normalized)
            expected = _hmac_sha1(base, self.consumer_secret, self.access_token_secret)
            if hmac.compare_digest(expected.encode(), given.encode()):
                return True
        return False

    def _consume(self, key: str, identity: str) -> tuple[bool, dict[str, str]]:
        limit = self.rate_limits[key]
        now = self._now()
        window = self._windows.get((key, identity))
        if window is None or now >= window.start + self.window_seconds:
            window = _Window(start=now)
            self._windows[(key, identity)] = window
        allowed = window.used < limit
        if allowed:
            window.used += 1
        headers = {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(max(0, limit - window.used)),
            "x-rate-limit-reset": str(math.ceil(window.start + self.window_seconds)),
        }
        return allowed, headers

    def _take(self, rules: list[Any], request: web.Request) -> Any:
        for rule in rules:
            if (rule.method is None or rule.method == request.method) and _path_matches(
                rule.pattern, request.path
            ):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        rules.remove(rule)
                return rule
        return None

    async def _pause(self, seconds: float) -> None:
        # Real time on purpose: this is what makes a client's own timeout fire.
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _check_params(self, request: web.Request, endpoint: _Endpoint) -> None:
        for name in request.query:
            if name not in endpoint.params:
                allowed = ",".join(sorted(endpoint.params))
                raise _invalid(name, request.query[name],
                               f"The query parameter [{name}] is not one of [{allowed}]")

    # --- internals: parameters ---------------------------------------------------------------

    @staticmethod
    def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
        raw = request.query.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise _invalid(
                name, raw, f"The `{name}` query parameter value [{raw}] is not between {low} and {high}"
            )
        return int(raw)

    @staticmethod
    def _id_param(request: web.Request, name: str) -> int | None:
        raw = request.query.get(name)
        if raw is None:
            return None
        _check_id(name, raw)
        return int(raw)

    @staticmethod
    def _time_param(request: web.Request, name: str) -> float | None:
        raw = request.query.get(name)
        if raw is None:
            return None
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except ValueError:
            message = f"Invalid '{name}':'{raw}'. '{name}' must be a valid RFC3339 date"
            raise _invalid(name, raw, message) from None

    @staticmethod
    def _list_param(request: web.Request, name: str, allowed: frozenset[str]) -> list[str]:
        raw = request.query.get(name)
        if raw is None:
            return []
        values = [v for v in raw.split(",") if v]
        for value in values:
            if value not in allowed:
                raise _invalid(name, value, f"The `{name}` query parameter value [{value}] is not one of "
                                            f"[{','.join(sorted(allowed))}]")
        return values

    @staticmethod
    def _token_param(request: web.Request, kind: str) -> _PageToken | None:
        raw = request.query.get("pagination_token")
        if raw is None:
            return None
        try:
            decoded = base64.b32decode(raw.upper() + "=" * (-len(raw) % 8)).decode()
            token_kind, direction, item_id = decoded.split(":")
            if token_kind != kind or direction not in ("n", "p") or not item_id.isdigit():
                raise ValueError(decoded)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise _invalid("pagination_token", raw,
                           f"The `pagination_token` query parameter value [{raw}] is not valid") from None
        return _PageToken(direction, int(item_id))

    @staticmethod
    def _encode_token(kind: str, direction: str, item_id: str) -> str:
        return base64.b32encode(f"{kind}:{direction}:{item_id}".encode()).decode().rstrip("=").lower()

    def _paginate(
        self, items: list[Any], token: _PageToken | None, size: int, kind: str
    ) -> tuple[list[Any], dict[str, Any]]:
        """Cut one page out of ``items`` (newest first) and build its ``meta``."""
        if token is not None and token.direction == "p":
            newer = [item for item in items if int(item.id) > token.id]
            page = newer[-size:]
        else:
            rest = items if token is None else [item for item in items if int(item.id) < token.id]
            page = rest[:size]
        if not page:
            return [], {"result_count": 0}
        meta: dict[str, Any] = {"result_count": len(page), "newest_id": page[0].id, "oldest_id": page[-1].id}
        if int(items[-1].id) < int(page[-1].id):
            meta["next_token"] = self._encode_token(kind, "n", page[-1].id)
        if token is not None and int(items[0].id) > int(page[0].id):
            meta["previous_token"] = self._encode_token(kind, "p", page[0].id)
        return page, meta

    # --- handlers ----------------------------------------------------------------------------

    async def _users_me(self, request: web.Request, context: _Context) -> web.Response:
        user = self._me(context)
        fields = self._list_param(request, "user.fields", USER_FIELDS)
        self._list_param(request, "expansions", frozenset({"pinned_tweet_id", "affiliation.user_id",
                                                          "most_recent_tweet_id"}))
        self._list_param(request, "tweet.fields", TWEET_FIELDS)
        self._count_reads([], [user.id], [])
        return web.json_response({"data": user.render(fields)})

    async def _mentions(self, request: web.Request, context: _Context) -> web.Response:
        user_id = request.match_info["id"]
        _check_id("id", user_id)
        max_results = self._int_param(request, "max_results", 10, 5, 100)
        since_id = self._id_param(request, "since_id")
        until_id = self._id_param(request, "until_id")
        start_time = self._time_param(request, "start_time")
        end_time = self._time_param(request, "end_time")
        tweet_fields = self._list_param(request, "tweet.fields", TWEET_FIELDS)
        user_fields = self._list_param(request, "user.fields", USER_FIELDS)
        expansions = self._list_param(request, "expansions", TWEET_EXPANSIONS)
        token = self._token_param(request, "mentions")
        if user_id not in self._users:
            return web.json_response({"errors": [{
                "value": user_id, "detail": f"Could not find user with id: [{user_id}].",
                "title": "Not Found Error", "resource_type": "user", "parameter": "id",
                "resource_id": user_id, "type": "https://api.twitter.com/2/problems/resource-not-found",
            }]})

        timeline = [p for p in reversed(self._posts.values())
                    if user_id in p.mention_ids and p.author_id != user_id][: self.mentions_cap]
        selected = [
            p for p in timeline
            if (since_id is None or int(p.id) > since_id)
            and (until_id is None or int(p.id) < until_id)
            and (start_time is None or p.created_at >= start_time)
            and (end_time is None or p.created_at <= end_time)
        ]
        page, meta = self._paginate(selected, token, max_results, "mentions")
        body: dict[str, Any] = {}
        if page:
            body["data"] = [p.render(tweet_fields) for p in page]
        includes = self._post_includes(page, expansions, user_fields, tweet_fields)
        if includes:
            body["includes"] = includes
        body["meta"] = meta
        self._count_reads(
            [p.id for p in page] + [t["id"] for t in includes.get("tweets", [])],
            [u["id"] for u in includes.get("users", [])],
            [],
        )
        return web.json_response(body)

    def _post_includes(
        self, page: list[XPost], expansions: list[str], user_fields: list[str], tweet_fields: list[str]
    ) -> dict[str, Any]:
        user_ids: list[str] = []
        referenced: list[XPost] = []
        for post in page:
            if "author_id" in expansions:
                user_ids.append(post.author_id)
            if "in_reply_to_user_id" in expansions and post.in_reply_to_user_id:
                user_ids.append(post.in_reply_to_user_id)
            if "entities.mentions.username" in expansions:
                user_ids.extend(m["id"] for m in post.entities.get("mentions", []))
            if "referenced_tweets.id" in expansions and post.in_reply_to_id in self._posts:
                referenced.append(self._posts[post.in_reply_to_id])
        includes: dict[str, Any] = {}
        if user_ids:
            includes["users"] = [self._users[uid].render(user_fields) for uid in dict.fromkeys(user_ids)]
        if referenced:
            unique = {p.id: p for p in referenced}
            includes["tweets"] = [p.render(tweet_fields) for p in unique.values()]
        return includes

    async def _dm_lookup(self, request: web.Request, context: _Context) -> web.Response:
        me = self._me(context).id
        max_results = self._int_param(request, "max_results", 100, 1, 100)
        fields = self._list_param(request, "dm_event.fields", DM_EVENT_FIELDS)
        expansions = self._list_param(request, "expansions", DM_EXPANSIONS)
        user_fields = self._list_param(request, "user.fields", USER_FIELDS)
        self._list_param(request, "tweet.fields", TWEET_FIELDS)
        event_types = self._list_param(request, "event_types", DM_EVENT_TYPES)
        token = self._token_param(request, "dm")
        conversation = request.match_info.get("dm_conversation_id")
        participant = request.match_info.get("participant_id")
        if participant is not None:
            _check_id("participant_id", participant)
            low, high = sorted((me, participant), key=int)
            conversation = f"{low}-{high}"

        horizon = self._now() - DM_HISTORY_DAYS * 86_400
        events = [
            e for e in reversed(self._dm_events.values())
            if me in (e.sender_id, e.recipient_id)
            and e.created_at >= horizon
            and (conversation is None or e.dm_conversation_id == conversation)
            and (not event_types or e.event_type in event_types)
        ]
        page, meta = self._paginate(events, token, max_results, "dm")
        body: dict[str, Any] = {}
        if page:
            body["data"] = [e.render(fields) for e in page]
        user_ids: list[str] = []
        for event in page:
            if "sender_id" in expansions:
                user_ids.append(event.sender_id)
            if "participant_ids" in expansions:
                user_ids.extend((event.sender_id, event.recipient_id))
        users = [self._users[uid].render(user_fields) for uid in dict.fromkeys(user_ids)]
        if users:
            body["includes"] = {"users": users}
        body["meta"] = meta
        self._count_reads([], [u["id"] for u in users], [e.id for e in page])
        return web.json_response(body)

    def _me(self, context: _Context) -> XUser:
        # Only user-context endpoints call this; app-only calls were refused before.
        if context.user_id is None:
            raise _ApiError(403, _unsupported_authentication())
        return self._users[context.user_id]

    @staticmethod
    def _json_body(context: _Context) -> dict[str, Any]:
        body = context.body
        if not isinstance(body, dict):
            raise _ApiError(400, {
                "errors": [{"message": "Request body must be a JSON object"}],
                "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                "type": INVALID_REQUEST_TYPE,
            })
        return body

    async def _create_tweet(self, request: web.Request, context: _Context) -> web.Response:
        body = self._json_body(context)
        author = self._me(context)
        text = body.get("text")
        if text is None and not body.get("media"):
            raise _invalid("text", "", "$.text: is missing but it is required when media is absent")
        text = "" if text is None else text
        if not isinstance(text, str):
            raise _invalid("text", str(text), "$.text: expected a string")
        length = post_length(text)
        if length > self.post_max_length:
            raise _invalid("text", text, f"Post text is too long: {length} characters, the limit is "
                                         f"{self.post_max_length}")
        parent = None
        reply = body.get("reply")
        if reply is not None:
            parent_id = str(reply.get("in_reply_to_tweet_id", "")) if isinstance(reply, dict) else ""
            parent = self._posts.get(parent_id)
            if parent is None:
                raise _problem(403, "Forbidden",
                               "You attempted to reply to a Tweet that is deleted or not visible to you.")
        if self.reject_duplicate_posts and text and any(
            p.author_id == author.id and p.text == text for p in self._posts.values()
        ):
            raise _problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
        post = self._create_post(author, text, parent)
        self.usage.posts_created += 1
        return web.json_response(
            {"data": {"id": post.id, "text": post.text, "edit_history_tweet_ids": [post.id]}}, status=201
        )

    async def _create_dm_message(self, request: web.Request, context: _Context) -> web.Response:
        body = self._json_body(context)
        sender = self._me(context)
        participant_id = request.match_info["participant_id"]
        recipient = self._users.get(participant_id)
        if recipient is None or recipient.id == sender.id:
            raise _invalid("participant_id", participant_id,
                           f"The `participant_id` value [{participant_id}] is not a valid recipient")
        text = body.get("text")
        if text is None and not body.get("attachments"):
            raise _invalid("text", "", "$.text: is missing but it is required when attachments are absent")
        text = "" if text is None else text
        if not isinstance(text, str) or len(text) > DM_MAX_LENGTH:
            message = f"Direct message text must be at most {DM_MAX_LENGTH} characters"
            raise _invalid("text", str(text)[:50], message)
        if not recipient.accepts_dms:
            raise _problem(403, "Forbidden", "You cannot send messages to this user.")
        event = self._create_dm(sender, recipient, text)
        self.usage.dms_created += 1
        return web.json_response(
            {"data": {"dm_conversation_id": event.dm_conversation_id, "dm_event_id": event.id}}, status=201
        )

    # --- internals: Account Activity shapes --------------------------------------------------

    def _legacy_user(self, user: XUser) -> dict[str, Any]:
        return {"id": int(user.id), "id_str": user.id, "name": user.name, "screen_name": user.username}

    def _legacy_post(self, post: XPost) -> dict[str, Any]:
        return {
            "created_at": legacy_time(post.created_at),
            "id": int(post.id),
            "id_str": post.id,
            "text": post.text,
            "in_reply_to_status_id": int(post.in_reply_to_id) if post.in_reply_to_id else None,
            "in_reply_to_status_id_str": post.in_reply_to_id,
            "in_reply_to_user_id": int(post.in_reply_to_user_id) if post.in_reply_to_user_id else None,
            "in_reply_to_user_id_str": post.in_reply_to_user_id,
            "user": self._legacy_user(self._users[post.author_id]),
            "entities": {
                "hashtags": [{"text": h["tag"], "indices": [h["start"], h["end"]]}
                             for h in post.entities.get("hashtags", [])],
                "user_mentions": [
                    {"id": int(m["id"]), "id_str": m["id"], "screen_name": m["username"],
                     "name": self._users[m["id"]].name, "indices": [m["start"], m["end"]]}
                    for m in post.entities.get("mentions", [])
                ],
                "urls": [],
                "symbols": [],
            },
        }


async def _answered_by_middleware(request: web.Request) -> web.Response:
    # Routes exist so aiohttp matches paths; the middleware answers every matched request.
    raise AssertionError("unreachable: XEmulator middleware answers every route")


def _hmac_sha1(base_string: str, consumer_secret: str, token_secret: str) -> str:
    """OAuth 1.0a HMAC-SHA1 signature (RFC 5849 section 3.4.2)."""
    key = f"{oauth_utils.escape(consumer_secret)}&{oauth_utils.escape(token_secret)}"
    digest = hmac.new(key.encode(), base_string.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _unsupported_authentication() -> dict[str, Any]:
    return {
        "title": "Unsupported Authentication",
        "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
                  "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
        "type": "https://api.twitter.com/2/problems/unsupported-authentication",
        "status": 403,
    }
