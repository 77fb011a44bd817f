"""/healthz, /readyz (200 and each way to 503) and /metrics, parsed with the Prometheus client's parser."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text, update
from sqlmodel import col

from inbox.audit import record
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Actor, Author, Batch, Inbound
from inbox.models import Channel, Kind
from inbox.outbox import enqueue
from inbox.web.server import build_web_app
from tests.web.conftest import WebHarness

GOOD = {"name": "Ana", "email": "ana@example.com", "subject": "Hi", "message": "Hello"}


async def test_healthz(harness: WebHarness) -> None:
    response = await harness.client.get("/healthz")
    assert response.status == 200 and await response.json() == {"status": "ok"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_readyz_ok_reports_channels(harness: WebHarness) -> None:
    response = await harness.client.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ready" and body["database"] == "ok" and body["migrations"] == "ok"
    assert body["channels"]["website"] == {"type": "webform", "health": "unknown", "detail": None}
    assert set(body["channels"]) == {"website", "partner", "support"}


async def test_readyz_503_when_migrations_are_not_at_head(harness: WebHarness) -> None:
    async with harness.app.db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0000_older'"))
    response = await harness.client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "not ready" and body["migrations"].startswith("at 0000_older, head is ")


async def test_readyz_503_when_the_database_is_unreachable(harness: WebHarness, tmp_path: Path) -> None:
    broken = Database(f"sqlite+aiosqlite:///{tmp_path}/missing-dir/none.db")
    app = dataclasses.replace(harness.app, db=broken)
    client: TestClient[Any, Any] = TestClient(TestServer(build_web_app(app, [])))
    async with client:
        assert (await client.get("/healthz")).status == 200  # alive needs no database
        response = await client.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["database"].startswith("error") and body["status"] == "not ready"
        assert (await client.get("/metrics")).status == 503
    await broken.dispose()


async def test_readyz_strict_counts_connector_errors(harness: WebHarness) -> None:
    async with harness.app.db.transaction() as session:
        await session.execute(
            update(Channel).where(col(Channel.name) == "support").values(health="error", health_detail="boom")
        )
    relaxed = await harness.client.get("/readyz")
    assert relaxed.status == 200
    assert (await relaxed.json())["channels"]["support"] == {
        "type": "jsonl",
        "health": "error",
        "detail": "boom",
    }
    assert (await harness.client.get("/readyz?strict=1")).status == 503


def samples(page: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the scrape, keyed by (name, sorted labels), via the official parser."""
    out = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_parse_and_count_from_the_database(harness: WebHarness) -> None:
    app, clock = harness.app, harness.clock
    assert isinstance(clock, FakeClock)
    for _ in range(2):
        assert (await harness.client.post("/contact/website", data=GOOD)).status == 200
    await app.ingestor.ingest(
        Batch(
            "support",
            [
                Inbound("support", "s-1", Kind.DM, Author("u1"), "hi", clock.now()),
                Inbound("support", "s-2", Kind.DM, Author("u1"), "again", clock.now()),
            ],
        )
    )
    await app.actions.resolve(Actor("member", "alice", 1), 1)
    async with app.db.transaction() as session:
        await enqueue(
            session,
            destination="website",
            purpose="reply",
            payload={"text": "x"},
            now=clock.now() - timedelta(seconds=90),
        )
        await enqueue(session, destination="support", purpose="reply", payload={"text": "y"}, now=clock.now())
        await record(session, Actor.system("sla"), "sla.warning", clock.now(), 2)
        await record(session, Actor.system("sla"), "sla.breached", clock.now(), 2)
        await record(session, Actor.system("sla"), "sla.breached", clock.now(), 3)
        await record(session, Actor.system("outbox"), "delivery.failed", clock.now(), None)
        await session.execute(update(Channel).where(col(Channel.name) == "partner").values(health="error"))

    response = await harness.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    page = await response.text()
    got = samples(page)

    assert got[("saluran_messages_total", (("channel", "website"), ("direction", "in")))] == 2
    assert got[("saluran_messages_total", (("channel", "support"), ("direction", "in")))] == 2
    assert got[("saluran_messages_total", (("channel", "partner"), ("direction", "in")))] == 0
    assert got[("saluran_conversations", (("channel", "website"), ("status", "open")))] == 1
    assert got[("saluran_conversations", (("channel", "website"), ("status", "resolved")))] == 1
    assert got[("saluran_conversations", (("channel", "support"), ("status", "open")))] == 1
    assert got[("saluran_outbox_depth", ())] == 2
    assert got[("saluran_outbox_oldest_pending_age_seconds", ())] == 90
    assert got[("saluran_outbox_deliveries", (("destination", "website"), ("status", "pending")))] == 1
    assert got[("saluran_deliveries_failed_total", ())] == 1
    assert got[("saluran_sla_warnings_total", (("channel", "website"),))] == 1
    assert got[("saluran_sla_breaches_total", (("channel", "website"),))] == 1
    assert got[("saluran_sla_breaches_total", (("channel", "support"),))] == 1
    assert got[("saluran_sla_warnings_total", (("channel", "support"),))] == 0
    assert got[("saluran_connector_error", (("channel", "partner"), ("type", "api")))] == 1
    assert got[("saluran_connector_error", (("channel", "website"), ("type", "webform")))] == 0
    assert (
        got[("saluran_connector_health", (("channel", "partner"), ("health", "error"), ("type", "api")))] == 1
    )
    kinds = {f.name: f.type for f in text_string_to_metric_families(page)}
    assert kinds["saluran_messages"] == "counter" and kinds["saluran_outbox_depth"] == "gauge"


async def test_metrics_of_an_empty_database_parse(harness: WebHarness) -> None:
    page = await (await harness.client.get("/metrics")).text()
    got = samples(page)
    assert (
        got[("saluran_outbox_depth", ())] == 0 and got[("saluran_outbox_oldest_pending_age_seconds", ())] == 0
    )


def test_label_values_are_escaped() -> None:
    from inbox.web.ops import Family, render

    family = Family("x_total", "counter", "odd \\ help\nline")
    family.add(1.5, channel='we"ird\\name\n')
    parsed = list(text_string_to_metric_families(render([family])))
    assert parsed[0].samples[0].labels == {"channel": 'we"ird\\name\n'} and parsed[0].samples[0].value == 1.5
