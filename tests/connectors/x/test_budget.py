"""X cost budget: reads and writes counted per month in the database, warnings, the stop, the restart."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlmodel import col

from connectors.x import XSource
from connectors.x.budget import UsageLedger, month_counts, period_of, usage_summary
from inbox.events import Outbound
from inbox.models import Channel
from inbox.registry import usage_summary_of
from tests.connectors.x.conftest import CHANNEL, MakeWorld, XWorld

BUDGET = {"monthly_budget": 1.0, "price_per_read": 0.05, "price_per_write": 0.25, "dms": False}


def mentions_from_new_people(world: XWorld, count: int, tag: str) -> None:
    for i in range(count):
        world.emu.post_mention(f"{tag}{i}", f"{tag} {i}")  # each read = 1 post + 1 user


async def set_budget(world: XWorld, budget: float) -> None:
    """Change the stored budget, as config sync does when the config file changed."""
    async with world.db.transaction() as session:
        query = select(Channel).where(col(Channel.name) == CHANNEL)
        channel = (await session.execute(query)).scalar_one()
        await session.execute(update(Channel).where(col(Channel.id) == channel.id)
                              .values(settings={**channel.settings, "monthly_budget": budget}))


async def summary(world: XWorld, now: datetime | None = None) -> dict[str, object]:
    async with world.db.sessions() as session:
        return await usage_summary(session, CHANNEL, now or world.clock.now())


async def test_budget_warns_once_stops_at_100_percent_and_resumes_next_month(make_world: MakeWorld) -> None:
    world = await make_world(**BUDGET)
    emu = world.emu
    await world.poll()  # nothing there yet: no reads

    mentions_from_new_people(world, 4, "a")
    assert await world.poll() == 4  # 8 reads = 0.40
    assert world.notices.sent == []
    mentions_from_new_people(world, 4, "b")
    assert await world.poll() == 4  # 16 reads = 0.80: warn
    assert world.notices.sent == [
        ("x.budget_warning", CHANNEL, {"spent": 0.8, "budget": 1.0, "percent": 80.0, "period": "2026-11"}),
    ]
    mentions_from_new_people(world, 1, "c")
    assert await world.poll() == 1  # 0.90: no second warning
    assert world.notices.kinds() == ["x.budget_warning"]
    mentions_from_new_people(world, 1, "d")
    assert await world.poll() == 1  # 1.00: what was read is still stored, then polling stops
    assert world.notices.kinds() == ["x.budget_warning", "x.budget_exhausted"]
    assert await summary(world) == {
        "period": "2026-11", "reads": 20, "writes": 0, "spent": 1.0, "budget": 1.0, "percent": 100.0,
    }
    assert emu.usage.reads == 20  # our count matches what X would bill

    waiting = emu.post_mention("e0", "nobody reads me this month")
    requests = len(emu.requests)
    for _ in range(3):
        world.clock.advance(3600)
        assert await world.poll() == 0
    assert len(emu.requests) == requests  # no call to X at all
    assert world.notices.kinds() == ["x.budget_warning", "x.budget_exhausted"]

    # Replies are not blocked by the budget, but they are counted.
    await world.sender.send(Outbound(1, CHANNEL, "reply", "Answering anyway", reply_to=waiting.id))
    assert (await summary(world))["writes"] == 1
    assert (await summary(world))["spent"] == 1.25

    # A restart does not repeat the notices: they are marked in the database.
    again = world.rebuild()
    assert isinstance(again.source, XSource)
    assert (await again.source.fetch(await world.cursor())).events == []
    assert world.notices.kinds() == ["x.budget_warning", "x.budget_exhausted"]

    world.clock.set(datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC))  # the month turns
    assert await world.poll() == 1
    assert (await summary(world))["reads"] == 2
    november = await summary(world, datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert (november["reads"], november["writes"]) == (20, 1)


async def test_raising_the_budget_resumes_at_the_next_poll(make_world: MakeWorld) -> None:
    world = await make_world(**{**BUDGET, "monthly_budget": 0.2})
    await world.poll()
    mentions_from_new_people(world, 2, "a")
    assert await world.poll() == 2  # 0.20 of 0.20
    assert world.notices.kinds() == ["x.budget_warning", "x.budget_exhausted"]
    mentions_from_new_people(world, 1, "b")
    assert await world.poll() == 0

    await set_budget(world, 0.5)
    assert await world.poll() == 1
    assert (await summary(world))["percent"] == 60.0  # 0.30 of 0.50: below this budget's 80 %
    assert world.notices.kinds() == ["x.budget_warning", "x.budget_exhausted"]
    mentions_from_new_people(world, 2, "c")
    assert await world.poll() == 2  # 0.50 of 0.50: the raised budget is announced when used up too
    assert world.notices.kinds() == ["x.budget_warning", "x.budget_exhausted"] * 2


async def test_a_sweep_stops_when_the_budget_runs_out_and_resumes_later(make_world: MakeWorld) -> None:
    world = await make_world(**{**BUDGET, "monthly_budget": 9.0, "price_per_read": 0.01})
    await world.poll()
    for i in range(250):
        world.emu.post_mention(f"p{i % 10}", f"burst {i}")
    assert await world.poll() == 250  # pages of 100 posts + 10 users: 1.10, 1.10, 0.60
    assert (await summary(world))["spent"] == 2.8

    await set_budget(world, 2.5)  # lowered below what is spent: no call at all
    requests = len(world.emu.requests)
    for i in range(250):
        world.emu.post_mention(f"q{i % 10}", f"second burst {i}")
    assert await world.poll() == 0
    assert len(world.emu.requests) == requests

    # The check runs before each page, so a sweep may pass the budget by at most one page.
    await set_budget(world, 4.0)
    assert await world.poll() == 200  # 3.90 after page one, 5.00 after page two: stop
    assert world.notices.kinds() == ["x.budget_warning", "x.budget_exhausted"] * 2
    await set_budget(world, 10.0)
    assert await world.poll() == 50  # the rest of the interrupted sweep, nothing twice
    assert await world.messages() == 500
    assert await summary(world) == {
        "period": "2026-11", "reads": 560, "writes": 0, "spent": 5.6, "budget": 10.0, "percent": 56.0,
    }


async def test_usage_is_counted_without_a_budget_and_shown_through_the_registry(world: XWorld) -> None:
    world.emu.post_mention("alice", "hello")
    world.emu.send_dm("bob", "hi")
    await world.poll()
    counts = await month_counts(world.db, CHANNEL, world.clock.now())
    assert counts == {"reads.posts": 1, "reads.users": 2, "reads.dm_events": 1}
    show = usage_summary_of("x")
    assert show is not None
    async with world.db.sessions() as session:
        shown = await show(session, CHANNEL, world.clock.now())
        assert await show(session, "nope", world.clock.now()) == {}
    assert shown == {"period": "2026-11", "reads": 4, "writes": 0, "spent": 0.04, "budget": None,
                     "percent": None}


async def test_a_failing_notice_sink_is_retried_at_the_next_check(world: XWorld) -> None:
    class Flaky:
        calls = 0

        async def notice(self, kind: str, *, channel: str | None = None, **data: object) -> None:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("team chat is down")

    await set_budget(world, 0.01)
    ledger = UsageLedger(world.db, CHANNEL, world.clock, Flaky())
    await ledger.add({"reads.posts": 1})  # 0.01 of 0.01: warning fails, exhausted goes out
    assert Flaky.calls == 2
    assert not await ledger.polling_allowed(refresh=True)  # the warning is tried again
    assert Flaky.calls == 3
    assert not await ledger.polling_allowed(refresh=True)
    assert Flaky.calls == 3
    assert period_of(datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == "2026-12"
