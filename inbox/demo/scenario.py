"""The demo's crisis, on the demo clock: a payment outage draws mentions on X, DMs in English and
Indonesian on Telegram and Discord, and a contact-form message; then a spike of mentions.

Each ``Moment`` is something a customer does on an emulated platform at a time after the demo
started; ``Scenario.play`` performs them in order as the demo clock reaches them, through the
emulators' user-side APIs (and a real HTTP form post), so that everything the product sees arrives
the way it would from the platforms. Moments with a ``key`` start a conversation that the team's
script refers to as ``#key`` (``/reply #hadi ...``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from connectors.x.emulator import XPost
    from inbox.demo.world import DemoWorld

# Text a customer might send to break a bot: HTML, Markdown, mass mentions, a fake link, a bidi
# override and a terminal escape. It must arrive, be stored and be shown exactly as typed.
HOSTILE_TEXT = (
    "<b>URGENT</b> @everyone *click* [refund](tg://user?id=1) <script>alert(1)</script> "
    "\u202eevil \x1b[31mred"
)
# The part of it any team chat shows as-is (the controls are shown escaped on a terminal).
HOSTILE_VISIBLE = "<b>URGENT</b> @everyone *click* [refund](tg://user?id=1) <script>alert(1)</script>"


@dataclass(frozen=True)
class Customer:
    """Someone writing in: platform (``x``, ``x_dm``, ``telegram``, ``discord``, ``form``) and identity."""

    platform: str
    handle: str  # username, or email address on the form
    name: str
    language: str = "en"


@dataclass(frozen=True)
class Moment:
    """One thing a customer does at ``at`` after the start; ``key`` names the conversation it starts."""

    at: timedelta
    customer: Customer
    text: str
    key: str | None = None
    reply_to: str | None = None  # X: the key of the post this one answers (joins its thread)
    subject: str | None = None  # form


RINA = Customer("x", "rina_k", "Rina K.")
TOM = Customer("x", "devtom", "Tom")
BUDI_S = Customer("x", "budi_s", "Budi S.", "id")
NEWSDESK = Customer("x", "newsdesk_id", "Newsdesk ID")
HADI = Customer("telegram", "pak_hadi", "Pak Hadi", "id")
MALLORY = Customer("telegram", "mallory_x", "<b>admin</b> @everyone")
DANA = Customer("discord", "dana", "Dana Customer")
SITI = Customer("discord", "siti", "Siti Rahma", "id")
AYU = Customer("form", "ayu@example.org", "Ayu Lestari")
KOPI = Customer("x_dm", "kopi_lover", "Kopi Lover", "id")

# A spike of mentions at 09:10: who and what (several languages, as on a real morning).
SPIKE = [
    ("andre_w", "is the app down? can't pay for anything"),
    ("sari_dewi", "aplikasinya error terus, bayar gagal"),
    ("mike_t", "checkout broken again. seriously?"),
    ("yuni88", "transfer gagal 3x, saldo aman kan?"),
    ("p_lee", "502 on payment page here too"),
    ("rizky_f", "lagi gangguan ya? dari tadi gagal bayar"),
    ("jess_m", "my payment went through twice??"),
    ("agus_s", "kapan normal lagi min?"),
    ("lena_k", "down for me in Surabaya"),
    ("omar_h", "can't top up, error code 502"),
    ("dina_p", "bayar tagihan listrik gagal terus"),
    ("chris_b", "is there a status page?"),
    ("wulan_a", "tolong dong, pembayaran pending dari pagi"),
    ("tom_h", "same problem, checkout spins forever"),
    ("eka_r", "gagal terus, uang sudah kepotong"),
    ("nina_s", "please fix, I need to pay rent today"),
    ("fajar_n", "server down? #gangguan"),
    ("grace_l", "support not answering DMs either"),
]


def _minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def moments() -> list[Moment]:
    """The customers' side of the crisis, in time order."""
    timeline = [
        Moment(_minutes(1), RINA, "payments are failing for everyone?? checkout says error 502", key="rina"),
        Moment(
            _minutes(1.5), TOM, "same here, card declined three times, is this an outage?", reply_to="rina"
        ),
        Moment(_minutes(2), BUDI_S, "pembayaran gagal terus dari tadi pagi, ada gangguan?", key="budis"),
        Moment(
            _minutes(3), HADI,
            "Selamat pagi, saldo saya terpotong tapi pesanan tidak masuk. Mohon bantuannya.",
            key="hadi",
        ),
        Moment(
            _minutes(4), AYU,
            "Hello, I was charged twice for order #4411 during the outage. Please refund one of the charges.",
            key="ayu", subject="Charged twice",
        ),
        Moment(
            _minutes(4.5), DANA, "Hi! My card was charged but the order says failed. What now?", key="dana"
        ),
        Moment(
            _minutes(5), NEWSDESK,
            "can you confirm reports of a nationwide payment outage? We are preparing a story.", key="press",
        ),
        Moment(_minutes(6), RINA, "still broken. not impressed.", reply_to="rina"),
        Moment(_minutes(6.5), KOPI, "min, top up saya belum masuk dari jam 8", key="kopi"),
        Moment(_minutes(7), MALLORY, HOSTILE_TEXT, key="hostile"),
        Moment(
            _minutes(8), SITI, "Halo, pembayaran saya gagal tapi saldo berkurang. Tolong dicek ya.",
            key="siti",
        ),
    ]
    for index, (handle, text) in enumerate(SPIKE):
        who = Customer("x", handle, handle.replace("_", " ").title())
        timeline.append(Moment(_minutes(10 + index * 50 / 60 / len(SPIKE)), who, text))
    timeline.append(Moment(_minutes(14), RINA, "it's been an hour. when will it be fixed??", reply_to="rina"))
    timeline.append(Moment(_minutes(16), HADI, "Terima kasih, saldonya sudah kembali.", key=None))
    return sorted(timeline, key=lambda m: m.at)


