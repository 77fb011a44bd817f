"""A notice's view is built only when it is sent alone or listed in the digest; the rest are counted."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from inbox.notify.budget import DIGEST_LISTED, Outgoing, post
from inbox.notify.chats import Roster
from inbox.views import DigestItem, HealthNotice, View
from tests.notify.conftest import OPS, Rig, view_of


def counted(built: list[int], number: int, kind: str) -> Outgoing:
    """A notice about conversation ``number`` that records when its view is built."""

    async def make() -> tuple[View, DigestItem]:
        built.append(number)
        view = HealthNotice(lang="en", channel=f"c{number}", healthy=False, detail=None)
        return view, DigestItem(kind=kind, conversation_id=number, detail=f"line {number}")

    return Outgoing("sla", make, kind, urgent=kind == "sla", conversation_id=number,
                    mentions=(f"m{number % 3}",))


async def test_folded_notices_build_their_view_only_when_the_digest_lists_them(rig: Rig) -> None:
    [chat] = [c for c in rig.notifier.chats if c.destination == OPS]
    ids = await rig.customers_write(110)
    rig.clock.advance(timedelta(minutes=5))  # a window of its own: their cards used the first one's budget
    now = rig.clock.now()
    built: list[int] = []
    # Urgent ones go alone first (up to the budget), then the rest fold: the sla items before the new
    # ones in the digest's list, which holds DIGEST_LISTED lines.
    sla, new, later = ids[:60], ids[60:90], ids[90:]
    notices = [counted(built, n, "new") for n in new] + [counted(built, n, "sla") for n in sla]
    async with rig.db.transaction() as session:
        roster = await Roster.load(session)
        posted = await post(session, chat, notices, now=now, tz=ZoneInfo("UTC"), roster=roster)
    alone = chat.limit(True)
    assert len(posted.delivery_ids) == alone and posted.folded == 90 - alone
    listed = sla[alone:alone + DIGEST_LISTED]  # the first folded sla notices
    assert built == [*sla[:alone], *listed]
    [digest] = [d for d in await rig.deliveries(OPS, "digest") if d.created_at >= now]
    view = view_of(digest)
    assert [i.detail for i in view.items] == [f"line {n}" for n in listed]  # type: ignore[attr-defined]
    assert dict(view.counts) == {"sla": 60 - alone, "new": 30}  # type: ignore[attr-defined]
    assert await rig.covered(digest) == [*sla[alone:], *new]
    assert "conversation_ids" not in digest.payload  # in the digest.folded events, not rewritten per fold
    assert set(view.mentions) == {"m0", "m1", "m2"}  # type: ignore[attr-defined]

    # A second fold into the same window: the digest's list is full of sla lines, so nothing is built.
    built.clear()
    async with rig.db.transaction() as session:
        await post(session, chat, [counted(built, n, "sla") for n in later], now=now,
                   tz=ZoneInfo("UTC"), roster=roster)
    assert built == []
    [digest] = [d for d in await rig.deliveries(OPS, "digest") if d.created_at >= now]
    assert dict(view_of(digest).counts)["sla"] == 80 - alone  # type: ignore[attr-defined]
