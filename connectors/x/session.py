"""The seam between tweepy's ``AsyncClient`` and whichever X API host we talk to.

Why a seam: tweepy 4.x hard-codes the host. ``AsyncBaseClient.request`` builds every URL as
``"https://api.twitter.com" + route`` and then calls ``session.request(method, url, params=...,
json=..., headers=...)`` inside ``async with``, where ``session`` is ``client.session`` when it is
set (and closes nothing it did not create), or a throw-away ``aiohttp.ClientSession`` per call.
There is no base-URL option. So the seam is ``client.session``: set it to an :class:`XApiSession`
and every call goes to the base URL you chose, unmodified otherwise.

Two URL shapes reach ``session.request`` and both are handled:

* OAuth 2 bearer calls pass a ``str`` URL without a query and the query as ``params``.
* OAuth 1.0a user-context calls pass a ``yarl.URL`` built with ``encoded=True`` whose query is
  already signed and percent-encoded (tweepy replaces ``:`` with ``%3A`` itself); ``params`` is
  ``None``. The rewrite keeps the raw path and raw query byte for byte, so the signature, which
  was computed over ``https://api.twitter.com/...``, still matches that original URL; a server
  behind the seam (the emulator) verifies it against that host, not its own.

Only ``https://api.twitter.com`` and ``https://api.x.com`` are rewritten; any other URL passes
through. With ``base_url=None`` nothing is rewritten, so production code can use the same class
(for its timeout) and tests only change the base URL::

    client = tweepy.asynchronous.AsyncClient(bearer_token=..., wait_on_rate_limit=False)
    client.session = XApiSession(emulator.base_url, timeout=aiohttp.ClientTimeout(total=10))
    ...
    await client.session.close()   # tweepy never closes a session it was given

The class wraps (does not subclass) ``aiohttp.ClientSession``: aiohttp discourages subclassing
and tweepy only needs ``request``. Tweepy's ``wait_on_rate_limit=True`` sleeps with the real
``asyncio.sleep`` and ``time.time``; callers that use the injected clock should keep it ``False``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

__all__ = ["X_API_HOSTS", "XApiSession", "attach", "rewrite_url"]

# The hosts tweepy (api.twitter.com) and X's current documentation (api.x.com) use.
X_API_HOSTS = frozenset({"api.twitter.com", "api.x.com"})


def rewrite_url(url: str | URL, base_url: str | URL | None) -> str | URL:
    """Point an X API URL at ``base_url``, keeping its encoded path and query exactly."""
    if base_url is None:
        return url
    parsed = url if isinstance(url, URL) else URL(url)
    if parsed.host not in X_API_HOSTS:
        return url
    base = URL(base_url)
    prefix = base.raw_path.rstrip("/")
    return URL.build(
        scheme=base.scheme,
        host=base.raw_host or "",
        port=base.explicit_port,
        path=prefix + parsed.raw_path,
        query_string=parsed.raw_query_string,
        encoded=True,
    )


class XApiSession:
    """An aiohttp session for tweepy's ``AsyncClient`` that sends X API calls to ``base_url``."""

    def __init__(
        self,
        base_url: str | URL | None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self.base_url = None if base_url is None else URL(base_url)
        self._owns_session = session is None
        self._session = session or aiohttp.ClientSession(
            timeout=timeout or aiohttp.ClientTimeout(total=30)
        )

    @property
    def inner(self) -> aiohttp.ClientSession:
        """The wrapped aiohttp session."""
        return self._session

    @property
    def closed(self) -> bool:
        """Whether the wrapped session is closed."""
        return self._session.closed

    def request(self, method: str, url: str | URL, **kwargs: Any) -> Any:
        """Start a request like ``aiohttp.ClientSession.request``, with the X host rewritten."""
        return self._session.request(method, rewrite_url(url, self.base_url), **kwargs)

    def get(self, url: str | URL, **kwargs: Any) -> Any:
        """GET through the rewrite."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str | URL, **kwargs: Any) -> Any:
        """POST through the rewrite."""
        return self.request("POST", url, **kwargs)

    async def close(self) -> None:
        """Close the wrapped session if this object created it."""
        if self._owns_session:
            await self._session.close()

    async def __aenter__(self) -> XApiSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def attach(client: Any, base_url: str | URL | None, *, timeout: float = 30.0) -> XApiSession:
    """Give a tweepy ``AsyncClient`` an :class:`XApiSession`; the caller closes it when done."""
    session = XApiSession(base_url, timeout=aiohttp.ClientTimeout(total=timeout))
    client.session = session
    return session
