"""Seeded synthetic traffic: inbound event batches (for ingest) and stored history (rows written directly).

Both draw from the same small world: four channels (``social`` mentions and DMs, ``chat`` DMs and
comments, ``mail`` email, ``contact`` forms), a large pool of customers per channel of whom a few write
much more than the rest, threads that customers follow up and the team answers.

History rows are what the product itself would have stored: the SLA clocks are kept with the engine's
own pure rules (``on_inbound``, ``on_outbound``, ``close``), a clock whose deadline passed before it was
met is breached at its deadline (as if the scheduler fired on time), and pending timers are exactly the
ones ``SlaEngine.desired_timers`` plans.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from inbox.events import Author, Batch, Inbound
from inbox.models import PRIORITY_RANK, Direction, Kind, Priority, Status
from inbox.sla.engine import DUE_COLUMNS, SlaEngine, SlaState, TargetClock, close, on_inbound, on_outbound
from inbox.sla.outcomes import outcome_columns
from inbox.sla.policy import ConversationFacts, Policy, match_policy

CHANNEL_KINDS: Final = {
    "social": (Kind.MENTION, Kind.MENTION, Kind.DM),
    "chat": (Kind.DM, Kind.COMMENT),
    "mail": (Kind.EMAIL,),
    "contact": (Kind.FORM,),
}
CHANNEL_WEIGHTS: Final = (0.45, 0.30, 0.15, 0.10)
TAGS: Final = ("billing", "outage", "refund", "login", "delivery", "press")
_WORDS: Final = (
    "hello payment failed again please help my order account refund outage card app login error since "
    "morning still waiting transfer pending balance mohon bantu saldo tidak masuk sudah dua hari kapan "
    "bisa selesai terima kasih urgent journalist statement status update delivery late package tracking "
    "number wrong address invoice double charged cancel subscription why answer me now today"
).split()


def texts(rng: random.Random, count: int = 2_000) -> list[str]:
    """A pool of message texts, 3 to 45 words long."""
    return [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 45))).capitalize() for _ in range(count)
    ]


def _customer(rng: random.Random, pool: int) -> int:
    # Pareto-skewed: a few customers write a lot, most write once or twice.
    return min(pool - 1, int(rng.paretovariate(1.2)) - 1) if rng.random() < 0.3 else rng.randrange(pool)


# --- inbound events ------------------------------------------------------------------------------------


@dataclass
class _Thread:
    kind: Kind
    author: Author
    thread_key: str
    last_id: str
    subject: str | None = None


@dataclass
class _ChannelStream:
    name: str
    threads: list[_Thread] = field(default_factory=list)
    recent: list[Inbound] = field(default_factory=list)
    pending: list[Inbound] = field(default_factory=list)


def inbound_batches(count: int, batch_size: int, seed: int, end: datetime) -> list[Batch]:
    """``count`` inbound events over the day before ``end``, cut into per-channel batches of ``batch_size``.

    Mix: about 55 % new threads, 30 % customer follow-ups, 8 % team replies made on the platform
    (outbound), 3 % re-deliveries of an event already sent (a third of them edited), 4 % replies to a
    specific earlier message. Batches come out in time order, as pollers would deliver them.
    """
    rng = random.Random(seed)
    pool = texts(rng)
    customers = max(200, count // 3)
    streams = {name: _ChannelStream(name) for name in CHANNEL_KINDS}
    names = list(CHANNEL_KINDS)
    batches: list[Batch] = []
    t = end - timedelta(days=1)
    step = 86_400 / max(count, 1)
    for seq in range(count):
        t += timedelta(seconds=rng.expovariate(1 / step))
        stream = streams[rng.choices(names, CHANNEL_WEIGHTS)[0]]
        event = _next_event(rng, stream, seq, t, pool, customers)
        stream.pending.append(event)
        stream.recent.append(event)
        if len(stream.recent) > 2_000:
            del stream.recent[:1_000]
        if len(stream.pending) >= batch_size:
            batches.append(Batch(stream.name, stream.pending, cursor=f"{stream.name}:{seq}"))
            stream.pending = []
    for stream in streams.values():
        if stream.pending:
            batches.append(Batch(stream.name, stream.pending, cursor=f"{stream.name}:end"))
    return batches


def _next_event(
    rng: random.Random, stream: _ChannelStream, seq: int, at: datetime, pool: Sequence[str], customers: int
) -> Inbound:
    roll = rng.random()
    if roll < 0.03 and stream.recent:
        old = rng.choice(stream.recent)
        if rng.random() < 0.33:
            return replace(old, text=old.text + " (edited)", edited_at=at)
        return old
    thread = rng.choice(stream.threads) if stream.threads else None
    text = rng.choice(pool)
    external = f"{stream.name}-{seq}"
    if thread is not None and roll < 0.11:
        brand = Author(id=f"brand-{stream.name}", handle="saluran_help", name="Saluran Help")
        member = "alice" if rng.random() < 0.5 else None
        answered = thread.last_id if thread.kind in (Kind.MENTION, Kind.COMMENT) else None
        thread.last_id = external
        return Inbound(
            stream.name,
            external,
            thread.kind,
            brand,
            text,
            at,
            thread_key=thread.thread_key,
            reply_to=answered,
            direction=Direction.OUT,
            member=member,
            subject=thread.subject,
        )
    if thread is not None and roll < 0.45 and thread.kind is not Kind.FORM:
        reply_to = thread.last_id if thread.kind in (Kind.MENTION, Kind.COMMENT) and roll < 0.15 else None
        thread.last_id = external
        return Inbound(
            stream.name,
            external,
            thread.kind,
            thread.author,
            text,
            at,
            thread_key=thread.thread_key,
            reply_to=reply_to,
            subject=thread.subject,
        )
    kind = rng.choice(CHANNEL_KINDS[stream.name])
    who = _customer(rng, customers)
    author = Author(id=f"{stream.name}-u{who}", handle=f"user{who}", name=f"Customer {who}")
    key, subject = _thread_key(kind, stream.name, external, author), None
    if kind in (Kind.EMAIL, Kind.FORM):
        subject = text[:60]
    event = Inbound(stream.name, external, kind, author, text, at, thread_key=key, subject=subject)
    if key is not None:
        stream.threads.append(_Thread(kind, author, key, external, subject))
        if len(stream.threads) > 5_000:
            del stream.threads[:2_500]
    return event


def _thread_key(kind: Kind, channel: str, external: str, author: Author) -> str | None:
    if kind is Kind.DM:
        return f"dm:{author.id}"  # like X's dm_conversation_id or a Telegram private chat id
    if kind is Kind.FORM:
        return None  # every form submission is a conversation of its own
    return f"{channel}:t:{external}"


# --- stored history -------------------------------------------------------------------------------------


@dataclass
class HistoryPlan:
    """What the history looks like: how many conversations, started when, how busy, how finished."""

    conversations: int
    # Conversations start uniformly in [start, end), in id order: ingest numbers them as they arrive.
    start: datetime
    end: datetime
    now: datetime  # nothing happens after this
    mean_messages: float = 4.0
    resolved_share: float = 0.7
    reply_minutes: float = 50.0  # mean time to a team reply
    follow_up_minutes: float = 180.0  # mean time to a customer follow-up
    tagged_share: float = 0.25
    press_share: float = 0.03
    assigned_share: float = 0.7
    with_events: bool = True
    with_timers: bool = True
    contacts_per_channel: int = 20_000
    # False: the scheduler has not run yet, so nothing is breached and the timers are those planned when
    # the last message was ingested (the timer scenario's starting point).
    scheduler_ran: bool = True


@dataclass
class Ids:
    """The next free id of each table, so several plans can be written into one database."""

    next: dict[str, int] = field(
        default_factory=lambda: {"contacts": 1, "conversations": 1, "messages": 1, "events": 1, "timers": 1}
    )

    def take(self, table: str) -> int:
        """Reserve one id."""
        value = self.next[table]
        self.next[table] = value + 1
        return value


@dataclass
class World:
    """Ids of what the configuration put into the database (channels, members, tags)."""

    channels: Mapping[str, int]
    members: Sequence[int]
    tags: Mapping[str, int]


Rows = dict[str, list[dict[str, Any]]]


def contact_rows(
    world: World, per_channel: int, ids: Ids, at: datetime
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The customer pool of every channel; returns the rows and each channel's first contact id."""
    rows: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    for name, channel_id in world.channels.items():
        if name not in CHANNEL_KINDS:
            continue
        first[name] = ids.next["contacts"]
        for k in range(per_channel):
            rows.append(
                {
                    "id": ids.take("contacts"),
                    "channel_id": channel_id,
                    "external_id": f"{name}-u{k}",
                    "handle": f"user{k}",
                    "name": f"Customer {k}",
                    "created_at": at,
                    "updated_at": at,
                }
            )
    return rows, first


