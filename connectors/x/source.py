"""X source: polls mentions and DM events with tweepy's ``AsyncClient``; the channel's options.

One poll reads each enabled endpoint in turn:

* **Mentions** (``GET /2/users/:id/mentions``) newest first from ``since_id``, following
  ``next_token`` until the end, so nothing is skipped when more than a page arrived. A sweep cut
  short (a 429, the budget, ``max_pages``) stores ``until_id`` = the oldest post read so far and
  resumes below it next time; ``since_id`` moves to the newest post only when a sweep completes.
* **DM events** (``GET /2/dm_events``) have no ``since_id``: pages are read from the newest until
  an id at or below the newest one already seen. A cut-short sweep keeps its ``next_token``.
  Ingest drops duplicates by external id, so reading an event twice costs money, never a message.

Both positions travel in the channel cursor as one JSON string, stored with the batch.

Rate limits: a 429 (or ``x-rate-limit-remaining: 0``) pauses only that endpoint until the
``x-rate-limit-reset`` time; the other endpoint and other channels carry on, nothing sleeps. The
pause lives in memory: after a restart the connector may meet one more 429, which is harmless.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from tweepy.asynchronous import AsyncClient
from tweepy.errors import BadRequest, TooManyRequests

from connectors.x.budget import DEFAULT_PRICE_PER_READ, DEFAULT_PRICE_PER_WRITE, DEFAULT_WARN_AT, UsageLedger
from connectors.x.convert import count_reads, dm_events_to_inbound, mentions_to_inbound
from connectors.x.session import XApiSession
from inbox.clock import Clock
from inbox.events import Batch, Inbound

log = logging.getLogger(__name__)

OAUTH1_KEYS = ("consumer_key_env", "consumer_secret_env", "access_token_env", "access_token_secret_env")
TWEET_FIELDS = ["author_id", "conversation_id", "created_at", "referenced_tweets", "in_reply_to_user_id",
                "attachments", "note_tweet"]
DM_FIELDS = ["id", "text", "event_type", "created_at", "sender_id", "dm_conversation_id", "attachments"]
USER_FIELDS = ["username", "name"]
MENTIONS = "mentions"
DMS = "dm_events"
DEFAULT_PAUSE = 60.0  # seconds to pause an endpoint when a 429 carries no reset time


class Options(BaseModel):
    """Keys of a ``type = "x"`` channel (see docs/x.md)."""

    model_config = ConfigDict(extra="forbid")

    api_base_url: str | None = Field(default=None, description="emulator URL; unset = the real X API")
    user_id: str | None = Field(default=None, pattern=r"^[0-9]{1,19}$", description="the account's id")
    bearer_token_env: str | None = None
    consumer_key_env: str | None = None
    consumer_secret_env: str | None = None
    access_token_env: str | None = None
    access_token_secret_env: str | None = None
    poll_interval: float = Field(default=60.0, gt=0, le=86_400)
    mentions: bool = True
    dms: bool = True
    page_size: int = Field(default=100, ge=5, le=100)
    max_pages: int = Field(default=10, ge=1, le=100)
    backfill: int = Field(default=20, ge=5, le=100)
    request_timeout: float = Field(default=30.0, gt=0, le=300)
    monthly_budget: float | None = Field(default=None, ge=0)
    price_per_read: float = Field(default=DEFAULT_PRICE_PER_READ, ge=0)
    price_per_write: float = Field(default=DEFAULT_PRICE_PER_WRITE, ge=0)
    budget_warn_at: float = Field(default=DEFAULT_WARN_AT, gt=0, le=1)
    webhook_path: str | None = Field(default=None, description="serve Account Activity webhooks here")

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("api_base_url must start with http:// or https://")
        return value

    @field_validator("webhook_path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("webhook_path must start with '/'")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> Options:
        given = [key for key in OAUTH1_KEYS if getattr(self, key)]
        if given and len(given) < len(OAUTH1_KEYS):
            missing = ", ".join(key for key in OAUTH1_KEYS if key not in given)
            raise ValueError(f"OAuth 1.0a needs all four keys; missing {missing}")
        if not given and not self.bearer_token_env:
            raise ValueError("set bearer_token_env (an OAuth 2.0 user access token) or the four OAuth "
                             "1.0a keys consumer_key_env, consumer_secret_env, access_token_env, "
                             "access_token_secret_env")
        if self.webhook_path and not self.consumer_secret_env:
            raise ValueError("webhook_path needs consumer_secret_env (webhooks are signed with it)")
        return self

    @property
    def oauth1(self) -> bool:
        """True when the channel signs requests with OAuth 1.0a user context."""
        return self.consumer_key_env is not None


class XClient:
    """tweepy's ``AsyncClient`` behind the session seam, answering (JSON body, headers) per call."""

    def __init__(self, options: Options, secrets: Mapping[str, str]) -> None:
        self.options = options
        self.user_auth = options.oauth1
        keys = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
        self._client = AsyncClient(
            bearer_token=secrets.get("bearer_token"),
            **({key: secrets[key] for key in keys} if self.user_auth else {}),
            return_type=aiohttp.ClientResponse,
            wait_on_rate_limit=False,  # tweepy would sleep with the real clock and block this poll
        )
        self._access_token = secrets.get("access_token")
        self._session: XApiSession | None = None
        self._user_id: str | None = options.user_id

    def _ensure_session(self) -> None:
        # Created lazily: an aiohttp session belongs to the running event loop.
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.options.request_timeout)
            self._session = XApiSession(self.options.api_base_url, timeout=timeout)
            self._client.session = self._session

    async def call(self, method: str, *args: Any, **params: Any) -> tuple[dict[str, Any], Mapping[str, str]]:
        """Call an ``AsyncClient`` method; tweepy raises its HTTPException subclasses for errors."""
        self._ensure_session()
        function: Callable[..., Awaitable[aiohttp.ClientResponse]] = getattr(self._client, method)
        response = await function(*args, user_auth=self.user_auth, **params)
        body = await response.json(content_type=None)  # None for an empty body
        return (body if isinstance(body, dict) else {}), response.headers

    async def account_id(self, ledger: UsageLedger | None = None) -> str:
        """The numeric id of the account the credentials belong to (one ``/2/users/me`` call at most)."""
        if self._user_id is None:
            if self.user_auth and self._access_token and self._access_token.partition("-")[0].isdigit():
                self._user_id = self._access_token.partition("-")[0]  # X's access tokens start with it
            else:
                body, _ = await self.call("get_me")
                await count_usage(ledger, {"reads.users": 1})
                self._user_id = str(body["data"]["id"])
        return self._user_id

    async def close(self) -> None:
        """Close the HTTP session (tweepy never closes a session it was given)."""
        if self._session is not None:
            await self._session.close()
            self._session = None


