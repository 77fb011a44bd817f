"""Item 3: a worker killed right after it claimed a delivery loses nothing: another worker sends the
row once the claim lease expires. Also the one place a duplicate can appear (documented in
docs/reliability.md): the platform accepted the message but the worker died before recording it.

In process: two dispatchers with their own database engines, a reply made by the real Actions, the
real JSONL sender; "killed" is a send that never returns and a task that is cancelled without
releasing its claim. Then the same with real `inbox run` processes on PostgreSQL and SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from sqlmodel import col

from connectors.jsonl import JsonlSender
from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Actor, Author, Batch, Inbound, Outbound, Receipt
from inbox.ingest import Ingestor
from inbox.models import Delivery, DeliveryStatus, Event, Kind
from inbox.outbox import Dispatcher
from inbox.web.signing import verify
from tests.conftest import POSTGRES_ENV, create_scratch_postgres, drop_scratch_postgres
from tests.factories import seed
from tests.reliability.support import (
    PARTNER_SECRET,
    child_env,
    inbox_cli,
    psql,
    rows,
    start_run,
    stop_run,
)

LEASE = timedelta(minutes=2)
CAROL = Actor("member", "carol", None)


class DiesInSend:
    """A sender whose worker is killed right after it claimed the row: the send never returns."""

    def __init__(self, side_effect: JsonlSender | None = None) -> None:
        self.entered = asyncio.Event()
        self.side_effect = side_effect

    async def send(self, outbound: Outbound) -> Receipt:
        if self.side_effect is not None:
            await self.side_effect.send(outbound)  # the platform accepted it ...
        self.entered.set()
        await asyncio.Event().wait()  # ... and the worker died before it heard back
        raise AssertionError("unreachable")


async def queue_a_reply(db: Database, clock: FakeClock) -> int:
    await seed(db, clock)
    ingestor = Ingestor(db, clock)
    result = await ingestor.ingest(
        Batch("support", [Inbound("support", "m1", Kind.DM, Author("c1"), "Where is my order?", clock.now())])
    )
    await Actions(db, clock).reply(CAROL, result.stored[0].conversation_id, "It ships today.")
    [delivery] = await rows(db, Delivery, col(Delivery.destination) == "support")
    assert delivery.id is not None
    return delivery.id


async def kill_in_send(dispatcher: Dispatcher, sender: DiesInSend) -> None:
    """Run one pass until the send started, then kill the worker (no release of its claim)."""
    task = asyncio.ensure_future(dispatcher.run_once())
    await asyncio.wait_for(sender.entered.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_delivery_claimed_by_a_killed_worker_is_sent_by_another_after_the_lease(
    db: Database,
    db_url: str,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    delivery_id = await queue_a_reply(db, clock)
    out = tmp_path / "out.jsonl"
    dying = DiesInSend()
    worker_a = Dispatcher(db, clock, {"support": dying}, worker_id="A", lease=LEASE)
    other_engine = Database(db_url)  # a second process, as far as the database can tell
    try:
        worker_b = Dispatcher(
            other_engine, clock, {"support": JsonlSender(out, clock)}, worker_id="B", lease=LEASE
        )
        await kill_in_send(worker_a, dying)
        [row] = await rows(db, Delivery, col(Delivery.id) == delivery_id)
        assert (row.status, row.claimed_by) == (DeliveryStatus.SENDING, "A")
        clock.advance(LEASE - timedelta(seconds=1))
        assert await worker_b.run_once() == 0 and lines(out) == []  # A's claim still holds: nothing early
        clock.advance(timedelta(seconds=2))
        assert await worker_b.run_once() == 1
    finally:
        await other_engine.dispose()
    assert [(line["delivery_id"], line["text"]) for line in lines(out)] == [(delivery_id, "It ships today.")]
    [row] = await rows(db, Delivery, col(Delivery.id) == delivery_id)
    assert (row.status, row.claimed_by, row.attempts) == (DeliveryStatus.SENT, "B", 2)
    assert await rows(db, Event, col(Event.type) == "delivery.failed") == []


async def test_the_duplicate_window_accepted_but_not_recorded_sends_twice_with_one_delivery_id(
    db: Database,
    db_url: str,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    delivery_id = await queue_a_reply(db, clock)
    out = tmp_path / "out.jsonl"
    dying = DiesInSend(side_effect=JsonlSender(out, clock))
    await kill_in_send(Dispatcher(db, clock, {"support": dying}, worker_id="A", lease=LEASE), dying)
    clock.advance(LEASE + timedelta(seconds=1))
    other_engine = Database(db_url)
    try:
        worker_b = Dispatcher(
            other_engine, clock, {"support": JsonlSender(out, clock)}, worker_id="B", lease=LEASE
        )
        assert await worker_b.run_once() == 1
    finally:
        await other_engine.dispose()
    # At least once: the platform got it twice, both times under the same delivery id.
    assert [line["delivery_id"] for line in lines(out)] == [delivery_id, delivery_id]


# --- real processes on PostgreSQL ---------------------------------------------------------------------


CONFIG = """
[database]
url = "{url}"

