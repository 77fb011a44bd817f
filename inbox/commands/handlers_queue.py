"""Reading commands: /queue, /show and /sla."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlmodel import col

from inbox.actions import normalise_tag
from inbox.commands.cards import card_from_detail, card_from_item, nearest_due
from inbox.commands.context import CommandDeps, Context
from inbox.commands.errors import CommandNotFound, UsageError
from inbox.commands.parse import Args
from inbox.commands.registry import Cog, command
from inbox.errors import ConversationNotFound
from inbox.models import Channel, Conversation, Role, Status
from inbox.queries import QueueFilter, conversation_detail, list_queue, nearest_deadlines
from inbox.views import (
    Button,
    ConversationDetailView,
    EventItem,
    MessageItem,
    QueuePage,
    SlaDeadline,
    SlaLine,
    SlaOverview,
    SlaView,
    View,
)

PAGE_SIZE = 10
DETAIL_MESSAGES = 20
DETAIL_EVENTS = 10
SLA_OVERVIEW_SIZE = 10
SLA_TARGETS = ("first_response", "next_response", "resolution")


@dataclass
class QueueRequest:
    """A parsed ``/queue`` filter; ``canonical`` rebuilds it for the paging buttons."""

    include_waiting: bool = False
    mine: bool = False
    unassigned: bool = False
    tag: str | None = None
    channel: str | None = None
    page: int = 1
    extra: list[str] = field(default_factory=list)

    def canonical(self) -> str:
        """The filter words in a fixed order, without the page."""
        parts = (["all"] if self.include_waiting else []) + (["mine"] if self.mine else [])
        parts += ["unassigned"] if self.unassigned else []
        parts += [f"#{self.tag}"] if self.tag else []
        parts += [f"channel:{self.channel}"] if self.channel else []
        return " ".join(parts)


def _page_number(word: str | None) -> int:
    if word is None:
        raise UsageError("error.missing_argument", argument="N")
    if not word.isdigit() or not 0 < int(word) <= 100_000:
        raise UsageError("error.bad_page", value=word)
    return int(word)


def parse_queue_filter(words: list[str]) -> QueueRequest:
    """Read ``mine``, ``unassigned``, ``all``, ``#tag``, ``channel:NAME`` and ``page N`` in any order."""
    request = QueueRequest()
    pending = list(words)
    while pending:
        word = pending.pop(0)
        low = word.lower()
        if low == "mine":
            request.mine = True
        elif low == "unassigned":
            request.unassigned = True
        elif low == "all":
            request.include_waiting = True
        elif low.startswith("#") and len(low) > 1:
            request.tag = normalise_tag(word)
        elif low.startswith("channel:") and len(word) > len("channel:"):
            request.channel = word[len("channel:"):]
        elif low == "page":
            request.page = _page_number(pending.pop(0) if pending else None)
        elif low.startswith("page:"):
            request.page = _page_number(word[len("page:"):])
        else:
            raise UsageError("error.bad_filter", value=word)
    return request