async def count_usage(ledger: UsageLedger | None, counts: Mapping[str, int]) -> None:
    """Add counts to the budget ledger, if any; a failure is logged, never raised."""
    if ledger is None:
        return
    try:
        await ledger.add(counts)
    except Exception:  # a counting failure must not lose what X already returned
        log.exception("channel %s: could not record X usage %s", ledger.channel, dict(counts))


@dataclass
class Cursor:
    """Both polling positions; stored as one JSON string."""

    mentions: dict[str, str | None] | None = None  # since_id, until_id, newest_id
    dms: dict[str, str | None] | None = None  # newest_id, next_token, pending_newest

    @classmethod
    def parse(cls, raw: str | None) -> Cursor:
        """Read a stored cursor; anything unreadable starts afresh (with a warning)."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            mentions, dms = data.get("mentions"), data.get("dms")
            return cls(mentions if isinstance(mentions, dict) else None,
                       dms if isinstance(dms, dict) else None)
        except ValueError:
            log.warning("x cursor %r is not readable; starting from the newest items", raw[:80])
            return cls()

    def dump(self) -> str:
        """The JSON form stored in ``channels.cursor``."""
        data: dict[str, Any] = {}
        if self.mentions is not None:
            data["mentions"] = {k: v for k, v in self.mentions.items() if v is not None}
        if self.dms is not None:
            data["dms"] = {k: v for k, v in self.dms.items() if v is not None}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _max_id(*ids: str | None) -> str | None:
    present = [int(i) for i in ids if i]
    return str(max(present)) if present else None


@dataclass
class _Sweep:
    """What one endpoint's sweep produced."""

    events: list[Inbound] = field(default_factory=list)
    error: Exception | None = None


