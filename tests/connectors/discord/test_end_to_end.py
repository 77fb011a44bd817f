"""The real discord.py against the emulator, end to end, on both databases: a customer's DM becomes a card
in the team channel, members answer with slash commands and buttons, a conversation thread holds notes,
non-members are refused, hostile text pings nobody, a 429 only delays, a dropped gateway loses nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlmodel import col, select

from connectors.discord.emulator_world import LOADING, MessageRecord
from connectors.discord.render import MAX_LENGTH
from inbox.commands import REFUSED_EVENT, CommandInvocation
from inbox.models import DeliveryStatus, Direction, Event
from inbox.views import View
from tests.connectors.discord.conftest import MESSAGES, World, displayed, eventually

HOSTILE = ("@everyone look <@&{role}> **x** `rm -rf` ~~gone~~ ||spoiler||\n> quote\n"
           "# header [link](https://evil.example)")


async def test_a_customer_dm_becomes_a_card_and_a_slash_reply_reaches_the_customer(discord_world: World):
    w = discord_world
    dana = w.user("dana")
    dm = await w.emu.user_dm(dana, "Hi, my parcel is late")

    card = await w.card_for(dm)
    (conversation,) = await w.conversations()
    assert conversation.kind == "dm"
    assert f"#{conversation.id}" in card.content and "Hi, my parcel is late" in displayed(card.content)
    assert card.pings.none
    commands = [w.parts.console.signer.command(custom_id) for custom_id in card.custom_ids]  # type: ignore[union-attr]
    assert f"/assign {conversation.id} me" in commands and f"/resolve {conversation.id}" in commands
    assert commands[-1] == f"/thread {conversation.id}"

    answered = len(w.answers())
    await w.emu.slash_command(w.team, w.inbox, w.user("alice"), "reply",
                              {"id": conversation.id, "text": "Sorry! It ships today."})
    (answer,) = await eventually(lambda: w.answers(answered))
    assert f"#{conversation.id}" in displayed(answer.content) and not answer.ephemeral
    await w.dispatcher.run_once()

    (reply,) = w.emu.sent(w.emu.dm_channel(dana))
    assert reply.content == "Sorry! It ships today."
    assert reply.reply_to == dm.id and reply.pings.none
    (out,) = [m for m in await w.messages() if m.direction == Direction.OUT]
    assert out.external_id == f"{reply.channel_id}:{reply.id}"


async def test_a_button_press_runs_its_command_as_the_presser(discord_world: World):
    w = discord_world
    card = await w.card_for(await w.emu.user_dm(w.user("eli"), "Refund please"))
    (conversation,) = await w.conversations()
    take = next(c for c in card.custom_ids if c.endswith(f"/assign {conversation.id} me"))

    await w.emu.press_button(card, w.user("bob"), take)
    (answer,) = await eventually(lambda: w.answers())
    assert "bob" in displayed(answer.content)
    (conversation,) = await w.conversations()
    assert conversation.assignee_id is not None
    assert [r.type for r in w.emu.interaction_responses] == [4]


async def test_a_thread_holds_notes_and_replies_without_an_id(discord_world: World):
    w = discord_world
    dana = w.user("dana")
    dm = await w.emu.user_dm(dana, "Where is my order?")
    card = await w.card_for(dm)
    (conversation,) = await w.conversations()
    thread_button = next(c for c in card.custom_ids if c.endswith(f"/thread {conversation.id}"))

    await w.emu.press_button(card, w.user("alice"), thread_button)
    thread = await eventually(lambda: w.emu.channels.get(card.id))
    assert thread.parent_id == w.inbox.id  # started from the card
    detail = await w.emu.wait_sent(1, thread)
    assert "Where is my order?" in displayed(detail[0].content)
    (answer,) = await eventually(lambda: [m for m in w.answers() if m.channel_id == w.inbox.id])
    assert f"<#{thread.id}>" in answer.content

    note = await w.emu.guild_message(thread, w.user("alice"), "VIP, be quick @everyone")
    await eventually(lambda: _notes(w))
    (stored,) = await _notes(w)
    assert stored.text == "VIP, be quick @everyone" and stored.conversation_id == conversation.id
    await w.dispatcher.run_once()
    assert w.emu.sent(w.emu.dm_channel(dana)) == [], "a note is never sent to the customer"
    assert not [m for m in w.emu.sent(thread) if m.reply_to == note.id], "a stored note needs no answer"

    typed = await w.emu.guild_message(thread, w.user("bob"), "/tag vip")  # a command typed in the thread
    (tagged,) = await eventually(lambda: [m for m in w.emu.sent(thread) if m.reply_to == typed.id])
    assert f"#{conversation.id} tagged vip" in displayed(tagged.content)
    intruder = await w.emu.guild_message(thread, w.user("carol"), "let me write here")
    (refusal,) = await eventually(lambda: [m for m in w.emu.sent(thread) if m.reply_to == intruder.id])
    assert "not on this team" in displayed(refusal.content) and len(await _notes(w)) == 1

    await w.emu.slash_command(w.team, thread, w.user("alice"), "reply", {"text": "2 items arrived today"})
    await eventually(lambda: [d for d in w.emu.sent(thread) if d.via in ("interaction", "followup")])
    await w.dispatcher.run_once()
    (reply,) = w.emu.sent(w.emu.dm_channel(dana))
    assert reply.content == "2 items arrived today" and reply.reply_to == dm.id

    # A second press finds the same thread instead of opening another.
    await w.emu.press_button(card, w.user("bob"), thread_button)
    await eventually(lambda: len([m for m in w.answers() if m.channel_id == w.inbox.id]) == 2)
    assert len(w.team.threads) == 1


async def _notes(w: World) -> list:
    return [m for m in await w.messages() if m.direction == Direction.NOTE]


async def test_non_members_and_forged_buttons_are_refused(discord_world: World):
    w = discord_world
    card = await w.card_for(await w.emu.user_dm(w.user("dana"), "Hello"))
    (conversation,) = await w.conversations()
    carol = w.user("carol")  # in the team server, but no discord_id in the config

    await w.emu.slash_command(w.team, w.inbox, carol, "resolve", {"id": conversation.id})
    (refusal,) = await eventually(lambda: w.answers())
    assert refusal.ephemeral and "not on this team" in displayed(refusal.content)

    resolve = next(c for c in card.custom_ids if "/resolve" in c)
    forged = resolve.replace(f"/resolve {conversation.id}", "/retry 1")
    card.components[0]["components"].append({"type": 2, "style": 2, "label": "x", "custom_id": forged})
    await w.emu.press_button(card, w.user("alice"), forged)
    await eventually(lambda: len(w.answers()) == 2)
    assert w.answers()[1].ephemeral and "not made by this bot" in displayed(w.answers()[1].content)

    (conversation,) = await w.conversations()
    assert conversation.status == "open"
    async with w.db.sessions() as session:
        rows = await session.execute(select(Event).where(col(Event.type) == REFUSED_EVENT))
        refused = list(rows.scalars())
    assert sorted(e.data["reason"] for e in refused) == ["forged_button", "not_member"]


async def test_hostile_text_arrives_verbatim_and_pings_nobody(discord_world: World):
    w = discord_world
    role = w.emu.guild("Saluran Community").role_named("Moderators")
    hostile = HOSTILE.format(role=role.id)
    card = await w.card_for(await w.emu.user_dm(w.user("dana"), hostile))
    assert card.pings.none and not card.pings.mass
    assert displayed(card.content).count("> quote") == 1
    assert "@everyone look" in displayed(card.content)  # the excerpt: one line
    (conversation,) = await w.conversations()

    await w.emu.slash_command(w.team, w.inbox, w.user("alice"), "show", {"id": conversation.id})
    (shown,) = await eventually(lambda: w.answers())
    assert hostile.replace("\n", "\n> ") in displayed(shown.content) and shown.pings.none

    await w.reply(conversation, hostile)
    await w.dispatcher.run_once()
    (reply,) = w.emu.sent(w.emu.dm_channel(w.user("dana")))
    assert reply.content == hostile and reply.pings.none


async def test_a_429_delays_the_reply_but_it_is_delivered(discord_world: World):
    w = discord_world
    dm = await w.emu.user_dm(w.user("dana"), "hello?")
    await w.card_for(dm)
    (conversation,) = await w.conversations()

    await w.reply(conversation, "short wait")
    w.emu.inject(MESSAGES, 429, retry_after=0.3)
    started = time.monotonic()
    await w.dispatcher.run_once()
    assert time.monotonic() - started >= 0.3  # discord.py waited the short retry-after itself

    await w.reply(conversation, "long wait")
    w.emu.inject(MESSAGES, 429, retry_after=120)
    await w.dispatcher.run_once()  # longer than discord.py waits: the outbox reschedules the row
    row = (await w.deliveries())[-1]
    assert row.status == DeliveryStatus.PENDING and row.attempts == 0
    assert row.next_attempt_at >= w.clock.now() + timedelta(seconds=119)
    w.clock.advance(121)
    await w.dispatcher.run_once()

    sent = [m.content for m in w.emu.sent(w.emu.dm_channel(w.user("dana")))]
    assert sent == ["short wait", "long wait"]
    assert [r.status for r in w.emu.requests_to(MESSAGES)].count(429) == 2


async def test_a_dropped_gateway_resumes_and_the_message_sent_meanwhile_is_stored_once(discord_world: World):
    w = discord_world
    assert await w.emu.drop_gateway() == 1
    missed = await w.emu.user_dm(w.user("dana"), "sent while the bot was away")

    await w.stored(f"{missed.channel_id}:{missed.id}")
    await eventually(lambda: w.emu.resume_count == 1)
    after = await w.emu.user_dm(w.user("dana"), "and after")
    await w.stored(f"{after.channel_id}:{after.id}")
    texts = [m.text for m in await w.messages()]
    assert texts == ["sent while the bot was away", "and after"]
    assert w.emu.identify_count == 1


async def test_long_texts_are_split_at_2000_characters(discord_world: World):
    w = discord_world
    dm = await w.emu.user_dm(w.user("dana"), "*" * 1500)  # escaped, the card is twice as long
    card_parts_before = len(w.emu.sent(w.inbox))
    await w.stored(f"{dm.channel_id}:{dm.id}")
    await w.dispatcher.run_once()
    (conversation,) = await w.conversations()
    await w.emu.slash_command(w.team, w.inbox, w.user("alice"), "show", {"id": conversation.id})

    def all_stars() -> list | None:  # the answer and its follow-ups hold every (escaped) star
        shown = w.answers()
        return shown if "".join(m.content for m in shown).count("\\*") == 1500 else None

    shown = await eventually(all_stars)
    assert len(shown) >= 2 and all(len(m.content) <= MAX_LENGTH for m in shown)
    assert len(w.emu.sent(w.inbox)) > card_parts_before

    text = " ".join(f"word{i}" for i in range(900))  # about 6,000 characters
    await w.reply(conversation, text)
    await w.dispatcher.run_once()
    parts = w.emu.sent(w.emu.dm_channel(w.user("dana")))
    assert len(parts) == 4 and all(len(p.content) <= MAX_LENGTH for p in parts)
    assert " ".join(p.content for p in parts) == text
    assert parts[0].reply_to == dm.id and all(p.reply_to is None for p in parts[1:])


def _address(message: MessageRecord) -> str:
    return f"{message.channel_id}:{message.id}"


async def test_support_channels_and_mentions_thread_by_reply_and_edits_update_the_text(discord_world: World):
    w = discord_world
    community = w.emu.guild("Saluran Community")
    support, general = w.emu.channel("support", community), w.emu.channel("general", community)
    dana, eli = w.user("dana"), w.user("eli")
    post = await w.emu.guild_message(support, dana, "My invoice is wrong")
    follow = await w.emu.guild_message(support, dana, "It says 200 instead of 20", reply_to=post)
    await w.emu.guild_message(general, eli, "nice weather")  # no mention, not a support channel
    await w.emu.guild_message(w.inbox, w.user("alice"), "lunch?")  # the team server
    mention = await w.emu.guild_message(general, eli, f"{w.emu.bot.mention} is the shop open?")
    await w.stored(_address(mention))
    await w.emu.user_edit(post, "My invoice #1234 is wrong")

    async def edited() -> bool:
        return any(m.text == "My invoice #1234 is wrong" and m.edited_at for m in await w.messages())

    await eventually(edited)
    invoice, question = await w.conversations()
    assert (invoice.kind, question.kind) == ("comment", "mention")
    by_conversation = {m.external_id: m.conversation_id for m in await w.messages()}
    assert by_conversation == {_address(post): invoice.id, _address(follow): invoice.id,
                               _address(mention): question.id}

    await w.reply(invoice, "Fixed, sorry!")
    await w.dispatcher.run_once()
    (answer,) = w.emu.sent(support)
    assert answer.reply_to == follow.id and answer.pings.none  # answers the customer's latest message

    again = await w.emu.guild_message(support, dana, "thanks!", reply_to=answer.id, mention_author=False)
    assert (await w.stored(_address(again))).conversation_id == invoice.id
    client = await w.parts.rest.client()
    await client.http.start_thread_with_message(support.id, post.id, name="Invoice",
                                                auto_archive_duration=1440)
    inside = await w.emu.guild_message(post.id, dana, "any news in the thread?")
    assert (await w.stored(_address(inside))).conversation_id == invoice.id
    assert len(await w.conversations()) == 2
    assert all(m.direction != Direction.IN or m.text != "Fixed, sorry!" for m in await w.messages())


async def test_a_slow_command_is_deferred_and_still_answered(discord_world: World):
    w = discord_world
    console = w.parts.console
    assert console is not None
    w.emu.interaction_deadline = 0.3  # Discord's 3 seconds, shortened
    console.defer_after = 0.05
    run = console.commands

    async def slow(invocation: CommandInvocation) -> View:
        await asyncio.sleep(0.5)
        return await run(invocation)

    console.commands = slow
    await w.emu.slash_command(w.team, w.inbox, w.user("alice"), "queue")
    (answer,) = await eventually(lambda: [m for m in w.answers() if m.content])
    assert [r.type for r in w.emu.interaction_responses] == [5]  # "thinking...", then the edit
    assert "Queue" in answer.content and not answer.flags & LOADING
