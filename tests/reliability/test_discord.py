"""The Discord halves of items 8 and 9: the real discord.py against the Discord emulator.

Item 8: hostile customer text shows verbatim on Discord (once Discord drops the escaping backslashes),
every part fits in 2,000 characters, no mention syntax survives the escaping, and what the bot sends
pings nobody (the emulator applies Discord's ``allowed_mentions`` rules).

Item 9: a stranger's slash command, a forged button, a command above the member's role, and a command
from a server that is not the team's are refused and change nothing; the first three are audited.
"""

from __future__ import annotations

import re

from hypothesis import assume, given
from sqlalchemy import update
from sqlmodel import col

from connectors.discord.emulator_world import Guild, MessageRecord
from connectors.discord.render import MAX_LENGTH, render
from inbox.commands import REFUSED_EVENT
from inbox.events import Author, Batch, Inbound
from inbox.ingest import Ingestor
from inbox.models import Conversation, Event, Kind, Member, Template
from inbox.textsafe import storable
from tests.connectors.discord.conftest import World, discord_world, displayed, eventually
from tests.reliability.support import rows
from tests.reliability.test_hostile_text import (
    FUZZ,
    HOSTILE_PIECES,
    any_hostile,
    detail_view,
    hostile,
    squash,
)

__all__ = ["discord_world"]  # the fixture, used by the tests below

# Mention syntax that would ping if it reached Discord unescaped.
_QUOTE = re.compile(r"(?m)^> ?")
# Whether Discord drops a backslash inside an autolink is not something the emulator can tell us.
_BACKSLASH_IN_LINK = re.compile(r"https?://[^\s<>]*\\")
_LINK = re.compile(r"<https?://[^\s<>]+>")
_LIVE_MENTION = re.compile(r"(?<!\\)@(everyone|here)\b|(?<!\\)<@[!&]?\d+(?<!\\)>")


def unquote(content: str) -> str:
    """Content without the block-quote markers the renderer puts before customer lines (a customer's
    own ``>`` is escaped, so it stays)."""
    return _QUOTE.sub("", content)


@FUZZ
@given(text=any_hostile, contact=hostile)
def test_discord_shows_hostile_text_verbatim_within_limits_and_pings_nobody(text: str, contact: str) -> None:
    text, contact = storable(text), storable(contact)
    assume(text.strip())
    assume(not _BACKSLASH_IN_LINK.search(text))
    rendered = render(detail_view(text, contact or "?"))
    assert rendered.parts and all(0 < len(part) <= MAX_LENGTH for part in rendered.parts)
    for part in rendered.parts:
        # Links stay links (<https://…>); a mention inside one is inert text (and the senders'
        # allowed_mentions keep it from pinging anyway: test_hostile_text_through_discord_end_to_end).
        assert not _LIVE_MENTION.search(_LINK.sub("", part)), part[:200]
    assert squash(text) in squash("".join(displayed(unquote(part)) for part in rendered.parts))


def test_a_link_longer_than_a_discord_message_is_shown_verbatim() -> None:
    text = "see https://example.org/" + "a" * 3000 + " thanks"
    parts = render(detail_view(text, "ana")).parts
    assert all(len(part) <= MAX_LENGTH for part in parts)
    assert squash(text) in squash("".join(displayed(unquote(part)) for part in parts))


async def test_hostile_text_through_discord_end_to_end(discord_world: World) -> None:
    w = discord_world
    role = w.emu.guild("Saluran Community").role_named("Moderators")
    sample = "".join(HOSTILE_PIECES) + f" <@&{role.id}> <@{w.user('alice').id}> @everyone @here"
    dm = await w.emu.user_dm(w.user("dana"), sample[:2000])
    card = await w.card_for(dm)
    assert card.pings.none and len(card.content) <= MAX_LENGTH
    # 10,000 characters from another channel, shown in the team chat: split, verbatim, silent.
    long_text = f"@everyone <@&{role.id}> *x* " * 400
    result = await Ingestor(w.db, w.clock).ingest(
        Batch(
            "discord",
            [Inbound("discord", "long-1", Kind.DM, Author("someone"), long_text[:10_000], w.clock.now())],
        )
    )
    conversation = result.stored[0].conversation_id
    await w.emu.slash_command(w.team, w.inbox, w.user("alice"), "show", {"id": conversation})

    def seen() -> str:
        return squash("".join(displayed(unquote(m.content)) for m in w.answers()))

    await eventually(lambda: squash(long_text[:10_000]) in seen())  # every part arrived, verbatim
    assert all(len(m.content) <= MAX_LENGTH and m.pings.none for m in w.answers())
    [first] = await rows(w.db, Conversation, col(Conversation.id) != conversation)
    await w.reply(first, sample[:2000])
    await w.dispatcher.run_once()
    [reply] = w.emu.sent(w.emu.dm_channel(w.user("dana")))
    assert reply.content == sample[:2000].strip()
    assert reply.pings.none


