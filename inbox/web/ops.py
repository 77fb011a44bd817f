"""Operations endpoints: ``/healthz`` (alive), ``/readyz`` (can serve), ``/metrics`` (Prometheus text).

Metrics are computed from the database on every scrape with a handful of aggregate queries, so
every process reports the same numbers and nothing is lost on restart; no counter lives in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from aiohttp import web
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.db import Database
from inbox.migrate import current_revision, head_revision
from inbox.models import Channel, Conversation, Delivery, Event, Message, Status
from inbox.outbox import outbox_stats
from inbox.web.context import web_context

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 5.0  # seconds; a probe that hangs is as bad as one that fails
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SLA_EVENTS = {"sla.warning": "saluran_sla_warnings_total", "sla.breached": "saluran_sla_breaches_total"}


@cache
def _head() -> str:
    return head_revision()


# --- /healthz and /readyz --------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers (no database access)."""
    return web.json_response({"status": "ok"})


async def readiness(db: Database, *, strict: bool = False) -> tuple[bool, dict[str, Any]]:
    """Database reachable, schema at head, and each channel's health as the connectors last reported it.

    A channel in error does not make the process unready unless ``strict``: one platform being down
    must not take the contact form and the inbound API out of the load balancer.
    """
    report: dict[str, Any] = {"database": "ok", "migrations": "ok", "channels": {}}
    ready = True
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            async with db.sessions() as session:
                await session.execute(text("SELECT 1"))
                rows = await session.execute(
                    select(
                        col(Channel.name), col(Channel.type), col(Channel.health), col(Channel.health_detail)
                    ).order_by(col(Channel.name))
                )
                report["channels"] = {
                    name: {"type": type_, "health": health, "detail": detail}
                    for name, type_, health, detail in rows
                }
    except Exception as exc:  # unreachable, locked, missing tables: all mean "not ready"
        log.warning("readyz: database check failed: %s", exc)
        return False, {"database": f"error: {type(exc).__name__}", "migrations": "unknown", "channels": {}}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            current = await current_revision(db)
        if current != _head():
            report["migrations"] = f"at {current or 'none'}, head is {_head()}"
            ready = False
    except Exception as exc:
        log.warning("readyz: migration check failed: %s", exc)
        report["migrations"] = f"error: {type(exc).__name__}"
        ready = False
    if strict and any(c["health"] == "error" for c in report["channels"].values()):
        ready = False
    return ready, report


async def readyz(request: web.Request) -> web.Response:
    """200 when ready to serve, else 503; the body says what was checked (``?strict=1`` counts channels)."""
    strict = request.query.get("strict", "") in ("1", "true", "yes")
    ready, report = await readiness(web_context(request).app.db, strict=strict)
    status = 200 if ready else 503
    return web.json_response({"status": "ready" if ready else "not ready", **report}, status=status)


# --- /metrics ----------------------------------------------------------------------------------------


