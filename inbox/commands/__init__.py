"""Team commands, the same for every console: parse, authorise, run, answer with a View.

Consoles build a ``CommandInvocation`` and render what ``CommandCore.execute`` returns.
"""

from inbox.commands.context import CommandDeps, Context
from inbox.commands.core import REFUSED_EVENT, CommandCore
from inbox.commands.errors import CommandError, CommandInvalid, CommandNotFound, UnknownCommand, UsageError
from inbox.commands.invocation import TERMINAL, CommandInvocation
from inbox.commands.parse import Args, split_command
from inbox.commands.registry import Cog, Command, CommandSpec, Registry, command
from inbox.commands.templates import PLACEHOLDERS, check_template, fill_template
from inbox.commands.when import parse_when

__all__ = [
    "PLACEHOLDERS",
    "REFUSED_EVENT",
    "TERMINAL",
    "Args",
    "Cog",
    "Command",
    "CommandCore",
    "CommandDeps",
    "CommandError",
    "CommandInvalid",
    "CommandInvocation",
    "CommandNotFound",
    "CommandSpec",
    "Context",
    "Registry",
    "UnknownCommand",
    "UsageError",
    "check_template",
    "command",
    "fill_template",
    "parse_when",
    "split_command",
]
