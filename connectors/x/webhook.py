"""Account Activity webhooks: the CRC check and signed event delivery, as aiohttp routes.

X proves a webhook is ours with a CRC: ``GET <url>?crc_token=T`` must answer
``{"response_token": "sha256=" + base64(HMAC-SHA256(consumer_secret, T))}``. Every event is then
POSTed with ``x-twitter-webhooks-signature`` = the same HMAC over the raw body. A request whose
signature is missing or wrong gets 401 and nothing is stored. Because the CRC answer is that same
HMAC, a ``crc_token`` that could be an event body (braces, quotes, whitespace) gets 400: otherwise
anyone could have the route sign a forged event for them. Good events are converted and
handed to the ``ingest`` callback the web server gives us (normally ``Ingestor.ingest``); the
polling cursor is left alone, so polling and webhooks can run side by side (duplicates are
dropped by external id).

The web server mounts the routes: ``app.add_routes(webhook_routes(...))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from connectors.x.convert import BadPayload, activity_to_inbound
from connectors.x.source import Options
from inbox.events import Batch
from inbox.settings import ChannelSettings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
# X's crc_token is a short random string. The CRC answer is the HMAC that signs POST bodies, so a
# token that could be a body (JSON: braces, quotes, whitespace) would make this route a signing
# oracle for forged events: such tokens are refused.
CRC_TOKEN_MAX = 1024
_NOT_IN_CRC_TOKEN = frozenset('{}[]"\\')
IngestCallback = Callable[[Batch], Awaitable[object]]


def signature(consumer_secret: str, data: bytes) -> str:
    """``sha256=<base64 HMAC-SHA256(consumer_secret, data)>``: the CRC answer and the body signature."""
    digest = hmac.new(consumer_secret.encode(), data, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def signature_valid(consumer_secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of a POSTed body's signature header."""
    if not header:
        return False
    expected = signature(consumer_secret, body).encode()
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


def crc_token_acceptable(token: str) -> bool:
    """True for a token X could send: printable, no whitespace, nothing a JSON body needs."""
    return (
        0 < len(token) <= CRC_TOKEN_MAX
        and token.isprintable()
        and not any(c.isspace() or c in _NOT_IN_CRC_TOKEN for c in token)
    )


class WebhookHandler:
    """Answers X's CRC checks and ingests signed activity events for one channel."""

    def __init__(self, channel: str, consumer_secret: str, ingest: IngestCallback,
                 account_id: str | None = None) -> None:
        self.channel = channel
        self.consumer_secret = consumer_secret
        self.ingest = ingest
        self.account_id = account_id

    async def crc(self, request: web.Request) -> web.Response:
        """GET: answer the challenge-response check."""
        token = request.query.get("crc_token")
        if not token:
            return web.json_response({"error": "crc_token is missing"}, status=400)
        if not crc_token_acceptable(token):
            log.warning("channel %s: refused a CRC request whose token could be an event body", self.channel)
            return web.json_response({"error": "crc_token is not a token"}, status=400)
        return web.json_response({"response_token": signature(self.consumer_secret, token.encode())})

    async def receive(self, request: web.Request) -> web.Response:
        """POST: verify the signature, convert the events, ingest them."""
        body = await request.read()
        if not signature_valid(self.consumer_secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("channel %s: refused an X webhook POST: signature missing or wrong", self.channel)
            return web.json_response({"error": "invalid signature"}, status=401)
        try:
            payload: Any = json.loads(body)
            if not isinstance(payload, dict):
                raise BadPayload("the body is not a JSON object")
            if self.account_id is not None and str(payload.get("for_user_id")) != self.account_id:
                log.info("channel %s: ignored X activity for another account", self.channel)
                return web.json_response({"stored": 0})
            events = activity_to_inbound(self.channel, payload)
        except (ValueError, TypeError, KeyError) as exc:  # BadPayload and JSON errors are ValueErrors
            log.warning("channel %s: bad X webhook payload: %s", self.channel, exc)
            return web.json_response({"error": f"bad payload: {exc}"}, status=400)
        if events:
            try:
                await self.ingest(Batch(self.channel, events, None))
            except Exception:
                # A 5xx makes X deliver again later; ingest drops what it already stored.
                log.exception("channel %s: could not ingest X webhook events", self.channel)
                return web.json_response({"error": "could not store the events"}, status=500)
        return web.json_response({"stored": len(events)})


def webhook_routes(
    channel: str,
    consumer_secret: str,
    ingest: IngestCallback,
    *,
    path: str | None = None,
    account_id: str | None = None,
) -> list[web.RouteDef]:
    """The GET (CRC) and POST (events) routes of one channel's webhook, at ``path``.

    ``path`` defaults to ``/webhooks/x/<channel>``; with ``account_id`` set, events for any other
    subscribed account are ignored.
    """
    if not consumer_secret:
        raise ValueError("an X webhook needs the app's consumer secret")
    handler = WebhookHandler(channel, consumer_secret, ingest, account_id)
    url = path or f"/webhooks/x/{channel}"
    return [web.get(url, handler.crc, allow_head=False), web.post(url, handler.receive)]


def channel_webhook_routes(channel: ChannelSettings, ingest: IngestCallback) -> list[web.RouteDef]:
    """Routes for a configured X channel with ``webhook_path`` set; [] when webhooks are off."""
    options = Options.model_validate(channel.options())
    if options.webhook_path is None:
        return []
    return webhook_routes(channel.name, channel.secret("consumer_secret"), ingest,
                          path=options.webhook_path, account_id=options.user_id)
