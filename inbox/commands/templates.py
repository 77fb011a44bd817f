"""Canned replies: checking a template's placeholders when it is saved, and filling them when it is sent."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from inbox.commands.errors import CommandInvalid

PLACEHOLDERS = ("name", "handle", "id", "agent")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
MAX_TEMPLATE_LENGTH = 4000


def check_template(text: str) -> tuple[str, ...]:
    """Return the placeholders ``text`` uses; refuse unknown ones, format tricks and bad braces.

    Only plain ``{name}`` fields are allowed: no ``{name.attr}``, ``{name!r}`` or ``{name:>9}``,
    so a lead's template can never reach into Python objects when it is filled.
    """
    if not text.strip():
        raise CommandInvalid("error.template_empty")
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise CommandInvalid("error.template_too_long", limit=MAX_TEMPLATE_LENGTH)
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        raise CommandInvalid("error.template_braces") from None
    used: list[str] = []
    for _literal, field, spec, conversion in fields:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            raise CommandInvalid("error.template_placeholder", placeholder="{" + field + "}",
                                 allowed=", ".join("{" + p + "}" for p in PLACEHOLDERS))
        if field not in used:
            used.append(field)
    return tuple(used)


def fill_template(text: str, values: Mapping[str, str]) -> str:
    """Fill a template checked by ``check_template`` with the conversation's values."""
    check_template(text)  # stored templates were checked, but the table may be edited by hand
    return text.format_map({key: values.get(key, "") for key in PLACEHOLDERS})
