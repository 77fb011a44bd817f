"""The channel's python-telegram-bot ``Bot``, made on first use, and Telegram errors as outbox failures.

One ``BotClient`` per channel is shared by the update loop, the console and the senders: the long
poll has its own HTTP connection, so it never holds up a send. The ``Bot`` is created inside the
running event loop (its HTTP client belongs to that loop) and asks getMe once for the bot's id and
username, which the source needs to recognise mentions and replies.
"""

from __future__ import annotations

import asyncio
import warnings
from datetime import timedelta

from telegram import Bot
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from connectors.telegram.convert import BotIdentity
from inbox.ports import DeliveryFailed, PermanentFailure, RateLimited

TELEGRAM_API = "https://api.telegram.org"
DEFAULT_RETRY_AFTER = 5.0


class BotClient:
    """A lazily created, initialised ``Bot`` for one token and API server."""

    def __init__(
        self,
        token: str,
        api_base_url: str | None = None,
        *,
        request_timeout: float = 30.0,
        pool_size: int = 16,
    ) -> None:
        self.token = token
        self.api_base_url = (api_base_url or TELEGRAM_API).rstrip("/")
        self.request_timeout = request_timeout
        self.pool_size = pool_size
        self._bot: Bot | None = None
        self._lock: asyncio.Lock | None = None

    async def bot(self) -> Bot:
        """The initialised Bot (getMe done); raises PTB's errors when Telegram cannot be reached."""
        if self._bot is not None:
            return self._bot
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._bot is None:
                timeout = self.request_timeout
                bot = Bot(
                    self.token,
                    base_url=f"{self.api_base_url}/bot",
                    base_file_url=f"{self.api_base_url}/file/bot",
                    request=HTTPXRequest(
                        connection_pool_size=self.pool_size,
                        read_timeout=timeout,
                        write_timeout=timeout,
                        connect_timeout=timeout,
                        pool_timeout=timeout,
                    ),
                    # getUpdates adds its long-poll timeout to this read timeout itself.
                    get_updates_request=HTTPXRequest(
                        connection_pool_size=1,
                        read_timeout=timeout,
                        connect_timeout=timeout,
                        write_timeout=timeout,
                    ),
                )
                await bot.initialize()
                self._bot = bot
        return self._bot

    async def identity(self) -> BotIdentity:
        """The bot's user id and username."""
        bot = await self.bot()
        return BotIdentity(id=bot.id, username=bot.username)

    async def close(self) -> None:
        """Close the HTTP connections (the next use opens new ones)."""
        bot, self._bot = self._bot, None
        if bot is not None:
            await bot.shutdown()


def retry_seconds(exc: RetryAfter) -> float:
    """Seconds a RetryAfter asks to wait, whichever way this PTB version reports them."""
    raw = getattr(exc, "_retry_after", None)
    if not isinstance(raw, timedelta):
        with warnings.catch_warnings():  # PTB 22 warns about the int form; we read both forms
            warnings.simplefilter("ignore")
            raw = exc.retry_after
    seconds = raw.total_seconds() if isinstance(raw, timedelta) else float(raw or DEFAULT_RETRY_AFTER)
    return max(seconds, 0.0)


def delivery_error(exc: TelegramError, what: str) -> DeliveryFailed:
    """A Telegram error as the outbox's failure types: wait, retry, or give up."""
    if isinstance(exc, RetryAfter):
        return RateLimited(retry_seconds(exc), f"Telegram flood limit on {what}")
    if isinstance(exc, ChatMigrated):
        return PermanentFailure(
            f"Telegram refused {what}: the group became a supergroup with id "
            f"{exc.new_chat_id}; use that chat id"
        )
    if isinstance(exc, Forbidden | BadRequest | InvalidToken):
        # Blocked by the user, kicked from the group, bad request, revoked token: retrying cannot help.
        return PermanentFailure(f"Telegram refused {what}: {exc.message}")
    if isinstance(exc, TimedOut):
        return DeliveryFailed(f"Telegram did not answer {what} in time")
    return DeliveryFailed(f"could not reach Telegram for {what}: {exc.message}")
