"""``inbox demo --script``: the team's side played too, then a summary of what the product did.

The script is what three members type in the Telegram team group, at demo times: ``as NAME``
switches member, ``press N #key`` presses a card's button, and ``#key`` in a command names the
conversation a scenario moment started (it becomes ``#12`` once that conversation exists, the way
a member reads the number off its card). Every line goes through ``TeamTerminal``, exactly as a
person's typing does in the interactive demo.

``summarise`` reads the database and the emulators at the end (both modes use it): conversations,
replies that reached the customers, SLA events, the team chat's messages per minute against its
budget, refused commands, and whether the hostile text arrived verbatim. ``checks`` turns that into
pass/fail lines for the scripted run, whose exit code is 0 only when all pass.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlmodel import col

from inbox.demo.scenario import HOSTILE_TEXT, HOSTILE_VISIBLE, Scenario
from inbox.demo.terminal import Feed, TeamTerminal, Transcript
from inbox.models import Channel, Conversation, Delivery, DeliveryStatus, Direction, Event, Message
from inbox.notify import team_chats

if TYPE_CHECKING:
    from inbox.demo.world import DemoWorld

class Interrupted(Exception):
    """The demo was stopped (Ctrl-C, SIGTERM) before the script ended."""


RESOLVE_TIMEOUT = 15.0  # real seconds to wait for a conversation named in the script to exist
_KEY = re.compile(r"#([a-z][a-z0-9_]*)\b")


def _m(value: float) -> timedelta:
    return timedelta(minutes=value)


# (demo minutes after the start, what is typed)
TEAM_SCRIPT: list[tuple[float, str]] = [
    (3.5, "as alice"),
    (3.5, "/queue"),
    (3.8, "/assign #rina me"),
    (4.0, "/tag #rina outage payments"),
    (5.0, "as bob"),
    (5.0, "/template add outage Hi {name}, yes: card payments have been failing since 08:50 WIB and we "
          "are fixing it. Failed payments are refunded automatically; nothing is lost. - {agent}"),
    (6.0, "as budi"),
    (6.0, "press 1 #hadi"),
    (6.5, "/reply #hadi Selamat pagi Pak Hadi, mohon maaf atas kendalanya. Saldo yang terpotong akan "
          "kembali otomatis dalam 1x24 jam."),
    (7.0, "/template add holding Kami sedang menangani gangguan."),
    (7.5, "as alice"),
    (7.5, "/reply #rina :outage"),
    (8.0, "/reply #dana Sorry about that, Dana: the charge is reversed automatically within 24 hours."),
    (8.5, "/reply #ayu Hello Ayu, we are sorry: the second charge for order #4411 will be refunded "
          "today. No action is needed on your side."),
    (9.0, "as rudi"),
    (9.0, "/resolve #hadi"),
    (9.5, "as budi"),
    (9.5, "/reply #siti Halo Kak Siti, mohon maaf. Saldo Kakak akan dikembalikan otomatis hari ini."),
    (10.0, "/reply #kopi Halo Kak, top up yang gagal akan masuk otomatis setelah layanan pulih."),
    (11.0, "as alice"),
    (11.0, "/tag #press press"),
    (11.3, "/assign #press bob"),
    (11.6, "/escalate #press journalist preparing a story"),
    (12.0, "as bob"),
    (12.0, "/reply #press Yes: between 08:50 and 09:40 WIB card payments failed for some customers. No money "
           "was lost. A full statement follows on status.saluran.example."),
    (13.5, "as alice"),
    (13.5, "/note #hostile Looks like someone testing the bot. No reply."),
    (14.0, "/resolve #hostile"),
    (15.0, "as budi"),
    (15.0, "/resolve #hadi"),
    (18.0, "as alice"),
    (18.0, "/sla"),
    (30.0, "/queue mine"),
]
SCRIPT_END = _m(47)  # long enough for the ladder's second step of the spike and of #rina


async def run_script(world: DemoWorld, scenario: Scenario, transcript: Transcript, feed: Feed,
                     terminal: TeamTerminal, *, until: timedelta = SCRIPT_END) -> None:
    """Play the customers and the team together, then let the SLA clock run to ``until``; raises
    ``Interrupted`` when the demo is stopped first."""
    feeding = asyncio.create_task(feed.run(world.stop), name="demo:feed")
    playing = asyncio.create_task(scenario.play(), name="demo:scenario")
    try:
        for minutes, line in TEAM_SCRIPT:
            await _until(world, _m(minutes), playing)
            typed = await resolve(world, scenario, line, transcript)
            if typed is not None:
                await terminal.handle(typed)
        await _until(world, until, playing)
        await playing
    finally:
        for task in (playing, feeding):
            task.cancel()
        await asyncio.gather(playing, feeding, return_exceptions=True)
        feed.collect()


async def _until(world: DemoWorld, offset: timedelta, playing: asyncio.Task[None]) -> None:
    """Sleep on the demo clock until ``offset`` after the start. A failed scenario ends the wait with its
    error; Ctrl-C (the runtime's stop event) ends it with ``Interrupted``."""
    wait = (world.started_at + offset - world.clock.now()).total_seconds()
    if wait > 0 and not world.stop.is_set():
        sleeper = asyncio.ensure_future(world.clock.sleep(wait))
        stopper = asyncio.ensure_future(world.stop.wait())
        watched: set[asyncio.Future[Any]] = {sleeper, stopper}
        if not playing.done():
            watched.add(playing)
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (sleeper, stopper):
            waiter.cancel()
    if world.stop.is_set():
        raise Interrupted
    if playing.done() and not playing.cancelled():
        error = playing.exception()
        if error is not None:
            raise error


async def resolve(world: DemoWorld, scenario: Scenario, line: str, transcript: Transcript) -> str | None:
    """``line`` with every ``#key`` replaced by its conversation's ``#id``; None when a key's platform
    is not part of this demo (the line is skipped)."""
    keys = scenario.keys
    known = {m.key for m in scenario.timeline if m.key}
    missing = [k for k in _KEY.findall(line) if k in known and k not in keys]
    if missing:
        transcript.note(f"(skipped, its platform is not in this demo: {line})")
        return None
    found: dict[str, int] = {}
    for key in dict.fromkeys(k for k in _KEY.findall(line) if k in keys):
        found[key] = await conversation_of(world, keys[key].text)
    return _KEY.sub(lambda m: f"#{found[m.group(1)]}" if m.group(1) in found else m.group(0), line)


async def conversation_of(world: DemoWorld, text: str) -> int:
    """The conversation holding the customer message ``text`` (waits until it is stored)."""
    assert world.app is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RESOLVE_TIMEOUT
    while True:
        async with world.app.db.sessions() as session:
            rows = await session.execute(
                select(col(Message.conversation_id), col(Message.text))
                .where(col(Message.direction) == Direction.IN.value).order_by(col(Message.id))
            )
            for conversation_id, stored in rows:
                if conversation_id is not None and text in stored:
                    return int(conversation_id)
        if loop.time() > deadline:
            raise RuntimeError(f"no conversation holds {text[:40]!r} after {RESOLVE_TIMEOUT:.0f} s")
        await asyncio.sleep(0.1)


# --- the summary -------------------------------------------------------------------------------


@dataclass
class Summary:
    """What the demo did, from the database and the emulators."""

    started: datetime
    ended: datetime
    conversations: Counter[str] = field(default_factory=Counter)  # per channel
    statuses: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)  # per platform, what customers received
    failed_deliveries: int = 0
    sla: Counter[str] = field(default_factory=Counter)  # warning, breached, escalation
    cards: int = 0
    team_posts: int = 0
    notices_per_minute: Counter[datetime] = field(default_factory=Counter)
    posts_per_minute: Counter[datetime] = field(default_factory=Counter)
    digests: int = 0
    folded: int = 0
    budget: int = 0
    window: timedelta = timedelta(minutes=1)
    refused: list[str] = field(default_factory=list)
    hostile_stored: bool = False
    hostile_shown: bool = False
    skipped_platforms: list[str] = field(default_factory=list)


