"""What a handler gets besides its arguments: the dependencies, the member acting, the chat's language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from inbox.actions import Actions
from inbox.clock import Clock
from inbox.commands.errors import UsageError
from inbox.commands.invocation import CommandInvocation
from inbox.commands.parse import Args, looks_like_id, parse_id
from inbox.db import Database
from inbox.events import Actor
from inbox.i18n import t
from inbox.models import Member
from inbox.settings import Settings


@dataclass(frozen=True, slots=True)
class CommandDeps:
    """The services commands run on, passed in explicitly (there are no globals)."""

    db: Database
    clock: Clock
    settings: Settings
    actions: Actions


@dataclass(frozen=True, slots=True)
class Context:
    """One command run: who, in which chat context and language."""

    deps: CommandDeps
    invocation: CommandInvocation
    member: Member
    lang: str
    tz: ZoneInfo

    @property
    def actor(self) -> Actor:
        """The member as the audit log and the actions name them."""
        return Actor(kind="member", name=self.member.name, member_id=self.member.id)

    def t(self, key: str, **params: Any) -> str:
        """A message in the chat's language."""
        return t(self.lang, key, **params)

    def now(self) -> datetime:
        """The current instant, from the injected clock."""
        return self.deps.clock.now()

    def local(self, instant: datetime | None) -> datetime | None:
        """An instant in the team's timezone, for display."""
        return None if instant is None else instant.astimezone(self.tz)

    def remaining(self, instant: datetime | None) -> timedelta | None:
        """Time left until ``instant`` (negative once it has passed)."""
        return None if instant is None else instant - self.now()

    def conversation_id(self, args: Args) -> int:
        """The conversation ID: the first argument if it is one, else the chat's conversation."""
        found = self.optional_conversation_id(args)
        if found is None:
            raise UsageError("error.missing_argument", argument="ID")
        return found

    def optional_conversation_id(self, args: Args) -> int | None:
        """Like ``conversation_id``, but None when neither the text nor the chat names one."""
        word = args.peek()
        if word is not None and looks_like_id(word):
            args.take()
            return parse_id(word)
        context_id = self.invocation.conversation_id
        if context_id is not None:
            return context_id
        if word is not None:
            # Outside a conversation's topic the first word must be the ID: say it is not one.
            args.take()
            return parse_id(word)
        return None
