"""The hand-computed report fixture: two weeks of a small team in Jakarta (UTC+7, no DST).

Week 2026-W47 runs from Mon 16 Nov 00:00 to Mon 23 Nov 00:00 WIB; W46 is the week before. Every time
below is local (WIB). Policies: ``social`` (channel social, first response 30m, wall-clock) and
``standard`` (everything else, office hours Mon-Fri 09:00-17:00: first response 1h, next response 2h,
resolution 1d = 24 open hours = three office days).

Conversations (P = previous week, C = the report week):

- P1 support/dm, Tue 10 Nov 10:00, carol replies 10:20, resolved 11:00.
- P2 support/dm, Fri 13 Nov 16:00, carol, #billing; answered only on Mon 16 Nov 09:30; never resolved.
- C1 support/dm, Mon 09:00, carol, #billing; reply 09:20; resolved 10:00.
- C2 support/email, Mon 16:30, bob, #billing #refund; reply Tue 09:45; follow-up Tue 10:00, reply 10:30.
- C3 social/mention, Wed 20:00, unassigned, #praise; alice replies 20:10; resolved 21:00.
- C4 social/comment, Thu 12:00, carol, #refund; reply 13:00; resolved Fri 12:00.
- C5 support/dm, Sat 10:00; no reply.
- C6 support/dm, Thu 09:00, carol; reply 09:05; follow-up 10:00, reply 13:00; resolved 14:00.
- C7 support/dm, Tue 09:00, alice; reply 09:10; follow-up 10:00, reply 14:00; follow-up 15:00,
  reply 15:30; resolved 16:00.

The SLA scheduler runs at every step, as ``inbox run`` would, so breaches also leave their events.
``jsonl_lines`` gives the messages alone (what ``inbox import`` can carry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from inbox.actions import Actions
from inbox.clock import FakeClock, ensure_utc
from inbox.db import Database
from inbox.events import Actor, Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import Direction, Kind
from inbox.settings import Settings
from inbox.sla.engine import SlaEngine
from inbox.sla.scheduler import SlaScheduler
from tests.factories import make_settings, seed

TZ = "Asia/Jakarta"
WEEK = "2026-W47"
SLA: dict[str, Any] = {
    "calendars": {"office": {"timezone": TZ, "hours": {"weekdays": ["09:00-17:00"]}}},
    "policies": [
        {"name": "social", "channels": ["social"], "first_response": "30m"},
        {"name": "standard", "calendar": "office", "first_response": "1h", "next_response": "2h",
         "resolution": "1d"},
    ],
}


def local(text: str) -> datetime:
    """``2026-11-16 09:00`` in Jakarta, as an aware UTC instant."""
    return ensure_utc(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(TZ)))


@dataclass(frozen=True)
class Step:
    """One thing that happens at a local time: in, out, assign, tag or resolve."""

    at: str
    action: str
    conv: str
    arg: str = ""  # member (out, assign, resolve), "channel/kind" (first in), tags (tag)


CONVERSATIONS = {  # key: (channel, kind)
    "P1": ("support", "dm"), "P2": ("support", "dm"), "C1": ("support", "dm"), "C2": ("support", "email"),
    "C3": ("social", "mention"), "C4": ("social", "comment"), "C5": ("support", "dm"),
    "C6": ("support", "dm"), "C7": ("support", "dm"),
}

STEPS = [
    Step("2026-11-10 10:00", "in", "P1"), Step("2026-11-10 10:00", "assign", "P1", "carol"),
    Step("2026-11-10 10:20", "out", "P1", "carol"), Step("2026-11-10 11:00", "resolve", "P1", "carol"),
    Step("2026-11-13 16:00", "in", "P2"), Step("2026-11-13 16:00", "assign", "P2", "carol"),
    Step("2026-11-13 16:00", "tag", "P2", "billing"),
    # --- week 47 ---
    Step("2026-11-16 09:00", "in", "C1"), Step("2026-11-16 09:00", "assign", "C1", "carol"),
    Step("2026-11-16 09:00", "tag", "C1", "billing"),
    Step("2026-11-16 09:20", "out", "C1", "carol"),
    Step("2026-11-16 09:30", "out", "P2", "carol"),
    Step("2026-11-16 10:00", "resolve", "C1", "carol"),
    Step("2026-11-16 16:30", "in", "C2"), Step("2026-11-16 16:30", "assign", "C2", "bob"),
    Step("2026-11-16 16:30", "tag", "C2", "billing refund"),
    Step("2026-11-17 09:00", "in", "C7"), Step("2026-11-17 09:00", "assign", "C7", "alice"),
    Step("2026-11-17 09:10", "out", "C7", "alice"),
    Step("2026-11-17 09:45", "out", "C2", "bob"),
    Step("2026-11-17 10:00", "in", "C2"), Step("2026-11-17 10:00", "in", "C7"),
    Step("2026-11-17 10:30", "out", "C2", "bob"),
    Step("2026-11-17 14:00", "out", "C7", "alice"),
    Step("2026-11-17 15:00", "in", "C7"),
    Step("2026-11-17 15:30", "out", "C7", "alice"),
    Step("2026-11-17 16:00", "resolve", "C7", "alice"),
    Step("2026-11-18 20:00", "in", "C3"), Step("2026-11-18 20:00", "tag", "C3", "praise"),
    Step("2026-11-18 20:10", "out", "C3", "alice"),
    Step("2026-11-18 21:00", "resolve", "C3", "alice"),
    Step("2026-11-19 09:00", "in", "C6"), Step("2026-11-19 09:00", "assign", "C6", "carol"),
    Step("2026-11-19 09:05", "out", "C6", "carol"),
    Step("2026-11-19 10:00", "in", "C6"),
    Step("2026-11-19 12:00", "in", "C4"), Step("2026-11-19 12:00", "assign", "C4", "carol"),
    Step("2026-11-19 12:00", "tag", "C4", "refund"),
    Step("2026-11-19 13:00", "out", "C4", "carol"), Step("2026-11-19 13:00", "out", "C6", "carol"),
    Step("2026-11-19 14:00", "resolve", "C6", "carol"),
    Step("2026-11-20 12:00", "resolve", "C4", "carol"),
    Step("2026-11-21 10:00", "in", "C5"),
]
AFTER = "2026-11-23 09:00"
"""When the report is made: Monday morning after the week."""


def settings(url: str | None = None) -> Settings:
    """The fixture's configuration (the default test team and channels, Jakarta, the two policies)."""
    extra: dict[str, Any] = {"general": {"timezone": TZ}, "sla": SLA}
    if url is not None:
        extra["database"] = {"url": url}
    return make_settings(**extra)


