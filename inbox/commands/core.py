"""The command core: one place that identifies the actor, checks the role, parses and runs a command.

Every console (Telegram, Discord, terminal) builds a CommandInvocation and renders the View
that ``execute`` returns. ``execute`` never raises: bad input becomes an ErrorView with the
command's usage, a refusal is audited, and an unexpected exception is logged and shown as one
generic line, never as a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from inbox.actions import Actions
from inbox.audit import record
from inbox.clock import Clock
from inbox.commands.context import CommandDeps, Context
from inbox.commands.errors import CommandError, UnknownCommand
from inbox.commands.handlers_admin import DeliveryCommands, TemplateCommands
from inbox.commands.handlers_conversation import ConversationCommands
from inbox.commands.handlers_help import HelpCommands
from inbox.commands.handlers_queue import QueueCommands
from inbox.commands.handlers_stats import StatsCommands
from inbox.commands.invocation import CommandInvocation
from inbox.commands.parse import Args, split_command
from inbox.commands.registry import Cog, Command, Registry, has_role
from inbox.db import Database
from inbox.db_bulk import fetch_rows, json_read
from inbox.errors import InboxError, NotFound
from inbox.i18n import choose_language, t, translate_error
from inbox.models import Member
from inbox.settings import Settings
from inbox.views import ErrorView, View

log = logging.getLogger(__name__)

REFUSED_EVENT = "command.refused"
_AUDIT_TEXT_LENGTH = 200


class AppLike(Protocol):
    """Anything carrying the core services (``inbox.app.App`` does)."""

    db: Database
    clock: Clock
    settings: Settings
    actions: Actions


# The member lookups every command starts with, sent through the driver (``fetch_rows``): no ORM loading,
# which took about 1.4 ms a command here.
_MEMBERS_SQL: Final = "SELECT id, name, display_name, role, platform_ids FROM members WHERE active"
_MEMBER_NAMED_SQL: Final = {
    "sqlite": f"{_MEMBERS_SQL} AND name = ?", "postgresql": f"{_MEMBERS_SQL} AND name = $1"}


def _member(row: Sequence[Any]) -> Member:
    """A (detached) member from a row of ``_MEMBERS_SQL``."""
    member_id, name, display_name, role, ids = row
    return Member(id=member_id, name=name, display_name=display_name, role=role,
                  platform_ids=dict(json_read(ids) or {}), active=True)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


class CommandCore:
    """Parses and runs team commands against explicitly passed dependencies."""

    def __init__(self, db: Database, clock: Clock, settings: Settings, actions: Actions, *,
                 extra_cogs: Iterable[Cog] = ()) -> None:
        self.deps = CommandDeps(db=db, clock=clock, settings=settings, actions=actions)
        self.tz = ZoneInfo(settings.general.timezone)
        self.registry = Registry([
            QueueCommands(self.deps), ConversationCommands(self.deps), TemplateCommands(self.deps),
            DeliveryCommands(self.deps), StatsCommands(self.deps), HelpCommands(lambda: self.registry),
            *extra_cogs,
        ])

    @classmethod
    def from_app(cls, app: AppLike) -> CommandCore:
        """A core on the services of an App."""
        return cls(app.db, app.clock, app.settings, app.actions)

    async def execute(self, invocation: CommandInvocation) -> View:
        """Run one command and return what the chat should show; never raises."""
        lang = choose_language(invocation.language, self.deps.settings.general.language)
        try:
            return await self._execute(invocation, lang)
        except Exception:
            log.exception("command %r from %s failed unexpectedly", invocation.text[:80],
                          invocation.actor_label)
            return ErrorView(lang=lang, message=t(lang, "error.internal"), kind="internal")

    async def _execute(self, invocation: CommandInvocation, lang: str) -> View:
        parsed = split_command(invocation.text)
        member = await self._resolve_member(invocation)
        if member is None:
            await self._refuse(invocation, invocation.actor_label, parsed.name if parsed else None,
                               reason="not_member")
            return ErrorView(lang=lang, message=t(lang, "error.not_member"), kind="refused")
        if parsed is None:
            return ErrorView(lang=lang, message=t(lang, "error.empty"), kind="usage", usage="/help")
        cmd = self.registry.find(parsed.name)
        if cmd is None:
            suggestion = self.registry.suggest(parsed.name)
            return self._unknown_command(lang, UnknownCommand(parsed.name, suggestion))
        args = Args(parsed.rest)
        subcommand = (args.peek() or "").lower() if cmd.spec.subcommand_roles else ""
        needed = cmd.spec.least_role(subcommand or None)
        if not has_role(member.role, needed):
            shown = f"{cmd.spec.name} {subcommand}" if needed != cmd.spec.role else cmd.spec.name
            await self._refuse(invocation, f"member:{member.name}", shown, reason="role",
                               required=needed.value, role=member.role)
            return ErrorView(lang=lang, kind="refused", message=t(
                lang, "error.role", command=shown, role=t(lang, f"role.{needed.value}"),
                current=t(lang, f"role.{member.role}") if member.role in ("agent", "lead", "admin")
                else member.role))
        ctx = Context(deps=self.deps, invocation=invocation, member=member, lang=lang, tz=self.tz)
        try:
            return await cmd.handler(ctx, args)
        except UnknownCommand as exc:
            return self._unknown_command(lang, exc)
        except CommandError as exc:
            return ErrorView(lang=lang, message=_sentence(t(lang, exc.key, **exc.params)), kind=exc.kind,
                             usage=cmd.spec.usage)
        except InboxError as exc:
            return self._inbox_error(lang, exc, cmd)

    @staticmethod
    def _unknown_command(lang: str, exc: UnknownCommand) -> ErrorView:
        hint = (t(lang, "error.did_you_mean", command=exc.suggestion) if exc.suggestion
                else t(lang, "error.help_hint"))
        return ErrorView(lang=lang, kind="unknown_command", suggestion=exc.suggestion,
                         message=f"{t(lang, 'error.unknown_command', command=exc.name)} {hint}")

    @staticmethod
    def _inbox_error(lang: str, exc: InboxError, cmd: Command) -> ErrorView:
        kind = "not_found" if isinstance(exc, NotFound) else "invalid"
        return ErrorView(lang=lang, message=_sentence(translate_error(lang, str(exc))), kind=kind,
                         usage=cmd.spec.usage)

    async def _resolve_member(self, invocation: CommandInvocation) -> Member | None:
        """The active member behind the invocation, by name (terminal) or by platform user id.

        Read for every command, never cached, so that a role change or removal holds from the next one;
        one statement, outside any transaction (``Database.lone_reads``).
        """
        if invocation.member_name is None and invocation.user_id is None:
            return None
        async with self.deps.db.lone_reads() as session:
            if invocation.member_name is not None:
                dialect = session.get_bind().dialect.name
                rows = await fetch_rows(session, _MEMBER_NAMED_SQL[dialect], (invocation.member_name,))
                return _member(rows[0]) if rows else None
            # platform_ids is JSON; the team is small, so matching in Python stays portable.
            for member in map(_member, await fetch_rows(session, _MEMBERS_SQL)):
                if member.platform_ids.get(invocation.platform) == str(invocation.user_id):
                    return member
        return None

    async def _refuse(self, invocation: CommandInvocation, actor: str, command: str | None, *,
                      reason: str, **detail: Any) -> None:
        log.info("refused /%s from %s (%s)", command, actor, reason)
        async with self.deps.db.transaction() as session:
            await record(
                session, actor, REFUSED_EVENT, self.deps.clock.now(), None, command=command, reason=reason,
                platform=invocation.platform, chat_id=invocation.chat_id,
                context_conversation_id=invocation.conversation_id,
                text=invocation.text[:_AUDIT_TEXT_LENGTH], **detail,
            )
