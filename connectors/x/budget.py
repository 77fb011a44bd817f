"""The X cost budget: reads and writes counted per calendar month (UTC) in ``channel_usage``.

X bills reads per resource returned (each post, DM event and user object) and writes per
request. Every API call the connector makes adds its counts to the channel's row for the month
in its own short transaction, so the numbers survive restarts and are shared by every worker.
The budget keys are read from the channel's stored settings (``channels.settings``, written from
the config at start) on every check, so a raised budget takes effect at the next poll.

Notices go out once per month and budget value: the first worker to insert the marker row
``notice.<kind>:<budget>`` tells the team; a raised budget that is used up again is announced again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, func
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from inbox.clock import Clock
from inbox.db import Database
from inbox.models import Channel, ChannelUsage
from inbox.ports import NoticeSink

log = logging.getLogger(__name__)

READ_PREFIX = "reads."
WRITE_PREFIX = "writes."
NOTICE_PREFIX = "notice."
WARNING_NOTICE = "x.budget_warning"
EXHAUSTED_NOTICE = "x.budget_exhausted"
# Defaults follow X's published pay-per-use rates: the dearest read (a user or a DM event, $0.010)
# so that a single price never under-counts, and a post or DM created without a URL ($0.015).
DEFAULT_PRICE_PER_READ = 0.010
DEFAULT_PRICE_PER_WRITE = 0.015
DEFAULT_WARN_AT = 0.8
EPSILON = 1e-9  # money is summed in floats: 16 * 0.05 must count as 0.80


def period_of(now: datetime) -> str:
    """The budget period an instant falls in: its calendar month in UTC, e.g. ``2026-11``."""
    return now.astimezone(UTC).strftime("%Y-%m")


class BudgetSettings(BaseModel):
    """The budget keys of an X channel, as stored in ``channels.settings``."""

    model_config = ConfigDict(extra="ignore")

    monthly_budget: float | None = Field(default=None, ge=0)
    price_per_read: float = Field(default=DEFAULT_PRICE_PER_READ, ge=0)
    price_per_write: float = Field(default=DEFAULT_PRICE_PER_WRITE, ge=0)
    budget_warn_at: float = Field(default=DEFAULT_WARN_AT, gt=0, le=1)

    @classmethod
    def from_stored(cls, settings: Mapping[str, Any] | None) -> BudgetSettings:
        """Parse stored channel settings; keys that do not validate fall back to the defaults."""
        try:
            return cls.model_validate(dict(settings or {}))
        except ValidationError:
            log.warning("x budget: stored channel settings do not validate; using the defaults")
            return cls()


@dataclass(frozen=True, slots=True)
class UsageState:
    """Counts and money for one channel and month."""

    period: str
    reads: int
    writes: int
    settings: BudgetSettings

    @property
    def spent(self) -> float:
        """Money spent so far this month, at the configured prices."""
        return self.reads * self.settings.price_per_read + self.writes * self.settings.price_per_write

    @property
    def budget(self) -> float | None:
        """The monthly budget, or None when none is set."""
        return self.settings.monthly_budget

    @property
    def fraction(self) -> float | None:
        """Spent / budget (1.0 is 100 %); None without a budget."""
        if self.budget is None:
            return None
        if self.budget <= 0:
            return 1.0  # a zero budget means: do not poll at all
        return self.spent / self.budget

    @property
    def exhausted(self) -> bool:
        """True when polling must stop for the rest of the month."""
        fraction = self.fraction
        return fraction is not None and fraction >= 1.0 - EPSILON

    def summary(self) -> dict[str, Any]:
        """The plain dict shown by ``inbox channels`` and ``/stats``."""
        fraction = self.fraction
        return {
            "period": self.period,
            "reads": self.reads,
            "writes": self.writes,
            "spent": round(self.spent, 4),
            "budget": self.budget,
            "percent": None if fraction is None else round(fraction * 100, 1),
        }


async def load_usage(session: AsyncSession, channel_id: int, stored: Mapping[str, Any] | None,
                     now: datetime) -> UsageState:
    """Read the month's counters of one channel."""
    period = period_of(now)
    rows = await session.execute(
        sa_select(col(ChannelUsage.metric), col(ChannelUsage.count)).where(
            col(ChannelUsage.channel_id) == channel_id, col(ChannelUsage.period) == period
        )
    )
    reads = writes = 0
    for metric, count in rows:
        if metric.startswith(READ_PREFIX):
            reads += int(count)
        elif metric.startswith(WRITE_PREFIX):
            writes += int(count)
    return UsageState(period, reads, writes, BudgetSettings.from_stored(stored))


async def usage_summary(session: AsyncSession, channel_name: str, now: datetime) -> dict[str, Any]:
    """This month's reads, writes, spent, budget and percent used of an X channel ({} if unknown)."""
    query = select(Channel).where(col(Channel.name) == channel_name)
    channel = (await session.execute(query)).scalar_one_or_none()
    if channel is None or channel.id is None:
        return {}
    state = await load_usage(session, channel.id, channel.settings, now)
    return state.summary()


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


