"""User-facing text in English and Indonesian: message keys, lookup, and translation of core errors.

Catalogues live in ``inbox.locales.<lang>`` as ``str.format`` templates. The core's actions raise
errors with English sentences (they also serve the CLI and logs); ``translate_error`` recognises
those sentences, gettext-style, and says them in the chat's language, falling back to the English
text for anything it does not know.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inbox.locales import en
from inbox.locales import id as indonesian

log = logging.getLogger(__name__)

LANGUAGES = ("en", "id")
DEFAULT_LANGUAGE = "en"
CATALOGUES: Mapping[str, Mapping[str, str]] = {"en": en.MESSAGES, "id": indonesian.MESSAGES}


def choose_language(requested: str | None, default: str) -> str:
    """The chat's language if supported, else the team default, else English."""
    for lang in (requested, default):
        if lang is not None and lang in CATALOGUES:
            return lang
    return DEFAULT_LANGUAGE


def t(lang: str, key: str, **params: Any) -> str:
    """The message ``key`` in ``lang`` with ``params`` filled in; never raises in front of a user."""
    template: str | None = CATALOGUES.get(lang, CATALOGUES[DEFAULT_LANGUAGE]).get(key)
    if template is None:
        template = CATALOGUES[DEFAULT_LANGUAGE].get(key)
    if template is None:
        log.error("message key %r is missing from the catalogues", key)
        return key
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        log.error("message %r in %r does not fit its parameters %r", key, lang, sorted(params))
        return template


def placeholders(template: str) -> frozenset[str]:
    """The field names a ``str.format`` template uses."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)


@dataclass(frozen=True, slots=True)
class ErrorPattern:
    """An English core error sentence, the key that says it in any language, and a sample for tests.

    ``words`` names the captured values that are themselves words to translate, with the key
    prefix to look them up under (``state`` → ``value.resolved``).
    """

    regex: re.Pattern[str]
    key: str
    sample: str
    words: Mapping[str, str] = field(default_factory=dict)


def _p(regex: str, key: str, sample: str, **words: str) -> ErrorPattern:
    return ErrorPattern(re.compile(regex), key, sample, words)


ERROR_PATTERNS: tuple[ErrorPattern, ...] = (
    _p(r"conversation #(?P<id>\d+) does not exist", "error.conversation_not_found",
       "conversation #9 does not exist"),
    _p(r"'(?P<name>.*)' is not a team member", "error.unknown_member", "'zed' is not a team member"),
    _p(r"channel '(?P<name>.*)' is not configured", "error.unknown_channel",
       "channel 'fax' is not configured"),
    _p(r"delivery #(?P<id>\d+) does not exist", "error.delivery_not_found", "delivery #4 does not exist"),
    _p(r"'(?P<value>.*)' is not a priority: use low, normal, high or urgent", "error.bad_priority",
       "'meh' is not a priority: use low, normal, high or urgent"),
    _p(r"a reply needs some text", "action.reply_empty", "a reply needs some text"),
    _p(r"a reply can be at most (?P<limit>\d+) characters", "action.reply_too_long",
       "a reply can be at most 20000 characters"),
    _p(r"conversation #(?P<id>\d+) is resolved; reopen it before you "
       r"(?P<what>reply|escalate|snooze|mark it pending)", "action.resolved_first",
       "conversation #3 is resolved; reopen it before you mark it pending", what="action.what."),
    _p(r"a note needs some text", "action.note_empty", "a note needs some text"),
    _p(r"'(?P<value>.*)' is not a valid tag: use letters, digits, '-', '_', ':' or '\.' \(at most 60\)",
       "action.bad_tag", "'b@d' is not a valid tag: use letters, digits, '-', '_', ':' or '.' (at most 60)"),
    _p(r"name at least one tag", "action.no_tag", "name at least one tag"),
    _p(r"conversation #(?P<id>\d+) has no tag (?P<tags>.+)", "action.missing_tag",
       "conversation #3 has no tag vip, billing"),
    _p(r"conversation #(?P<id>\d+) is already assigned to (?P<member>.+)", "action.already_assigned",
       "conversation #3 is already assigned to carol"),
    _p(r"conversation #(?P<id>\d+) is not assigned", "action.not_assigned",
       "conversation #3 is not assigned"),
    _p(r"conversation #(?P<id>\d+) is already (?P<state>\w+)", "action.already",
       "conversation #3 is already resolved", state="value."),
    _p(r"cannot snooze into the past: pick a later time", "action.snooze_past",
       "cannot snooze into the past: pick a later time"),
    _p(r"delivery #(?P<id>\d+) is not failed \(it is (?P<state>\w+)\)", "action.delivery_not_failed",
       "delivery #4 is not failed (it is sent)", state="value."),
)


def translate_error(lang: str, message: str) -> str:
    """Say a core error sentence in ``lang``; unknown sentences come back unchanged."""
    for pattern in ERROR_PATTERNS:
        match = pattern.regex.fullmatch(message)
        if match is None:
            continue
        params = match.groupdict()
        for name, prefix in pattern.words.items():
            key = prefix + params[name].replace(" ", "_")
            if key in CATALOGUES[DEFAULT_LANGUAGE]:
                params[name] = t(lang, key)
        return t(lang, pattern.key, **params)
    return message