async def _answers(w: World, at_least: int) -> list[MessageRecord]:
    return list(await eventually(lambda: len(w.answers()) >= at_least and w.answers()))


async def refusals(w: World) -> list[tuple[str, str]]:
    return [(e.actor, e.data["reason"]) for e in await rows(w.db, Event, col(Event.type) == REFUSED_EVENT)]


async def state(w: World) -> list[object]:
    return [(c.status, c.assignee_id, c.priority) for c in await rows(w.db, Conversation)] + [
        [t.name for t in await rows(w.db, Template)],
        [(d.destination, d.status) for d in await w.deliveries()],
    ]


async def test_discord_strangers_forgeries_and_roles_are_refused_and_audited(discord_world: World) -> None:
    w = discord_world
    card = await w.card_for(await w.emu.user_dm(w.user("dana"), "Hello"))
    [conversation] = await w.conversations()
    before = await state(w)
    stranger = w.user("carol")  # in the team server, but no discord_id in the config yet
    await w.emu.slash_command(w.team, w.inbox, stranger, "resolve", {"id": conversation.id})
    resolve = next(c for c in card.custom_ids if "/resolve" in c)
    forged = resolve.replace(f"/resolve {conversation.id}", "/template add scam send money")
    card.components[0]["components"].append({"type": 2, "style": 2, "label": "x", "custom_id": forged})
    await w.emu.press_button(card, w.user("alice"), forged)
    await _answers(w, 2)  # both refused before carol joins
    async with w.db.transaction() as session:  # carol joins the team on Discord, as an agent
        await session.execute(
            update(Member)
            .where(col(Member.name) == "carol")
            .values(platform_ids={"telegram": "1003", "discord": str(stranger.id)})
        )
    await w.emu.slash_command(w.team, w.inbox, stranger, "template", {"action": "add greet Hello there"})
    answers = await _answers(w, 3)
    assert all(a.ephemeral for a in answers[:3])
    assert await state(w) == before
    assert sorted(reason for _, reason in await refusals(w)) == ["forged_button", "not_member", "role"]


async def test_discord_commands_from_a_server_that_is_not_the_teams_change_nothing(
    discord_world: World,
) -> None:
    w = discord_world
    await w.card_for(await w.emu.user_dm(w.user("dana"), "Hello"))
    [conversation] = await w.conversations()
    before = await state(w)
    community = w.emu.guild("Saluran Community")
    await _foreign_interaction(w, community, f"{conversation.id}")
    [answer] = await _answers(w, 1)
    assert answer.ephemeral and "team's server" in displayed(answer.content)
    assert await state(w) == before


async def test_discord_commands_from_a_server_that_is_not_the_teams_are_audited(discord_world: World) -> None:
    w = discord_world
    await w.card_for(await w.emu.user_dm(w.user("dana"), "Hello"))
    [conversation] = await w.conversations()
    await _foreign_interaction(w, w.emu.guild("Saluran Community"), f"{conversation.id}")
    await _answers(w, 1)
    assert ("member:alice", "foreign_chat") in await refusals(w)


async def _foreign_interaction(w: World, guild: Guild, conversation: str) -> None:
    """alice's /resolve arriving from the community server (a client Discord would not offer it to: the
    commands are registered in the team server only; sent through the emulator's interaction path)."""
    command = w.emu._find_command(w.team, "resolve")
    channel = w.emu.channel("support", guild)
    w.emu.add_member(guild, w.user("alice"))
    data = {
        "id": command["id"],
        "name": "resolve",
        "type": 1,
        "options": [{"name": "id", "type": 4, "value": int(conversation)}],
    }
    await w.emu._interact(2, guild, channel, w.user("alice"), data)
