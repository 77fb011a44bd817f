"""Slash commands generated from the command registry, and slash options turned back into command text."""

from __future__ import annotations

import re

import pytest

from connectors.discord.console import SlashShape, slash_commands, slash_shape
from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.commands import CommandCore, CommandSpec
from tests.factories import make_settings

_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")


def specs() -> list[CommandSpec]:
    """The declarations of the real command core (nothing runs, so no database is needed)."""
    clock = FakeClock()
    core = CommandCore(None, clock, make_settings(), Actions(None, clock))  # type: ignore[arg-type]
    return [command.spec for command in core.registry.all()]


@pytest.mark.parametrize("lang", ["en", "id"])
def test_every_command_becomes_a_valid_slash_command(lang: str) -> None:
    payload = slash_commands(specs(), lang)
    names = [c["name"] for c in payload]
    assert names == [s.name for s in specs()] + ["thread"] and len(set(names)) == len(names) <= 100
    for command in payload:
        assert _NAME.match(command["name"]) and 1 <= len(command["description"]) <= 100
        assert command["contexts"] == [0]  # the team server only, never DMs
        required = [o["required"] for o in command["options"]]
        assert required == sorted(required, reverse=True), f"/{command['name']}: required options first"
        for option in command["options"]:
            assert _NAME.match(option["name"]) and 1 <= len(option["description"]) <= 100
        other = {"en": ["id"], "id": ["en-US", "en-GB"]}[lang]
        assert list(command["description_localizations"]) == other
        assert all(1 <= len(text) <= 100 for text in command["description_localizations"].values())


def test_options_show_the_usage_and_the_id_is_optional() -> None:
    by_name = {c["name"]: c for c in slash_commands(specs(), "en")}
    reply = {o["name"]: o for o in by_name["reply"]["options"]}
    assert reply["text"] == {"type": 3, "name": "text", "description": "TEXT | :TEMPLATE", "required": True}
    assert reply["id"]["type"] == 4 and not reply["id"]["required"] and reply["id"]["min_value"] == 1
    priority = by_name["priority"]["options"][0]
    assert [c["value"] for c in priority["choices"]] == ["low", "normal", "high", "urgent"]
    usage = "[mine|unassigned|all] [#TAG] [channel:NAME] [page N]"
    expected = {"type": 3, "name": "filters", "required": False, "description": usage}
    assert by_name["queue"]["options"] == [expected]
    assert [o["name"] for o in by_name["retry"]["options"]] == ["delivery"]
    assert [o["name"] for o in by_name["resolve"]["options"]] == ["id"]


def test_options_become_command_text_with_the_thread_conversation_spelled_out() -> None:
    by_name = {s.name: s for s in specs()}
    reply = slash_shape(by_name["reply"])
    assert reply == SlashShape("reply", True, "text")
    assert reply.text({"id": 12, "text": "Thanks!"}, None) == "/reply 12 Thanks!"
    # In conversation 7's thread, "2 items arrived" must not read as a reply to conversation 2.
    assert reply.text({"text": "2 items arrived"}, 7) == "/reply 7 2 items arrived"
    assert reply.text({"text": "hi"}, None) == "/reply hi"  # the core answers with the usage
    assert slash_shape(by_name["queue"]).text({}, 7) == "/queue"
    assert slash_shape(by_name["queue"]).text({"filters": "mine"}, None) == "/queue mine"
    assert slash_shape(by_name["resolve"]).text({}, 7) == "/resolve 7"
    assert slash_shape(by_name["sla"]).text({}, None) == "/sla"
