"""Client addresses through proxies, and the in-memory rate limiter."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from inbox.web.context import client_ip
from inbox.web.ratelimit import RateLimiter

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


def test_client_ip_without_trusted_proxies_is_the_peer() -> None:
    assert client_ip("203.0.113.5", ["1.2.3.4"], ()) == "203.0.113.5"
    assert client_ip(None, [], ()) == "unknown"


def test_client_ip_walks_forwarded_for_from_the_right_over_trusted_hops() -> None:
    assert client_ip("10.0.0.2", ["198.51.100.1"], PROXIES) == "198.51.100.1"
    assert client_ip("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.0.0.9"], PROXIES) == "198.51.100.1"
    assert client_ip("10.0.0.2", ["6.6.6.6", "198.51.100.1"], PROXIES) == "198.51.100.1"  # two headers
    assert client_ip("::1", ["[2001:db8::7]:443"], PROXIES) == "2001:db8::7"
    assert client_ip("10.0.0.2", ["garbage, 10.0.0.3"], PROXIES) == "10.0.0.3"  # stop at nonsense
    assert client_ip("10.0.0.2", [], PROXIES) == "10.0.0.2"


def test_sliding_window() -> None:
    limiter = RateLimiter()
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    window = timedelta(minutes=10)
    assert all(
        limiter.hit("a", start + timedelta(minutes=i), limit=3, window=window).allowed for i in range(3)
    )
    refused = limiter.hit("a", start + timedelta(minutes=5), limit=3, window=window)
    assert not refused.allowed and refused.retry_after == 300
    assert limiter.hit("b", start, limit=3, window=window).allowed  # keys are independent
    assert limiter.hit("a", start + timedelta(minutes=10, seconds=1), limit=3, window=window).allowed


def test_memory_stays_bounded() -> None:
    limiter = RateLimiter(max_keys=100)
    now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    for n in range(1000):
        limiter.hit(f"ip{n}", now, limit=1, window=timedelta(hours=1))
    assert len(limiter) <= 100
    assert not limiter.hit("ip999", now, limit=1, window=timedelta(hours=1)).allowed  # recent keys are kept