async def summarise(world: DemoWorld, feed: Feed) -> Summary:
    """Count what happened (call it after the runtime stopped, before the world closes)."""
    assert world.app is not None and world.settings is not None
    summary = Summary(world.started_at, world.clock.now())
    chat = next(c for c in team_chats(world.settings))
    summary.budget, summary.window = chat.budget, chat.window
    async with world.app.db.sessions() as session:
        rows = await session.execute(
            select(col(Channel.name), col(Conversation.status))
            .join(Channel, col(Channel.id) == col(Conversation.channel_id))
        )
        for channel, status in rows:
            summary.conversations[channel] += 1
            summary.statuses[status] += 1
        deliveries = list((await session.execute(select(Delivery))).scalars())
        events = list((await session.execute(
            select(Event).where(col(Event.type).in_(
                ["sla.warning", "sla.breached", "sla.escalation", "command.refused", "digest.folded"]))
        )).scalars())
        stored = list((await session.execute(
            select(col(Message.text)).where(col(Message.direction) == Direction.IN.value)
        )).scalars())
    for delivery in deliveries:
        if delivery.status == DeliveryStatus.FAILED.value:
            summary.failed_deliveries += 1
        if delivery.destination == chat.destination and delivery.sent_at is not None:
            summary.notices_per_minute[_minute(delivery.sent_at)] += 1
            summary.digests += delivery.purpose == "digest"
    for event in events:
        if event.type.startswith("sla."):
            summary.sla[event.type.removeprefix("sla.")] += 1
        elif event.type == "digest.folded":
            summary.folded += int(event.data.get("count") or 0)
        else:
            command = str(event.data.get("command") or "?")
            summary.refused.append(f"{event.actor}: /{command} ({event.data.get('reason', '?')})")
    summary.hostile_stored = HOSTILE_TEXT in stored
    summary.team_posts = len(feed.team_posts)
    summary.cards = sum("New conversation" in (p.plain_text or "") for p in feed.team_posts)
    summary.hostile_shown = any(HOSTILE_VISIBLE in (p.plain_text or "") for p in feed.team_posts)
    for post in feed.team_posts:
        posted = datetime.fromtimestamp(post.message["date"], world.started_at.tzinfo)
        summary.posts_per_minute[_minute(posted)] += 1
    emu = world.telegram
    summary.delivered["Telegram"] = sum(1 for m in emu.sent() if m.chat_id != world.team_chat.id)
    summary.delivered["X"] = len(world.x.posts_by_bot()) + len(world.x.dms_by_bot())
    if world.discord is not None:
        summary.delivered["Discord"] = len(world.discord.sent())
    else:
        summary.skipped_platforms.append("Discord")
    summary.delivered["email"] = len(world.mailbox.received)
    return summary