def _inbound(step: Step, serial: int) -> Inbound:
    channel, kind = CONVERSATIONS[step.conv]
    incoming = step.action == "in"
    return Inbound(
        channel=channel, external_id=f"{step.conv}-{serial}", kind=Kind(kind),
        author=(Author(f"cust-{step.conv}", f"cust_{step.conv.lower()}") if incoming
                else Author(f"team-{step.arg}")),
        text=f"{step.conv} message {serial}", created_at=local(step.at), thread_key=step.conv,
        direction=Direction.IN if incoming else Direction.OUT, member=None if incoming else step.arg,
    )


def jsonl_lines() -> list[str]:
    """The fixture's messages as neutral JSON lines, for ``inbox import``."""
    lines = []
    for serial, step in enumerate(STEPS):
        if step.action not in ("in", "out"):
            continue
        event = _inbound(step, serial)
        obj: dict[str, Any] = {
            "channel": event.channel, "external_id": event.external_id, "kind": event.kind.value,
            "author": {"id": event.author.id, "handle": event.author.handle}, "text": event.text,
            "created_at": event.created_at.isoformat().replace("+00:00", "Z"), "thread_key": event.thread_key,
            "direction": event.direction.value,
        }
        if event.member:
            obj["member"] = event.member
        lines.append(json.dumps(obj))
    return lines


async def build(db: Database, clock: FakeClock) -> tuple[Settings, dict[str, int]]:
    """Play the fixture into ``db``; return the settings and the conversation ids by key."""
    conf = await seed(db, clock, settings())
    engine = SlaEngine(conf.sla, clock)
    ingestor = Ingestor(db, clock, reopen_window=conf.general.reopen_window, hooks=[engine.ingest_hook])
    actions = Actions(db, clock, hooks=[engine.action_hook])
    scheduler = SlaScheduler(db, clock, engine)
    ids: dict[str, int] = {}
    for serial, step in enumerate(STEPS):
        instant = local(step.at)
        if instant > clock.now():
            clock.set(instant)
        await scheduler.run_once()
        actor = Actor("member", step.arg or "system")
        if step.action in ("in", "out"):
            event = _inbound(step, serial)
            result = await ingestor.ingest(Batch(event.channel, [event]))
            ids.setdefault(step.conv, result.stored[0].conversation_id)
        elif step.action == "assign":
            await actions.assign(actor, ids[step.conv], step.arg)
        elif step.action == "tag":
            await actions.tag(actor, ids[step.conv], step.arg.split())
        elif step.action == "resolve":
            await actions.resolve(actor, ids[step.conv])
    clock.set(local(AFTER))
    await scheduler.run_once()
    return conf, ids