@dataclass
class Family:
    """One metric family in the Prometheus text format."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        """Add one sample."""
        self.samples.append((labels, value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The Prometheus text exposition (format 0.0.4) of the families."""
    lines: list[str] = []
    for fam in families:
        lines.append(f"# HELP {fam.name} {fam.help.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        for labels, value in fam.samples:
            if labels:
                body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
                lines.append(f"{fam.name}{{{body}}} {_number(value)}")
            else:
                lines.append(f"{fam.name} {_number(value)}")
    return "\n".join(lines) + "\n"


async def collect(session: AsyncSession, now: datetime) -> list[Family]:
    """Every metric, from aggregate queries over the current database."""
    rows = await session.execute(
        select(col(Channel.id), col(Channel.name), col(Channel.type), col(Channel.health))
    )
    channels: dict[int, tuple[str, str, str]] = {
        int(row[0] or 0): (row[1], row[2], row[3]) for row in rows  # ids are never NULL once stored
    }
    names = {cid: name for cid, (name, _, _) in channels.items()}

    messages = Family("saluran_messages_total", "counter",
                      "Messages stored per channel and direction (in = ingested from customers).")
    counts = _grouped(await session.execute(
        select(col(Message.channel_id), col(Message.direction), func.count())
        .group_by(col(Message.channel_id), col(Message.direction))
    ))
    for cid, name in sorted(names.items(), key=lambda item: item[1]):
        for direction in ("in", "out", "note"):
            messages.add(counts.get((cid, direction), 0), channel=name, direction=direction)

    conversations = Family("saluran_conversations", "gauge", "Conversations per channel and status.")
    counts = _grouped(await session.execute(
        select(col(Conversation.channel_id), col(Conversation.status), func.count())
        .group_by(col(Conversation.channel_id), col(Conversation.status))
    ))
    for cid, name in sorted(names.items(), key=lambda item: item[1]):
        for status in Status:
            conversations.add(counts.get((cid, status.value), 0), channel=name, status=status.value)

    stats = await outbox_stats(session, now)
    deliveries = Family("saluran_outbox_deliveries", "gauge", "Outbox rows per destination and status.")
    counts = _grouped(await session.execute(
        select(col(Delivery.destination), col(Delivery.status), func.count())
        .group_by(col(Delivery.destination), col(Delivery.status))
    ))
    for (destination, status), count in sorted(counts.items()):
        deliveries.add(count, destination=str(destination), status=str(status))
    depth = Family("saluran_outbox_depth", "gauge", "Deliveries waiting to be sent (pending or being sent).")
    depth.add(stats["pending"] + stats["sending"])
    age = Family("saluran_outbox_oldest_pending_age_seconds", "gauge",
                 "Seconds the oldest pending delivery has waited (0 when none is pending).")
    age.add(stats["oldest_pending_age"] or 0.0)
    failed_now = Family("saluran_outbox_failed", "gauge", "Deliveries that failed and wait for /retry.")
    failed_now.add(stats["failed"])

    event_counts = _grouped(await session.execute(
        select(col(Event.type), func.count())
        .where(col(Event.type).in_(["delivery.failed", *SLA_EVENTS]))
        .group_by(col(Event.type))
    ))
    failures = Family("saluran_deliveries_failed_total", "counter",
                      "Deliveries that ended failed (audit events delivery.failed).")
    failures.add(event_counts.get(("delivery.failed",), 0))

    sla = {
        kind: Family(metric, "counter", f"SLA {kind.split('.')[1]} events per channel (audit events {kind}).")
        for kind, metric in SLA_EVENTS.items()
    }
    sla_counts = _grouped(await session.execute(
        select(col(Event.type), col(Conversation.channel_id), func.count())
        .join(Conversation, col(Conversation.id) == col(Event.conversation_id))
        .where(col(Event.type).in_(list(SLA_EVENTS)))
        .group_by(col(Event.type), col(Conversation.channel_id))
    ))
    for kind, fam in sla.items():
        for cid, name in sorted(names.items(), key=lambda item: item[1]):
            fam.add(sla_counts.get((kind, cid), 0), channel=name)

    errors = Family("saluran_connector_error", "gauge",
                    "1 when the channel's connector last reported an error (channels.health), else 0.")
    health = Family("saluran_connector_health", "gauge", "The health each channel's connector last reported.")
    for _cid, (name, type_, state) in sorted(channels.items(), key=lambda item: item[1][0]):
        errors.add(1 if state == "error" else 0, channel=name, type=type_)
        health.add(1, channel=name, type=type_, health=state)

    return [
        messages, conversations, deliveries, depth, age, failed_now, failures, *sla.values(), errors, health,
    ]


def _grouped(rows: Iterable[Any]) -> dict[tuple[Any, ...], int]:
    """Rows of (keys..., count) as {keys: count}."""
    return {tuple(row[:-1]): int(row[-1]) for row in rows}


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus scrape; 503 when the database cannot be read."""
    app = web_context(request).app
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), app.db.sessions() as session:
            families = await collect(session, app.clock.now())
    except Exception as exc:
        log.warning("metrics: database query failed: %s", exc)
        return web.Response(status=503, text=f"database unavailable: {type(exc).__name__}\n")
    response = web.Response(text=render(families))
    response.headers["Content-Type"] = PROMETHEUS_CONTENT_TYPE
    return response


def routes() -> list[web.RouteDef]:
    """The operations routes."""
    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]
