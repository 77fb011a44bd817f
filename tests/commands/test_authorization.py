"""Who may run what: strangers and members below a command's role are refused and audited; nothing runs."""

from __future__ import annotations

from sqlalchemy import func, select

from inbox.clock import FakeClock
from inbox.commands import REFUSED_EVENT, CommandCore, CommandInvocation
from inbox.config_sync import sync_members
from inbox.db import Database
from inbox.models import Conversation, Delivery, Message, Role, Template
from inbox.render_text import render
from inbox.settings import MemberSettings
from inbox.views import Confirmation, ErrorView
from tests.commands.conftest import NewConversation, Run, count_events, events_of


async def count(db: Database, model: type) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_stranger_on_the_terminal_is_refused_and_audited(run: Run, db: Database,
                                                                  new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    out = await run("mallory", f"/reply {conv} hello")
    assert out == "You are not on this team, so I cannot run commands for you."
    assert await count(db, Message) == 1  # only the customer's message
    assert await count(db, Delivery) == 0
    (event,) = await events_of(db, REFUSED_EVENT)
    assert event.actor == "unknown:terminal:mallory"
    assert event.data["reason"] == "not_member" and event.data["command"] == "reply"


async def test_a_stranger_on_a_platform_is_refused_even_for_help(core: CommandCore, db: Database) -> None:
    view = await core.execute(CommandInvocation(text="/help", platform="telegram", user_id="999",
                                                chat_id="-100", conversation_id=None))
    assert isinstance(view, ErrorView) and view.kind == "refused" and not view.ok
    (event,) = await events_of(db, REFUSED_EVENT)
    assert event.actor == "unknown:telegram:999"
    assert event.data["platform"] == "telegram" and event.data["chat_id"] == "-100"


async def test_platform_ids_identify_members(core: CommandCore, db: Database,
                                             new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    # carol is telegram 1003 in the seeded team; alice is discord 2001
    view = await core.execute(CommandInvocation(f"/assign {conv} me", platform="telegram", user_id="1003"))
    assert isinstance(view, Confirmation) and "carol" in view.message
    view = await core.execute(CommandInvocation(f"/unassign {conv}", platform="discord", user_id="2001"))
    assert isinstance(view, Confirmation)
    # bob has no Discord id: the same number on another platform is not him
    view = await core.execute(CommandInvocation(text="/queue", platform="discord", user_id="1002"))
    assert isinstance(view, ErrorView) and view.kind == "refused"
    assert await count_events(db, REFUSED_EVENT) == 1


async def test_a_deactivated_member_is_refused(run: Run, db: Database, clock: FakeClock) -> None:
    team = [MemberSettings(name="alice", role=Role.ADMIN), MemberSettings(name="bob", role=Role.LEAD)]
    await sync_members(db, team)  # carol left the config
    out = await run("carol", "/queue")
    assert "not on this team" in out
    assert await count_events(db, REFUSED_EVENT) == 1


async def test_a_role_change_or_removal_holds_from_the_next_command(run: Run, db: Database) -> None:
    assert "saved" in await run("bob", "/template add hello Hi {name}")
    team = [MemberSettings(name="alice", role=Role.ADMIN), MemberSettings(name="carol", role=Role.AGENT)]
    await sync_members(db, [*team, MemberSettings(name="bob", role=Role.AGENT)])  # bob is an agent now
    refused = await run("bob", "/template remove hello")
    assert refused == "/template remove needs the lead role; you are agent."
    await sync_members(db, team)  # and then left the team
    assert "not on this team" in await run("bob", "/template list")
    assert await count(db, Template) == 1


async def test_an_agent_cannot_change_templates(run: Run, db: Database) -> None:
    out = await run("carol", "/template add hello Hi {name}")
    assert out == "/template add needs the lead role; you are agent."
    assert await count(db, Template) == 0
    (event,) = await events_of(db, REFUSED_EVENT)
    assert event.actor == "member:carol"
    assert event.data == {**event.data, "reason": "role", "required": "lead", "role": "agent",
                          "command": "template add"}
    assert "Hi {name}" in event.data["text"]


async def test_an_agent_may_read_templates_but_not_remove_them(run: Run, db: Database) -> None:
    assert "saved" in await run("bob", "/template add hello Hi {name}")
    assert ":hello" in await run("carol", "/template list")
    assert "Hi {name}" in await run("carol", "/TEMPLATE show hello")
    out = await run("carol", "/template REMOVE hello")
    assert out == "/template remove needs the lead role; you are agent."
    assert await count(db, Template) == 1
    assert "removed" in await run("alice", "/template remove hello")  # admin outranks lead
    assert await count(db, Template) == 0


async def test_an_agent_cannot_retry_deliveries(run: Run, db: Database,
                                                new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    await run("carol", f"/reply {conv} hi")
    out = await run("carol", "/retry 1")
    assert out == "/retry needs the lead role; you are agent."
    (event,) = await events_of(db, REFUSED_EVENT)
    assert event.data["command"] == "retry" and event.data["required"] == "lead"
    async with db.sessions() as session:
        assert (await session.get(Delivery, 1)) is not None


async def test_refusal_leaves_the_conversation_untouched(run: Run, db: Database,
                                                         new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    await run("eve", f"/resolve {conv}")
    await run("eve", f"/priority {conv} urgent")
    async with db.sessions() as session:
        row = await session.get(Conversation, conv)
    assert row is not None and (row.status, row.priority) == ("open", "normal")
    assert await count_events(db, REFUSED_EVENT) == 2
    assert await count_events(db, "conversation.resolved") == 0


async def test_role_refusal_is_translated(core: CommandCore) -> None:
    view = await core.execute(CommandInvocation.terminal("carol", "/retry 4", language="id"))
    assert render(view) == "/retry memerlukan peran lead; peran Anda agent."
