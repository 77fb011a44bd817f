"""Views as Telegram messages: HTML text (the twin of ``inbox.render_text``) and inline keyboards.

Safety first: every piece of text that is not markup we wrote — customer text above all, but also
names, tags and translated sentences — goes through ``html.escape``, so ``<b>``, ``&`` or ``<a href>``
typed by a customer shows as typed and can never open an entity. Markup is built from ``Span``s
(a text and the tags around it) and only turned into HTML at the very end.

Telegram counts a message's length after parsing the entities: at most 4,096 UTF-16 code units.
``render`` cuts a long view between lines, and a line too long by itself at a space where it can,
always between spans or inside a span's text, so every chunk is valid HTML on its own: no tag is
left open and no ``&amp;`` is cut in two.

Buttons are not part of the text: ``Rendered.rows`` holds them, and ``keyboard`` turns them into an
``InlineKeyboardMarkup`` whose callback data (at most 64 bytes) is only ``"<ref>.<index>"``: the
console looks the command up in the database (``inbox.models.ConsoleRef``) when a button is pressed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from inbox import render_text
from inbox.i18n import t
from inbox.render_text import due_phrase, sla_sentence, target_word, value_word
from inbox.views import (
    BudgetNotice,
    Button,
    Confirmation,
    ConversationCard,
    ConversationDetailView,
    ConversationNotice,
    Digest,
    DigestItem,
    ErrorView,
    FailedDeliveryNotice,
    HealthNotice,
    HelpEntry,
    HelpView,
    QueuePage,
    SlaNotice,
    SlaOverview,
    SlaView,
    TemplateList,
    TemplateView,
    View,
)

TEXT_LIMIT = 4096  # UTF-16 code units of one message, counted after entity parsing
CALLBACK_DATA_LIMIT = 64  # bytes of an inline button's callback data
BUTTONS_PER_ROW = 3
TIME_FORMAT = "%Y-%m-%d %H:%M %Z"
_TEMPLATE_PREVIEW = 70
_MARKERS = {"in": "⬅️", "out": "➡️", "note": "📝"}
# Labels only this console shows (the catalogues hold the shared ones).
LABELS: Mapping[str, Mapping[str, str]] = {
    "en": {"open_thread": "Open thread"},
    "id": {"open_thread": "Buka utas"},
}
_CALLBACK = re.compile(r"^(\d{1,18})\.(\d{1,3})$")


def label(lang: str, key: str) -> str:
    """A label of this console in ``lang`` (English when missing)."""
    return LABELS.get(lang, LABELS["en"]).get(key) or LABELS["en"][key]


# --- rich text ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """Plain text and the tags around it (opening tags, outermost first, e.g. ``("b",)``)."""

    text: str
    tags: tuple[str, ...] = ()

    def html(self) -> str:
        """The span as Telegram HTML, its text escaped."""
        opening = "".join(f"<{tag}>" for tag in self.tags)
        closing = "".join(f"</{tag.split(' ', 1)[0]}>" for tag in reversed(self.tags))
        return f"{opening}{html.escape(self.text, quote=False)}{closing}"


Line = tuple[Span, ...]


def plain(text: str) -> Span:
    """Text without formatting."""
    return Span(text)


def bold(text: str) -> Span:
    """Bold text."""
    return Span(text, ("b",))


def italic(text: str) -> Span:
    """Italic text."""
    return Span(text, ("i",))


def code(text: str) -> Span:
    """Monospaced text (commands, ids)."""
    return Span(text, ("code",))


def link(text: str, href: str) -> Span:
    """A link; the address is escaped for the attribute."""
    return Span(text, (f'a href="{html.escape(href, quote=True)}"',))


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def line_length(line: Line) -> int:
    """Length of a line once Telegram parsed its entities."""
    return sum(utf16_len(span.text) for span in line)


def line_html(line: Line) -> str:
    """A line as HTML."""
    return "".join(span.html() for span in line)


def paginate(lines: Sequence[Line], limit: int = TEXT_LIMIT) -> list[str]:
    """HTML chunks of at most ``limit`` parsed characters each, cut between lines where possible."""
    chunks: list[str] = []
    current: list[Line] = []
    size = 0

    def flush() -> None:
        nonlocal current, size
        if any(span.text.strip() for line in current for span in line):  # Telegram refuses empty texts
            chunks.append("\n".join(line_html(line) for line in current).strip("\n"))
        current, size = [], 0

    for whole in lines:
        for piece in _fit(whole, limit):
            extra = line_length(piece) + (1 if current else 0)
            if current and size + extra > limit:
                flush()
                extra = line_length(piece)
            current.append(piece)
            size += extra
    flush()
    return chunks


def _fit(line: Line, limit: int) -> list[Line]:
    """A line cut into pieces no longer than ``limit``, each span keeping its own tags."""
    if line_length(line) <= limit:
        return [line]
    pieces: list[Line] = []
    current: list[Span] = []
    room = limit
    for span in line:
        text = span.text
        while utf16_len(text) > room:
            cut = _cut(text, room)
            if cut == 0:  # nothing fits in what is left of this piece: start a new one
                pieces.append(tuple(current))
                current, room = [], limit
                continue
            current.append(replace(span, text=text[:cut]))
            pieces.append(tuple(current))
            current, room = [], limit
            text = text[cut:].lstrip(" ") if text[cut : cut + 1] == " " else text[cut:]
        if text:
            current.append(replace(span, text=text))
            room -= utf16_len(text)
    if current:
        pieces.append(tuple(current))
    return [p for p in pieces if p]


def _cut(text: str, room: int) -> int:
    """Where to cut ``text`` so the head fits in ``room``: at a line break or space in its second
    half if there is one, else as late as possible (never inside a surrogate pair: str indexes code
    points)."""
    if room <= 0:
        return 0
    end = 0
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > room:
            break
        end = index + 1
    head = text[:end]
    for mark in ("\n", " "):
        at = head.rfind(mark)
        if at >= max(1, end // 2):
            return at + 1 if mark == "\n" else at
    return end


# --- buttons ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendered:
    """A view as Telegram messages: HTML chunks, and button rows for the last one."""

    chunks: tuple[str, ...]
    rows: tuple[tuple[Button, ...], ...] = ()

    @property
    def buttons(self) -> list[Button]:
        """Every button, row by row."""
        return [button for row in self.rows for button in row]


def callback_data(ref: int, index: int) -> str:
    """The callback data of button ``index`` on the message recorded as ConsoleRef ``ref``."""
    data = f"{ref}.{index}"
    assert len(data.encode()) <= CALLBACK_DATA_LIMIT
    return data


def parse_callback(data: str | None) -> tuple[int, int] | None:
    """``(ref, index)`` from callback data we made; None for anything else (a forgery or an old bot)."""
    match = _CALLBACK.match(data or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def keyboard(rows: Sequence[Sequence[Button]], ref: int) -> InlineKeyboardMarkup | None:
    """The inline keyboard for ``rows``; each button's data points at its command in ConsoleRef ``ref``."""
    index = 0
    out: list[list[InlineKeyboardButton]] = []
    for row in rows:
        line = []
        for button in row:
            line.append(InlineKeyboardButton(button.label[:64], callback_data=callback_data(ref, index)))
            index += 1
        if line:
            out.append(line)
    return InlineKeyboardMarkup(out) if out else None


