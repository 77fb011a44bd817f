"""Team-wide commands: canned-reply templates and retrying a failed delivery."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from inbox.audit import record
from inbox.commands.context import CommandDeps, Context
from inbox.commands.errors import CommandInvalid, CommandNotFound, UsageError
from inbox.commands.parse import Args, parse_id
from inbox.commands.registry import Cog, command
from inbox.commands.templates import NAME_PATTERN, PLACEHOLDERS, check_template
from inbox.models import Role, Template
from inbox.outbox import retry_delivery
from inbox.views import Confirmation, TemplateItem, TemplateList, TemplateView, View


def _template_name(word: str) -> str:
    name = word.lstrip(":").lower()
    if not NAME_PATTERN.match(name):
        raise UsageError("error.bad_template_name", name=word)
    return name


class TemplateCommands(Cog):
    """Canned replies, so every agent gives the same facts."""

    def __init__(self, deps: CommandDeps) -> None:
        self.deps = deps

    @command(
        "template", aliases=("templates", "t"), role=Role.AGENT,
        usage="/template list | show NAME | add NAME TEXT | remove NAME",
        subcommand_roles={"add": Role.LEAD, "remove": Role.LEAD},
        summary={
            "en": "Canned replies: list and show them; a lead adds or removes them. Placeholders: "
                  "{name}, {handle}, {id}, {agent}. Send one with /reply ID :NAME.",
            "id": "Balasan siap pakai: lihat daftar dan isinya; lead menambah atau menghapusnya. "
                  "Placeholder: {name}, {handle}, {id}, {agent}. Kirim dengan /reply ID :NAMA.",
        },
        example="/template add welcome Hi {name}, thanks for writing to us! I'm {agent}.",
    )
    async def template(self, ctx: Context, args: Args) -> View:
        """Dispatch to list, show, add or remove."""
        action = (args.take() or "list").lower()
        if action == "list":
            args.expect_end()
            return await self._list(ctx)
        if action == "show":
            name = _template_name(args.require("NAME"))
            args.expect_end()
            return await self._show(ctx, name)
        if action == "add":
            name = _template_name(args.require("NAME"))
            return await self._add(ctx, name, args.rest())
        if action == "remove":
            name = _template_name(args.require("NAME"))
            args.expect_end()
            return await self._remove(ctx, name)
        raise UsageError("error.bad_subcommand", value=action)

    async def _list(self, ctx: Context) -> View:
        async with self.deps.db.sessions() as session:
            rows = (await session.execute(select(Template).order_by(col(Template.name)))).scalars().all()
        items = tuple(TemplateItem(name=r.name, text=r.text) for r in rows)
        return TemplateList(lang=ctx.lang, templates=items)

    async def _show(self, ctx: Context, name: str) -> View:
        async with self.deps.db.sessions() as session:
            query = select(Template).where(col(Template.name) == name)
            row = (await session.execute(query)).scalar_one_or_none()
        if row is None:
            raise CommandNotFound("error.unknown_template", name=name)
        used = tuple(p for p in PLACEHOLDERS if "{" + p + "}" in row.text)
        item = TemplateItem(name=row.name, text=row.text)
        return TemplateView(lang=ctx.lang, template=item, placeholders=used)

    async def _add(self, ctx: Context, name: str, text: str) -> View:
        if not text:
            raise UsageError("error.missing_argument", argument="TEXT")
        placeholders = check_template(text)
        now = ctx.now()
        try:
            async with self.deps.db.transaction() as session:
                exists = await session.scalar(select(col(Template.id)).where(col(Template.name) == name))
                if exists is not None:
                    raise CommandInvalid("error.template_exists", name=name)
                session.add(Template(name=name, text=text, created_by=ctx.member.name,
                                     created_at=now, updated_at=now))
                await session.flush()
                await record(session, ctx.actor, "template.added", now, name=name, text=text,
                             placeholders=list(placeholders))
        except IntegrityError:
            # Another lead saved the same name between our check and our insert.
            raise CommandInvalid("error.template_exists", name=name) from None
        return Confirmation(lang=ctx.lang, message=ctx.t("done.template_added", name=name))

    async def _remove(self, ctx: Context, name: str) -> View:
        async with self.deps.db.transaction() as session:
            removed = await session.execute(
                delete(Template).where(col(Template.name) == name).returning(col(Template.text))
            )
            text = removed.scalar_one_or_none()
            if text is None:
                raise CommandNotFound("error.unknown_template", name=name)
            await record(session, ctx.actor, "template.removed", ctx.now(), name=name, text=text)
        return Confirmation(lang=ctx.lang, message=ctx.t("done.template_removed", name=name))


class DeliveryCommands(Cog):
    """Operator actions on the outbox."""

    def __init__(self, deps: CommandDeps) -> None:
        self.deps = deps

    @command(
        "retry", role=Role.LEAD, usage="/retry DELIVERY",
        summary={
            "en": "Send a failed delivery again (the number is in the failure notice).",
            "id": "Kirim ulang pengiriman yang gagal (nomornya ada di pemberitahuan kegagalan).",
        },
        example="/retry 345",
    )
    async def retry(self, ctx: Context, args: Args) -> View:
        """Queue a failed delivery again."""
        delivery_id = parse_id(args.require("DELIVERY"), "DELIVERY")
        args.expect_end()
        async with self.deps.db.transaction() as session:
            await retry_delivery(session, delivery_id, ctx.actor, ctx.now())
        return Confirmation(lang=ctx.lang, message=ctx.t("done.retried", id=delivery_id))
