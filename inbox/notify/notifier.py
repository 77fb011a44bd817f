"""The notifier: what the team chats hear without asking, always through the outbox.

- a card for each new conversation, and for each one a customer reopened (ingest hook);
- SLA warnings, breaches and ladder steps with the right people mentioned (the SLA scheduler's
  ``notify`` callback);
- deliveries that failed for good, with a /retry button (the Dispatcher's ``on_failed`` hook);
- connector health and budget notices (``NoticeSink``; the Poller reports health changes).

Every notice is queued in the transaction of what caused it, per team chat in that chat's language,
within the chat's send budget (``inbox.notify.budget``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from inbox.audit import batched, record
from inbox.clock import Clock, ensure_utc
from inbox.db import Database
from inbox.events import Actor
from inbox.i18n import CATALOGUES, DEFAULT_LANGUAGE, t
from inbox.ingest import IngestHook, IngestResult
from inbox.models import Conversation, Delivery, Direction, Member
from inbox.notify.budget import Outgoing, PacedSender, Posted, post
from inbox.notify.chats import Roster, TeamChat, is_team_destination, team_chats
from inbox.notify.facts import BatchFacts, ConversationFacts, Heard, card, digest_item, load_facts
from inbox.ports import Sender, pace_of
from inbox.render_text import sla_sentence
from inbox.settings import Settings
from inbox.sla.rows import AnyConversation
from inbox.views import (
    BudgetNotice,
    Button,
    ConversationNotice,
    DigestItem,
    FailedDeliveryNotice,
    HealthNotice,
    SlaNotice,
    View,
)

log = logging.getLogger(__name__)

SLA_EVENTS: Final = {"sla.warning": "warning", "sla.breached": "breached", "sla.escalation": "escalation"}
HEALTH_ERROR: Final = "health.error"
HEALTH_OK: Final = "health.ok"
_FAILED: Final = "failed"


class Notifier:
    """Turns what happens into team notices; implements ``NoticeSink``.

    Hooks: ``ingest_hook`` (Ingestor), ``sla_notify`` (SlaScheduler ``notify``), ``on_failed``
    (Dispatcher), ``notice`` / ``notice_in`` (connectors, Poller). ``senders`` gives the Dispatcher
    a paced Sender per team chat.
    """

    def __init__(self, db: Database, clock: Clock, settings: Settings,
                 chats: Sequence[TeamChat] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.chats = sorted(chats if chats is not None else team_chats(settings), key=lambda c: c.destination)
        self.tz = ZoneInfo(settings.general.timezone)

    # --- wiring -----------------------------------------------------------------------------------

    def senders(self, channel_senders: Mapping[str, Sender]) -> dict[str, Sender]:
        """``team:<name>`` -> the hosting channel's team Sender (``Connector.team_sender``), paced to
        the chat's budget and to the sender's ``pace``; ``channel_senders`` maps channel names
        to those team senders.

        A team chat whose channel has no Sender in this process is left out (the Dispatcher then
        retries its rows until a process that has one sends them).
        """
        out: dict[str, Sender] = {}
        for chat in self.chats:
            inner = channel_senders.get(chat.channel)
            if inner is None:
                log.warning("team chat %s: channel %s has no sender here", chat.name, chat.channel)
                continue
            out[chat.destination] = PacedSender(inner, self.db, self.clock, chat.destination, chat.budget,
                                                chat.window, pace_of(inner))
        return out

    # --- new and reopened conversations -------------------------------------------------------

    async def ingest_hook(self, session: AsyncSession, result: IngestResult) -> None:
        """Queue a card per conversation that a customer started or reopened in this batch.

        Conversations started by our own side (an outbound message or a note ingested first) get no
        card: the team made them.
        """
        from_customers = {m.conversation_id for m in result.stored if m.direction is Direction.IN}
        new = [c for c in dict.fromkeys(result.new_conversations) if c in from_customers]
        reopened = [c for c in dict.fromkeys(result.reopened) if c in from_customers and c not in new]
        chats = [c for c in self.chats if "card" in c.hears]
        if not (new or reopened) or not chats:
            return
        facts = await load_facts(session, [*new, *reopened])
        now = self.clock.now()
        roster = await Roster.load(session)
        wanted = [(c, "new") for c in new if c in facts] + [(c, "reopened") for c in reopened if c in facts]
        async with batched(session):  # the batch's audit events (queued, folded) in one statement
            for chat in chats:
                notices = [self._conversation_notice(chat, facts[c], event, now) for c, event in wanted
                           if chat.wants("card", facts[c].channel)]
                await self._post(session, chat, notices, now, roster)

    def _conversation_notice(self, chat: TeamChat, facts: ConversationFacts, event: str,
                             now: datetime) -> Outgoing:
        # The assignee of a reopened conversation is the one the customer is waiting for.
        mentions = (facts.assignee,) if event == "reopened" and facts.assignee else ()
        view = ConversationNotice(lang=chat.lang, event=event, card=card(facts, chat.lang, self.tz, now),
                                  mentions=mentions)
        return Outgoing.of(
            "card", view, digest_item(facts, event), urgent=facts.urgent,
            conversation_id=facts.id, mentions=mentions,
            dedupe_key=f"card:{chat.destination}:{facts.id}" if event == "new" else None,
        )

    # --- SLA ----------------------------------------------------------------------------------

    async def sla_notify(self, session: AsyncSession, kind: str, conversation: AnyConversation,
                         data: dict[str, Any]) -> None:
        """The SLA scheduler's ``notify``: announce a warning, breach or ladder step with mentions.

        Who is mentioned: a warning pings the assignee; a breach pings the assignee, or the leads
        when nobody is assigned; a ladder step pings whom the policy's ``notify`` names (assignee,
        leads, admins, team or member names).
        """
        await self._announce_sla(session, [(kind, conversation, data)], fresh=True)

    async def sla_notify_many(self, session: AsyncSession,
                              notes: Sequence[tuple[str, AnyConversation, dict[str, Any]]]) -> None:
        """``sla_notify`` for a batch of ``(kind, conversation, data)`` at once (the scheduler fires in
        batches): the facts and the members are read once, and each team chat gets one ``post``."""
        await self._announce_sla(session, notes, fresh=False)

    async def _announce_sla(
        self, session: AsyncSession, notes: Sequence[tuple[str, AnyConversation, dict[str, Any]]], *,
        fresh: bool,
    ) -> None:
        wanted: list[tuple[str, AnyConversation, dict[str, Any]]] = []
        for kind, conversation, data in notes:
            event = SLA_EVENTS.get(kind)
            if event is None:
                log.warning("notifier: unknown SLA notification kind %r; ignored", kind)
                continue
            wanted.append((event, conversation, data))
        if not wanted or not any("sla" in c.hears for c in self.chats):
            return
        # ``fresh``: the conversations' columns come from the database, as a caller may hold an old copy;
        # the scheduler's batch holds them locked and up to date, so the objects are read as they are.
        # The full facts (contact, excerpt, tags) are read only for the notices that are built.
        convs = [conv for _, conv, _ in wanted]
        facts = (BatchFacts.of(await load_facts(session, [c.id for c in convs if c.id is not None])) if fresh
                 else await BatchFacts.read(session, convs))
        # Per batch, not per notice: which chats hear a channel, and whom a warning or breach mentions
        # (those depend on the assignee only; a ladder step's words are resolved each time, as named).
        hears: dict[str, tuple[bool, ...]] = {}
        for h in facts.heard.values():
            if h.channel not in hears:
                hears[h.channel] = tuple(c.wants("sla", h.channel) for c in self.chats)
        heard: list[tuple[str, Heard, dict[str, Any]]] = []
        for event, conv, data in wanted:
            found = facts.heard.get(conv.id) if conv.id is not None else None
            if found is not None and any(hears[found.channel]):
                heard.append((event, found, data))
        if not heard:
            return
        roster = await Roster.load(session)
        now = self.clock.now()
        mentioned: dict[tuple[str, str | None], tuple[str, ...]] = {}
        said: list[tuple[str, Heard, dict[str, Any], tuple[str, ...]]] = []
        for event, h, data in heard:
            mentions = mentioned.get((event, h.assignee)) if event != "escalation" else None
            if mentions is None:
                mentions = _sla_mentions(roster, event, h.assignee, data)
                if event != "escalation":
                    mentioned[(event, h.assignee)] = mentions
            said.append((event, h, data, mentions))
        for index, chat in enumerate(self.chats):
            notices = [self._sla_notice(chat, event, h, data, mentions, now, facts)
                       for event, h, data, mentions in said if hears[h.channel][index]]
            await self._post(session, chat, notices, now, roster)

    def _sla_notice(self, chat: TeamChat, event: str, heard: Heard, data: dict[str, Any],
                    mentions: tuple[str, ...], now: datetime, facts: BatchFacts) -> Outgoing:
        # Built only if it goes alone or is listed in the digest: a burst's notices are mostly counted
        # (a partial, not a closure: a closure's cells cost more than the notice's own object).
        make = partial(self._make_sla_view, chat, event, heard, data, mentions, now, facts)
        return Outgoing("sla", make, "sla", urgent=True, conversation_id=heard.id, mentions=mentions)

    async def _make_sla_view(self, chat: TeamChat, event: str, heard: Heard, data: dict[str, Any],
                             mentions: tuple[str, ...], now: datetime,
                             facts: BatchFacts) -> tuple[View, DigestItem]:
        return self._sla_view(chat, event, await facts.full(heard.id), data, mentions, now)

    def _sla_view(self, chat: TeamChat, event: str, facts: ConversationFacts, data: dict[str, Any],
                  mentions: tuple[str, ...], now: datetime) -> tuple[SlaNotice, DigestItem]:
        due = _instant(data.get("due_at"))
        raised = data.get("priority") if isinstance(data.get("priority"), dict) else None
        view = SlaNotice(
            lang=chat.lang, event=event, card=card(facts, chat.lang, self.tz, now),
            target=str(data.get("target", "")), due_at=None if due is None else due.astimezone(self.tz),
            remaining=None if due is None else due - now,
            step=int(data["step"]) if data.get("step") is not None else None,
            urgent=bool(data.get("urgent")),
            priority_from=str(raised["from"]) if raised else None,
            priority_to=str(raised["to"]) if raised else None,
            escalation_level=int(data.get("escalation_level") or facts.escalation_level),
            late=bool(data.get("late")), deferred=bool(data.get("deferred")), mentions=mentions,
        )
        item = DigestItem(kind="sla", conversation_id=facts.id, channel=facts.channel,
                          contact=facts.contact, excerpt=facts.excerpt, detail=sla_sentence(view))
        return view, item

    on_sla = sla_notify  # the name docs/sla-engine.md uses

    # --- failed deliveries ------------------------------------------------------------------------

    async def on_failed(self, session: AsyncSession, delivery: Delivery) -> None:
        """The Dispatcher's ``on_failed``: tell the team, with a /retry button, in the same transaction.

        A failure notice that fails is not announced again, and a team chat that cannot be reached
        is told about in the other team chats only, so two broken chats cannot ping-pong.
        """
        if delivery.purpose == _FAILED or delivery.id is None:
            log.error("notifier: failure notice #%s could not be delivered either", delivery.id)
            return
        team = is_team_destination(delivery.destination)
        chats = [c for c in self.chats if c.destination != delivery.destination
                 and c.wants(_FAILED, None if team else delivery.destination)]
        if not chats:
            return
        assignee = await _assignee_of(session, delivery.conversation_id)
        mentions = (assignee,) if assignee else ()
        now = self.clock.now()
        roster = await Roster.load(session)
        for chat in chats:
            retry = Button(t(chat.lang, "button.retry", id=delivery.id), f"/retry {delivery.id}", "primary")
            buttons = [retry]
            if delivery.conversation_id is not None:
                buttons.append(Button(t(chat.lang, "button.show_id", id=delivery.conversation_id),
                                      f"/show {delivery.conversation_id}"))
            view = FailedDeliveryNotice(
                lang=chat.lang, delivery_id=delivery.id, destination=delivery.destination,
                purpose=delivery.purpose, attempts=delivery.attempts, error=delivery.last_error,
                conversation_id=delivery.conversation_id, mentions=mentions, buttons=tuple(buttons),
            )
            detail = t(chat.lang, "notice.failed", id=delivery.id, purpose=delivery.purpose,
                       destination=delivery.destination, attempts=delivery.attempts)
            item = DigestItem(kind=_FAILED, conversation_id=delivery.conversation_id, detail=detail)
            await self._post(session, chat, [Outgoing.of(_FAILED, view, item, urgent=True,
                                                         conversation_id=delivery.conversation_id,
                                                         mentions=mentions)], now, roster)

    # --- connector notices (NoticeSink) -------------------------------------------------------

    async def notice(self, kind: str, *, channel: str | None = None, **data: object) -> None:
        """Record and announce one connector notice in its own transaction.

        Call it outside any transaction of your own (on SQLite a second writer would wait for the
        first); inside one, use ``notice_in``. Report changes, not every poll: each call is a message.
        """
        async with self.db.transaction() as session:
            await self.notice_in(session, kind, channel=channel, **data)

    async def notice_in(self, session: AsyncSession, kind: str, *, channel: str | None = None,
                        **data: object) -> None:
        """Like ``notice``, in the caller's transaction.

        ``health.error`` (with ``detail``) and ``health.ok`` become a HealthNotice; any other kind a
        BudgetNotice whose sentence is the catalogue's message ``kind`` (with ``channel`` and ``data``
        as its parameters) when there is one.
        """
        now = self.clock.now()
        values = {key: _plain(value) for key, value in data.items()}
        actor = Actor.system(f"connector:{channel}" if channel else "connector")
        await record(session, actor, f"notice.{kind}"[:60], now, None, channel=channel, **values)
        purpose = "health" if kind in (HEALTH_ERROR, HEALTH_OK) else "budget"
        chats = [c for c in self.chats if c.wants(purpose, channel)]
        if not chats:
            return
        roster = await Roster.load(session)
        for chat in chats:
            view: View
            if purpose == "health":
                detail = data.get("detail")
                view = HealthNotice(lang=chat.lang, channel=channel or "-", healthy=kind == HEALTH_OK,
                                    detail=None if detail is None else str(detail))
                line = t(chat.lang, "notice.health_ok" if kind == HEALTH_OK else "notice.health_error",
                         channel=channel or "-", detail=view.detail or t(chat.lang, "notice.health_unknown"))
            else:
                line = _connector_sentence(chat.lang, kind, channel, values)
                view = BudgetNotice(lang=chat.lang, channel=channel, kind=kind, message=line,
                                    details=tuple((k, str(v)) for k, v in values.items()))
            item = DigestItem(kind="notice", channel=channel, detail=line)
            await self._post(session, chat, [Outgoing.of(purpose, view, item, urgent=True)],
                             now, roster)

    # --- plumbing ---------------------------------------------------------------------------------

    async def _post(self, session: AsyncSession, chat: TeamChat, notices: Sequence[Outgoing],
                    now: datetime, roster: Roster) -> Posted:
        return await post(session, chat, notices, now=now, tz=self.tz, roster=roster)


def _sla_mentions(roster: Roster, event: str, assignee: str | None, data: dict[str, Any]) -> tuple[str, ...]:
    """Who an SLA notice pings (see ``Notifier.sla_notify``)."""
    if event == "escalation":
        return roster.resolve([str(w) for w in data.get("notify") or []], assignee)
    if event == "breached" and assignee is None:
        return roster.resolve(["leads"], None)
    return roster.resolve(["assignee"], assignee)


def _instant(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return ensure_utc(value)
    if isinstance(value, str) and value:
        try:
            return ensure_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _plain(value: object) -> Any:
    """A value as the audit log's JSON can hold it."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return ensure_utc(value).isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _connector_sentence(lang: str, kind: str, channel: str | None, values: Mapping[str, Any]) -> str:
    """The catalogue's sentence for ``kind`` when it has one, else a generic line naming the kind."""
    if kind in CATALOGUES[DEFAULT_LANGUAGE]:
        return t(lang, kind, channel=channel or "-", **values)
    return t(lang, "notice.connector", channel=channel or "-", kind=kind)