Say = Callable[[str, str], None]


class Scenario:
    """Plays the customers' moments on the world's emulators as the demo clock reaches them."""

    def __init__(self, world: DemoWorld, say: Say, timeline: list[Moment] | None = None) -> None:
        self.world = world
        self.say = say
        self.timeline = timeline if timeline is not None else moments()
        self.posts: dict[str, XPost] = {}
        self.played = 0
        self.skipped: list[str] = []

    @property
    def keys(self) -> dict[str, Moment]:
        """The moments that start a conversation the team can name, by key."""
        return {m.key: m for m in self.timeline if m.key is not None and self._available(m.customer)}

    @property
    def length(self) -> timedelta:
        """When the last moment happens."""
        return self.timeline[-1].at if self.timeline else timedelta(0)

    def _available(self, customer: Customer) -> bool:
        return customer.platform != "discord" or self.world.discord is not None

    async def play(self) -> None:
        """Perform every moment at its time (demo clock); returns after the last one."""
        start = self.world.started_at
        for moment in self.timeline:
            wait = (start + moment.at - self.world.clock.now()).total_seconds()
            if wait > 0:
                await self.world.clock.sleep(wait)
            if not self._available(moment.customer):
                self.skipped.append(moment.customer.handle)
                continue
            await self.perform(moment)
            self.played += 1

    async def perform(self, moment: Moment) -> None:
        """Do what the moment's customer does, on their platform."""
        who, text = moment.customer, moment.text
        platform = who.platform
        if platform == "x":
            await self._x_mention(moment)
        elif platform == "x_dm":
            self.world.x.send_dm(self.world.x_account(who.handle, who.name), text)
            self.say("X DM", f"@{who.handle} → @{self.world.x.bot.username}: {text}")
        elif platform == "telegram":
            user = self.world.telegram_customer(who.name, username=who.handle, language=who.language)
            self.world.telegram.user_dm(user, text)
            self.say("Telegram", f"{who.name} (DM to @{self.world.telegram.bot.user.username}): {text}")
        elif platform == "discord":
            emu = self.world.discord
            assert emu is not None
            try:
                account = emu.user(who.handle)
            except KeyError:
                account = emu.add_user(who.handle, global_name=who.name)
            await emu.user_dm(account, text)
            self.say("Discord", f"{who.name} (DM to {emu.bot.username}): {text}")
        elif platform == "form":
            reference = await self._submit_form(moment)
            self.say("Form", f"{who.name} <{who.handle}> “{moment.subject}”: {text} (reference #{reference})")
        else:
            raise ValueError(f"unknown platform {platform!r}")

    async def _x_mention(self, moment: Moment) -> None:
        who = moment.customer
        x = self.world.x
        parent = self.posts.get(moment.reply_to) if moment.reply_to else None
        user = self.world.x_account(who.handle, who.name)
        post = x.post_mention(user, moment.text, in_reply_to=parent)
        if moment.key is not None:
            self.posts[moment.key] = post
        answering = ""
        if parent is not None:
            answering = f" (in reply to @{self.world.x_handles.get(parent.author_id, '?')})"
        self.say("X", f"@{who.handle}{answering}: {post.text}")

    async def _submit_form(self, moment: Moment) -> str:
        """Open the contact form and submit it, as a visitor's browser would; return the reference."""
        who = moment.customer
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(self.world.form_url) as page:
                form = await page.text()
            token = _hidden(form, "submission")
            fields = {"name": who.name, "email": who.handle, "subject": moment.subject or "",
                      "message": moment.text, "submission": token, "lang": who.language}
            async with session.post(self.world.form_url, data=fields) as answer:
                thanks = await answer.text()
                if answer.status != 200:
                    raise RuntimeError(f"the contact form answered {answer.status}")
        paragraph = re.search(r'<p class="reference">(.*?)</p>', thanks, re.DOTALL)
        found = re.search(r"(\d+)", html.unescape(paragraph.group(1))) if paragraph else None
        return found.group(1) if found else "?"


def _hidden(page: str, name: str) -> str:
    """The value of a hidden input of a form page."""
    for tag in re.findall(r"<input[^>]*>", page):
        if re.search(rf'name="{re.escape(name)}"', tag):
            value = re.search(r'value="([^"]*)"', tag)
            if value is not None:
                return html.unescape(value.group(1))
    raise RuntimeError(f"the contact form has no {name!r} field")