def _rows(buttons: Iterable[Button], per_row: int = BUTTONS_PER_ROW) -> tuple[tuple[Button, ...], ...]:
    flat = list(buttons)
    return tuple(tuple(flat[i : i + per_row]) for i in range(0, len(flat), per_row))


# --- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ctx:
    """What rendering one view needs besides the view."""

    lang: str
    mentions: Mapping[str, str | None] = field(default_factory=dict)
    topics: bool = False


def render(
    view: View,
    *,
    mentions: Mapping[str, str | None] | None = None,
    topics: bool = False,
    limit: int = TEXT_LIMIT,
) -> Rendered:
    """The view as HTML chunks and button rows.

    ``mentions`` maps member names to Telegram user ids (a mention becomes a link that notifies
    them); with ``topics`` a conversation's buttons include "open thread" (the chat is a forum).
    """
    ctx = _Ctx(view.lang, dict(mentions or {}), topics)
    renderer = _RENDERERS.get(type(view))
    if renderer is None:
        # A view this console has no HTML for yet: the plain renderer's words, escaped, and its buttons.
        lines: list[Line] = [(plain(line),) for line in render_text.render(view).split("\n")]
        rows: tuple[tuple[Button, ...], ...] = _rows(getattr(view, "buttons", ()) or ())
    else:
        lines, rows = renderer(view, ctx)
    return Rendered(tuple(paginate(lines, limit)), rows)


