"""The Telegram update loop of one bot token: long polling by default, or a webhook on the web server.

Why not PTB's ``Application``/``Updater``: the Updater confirms updates to Telegram itself (the next
``getUpdates`` offset) as soon as it has fetched them, before they are stored; a crash in between
would lose them. Here the loop drives ``Bot.get_updates(offset=cursor)`` itself, where ``cursor``
is the channel's cursor in the database: customer updates are ingested **together with** the new
cursor in one transaction, and only the next ``getUpdates`` (asking from that cursor) confirms them
to Telegram. A crash before the commit means the same updates are fetched again (duplicates are
dropped by their external id); after it, they are confirmed and never fetched again.

Team-chat updates (commands, notes, button presses) are not ingested but run. For them the cursor
past the update is committed **before** it runs, so a crash can never run a command twice (a
duplicate reply to a customer is worse than a member retyping a command that got no answer). That
commit is a compare-and-set on the channel row (locked): when two workers receive the same webhook
delivery at once, only the one that moves the cursor runs the command.

Webhook mode: the service (under the same lease) registers the webhook with ``secret_token`` and
``max_connections = 1`` (updates arrive one at a time, in order); the route on the project's web
server refuses a request whose ``X-Telegram-Bot-Api-Secret-Token`` is missing or wrong with 403
before reading it, and processes the others exactly like polled ones. The cursor is kept the same
way, so an update Telegram delivers again after a lost answer is recognised and skipped.

One loop per token across all processes: the runtime runs it under the lease
``telegram:<sha256(token)[:16]>``, so two channels sharing one token share one loop.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import update
from sqlmodel import col, select
from telegram.error import Conflict, InvalidToken, TelegramError

from connectors.telegram.client import BotClient
from connectors.telegram.console import TeamConsole
from connectors.telegram.convert import BotIdentity, Json
from connectors.telegram.source import Options, TelegramSource, load_cursor
from inbox.clock import Clock
from inbox.db import Database
from inbox.events import Batch
from inbox.models import Channel
from inbox.ports import NoticeSink

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ("message", "edited_message", "callback_query")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# An update id this far below the cursor is a redelivery; Telegram restarts numbering at a random
# value after a week without updates, which is almost never this close below.
REDELIVERY_WINDOW = 10_000
BASE_BACKOFF = 1.0
MAX_BACKOFF = 60.0

Ingest = Callable[[Batch], Awaitable[Any]]


class TelegramService:
    """Receives one token's updates and hands them to the source (customers) or the console (team)."""

    def __init__(
        self,
        name: str,
        options: Options,
        client: BotClient,
        source: TelegramSource,
        console: TeamConsole,
        ingest: Ingest,
        db: Database,
        clock: Clock,
        *,
        channels: Sequence[str] = (),
        notices: NoticeSink | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.client = client
        self.source = source
        self.console = console
        self.ingest = ingest
        self.db = db
        self.clock = clock
        self.channels = list(channels) or [source.cursor_channel]
        self.notices = notices
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.health: str | None = None
        self._lock = asyncio.Lock()

    @property
    def busy(self) -> bool:
        """True while a batch of updates is being processed."""
        return self._lock.locked()

    # --- the leased loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll (or keep the webhook registered) until ``stop`` is set; errors are retried with backoff."""
        failures = 0
        started = False
        while not stop.is_set():
            try:
                if not started:
                    await self.start()
                    started = True
                if self.options.mode == "webhook":
                    await self._set_health("ok", None)
                    await stop.wait()
                    break
                await self.poll_once(stop)
                failures = 0
                if self.health != "ok":
                    await self._set_health("ok", None)
            except Conflict as exc:
                failures += 1
                log.warning(
                    "channel %s: Telegram reports another getUpdates or a webhook for this token "
                    "(%s); is a second deployment running with it?",
                    self.name,
                    exc,
                )
                await self._set_health("error", f"conflict: {exc.message}")
            except InvalidToken as exc:
                failures += 1
                log.error("channel %s: Telegram refused the bot token (%s)", self.name, exc)
                await self._set_health("error", "the bot token was refused")
            except Exception as exc:  # network, Telegram 5xx, database: never stop the loop
                failures += 1
                log.warning(
                    "channel %s: Telegram update loop failed (%s: %s)", self.name, type(exc).__name__, exc
                )
                await self._set_health("error", f"{type(exc).__name__}: {exc}"[:500])
            if failures and not stop.is_set():
                await _sleep_or_stop(stop, min(MAX_BACKOFF, BASE_BACKOFF * 2 ** min(failures - 1, 8)))

    async def start(self) -> None:
        """Prepare the token: no webhook when polling (or ours when not), and the team command menus."""
        bot = await self.client.bot()
        if self.options.mode == "webhook":
            assert self.webhook_url is not None and self.webhook_secret is not None
            await bot.set_webhook(
                self.webhook_url,
                secret_token=self.webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
                max_connections=1,
            )
            log.info("channel %s: Telegram webhook set to %s", self.name, self.webhook_url)
        else:
            await bot.delete_webhook(drop_pending_updates=False)
        try:
            await self.console.register_commands()
        except TelegramError as exc:  # a missing menu must not keep the inbox from working
            log.warning("channel %s: could not register the team commands: %s", self.name, exc)

    async def poll_once(self, stop: asyncio.Event | None = None) -> int:
        """One long poll from the stored cursor; returns how many updates were processed."""
        cursor = await load_cursor(self.db, self.source.cursor_channel)
        bot = await self.client.bot()
        call = asyncio.ensure_future(
            bot.get_updates(
                offset=cursor,
                timeout=timedelta(seconds=self.options.poll_timeout),
                allowed_updates=list(ALLOWED_UPDATES),
            )
        )
        if stop is not None:
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({call, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
            if not call.done():
                # Nothing fetched is lost: unconfirmed updates are fetched again from the stored cursor.
                call.cancel()
                await asyncio.gather(call, return_exceptions=True)
                return 0
        updates = await call
        await self.process([u.to_dict() for u in updates])
        return len(updates)

    # --- processing --------------------------------------------------------------------------------

    async def process(self, updates: Sequence[Json], *, redelivered_check: bool = False) -> None:
        """Ingest customer updates with the cursor; run team updates after committing the cursor past them."""
        if not updates:
            return
        async with self._lock:
            bot = await self.client.identity()
            ordered = sorted(updates, key=lambda u: int(u["update_id"]))
            if redelivered_check:
                ordered = await self._drop_redelivered(ordered)
            pending: list[Json] = []
            for item in ordered:
                update_id = int(item["update_id"])
                if self.console.handles(item):
                    if pending:
                        await self._store(pending, bot, update_id)  # the team update is next to ask for
                        pending = []
                    # Claimed (cursor moved past it) before it runs, so it runs at most once, even when
                    # two workers receive the same webhook delivery at the same time.
                    if await self._claim(update_id):
                        await self.console.handle(item, bot)
                else:
                    await self._audit_foreign_command(item, bot)
                    pending.append(item)
            if pending:
                await self._store(pending, bot, int(pending[-1]["update_id"]) + 1)

    async def _store(self, updates: Sequence[Json], bot: BotIdentity, cursor: int) -> None:
        batch = await self.source.batch(updates, bot, cursor)
        await self.ingest(batch)

    async def _audit_foreign_command(self, update: Json, bot: BotIdentity) -> None:
        try:
            await self.console.refuse_foreign(update, bot)
        except Exception:  # an audit problem must never hold up customers' messages
            log.exception("channel %s: could not audit update %s", self.name, update.get("update_id"))

    async def _claim(self, update_id: int) -> bool:
        """Move the cursor past a team update in one transaction; False when it already is past it."""
        channel = self.source.cursor_channel
        async with self.db.transaction() as session:
            raw = await session.scalar(
                select(col(Channel.cursor)).where(col(Channel.name) == channel).with_for_update()
            )
            current = int(raw) if raw is not None and str(raw).lstrip("-").isdigit() else None
            if current is not None and current - REDELIVERY_WINDOW <= update_id < current:
                log.info("channel %s: team update %s was already handled", self.name, update_id)
                return False
            await session.execute(
                update(Channel)
                .where(col(Channel.name) == channel)
                .values(cursor=str(update_id + 1), updated_at=self.clock.now())
            )
        return True

    async def _drop_redelivered(self, updates: Sequence[Json]) -> list[Json]:
        cursor = await load_cursor(self.db, self.source.cursor_channel)
        if cursor is None:
            return list(updates)
        kept = [u for u in updates if not cursor - REDELIVERY_WINDOW <= int(u["update_id"]) < cursor]
        if len(kept) < len(updates):
            log.info(
                "channel %s: skipped %d update(s) Telegram delivered again",
                self.name,
                len(updates) - len(kept),
            )
        return kept

    # --- webhook -----------------------------------------------------------------------------------

    def routes(self, path: str) -> list[web.RouteDef]:
        """The webhook route for the project's web server."""
        return [web.post(path, self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        """POST from Telegram: 403 without the right secret (nothing read or stored), else process."""
        given = request.headers.get(SECRET_HEADER, "")
        if not self.webhook_secret or not hmac.compare_digest(given.encode(), self.webhook_secret.encode()):
            log.warning(
                "channel %s: refused a webhook request without the right secret token from %s",
                self.name,
                request.remote,
            )
            return web.json_response({"error": "forbidden"}, status=403)
        try:
            update: Any = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            return web.json_response({"error": "not a Telegram update"}, status=400)
        try:
            await self.process([update], redelivered_check=True)
        except Exception:
            # A 5xx makes Telegram deliver it again; whatever was stored is recognised then.
            log.exception("channel %s: could not process webhook update %s", self.name, update["update_id"])
            return web.json_response({"error": "could not process the update"}, status=500)
        return web.json_response({"ok": True})

    # --- health ------------------------------------------------------------------------------------

    async def _set_health(self, health: str, detail: str | None) -> None:
        """Record the channels' health; tell the team when it turns to or from an error."""
        try:
            async with self.db.transaction() as session:
                previous = await session.scalar(
                    select(col(Channel.health)).where(col(Channel.name) == self.channels[0])
                )
                await session.execute(
                    update(Channel)
                    .where(col(Channel.name).in_(self.channels))
                    .values(health=health, health_detail=detail, updated_at=self.clock.now())
                )
        except Exception:  # the database may be the thing that is down
            log.exception("channel %s: could not record health", self.name)
            return
        self.health = health
        if self.notices is not None and previous != health and "error" in (previous, health):
            try:
                for channel in self.channels:
                    await self.notices.notice(f"health.{health}", channel=channel, detail=detail)
            except Exception:
                log.exception("channel %s: could not report its health to the team", self.name)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    # Real seconds: this paces calls to Telegram, whatever clock the process was given.
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
