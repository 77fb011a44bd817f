"""Views as Discord messages: markdown text split at Discord's limit, buttons, and who may be pinged.

The Discord twin of ``inbox.render_text``. Every string that is not our own markup passes through
``escape``: customer text, contact names, channel names, error sentences. Escaped text displays
literally on Discord: no bold or headers, no masked links, no code blocks, and mentions such as
``<@123>``, ``<@&456>``, ``@everyone`` and ``@here`` show as plain text (the senders also send every
message with ``allowed_mentions`` limited to the members a notice means to ping).

Buttons carry their command in a signed ``custom_id`` (``ButtonSigner``): a press runs only a command
this bot put on a button, and the console runs it as the member who pressed it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from inbox.i18n import t
from inbox.render_text import due_phrase, sla_sentence, target_word, value_word, when
from inbox.render_text import render as render_plain
from inbox.views import (
    Button,
    Confirmation,
    ConversationCard,
    ConversationDetailView,
    ConversationNotice,
    Digest,
    ErrorView,
    FailedDeliveryNotice,
    HelpView,
    QueuePage,
    SlaNotice,
    SlaOverview,
    View,
)

MAX_LENGTH = 2000  # characters in one message's content; Discord refuses more (error 50035)
MAX_BUTTONS = 25  # 5 action rows of 5 buttons
BUTTONS_PER_ROW = 5
MAX_LABEL = 80  # characters in a button label
MAX_CUSTOM_ID = 100  # characters in a component's custom_id
_STYLES = {"primary": 1, "default": 2, "danger": 4}  # Discord button styles; 2 is "secondary"

# Labels of the Discord console's own additions (the core's catalogue holds the rest).
CONSOLE_TEXT: Mapping[str, Mapping[str, str]] = {
    "en": {
        "button.thread": "Thread",
        "thread.opened": "Conversation #{id} has its thread: {thread}. Messages there are notes; /reply "
                         "answers the customer.",
        "thread.name": "#{id} {contact}",
        "error.forged": "That button was not made by this bot; nothing was done.",
        "error.wrong_place": "Team commands work only in the team's server.",
        "error.no_thread": "Open a thread from a team chat channel (or press Thread on a card).",
        "option.id": "Conversation ID (leave out inside the conversation's thread)",
        "command.thread": "Open a thread for a conversation: messages there are notes, /reply answers.",
    },
    "id": {
        "button.thread": "Utas",
        "thread.opened": "Percakapan #{id} punya utas: {thread}. Pesan di sana menjadi catatan; /reply "
                         "membalas pelanggan.",
        "thread.name": "#{id} {contact}",
        "error.forged": "Tombol itu bukan buatan bot ini; tidak ada yang dijalankan.",
        "error.wrong_place": "Perintah tim hanya berlaku di server tim.",
        "error.no_thread": "Buka utas dari kanal obrolan tim (atau tekan Utas pada kartu).",
        "option.id": "ID percakapan (kosongkan di dalam utas percakapan itu)",
        "command.thread": "Buka utas untuk percakapan: pesan di sana menjadi catatan, /reply membalas.",
    },
}


def console_text(lang: str, key: str, **params: Any) -> str:
    """A sentence of the Discord console in ``lang`` (English when missing)."""
    template = CONSOLE_TEXT.get(lang, CONSOLE_TEXT["en"]).get(key) or CONSOLE_TEXT["en"][key]
    return template.format(**params)


# --- escaping ------------------------------------------------------------------------------------

# Characters that start markdown, a mention, a custom emoji or a masked link anywhere in a line.
_SPECIAL = frozenset("\\*_~|`<>[]()@")
# At the start of a line these begin a header ("# ", "## ", "### "), a list ("- ", "+ ", "1. ") or
# subtext ("-# "); "#12" is no header and stays as it is.
_LINE_START = re.compile(r"^(\s*)(?:([-+]|#(?=#{0,2}\s))|(\d+)\.)", re.MULTILINE)
_URL = re.compile(r"https?://[^\s<>]+")
_URL_TRAILING = ".,;:!?'\")]*_~|"


def _escape_plain(text: str) -> str:
    escaped = "".join(f"\\{c}" if c in _SPECIAL else c for c in text)
    return _LINE_START.sub(_escape_line_start, escaped)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, marker, number = match.groups()
    if number is not None:  # "1." : the dot makes the list
        return f"{indent}{number}\\."
    return f"{indent}\\{marker}"


def escape(text: str) -> str:
    """``text`` so that Discord shows it literally: no markdown, no mentions, no masked links.

    Markdown characters get a backslash, which Discord drops when it displays the message. Links
    are wrapped in ``<...>``: Discord still shows them as plain clickable links, but takes nothing
    inside for markdown and does not unfurl a preview. Mentions lose their syntax (``\\<\\@123\\>``),
    so they neither render as a ping pill nor notify anybody even where mentions are allowed.
    """
    out: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_URL_TRAILING)
        if len(url) <= len("https://"):
            continue
        out.append(_escape_plain(text[position:match.start()]))
        out.append(f"<{url}>")
        position = match.start() + len(url)
    out.append(_escape_plain(text[position:]))
    return "".join(out)


def quote(text: str) -> str:
    """Customer text as a Discord block quote, escaped, one ``> `` per line."""
    return "\n".join(f"> {escape(line)}" if line.strip() else ">" for line in text.splitlines() or [""])


# --- splitting -------------------------------------------------------------------------------------

_FENCE = "```"


def _cut_point(text: str, limit: int) -> int:
    """Where to end a part of at most ``limit`` characters: a line break, else a space, else ``limit``.

    A hard cut never separates a backslash from the character it escapes, nor breaks a ``<link>``.
    """
    newline = text.rfind("\n", 0, limit + 1)
    if newline > limit // 2:
        return newline
    space = text.rfind(" ", 0, limit + 1)
    if space > limit // 2:
        return space
    if newline > 0:
        return newline
    cut = limit
    opened = text.rfind("<http", 0, cut)
    if opened > 0 and text.find(">", opened, cut) == -1:
        cut = opened
    backslashes = len(text[:cut]) - len(text[:cut].rstrip("\\"))
    if backslashes % 2:
        cut -= 1
    return max(cut, 1)


_BRACKETED_LINK = re.compile(r"<(https?://[^\s<>]+)>")


def _inert_leading_link(text: str, limit: int) -> str:
    """``text`` with a ``<link>`` it starts with written as escaped plain text if it is longer than ``limit``.

    Such a link fits in no message, so it cannot stay one link: cut inside its brackets it would show a
    stray ``<`` and leave its end plain. As text it is cut like any other (each part shows its piece
    verbatim), and escaping the ``:`` keeps Discord from making a link, to a wrong address, of the
    first piece.
    """
    found = _BRACKETED_LINK.match(text)
    if found is None or found.end() <= limit:
        return text
    inert = _escape_plain(found.group(1)).replace("://", "\\://")
    return inert + text[found.end():]


def split_message(text: str, limit: int = MAX_LENGTH) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` characters, at line breaks or spaces if it can.

    A code block cut in two is closed at the end of one part and opened again in the next, so
    each part renders on its own. Whitespace-only text gives no parts.
    """
    if not text.strip():
        return []
    parts: list[str] = []
    rest = text
    reopen = ""
    while True:
        room = limit - len(reopen)
        if len(rest) <= room:
            parts.append(reopen + rest)
            break
        fits = room - len(_FENCE) - 1  # room to close a code block
        rest = _inert_leading_link(rest, fits)
        cut = _cut_point(rest, fits)
        chunk = (reopen + rest[:cut]).rstrip()
        # Drop the line break or space cut at, and nothing more: the next line keeps its indentation.
        rest = rest[cut + 1:] if rest[cut:cut + 1] in ("\n", " ") else rest[cut:]
        if chunk.count(_FENCE) % 2:
            chunk += "\n" + _FENCE
            reopen = _FENCE + "\n"
        else:
            reopen = ""
        if chunk.strip():
            parts.append(chunk)
        if not rest.strip():
            break
    return [p for p in parts if p.strip()]


