"""The one aiohttp application of ``inbox run``: core routes plus the routes connectors contribute.

Core routes: ``/healthz``, ``/readyz``, ``/metrics`` (``inbox.web.ops``) and the JSON 404 of the
inbound API. Connectors add theirs through ``Connector.routes`` (the contact form of ``webform``
channels, the signed inbound API of ``api`` channels, platform webhooks). The server runs as a
named task and stops, finishing in-flight requests, when the runtime's stop event is set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

from aiohttp import web

from inbox.app import App
from inbox.registry import Connector
from inbox.settings import WebSettings
from inbox.web import inbound_api, ops
from inbox.web.context import WEB_CONTEXT, WebContext
from inbox.web.ratelimit import RateLimiter

log = logging.getLogger(__name__)

# Headers every response gets unless its handler chose its own (the form pages set a stricter CSP).
DEFAULT_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
SHUTDOWN_TIMEOUT = 10.0  # seconds in-flight requests get to finish when the process stops


class RouteConflict(ValueError):
    """Two connectors (or a connector and the core) want the same method and path."""


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in DEFAULT_HEADERS.items():
        response.headers.setdefault(name, value)


def build_web_app(
    app: App,
    connectors: Iterable[Connector],
    *,
    settings: WebSettings | None = None,
    limiter: RateLimiter | None = None,
) -> web.Application:
    """The aiohttp Application with the core's routes and every connector's routes."""
    settings = settings or app.settings.web or WebSettings()
    application = web.Application(client_max_size=settings.max_body_bytes)
    application[WEB_CONTEXT] = WebContext.create(app, settings, limiter)
    application.on_response_prepare.append(_security_headers)
    seen: dict[tuple[str, str], str] = {}
    for owner, route_defs in [("core", ops.routes()), *((c.channel, c.routes) for c in connectors)]:
        for route in route_defs:
            key = (route.method, route.path)
            if key in seen:
                raise RouteConflict(
                    f"channel '{owner}' wants {route.method} {route.path}, already served by '{seen[key]}'"
                )
            seen[key] = owner
        application.add_routes(route_defs)
    # Added last: aiohttp tries more specific (plain) paths of api channels before this pattern.
    application.add_routes(inbound_api.fallback_routes())
    return application


async def serve(
    app: App,
    connectors: Iterable[Connector],
    stop: asyncio.Event,
    *,
    settings: WebSettings | None = None,
    started: asyncio.Future[list[str]] | None = None,
) -> None:
    """Serve until ``stop`` is set. When the routes clash or the port cannot be bound, log it and set
    ``stop``: a configured web server that is not listening must not look like a healthy process."""
    settings = settings or app.settings.web or WebSettings()
    try:
        application = build_web_app(app, connectors, settings=settings)
    except RouteConflict as exc:
        log.critical("web server not started: %s; stopping", exc)
        stop.set()
        raise
    runner = web.AppRunner(application, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            log.critical("web server cannot listen on %s:%s (%s); stopping", settings.host, settings.port,
                         exc)
            stop.set()
            if started is not None and not started.done():
                started.set_exception(exc)
            raise
        urls = [_url(address) for address in runner.addresses]
        log.info("web server listening on %s", ", ".join(urls))
        if settings.public_url:
            for route in application.router.routes():
                info = route.resource.get_info() if route.resource is not None else {}
                if route.method == "GET" and "path" in info and str(info["path"]).startswith("/contact/"):
                    log.info("contact form: %s%s", settings.public_url, info["path"])
        if started is not None and not started.done():
            started.set_result(urls)
        await stop.wait()
    finally:
        await runner.cleanup()


def _url(address: Any) -> str:
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"
    return str(address)


def web_task(
    app: App, connectors: Mapping[str, Connector], stop: asyncio.Event
) -> Coroutine[Any, Any, None] | None:
    """The web server coroutine for ``inbox run``, or None when ``[web]`` is not configured."""
    if app.settings.web is None:
        unserved = sorted(name for name, c in connectors.items() if c.routes)
        if unserved:
            log.error("channels %s serve web pages but [web] is not configured: add a [web] section",
                      ", ".join(unserved))
        return None
    return serve(app, list(connectors.values()), stop)