async def _assignee_of(session: AsyncSession, conversation_id: int | None) -> str | None:
    if conversation_id is None:
        return None
    name: str | None = await session.scalar(
        select(col(Member.name)).join(Conversation, col(Conversation.assignee_id) == col(Member.id))
        .where(col(Conversation.id) == conversation_id)
    )
    return name


class NotifierHost(Protocol):
    """What ``install_notifier`` needs of an App (``inbox.app.App`` has it)."""

    ingest_hooks: list[IngestHook]

    @property
    def db(self) -> Database:
        """The database."""
        ...

    @property
    def clock(self) -> Clock:
        """The clock."""
        ...

    @property
    def settings(self) -> Settings:
        """The configuration."""
        ...


def install_notifier(app: NotifierHost, *, chats: Iterable[TeamChat] | None = None) -> Notifier:
    """Build the notifier for ``app`` and register its ingest hook; return it for the other hooks.

    Install it after the SLA engine's ingest hook, so that new cards show the SLA due time. The
    hook goes into ``app.ingest_hooks`` and, since the Ingestor keeps its own copy of that list,
    into ``app.ingestor.hooks`` as well.
    """
    notifier = Notifier(app.db, app.clock, app.settings, chats=list(chats) if chats is not None else None)
    hook = notifier.ingest_hook
    targets = [app.ingest_hooks]
    ingestor = getattr(app, "ingestor", None)
    if ingestor is not None and ingestor.hooks is not app.ingest_hooks:
        targets.append(ingestor.hooks)
    for hooks in targets:
        if hook not in hooks:
            hooks.append(hook)
    return notifier
