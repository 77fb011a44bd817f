"""What every route handler of the web application shares: the core services, the limiter, client IPs."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

from inbox.app import App
from inbox.settings import WebSettings
from inbox.web.ratelimit import RateLimiter

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class WebContext:
    """The core services as the web handlers see them (connectors' handlers included)."""

    app: App
    settings: WebSettings
    limiter: RateLimiter = field(default_factory=RateLimiter)
    trusted: tuple[IPNetwork, ...] = ()

    @classmethod
    def create(cls, app: App, settings: WebSettings, limiter: RateLimiter | None = None) -> WebContext:
        """A context for ``app`` with the ``[web]`` settings' trusted proxies parsed once."""
        trusted = tuple(ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies)
        return cls(app, settings, limiter or RateLimiter(), trusted)

    def client_ip(self, request: web.Request) -> str:
        """The address of the client, read through X-Forwarded-For only when a trusted proxy sent it."""
        return client_ip(request.remote, request.headers.getall("X-Forwarded-For", []), self.trusted)


WEB_CONTEXT: web.AppKey[WebContext] = web.AppKey("saluran.web_context", WebContext)


def web_context(request: web.Request) -> WebContext:
    """The WebContext of the application serving ``request``."""
    return request.app[WEB_CONTEXT]


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.9:5123"
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def client_ip(remote: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """Walk X-Forwarded-For from the right, skipping trusted proxies; the first other hop is the client.

    Only hops appended by proxies we trust are believed: anything left of an untrusted hop may be
    forged by the client, so the walk stops there.
    """
    peer = _parse_ip(remote or "")
    if peer is None:
        return remote or "unknown"
    if not any(peer in net for net in trusted):
        return str(peer)
    hops = [h for header in forwarded_for for h in header.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        address = _parse_ip(hop)
        if address is None:
            break  # garbage in the header: the last good hop is all we can trust
        client = address
        if not any(address in net for net in trusted):
            break
    return str(client)
