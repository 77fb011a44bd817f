"""The roster: the active members as mentions need them, read through the driver on either backend."""

from __future__ import annotations

from inbox.db import Database
from inbox.models import Member
from inbox.notify.chats import Person, Roster


async def test_the_roster_holds_the_active_members_with_their_platform_ids(db: Database) -> None:
    async with db.transaction() as session:
        session.add_all([
            Member(name="zed", role="lead", platform_ids={"telegram": "42"}),
            Member(name="amy", role="agent", platform_ids={}),
            Member(name="old", role="admin", platform_ids={"telegram": "7"}, active=False),
        ])
    async with db.sessions() as session:
        roster = await Roster.load(session)
    assert list(roster.people.values()) == [
        Person("amy", "agent", {}), Person("zed", "lead", {"telegram": "42"})]
    assert roster.resolve(["leads", "assignee"], "amy") == ("zed", "amy")
