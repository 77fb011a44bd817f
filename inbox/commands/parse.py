"""Turning command text into a name and arguments: ``/Reply@Bot #12 thanks`` → ``reply``, ``#12 thanks``.

Arguments are read left to right from the raw text, so free text (a reply, a reason) keeps its
spacing and line breaks while the leading words (ID, tags, member) are taken one at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from inbox.commands.errors import UsageError

# PostgreSQL's INTEGER: a larger "ID" could never match and would make the driver raise.
MAX_ID = 2_147_483_647
_ID = re.compile(r"^#?(\d+)$")
_TOKEN = re.compile(r"\S+")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class CommandText:
    """A command's name (lower case, without ``/`` or ``@BotName``) and the raw text after it."""

    name: str
    rest: str


def split_command(text: str) -> CommandText | None:
    """Split ``/name@Bot rest`` (the slash is optional); None when there is no command word."""
    stripped = text.strip()
    if stripped.startswith("/"):
        stripped = stripped[1:]
    match = _TOKEN.match(stripped)
    if match is None:
        return None
    word = match.group(0)
    # Telegram addresses commands in groups as /cmd@BotName; the bot name is not ours to check.
    name = word.split("@", 1)[0].lower()
    return CommandText(name=name, rest=stripped[match.end():])


def is_command_name(name: str) -> bool:
    """True for a plausible command word (letters, digits, underscores)."""
    return bool(_NAME.match(name))


class Args:
    """The arguments of one command, consumed left to right."""

    def __init__(self, raw: str) -> None:
        self._raw = raw
        self._pos = 0

    def _next_match(self) -> re.Match[str] | None:
        return _TOKEN.search(self._raw, self._pos)

    def peek(self) -> str | None:
        """The next word, without consuming it."""
        match = self._next_match()
        return match.group(0) if match else None

    def take(self) -> str | None:
        """Consume and return the next word, or None when none is left."""
        match = self._next_match()
        if match is None:
            return None
        self._pos = match.end()
        return match.group(0)

    def require(self, what: str) -> str:
        """Consume the next word, or raise a usage error naming the missing argument."""
        word = self.take()
        if word is None:
            raise UsageError("error.missing_argument", argument=what)
        return word

    def words(self) -> list[str]:
        """Consume and return every remaining word."""
        out = []
        while (word := self.take()) is not None:
            out.append(word)
        return out

    def rest(self) -> str:
        """Consume and return the remaining raw text, trimmed, with its inner line breaks kept."""
        text = self._raw[self._pos:].strip()
        self._pos = len(self._raw)
        return text

    @property
    def empty(self) -> bool:
        """True when nothing but whitespace is left."""
        return self._next_match() is None

    def expect_end(self) -> None:
        """Raise a usage error if anything is left over."""
        extra = self.peek()
        if extra is not None:
            raise UsageError("error.unexpected_argument", argument=extra)


def looks_like_id(word: str) -> bool:
    """True for ``12`` or ``#12``."""
    return bool(_ID.match(word))


def parse_id(word: str, what: str = "ID") -> int:
    """``12`` or ``#12`` as a positive int, or a usage error saying the word is not an ID."""
    match = _ID.match(word)
    value = int(match.group(1)) if match else 0
    if not match or not 0 < value <= MAX_ID:
        raise UsageError("error.bad_id", value=word, argument=what)
    return value
