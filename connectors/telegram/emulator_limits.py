"""Telegram's flood limits for the emulator: per chat, per group and overall, on an injected clock."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FloodLimits:
    """How fast a bot may send. The defaults are the limits Telegram documents for bots."""

    # about one message a second in one chat, with a short burst allowed
    per_chat_per_second: float = 1.0
    per_chat_burst: int = 3
    # no more than 20 messages a minute in one group, supergroup or channel
    per_group_per_minute: int = 20
    # no more than 30 messages a second across all chats
    overall_per_second: int = 30
    enabled: bool = True


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class _BotState:
    chats: dict[int, _Bucket] = field(default_factory=dict)
    groups: dict[int, deque[float]] = field(default_factory=dict)
    overall: deque[float] = field(default_factory=deque)


class FloodGate:
    """Decides whether a bot may send to a chat now, and if not, how long it must wait."""

    def __init__(self, limits: FloodLimits, now: Callable[[], float]) -> None:
        self.limits = limits
        self._now = now
        self._bots: dict[int, _BotState] = {}

    def retry_after(self, bot_id: int, chat_id: int, is_group: bool) -> int | None:
        """Whole seconds to wait before this send is allowed, or None when it may go now."""
        if not self.limits.enabled:
            return None
        now = self._now()
        state = self._bots.setdefault(bot_id, _BotState())
        waits = [0.0]
        bucket = self._bucket(state, chat_id, now)
        if bucket.tokens < 1.0:
            waits.append((1.0 - bucket.tokens) / self.limits.per_chat_per_second)
        if is_group:
            window = self._window(state.groups.setdefault(chat_id, deque()), now, 60.0)
            if len(window) >= self.limits.per_group_per_minute:
                waits.append(window[0] + 60.0 - now)
        overall = self._window(state.overall, now, 1.0)
        if len(overall) >= self.limits.overall_per_second:
            waits.append(overall[0] + 1.0 - now)
        wait = max(waits)
        if wait <= 1e-9:
            return None
        return max(1, math.ceil(wait - 1e-9))

    def record(self, bot_id: int, chat_id: int, is_group: bool) -> None:
        """Count one message sent now."""
        if not self.limits.enabled:
            return
        now = self._now()
        state = self._bots.setdefault(bot_id, _BotState())
        bucket = self._bucket(state, chat_id, now)
        bucket.tokens -= 1.0
        if is_group:
            state.groups.setdefault(chat_id, deque()).append(now)
        state.overall.append(now)

    def _bucket(self, state: _BotState, chat_id: int, now: float) -> _Bucket:
        burst = float(self.limits.per_chat_burst)
        bucket = state.chats.get(chat_id)
        if bucket is None:
            bucket = state.chats[chat_id] = _Bucket(burst, now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(burst, bucket.tokens + elapsed * self.limits.per_chat_per_second)
        bucket.updated = now
        return bucket

    @staticmethod
    def _window(times: deque[float], now: float, span: float) -> deque[float]:
        while times and times[0] <= now - span:
            times.popleft()
        return times
