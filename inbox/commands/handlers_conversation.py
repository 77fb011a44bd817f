"""Working a conversation: reply, note, tag, assign, escalate, prioritise, snooze and change its status."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlmodel import col

from inbox.actions import normalise_tag
from inbox.commands.context import CommandDeps, Context
from inbox.commands.errors import CommandNotFound, UsageError
from inbox.commands.parse import Args
from inbox.commands.registry import Cog, command
from inbox.commands.templates import fill_template
from inbox.commands.when import parse_when
from inbox.errors import ConversationNotFound, UnknownMember
from inbox.models import Contact, Conversation, Member, Priority, Role, Template
from inbox.views import Button, Confirmation, View

_TEMPLATE_REF = re.compile(r"^:([A-Za-z0-9][A-Za-z0-9_-]*)$")
_DISCORD_MENTION = re.compile(r"^<@!?(\d+)>$")
_SELF = ("me", "saya", "aku")


class ConversationCommands(Cog):
    """Commands that change one conversation; each goes through inbox.actions and is audited there."""

    def __init__(self, deps: CommandDeps) -> None:
        self.deps = deps

    def _done(self, ctx: Context, conversation_id: int, key: str, *, resolve_button: bool = False,
              **params: object) -> Confirmation:
        buttons = [Button(ctx.t("button.show"), f"/show {conversation_id}")]
        if resolve_button:  # answering is often the last step: offer to close in the same breath
            buttons.append(Button(ctx.t("button.resolve"), f"/resolve {conversation_id}", "danger"))
        return Confirmation(lang=ctx.lang, message=ctx.t(key, id=conversation_id, **params),
                            conversation_id=conversation_id, buttons=tuple(buttons))

    # --- messages ------------------------------------------------------------------------------

    @command(
        "reply", aliases=("r",), role=Role.AGENT, usage="/reply ID TEXT  |  /reply ID :TEMPLATE",
        conversation_arg="required",
        summary={
            "en": "Send a public reply to the customer (queued for delivery). ':NAME' sends the "
                  "template NAME with {name}, {handle}, {id} and {agent} filled in.",
            "id": "Kirim balasan publik ke pelanggan (masuk antrean pengiriman). ':NAMA' mengirim "
                  "templat NAMA dengan {name}, {handle}, {id} dan {agent} terisi.",
        },
        example="/reply 12 Thanks, we are looking into it",
    )
    async def reply(self, ctx: Context, args: Args) -> View:
        """Reply with text or a template."""
        conversation_id = ctx.conversation_id(args)
        text = args.rest()
        if not text:
            raise UsageError("error.missing_argument", argument="TEXT")
        template = _TEMPLATE_REF.match(text)
        if template is None:
            await self.deps.actions.reply(ctx.actor, conversation_id, text)
            return self._done(ctx, conversation_id, "done.replied", resolve_button=True)
        name = template.group(1).lower()
        body = await self._template_text(ctx, conversation_id, name)
        await self.deps.actions.reply(ctx.actor, conversation_id, body)
        return self._done(ctx, conversation_id, "done.replied_template", resolve_button=True, template=name)

    async def _template_text(self, ctx: Context, conversation_id: int, name: str) -> str:
        async with self.deps.db.sessions() as session:
            conv = await session.get(Conversation, conversation_id)
            if conv is None:
                raise ConversationNotFound(conversation_id)
            query = select(Template).where(col(Template.name) == name)
            template = (await session.execute(query)).scalar_one_or_none()
            if template is None:
                raise CommandNotFound("error.unknown_template", name=name)
            contact = await session.get(Contact, conv.contact_id)
        assert contact is not None  # foreign key
        handle = contact.handle.lstrip("@") if contact.handle else None
        values = {
            "name": contact.name or handle or ctx.t("template.someone"),
            "handle": f"@{handle}" if handle else (contact.name or ctx.t("template.someone")),
            "id": str(conversation_id),
            "agent": ctx.member.display_name or ctx.member.name,
        }
        return fill_template(template.text, values)

    @command(
        "note", aliases=("n",), role=Role.AGENT, usage="/note ID TEXT", conversation_arg="required",
        summary={
            "en": "Add an internal note; the customer never sees it.",
            "id": "Tambahkan catatan internal; pelanggan tidak pernah melihatnya.",
        },
        example="/note 12 Customer called, refund approved",
    )
    async def note(self, ctx: Context, args: Args) -> View:
        """Add a note."""
        conversation_id = ctx.conversation_id(args)
        text = args.rest()
        if not text:
            raise UsageError("error.missing_argument", argument="TEXT")
        await self.deps.actions.note(ctx.actor, conversation_id, text)
        return self._done(ctx, conversation_id, "done.noted")

    # --- labels and people ---------------------------------------------------------------------

    @command(
        "tag", role=Role.AGENT, usage="/tag ID TAG…", conversation_arg="required",
        summary={"en": "Add one or more tags.", "id": "Tambahkan satu atau beberapa label."},
        example="/tag 12 billing vip",
    )
    async def tag(self, ctx: Context, args: Args) -> View:
        """Tag a conversation."""
        conversation_id = ctx.conversation_id(args)
        tags = sorted({normalise_tag(word) for word in args.words()})
        if not tags:
            raise UsageError("error.missing_argument", argument="TAG")
        added = await self.deps.actions.tag(ctx.actor, conversation_id, tags)
        if not added:
            return self._done(ctx, conversation_id, "done.tagged_already", tags=", ".join(tags))
        return self._done(ctx, conversation_id, "done.tagged", tags=", ".join(added))

    @command(
        "untag", role=Role.AGENT, usage="/untag ID TAG…", conversation_arg="required",
        summary={"en": "Remove tags.", "id": "Hapus label."},
        example="/untag 12 vip",
    )
    async def untag(self, ctx: Context, args: Args) -> View:
        """Remove tags from a conversation."""
        conversation_id = ctx.conversation_id(args)
        tags = sorted({normalise_tag(word) for word in args.words()})
        if not tags:
            raise UsageError("error.missing_argument", argument="TAG")
        removed = await self.deps.actions.untag(ctx.actor, conversation_id, tags)
        return self._done(ctx, conversation_id, "done.untagged", tags=", ".join(removed))

    @command(
        "assign", aliases=("a",), role=Role.AGENT, usage="/assign ID @member|member|me",
        conversation_arg="required",
        summary={"en": "Assign to a team member, or to yourself with 'me'.",
                 "id": "Tugaskan ke anggota tim, atau ke diri sendiri dengan 'me'."},
        example="/assign 12 me",
    )
    async def assign(self, ctx: Context, args: Args) -> View:
        """Assign a conversation."""
        conversation_id = ctx.conversation_id(args)
        who = args.require("MEMBER")
        args.expect_end()
        name = await self._member_name(ctx, who)
        member = await self.deps.actions.assign(ctx.actor, conversation_id, name)
        return self._done(ctx, conversation_id, "done.assigned", member=member.name)

    async def _member_name(self, ctx: Context, word: str) -> str:
        """Resolve ``me``, ``@name``, ``name`` (any case) or a Discord mention to a member name."""
        if word.lower() in _SELF:
            return ctx.member.name
        async with self.deps.db.sessions() as session:
            members = list((await session.execute(
                select(Member).where(col(Member.active).is_(True)))).scalars())
        mention = _DISCORD_MENTION.match(word)
        if mention:
            found = next((m for m in members if m.platform_ids.get("discord") == mention.group(1)), None)
            if found is None:
                raise UnknownMember(word)
            return found.name
        name = word.lstrip("@")
        exact = next((m for m in members if m.name == name), None)
        if exact is not None:
            return exact.name
        folded = [m for m in members if m.name.casefold() == name.casefold()]
        return folded[0].name if len(folded) == 1 else name

    @command(
        "unassign", role=Role.AGENT, usage="/unassign ID", conversation_arg="required",
        summary={"en": "Remove the assignee.", "id": "Lepaskan petugas yang ditugaskan."},
        example="/unassign 12",
    )
    async def unassign(self, ctx: Context, args: Args) -> View:
        """Unassign a conversation."""
        conversation_id = ctx.conversation_id(args)
        args.expect_end()
        await self.deps.actions.unassign(ctx.actor, conversation_id)
        return self._done(ctx, conversation_id, "done.unassigned")

    # --- urgency -------------------------------------------------------------------------------

    @command(
        "escalate", role=Role.AGENT, usage="/escalate ID [REASON]", conversation_arg="required",
        summary={"en": "Raise the escalation level by one, with an optional reason.",
                 "id": "Naikkan level eskalasi satu tingkat, dengan alasan bila perlu."},
        example="/escalate 12 a journalist is asking",
    )
    async def escalate(self, ctx: Context, args: Args) -> View:
        """Escalate a conversation."""
        conversation_id = ctx.conversation_id(args)
        level = await self.deps.actions.escalate(ctx.actor, conversation_id, args.rest())
        return self._done(ctx, conversation_id, "done.escalated", level=level)

    @command(
        "priority", aliases=("p",), role=Role.AGENT, usage="/priority ID low|normal|high|urgent",
        conversation_arg="required",
        summary={"en": "Set the priority; the queue shows urgent work first.",
                 "id": "Atur prioritas; antrean menampilkan yang mendesak lebih dulu."},
        example="/priority 12 urgent",
    )
    async def priority(self, ctx: Context, args: Args) -> View:
        """Set a conversation's priority."""
        conversation_id = ctx.conversation_id(args)
        value = args.require("PRIORITY").lower()
        args.expect_end()
        if value not in {p.value for p in Priority}:
            raise UsageError("error.bad_priority", value=value)
        await self.deps.actions.set_priority(ctx.actor, conversation_id, value)
        return self._done(ctx, conversation_id, "done.priority", priority=ctx.t(f"value.{value}"))

    # --- status --------------------------------------------------------------------------------

    @command(
        "snooze", role=Role.AGENT, usage="/snooze ID 2h|30m|1d|tomorrow 9:00|monday 9:00|2026-12-01 10:00",
        conversation_arg="required",
        summary={"en": "Hide until a time (team timezone); a customer message wakes it earlier.",
                 "id": "Sembunyikan sampai waktu tertentu (zona waktu tim); pesan pelanggan "
                       "membangunkannya lebih awal."},
        example="/snooze 12 tomorrow 9:00",
    )
    async def snooze(self, ctx: Context, args: Args) -> View:
        """Snooze a conversation."""
        conversation_id = ctx.conversation_id(args)
        until = parse_when(args.rest(), ctx.now(), ctx.tz)
        await self.deps.actions.snooze(ctx.actor, conversation_id, until)
        local = ctx.local(until)
        assert local is not None
        return self._done(ctx, conversation_id, "done.snoozed", until=local.strftime("%Y-%m-%d %H:%M %Z"))

    @command(
        "pending", role=Role.AGENT, usage="/pending ID", conversation_arg="required",
        summary={"en": "Mark as waiting on the customer.", "id": "Tandai sedang menunggu pelanggan."},
        example="/pending 12",
    )
    async def pending(self, ctx: Context, args: Args) -> View:
        """Mark a conversation pending."""
        conversation_id = ctx.conversation_id(args)
        args.expect_end()
        await self.deps.actions.mark_pending(ctx.actor, conversation_id)
        return self._done(ctx, conversation_id, "done.pending")

    @command(
        "resolve", aliases=("done",), role=Role.AGENT, usage="/resolve ID", conversation_arg="required",
        summary={"en": "Close the conversation; its timers stop.",
                 "id": "Tutup percakapan; semua pengatur waktunya berhenti."},
        example="/resolve 12",
    )
    async def resolve(self, ctx: Context, args: Args) -> View:
        """Resolve a conversation."""
        conversation_id = ctx.conversation_id(args)
        args.expect_end()
        await self.deps.actions.resolve(ctx.actor, conversation_id)
        return Confirmation(lang=ctx.lang, message=ctx.t("done.resolved", id=conversation_id),
                            conversation_id=conversation_id,
                            buttons=(Button(ctx.t("button.reopen"), f"/reopen {conversation_id}"),))

    @command(
        "reopen", role=Role.AGENT, usage="/reopen ID", conversation_arg="required",
        summary={"en": "Open a resolved, pending or snoozed conversation again.",
                 "id": "Buka lagi percakapan yang selesai, menunggu atau ditunda."},
        example="/reopen 12",
    )
    async def reopen(self, ctx: Context, args: Args) -> View:
        """Reopen a conversation."""
        conversation_id = ctx.conversation_id(args)
        args.expect_end()
        await self.deps.actions.reopen(ctx.actor, conversation_id)
        return self._done(ctx, conversation_id, "done.reopened")