# --- signed buttons ------------------------------------------------------------------------------


class ButtonSigner:
    """Puts a command and its signature into a button's ``custom_id``, and checks them on a press.

    A ``custom_id`` reads ``c1:<signature>:<command>``; the signature is an HMAC of the command with
    a key derived from the bot token, so only the bot can make one. Telegram's 64-byte callback
    data cannot carry a command, so the Telegram console keeps its buttons in the database; Discord's
    100 characters can, so a card needs no row of its own.
    """

    PREFIX = "c1:"
    SIGNATURE_LENGTH = 16  # base64 characters: 96 bits

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_token(cls, token: str) -> ButtonSigner:
        """A signer whose key only holders of the bot token can derive."""
        return cls(hashlib.sha256(b"saluran discord buttons\0" + token.encode()).digest())

    def _signature(self, command: str) -> str:
        digest = hmac.new(self._key, command.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[: self.SIGNATURE_LENGTH]

    def custom_id(self, command: str) -> str | None:
        """The ``custom_id`` of a button running ``command``; None when it does not fit in 100 characters."""
        value = f"{self.PREFIX}{self._signature(command)}:{command}"
        return value if len(value) <= MAX_CUSTOM_ID else None

    def command(self, custom_id: str) -> str | None:
        """The command a ``custom_id`` carries, or None when this bot did not sign it."""
        if not custom_id.startswith(self.PREFIX):
            return None
        signature, sep, command = custom_id[len(self.PREFIX):].partition(":")
        if not sep or not hmac.compare_digest(signature, self._signature(command)):
            return None
        return command


@dataclass(frozen=True, slots=True)
class DiscordButton:
    """One button as Discord takes it."""

    label: str
    custom_id: str
    style: int


def discord_buttons(buttons: Iterable[Button], signer: ButtonSigner) -> list[DiscordButton]:
    """Signed buttons, at most 25, without duplicates; a command too long for a custom_id is left out."""
    out: list[DiscordButton] = []
    seen: set[str] = set()
    for button in buttons:
        custom_id = signer.custom_id(button.command)
        if custom_id is None or custom_id in seen:
            continue
        seen.add(custom_id)
        label = button.label if len(button.label) <= MAX_LABEL else button.label[: MAX_LABEL - 1] + "…"
        style = _STYLES.get(button.style, 2)
        out.append(DiscordButton(label or button.command[:MAX_LABEL], custom_id, style))
        if len(out) == MAX_BUTTONS:
            break
    return out


def component_rows(buttons: Iterable[DiscordButton]) -> list[dict[str, Any]]:
    """Buttons as Discord's action rows (the JSON of a message's ``components``)."""
    items = [{"type": 2, "style": b.style, "label": b.label, "custom_id": b.custom_id} for b in buttons]
    rows = range(0, len(items), BUTTONS_PER_ROW)
    return [{"type": 1, "components": items[i : i + BUTTONS_PER_ROW]} for i in rows]


# --- rendering -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendered:
    """A view as Discord messages: ``parts`` (each at most 2,000 characters), the buttons that go on
    the last part, and the user ids the message means to ping (nobody else may be pinged)."""

    parts: tuple[str, ...]
    buttons: tuple[Button, ...] = ()
    pings: tuple[int, ...] = ()
    ok: bool = True


def render(view: View, mentions: Mapping[str, str | None] | None = None, *, thread_button: bool = True,
           limit: int = MAX_LENGTH) -> Rendered:
    """Render ``view`` for Discord.

    ``mentions`` maps member names to Discord user ids (a notice's ``mentions`` payload); members
    the view mentions that have an id are pinged with ``<@id>``, the others are named. With
    ``thread_button`` a card gets a Thread button (not inside the conversation's own thread).
    """
    people = _People(mentions or {})
    renderer = _RENDERERS.get(type(view))
    if renderer is None:
        text = _fallback(view)
        buttons = tuple(getattr(view, "buttons", ()) or ())
    else:
        text, buttons = renderer(view, people)
    if thread_button:
        buttons = _with_thread_button(view, buttons)
    parts = tuple(split_message(text, limit)) or (escape("-"),)
    return Rendered(parts, buttons, tuple(people.pinged), view.ok)


def _fallback(view: View) -> str:
    """Views without a Discord layout: the plain-text rendering, escaped, without its button line."""
    if dataclasses.is_dataclass(view) and any(f.name == "buttons" for f in dataclasses.fields(view)):
        view = dataclasses.replace(view, buttons=())  # type: ignore[call-arg]  # checked just above
    return escape(render_plain(view))


def _with_thread_button(view: View, buttons: tuple[Button, ...]) -> tuple[Button, ...]:
    card = view if isinstance(view, ConversationCard) else getattr(view, "card", None)
    if not isinstance(card, ConversationCard) or isinstance(view, ConversationDetailView):
        return buttons
    thread = Button(console_text(view.lang, "button.thread"), f"/thread {card.id}")
    return (*buttons, thread)


class _People:
    """Turns mentioned member names into pings (ids from the notice) and remembers who was pinged."""

    def __init__(self, ids: Mapping[str, str | None]) -> None:
        self.ids = ids
        self.pinged: list[int] = []

    def mention(self, names: Iterable[str]) -> str:
        """``<@id>`` for members with a Discord id (they will be pinged), an escaped ``@name`` otherwise."""
        out = []
        for name in names:
            raw = self.ids.get(name)
            if raw is not None and str(raw).isdigit():
                user = int(raw)
                if user not in self.pinged:
                    self.pinged.append(user)
                out.append(f"<@{user}>")
            else:
                out.append(escape(f"@{name}"))
        return " ".join(out)


def _card_lines(card: ConversationCard) -> list[str]:
    lang = card.lang
    head = (f"[{value_word(lang, card.priority)}] {value_word(lang, card.status)} · {card.channel}/"
            f"{value_word(lang, card.kind)} · {card.contact}")
    lines = [f"**#{card.id}** {escape(head)}"]
    if card.excerpt:
        lines.append(quote(card.excerpt))
    facts = [t(lang, "label.assignee", member=card.assignee) if card.assignee
             else t(lang, "label.unassigned")]
    if card.tags:
        facts.append(t(lang, "label.tags", tags=", ".join(card.tags)))
    due = due_phrase(lang, card.due_at, card.remaining)
    if due:
        facts.append(due)
    if card.snoozed_until is not None:
        facts.append(t(lang, "label.snoozed_until", at=when(card.snoozed_until)))
    if card.escalation_level:
        facts.append(t(lang, "label.escalation", level=card.escalation_level))
    lines.append(escape(" · ".join(facts)))
    if card.breached:
        targets = ", ".join(target_word(lang, b) for b in card.breached)
        lines.append(f"**{escape(t(lang, 'label.breached', targets=targets))}**")
    return lines


Renderer = Callable[[Any, _People], tuple[str, tuple[Button, ...]]]


def _render_card(view: Any, people: _People) -> tuple[str, tuple[Button, ...]]:
    card: ConversationCard = view
    return "\n".join(_card_lines(card)), card.buttons


def _render_queue(view: Any, people: _People) -> tuple[str, tuple[Button, ...]]:
    page: QueuePage = view
    lang = page.lang
    title = (t(lang, "queue.title_filtered", filters=page.filters, page=page.page) if page.filters
             else t(lang, "queue.title", page=page.page))
    out = [f"**{escape(title)}**"]
    if not page.cards:
        out.append(escape(t(lang, "queue.empty") if page.page == 1
                          else t(lang, "queue.empty_page", page=page.page)))
    for card in page.cards:
        out.append("")
        out.extend(_card_lines(card))
    # Every card's own buttons would pass Discord's 25; the page offers the way to each card instead.
    shows = tuple(Button(t(lang, "button.show_id", id=c.id), f"/show {c.id}") for c in page.cards)
    return "\n".join(out), (*page.buttons, *shows)


def _render_detail(view: Any, people: _People) -> tuple[str, tuple[Button, ...]]:
    detail: ConversationDetailView = view
    lang, card = detail.lang, detail.card
    title = t(lang, "detail.title", id=card.id, kind=value_word(lang, card.kind), channel=card.channel,
              contact=card.contact)
    out = [f"**{escape(title)}**", *_card_lines(card)[2 if card.excerpt else 1:]]
    if detail.subject:
        out.append(escape(t(lang, "detail.subject", subject=detail.subject)))
    out += ["", f"**{escape(t(lang, 'detail.messages'))}**"]
    if detail.older_messages:
        out.append(escape(t(lang, "detail.older", count=detail.older_messages)))
    if not detail.messages:
        out.append(escape(t(lang, "detail.no_messages")))
    for m in detail.messages:
        author = f"{m.author} ({t(lang, 'label.note')})" if m.direction == "note" else m.author
        arrow = {"in": "←", "out": "→", "note": "✎"}.get(m.direction, "·")
        files = "".join(f" [{a}]" for a in m.attachments)
        out.append(f"{arrow} {escape(when(m.at))} **{escape(author)}**{escape(files)}")
        out.append(quote(m.text))
    if detail.events:
        out += ["", f"**{escape(t(lang, 'detail.events'))}**"]
        out += [escape(t(lang, "detail.event", at=when(e.at), type=e.type, actor=e.actor))
                for e in detail.events]
    return "\n".join(out), card.buttons


def _render_confirmation(view: Any, people: _People) -> tuple[str, tuple[Button, ...]]:
    done: Confirmation = view
    return escape(done.message), done.buttons


def _render_error(view: Any, people: _People) -> tuple[str, tuple[Button, ...]]:
    error: ErrorView = view
    text = escape(error.message)
    if error.usage:
        text += "\n" + escape(t(error.lang, "label.usage", usage=error.usage))
    return text, ()


def _render_help(view: Any, people: _People) -> tuple[str, tuple[Button, ...]]:
    help_view: HelpView = view
    lang = help_view.lang
    if help_view.detail is not None:
        entry = help_view.detail
        out = [f"**{escape(entry.usage)}**", escape(entry.summary)]
        if entry.aliases:
            out.append(escape(t(lang, "help.aliases", aliases=", ".join(f"/{a}" for a in entry.aliases))))
        out.append(escape(t(lang, "help.role", role=t(lang, f"role.{entry.role}"))))
        for sub, role in entry.subcommand_roles:
            out.append(escape(t(lang, "help.subcommand_role", subcommand=sub, role=t(lang, f"role.{role}"))))
        if entry.example:
            out.append(escape(t(lang, "help.example", example=entry.example)))
        return "\n".join(out), ()
    out = [f"**{escape(t(lang, 'help.title'))}**"]
    for entry in help_view.entries:
        needs = ""
        if entry.role != "agent":
            needs = " " + t(lang, "help.needs_role", role=t(lang, f"role.{entry.role}"))
        out.append(f"**/{escape(entry.name)}**{escape(needs)} {escape(entry.summary)}")
    out.append(escape(t(lang, "help.more")))
    return "\n".join(out), ()


def _render_conversation_notice(view: Any, people: _People) -> tuple[str, tuple[Button, ...]]:
    notice: ConversationNotice = view
    header = f"**{escape(t(notice.lang, 'notice.new' if notice.event == 'new' else 'notice.reopened'))}**"
    if notice.mentions:
        header += " " + people.mention(notice.mentions)
    return "\n".join([header, *_card_lines(notice.card)]), notice.card.buttons


def _render_sla_notice(view: Any, people: _People) -> tuple[str, tuple[Button, ...]]:
    notice: SlaNotice = view
    lang = notice.lang
    header = f"**{escape(sla_sentence(notice))}**"
    if notice.mentions:
        header += " " + people.mention(notice.mentions)
    out = [header]
    if notice.priority_from and notice.priority_to:
        out.append(escape(t(lang, "notice.sla_priority", before=value_word(lang, notice.priority_from),
                            after=value_word(lang, notice.priority_to))))
    if notice.deferred:
        out.append(escape(t(lang, "notice.sla_deferred")))
    if notice.late:
        out.append(escape(t(lang, "notice.sla_late")))
    return "\n".join([*out, *_card_lines(notice.card)]), notice.card.buttons


def _render_digest(view: Any, people: _People) -> tuple[str, tuple[Button, ...]]:
    digest: Digest = view
    lang = digest.lang
    summary = ", ".join(t(lang, f"notice.digest_count_{kind}", count=count) for kind, count in digest.counts)
    head = t(lang, "notice.digest_title", start=digest.start.strftime("%H:%M"),
             end=digest.end.strftime("%H:%M %Z"), summary=summary)
    header = f"**{escape(head)}**"
    if digest.mentions:
        header += " " + people.mention(digest.mentions)
    out = [header, escape(t(lang, "notice.digest_why"))]
    for item in digest.items:
        if item.conversation_id is None or item.kind not in ("new", "reopened"):
            out.append(escape(item.detail))
            continue
        where = item.channel or "-"
        if item.kind == "reopened":
            where += ", " + t(lang, "notice.digest_reopened")
        who = f"{item.contact or '-'} ({where})"
        line = f"**#{item.conversation_id}** {escape(who)}"
        out.append(line + (f": {escape(item.excerpt)}" if item.excerpt else ""))
    out.append(escape(t(lang, "notice.digest_more", count=digest.more) if digest.more
                      else t(lang, "notice.digest_all_in_queue")))
    return "\n".join(out), digest.buttons


def _render_failed(view: Any, people: _People) -> tuple[str, tuple[Button, ...]]:
    notice: FailedDeliveryNotice = view
    lang = notice.lang
    head = t(lang, "notice.failed", id=notice.delivery_id, purpose=notice.purpose,
             destination=notice.destination, attempts=notice.attempts)
    if notice.conversation_id is not None:
        head += " " + t(lang, "notice.failed_conversation", id=notice.conversation_id)
    header = f"**{escape(head)}**"
    if notice.mentions:
        header += " " + people.mention(notice.mentions)
    out = [header]
    if notice.error:
        out.append(quote(t(lang, "notice.failed_error", error=notice.error)))
    out.append(escape(t(lang, "notice.failed_hint", id=notice.delivery_id)))
    return "\n".join(out), notice.buttons


def _render_sla_overview(view: Any, people: _People) -> tuple[str, tuple[Button, ...]]:
    overview: SlaOverview = view
    return _fallback(dataclasses.replace(overview, buttons=())), overview.buttons


_RENDERERS: dict[type, Renderer] = {
    ConversationCard: _render_card,
    QueuePage: _render_queue,
    ConversationDetailView: _render_detail,
    Confirmation: _render_confirmation,
    ErrorView: _render_error,
    HelpView: _render_help,
    ConversationNotice: _render_conversation_notice,
    SlaNotice: _render_sla_notice,
    Digest: _render_digest,
    FailedDeliveryNotice: _render_failed,
    SlaOverview: _render_sla_overview,
}
