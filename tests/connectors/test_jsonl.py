"""JSONL connector: tails events by byte offset, writes replies; the poller stores the cursor."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectors.jsonl import JsonlSender, JsonlSource
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Outbound
from inbox.ingest import Ingestor
from inbox.models import Channel, Message
from inbox.poller import Poller
from tests.factories import seed


def line(ext: str, text: str = "hi") -> str:
    return (
        json.dumps(
            {
                "external_id": ext,
                "kind": "dm",
                "author": {"id": "u1"},
                "text": text,
                "created_at": "2026-11-02T09:00:00Z",
            }
        )
        + "\n"
    )


async def test_source_reads_complete_lines_only_and_skips_bad_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(line("1") + "not json\n" + line("2") + '{"external_id": "3"')
    source = JsonlSource("support", path)
    with caplog.at_level(logging.WARNING, logger="connectors.jsonl"):
        batch = await source.fetch(None)
    assert [e.external_id for e in batch.events] == ["1", "2"]
    # the warning names the bad line's first byte, where `tail -c +N+1` or an editor finds it
    (warning,) = [r.getMessage() for r in caplog.records if "skipped bad line" in r.getMessage()]
    assert f"at byte {len(line('1'))}:" in warning
    assert batch.events[0].channel == "support"
    # the half-written line is read once it is complete
    with path.open("a") as fh:
        fh.write(', "kind": "dm", "author": {"id": "u"}, "created_at": "2026-11-02T09:00:00Z"}\n')
    again = await source.fetch(batch.cursor)
    assert [e.external_id for e in again.events] == ["3"]
    assert int(again.cursor or 0) == path.stat().st_size


async def test_source_refuses_events_for_another_channel(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps(
            {
                "channel": "other",
                "external_id": "1",
                "kind": "dm",
                "author": {"id": "u"},
                "created_at": "2026-11-02T09:00:00Z",
            }
        )
        + "\n"
    )
    batch = await JsonlSource("support", path).fetch(None)
    assert batch.events == [] and batch.cursor == str(path.stat().st_size)


async def test_sender_appends_one_line_per_delivery(tmp_path: Path, clock: FakeClock) -> None:
    sender = JsonlSender(tmp_path / "out.jsonl", clock)
    receipt = await sender.send(Outbound(7, "support", "reply", "thanks", recipient="u1", reply_to="m1"))
    assert receipt.platform_message_id == "jsonl:7"
    record = json.loads((tmp_path / "out.jsonl").read_text())
    assert (record["delivery_id"], record["text"], record["recipient"]) == (7, "thanks", "u1")


async def test_poller_ingests_and_stores_cursor_once(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    await seed(db, clock)
    path = tmp_path / "in.jsonl"
    path.write_text(line("1") + line("2"))
    poller = Poller("support", JsonlSource("support", path), Ingestor(db, clock), db, clock, 1.0)
    assert await poller.poll_once() == 2
    assert await poller.poll_once() == 0  # cursor stored: nothing read twice
    with path.open("a") as fh:
        fh.write(line("3"))
    assert await poller.poll_once() == 1
    async with db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Message)) == 3
        cursor = await s.scalar(select(Channel.cursor).where(Channel.name == "support"))
    assert cursor == str(path.stat().st_size)


async def test_poller_survives_source_errors_and_records_health(db: Database, clock: FakeClock) -> None:
    await seed(db, clock)

    class Broken:
        calls = 0

        async def fetch(self, cursor: str | None):  # type: ignore[no-untyped-def]
            Broken.calls += 1
            raise OSError("disk on fire")

    stop = asyncio.Event()
    poller = Poller("support", Broken(), Ingestor(db, clock), db, clock, 1.0)
    task = asyncio.create_task(poller.run(stop))
    health = None
    for _ in range(300):
        await asyncio.sleep(0.01)
        async with db.sessions() as s:
            health = (
                await s.execute(
                    select(Channel.health, Channel.health_detail).where(Channel.name == "support")
                )
            ).one()
        if health[0] == "error":
            break
    for _ in range(5):
        clock.advance(10)
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert tuple(health or ()) == ("error", "disk on fire")
    assert Broken.calls >= 2  # kept polling after the failure
