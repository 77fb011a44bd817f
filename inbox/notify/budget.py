"""The send budget of a team chat: what goes out alone, what is folded into the window's digest.

Two layers keep a chat readable and under its platform's rate limit:

1. **Folding, when a notice is queued** (``post``). Windows are aligned to the epoch (for one minute:
   09:00:00-09:01:00). Per destination and window, at most ``budget - 1`` rows are queued as single
   messages (``budget - 1 - reserve`` for new-conversation cards, the rest only for urgent notices);
   everything past that is folded into ONE digest row with dedupe key ``digest:<dest>:<window start>``,
   due at the end of the window, whose payload holds the counts and the first lines. Which
   conversations a digest covers is in the ``digest.folded`` audit events, one per fold with the ids
   it folded (``digest_conversation_ids``): a busy window covers thousands, and keeping them in the
   row would rewrite the whole list at every fold. The digest
   sends as the first message of the next window, which is why one message of each window is kept
   for it. The counts come from the database, so several workers share one budget: on PostgreSQL a
   transaction-scoped advisory lock per destination serialises the decision, SQLite's
   ``BEGIN IMMEDIATE`` already does.
2. **Pacing, when a row is sent** (``PacedSender``). Folding bounds what is queued per aligned
   window, but a platform counts any sliding window, and rows can bunch up (a retried row, a
   dispatcher that was down). The paced sender looks at the destination's sends in the last window
   and, when the budget is used, raises RateLimited so the dispatcher waits exactly long enough. It
   also keeps to the pace the team sender declares for one chat (``inbox.ports.Pace``: Telegram about
   one message a second after a short burst), so a window's budget does not go out all at once.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

from sqlalchemy import Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from inbox.audit import record
from inbox.clock import Clock, isoformat_utc
from inbox.db import Database
from inbox.events import Actor, Outbound, Receipt
from inbox.i18n import t
from inbox.models import Delivery, DeliveryStatus, Event
from inbox.notify.chats import Roster, TeamChat
from inbox.outbox import enqueue
from inbox.ports import Pace, Paced, Sender
from inbox.render_text import render
from inbox.view_codec import ViewCodecError, dump, load
from inbox.views import Button, Digest, DigestItem, View

log = logging.getLogger(__name__)

DIGEST: Final = "digest"
DIGEST_LISTED: Final = 10  # items a digest lists; the rest are counted
# Item kinds in the order a digest lists and counts them: what needs someone first.
DIGEST_KINDS: Final = ("sla", "failed", "notice", "reopened", "new")
_LOCK_NAMESPACE: Final = 0x5A2  # ingest uses 0x5A1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ACTOR: Final = Actor.system("notifier")
_MAX_DIGEST_HOPS: Final = 5
_FOLDED: Final = "digest.folded"
_DELIVERIES: Table = Delivery.__table__  # type: ignore[attr-defined]


Make = Callable[[], Awaitable[tuple[View, DigestItem]]]
"""Builds a notice's view and its digest line (it may read what they show)."""


@dataclass(eq=False)
class Outgoing:
    """One notice for one team chat, before the budget decides whether it goes alone or in the digest.

    ``make`` builds its view and its digest line. It runs only when the notice is queued alone or listed
    in the digest: in a burst most notices are only counted there, and building a view with its card
    (and reading what the card shows) costs more than deciding where the notice goes.
    """

    purpose: str  # card, sla, failed, health, budget
    make: Make
    kind: str  # the digest item's kind (what the digest counts it as)
    urgent: bool = False  # may use the priority reserve; listed first in a digest
    conversation_id: int | None = None
    mentions: tuple[str, ...] = ()
    dedupe_key: str | None = None
    _built: tuple[View, DigestItem] | None = field(default=None, init=False, repr=False)

    @classmethod
    def of(cls, purpose: str, view: View, item: DigestItem, *, urgent: bool = False,
           conversation_id: int | None = None, mentions: tuple[str, ...] = (),
           dedupe_key: str | None = None) -> Outgoing:
        """A notice whose view and digest line are already built."""

        async def made() -> tuple[View, DigestItem]:
            return view, item

        return cls(purpose, made, item.kind, urgent, conversation_id, mentions, dedupe_key)

    async def built(self) -> tuple[View, DigestItem]:
        """The view and the digest line (made once)."""
        if self._built is None:
            self._built = await self.make()
        return self._built


