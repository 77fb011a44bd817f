"""/template and /reply ID :NAME: canned replies with placeholders, checked when saved, filled when sent."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from inbox.db import Database
from inbox.models import Direction, Kind, Message, Template
from tests.commands.conftest import NewConversation, Run, events_of


async def sent_texts(db: Database, conv: int) -> list[str]:
    async with db.sessions() as session:
        query = (select(col(Message.text))
                 .where(col(Message.conversation_id) == conv, col(Message.direction) == Direction.OUT.value)
                 .order_by(col(Message.id)))
        rows = await session.execute(query)
    return list(rows.scalars())


async def test_add_list_show_remove(run: Run, db: Database) -> None:
    assert await run("carol", "/template list") == (
        "No templates yet. A lead can add one with /template add NAME TEXT.")
    assert await run("carol", "/template") == await run("carol", "/template list")
    assert await run("bob", "/template add Welcome Hi {name}! I'm {agent}.\nHow can I help?") == (
        "Template 'welcome' saved.")
    assert await run("bob", "/t add refund Refunds take 5 days.") == "Template 'refund' saved."
    assert await run("carol", "/templates list") == (
        "Templates:\n  :refund — Refunds take 5 days.\n  :welcome — Hi {name}! I'm {agent}. How can I help?")
    assert await run("carol", "/template show welcome") == (
        ":welcome\nHi {name}! I'm {agent}.\nHow can I help?\nPlaceholders: {name}, {agent}\n"
        "Send it with /reply ID :welcome")
    (added, _) = await events_of(db, "template.added")
    assert added.actor == "member:bob" and added.data["placeholders"] == ["name", "agent"]
    assert await run("bob", "/template remove refund") == "Template 'refund' removed."
    (removed,) = await events_of(db, "template.removed")
    assert removed.data == {"name": "refund", "text": "Refunds take 5 days."}
    async with db.sessions() as session:
        assert list((await session.execute(select(col(Template.name)))).scalars()) == ["welcome"]


async def test_template_errors(run: Run) -> None:
    await run("bob", "/template add hi Hello")
    assert (await run("bob", "/template add hi Again")).splitlines() == [
        "Template 'hi' already exists: remove it first",
        "Usage: /template list | show NAME | add NAME TEXT | remove NAME",
    ]
    assert (await run("bob", "/template add bye")).startswith("Missing argument: TEXT")
    assert (await run("bob", "/template add")).startswith("Missing argument: NAME")
    assert (await run("bob", "/template add b@d text")).startswith("'b@d' is not a valid template name")
    assert (await run("bob", "/template show nope")).startswith("There is no template 'nope'")
    assert (await run("bob", "/template remove nope")).startswith("There is no template 'nope'")
    assert (await run("bob", "/template rename hi")).startswith("'rename' is not a template action")


async def test_unknown_placeholders_are_refused_when_saved(run: Run, db: Database) -> None:
    out = await run("bob", "/template add order Hi {customer}, order {order_id} shipped")
    assert out.splitlines()[0] == (
        "Unknown placeholder {customer}: templates may use {name}, {handle}, {id}, {agent}")
    out = await run("bob", "/template add sneaky {name.__class__}")
    assert out.startswith("Unknown placeholder {name.__class__}")
    out = await run("bob", "/template add broken Hi {name")
    assert out.startswith("The template's braces do not match")
    async with db.sessions() as session:
        assert (await session.execute(select(Template))).first() is None


async def test_reply_with_a_template_fills_the_placeholders(run: Run, db: Database,
                                                            new_conversation: NewConversation) -> None:
    await run("bob", "/template add welcome Hi {name} ({handle}), this is {agent} about #{id}. {{ok}}")
    conv = await new_conversation(name="Siti", handle="siti_n")
    out = await run("carol", f"/reply {conv} :welcome")
    assert out.splitlines()[0] == f"Template 'welcome' sent to #{conv} (queued for delivery)."
    assert await sent_texts(db, conv) == [f"Hi Siti (@siti_n), this is carol about #{conv}. {{ok}}"]
    # without a display name the handle stands in; inside a topic the ID may be left out
    anon = await new_conversation(name=None, handle="@anon", kind=Kind.MENTION)
    assert "sent to" in await run("carol", "/r :Welcome", conversation_id=anon)
    assert await sent_texts(db, anon) == [f"Hi anon (@anon), this is carol about #{anon}. {{ok}}"]


async def test_template_placeholders_fall_back_politely(run: Run, db: Database,
                                                        new_conversation: NewConversation) -> None:
    await run("bob", "/template add hi Hello {name}!")
    conv = await new_conversation(name=None, handle=None)
    await run("carol", f"/reply {conv} :hi")
    await run("carol", f"/reply {conv} :hi", language="id")
    assert await sent_texts(db, conv) == ["Hello there!", "Hello Kak!"]


async def test_reply_with_an_unknown_template_sends_nothing(run: Run, db: Database,
                                                            new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    out = await run("carol", f"/reply {conv} :nope")
    assert out.splitlines()[0] == "There is no template 'nope' (see /template list)"
    assert await sent_texts(db, conv) == []
    # text that merely starts with a colon is an ordinary reply
    await run("carol", f"/reply {conv} :) all good")
    assert await sent_texts(db, conv) == [":) all good"]