def when(instant: datetime | None) -> str:
    """An instant (already in the team's timezone) as ``2026-11-02 16:00 WIB``."""
    return instant.strftime(TIME_FORMAT) if instant else "-"


def _mention_spans(ctx: _Ctx, names: Iterable[str]) -> list[Span]:
    spans: list[Span] = []
    for name in names:
        user_id = ctx.mentions.get(name)
        spans.append(plain(" "))
        spans.append(link(f"@{name}", f"tg://user?id={user_id}") if user_id else plain(f"@{name}"))
    return spans


def _card_buttons(ctx: _Ctx, card: ConversationCard) -> tuple[Button, ...]:
    buttons = card.buttons
    if ctx.topics and card.status != "resolved" and not any(b.command.startswith("/open") for b in buttons):
        buttons = (*buttons, Button(label(ctx.lang, "open_thread"), f"/open {card.id}"))
    return buttons


def _card_lines(card: ConversationCard, *, head: bool = True) -> list[Line]:
    lang = card.lang
    lines: list[Line] = []
    if head:
        lines.append(
            (
                bold(f"#{card.id}"),
                plain(
                    f" [{value_word(lang, card.priority)}] {value_word(lang, card.status)} · "
                    f"{card.channel}/{value_word(lang, card.kind)} · "
                ),
                bold(card.contact),
            )
        )
    if card.excerpt:
        lines.append((italic(f"“{card.excerpt}”"),))
    facts = [
        t(lang, "label.assignee", member=card.assignee) if card.assignee else t(lang, "label.unassigned")
    ]
    if card.tags:
        facts.append(t(lang, "label.tags", tags=", ".join(card.tags)))
    due = due_phrase(lang, card.due_at, card.remaining)
    if due:
        facts.append(due)
    if card.snoozed_until is not None:
        facts.append(t(lang, "label.snoozed_until", at=when(card.snoozed_until)))
    if card.escalation_level:
        facts.append(t(lang, "label.escalation", level=card.escalation_level))
    lines.append((plain(" · ".join(facts)),))
    if card.breached:
        targets = ", ".join(target_word(lang, b) for b in card.breached)
        lines.append((bold("⚠️ " + t(lang, "label.breached", targets=targets)),))
    return lines


Out = tuple[list[Line], tuple[tuple[Button, ...], ...]]


def _render_card(view: Any, ctx: _Ctx) -> Out:
    card: ConversationCard = view
    return _card_lines(card), _rows(_card_buttons(ctx, card))


def _render_queue(view: Any, ctx: _Ctx) -> Out:
    page: QueuePage = view
    lang = page.lang
    title = (
        t(lang, "queue.title_filtered", filters=page.filters, page=page.page)
        if page.filters
        else t(lang, "queue.title", page=page.page)
    )
    lines: list[Line] = [(bold(title),)]
    if not page.cards:
        lines.append(
            (
                plain(
                    t(lang, "queue.empty") if page.page == 1 else t(lang, "queue.empty_page", page=page.page)
                ),
            )
        )
    rows: list[tuple[Button, ...]] = []
    for card in page.cards:
        lines.append(())
        lines.extend(_card_lines(card))
        # Several cards share one keyboard: each row carries its conversation's id.
        row = tuple(
            Button(f"#{card.id} {b.label}", b.command, b.style) for b in card.buttons[:BUTTONS_PER_ROW]
        )
        if row:
            rows.append(row)
    if page.buttons:
        rows.append(tuple(page.buttons))
    return lines, tuple(rows)


