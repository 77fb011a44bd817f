"""/retry: a lead sends a failed delivery out again."""

from __future__ import annotations

from sqlalchemy import select

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Outbound, Receipt
from inbox.models import Delivery
from inbox.outbox import Dispatcher
from inbox.ports import PermanentFailure
from tests.commands.conftest import NewConversation, Run, events_of


class Refusing:
    """A sender whose platform refuses for good."""

    async def send(self, outbound: Outbound) -> Receipt:
        raise PermanentFailure("bot was blocked by the user")


async def delivery(db: Database) -> Delivery:
    async with db.sessions() as session:
        return (await session.execute(select(Delivery))).scalar_one()


async def test_retry_a_failed_delivery(run: Run, db: Database, clock: FakeClock,
                                       new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    await run("carol", f"/reply {conv} hello")
    row = await delivery(db)
    out = await run("bob", f"/retry {row.id}")
    assert out.splitlines()[0] == f"Delivery #{row.id} is not failed (it is pending)"
    await Dispatcher(db, clock, {"support": Refusing()}, worker_id="w1").run_once()
    assert (await delivery(db)).status == "failed"
    assert await run("bob", f"/retry #{row.id}") == f"Delivery #{row.id} queued again."
    again = await delivery(db)
    assert (again.status, again.attempts) == ("pending", 0)
    (event,) = await events_of(db, "delivery.retried")
    assert event.actor == "member:bob" and event.conversation_id == conv
    assert (await run("bob", "/retry 77")).splitlines() == [
        "Delivery #77 does not exist", "Usage: /retry DELIVERY"]


async def test_retry_messages_in_indonesian(run: Run, new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    await run("carol", f"/reply {conv} hello")
    out = await run("alice", "/retry 1", language="id")
    assert out.splitlines()[0] == "Pengiriman #1 tidak gagal (statusnya menunggu)"
    assert (await run("alice", "/retry 8", language="id")).splitlines()[0] == "Pengiriman #8 tidak ada"
