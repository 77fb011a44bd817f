"""The Telegram connector end to end: real python-telegram-bot against the emulator, the real core on
both databases. Customers write, cards reach the team chat through the outbox, members work them with
commands, buttons and forum topics, and replies reach the customers verbatim."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from sqlmodel import col

from connectors.telegram.emulator import EmuUser, FloodLimits
from inbox.clock import FakeClock
from inbox.commands import REFUSED_EVENT
from inbox.db import Database
from inbox.models import Channel, ConsoleRef, Conversation, Delivery, DeliveryStatus, Event, Status
from inbox.notify import Notifier
from inbox.outbox import Dispatcher
from tests.connectors.telegram.harness import Rig, running_rig

NASTY = "Hi <b>team</b> & co: *_[]()~`>#+-=|{}.! @everyone &amp; 😀 café"


async def customer_writes(rig: Rig, text: str = "Where is my order 1234?") -> tuple[EmuUser, Conversation]:
    """Ana DMs the bot; wait until it is a conversation, and send the card."""
    ana = rig.emu.user("Ana", username="ana_k")
    rig.emu.user_dm(ana, text)
    await rig.settle()
    [conversation] = await rig.conversations()
    assert await rig.dispatch() == 1
    return ana, conversation


async def member_says(rig: Rig, user: EmuUser, text: str, **where: Any) -> dict[str, Any]:
    """A member writes in the team chat; wait until the loop handled it."""
    message: dict[str, Any] = rig.emu.group_message(rig.team, user, text, **where)
    await rig.settle()
    return message


def forge_press(rig: Rig, message_id: int, data: str) -> None:
    """A modified client presses a button of the card with callback data of its own choosing."""
    world, bot = rig.emu.world, rig.emu.bot
    query_id = world.new_query_id(bot)
    world.callback_queries[query_id] = (bot.id, rig.carol.id, rig.team.id, message_id, data)
    world.emit(
        bot,
        "callback_query",
        {
            "id": query_id,
            "from": rig.carol.to_api(),
            "chat_instance": "1",
            "data": data,
            "message": rig.emu.message(rig.team, message_id),
        },
    )
    rig.emu.bot.wake()


async def test_a_customer_dm_becomes_a_card_with_buttons_in_the_team_chat(
    db: Database, clock: FakeClock
) -> None:
    async with running_rig(db, clock) as rig:
        _, conversation = await customer_writes(rig, NASTY)
        [card] = rig.emu.sent(rig.team)
        assert card.parse_mode == "HTML" and card.plain_text is not None
        assert NASTY in card.plain_text  # verbatim: nothing the customer typed became markup
        assert "#1" in card.plain_text and "@ana_k" in card.plain_text
        assert [b["text"] for b in card.buttons] == [
            "Take",
            "Snooze 1h",
            "Escalate",
            "Resolve",
            "Show",
            "Open thread",
        ]
        assert all(len(b["callback_data"].encode()) <= 64 for b in card.buttons)
        [delivery] = await rig.deliveries("team:ops")
        assert (
            delivery.status == DeliveryStatus.SENT
            and delivery.platform_message_id == f"{rig.team.id}:{card.message_id}"
        )
        [ref] = await rig.rows(ConsoleRef)
        assert (ref.chat_id, ref.message_id, ref.conversation_id) == (
            str(rig.team.id),
            str(card.message_id),
            conversation.id,
        )
        assert ref.buttons[0] == f"/assign {conversation.id} me"
        # The command menu of the team chat was registered for autocomplete.
        menu = rig.emu.commands(scope={"type": "chat", "chat_id": rig.team.id})
        assert {"reply", "note", "queue", "open"} <= {c["command"] for c in menu}


async def test_reply_command_and_reply_to_card_reach_the_customer_verbatim(
    db: Database, clock: FakeClock
) -> None:
    async with running_rig(db, clock) as rig:
        ana, conversation = await customer_writes(rig)
        question = rig.emu.sent(rig.team)[0]
        await member_says(rig, rig.carol, f"/reply {conversation.id} {NASTY}")
        assert "queued for delivery" in (rig.emu.last_sent(rig.team).plain_text or "")
        assert await rig.dispatch() == 1
        [answer] = rig.emu.sent(ana)
        assert answer.plain_text == NASTY and answer.parse_mode is None  # exactly what carol typed
        first_dm = (await rig.messages("in"))[0]
        assert answer.reply_to == int(str(first_dm.external_id).split(":")[1])  # answers the customer message
        # Replying to the card with /r needs no ID.
        await member_says(rig, rig.alice, "/r Anything else?", reply_to=question.message_id)
        assert await rig.dispatch() == 1
        assert rig.emu.last_sent(ana).plain_text == "Anything else?"
        outbound = await rig.messages("out")
        assert [m.text for m in outbound] == [NASTY, "Anything else?"]
        assert outbound[0].external_id == f"{ana.id}:{answer.message_id}"  # linked by the outbox


async def test_buttons_run_as_the_member_who_pressed_them(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock) as rig:
        _, conversation = await customer_writes(rig)
        card = rig.emu.sent(rig.team)[0]
        query = rig.emu.press_button(rig.team, card.message_id, rig.carol, text="Take")
        await rig.settle()
        [answer] = rig.emu.callback_answers
        assert answer.callback_query_id == query and not answer.show_alert
        assert answer.text == f"#{conversation.id} assigned to carol."
        [row] = await rig.conversations()
        assert row.assignee_id is not None
        posted = rig.emu.last_sent(rig.team)
        assert posted.plain_text == f"Carol · ✅ #{conversation.id} assigned to carol."
        assert posted.reply_to == card.message_id
        rig.emu.press_button(rig.team, card.message_id, rig.alice, text="Resolve")
        await rig.settle()
        assert (await rig.conversations())[0].status == Status.RESOLVED


async def test_forged_buttons_and_non_members_are_refused(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock) as rig:
        _, conversation = await customer_writes(rig)
        mallory = rig.emu.user("Mallory", user_id=666)
        await member_says(rig, mallory, f"/resolve {conversation.id}")
        assert "not on this team" in (rig.emu.last_sent(rig.team).plain_text or "")
        card = rig.emu.sent(rig.team)[0]
        rig.emu.press_button(rig.team, card.message_id, mallory, text="Resolve")
        await rig.settle()
        assert rig.emu.callback_answers[-1].show_alert  # refused by the core, as mallory
        # A client can send any callback data for a message: data we did not put there is refused.
        for forged in (f"/resolve {conversation.id}", "999.0", f"{card.buttons[0]['callback_data'][:-1]}9"):
            forge_press(rig, card.message_id, forged)
        await rig.settle()
        assert [a.show_alert for a in rig.emu.callback_answers[-3:]] == [True, True, True]
        assert "not valid" in (rig.emu.callback_answers[-1].text or "")
        assert (await rig.conversations())[0].status == Status.OPEN
        refusals = await rig.events(REFUSED_EVENT)
        assert [e.data["reason"] for e in refusals] == [
            "not_member",
            "not_member",
            "bad_button",
            "bad_button",
            "bad_button",
        ]
        assert refusals[0].actor == "unknown:telegram:666"


async def test_a_topic_per_conversation_where_messages_are_notes(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock) as rig:
        ana, conversation = await customer_writes(rig)
        card = rig.emu.sent(rig.team)[0]
        rig.emu.press_button(rig.team, card.message_id, rig.carol, text="Open thread")
        await rig.settle()
        [topic] = rig.emu.topics(rig.team)
        assert topic["name"] == f"#{conversation.id} · @ana_k"
        thread = topic["message_thread_id"]
        story = [s for s in rig.emu.sent(rig.team) if s.thread_id == thread]
        assert story and "Where is my order 1234?" in (story[0].plain_text or "")
        assert f"/{thread}" in (rig.emu.last_sent(rig.team).plain_text or "")  # the link, in the general chat
        # Plain messages in the topic are internal notes: stored, never sent.
        await member_says(rig, rig.carol, "12 boxes: customer is VIP, refund ok", message_thread_id=thread)
        [note] = await rig.messages("note")
        assert note.text == "12 boxes: customer is VIP, refund ok" and note.conversation_id == conversation.id
        assert await rig.dispatch() == 0 and rig.emu.sent(ana) == []
        # /r in the topic replies to the customer.
        await member_says(rig, rig.alice, "/r On its way!", message_thread_id=thread)
        assert await rig.dispatch() == 1
        assert rig.emu.last_sent(ana).plain_text == "On its way!"
        # /open again points at the same topic.
        await member_says(rig, rig.alice, f"/open {conversation.id}")
        assert "already has a thread" in (rig.emu.last_sent(rig.team).plain_text or "")
        await member_says(rig, rig.alice, "/open")
        assert "Say which conversation" in (rig.emu.last_sent(rig.team).plain_text or "")
        await member_says(rig, rig.alice, "/open 99999999999")
        assert "/open ID" in (rig.emu.last_sent(rig.team).plain_text or "")
        assert len(rig.emu.topics(rig.team)) == 1


async def test_open_needs_a_forum(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock, forum=False) as rig:
        _, conversation = await customer_writes(rig)
        card = rig.emu.sent(rig.team)[0]
        assert "Open thread" not in [b["text"] for b in card.buttons]
        await member_says(rig, rig.carol, f"/open {conversation.id}")
        assert "no topics" in (rig.emu.last_sent(rig.team).plain_text or "")


async def test_a_429_delays_the_delivery_but_it_still_goes(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock) as rig:
        ana, conversation = await customer_writes(rig)
        await member_says(rig, rig.carol, f"/reply {conversation.id} Sorry for the wait")
        rig.emu.inject("sendMessage", 429, retry_after=7)
        assert await rig.dispatch() == 1
        [delivery] = await rig.deliveries("tg")
        assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0  # not a failed attempt
        assert (delivery.next_attempt_at - clock.now()).total_seconds() == 7
        assert "retry after 7" in (delivery.last_error or "")
        assert await rig.dispatch() == 0 and rig.emu.sent(ana) == []  # it waits the whole retry_after
        clock.advance(7)
        assert await rig.dispatch() == 1
        assert rig.emu.last_sent(ana).plain_text == "Sorry for the wait"
        [delivery] = await rig.deliveries("tg")
        assert delivery.status == DeliveryStatus.SENT


async def test_the_emulators_flood_limits_are_honoured_for_team_cards(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock, flood_limits=FloodLimits(per_chat_burst=1)) as rig:
        for name in ("Ana", "Ben"):
            rig.emu.user_dm(rig.emu.user(name), "help")
        await rig.settle()
        assert await rig.dispatch() == 2  # the second card hit the limit and waits
        assert len(rig.emu.sent(rig.team)) == 1
        pending = [d for d in await rig.deliveries("team:ops") if d.status == DeliveryStatus.PENDING]
        assert len(pending) == 1 and pending[0].attempts == 0
        clock.advance(1)
        assert await rig.dispatch() == 1
        assert len(rig.emu.sent(rig.team)) == 2


async def send_all(rig: Rig, dispatcher: Dispatcher) -> None:
    """Run the outbox until nothing is pending, moving the fake clock to each next due time."""
    for _ in range(100):
        await dispatcher.run_once()
        pending = [d for d in await rig.rows(Delivery) if d.status == DeliveryStatus.PENDING]
        if not pending:
            return
        rig.clock.set(max(rig.clock.now(), min(d.next_attempt_at for d in pending)))
    raise AssertionError("the outbox did not empty")


def too_many_requests(rig: Rig) -> int:
    """How many 429 answers the emulator gave."""
    return sum(1 for r in rig.emu.requests if r.status == 429)


async def test_a_burst_of_team_notices_is_paced_so_telegram_answers_no_429(
    db: Database, clock: FakeClock
) -> None:
    async with running_rig(db, clock, flood_limits=FloodLimits()) as rig:  # Telegram's limits, all on
        assert rig.connector.team_sender is not None
        unpaced = Dispatcher(db, clock, {"team:ops": rig.connector.team_sender}, worker_id="unpaced")
        team_senders = Notifier(db, clock, rig.settings).senders({"tg": rig.connector.team_sender})
        paced = Dispatcher(db, clock, team_senders, worker_id="paced")
        for phase, dispatcher in (("unpaced", unpaced), ("paced", paced)):
            for n in range(8):  # eight customers at once: eight cards due together
                rig.emu.user_dm(rig.emu.user(f"{phase}{n}"), "help")
            await rig.settle()
            before, sent_before = too_many_requests(rig), len(rig.emu.sent(rig.team))
            await send_all(rig, dispatcher)
            assert len(rig.emu.sent(rig.team)) == sent_before + 8  # every card went, none twice
            refused = too_many_requests(rig) - before
            # Without pacing Telegram refuses part of the burst (the outbox waits and retries); paced, none.
            assert refused > 0 if phase == "unpaced" else refused == 0, (phase, refused)
            clock.advance(120)  # both the platform's and the budget's windows are over
        times = [m.message["date"] for m in rig.emu.sent(rig.team)[8:]]  # the paced phase, in seconds
        assert times[-1] - times[0] >= 5  # three at once (Telegram's short burst), then one a second


async def test_a_long_reply_is_split_at_4096(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock) as rig:
        ana, conversation = await customer_writes(rig)
        long_reply = " ".join(f"word{i}" for i in range(1500))  # 12,389 characters: four messages
        await member_says(rig, rig.carol, f"/reply {conversation.id} {long_reply}")
        assert await rig.dispatch() == 1
        parts = rig.emu.sent(ana)
        assert len(long_reply) == 12_389 and len(parts) == 4
        assert all(4000 < len(p.plain_text or "") <= 4096 for p in parts[:-1])
        assert " ".join(p.plain_text or "" for p in parts) == long_reply
        assert parts[0].reply_to is not None and parts[1].reply_to is None


async def test_edits_update_the_stored_text_and_team_messages_are_never_ingested(
    db: Database, clock: FakeClock
) -> None:
    async with running_rig(db, clock) as rig:
        ana = rig.emu.user("Ana")
        sent = rig.emu.user_dm(ana, "order 1234")
        await rig.settle()
        clock.advance(30)
        rig.emu.edit_message(ana, sent["message_id"], "order 1235")
        rig.emu.send_photo(ana, ana, caption="the receipt")
        await member_says(rig, rig.carol, "chatting in the team room, not a customer")
        await member_says(rig, rig.carol, "@saluran_bot also not a customer")
        messages = await rig.messages("in")
        assert [m.text for m in messages] == ["order 1235", "the receipt"]
        assert messages[0].edited_at is not None and messages[1].attachments[0]["type"] == "photo"
        assert len(await rig.conversations()) == 1
        assert [e.data["previous_text"] for e in await rig.events("message.edited")] == ["order 1234"]


async def test_group_mentions_thread_by_reply_chain(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock) as rig:
        room = rig.emu.supergroup("Acme fans", bot_status="administrator")
        ana, ben = rig.emu.user("Ana"), rig.emu.user("Ben")
        chatter = rig.emu.group_message(room, ben, "nice weather")  # chatter: not for the inbox
        rig.emu.group_message(room, ana, "indeed", reply_to=chatter["message_id"])  # a chain nobody handles
        first = rig.emu.group_message(room, ana, "@saluran_bot my parcel is late")
        await rig.settle()
        [conversation] = await rig.conversations()
        assert conversation.kind == "mention"
        await member_says(rig, rig.carol, f"/reply {conversation.id} Checking!")
        await rig.dispatch()
        await rig.dispatch()
        [answer] = rig.emu.sent(room)
        assert answer.reply_to == first["message_id"]
        rig.emu.group_message(room, ana, "thanks!", reply_to=answer.message_id)  # replies to the bot
        rig.emu.group_message(room, ben, "me too", reply_to=first["message_id"])  # same chain, no mention
        await rig.settle()
        assert len(await rig.conversations()) == 1
        assert [m.text for m in await rig.messages("in")] == [
            "@saluran_bot my parcel is late",
            "thanks!",
            "me too",
        ]


async def test_comments_under_channel_posts_thread_by_post(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock) as rig:
        discussion = rig.emu.supergroup("Acme chat", bot_status="administrator")
        channel = rig.emu.channel("Acme news", discussion=discussion)
        post = rig.emu.channel_post(channel, "We ship on Monday")
        ana, ben = rig.emu.user("Ana"), rig.emu.user("Ben")
        comment = rig.emu.comment(channel, post["message_id"], ana, "Will it reach Surabaya?")
        rig.emu.comment(channel, post["message_id"], ben, "And Medan?")
        rig.emu.comment(
            channel, post["message_id"], ana, "(asking for a friend)", reply_to=comment["message_id"]
        )
        other = rig.emu.channel_post(channel, "New colours")
        rig.emu.comment(channel, other["message_id"], ben, "Blue please")
        await rig.settle()
        conversations = await rig.conversations()
        assert [c.kind for c in conversations] == ["comment", "comment"]
        forward = rig.emu.discussion_copy(channel, post["message_id"])
        assert conversations[0].thread_key == f"{discussion.id}:{forward['message_id']}"
        by_conversation = [m.conversation_id for m in await rig.messages("in")]
        assert by_conversation == [conversations[0].id] * 3 + [conversations[1].id]


async def test_the_loop_stops_promptly_and_resumes_from_the_stored_cursor(
    db: Database, clock: FakeClock
) -> None:
    async with running_rig(db, clock) as rig:
        ana = rig.emu.user("Ana")
        rig.emu.user_dm(ana, "one")
        await rig.settle()
        rig.stop.set()
        assert rig.task is not None
        await asyncio.wait_for(rig.task, 2)  # the 0.5 s long poll is cancelled, not waited for
        rig.emu.user_dm(ana, "two")
        assert rig.emu.pending_updates()  # nobody confirmed it
        assert await rig.service.poll_once() == 1
        assert [m.text for m in await rig.messages("in")] == ["one", "two"]
        rig.stop.clear()
        assert rig.connector.service is not None
        rig.task = asyncio.ensure_future(rig.connector.service(rig.stop))
        await rig.until(lambda: not rig.emu.pending_updates())
        assert len(await rig.messages("in")) == 2


async def test_refs_lookup_ignores_other_chats(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock) as rig:
        await customer_writes(rig)
        card = rig.emu.sent(rig.team)[0]
        [ref] = await rig.rows(ConsoleRef, col(ConsoleRef.message_id) == str(card.message_id))
        refs = rig.service.console.refs
        assert await refs.button(ref.id, 0, rig.team.id, card.message_id) == "/assign 1 me"
        assert await refs.button(ref.id, 0, -100999, card.message_id) is None
        assert await refs.button(ref.id, 0, rig.team.id, card.message_id + 1) is None
        assert await refs.button(ref.id, 99, rig.team.id, card.message_id) is None


async def test_telegram_trouble_is_reported_as_channel_health_and_retried(
    db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connectors.telegram.service.BASE_BACKOFF", 0.05)
    async with running_rig(db, clock) as rig:
        rig.emu.inject("getUpdates", 502, times=3)
        ana = rig.emu.user("Ana")
        rig.emu.user_dm(ana, "are you there?")
        await rig.settle()  # after the errors, the loop carried on from the stored cursor
        assert [m.text for m in await rig.messages("in")] == ["are you there?"]

        async def health_events() -> list[str]:
            return [e.type for e in await rig.rows(Event, col(Event.type).startswith("notice.health"))]

        await rig.until(lambda: _has(health_events(), "notice.health.ok"))  # recorded after the poll
        assert await health_events() == [
            "notice.health.error",
            "notice.health.ok",
        ]
        [channel] = await rig.rows(Channel, col(Channel.name) == "tg")
        assert channel.health == "ok"
        purposes = [d.purpose for d in await rig.deliveries("team:ops")]
        assert purposes.count("health") == 2  # the team heard it break and recover


async def _has(values: Awaitable[list[str]], wanted: str) -> bool:
    return wanted in await values