def _render_detail(view: Any, ctx: _Ctx) -> Out:
    detail: ConversationDetailView = view
    lang, card = detail.lang, detail.card
    lines: list[Line] = [
        (
            bold(
                t(
                    lang,
                    "detail.title",
                    id=card.id,
                    kind=value_word(lang, card.kind),
                    channel=card.channel,
                    contact=card.contact,
                )
            ),
        )
    ]
    lines.extend(_card_lines(card, head=False))
    if detail.subject:
        lines.append((plain(t(lang, "detail.subject", subject=detail.subject)),))
    lines += [(), (bold(t(lang, "detail.messages")),)]
    if detail.older_messages:
        lines.append((italic(t(lang, "detail.older", count=detail.older_messages)),))
    if not detail.messages:
        lines.append((plain(t(lang, "detail.no_messages")),))
    for m in detail.messages:
        author = f"{m.author} ({t(lang, 'label.note')})" if m.direction == "note" else m.author
        files = "".join(f" [{a}]" for a in m.attachments)
        head = f"{_MARKERS.get(m.direction, '•')} {when(m.at)} "
        lines.append(
            (
                plain(head),
                bold(author),
                plain(": "),
                Span(m.text, ("i",) if m.direction == "note" else ()),
                plain(files),
            )
        )
    if detail.events:
        lines += [(), (bold(t(lang, "detail.events")),)]
        lines += [
            (plain(t(lang, "detail.event", at=when(e.at), type=e.type, actor=e.actor)),)
            for e in detail.events
        ]
    return lines, _rows(_card_buttons(ctx, card))


def _render_confirmation(view: Any, ctx: _Ctx) -> Out:
    done: Confirmation = view
    return [(plain("✅ " + done.message),)], _rows(done.buttons)


def _render_error(view: Any, ctx: _Ctx) -> Out:
    error: ErrorView = view
    lines: list[Line] = [(plain("⚠️ " + error.message),)]
    if error.usage:
        lines.append((plain(t(error.lang, "label.usage", usage=error.usage)),))
    return lines, ()


def _help_detail(lang: str, entry: HelpEntry) -> list[Line]:
    lines: list[Line] = [(code(entry.usage),), (plain(entry.summary),)]
    if entry.aliases:
        lines.append((plain(t(lang, "help.aliases", aliases=", ".join(f"/{a}" for a in entry.aliases))),))
    lines.append((plain(t(lang, "help.role", role=t(lang, f"role.{entry.role}"))),))
    for sub, role in entry.subcommand_roles:
        lines.append((plain(t(lang, "help.subcommand_role", subcommand=sub, role=t(lang, f"role.{role}"))),))
    if entry.example:
        lines.append((plain(t(lang, "help.example", example=entry.example)),))
    return lines


def _render_help(view: Any, ctx: _Ctx) -> Out:
    help_view: HelpView = view
    lang = help_view.lang
    if help_view.detail is not None:
        return _help_detail(lang, help_view.detail), ()
    lines: list[Line] = [(bold(t(lang, "help.title")),)]
    for entry in help_view.entries:
        needs = ""
        if entry.role != "agent":
            needs = " " + t(lang, "help.needs_role", role=t(lang, f"role.{entry.role}"))
        by_role: dict[str, list[str]] = {}
        for sub, role in entry.subcommand_roles:
            by_role.setdefault(role, []).append(sub)
        for role, subs in by_role.items():
            needs += " " + t(
                lang, "help.sub_needs_role", subcommands=", ".join(subs), role=t(lang, f"role.{role}")
            )
        names = ", ".join([f"/{entry.name}", *(f"/{a}" for a in entry.aliases)])
        lines.append((bold(names), plain(needs)))
        lines.append((plain("    " + entry.summary),))
    lines.append((italic(t(lang, "help.more")),))
    return lines, ()