class QueueCommands(Cog):
    """Looking at the work: the queue, one conversation, SLA deadlines."""

    def __init__(self, deps: CommandDeps) -> None:
        self.deps = deps

    @command(
        "queue", aliases=("q",), role=Role.AGENT,
        usage="/queue [mine|unassigned|all] [#TAG] [channel:NAME] [page N]",
        summary={
            "en": "Open work, most urgent first, 10 per page. 'all' adds pending and snoozed ones.",
            "id": "Pekerjaan terbuka, yang paling mendesak dulu, 10 per halaman. "
                  "'all' menyertakan yang menunggu dan ditunda.",
        },
        example="/queue mine #billing",
    )
    async def queue(self, ctx: Context, args: Args) -> View:
        """List the queue page the filter asks for."""
        request = parse_queue_filter(args.words())
        filt = QueueFilter(
            include_waiting=request.include_waiting,
            assignee=ctx.member.name if request.mine else None, unassigned=request.unassigned,
            channel=request.channel, tag=request.tag,
            limit=PAGE_SIZE + 1, offset=(request.page - 1) * PAGE_SIZE,
        )
        # One read (two for an empty page): no transaction needed around it.
        async with self.deps.db.lone_reads() as session:
            items = await list_queue(session, ctx.now(), filt)
            if not items and request.channel is not None:  # only an empty page can mean a wrong name
                query = select(col(Channel.id)).where(col(Channel.name) == request.channel)
                if await session.scalar(query) is None:
                    raise CommandNotFound("error.unknown_channel", name=request.channel)
        has_next = len(items) > PAGE_SIZE
        filters = request.canonical()
        base = f"/queue {filters} page" if filters else "/queue page"
        buttons = []
        if request.page > 1:
            buttons.append(Button(ctx.t("button.prev"), f"{base} {request.page - 1}"))
        if has_next:
            buttons.append(Button(ctx.t("button.next"), f"{base} {request.page + 1}"))
        return QueuePage(
            lang=ctx.lang, filters=filters, page=request.page, page_size=PAGE_SIZE,
            cards=tuple(card_from_item(ctx, item) for item in items[:PAGE_SIZE]),
            has_next=has_next, buttons=tuple(buttons),
        )

    @command(
        "show", aliases=("s",), role=Role.AGENT, usage="/show ID", conversation_arg="required",
        summary={
            "en": "One conversation: its details, latest messages and events.",
            "id": "Satu percakapan: detailnya, pesan dan kejadian terakhirnya.",
        },
        example="/show 12",
    )
    async def show(self, ctx: Context, args: Args) -> View:
        """Show a conversation's story."""
        conversation_id = ctx.conversation_id(args)
        args.expect_end()
        async with self.deps.db.reading() as session:  # three reads of one snapshot; no write lock
            detail = await conversation_detail(session, conversation_id)
        messages = detail.messages[-DETAIL_MESSAGES:]
        return ConversationDetailView(
            lang=ctx.lang, card=card_from_detail(ctx, detail, show_button=False),
            subject=detail.conversation.subject,
            messages=tuple(
                MessageItem(direction=m.direction, author=m.author, text=m.text,
                            at=ctx.local(m.created_at) or m.created_at,
                            attachments=tuple(str(a.get("type", "file")) for a in m.attachments))
                for m in messages
            ),
            older_messages=len(detail.messages) - len(messages),
            events=tuple(EventItem(type=e.type, actor=e.actor, at=ctx.local(e.created_at) or e.created_at)
                         for e in detail.events[-DETAIL_EVENTS:]),
        )

    @command(
        "sla", role=Role.AGENT, usage="/sla [ID]", conversation_arg="optional",
        summary={
            "en": "A conversation's SLA policy and deadlines; without an ID, the nearest and "
                  "breached deadlines of all open work.",
            "id": "Kebijakan dan tenggat SLA sebuah percakapan; tanpa ID, tenggat terdekat dan "
                  "yang terlanggar dari semua pekerjaan terbuka.",
        },
        example="/sla 12",
    )
    async def sla(self, ctx: Context, args: Args) -> View:
        """Show SLA deadlines of one conversation or the nearest ones overall."""
        conversation_id = ctx.optional_conversation_id(args)
        args.expect_end()
        if conversation_id is None:
            return await self._overview(ctx)
        async with self.deps.db.sessions() as session:
            conv = await session.get(Conversation, conversation_id)
        if conv is None:
            raise ConversationNotFound(conversation_id)
        breached = tuple(conv.breached)
        deadlines = []
        for name in SLA_TARGETS:
            due = getattr(conv, f"{name}_due_at")
            remaining = ctx.remaining(due)
            deadlines.append(SlaDeadline(
                name=name, due_at=ctx.local(due), remaining=remaining,
                breached=name in breached or (remaining is not None and remaining.total_seconds() < 0
                                              and conv.status != Status.RESOLVED),
            ))
        return SlaView(lang=ctx.lang, conversation_id=conversation_id, status=conv.status,
                       policy=conv.sla_policy, deadlines=tuple(deadlines),
                       first_response_at=ctx.local(conv.first_response_at), breached=breached)

    async def _overview(self, ctx: Context) -> View:
        async with self.deps.db.sessions() as session:
            rows = await nearest_deadlines(session, SLA_OVERVIEW_SIZE)
        lines = []
        for conv, assignee in rows:
            nearest = nearest_due(conv)
            which = next((n for n in ("next_response", "first_response", "resolution")
                          if getattr(conv, f"{n}_due_at") is not None), None)
            lines.append(SlaLine(conversation_id=conv.id or 0, priority=conv.priority, assignee=assignee,
                                 deadline=which, due_at=ctx.local(nearest),
                                 remaining=ctx.remaining(nearest), breached=tuple(conv.breached)))
        return SlaOverview(lang=ctx.lang, lines=tuple(lines),
                           buttons=tuple(Button(ctx.t("button.show_id", id=line.conversation_id),
                                                f"/show {line.conversation_id}")
                                         for line in lines[:3]))
