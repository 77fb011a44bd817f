"""The SLA engine's ingest hook on whole batches: the same clocks and timers as message by message, in a
few statements per batch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, select
from sqlmodel import col

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Author, Batch, Inbound
from inbox.models import Channel, Contact, Conversation, Direction, Event, Kind, Timer, TimerStatus
from tests.sla.harness import Rig, make_rig, policy

POLICY = policy(first_response="1h", next_response="30m", resolution="1d")


def _traffic(rig: Rig, channel: str, n: int) -> list[Inbound]:
    """DMs from ``n // 2`` customers, every other one answered by the team and then written to again."""
    events = []
    for i in range(n // 2):
        author = Author(f"u{i}", None, None)
        at = rig.clock.now() + timedelta(minutes=i)
        events.append(Inbound(channel, f"{channel}{i}", Kind.DM, author, "help", at))
        if i % 2:
            reply_at, again_at = at + timedelta(minutes=5), at + timedelta(minutes=9)
            events += [
                Inbound(channel, f"{channel}{i}r", Kind.DM, author, "on it", reply_at,
                        direction=Direction.OUT, member="carol"),
                Inbound(channel, f"{channel}{i}f", Kind.DM, author, "thanks", again_at),
            ]
    return events


async def _state(db: Database, channel: str) -> dict[str, Any]:
    """Per customer of the channel: the SLA columns, the clocks, the pending timers and the policy events."""
    async with db.sessions() as s:
        convs = (await s.execute(
            select(Conversation, col(Contact.external_id)).join(Contact).join(Channel)
            .where(col(Channel.name) == channel)
        )).all()
        pending = select(Timer).where(col(Timer.status) == TimerStatus.PENDING.value)
        timers = list((await s.execute(pending)).scalars())
        policies = list((await s.execute(select(Event).where(col(Event.type) == "sla.policy"))).scalars())
    due: dict[int | None, list[tuple[str, Any]]] = {}
    for t in timers:
        due.setdefault(t.conversation_id, []).append((t.kind, t.due_at))
    chosen = {e.conversation_id: e.data["policy"] for e in policies}
    return {
        customer: (c.sla_policy, c.first_response_due_at, c.next_response_due_at, c.resolution_due_at,
                   c.sla_state, sorted(due.get(c.id, [])), chosen.get(c.id))
        for c, customer in convs
    }


async def test_a_batch_gets_the_clocks_and_timers_of_its_messages_one_by_one(
    db: Database, clock: FakeClock
) -> None:
    rig = await make_rig(db, clock, POLICY)
    await rig.ingestor.ingest(Batch("support", _traffic(rig, "support", 40)))
    for ev in _traffic(rig, "social", 40):
        await rig.ingestor.ingest(Batch("social", [ev]))
    batched, alone = await _state(db, "support"), await _state(db, "social")
    assert len(batched) == 20 and all(state[0] == "default" for state in batched.values())
    assert batched == alone


async def test_a_batch_with_the_sla_hook_costs_a_few_statements(db: Database, clock: FakeClock) -> None:
    rig = await make_rig(db, clock, POLICY)
    await rig.ingestor.ingest(Batch("support", _traffic(rig, "support", 40)))
    clock.advance(60)
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    counts = []
    for channel, n in (("social", 20), ("support", 200)):  # new conversations, then old and new ones
        seen.clear()
        event.listen(db.engine.sync_engine, "after_cursor_execute", count)
        try:
            await rig.ingestor.ingest(Batch(channel, _traffic(rig, channel, n)))
        finally:
            event.remove(db.engine.sync_engine, "after_cursor_execute", count)
        counts.append(len(seen))
    assert max(counts) <= 22
