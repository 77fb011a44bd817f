"""Declaring commands: name, aliases, the least role, usage and help text sit on the handler itself.

Handlers are methods of a ``Cog`` (a group of related commands sharing their dependencies, as in
discord.py) marked with ``@command(...)``. ``Registry`` collects them and answers lookups by
name or alias, with a suggestion for near misses.

Roles, and why:

* ``agent`` runs everything that works the queue: reading, replying, notes, tags, assignment,
  escalation, priority, snoozing, status changes, SLA and template lookups, help.
* ``lead`` is needed to change what every agent sends (``/template add``, ``/template remove``)
  and to push a failed delivery out again (``/retry``), because a retry may repeat a side effect
  on a platform.
* ``admin`` outranks both; no chat command needs more than ``lead``.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from inbox.i18n import LANGUAGES
from inbox.models import ROLE_RANK, Role

if TYPE_CHECKING:
    from inbox.commands.context import Context
    from inbox.commands.parse import Args
    from inbox.views import View

Handler = Callable[["Context", "Args"], Awaitable["View"]]
ConversationArg = Literal["none", "required", "optional"]
F = TypeVar("F", bound=Callable[..., Any])

_SPEC_ATTR = "__command_spec__"


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """The declaration of one command.

    ``conversation_arg`` says whether the first argument is a conversation ID that the chat
    context (a conversation's own topic or thread) may supply: ``required`` commands fail without
    one, ``optional`` ones (``/sla``) do something else without it.
    """

    name: str
    role: Role
    usage: str
    summary: Mapping[str, str]
    example: str
    aliases: tuple[str, ...] = ()
    conversation_arg: ConversationArg = "none"
    subcommand_roles: Mapping[str, Role] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [lang for lang in LANGUAGES if not self.summary.get(lang)]
        if missing:
            raise ValueError(f"/{self.name}: help text missing for {', '.join(missing)}")

    def least_role(self, subcommand: str | None) -> Role:
        """The role needed for this command, or for one of its subcommands."""
        if subcommand is not None and subcommand.lower() in self.subcommand_roles:
            return self.subcommand_roles[subcommand.lower()]
        return self.role


def command(
    name: str, *, role: Role, usage: str, summary: Mapping[str, str], example: str,
    aliases: Iterable[str] = (), conversation_arg: ConversationArg = "none",
    subcommand_roles: Mapping[str, Role] | None = None,
) -> Callable[[F], F]:
    """Mark a Cog method as the handler of ``/name``; ``summary`` is its help text per language."""
    spec = CommandSpec(name=name, role=role, usage=usage, summary=dict(summary), example=example,
                       aliases=tuple(aliases), conversation_arg=conversation_arg,
                       subcommand_roles=dict(subcommand_roles or {}))

    def mark(func: F) -> F:
        setattr(func, _SPEC_ATTR, spec)
        return func

    return mark


@dataclass(frozen=True, slots=True)
class Command:
    """A declared command bound to its handler."""

    spec: CommandSpec
    handler: Handler


class Cog:
    """A group of commands; subclasses hold the dependencies their handlers share."""

    def commands(self) -> list[Command]:
        """The commands declared on this cog, in definition order."""
        found = []
        for attr in type(self).__dict__.values():
            spec = getattr(attr, _SPEC_ATTR, None)
            if isinstance(spec, CommandSpec):
                found.append(Command(spec, getattr(self, attr.__name__)))
        return found


def has_role(member_role: str, needed: Role) -> bool:
    """True when ``member_role`` is at least ``needed``; unknown roles have none."""
    try:
        return ROLE_RANK[Role(member_role)] >= ROLE_RANK[needed]
    except ValueError:
        return False


class Registry:
    """Every command, by name and alias."""

    def __init__(self, cogs: Iterable[Cog]) -> None:
        self._commands: list[Command] = []
        self._by_name: dict[str, Command] = {}
        for cog in cogs:
            for cmd in cog.commands():
                self.add(cmd)

    def add(self, cmd: Command) -> None:
        """Register a command; a name or alias used twice is a programming error."""
        for key in (cmd.spec.name, *cmd.spec.aliases):
            if key in self._by_name:
                raise ValueError(f"command name '/{key}' is declared twice")
            self._by_name[key] = cmd
        self._commands.append(cmd)

    def find(self, name: str) -> Command | None:
        """The command with that name or alias (lower case), if any."""
        return self._by_name.get(name.lower())

    def suggest(self, name: str) -> str | None:
        """The declared name closest to a mistyped one, if any is close enough."""
        close = difflib.get_close_matches(name.lower(), list(self._by_name), n=1, cutoff=0.6)
        if not close:
            return None
        return self._by_name[close[0]].spec.name

    def all(self) -> list[Command]:
        """Every command, in registration order."""
        return list(self._commands)