def _minute(instant: datetime) -> datetime:
    return instant.replace(second=0, microsecond=0)


def render_summary(summary: Summary, timezone: str, real_seconds: float) -> str:
    """The summary as text."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(timezone)

    def hm(instant: datetime) -> str:
        return instant.astimezone(tz).strftime("%H:%M")

    total = sum(summary.conversations.values())
    per_channel = ", ".join(f"{n} on {c}" for c, n in summary.conversations.most_common())
    statuses = ", ".join(f"{n} {s}" for s, n in summary.statuses.most_common())
    delivered = ", ".join(f"{p} {n}" for p, n in summary.delivered.items())
    lines = [
        "",
        f"=== Summary: {hm(summary.started)}-{hm(summary.ended)} demo time, {real_seconds:.0f} s real time",
        f"Conversations: {total} ({per_channel}); {statuses}.",
        f"Replies delivered to the emulated customers: {sum(summary.delivered.values())} ({delivered}); "
        f"failed deliveries: {summary.failed_deliveries}.",
        f"SLA: {summary.sla['warning']} warnings, {summary.sla['breached']} breaches, "
        f"{summary.sla['escalation']} escalation steps.",
    ]
    busiest = max(summary.notices_per_minute.items(), key=lambda kv: (kv[1], -kv[0].timestamp()),
                  default=None)
    loudest = max(summary.posts_per_minute.values(), default=0)
    window = _window_words(summary.window)
    team = (f"Team chat: {summary.team_posts} bot messages ({summary.cards} cards); notices are budgeted "
            f"at {summary.budget} per {window}")
    if busiest is not None:
        team += f"; busiest {window} {hm(busiest[0])} sent {busiest[1]} notices"
    team += f"; the most messages in any minute, command answers included: {loudest}."
    lines.append(team)
    if summary.digests:
        lines.append(f"  {summary.folded} notices past the budget were folded into {summary.digests} "
                     "digest(s).")
    lines.append(f"Commands refused: {len(summary.refused)}" + (":" if summary.refused else "."))
    lines += [f"  {r}" for r in summary.refused]
    lines.append(
        "Hostile customer text stored verbatim: " + ("yes" if summary.hostile_stored else "NO")
        + "; shown verbatim in the team chat: " + ("yes" if summary.hostile_shown else "NO") + "."
    )
    if summary.skipped_platforms:
        lines.append(f"Not in this demo: {', '.join(summary.skipped_platforms)}.")
    return "\n".join(lines)


def _window_words(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds == 60:
        return "minute"
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} s"


def checks(summary: Summary, unanswered: int) -> list[tuple[bool, str]]:
    """What a scripted run must show: (passed, description)."""
    results = [
        (summary.cards >= 5, f"cards for new conversations reached the Telegram team chat ({summary.cards})"),
        (summary.delivered["Telegram"] >= 1, "a reply reached a customer on Telegram"),
        (summary.delivered["X"] >= 2, "replies reached customers on X"),
        (summary.delivered["email"] >= 1, "a reply reached the contact-form customer by email"),
        (len(summary.refused) >= 2, "a non-member's and an agent's privileged commands were refused"),
        (summary.hostile_stored and summary.hostile_shown, "hostile text arrived and was shown verbatim"),
        (summary.sla["breached"] >= 1, "SLA breaches were announced"),
        (summary.failed_deliveries == 0, "no delivery failed"),
        (max(summary.notices_per_minute.values(), default=0) <= summary.budget,
         "the team chat stayed within its notice budget"),
        (unanswered == 0, "the bot answered every command"),
    ]
    if "Discord" not in summary.skipped_platforms:
        results.insert(3, (summary.delivered["Discord"] >= 1, "a reply reached a customer on Discord"))
    return results