def _render_templates(view: Any, ctx: _Ctx) -> Out:
    listing: TemplateList = view
    if not listing.templates:
        return [(plain(t(listing.lang, "template.empty")),)], ()
    lines: list[Line] = [(bold(t(listing.lang, "template.title")),)]
    for item in listing.templates:
        flat = " ".join(item.text.split())
        preview = flat if len(flat) <= _TEMPLATE_PREVIEW else flat[: _TEMPLATE_PREVIEW - 1] + "…"
        lines.append((code(f":{item.name}"), plain(f" — {preview}")))
    return lines, ()


def _render_template(view: Any, ctx: _Ctx) -> Out:
    shown: TemplateView = view
    lang = shown.lang
    lines: list[Line] = [(code(f":{shown.template.name}"),), (plain(shown.template.text),)]
    if shown.placeholders:
        names = ", ".join("{" + p + "}" for p in shown.placeholders)
        lines.append((plain(t(lang, "template.placeholders", placeholders=names)),))
    lines.append((italic(t(lang, "template.send_hint", name=shown.template.name)),))
    return lines, ()


def _render_sla(view: Any, ctx: _Ctx) -> Out:
    sla: SlaView = view
    lang = sla.lang
    lines: list[Line] = [
        (bold(t(lang, "sla.title", id=sla.conversation_id, status=value_word(lang, sla.status))),),
        (plain(t(lang, "sla.policy", policy=sla.policy) if sla.policy else t(lang, "sla.no_policy")),),
    ]
    for d in sla.deadlines:
        value = due_phrase(lang, d.due_at, d.remaining) or t(lang, "sla.not_set")
        line: Line = (plain(f"{target_word(lang, d.name)}: {value}"),)
        if d.breached:
            line = (*line, plain(" "), bold(t(lang, "sla.breached")))
        lines.append(line)
    if sla.first_response_at is not None:
        lines.append((plain(t(lang, "sla.first_response_at", at=when(sla.first_response_at))),))
    return lines, ()


def _render_sla_overview(view: Any, ctx: _Ctx) -> Out:
    overview: SlaOverview = view
    lang = overview.lang
    if not overview.lines:
        return [(plain(t(lang, "sla.overview_empty")),)], _rows(overview.buttons)
    lines: list[Line] = [(bold(t(lang, "sla.overview_title")),)]
    for item in overview.lines:
        parts = []
        if item.deadline:
            due = due_phrase(lang, item.due_at, item.remaining) or '-'
            parts.append(f"{target_word(lang, item.deadline)}: {due}")
        parts.append(
            t(lang, "label.assignee", member=item.assignee) if item.assignee else t(lang, "label.unassigned")
        )
        if item.breached:
            parts.append(
                t(lang, "label.breached", targets=", ".join(target_word(lang, b) for b in item.breached))
            )
        lines.append(
            (
                bold(f"#{item.conversation_id}"),
                plain(f" [{value_word(lang, item.priority)}] · " + " · ".join(parts)),
            )
        )
    return lines, _rows(overview.buttons, 4)


def _render_conversation_notice(view: Any, ctx: _Ctx) -> Out:
    notice: ConversationNotice = view
    header = t(notice.lang, "notice.new" if notice.event == "new" else "notice.reopened")
    icon = "🆕 " if notice.event == "new" else "🔁 "
    lines: list[Line] = [
        (bold(icon + header), *_mention_spans(ctx, notice.mentions)),
        *_card_lines(notice.card),
    ]
    return lines, _rows(_card_buttons(ctx, notice.card))


def _render_sla_notice(view: Any, ctx: _Ctx) -> Out:
    notice: SlaNotice = view
    lang = notice.lang
    icon = "⏰ " if notice.event == "warning" else "🚨 "
    lines: list[Line] = [(bold(icon + sla_sentence(notice)), *_mention_spans(ctx, notice.mentions))]
    if notice.priority_from and notice.priority_to:
        lines.append(
            (
                plain(
                    t(
                        lang,
                        "notice.sla_priority",
                        before=value_word(lang, notice.priority_from),
                        after=value_word(lang, notice.priority_to),
                    )
                ),
            )
        )
    if notice.deferred:
        lines.append((italic(t(lang, "notice.sla_deferred")),))
    if notice.late:
        lines.append((italic(t(lang, "notice.sla_late")),))
    lines.extend(_card_lines(notice.card))
    return lines, _rows(_card_buttons(ctx, notice.card))


