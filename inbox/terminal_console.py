"""The terminal console: run a team command as a named member and get its plain-text rendering.

This is what ``inbox cmd --as MEMBER "TEXT"`` and ``inbox demo`` use, and what the tests drive
every command through.
"""

from __future__ import annotations

from typing import NamedTuple

from inbox.commands.core import AppLike, CommandCore
from inbox.commands.invocation import CommandInvocation
from inbox.render_text import render


class TerminalResult(NamedTuple):
    """What the terminal shows, and whether the command succeeded (the CLI's exit status)."""

    output: str
    ok: bool


def _core(core_or_deps: CommandCore | AppLike) -> CommandCore:
    if isinstance(core_or_deps, CommandCore):
        return core_or_deps
    return CommandCore.from_app(core_or_deps)


async def run_terminal_command(
    core_or_deps: CommandCore | AppLike, member_name: str, text: str, *,
    conversation_id: int | None = None, language: str | None = None,
) -> TerminalResult:
    """Run ``text`` as ``member_name``; ``conversation_id`` plays the part of a conversation's topic.

    Returns ``(output, ok)``: the plain-text rendering and False for errors and refusals.
    """
    invocation = CommandInvocation.terminal(member_name, text, conversation_id=conversation_id,
                                            language=language)
    view = await _core(core_or_deps).execute(invocation)
    return TerminalResult(render(view), view.ok)
