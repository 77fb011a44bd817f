"""The signed inbound API: ``POST /api/v1/inbound/<channel>`` takes neutral events from other systems.

The body is one neutral event object or a list of them (the JSON of ``inbox import``), signed as
``inbox.web.signing`` describes with the channel's secret. Channels of type ``api`` serve this route
(``connectors/api``); any other name gets a JSON 404. Nothing is stored unless the request is
authentic, fresh, well-formed and every event in it is valid: the batch is ingested in one
transaction, all or nothing.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import timedelta
from typing import Any

from aiohttp import web

from inbox.errors import InboxError, UnknownChannel
from inbox.events import Batch, Inbound
from inbox.neutral_json import BadEvent, parse_event
from inbox.web.context import web_context
from inbox.web.signing import SignatureError, verify

log = logging.getLogger(__name__)

INBOUND_PATH = "/api/v1/inbound/{channel}"
MAX_EVENTS = 1000
# Refused signatures per client address and channel before it gets 429 instead of 401: guessing a
# key is hopeless anyway, but a flood of bad requests should be cut off cheaply and visibly.
AUTH_FAILURES_LIMIT = 20
AUTH_FAILURES_WINDOW = timedelta(minutes=1)


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    """A JSON error body ``{"error": ...}`` with the given status."""
    return web.json_response({"error": message, **extra}, status=status)


class BadRequest(ValueError):
    """A body that is not acceptable; the message names the line, event or field."""

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.detail = detail


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_events(body: bytes, channel: str) -> list[Inbound]:
    """Decode the body into Inbound events for ``channel``, or raise BadRequest naming the problem."""
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(decoded, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", line=exc.lineno,
            column=exc.colno,
        ) from None
    except ValueError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    single = isinstance(data, dict)
    items = [data] if single else data
    if not isinstance(items, list):
        raise BadRequest("body must be an event object or a list of event objects")
    if len(items) > MAX_EVENTS:
        raise BadRequest(f"at most {MAX_EVENTS} events per request, got {len(items)}")
    events = []
    for index, item in enumerate(items):
        try:
            events.append(parse_event(item, channel=channel))
        except BadEvent as exc:
            if single:
                raise BadRequest(f"event: {exc}") from None
            raise BadRequest(f"event {index}: {exc}", index=index) from None
    return events


def inbound_route(channel: str, secret: str) -> web.RouteDef:
    """The route through which one ``api`` channel receives signed events."""

    async def receive(request: web.Request) -> web.Response:
        """Verify, parse and ingest one signed request; 202 with counts on success."""
        ctx = web_context(request)
        limit = ctx.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return json_error(413, f"body is larger than {limit} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return json_error(413, f"body is larger than {limit} bytes")
        try:
            verify(secret, request.headers, body, ctx.app.clock.now())
        except SignatureError as exc:
            client = ctx.client_ip(request)
            failures = ctx.limiter.hit(f"api-auth:{channel}:{client}", ctx.app.clock.now(),
                                       limit=AUTH_FAILURES_LIMIT, window=AUTH_FAILURES_WINDOW)
            if not failures.allowed:
                wait = max(1, math.ceil(failures.retry_after))
                response = json_error(429, f"too many refused requests; try again in {wait}s")
                response.headers["Retry-After"] = str(wait)
                return response
            log.warning("inbound API %s: refused a request from %s: %s", channel, client, exc)
            return json_error(401, str(exc))
        try:
            events = parse_events(body, channel)
        except BadRequest as exc:
            return json_error(400, str(exc), **exc.detail)
        try:
            result = await ctx.app.ingestor.ingest(Batch(channel, events))
        except UnknownChannel as exc:  # configured but not in the database: config was not synced
            return json_error(404, str(exc))
        except InboxError as exc:  # e.g. an event names a member who is not on the team
            return json_error(400, str(exc))
        conversations = sorted({m.conversation_id for m in result.stored})
        return web.json_response(
            {
                "received": len(events),
                "stored": len(result.stored),
                "duplicates": result.duplicates,
                "edited": result.edited,
                "new_conversations": result.new_conversations,
                "conversations": conversations,
            },
            status=202,
        )

    return web.post(INBOUND_PATH.format(channel=channel), receive)


async def unknown_channel(request: web.Request) -> web.Response:
    """The fallback for names that are not ``api`` channels: a JSON 404 (nothing is read or stored)."""
    name = request.match_info["channel"]
    return json_error(
        404, f"channel '{name}' does not accept API events (no channel of type 'api' by that name)"
    )


def fallback_routes() -> list[web.RouteDef]:
    """Routes that answer API requests for unknown channels in JSON."""
    return [web.post(INBOUND_PATH, unknown_channel)]
