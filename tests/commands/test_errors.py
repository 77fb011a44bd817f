"""Every class of user error gives one line plus the usage, never a traceback; /help explains the commands."""

from __future__ import annotations

import logging

import pytest

from inbox.commands import CommandCore, CommandInvocation
from inbox.views import ErrorView, HelpView
from tests.commands.conftest import NewConversation, Run


async def test_unknown_command_suggests_the_closest(run: Run) -> None:
    assert await run("carol", "/reslove 3") == "Unknown command /reslove. Did you mean /resolve?"
    assert await run("carol", "/asign 3 me") == "Unknown command /asign. Did you mean /assign?"
    assert await run("carol", "/xyzzy") == "Unknown command /xyzzy. Send /help for the list of commands."
    assert await run("carol", "   ") == "Send a command, for example /help.\nUsage: /help"


async def test_unknown_command_view_carries_the_suggestion(core: CommandCore) -> None:
    view = await core.execute(CommandInvocation.terminal("carol", "/qeueu"))
    assert isinstance(view, ErrorView) and view.kind == "unknown_command" and view.suggestion == "queue"


@pytest.mark.parametrize(("text", "expected"), [
    ("/reply", ["Missing argument: ID", "Usage: /reply ID TEXT  |  /reply ID :TEMPLATE"]),
    ("/reply 1", ["Missing argument: TEXT", "Usage: /reply ID TEXT  |  /reply ID :TEMPLATE"]),
    ("/note 1   ", ["Missing argument: TEXT", "Usage: /note ID TEXT"]),
    ("/tag 1", ["Missing argument: TAG", "Usage: /tag ID TAG…"]),
    ("/assign 1", ["Missing argument: MEMBER", "Usage: /assign ID @member|member|me"]),
    ("/priority 1", ["Missing argument: PRIORITY", "Usage: /priority ID low|normal|high|urgent"]),
    ("/snooze 1", ["Missing argument: TIME",
                   "Usage: /snooze ID 2h|30m|1d|tomorrow 9:00|monday 9:00|2026-12-01 10:00"]),
    ("/retry", ["Missing argument: DELIVERY", "Usage: /retry DELIVERY"]),
])
async def test_missing_arguments(run: Run, new_conversation: NewConversation, text: str,
                                 expected: list[str]) -> None:
    await new_conversation()
    assert (await run("bob", text)).splitlines() == expected


@pytest.mark.parametrize(("text", "first_line"), [
    ("/show abc", "'abc' is not a valid ID: use a number such as 12 or #12"),
    ("/resolve #x", "'#x' is not a valid ID: use a number such as 12 or #12"),
    ("/reply 0 hi", "'0' is not a valid ID: use a number such as 12 or #12"),
    ("/show 99999999999", "'99999999999' is not a valid ID: use a number such as 12 or #12"),
    ("/retry abc", "'abc' is not a valid DELIVERY: use a number such as 12 or #12"),
])
async def test_bad_ids(run: Run, text: str, first_line: str) -> None:
    out = (await run("bob", text)).splitlines()
    assert out[0] == first_line and out[1].startswith("Usage: ")


@pytest.mark.parametrize("text", ["/show 42", "/reply 42 hi", "/note 42 x", "/tag 42 a", "/untag 42 a",
                                  "/assign 42 me", "/unassign 42", "/escalate 42", "/priority 42 high",
                                  "/snooze 42 2h", "/pending 42", "/resolve 42", "/reopen 42", "/sla 42",
                                  "/reply 42 :welcome"])
async def test_unknown_conversation(run: Run, text: str) -> None:
    await run("bob", "/template add welcome Hi")
    out = (await run("carol", text)).splitlines()
    assert out[0] == "Conversation #42 does not exist"
    assert out[1].startswith("Usage: /")


async def test_bad_and_past_durations(run: Run, new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    assert (await run("carol", f"/snooze {conv} in a while")).splitlines() == [
        "'in a while' is not a time I understand "
        "(examples: 2h, 30m, 1d, tomorrow 9:00, monday 9:00, 2026-12-01 10:00)",
        "Usage: /snooze ID 2h|30m|1d|tomorrow 9:00|monday 9:00|2026-12-01 10:00",
    ]
    out = await run("carol", f"/snooze {conv} 2020-01-01 10:00")
    assert out.splitlines()[0] == "'2020-01-01 10:00' is in the past: pick a later time"
    assert (await run("carol", f"/snooze {conv} 0m")).startswith("'0m' is not a time I understand")


async def test_an_unexpected_failure_is_logged_and_shown_as_one_line(
    run: Run, core: CommandCore, new_conversation: NewConversation, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conv = await new_conversation()

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database exploded")

    monkeypatch.setattr(core.deps.actions, "resolve", broken)
    with caplog.at_level(logging.ERROR, logger="inbox.commands.core"):
        out = await run("carol", f"/resolve {conv}")
    assert out == "Something went wrong while running that command; the details are in the log."
    assert "Traceback" not in out and "exploded" not in out
    assert any("database exploded" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_help_lists_commands_and_explains_one(run: Run, core: CommandCore) -> None:
    out = await run("carol", "/help")
    assert out.splitlines()[0] == "Commands:"
    assert "  /reply, /r" in out.splitlines()
    assert "  /retry (needs lead)" in out.splitlines()
    assert "  /template, /templates, /t (add, remove: needs lead)" in out.splitlines()
    assert await run("carol", "/help note") == (
        "/note ID TEXT\n  Add an internal note; the customer never sees it.\n  Aliases: /n\n"
        "  Least role: agent\n  Example: /note 12 Customer called, refund approved")
    assert (await run("carol", "/help /R")).startswith("/reply ID TEXT")
    assert "  add needs lead" in (await run("carol", "/help template")).splitlines()
    assert await run("carol", "/help frobnicate") == (
        "Unknown command /frobnicate. Send /help for the list of commands.")
    view = await core.execute(CommandInvocation.terminal("carol", "/help"))
    assert isinstance(view, HelpView)
    assert {e.name for e in view.entries} == {
        "queue", "show", "sla", "reply", "note", "tag", "untag", "assign", "unassign", "escalate",
        "priority", "snooze", "pending", "resolve", "reopen", "template", "retry", "stats", "help"}


async def test_long_input_is_not_echoed_back_in_full(run: Run, new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    out = await run("carol", f"/snooze {conv} " + "later " * 200)
    assert len(out.splitlines()[0]) < 200 and "…" in out
    out = await run("carol", "/" + "x" * 500)
    assert len(out) < 150
