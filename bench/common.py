"""What every scenario shares: sizes, the fixed seed and instant, results with their goals, the machine."""

from __future__ import annotations

import asyncio
import math
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event

SEED: Final = 20261102
"""Every run uses this seed unless ``--seed`` says otherwise, so two runs measure the same data."""

NOW: Final = datetime(2026, 11, 16, 3, 0, tzinfo=UTC)
"""The fake 'now' of the scenarios that do not run in real time: Monday 10:00 in Asia/Jakarta."""

TIMEZONE: Final = "Asia/Jakarta"


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is; ``full`` is what docs/benchmarks.md and the README report."""

    name: str
    ingest_events: int
    ingest_batch: int
    command_conversations: int
    commands: int
    telegram_commands: int
    timers: int
    timers_due: int
    idle_seconds: float
    report_messages: int
    spike_per_minute: int
    spike_seconds: float
    memory_conversations: int
    memory_seconds: float

    def of(self, *names: str) -> dict[str, Any]:
        """The named sizes as a dict, for a result's ``size``."""
        return {name: getattr(self, name) for name in names}


SIZES: Final = {
    "full": Sizes(
        "full",
        ingest_events=100_000,
        ingest_batch=500,
        command_conversations=100_000,
        commands=2_000,
        telegram_commands=2_000,
        timers=1_000_000,
        timers_due=100_000,
        idle_seconds=20.0,
        report_messages=1_000_000,
        spike_per_minute=10_000,
        spike_seconds=120.0,
        memory_conversations=1_000_000,
        memory_seconds=30.0,
    ),
    # Under two minutes for both databases on a 2-core machine: a smoke run with rough figures.
    "quick": Sizes(
        "quick",
        ingest_events=1_500,
        ingest_batch=500,
        command_conversations=5_000,
        commands=150,
        telegram_commands=40,
        timers=10_000,
        timers_due=300,
        idle_seconds=1.0,
        report_messages=20_000,
        spike_per_minute=10_000,
        spike_seconds=4.0,
        memory_conversations=10_000,
        memory_seconds=3.0,
    ),
    "tiny": Sizes(
        "tiny",
        ingest_events=300,
        ingest_batch=100,
        command_conversations=500,
        commands=30,
        telegram_commands=10,
        timers=1_000,
        timers_due=100,
        idle_seconds=0.5,
        report_messages=2_000,
        spike_per_minute=1_200,
        spike_seconds=2.0,
        memory_conversations=1_000,
        memory_seconds=2.0,
    ),
}


@dataclass(frozen=True)
class Goal:
    """What a figure must reach: ``figure <op> value`` and, when set, ``ratio >= min_ratio``."""

    op: str  # "<", "<=", ">=" or ">"
    value: float | None
    text: str
    min_ratio: float | None = None

    def met(self, figure: float | None, ratio: float | None) -> bool | None:
        """True or False once measured; None when the figure is missing."""
        if figure is None:
            return None
        ok = True
        if self.value is not None:
            ok = {
                "<": figure < self.value,
                "<=": figure <= self.value,
                ">=": figure >= self.value,
                ">": figure > self.value,
            }[self.op]
        if self.min_ratio is not None:
            ok = ok and ratio is not None and ratio >= self.min_ratio
        return ok


@dataclass
class Result:
    """One measured figure beside its baseline.

    ``ratio`` is always "how fast (or lean) we are next to the baseline": figure / baseline for figures
    where higher is better (events per second), baseline / figure where lower is better (milliseconds,
    megabytes). A ratio of 0.25 reads "a quarter of the baseline's speed".
    """

    scenario: str
    metric: str
    label: str
    figure: float | None
    unit: str
    better: str  # "higher" or "lower"
    baseline: float | None = None
    baseline_label: str = ""
    goal: Goal | None = None
    size: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    database: str = ""
    seconds: float | None = None  # wall time of the scenario that produced it

    @property
    def ratio(self) -> float | None:
        """Speed next to the baseline (see the class docstring)."""
        if self.figure is None or self.baseline is None or self.figure <= 0 or self.baseline <= 0:
            return None
        return self.figure / self.baseline if self.better == "higher" else self.baseline / self.figure

    @property
    def met(self) -> bool | None:
        """Whether the goal is reached (None: no goal or not measured)."""
        return None if self.goal is None else self.goal.met(self.figure, self.ratio)

    def as_json(self, machine: dict[str, Any]) -> dict[str, Any]:
        """The JSON record of ``latest.json``."""
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "label": self.label,
            "database": self.database,
            "figure": _rounded(self.figure),
            "unit": self.unit,
            "better": self.better,
            "baseline": _rounded(self.baseline),
            "baseline_label": self.baseline_label,
            "ratio": _rounded(self.ratio, 4),
            "goal": self.goal.text if self.goal else None,
            "met": self.met,
            "size": self.size,
            "notes": self.notes,
            "seconds": _rounded(self.seconds),
            "machine": machine,
        }


def _rounded(value: float | None, digits: int = 3) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(value, digits)


def failed(scenario: str, metric: str, label: str, error: str) -> Result:
    """A result for a scenario that could not run: no figure, the error as a note."""
    return Result(scenario, metric, label, None, "", "higher", notes=[f"not measured: {error}"])


# --- measuring -------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Stopwatch:
    """Accumulates wall time over several timed sections (``with watch:``)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started: float | None = None

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._started is not None
        self.total += time.perf_counter() - self._started
        self._started = None


class RealTimeClock:
    """A clock that runs at real speed from a chosen instant, so real-time loops meet the seeded data."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self._origin = time.monotonic()

    def now(self) -> datetime:
        """The start instant plus the real time elapsed since this clock was made."""
        return self.start + timedelta(seconds=time.monotonic() - self._origin)

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await asyncio.sleep(max(0.0, seconds))


class StatementCounter:
    """Counts the SQL statements an engine sends (an executemany counts once): the unit of database cost."""

    def __init__(self, engine: Any) -> None:
        self.count = 0
        self._engine = engine.sync_engine
        event.listen(self._engine, "after_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1

    def close(self) -> None:
        """Stop counting."""
        event.remove(self._engine, "after_cursor_execute", self._seen)


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the machine -----------------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine(postgres_version: str | None) -> dict[str, Any]:
    """What the figures were measured on."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": usable,
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": postgres_version,
        "packages": {
            name: _version(name)
            for name in ("sqlalchemy", "aiosqlite", "asyncpg", "python-telegram-bot", "tweepy", "aiohttp")
        },
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One line naming the machine."""
    pg = f", PostgreSQL {info['postgres']}" if info.get("postgres") else ""
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB RAM, {info['os']}, "
        f"Python {info['python']}, SQLite {info['sqlite']}{pg}"
    )


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