@dataclass
class Posted:
    """What ``post`` did for one chat: rows queued alone, and the digest row the rest went into."""

    delivery_ids: list[int] = field(default_factory=list)
    digest_id: int | None = None
    folded: int = 0


def window_of(now: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """The aligned window holding ``now``: [start, end)."""
    start = _EPOCH + window * ((now - _EPOCH) // window)
    return start, start + window


def payload(chat: TeamChat, view: View, mentions: Sequence[str], roster: Roster) -> dict[str, Any]:
    """The outbox payload of a notice: the view (for consoles that render natively) and its plain text."""
    return {
        "view": dump(view), "text": render(view), "chat_id": chat.chat_id,
        "mentions": roster.platform_ids(mentions, chat.platform),
    }


async def lock_destination(session: AsyncSession, destination: str) -> None:
    """Serialise budget decisions for one destination until the transaction ends (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                              {"ns": _LOCK_NAMESPACE, "key": zlib.crc32(destination.encode()) & 0x7FFFFFFF})


async def queued_in_window(session: AsyncSession, destination: str, start: datetime) -> int:
    """Single messages (not digests) queued to ``destination`` since ``start``."""
    found = await session.scalar(
        select(func.count()).select_from(Delivery).where(
            col(Delivery.destination) == destination, col(Delivery.created_at) >= start,
            col(Delivery.purpose) != DIGEST,
        )
    )
    return int(found or 0)


async def post(
    session: AsyncSession, chat: TeamChat, notices: Sequence[Outgoing], *, now: datetime, tz: tzinfo,
    roster: Roster,
) -> Posted:
    """Queue ``notices`` to ``chat`` within its budget, in the caller's transaction; fold the excess."""
    done = Posted()
    if not notices:
        return done
    await lock_destination(session, chat.destination)
    start, _end = window_of(now, chat.window)
    used = await queued_in_window(session, chat.destination, start)
    folded: list[Outgoing] = []
    # Urgent first, so a spike of new conversations cannot push an SLA breach into the digest.
    for notice in sorted(notices, key=lambda n: not n.urgent):
        if used >= chat.limit(notice.urgent):
            folded.append(notice)
            continue
        view, _item = await notice.built()
        delivery_id = await enqueue(
            session, destination=chat.destination, purpose=notice.purpose,
            payload=payload(chat, view, notice.mentions, roster), now=now,
            conversation_id=notice.conversation_id, dedupe_key=notice.dedupe_key,
        )
        if delivery_id is not None:  # None: this very notice was queued before (same dedupe key)
            done.delivery_ids.append(delivery_id)
            used += 1
    if folded:
        done.digest_id = await fold(session, chat, folded, now=now, tz=tz, roster=roster)
        done.folded = len(folded)
    return done


async def fold(
    session: AsyncSession, chat: TeamChat, notices: Sequence[Outgoing], *, now: datetime, tz: tzinfo,
    roster: Roster,
) -> int:
    """Add ``notices`` to the chat's pending digest for this window (made if needed); return its id.

    A digest that is already being sent (claimed by a dispatcher, so locked or no longer pending)
    cannot change: the notices then go into the next window's digest instead.
    """
    start, end = window_of(now, chat.window)
    for _ in range(_MAX_DIGEST_HOPS):
        key = f"{DIGEST}:{chat.destination}:{isoformat_utc(start)}"
        digest_id = await _merge_into(session, chat, key, start, end, notices, tz=tz, roster=roster, now=now)
        if digest_id is not None:
            await _folded(session, chat, digest_id, notices, now)
            return digest_id
        start, end = end, end + chat.window
    # Several windows ahead all taken means clocks disagree wildly; still, nothing is dropped.
    log.error("team chat %s: no digest window free; queueing a digest without a window key", chat.name)
    view = await _digest_view(chat, None, notices, start, end, tz)
    fallback = await enqueue(session, destination=chat.destination, purpose=DIGEST,
                             payload=payload(chat, view, view.mentions, roster), now=now, not_before=end)
    assert fallback is not None  # no dedupe key, so always inserted
    await _folded(session, chat, fallback, notices, now)
    return fallback


async def _folded(
    session: AsyncSession, chat: TeamChat, digest_id: int, notices: Sequence[Outgoing], now: datetime
) -> None:
    """The audit event of one fold: which conversations went into which digest (what it covers)."""
    await record(session, _ACTOR, _FOLDED, now, None, destination=chat.destination, delivery_id=digest_id,
                 conversation_ids=_conversation_ids(notices), count=len(notices))


async def digest_conversation_ids(session: AsyncSession, digest_id: int) -> list[int]:
    """Every conversation the digest row ``digest_id`` covers, in the order they were folded into it."""
    data = Event.__table__.c.data  # type: ignore[attr-defined]
    rows = await session.execute(
        select(data).where(col(Event.type) == _FOLDED, data["delivery_id"].as_integer() == digest_id)
        .order_by(col(Event.id)))
    ids: dict[int, None] = {}
    for (folded,) in rows:
        ids.update(dict.fromkeys(map(int, folded.get("conversation_ids", []))))
    return list(ids)


async def _merge_into(
    session: AsyncSession, chat: TeamChat, key: str, start: datetime, end: datetime,
    notices: Sequence[Outgoing], *, tz: tzinfo, roster: Roster, now: datetime,
) -> int | None:
    """Merge into the digest row ``key`` (creating it); None when that row can no longer change."""
    # Core, not the ORM: the row is read and rewritten here only, and not kept in the session.
    query = select(_DELIVERIES.c.id, _DELIVERIES.c.status, _DELIVERIES.c.payload).where(
        _DELIVERIES.c.dedupe_key == key)
    if session.get_bind().dialect.name == "postgresql":
        # Never wait for a dispatcher that is claiming or recording this row while we hold the
        # destination lock: it may itself be waiting for that lock (on_failed), which would deadlock.
        query = query.with_for_update(skip_locked=True)
    row = (await session.execute(query)).first()
    if row is None:
        view = await _digest_view(chat, None, notices, start, end, tz)
        # None here: the row exists but is locked by a dispatcher, so it is being sent.
        return await enqueue(session, destination=chat.destination, purpose=DIGEST,
                             payload=payload(chat, view, view.mentions, roster), now=now, dedupe_key=key,
                             not_before=end)
    digest_id, status, stored = row
    if status != DeliveryStatus.PENDING.value:
        return None
    view = await _digest_view(chat, stored, notices, start, end, tz)
    await session.execute(update(_DELIVERIES).where(_DELIVERIES.c.id == digest_id)
                          .values(payload=payload(chat, view, view.mentions, roster)))
    return int(digest_id)


def _conversation_ids(notices: Sequence[Outgoing]) -> list[int]:
    return list(dict.fromkeys(n.conversation_id for n in notices if n.conversation_id is not None))


def _previous(stored: dict[str, Any] | None) -> Digest | None:
    if not stored:
        return None
    try:
        view = load(stored["view"])
    except (KeyError, ViewCodecError):
        log.exception("a stored digest cannot be read; starting it again (its conversations stay in /queue)")
        return None
    return view if isinstance(view, Digest) else None


async def _digest_view(
    chat: TeamChat, stored: dict[str, Any] | None, notices: Sequence[Outgoing], start: datetime,
    end: datetime, tz: tzinfo,
) -> Digest:
    """The digest after adding ``notices`` to what ``stored`` held."""
    before = _previous(stored)
    counts = dict(before.counts) if before else {}
    mentions = list(before.mentions) if before else []
    for notice in notices:
        counts[notice.kind] = counts.get(notice.kind, 0) + 1
        mentions += [m for m in notice.mentions if m not in mentions]
    rank = {kind: index for index, kind in enumerate(DIGEST_KINDS)}
    # Listed: the first DIGEST_LISTED by kind, then arrival (a stable sort); only those notices' lines are
    # built, the others are only counted.
    items: list[DigestItem | Outgoing] = [*(before.items if before else ()), *notices]
    chosen = sorted(items, key=lambda i: rank.get(i.kind, len(rank)))[:DIGEST_LISTED]
    listed = [(await i.built())[1] if isinstance(i, Outgoing) else i for i in chosen]
    ordered_counts = sorted(counts.items(), key=lambda kv: rank.get(kv[0], len(rank)))
    view = Digest(
        lang=chat.lang, start=start.astimezone(tz), end=end.astimezone(tz), counts=tuple(ordered_counts),
        items=tuple(listed), more=sum(counts.values()) - len(listed), mentions=tuple(mentions),
        buttons=(Button(t(chat.lang, "button.queue"), "/queue"),),
    )
    return view


class PacedSender:
    """Sends through ``inner`` only while fewer than ``budget`` messages went to the destination in the
    last ``window`` and the chat's ``pace`` allows one more; otherwise raises Paced (a RateLimited) with
    the wait until both hold again.

    The budget alone would let it go out as a burst when several notices are due at once, but a
    platform also limits each chat's pace (Telegram: about one message a second, with a short burst):
    the pace spaces the sends. It reads the sends from the outbox rows (``sent_at``), so it holds no
    state and a restarted process keeps pacing. Two processes sending to one chat at the very same
    moment can still pass together: the platform's own 429 then makes the dispatcher wait, and nothing
    is lost.
    """

    def __init__(self, inner: Sender, db: Database, clock: Clock, destination: str, budget: int,
                 window: timedelta, pace: Pace | None = None) -> None:
        self.inner = inner
        self.db = db
        self.clock = clock
        self.destination = destination
        self.budget = budget
        self.window = window
        self.pace = pace or Pace()

    async def send(self, outbound: Outbound) -> Receipt:
        """Send if the budget and the pace allow, else ask the dispatcher to wait."""
        wait = await self._wait(self.clock.now())
        if wait is not None:
            seconds, why = wait
            raise Paced(max(seconds, 0.001), why)
        return await self.inner.send(outbound)

    async def _wait(self, now: datetime) -> tuple[float, str] | None:
        """Seconds to wait before the next send and why, or None when it may go now."""
        span, burst = self.pace.span, max(1, self.pace.burst)
        async with self.db.transaction() as session:
            recent = [at for at in (await session.execute(  # newest first
                select(col(Delivery.sent_at)).where(
                    col(Delivery.destination) == self.destination,
                    col(Delivery.sent_at) > now - max(self.window, span),
                ).order_by(col(Delivery.sent_at).desc()).limit(max(self.budget, burst))
            )).scalars() if at is not None]
        waits: list[tuple[float, str]] = []
        in_window = [at for at in recent if at > now - self.window]
        if len(in_window) >= self.budget:  # until the budget-th newest leaves the window
            waits.append(((in_window[self.budget - 1] + self.window - now).total_seconds(),
                          f"team chat budget of {self.budget} per {self.window} used"))
        in_span = [at for at in recent if at > now - span]
        if span and len(in_span) >= burst:
            waits.append(((in_span[burst - 1] + span - now).total_seconds(),
                          f"team chat paced to {burst} message(s) per {span.total_seconds():g}s"))
        return max(waits) if waits else None