class History:
    """Generates conversations with their messages, events, tags and pending timers, chunk by chunk."""

    def __init__(
        self,
        plan: HistoryPlan,
        world: World,
        policies: Sequence[Policy],
        seed: int,
        ids: Ids,
        first_contact: Mapping[str, int],
    ) -> None:
        self.plan = plan
        self.world = world
        self.policies = list(policies)
        self.by_name = {p.name: p for p in self.policies}
        self.rng = random.Random(seed)
        self.ids = ids
        self.first_contact = first_contact
        self.pool = texts(self.rng)
        self.engine = SlaEngine(self.policies, _NoClock())
        self.stats = {"conversations": 0, "messages": 0, "events": 0, "timers": 0, "open": 0}
        self.started = 0  # conversations made so far: the next one's slot in [start, end)

    def chunks(self, size: int = 5_000) -> Iterator[Rows]:
        """Rows per table for ``size`` conversations at a time."""
        made = 0
        while made < self.plan.conversations:
            rows: Rows = {
                "conversations": [],
                "conversation_tags": [],
                "messages": [],
                "events": [],
                "timers": [],
            }
            for _ in range(min(size, self.plan.conversations - made)):
                self._conversation(rows)
                made += 1
            for table, items in rows.items():
                if table in self.stats:
                    self.stats[table] += len(items)
            yield rows

    # --- one conversation ---

    def _conversation(self, rows: Rows) -> None:
        plan, rng = self.plan, self.rng
        cid = self.ids.take("conversations")
        channel = rng.choices(list(CHANNEL_KINDS), CHANNEL_WEIGHTS)[0]
        kind = rng.choice(CHANNEL_KINDS[channel])
        contact = self.first_contact[channel] + _customer(rng, plan.contacts_per_channel)
        # A random time in the conversation's own slot of the period: uniform over it, and rising with the
        # id as ingest's ids do (drawn independently of the id, a burst's due timers and conversations
        # would be scattered over every page of their tables, which no real inbox has).
        t0 = plan.start + (plan.end - plan.start) * ((self.started + rng.random()) / plan.conversations)
        self.started += 1
        tags = self._tags(cid, rows)
        priority = rng.choices(
            (Priority.NORMAL, Priority.HIGH, Priority.URGENT, Priority.LOW), (0.85, 0.10, 0.03, 0.02)
        )[0]
        policy = match_policy(self.policies, ConversationFacts(channel, kind.value, priority.value, tags))
        state = SlaState()
        breached: list[str] = []
        first_out: datetime | None = None
        last_in: datetime | None = None
        last_out: datetime | None = None
        n_messages = min(12, 1 + int(rng.expovariate(1 / max(plan.mean_messages - 1, 0.01))))
        at, direction = t0, "in"
        channel_id = self.world.channels[channel]
        assignee = rng.choice(self.world.members) if rng.random() < plan.assigned_share else None
        self._event(rows, cid, "system:ingest", "conversation.created", t0, channel=channel, kind=kind.value)
        if policy is not None:
            self._event(rows, cid, "system:sla", "sla.policy", t0, policy=policy.name, previous=None)
        resolving = rng.random() < plan.resolved_share

        asked: datetime | None = None  # the first customer message since the last reply (inbox.follow_ups)

        def message(direction: str, at: datetime) -> None:
            nonlocal first_out, last_in, last_out, asked
            self._breach_until(rows, cid, state, policy, breached, at)
            mid = self.ids.take("messages")
            follow_up = asked if direction == "out" and last_out is not None else None
            if direction == "out":
                asked = None
            elif asked is None:
                asked = at
            member = (assignee or self.world.members[0]) if direction == "out" else None
            rows["messages"].append(
                {
                    "id": mid,
                    "channel_id": channel_id,
                    "conversation_id": cid,
                    "external_id": f"{channel}-h{mid}",
                    "direction": direction,
                    "contact_id": contact if direction == "in" else None,
                    "member_id": member,
                    "text": rng.choice(self.pool),
                    "attachments": [],
                    "created_at": at,
                    "follow_up_at": follow_up,
                }
            )
            self._event(
                rows,
                cid,
                "system:ingest" if direction == "in" else "member:alice",
                f"message.{direction}",
                at,
                message_id=mid,
            )
            if direction == "in":
                on_inbound(state, at)
                last_in = at
            else:
                on_outbound(state, at)
                first_out, last_out = first_out or at, at

        for _ in range(n_messages):
            if at > plan.now:
                break
            message(direction, at)
            if direction == "in":
                at += timedelta(minutes=rng.expovariate(1 / plan.reply_minutes))
                direction = "out" if rng.random() < 0.85 else "in"
            else:
                at += timedelta(minutes=rng.expovariate(1 / plan.follow_up_minutes))
                direction = "in"
        if resolving and last_in is not None and (last_out is None or last_out < last_in) and at <= plan.now:
            message("out", at)  # a conversation that gets resolved was answered first
        status, resolved_at = Status.OPEN.value, None
        if resolving and last_out is not None and (last_in is None or last_out >= last_in):
            candidate = last_out + timedelta(minutes=rng.expovariate(1 / 30))
            if candidate <= plan.now:
                self._breach_until(rows, cid, state, policy, breached, candidate)
                close(state, candidate)
                status, resolved_at = Status.RESOLVED.value, candidate
                self._event(rows, cid, "member:alice", "conversation.resolved", candidate)
        if status == Status.OPEN.value:
            self._breach_until(rows, cid, state, policy, breached, plan.now)
            self.stats["open"] += 1
            if policy is not None and plan.scheduler_ran:
                _steps_taken(state, policy, plan.now)
        due = {column: self._deadline(state, policy, target) for target, column in DUE_COLUMNS.items()}
        rows["conversations"].append(
            {
                "id": cid,
                "channel_id": channel_id,
                "contact_id": contact,
                "kind": kind.value,
                "thread_key": f"{channel}:t:{cid}" if kind is not Kind.FORM else None,
                "subject": rng.choice(self.pool)[:60] if kind in (Kind.EMAIL, Kind.FORM) else None,
                "status": status,
                "priority": priority.value,
                "priority_rank": PRIORITY_RANK[priority],
                "assignee_id": assignee,
                "escalation_level": 0,
                "sla_policy": policy.name if policy else None,
                **due,
                **outcome_columns(state, policy),
                "first_response_at": first_out,
                "breached": breached,
                "sla_state": state.dump(),
                "last_inbound_at": last_in,
                "last_outbound_at": last_out,
                "resolved_at": resolved_at,
                "created_at": t0,
                "updated_at": resolved_at or last_out or last_in or t0,
            }
        )
        if plan.with_timers and status == Status.OPEN.value:
            planned = (
                plan.now if plan.scheduler_ran else max(t for t in (t0, last_in, last_out) if t is not None)
            )
            for (kind_, _target, _step), want in self.engine.desired_timers(state, policy, planned).items():
                rows["timers"].append(
                    {
                        "id": self.ids.take("timers"),
                        "kind": kind_,
                        "conversation_id": cid,
                        "data": want.data,
                        "due_at": want.due,
                        "status": "pending",
                        "late": False,
                        "created_at": planned,
                    }
                )

    def _tags(self, cid: int, rows: Rows) -> frozenset[str]:
        rng = self.rng
        chosen: set[str] = set()
        if rng.random() < self.plan.press_share:
            chosen.add("press")
        if rng.random() < self.plan.tagged_share:
            chosen.add(rng.choice(TAGS[:-1]))
        for name in sorted(chosen):
            rows["conversation_tags"].append({"conversation_id": cid, "tag_id": self.world.tags[name]})
        return frozenset(chosen)

    def _event(self, rows: Rows, cid: int, actor: str, type_: str, at: datetime, **data: Any) -> None:
        if self.plan.with_events:
            rows["events"].append(
                {
                    "id": self.ids.take("events"),
                    "conversation_id": cid,
                    "actor": actor,
                    "type": type_,
                    "data": data,
                    "created_at": at,
                }
            )

    @staticmethod
    def _deadline(state: SlaState, policy: Policy | None, name: str) -> datetime | None:
        clock = state.targets.get(name)
        if policy is None or name not in policy.targets or clock is None or clock.ended or not clock.running:
            return None
        return clock.breached_at or clock.instant_at(policy.calendar, policy.targets[name])

    def _breach_until(
        self,
        rows: Rows,
        cid: int,
        state: SlaState,
        policy: Policy | None,
        breached: list[str],
        until: datetime,
    ) -> None:
        """Breach every running clock whose deadline is at or before ``until``, as the scheduler would."""
        if policy is None or not self.plan.scheduler_ran:
            return
        for name, clock in state.targets.items():
            if (
                name not in policy.targets
                or clock.ended
                or not clock.running
                or clock.breached_at is not None
            ):
                continue
            deadline = clock.instant_at(policy.calendar, policy.targets[name])
            if deadline is not None and deadline <= until:
                _breach(clock, deadline)
                if name not in breached:
                    breached.append(name)
                self._event(
                    rows,
                    cid,
                    "system:sla",
                    "sla.breached",
                    deadline,
                    target=name,
                    policy=policy.name,
                    due_at=deadline.isoformat(),
                    late=False,
                )


def _steps_taken(state: SlaState, policy: Policy, now: datetime) -> None:
    """Mark the ladder steps that were due by ``now`` as taken (their pings are not recreated)."""
    for clock in state.targets.values():
        if clock.breached_at is None:
            continue
        clock.steps_done = [
            index
            for index, step in enumerate(policy.ladder)
            if (when := clock.ladder_instant(step.after)) is not None and when <= now
        ]


def _breach(clock: TargetClock, deadline: datetime) -> None:
    clock.breached_at, clock.warned, clock.pinged = deadline, True, True


class _NoClock:
    """The engine is only used for its pure ``desired_timers``; it never asks for the time."""

    def now(self) -> datetime:
        raise AssertionError("not used")

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("not used")