class UsageLedger:
    """Counts one channel's reads and writes and enforces its monthly budget."""

    def __init__(self, db: Database, channel: str, clock: Clock, notices: NoticeSink | None = None) -> None:
        self.db = db
        self.channel = channel
        self.clock = clock
        self.notices = notices
        self._channel_id: int | None = None
        self._state: UsageState | None = None

    async def _id(self, session: AsyncSession) -> int:
        if self._channel_id is None:
            found = await session.scalar(select(col(Channel.id)).where(col(Channel.name) == self.channel))
            if found is None:
                raise LookupError(f"channel '{self.channel}' is not in the database")
            self._channel_id = found
        return self._channel_id

    async def refresh(self) -> UsageState:
        """Re-read counters and budget settings from the database (other workers count too)."""
        now = self.clock.now()
        async with self.db.sessions() as session:
            channel_id = await self._id(session)
            stored = await session.scalar(select(col(Channel.settings)).where(col(Channel.id) == channel_id))
            self._state = await load_usage(session, channel_id, stored, now)
        return self._state

    async def add(self, counts: Mapping[str, int]) -> None:
        """Add counts (metrics ``reads.*`` / ``writes.*``) to this month's rows, then check the budget."""
        counts = {metric: n for metric, n in counts.items() if n > 0}
        if not counts:
            return
        now = self.clock.now()
        period = period_of(now)
        async with self.db.transaction() as session:
            channel_id = await self._id(session)
            insert = _insert(session)
            for metric, n in counts.items():
                statement = insert(ChannelUsage).values(
                    channel_id=channel_id, period=period, metric=metric, count=n, updated_at=now
                )
                await session.execute(statement.on_conflict_do_update(
                    index_elements=["channel_id", "period", "metric"],
                    set_={"count": ChannelUsage.count + statement.excluded.count, "updated_at": now},
                ))
        state = self._state
        if state is None or state.period != period:
            state = await self.refresh()
        else:
            reads = sum(n for m, n in counts.items() if m.startswith(READ_PREFIX))
            writes = sum(n for m, n in counts.items() if m.startswith(WRITE_PREFIX))
            state = UsageState(period, state.reads + reads, state.writes + writes, state.settings)
            self._state = state
        await self._announce(state)

    async def polling_allowed(self, *, refresh: bool = False) -> bool:
        """False once this month's spending reached the budget; announces thresholds as they are crossed."""
        state = self._state
        if refresh or state is None or state.period != period_of(self.clock.now()):
            state = await self.refresh()
        await self._announce(state)
        return not state.exhausted

    async def _announce(self, state: UsageState) -> None:
        fraction = state.fraction
        if fraction is None or state.budget is None:
            return
        if fraction >= state.settings.budget_warn_at - EPSILON:
            await self._notice_once(WARNING_NOTICE, state)
        if state.exhausted:
            await self._notice_once(EXHAUSTED_NOTICE, state)

    async def _notice_once(self, kind: str, state: UsageState) -> None:
        marker = f"{NOTICE_PREFIX}{kind}:{state.budget:g}"[:60]
        now = self.clock.now()
        async with self.db.transaction() as session:
            channel_id = await self._id(session)
            insert = _insert(session)
            claimed = (await session.execute(
                insert(ChannelUsage)
                .values(channel_id=channel_id, period=state.period, metric=marker, count=1, updated_at=now)
                .on_conflict_do_nothing(index_elements=["channel_id", "period", "metric"])
                .returning(col(ChannelUsage.id))
            )).scalar_one_or_none()
        if claimed is None:
            return  # told already (maybe by another worker)
        summary = state.summary()
        log.warning("channel %s: %s (spent %.2f of %.2f, %s%%)", self.channel, kind, state.spent,
                    state.budget, summary["percent"])
        if self.notices is None:
            return
        try:
            await self.notices.notice(kind, channel=self.channel, spent=summary["spent"], budget=state.budget,
                                      percent=summary["percent"], period=state.period)
        except Exception:
            # Give the marker back so the next check tries to tell the team again.
            log.exception("channel %s: could not send notice %s", self.channel, kind)
            async with self.db.transaction() as session:
                await session.execute(delete(ChannelUsage).where(col(ChannelUsage.id) == claimed))


async def month_counts(db: Database, channel: str, now: datetime) -> dict[str, int]:
    """Every counter of a channel for the month of ``now`` (for tests and diagnostics)."""
    async with db.sessions() as session:
        rows = await session.execute(
            sa_select(col(ChannelUsage.metric), func.sum(ChannelUsage.count))
            .join(Channel, col(Channel.id) == col(ChannelUsage.channel_id))
            .where(col(Channel.name) == channel, col(ChannelUsage.period) == period_of(now))
            .group_by(col(ChannelUsage.metric))
        )
        return {metric: int(total) for metric, total in rows}
