"""Catalogues: every key in every language with the same placeholders, and every key the code uses exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from inbox.commands.handlers_admin import DeliveryCommands, TemplateCommands
from inbox.commands.handlers_conversation import ConversationCommands
from inbox.commands.handlers_help import HelpCommands
from inbox.commands.handlers_queue import SLA_TARGETS, QueueCommands
from inbox.commands.registry import CommandSpec, Registry
from inbox.i18n import (
    CATALOGUES,
    ERROR_PATTERNS,
    LANGUAGES,
    choose_language,
    placeholders,
    t,
    translate_error,
)
from inbox.models import DeliveryStatus, Kind, Priority, Role, Status

INBOX = Path(__file__).resolve().parents[1] / "inbox"
# Modules that speak to users; audit event types such as "template.added" live elsewhere in them,
# so only a key passed as the first or second argument of a call (t(lang, KEY), UsageError(KEY)) counts.
USER_FACING = [*(INBOX / "commands").glob("*.py"), INBOX / "render_text.py", INBOX / "terminal_console.py"]
_KEY_LITERAL = re.compile(
    r"""\(\s*(?:[\w.]+,\s*)?["']((?:error|done|action|value|role|button|label|queue|detail|help|template|sla)"""
    r"""\.[a-z_.]+)["']""")


def test_the_languages_are_english_and_indonesian() -> None:
    assert set(CATALOGUES) == set(LANGUAGES) == {"en", "id"}


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_every_key_exists_in_every_language(lang: str) -> None:
    english, other = set(CATALOGUES["en"]), set(CATALOGUES[lang])
    assert sorted(english - other) == [], f"missing in {lang}"
    assert sorted(other - english) == [], f"only in {lang}"


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_placeholders_match_across_languages(lang: str) -> None:
    for key, english in CATALOGUES["en"].items():
        assert placeholders(CATALOGUES[lang][key]) == placeholders(english), key


def test_every_message_formats_with_its_own_placeholders() -> None:
    for lang in LANGUAGES:
        for key, template in CATALOGUES[lang].items():
            params: dict[str, Any] = {name: "x" for name in placeholders(template)}
            assert t(lang, key, **params) != key


def _keys_used_in_code() -> set[str]:
    found: set[str] = set()
    for path in USER_FACING:
        found.update(_KEY_LITERAL.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_key_the_code_names_exists() -> None:
    used = _keys_used_in_code()
    assert len(used) > 50  # the scan really found the code's keys
    assert sorted(used - set(CATALOGUES["en"])) == []


def test_every_word_built_at_runtime_exists() -> None:
    words = [f"value.{v}" for enum in (Status, Priority, Kind, DeliveryStatus) for v in enum]
    words += [f"role.{r.value}" for r in Role] + [f"sla.{name}" for name in SLA_TARGETS]
    for lang in LANGUAGES:
        assert sorted(w for w in words if w not in CATALOGUES[lang]) == []


@pytest.mark.parametrize("pattern", ERROR_PATTERNS, ids=lambda p: p.key)
def test_core_error_sentences_round_trip_and_translate(pattern: Any) -> None:
    assert pattern.regex.fullmatch(pattern.sample), "the sample must match its own pattern"
    assert translate_error("en", pattern.sample) == pattern.sample
    assert translate_error("id", pattern.sample) != pattern.sample
    assert pattern.key in CATALOGUES["en"]


def test_unknown_error_sentences_pass_through() -> None:
    assert translate_error("id", "the moon is made of cheese") == "the moon is made of cheese"


def test_lookup_never_raises() -> None:
    assert t("id", "no.such.key") == "no.such.key"
    assert t("en", "done.resolved") == "#{id} resolved."  # a missing parameter shows the template
    assert t("xx", "done.resolved", id=3) == "#3 resolved."


def test_choose_language() -> None:
    assert choose_language("id", "en") == "id"
    assert choose_language(None, "id") == "id"
    assert choose_language("fr", "id") == "id"
    assert choose_language("fr", "de") == "en"


def test_every_command_has_help_in_every_language() -> None:
    registry = Registry([QueueCommands(None), ConversationCommands(None), TemplateCommands(None),  # type: ignore[arg-type]
                         DeliveryCommands(None), HelpCommands(lambda: registry)])  # type: ignore[arg-type]
    assert len(registry.all()) == 18
    for cmd in registry.all():
        for lang in LANGUAGES:
            assert cmd.spec.summary[lang].strip(), (cmd.spec.name, lang)


def test_a_command_without_indonesian_help_cannot_be_declared() -> None:
    with pytest.raises(ValueError, match="help text missing for id"):
        CommandSpec(name="x", role=Role.AGENT, usage="/x", summary={"en": "X."}, example="/x")
