"""Teamlog connector: a team chat that is a file. Each team notice becomes one JSON line.

It hosts team chats for the terminal and ``inbox demo`` (and for tests): configure a channel of
``type = "teamlog"`` and point a ``[[team_chats]]`` entry at it.
"""

from connectors.teamlog.console import Options, TeamLogSender, build

__all__ = ["Options", "TeamLogSender", "build"]