[runtime]
lease_ttl = "2s"

[outbox]
idle_interval = "0.1s"
lease = "3s"

[web]
host = "127.0.0.1"
port = 0

[[members]]
name = "alice"
role = "admin"

[[channels]]
name = "partner"
type = "api"
secret_env = "REL_PARTNER_SECRET"
reply_url = "{reply_url}"
reply_timeout = 30
"""


class Partner:
    """The system behind an api channel's reply_url: it hangs on the first reply it gets (its sender is
    killed while waiting) and accepts the later ones, answering with an id."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.accepted: list[int] = []
        self.first = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        verify(PARTNER_SECRET, request.headers, body, _now(json.loads(body)["sent_at"]))
        delivery_id = int(json.loads(body)["delivery_id"])
        self.received.append(delivery_id)
        if len(self.received) == 1:
            self.first.set()
            await asyncio.Event().wait()  # never answers: the worker sending it is about to die
        self.accepted.append(delivery_id)
        return web.json_response({"id": f"partner-{delivery_id}"})


def _now(sent_at: str) -> datetime:
    return datetime.fromisoformat(sent_at.replace("Z", "+00:00"))


@pytest.fixture
async def partner() -> AsyncIterator[tuple[Partner, str]]:
    """The partner's HTTP server on 127.0.0.1: (recorder, reply URL)."""
    recorder = Partner()
    app = web.Application()
    app.router.add_post("/replies", recorder.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield recorder, f"http://127.0.0.1:{runner.addresses[0][1]}/replies"
    finally:
        await runner.cleanup()


@pytest.mark.postgres
async def test_sigkill_of_the_worker_sending_a_reply_loses_nothing(
    tmp_path: Path,
    partner: tuple[Partner, str],
) -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"{POSTGRES_ENV} is not set")
    recorder, reply_url = partner
    url = await asyncio.to_thread(create_scratch_postgres, "saluran_rel_kill")
    env = child_env(REL_PARTNER_SECRET=PARTNER_SECRET)
    config = tmp_path / "inbox.toml"
    config.write_text(CONFIG.format(url=url, reply_url=reply_url))
    (tmp_path / "in.jsonl").write_text(
        json.dumps(
            {
                "channel": "partner",
                "external_id": "p-1",
                "kind": "dm",
                "author": {"id": "crm-7"},
                "text": "Refund?",
                "created_at": "2026-11-02T09:00:00Z",
            }
        )
        + "\n"
    )
    workers = []
    try:
        for args in (("db", "upgrade"), ("import", "in.jsonl")):
            done = await asyncio.to_thread(inbox_cli, "-c", str(config), *args, cwd=tmp_path, env=env)
            assert done.returncode == 0, done.stderr
        workers = [start_run(config, env=env), start_run(config, env=env)]
        done = await asyncio.to_thread(
            inbox_cli,
            "-c",
            str(config),
            "cmd",
            "--as",
            "alice",
            "/reply 1 Your refund is on its way",
            cwd=tmp_path,
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        await asyncio.wait_for(recorder.first.wait(), 30)  # one worker claimed it and is sending
        holder = await asyncio.to_thread(
            psql, url, "SELECT claimed_by FROM deliveries WHERE destination = 'partner'"
        )
        victim = next(w for w in workers if w.pid == int(holder.rpartition(":")[2]))
        victim.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 10)
        survivor = next(w for w in workers if w is not victim)

        async def sent() -> str:
            return await asyncio.to_thread(
                psql, url, "SELECT status || ' ' || attempts FROM deliveries WHERE destination = 'partner'"
            )

        deadline = asyncio.get_running_loop().time() + 30
        while await sent() != "sent 2":
            assert asyncio.get_running_loop().time() < deadline, await sent()
            await asyncio.sleep(0.2)
        assert survivor.poll() is None
        await asyncio.sleep(0.5)  # a duplicate, if any, would arrive now
    finally:
        logs = [await asyncio.to_thread(stop_run, w) for w in workers]
        await asyncio.to_thread(drop_scratch_postgres, url)
    [delivery_id] = set(recorder.received)
    assert recorder.received == [delivery_id, delivery_id]  # the killed worker's try, then the takeover
    assert recorder.accepted == [delivery_id]  # the partner accepted it exactly once
    assert any("took over delivery" in log for log in logs), logs