def _digest_item(lang: str, item: DigestItem) -> Line:
    if item.conversation_id is None or item.kind not in ("new", "reopened"):
        return (plain("• " + item.detail),)
    where = item.channel or "-"
    if item.kind == "reopened":
        where += ", " + t(lang, "notice.digest_reopened")
    line: Line = (plain("• "), bold(f"#{item.conversation_id}"), plain(f" {item.contact or '-'} ({where})"))
    return (*line, plain(": "), italic(item.excerpt)) if item.excerpt else line


def _render_digest(view: Any, ctx: _Ctx) -> Out:
    digest: Digest = view
    lang = digest.lang
    summary = ", ".join(t(lang, f"notice.digest_count_{kind}", count=count) for kind, count in digest.counts)
    head = t(
        lang,
        "notice.digest_title",
        start=digest.start.strftime("%H:%M"),
        end=digest.end.strftime("%H:%M %Z"),  # a digest spans minutes: the date would only clutter it
        summary=summary,
    )
    lines: list[Line] = [
        (bold("📋 " + head), *_mention_spans(ctx, digest.mentions)),
        (italic(t(lang, "notice.digest_why")),),
    ]
    lines += [_digest_item(lang, item) for item in digest.items]
    lines.append(
        (
            plain(
                t(lang, "notice.digest_more", count=digest.more)
                if digest.more
                else t(lang, "notice.digest_all_in_queue")
            ),
        )
    )
    return lines, _rows(digest.buttons)


def _render_failed(view: Any, ctx: _Ctx) -> Out:
    notice: FailedDeliveryNotice = view
    lang = notice.lang
    head = t(
        lang,
        "notice.failed",
        id=notice.delivery_id,
        purpose=notice.purpose,
        destination=notice.destination,
        attempts=notice.attempts,
    )
    if notice.conversation_id is not None:
        head += " " + t(lang, "notice.failed_conversation", id=notice.conversation_id)
    lines: list[Line] = [(bold("❗ " + head), *_mention_spans(ctx, notice.mentions))]
    if notice.error:
        lines.append((plain(t(lang, "notice.failed_error", error=notice.error)),))
    lines.append((italic(t(lang, "notice.failed_hint", id=notice.delivery_id)),))
    return lines, _rows(notice.buttons)


def _render_health(view: Any, ctx: _Ctx) -> Out:
    notice: HealthNotice = view
    if notice.healthy:
        return [(plain("✅ " + t(notice.lang, "notice.health_ok", channel=notice.channel)),)], ()
    detail = notice.detail or t(notice.lang, "notice.health_unknown")
    return [(bold("❗ " + t(notice.lang, "notice.health_error", channel=notice.channel, detail=detail)),)], ()


def _render_budget(view: Any, ctx: _Ctx) -> Out:
    notice: BudgetNotice = view
    lines: list[Line] = [(bold(notice.message),)]
    if notice.details:
        lines.append((plain(", ".join(f"{key}: {value}" for key, value in notice.details)),))
    return lines, ()


_RENDERERS: dict[type, Callable[[Any, _Ctx], Out]] = {
    ConversationCard: _render_card,
    QueuePage: _render_queue,
    ConversationDetailView: _render_detail,
    Confirmation: _render_confirmation,
    ErrorView: _render_error,
    HelpView: _render_help,
    TemplateList: _render_templates,
    TemplateView: _render_template,
    SlaView: _render_sla,
    SlaOverview: _render_sla_overview,
    ConversationNotice: _render_conversation_notice,
    SlaNotice: _render_sla_notice,
    Digest: _render_digest,
    FailedDeliveryNotice: _render_failed,
    HealthNotice: _render_health,
    BudgetNotice: _render_budget,
}
