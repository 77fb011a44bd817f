"""The Protocols that connectors implement; the core only ever talks to these."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, runtime_checkable

from inbox.events import Batch, Outbound, Receipt


class DeliveryFailed(Exception):
    """A connector could not perform an Outbound; ``retryable`` says whether to try again."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(DeliveryFailed):
    """The platform asked us to wait ``retry_after`` seconds; this is not counted as a failure."""

    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        super().__init__(f"{message} (retry after {retry_after:g}s)", retry_after=retry_after)


class Paced(RateLimited):
    """Our own pacing (a team chat's budget or pace), not the platform, asks to wait: expected, so quiet."""


class PermanentFailure(DeliveryFailed):
    """The platform refused for good (blocked bot, deleted chat): retrying will not help."""

    retryable = False


@runtime_checkable
class Sender(Protocol):
    """Performs outbox rows for one destination (a channel or a team chat).

    A team chat's sender may also declare ``pace`` (a ``Pace``): how fast its platform lets one chat
    receive messages. The notifier's paced sender keeps to it (``pace_of`` reads it).
    """

    async def send(self, outbound: Outbound) -> Receipt:
        """Perform the side effect; raise DeliveryFailed (or a subclass) when it did not happen."""
        ...


@dataclass(frozen=True, slots=True)
class Pace:
    """How fast one chat may receive messages: ``burst`` at once, then one per ``interval`` seconds
    (at most ``burst`` in any ``burst * interval`` seconds). The default sets no limit."""

    interval: float = 0.0
    burst: int = 1

    @property
    def span(self) -> timedelta:
        """The sliding window in which at most ``burst`` messages may go."""
        return timedelta(seconds=max(0.0, self.interval) * max(1, self.burst))


def pace_of(sender: object) -> Pace:
    """The pace ``sender`` declares; no limit when it declares none."""
    declared = getattr(sender, "pace", None)
    return declared if isinstance(declared, Pace) else Pace()


@runtime_checkable
class NoticeSink(Protocol):
    """Where connectors report things the team must hear (health, budget, rate limits).

    The notifier implements it: an audit event plus a team notice through the outbox.
    """

    async def notice(self, kind: str, *, channel: str | None = None, **data: object) -> None:
        """Record and announce one notice (``kind`` is a message key such as ``x.budget_warning``)."""
        ...


@runtime_checkable
class PolledSource(Protocol):
    """A source that is asked for what is new since a cursor."""

    async def fetch(self, cursor: str | None) -> Batch:
        """Return new inbound events and the cursor to store with them."""
        ...


@runtime_checkable
class StreamSource(Protocol):
    """A source that pushes events (gateway, webhook) as they arrive."""

    def stream(self) -> AsyncIterator[Batch]:
        """Yield batches as the platform delivers them."""
        ...
