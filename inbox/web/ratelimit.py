"""A per-key sliding-window rate limiter kept in memory (one per process).

It guards the public contact form: at most N submissions per client IP per window. The state is
per process on purpose: it holds no business data (losing it on restart only forgives recent
submitters), and a database row per request would turn a spam flood into write load. With
several processes behind a load balancer a client can get N submissions per process; set N
with that in mind (see docs/web.md).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_MAX_KEYS = 50_000


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a hit is allowed and, when it is not, how many seconds until one would be."""

    allowed: bool
    retry_after: float = 0.0


class RateLimiter:
    """Sliding window log: a key may hit ``limit`` times in any ``window``; refused hits do not count."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[datetime]] = OrderedDict()

    def hit(self, key: str, now: datetime, *, limit: int, window: timedelta) -> Decision:
        """Record one hit of ``key`` at ``now`` if it is within the limit; say whether it was."""
        if limit < 1:
            return Decision(False, window.total_seconds())
        hits = self._hits.get(key)
        if hits is None:
            hits = deque()
            self._make_room(now, window)
            self._hits[key] = hits
        else:
            self._hits.move_to_end(key)
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            wait = (hits[0] + window - now).total_seconds()
            return Decision(False, max(wait, 0.0))
        hits.append(now)
        return Decision(True)

    def _make_room(self, now: datetime, window: timedelta) -> None:
        if len(self._hits) < self.max_keys:
            return
        # First forget keys whose hits have all expired; if a flood of distinct keys still fills the
        # table, forget the least recently seen ones (they get a fresh allowance, which is the safe side
        # for memory and only ever lenient for clients).
        for stale in [k for k, v in self._hits.items() if not v or v[-1] <= now - window]:
            del self._hits[stale]
        while len(self._hits) >= self.max_keys:
            self._hits.popitem(last=False)

    def __len__(self) -> int:
        """How many keys are tracked."""
        return len(self._hits)
