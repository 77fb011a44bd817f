"""Errors raised while parsing or running a command; each names a message key, not a sentence,
so the core can say it in the chat's language."""

from __future__ import annotations

from typing import Any

from inbox.errors import InboxError

# Error lines echo what the user typed; a pasted essay must not come back as a wall of text.
MAX_ECHO = 60


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_ECHO:
        return value[:MAX_ECHO - 1] + "…"
    return value


class CommandError(InboxError):
    """Base of the errors a command reports as an ErrorView; ``kind`` is the ErrorView kind."""

    kind = "error"
    show_usage = False

    def __init__(self, key: str, **params: Any) -> None:
        from inbox.i18n import t

        params = {name: _clip(value) for name, value in params.items()}
        super().__init__(t("en", key, **params))
        self.key = key
        self.params = params


class UnknownCommand(CommandError):
    """No command has that name or alias."""

    kind = "unknown_command"

    def __init__(self, name: str, suggestion: str | None) -> None:
        super().__init__("error.unknown_command", command=name)
        self.name = _clip(name)
        self.suggestion = suggestion


class UsageError(CommandError):
    """A missing, extra or malformed argument; the ErrorView shows the command's usage."""

    kind = "usage"
    show_usage = True


class CommandNotFound(CommandError):
    """Something the command names does not exist (a template, a channel)."""

    kind = "not_found"


class CommandInvalid(CommandError):
    """The command makes no sense as given (a duplicate template, a bad placeholder)."""

    kind = "invalid"
