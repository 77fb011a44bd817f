"""Replies of an ``api`` channel: a signed JSON POST to the other system's ``reply_url``.

The body is signed exactly like inbound requests (``inbox.web.signing``), so the receiver checks
it with the same secret. ``delivery_id`` is unique per reply: the outbox sends at least once, so the
receiver should ignore a ``delivery_id`` it has seen. 2xx is success (a JSON ``{"id": ...}`` in the
answer becomes the message's external id, so the system can later post events that reply to it);
429 waits for Retry-After; 408 and 5xx and network trouble are retried; other 4xx are permanent.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from inbox.clock import Clock, isoformat_utc
from inbox.events import Outbound, Receipt
from inbox.ports import DeliveryFailed, PermanentFailure, RateLimited
from inbox.web.signing import signed_headers

DEFAULT_RETRY_AFTER = 60.0


class CallbackSender:
    """Posts each reply as signed JSON to one URL."""

    def __init__(self, channel: str, url: str, secret: str, clock: Clock, *, timeout: float = 10.0) -> None:
        self.channel = channel
        self.url = url
        self.secret = secret
        self.clock = clock
        self.timeout = timeout

    def payload(self, outbound: Outbound) -> dict[str, Any]:
        """The JSON body of one reply."""
        return {
            "delivery_id": outbound.delivery_id,
            "channel": self.channel,
            "purpose": outbound.purpose,
            "text": outbound.text,
            "recipient": outbound.recipient,
            "reply_to": outbound.reply_to,
            "thread_key": outbound.thread_key,
            "kind": outbound.kind,
            "sent_at": isoformat_utc(self.clock.now()),
        }

    async def send(self, outbound: Outbound) -> Receipt:
        """POST the reply; map the answer onto the outbox's retry rules."""
        body = json.dumps(self.payload(outbound), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", **signed_headers(self.secret, body, self.clock.now())}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session,
                session.post(self.url, data=body, headers=headers) as response,
            ):
                answer = await response.text()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(f"cannot reach {self.url}: {exc or type(exc).__name__}") from exc
        if 200 <= status < 300:
            return Receipt(platform_message_id=_answer_id(answer) or f"api:{outbound.delivery_id}")
        detail = f"{self.url} answered {status}: {answer[:300]}"
        if status == 429:
            raise RateLimited(_seconds(retry_after), detail)
        if status == 408 or status >= 500:
            raise DeliveryFailed(detail)
        raise PermanentFailure(detail)


def _answer_id(answer: str) -> str | None:
    try:
        data = json.loads(answer)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip():
        return str(value)[:200]
    return None


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER
