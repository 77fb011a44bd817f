"""The demo's terminal: the team chat as the bot posts to it, and the keyboard of a team member.

``Feed`` reads what happened on the emulated platforms — the bot's posts in the Telegram team group
(read back from the emulator with ``sent()``, buttons listed), pop-ups answering button presses, and
the replies that reached customers on Telegram, X, Discord and by email — and prints it as
time-stamped lines. ``TeamTerminal`` turns a typed line into what a member does in Telegram: a
message from their account into the team group (``group_message``), or ``press N`` on a card's
button (``press_button``); it travels through the emulator and the real python-telegram-bot like a
real member's would, and the bot's answer comes back through ``Feed``. ``run_interactive`` runs
the customers' scenario while reading the keyboard.

Every piece of text is printed through ``terminal_safe``: nothing a customer types can move the
cursor, recolour the screen or reorder the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo

from inbox.clock import Clock
from inbox.textsafe import terminal_safe

if TYPE_CHECKING:
    from connectors.telegram.emulator import SentMessage
    from inbox.demo.scenario import Scenario
    from inbox.demo.world import DemoWorld

TAG_WIDTH = 12
MAX_SHOWN_LINES = 14  # longer posts (a /queue page, a digest) are cut here on the terminal
ANSWER_TIMEOUT = 10.0  # real seconds to wait for the bot to answer a command
FEED_INTERVAL = 0.1  # real seconds between looks at the emulators
_CARD = re.compile(r"^#(\d+) \[", re.MULTILINE)  # "#12 [normal] open · ...": the card line of a notice

HELP = """\
Type what a team member types in the Telegram group:
  /queue   /show 3   /assign 3 me   /tag 3 refund   /reply 3 Thanks, we are on it   /resolve 3
  /help    every command (docs/commands.md)
  press 1        press button 1 of the last message with buttons  (press 2 #3: of the latest card of #3)
  as bob         speak as bob (lead), budi (agent), alice (admin), or rudi (in the group, not a member)
  help           this list
  quit           end the demo (Ctrl-C and Ctrl-D work too)"""


class Transcript:
    """Prints the demo as time-stamped lines in the team's timezone."""

    def __init__(self, clock: Clock, timezone: str, out: TextIO | None = None, *, live: bool = False) -> None:
        self.clock = clock
        self.tz = ZoneInfo(timezone)
        self.out = out or sys.stdout
        # live: a person is typing at a prompt that output must not bury
        self.live = live and self.out.isatty()
        self.prompt: str | None = None
        self.lines = 0

    def say(self, tag: str, text: str) -> None:
        """One entry: ``HH:MM  tag  text``, continuation lines indented under the text."""
        stamp = self.clock.now().astimezone(self.tz).strftime("%H:%M")
        head = f"{stamp}  {tag:<{TAG_WIDTH}} "
        body = terminal_safe(text).split("\n")
        if len(body) > MAX_SHOWN_LINES:
            body = [*body[: MAX_SHOWN_LINES - 1], f"… ({len(body) - MAX_SHOWN_LINES + 1} more lines)"]
        self.write("\n".join([head + body[0], *(" " * len(head) + line for line in body[1:])]))

    def note(self, text: str = "") -> None:
        """Lines without a time stamp: banners and the summary (our own text, not customers')."""
        self.write(text)

    def write(self, text: str) -> None:
        """Print above the prompt, then show the prompt again."""
        if self.live and self.prompt is not None:
            self.out.write("\r\x1b[K")
        self.out.write(text + "\n")
        self.lines += text.count("\n") + 1
        if self.live and self.prompt is not None:
            self.out.write(self.prompt)
        self.out.flush()

    def show_prompt(self, member: str) -> None:
        """Show ``member> `` and leave the cursor after it."""
        self.prompt = f"{member}> "
        if self.live:
            self.out.write(self.prompt)
            self.out.flush()


class Feed:
    """Prints what the bot did since the last look: team chat posts and edits, pop-ups, customer replies."""

    def __init__(self, world: DemoWorld, transcript: Transcript) -> None:
        self.world = world
        self.transcript = transcript
        self.team_posts: list[SentMessage] = []  # every bot post in the team chat, oldest first
        self.last_card: SentMessage | None = None  # the latest post with buttons
        self.cards: dict[int, SentMessage] = {}  # conversation id -> the latest notice (card, SLA) about it
        self._edits: dict[int, int] = {}
        self._seen: dict[str, int] = {}

    def _new(self, source: str, items: list[Any]) -> list[Any]:
        seen = self._seen.get(source, 0)
        self._seen[source] = len(items)
        return items[seen:]

    def collect(self) -> int:
        """Print everything new; return how many entries were printed."""
        printed = 0
        for step in (self._team_chat, self._popups, self._telegram_replies, self._x_replies,
                     self._discord_replies, self._emails):
            printed += step()
        return printed

    async def run(self, stop: asyncio.Event) -> None:
        """Collect every ``FEED_INTERVAL`` seconds until ``stop``."""
        while not stop.is_set():
            self.collect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), FEED_INTERVAL)
        self.collect()

    # --- the team chat -------------------------------------------------------------------------

    def _team_chat(self) -> int:
        emu, chat = self.world.telegram, self.world.team_chat
        posts = emu.sent(chat)
        printed = 0
        for post in self._new("team", posts):
            self.team_posts.append(post)
            self._edits[post.message_id] = len(post.edits)
            self.transcript.say(self._team_tag(post), self._post_text(post))
            self._remember_buttons(post)
            printed += 1
        for post in posts:
            edits = len(post.edits)
            if edits != self._edits.get(post.message_id, edits):
                self._edits[post.message_id] = edits
                first = (post.plain_text or "").split("\n", 1)[0]
                self.transcript.say("team chat", f"(message {post.message_id} updated) {first}"
                                    + self._buttons_line(post))
                self._remember_buttons(post)
                printed += 1
        return printed

    def _team_tag(self, post: SentMessage) -> str:
        if post.reply_to is not None:
            replied = self.world.team_chat.messages.get(post.reply_to) or {}
            author = (replied.get("from") or {}).get("first_name")
            if author and not (replied.get("from") or {}).get("is_bot"):
                return f"bot → {author.lower()}"
        return "team chat" if post.thread_id is None else "team topic"

    def _post_text(self, post: SentMessage) -> str:
        text = post.plain_text or f"[{post.kind}]"
        return text + self._buttons_line(post)

    @staticmethod
    def _buttons_line(post: SentMessage) -> str:
        labels = [b.get("text", "?") for b in post.buttons]
        if not labels:
            return ""
        return "\nbuttons: " + "  ".join(f"[{n}] {label}" for n, label in enumerate(labels, 1))

    def _remember_buttons(self, post: SentMessage) -> None:
        if not post.buttons or post.deleted:
            return
        self.last_card = post
        # Notices (not answers) that show exactly one conversation's card; a /queue page shows several.
        found = _CARD.findall(post.plain_text or "")
        if post.reply_to is None and len(found) == 1:
            self.cards[int(found[0])] = post

    def _popups(self) -> int:
        answers = self._new("popups", list(self.world.telegram.callback_answers))
        for answer in answers:
            who = self._member_name(answer.user_id)
            kind = "alert" if answer.show_alert else "pop-up"
            self.transcript.say(f"bot → {who}", f"({kind}) {answer.text or '✓'}")
        return len(answers)

    def _member_name(self, user_id: int) -> str:
        for name, account in self.world.team_accounts.items():
            if account.id == user_id:
                return name
        return str(user_id)

    # --- what reached customers ------------------------------------------------------------------

    def _telegram_replies(self) -> int:
        emu = self.world.telegram
        sent = [m for m in emu.sent() if m.chat_id != self.world.team_chat.id]
        fresh = self._new("telegram", sent)
        for message in fresh:
            user = emu.world.users.get(message.chat_id)
            who = user.first_name if user is not None else str(message.chat_id)
            self.transcript.say("→ Telegram", f"to {who}: {message.plain_text or ''}")
        return len(fresh)

    def _x_replies(self) -> int:
        x = self.world.x
        posts = self._new("x posts", x.posts_by_bot())
        for post in posts:
            who = self.world.x_handles.get(post.in_reply_to_user_id or "", "?")
            self.transcript.say("→ X", f"reply to @{who}: {post.text}")
        dms = self._new("x dms", x.dms_by_bot())
        for event in dms:
            who = self.world.x_handles.get(event.recipient_id, "?")
            self.transcript.say("→ X DM", f"to @{who}: {event.text}")
        return len(posts) + len(dms)

    def _discord_replies(self) -> int:
        emu = self.world.discord
        if emu is None:
            return 0
        fresh = self._new("discord", emu.sent())
        for message in fresh:
            channel = emu.channels.get(message.channel_id)
            recipients = getattr(channel, "recipients", None) or []
            who = recipients[0].username if recipients else f"channel {message.channel_id}"
            self.transcript.say("→ Discord", f"to {who}: {message.content}")
        return len(fresh)

    def _emails(self) -> int:
        fresh = self._new("email", self.world.mailbox.received)
        for mail in fresh:
            self.transcript.say("→ email", f"to {', '.join(mail.recipients)}: {mail.subject}\n{mail.body}")
        return len(fresh)


class TeamTerminal:
    """Turns typed lines into a team member's actions in the emulated Telegram team group."""

    def __init__(self, world: DemoWorld, transcript: Transcript, feed: Feed, member: str = "alice", *,
                 echo: bool = False) -> None:
        self.world = world
        self.transcript = transcript
        self.feed = feed
        self.member = member
        self.echo = echo  # print typed lines (the script types them; a person sees their own)
        self.unanswered = 0

    async def handle(self, line: str) -> bool:
        """Act on one typed line; False when the member wants to quit."""
        text = line.strip()
        if not text:
            return True
        word, _, rest = text.partition(" ")
        word = word.lower()
        if word in ("quit", "exit", "/quit"):
            return False
        if word == "help":
            self.transcript.note(HELP)
        elif word == "as":
            self._switch(rest.strip().lower())
        elif word == "press":
            await self._press(rest.split())
        else:
            await self._say(text)
        return True

    def _switch(self, name: str) -> None:
        if name not in self.world.team_accounts:
            known = ", ".join(self.world.team_accounts)
            self.transcript.note(f"(no such person in the team group: {name or '?'}; try {known})")
            return
        self.member = name

    async def _say(self, text: str) -> None:
        """Post ``text`` in the team group as the member; wait for the bot's answer to a command."""
        emu, chat = self.world.telegram, self.world.team_chat
        account = self.world.team_accounts[self.member]
        self.feed.collect()
        if self.echo:
            self.transcript.say(f"{self.member}>", text)
        message = emu.group_message(chat, account, text)
        if not text.startswith("/"):
            return  # chatter: the bot reads it (a note inside a topic) but does not answer
        await self._until(lambda: any(p.reply_to == message["message_id"] for p in emu.sent(chat)))

    async def _press(self, words: list[str]) -> None:
        """``press N [#ID]``: the member presses button N of the last message with buttons (or of the
        latest card of #ID)."""
        self.feed.collect()
        if not words or not words[0].isdigit():
            self.transcript.note("(usage: press N, or press N #ID)")
            return
        card = self.feed.last_card
        if len(words) > 1:
            wanted = words[1].lstrip("#")
            card = self.feed.cards.get(int(wanted)) if wanted.isdigit() else None
            if card is None:
                self.transcript.note(f"(no card with buttons for {words[1]} in the team chat yet)")
                return
        if card is None:
            self.transcript.note("(no card with buttons in the team chat yet)")
            return
        buttons = card.buttons
        index = int(words[0])
        if not 1 <= index <= len(buttons):
            self.transcript.note(f"(that card has buttons 1 to {len(buttons)})")
            return
        button = buttons[index - 1]
        if "callback_data" not in button:
            self.transcript.note(f"(button {index} is a link: {button.get('url', '')})")
            return
        if self.echo:
            label = button.get("text", "?")
            found = _CARD.search(card.plain_text or "")
            about = f"the card of #{found.group(1)}" if found else f"message {card.message_id}"
            self.transcript.say(f"{self.member}>", f"(presses [{label}] under {about})")
        emu, chat = self.world.telegram, self.world.team_chat
        before = len(emu.sent(chat))
        query = emu.press_button(chat, card.message_id, self.world.team_accounts[self.member],
                                 button["callback_data"])

        def answered() -> bool:
            for answer in emu.callback_answers:
                if answer.callback_query_id == query:
                    # An accepted press is also answered in the chat, under the card.
                    return answer.show_alert or any(p.reply_to == card.message_id
                                                    for p in emu.sent(chat)[before:])
            return False

        await self._until(answered)

    async def _until(self, done: Callable[[], bool]) -> None:
        try:
            await self.world.telegram.wait_for(done, within=ANSWER_TIMEOUT)
        except TimeoutError:
            self.unanswered += 1
            self.transcript.note(
                f"(no answer from the bot within {ANSWER_TIMEOUT:.0f} s; see {self.world.log_path})"
            )
        self.feed.collect()


class LineReader:
    """Lines typed on stdin, read without blocking the event loop (a reader on the file descriptor)."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._buffer = b""
        self._fd = sys.stdin.fileno()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start watching stdin."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)

    def close(self) -> None:
        """Stop watching stdin."""
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except OSError:
            data = b""
        if not data:  # end of input (Ctrl-D)
            self.close()
            self.lines.put_nowait(None)
            return
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        for raw in complete:
            self.lines.put_nowait(raw.decode("utf-8", "replace").rstrip("\r"))

    async def next(self, stop: asyncio.Event) -> str | None:
        """The next line, or None at end of input or when ``stop`` is set."""
        getter = asyncio.ensure_future(self.lines.get())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not getter.done():
                getter.cancel()
        return getter.result() if getter.done() and not getter.cancelled() else None


async def run_interactive(world: DemoWorld, scenario: Scenario, transcript: Transcript, feed: Feed,
                          terminal: TeamTerminal) -> None:
    """Play the customers' side while the person at the keyboard works the queue, until ``quit``."""
    reader = LineReader()
    reader.start()
    feeding = asyncio.create_task(feed.run(world.stop), name="demo:feed")
    playing = asyncio.create_task(scenario.play(), name="demo:scenario")
    playing.add_done_callback(lambda task: _scenario_done(task, transcript, world))
    try:
        while not world.stop.is_set():
            transcript.show_prompt(terminal.member)
            line = await reader.next(world.stop)
            transcript.prompt = None
            if line is None or not await terminal.handle(line):
                break
    finally:
        transcript.prompt = None
        reader.close()
        playing.cancel()
        await asyncio.gather(playing, return_exceptions=True)
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        feed.collect()


def _scenario_done(task: asyncio.Task[None], transcript: Transcript, world: DemoWorld) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        transcript.note(f"(the scenario stopped: {error}; see {world.log_path})")
        return
    transcript.note("(Every customer has written. The SLA clock keeps running: watch the warnings and "
                    "breaches, or type quit.)")
