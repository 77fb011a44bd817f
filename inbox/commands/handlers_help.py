"""/help: the command list, or one command explained, from the declarations themselves."""

from __future__ import annotations

from collections.abc import Callable

from inbox.commands.context import Context
from inbox.commands.errors import UnknownCommand
from inbox.commands.parse import Args, split_command
from inbox.commands.registry import Cog, Command, Registry, command
from inbox.models import Role
from inbox.views import HelpEntry, HelpView, View


def help_entry(ctx: Context, cmd: Command) -> HelpEntry:
    """What /help says about one command, in the chat's language."""
    spec = cmd.spec
    return HelpEntry(
        name=spec.name, usage=spec.usage, summary=spec.summary.get(ctx.lang) or spec.summary["en"],
        role=spec.role.value, aliases=spec.aliases, example=spec.example,
        subcommand_roles=tuple((sub, role.value) for sub, role in spec.subcommand_roles.items()),
    )


class HelpCommands(Cog):
    """Help is generated from the registry, so it cannot drift from the commands."""

    def __init__(self, registry: Callable[[], Registry]) -> None:
        self._registry = registry

    @command(
        "help", aliases=("h", "bantuan"), role=Role.AGENT, usage="/help [COMMAND]",
        summary={"en": "List the commands, or explain one.",
                 "id": "Daftar perintah, atau penjelasan satu perintah."},
        example="/help reply",
    )
    async def help(self, ctx: Context, args: Args) -> View:
        """Show the list of commands or one command's help."""
        registry = self._registry()
        word = args.take()
        args.expect_end()
        if word is None:
            return HelpView(lang=ctx.lang, entries=tuple(help_entry(ctx, c) for c in registry.all()))
        parsed = split_command(word)
        name = parsed.name if parsed else word.lower()
        found = registry.find(name)
        if found is None:
            raise UnknownCommand(name, registry.suggest(name))
        return HelpView(lang=ctx.lang, detail=help_entry(ctx, found))
