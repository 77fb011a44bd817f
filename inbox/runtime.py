"""``inbox run``: every configured source, the outbox dispatcher (and later loops) as named tasks."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inbox.app import App
from inbox.db import DatabaseError
from inbox.heap import freeze_startup_heap
from inbox.leases import Leases, process_name, run_leased
from inbox.notify import Notifier, install_notifier
from inbox.outbox import Dispatcher
from inbox.poller import Poller
from inbox.ports import PolledSource, Sender
from inbox.registry import Connector, ConnectorContext, build_connector
from inbox.sla.scheduler import SlaScheduler
from inbox.web.server import web_task

log = logging.getLogger(__name__)


SQLITE_LEASE = "runtime:sqlite"


def worker_id() -> str:
    """A name for this process that is unique across machines: host and pid."""
    return process_name()


@dataclass
class Runtime:
    """The running parts of one process."""

    app: App
    base_dir: Path
    connectors: dict[str, Connector] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    leases: Leases | None = None
    notifier: Notifier | None = None

    def __post_init__(self) -> None:
        self.leases = Leases(self.app.db, self.app.clock, worker_id(), self.app.settings.runtime.lease_ttl)
        # What the team hears: cards for new conversations, SLA pings, failures, health notices.
        self.notifier = install_notifier(self.app)

    def build_connectors(self) -> None:
        """Build each channel's connector; a channel that fails is logged and skipped."""
        from inbox.commands import CommandCore

        context = ConnectorContext(
            clock=self.app.clock,
            db=self.app.db,
            notices=self.notifier,
            ingest=self.app.ingestor.ingest,
            commands=CommandCore.from_app(self.app).execute,
            settings=self.app.settings,
            extra={"base_dir": self.base_dir, "language": self.app.settings.general.language},
        )
        for channel in self.app.settings.channels:
            try:
                self.connectors[channel.name] = build_connector(channel, context)
            except Exception as exc:
                log.error("channel %s (%s) not started: %s", channel.name, channel.type, exc)

    def senders(self) -> dict[str, Sender]:
        """Destination name -> sender, for the dispatcher: channels, and team chats as team:<name>."""
        senders: dict[str, Sender] = {
            name: c.sender for name, c in self.connectors.items() if c.sender is not None
        }
        team_senders = {name: c.team_sender for name, c in self.connectors.items() if c.team_sender}
        assert self.notifier is not None
        # team:<name> -> a sender paced to the chat's platform budget
        senders.update(self.notifier.senders(team_senders))
        return senders

    def start(self) -> Dispatcher:
        """Start every loop as a named task."""
        app = self.app
        assert self.notifier is not None
        dispatcher = Dispatcher.from_settings(
            app.db,
            app.clock,
            self.senders(),
            app.settings.outbox,
            worker_id=worker_id(),
            on_failed=self.notifier.on_failed,
        )
        idle = app.settings.outbox.idle_interval.total_seconds()
        self._spawn("outbox", dispatcher.run(self.stop, idle=idle))
        scheduler = SlaScheduler(
            app.db, app.clock, app.sla, worker_id=worker_id(), notify=self.notifier.sla_notify
        )
        self._spawn("sla", scheduler.run(self.stop, app.sla.wake))
        if app.settings.reports.enabled and app.settings.team_chats:
            from inbox.reports.job import WeeklyReportJob  # pulls in the chart code only when posting

            reports = WeeklyReportJob(app.db, app.clock, app.settings, worker_id())
            self._spawn("reports", reports.run(self.stop))
        for name, connector in self.connectors.items():
            if isinstance(connector.source, PolledSource):
                poller = Poller(
                    name,
                    connector.source,
                    app.ingestor,
                    app.db,
                    app.clock,
                    connector.poll_interval,
                    notices=self.notifier,
                )
                # One poller per channel across all processes: it runs where its lease is held.
                assert self.leases is not None
                self._spawn(f"poll:{name}", run_leased(f"source:{name}", self.leases, poller.run, self.stop))
        for name, connector in self.connectors.items():
            if connector.service is not None:
                # A platform session that must be unique (one long poll or gateway per token).
                assert self.leases is not None
                key = connector.lease_key or f"service:{name}"
                self._spawn(f"service:{name}", run_leased(key, self.leases, connector.service, self.stop))
        web = web_task(app, self.connectors, self.stop)  # None unless [web] is configured
        if web is not None:
            self._spawn("web", web)
        return dispatcher

    def _spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        self.tasks[name] = asyncio.create_task(coro, name=name)

    async def wait(self, dispatcher: Dispatcher) -> None:
        """Wait for the stop signal, then for every task to finish, then release claims."""
        await self.stop.wait()
        log.info("stopping: waiting for %d tasks", len(self.tasks))
        results = await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        for name, result in zip(self.tasks, results, strict=True):
            if isinstance(result, BaseException):
                log.error("task %s ended with an error", name, exc_info=result)
        released = await dispatcher.release_claims()
        if released:
            log.info("released %d claimed deliveries", released)
        for name, connector in self.connectors.items():
            if connector.close is not None:
                try:
                    await connector.close()
                except Exception:
                    log.exception("channel %s: closing failed", name)


async def run_forever(app: App, base_dir: Path, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``), then stop cleanly."""
    runtime = Runtime(app, base_dir)
    if stop is not None:
        runtime.stop = stop
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, runtime.stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    if not app.db.is_postgres:
        await _claim_sqlite(runtime)
    runtime.build_connectors()
    dispatcher = runtime.start()
    frozen = freeze_startup_heap()
    log.info("running: %s", ", ".join(runtime.tasks))
    log.debug("%d startup objects frozen out of the collector's passes", frozen)
    try:
        await runtime.wait(dispatcher)
        if not app.db.is_postgres and runtime.leases is not None:
            await runtime.leases.release(SQLITE_LEASE)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass


async def _claim_sqlite(runtime: Runtime) -> None:
    """SQLite has one writer: refuse a second ``inbox run`` on the same database file."""
    leases = runtime.leases
    assert leases is not None
    if not await leases.acquire(SQLITE_LEASE):
        holder = await leases.holder_of(SQLITE_LEASE)
        raise DatabaseError(
            f"another `inbox run` ({holder}) is using this SQLite database; SQLite supports one "
            "process at a time: stop the other one, or use PostgreSQL to run several workers"
        )

    # Renew for as long as we run, so the lease only expires if this process dies.
    runtime._spawn("lease:sqlite", _renew_forever(leases, runtime.stop))


async def _renew_forever(leases: Leases, stop: asyncio.Event) -> None:
    interval = leases.ttl.total_seconds() / 3
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            try:
                await leases.renew(SQLITE_LEASE)
            except Exception as exc:
                log.warning("could not renew the SQLite process lease: %s", exc)