class XSource:
    """Polls one X account's mentions and DMs (a ``PolledSource``)."""

    def __init__(
        self,
        channel: str,
        client: XClient,
        clock: Clock,
        options: Options,
        ledger: UsageLedger | None = None,
    ) -> None:
        self.channel = channel
        self.client = client
        self.clock = clock
        self.options = options
        self.ledger = ledger
        self.paused_until: dict[str, datetime] = {}

    async def fetch(self, cursor: str | None) -> Batch:
        """Read what is new on each enabled endpoint that is neither rate limited nor over budget."""
        if self.ledger is not None and not await self.ledger.polling_allowed(refresh=True):
            return Batch(self.channel, [], cursor)
        position = Cursor.parse(cursor)
        account = await self.client.account_id(self.ledger)
        before = position.dump()
        sweeps: list[_Sweep] = []
        if self.options.mentions and self._available(MENTIONS):
            sweep = _Sweep()
            position.mentions = await self._sweep_mentions(account, position.mentions, sweep)
            sweeps.append(sweep)
        if self.options.dms and self._available(DMS):
            sweep = _Sweep()
            position.dms = await self._sweep_dms(account, position.dms, sweep)
            sweeps.append(sweep)
        # Oldest first across both endpoints (snowflake ids grow with time): parents before replies.
        events = sorted((ev for sweep in sweeps for ev in sweep.events), key=lambda ev: int(ev.external_id))
        moved = position.dump() != before
        new_cursor = position.dump() if moved else cursor  # unchanged: the poller stores nothing
        errors = [s.error for s in sweeps if s.error is not None]
        if errors and not events and not moved:
            raise errors[0]  # nothing came through: let the poller back off and record the health
        for error in errors:
            log.warning("channel %s: X poll partly failed: %s", self.channel, error)
        return Batch(self.channel, events, new_cursor)

    # --- rate limits -------------------------------------------------------------------------

    def _available(self, endpoint: str) -> bool:
        until = self.paused_until.get(endpoint)
        if until is None:
            return True
        if self.clock.now() >= until:
            del self.paused_until[endpoint]
            return True
        return False

    def _pause(self, endpoint: str, reset: int | None, why: str) -> None:
        now = self.clock.now()
        until = now + timedelta(seconds=DEFAULT_PAUSE)
        if reset is not None:
            until = max(datetime.fromtimestamp(reset, UTC), now + timedelta(seconds=1))
        self.paused_until[endpoint] = until
        log.warning("channel %s: X %s %s; not polling it until %s",
                    self.channel, endpoint, why, until.isoformat())

    def _note_headers(self, endpoint: str, headers: Mapping[str, str]) -> None:
        # X says in advance when the window is used up: pausing now saves a guaranteed 429.
        if headers.get("x-rate-limit-remaining") == "0":
            self._pause(endpoint, reset_of(headers), "rate-limit window used up")

    async def _get(self, endpoint: str, method: str, *args: Any, **params: Any) -> dict[str, Any] | None:
        """One page, or None when the endpoint must not (or can no longer) be called in this poll."""
        if not self._available(endpoint):
            return None
        if self.ledger is not None and not await self.ledger.polling_allowed():
            return None
        try:
            body, headers = await self.client.call(method, *args, **params)
        except TooManyRequests as exc:
            self._pause(endpoint, exc.reset_time or reset_of(exc.response.headers), "answered 429")
            return None
        await count_usage(self.ledger, count_reads(body, "posts" if endpoint == MENTIONS else "dm_events"))
        self._note_headers(endpoint, headers)
        return body

    # --- mentions ----------------------------------------------------------------------------

    async def _sweep_mentions(
        self, account: str, state: dict[str, str | None] | None, sweep: _Sweep
    ) -> dict[str, str | None] | None:
        common: dict[str, Any] = {"expansions": ["author_id"], "tweet_fields": TWEET_FIELDS,
                                  "user_fields": USER_FIELDS}
        if state is None:  # first poll ever: only the newest few, not the whole (billed) timeline
            try:
                body = await self._get(MENTIONS, "get_users_mentions", account,
                                       max_results=self.options.backfill, **common)
            except Exception as exc:
                sweep.error = exc
                return None
            if body is None:
                return None
            sweep.events += mentions_to_inbound(self.channel, body, account_id=account)
            return {"since_id": _first_id(body)}
        since, until, newest = state.get("since_id"), state.get("until_id"), state.get("newest_id")
        token: str | None = None
        try:
            for _ in range(self.options.max_pages):
                body = await self._get(
                    MENTIONS, "get_users_mentions", account, since_id=since, until_id=until,
                    pagination_token=token, max_results=self.options.page_size, **common,
                )
                if body is None:
                    break
                sweep.events += mentions_to_inbound(self.channel, body, account_id=account)
                meta = body.get("meta") or {}
                if body.get("data"):
                    # Only after the page's events are in the batch: a cut-short sweep resumes below them.
                    newest = _max_id(newest, _first_id(body))
                    until = str(min(int(post["id"]) for post in body["data"]))
                token = meta.get("next_token")
                if not token or not body.get("data"):
                    return {"since_id": _max_id(since, newest)}
        except Exception as exc:
            sweep.error = exc
        return {"since_id": since, "until_id": until, "newest_id": newest}

    # --- direct messages ---------------------------------------------------------------------

    async def _sweep_dms(
        self, account: str, state: dict[str, str | None] | None, sweep: _Sweep
    ) -> dict[str, str | None] | None:
        common: dict[str, Any] = {"dm_event_fields": DM_FIELDS, "expansions": ["sender_id"],
                                  "user_fields": USER_FIELDS, "event_types": "MessageCreate"}
        if state is None:
            try:
                body = await self._get(DMS, "get_direct_message_events", max_results=self.options.backfill,
                                       **common)
            except Exception as exc:
                sweep.error = exc
                return None
            if body is None:
                return None
            sweep.events += dm_events_to_inbound(self.channel, body, account_id=account)
            return {"newest_id": _first_id(body)}
        seen = state.get("newest_id")
        token, pending = state.get("next_token"), state.get("pending_newest")
        floor = int(seen) if seen else None
        try:
            for _ in range(self.options.max_pages):
                try:
                    body = await self._get(DMS, "get_direct_message_events", pagination_token=token,
                                           max_results=self.options.page_size, **common)
                except BadRequest:
                    if token is None:
                        raise
                    log.warning("channel %s: X refused a stored DM page token; reading from the newest again",
                                self.channel)
                    token, pending = None, None
                    continue
                if body is None:
                    break
                data = body.get("data") or []
                sweep.events += dm_events_to_inbound(self.channel, body, account_id=account, newer_than=floor)
                if token is None:
                    pending = _max_id(pending, _first_id(body))
                token = (body.get("meta") or {}).get("next_token")
                reached = floor is not None and any(int(event["id"]) <= floor for event in data)
                if reached or not token or not data:
                    return {"newest_id": _max_id(seen, pending)}
        except Exception as exc:
            sweep.error = exc
        return {"newest_id": seen, "next_token": token, "pending_newest": pending}

    async def aclose(self) -> None:
        """Close the shared HTTP session."""
        await self.client.close()


def _first_id(body: Mapping[str, Any]) -> str | None:
    data = body.get("data") or []
    return _max_id(*(str(item.get("id")) for item in data if item.get("id") is not None))


def reset_of(headers: Mapping[str, str] | None) -> int | None:
    """The epoch second in ``x-rate-limit-reset``, if present."""
    raw = (headers or {}).get("x-rate-limit-reset")
    return int(raw) if raw is not None and raw.isdigit() else None
