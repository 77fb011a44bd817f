"""Item 9: people who must not run commands try anyway, through the real Telegram connector and emulator:
a stranger in the team chat, a member in a chat that is no team chat, a forged button payload, and a
member asking for more than their role allows. Each is refused, audited (``command.refused``) and
changes nothing. A group that adds the bot is no team chat: its commands do nothing, its chatter is
not ingested, and the bot says nothing there.

The Discord half of this item is in ``test_discord.py``.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col

from connectors.telegram.emulator import EmuChat
from inbox.clock import FakeClock
from inbox.commands import REFUSED_EVENT, CommandInvocation
from inbox.db import Database
from inbox.models import Conversation, Delivery, Event, Message, Template
from inbox.notify import Notifier
from inbox.outbox import Dispatcher, RetryPolicy
from inbox.ports import PermanentFailure
from tests.connectors.telegram.harness import Rig, running_rig
from tests.reliability.support import rows


async def snapshot(db: Database) -> dict[str, Any]:
    """Everything a command could change."""
    return {
        "conversations": [
            (c.status, c.assignee_id, c.priority, c.escalation_level, c.snoozed_until)
            for c in await rows(db, Conversation)
        ],
        "deliveries": [(d.destination, d.status, d.purpose) for d in await rows(db, Delivery)],
        "messages": [(m.direction, m.text) for m in await rows(db, Message)],
        "templates": [t.name for t in await rows(db, Template)],
    }


async def refusals(db: Database) -> list[tuple[str, str]]:
    return [(e.actor, e.data["reason"]) for e in await rows(db, Event, col(Event.type) == REFUSED_EVENT)]


async def a_conversation_with_its_card(rig: Rig) -> int:
    ana = rig.emu.user("Ana", username="ana_k")
    rig.emu.user_dm(ana, "Where is my order?")
    await rig.settle()
    assert await rig.dispatch() == 1
    [conversation] = await rig.conversations()
    assert conversation.id is not None
    return conversation.id


async def test_a_stranger_in_the_team_chat_is_refused_and_audited(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock) as rig:
        conversation = await a_conversation_with_its_card(rig)
        card = rig.emu.sent(rig.team)[0]
        before = await snapshot(db)
        mallory = rig.emu.user("Mallory", user_id=666)
        for text in (
            f"/resolve {conversation}",
            f"/reply {conversation} pay to my account",
            "/template add scam Send money",
            f"/assign {conversation} me",
        ):
            rig.emu.group_message(rig.team, mallory, text)
            await rig.settle()
            assert "not on this team" in (rig.emu.last_sent(rig.team).plain_text or "")
        rig.emu.press_button(rig.team, card.message_id, mallory, text="Resolve")
        await rig.settle()
        assert rig.emu.callback_answers[-1].show_alert
        assert await snapshot(db) == before
        assert await refusals(db) == [("unknown:telegram:666", "not_member")] * 5


async def test_a_member_in_a_foreign_group_runs_nothing_and_is_audited(
    db: Database, clock: FakeClock
) -> None:
    async with running_rig(db, clock) as rig:
        conversation = await a_conversation_with_its_card(rig)
        before = await snapshot(db)
        outsider = rig.emu.user("Owner of a fan group")
        fans: EmuChat = rig.emu.supergroup("Acme fans", members=[rig.carol, outsider])
        rig.emu.add_bot_to_group(fans, by=outsider)  # the bot is added to a group that is not ours
        sent_before = len(rig.emu.sent())
        for text in (
            f"/resolve {conversation}",
            f"/resolve@saluran_bot {conversation}",
            f"/reply@saluran_bot {conversation} Refund approved",
        ):
            rig.emu.group_message(fans, rig.carol, text)
        rig.emu.group_message(fans, outsider, "/resolve@saluran_bot 1")  # a stranger: chatter
        rig.emu.group_message(fans, outsider, "what a nice bot")
        await rig.settle()
        assert await rig.dispatch() == 0
        assert await snapshot(db) == before  # nothing ran, nothing was ingested
        assert len(rig.emu.sent()) == sent_before and rig.emu.sent(fans) == []  # the bot kept quiet
        audited = await rows(db, Event, col(Event.type) == REFUSED_EVENT)
        assert {(e.actor, e.data["reason"], e.data["chat_id"]) for e in audited} == {
            ("member:carol", "foreign_chat", str(fans.id))
        }
        assert [e.data["text"] for e in audited] == [  # as Telegram delivers them to a bot in privacy mode
            f"/resolve {conversation}",
            f"/resolve@saluran_bot {conversation}",
            f"/reply@saluran_bot {conversation} Refund approved",
        ]


async def test_forged_button_payloads_are_refused_and_audited(db: Database, clock: FakeClock) -> None:
    async with running_rig(db, clock) as rig:
        conversation = await a_conversation_with_its_card(rig)
        card = rig.emu.sent(rig.team)[0]
        real = card.buttons[0]["callback_data"]
        before = await snapshot(db)
        other = rig.emu.supergroup("Other", bot_status="administrator", members=[rig.carol])
        decoy = rig.emu.group_message(other, rig.carol, "decoy")
        forgeries = [
            f"/resolve {conversation}",
            "999999.0",
            real[:-1] + "9",
            real.split(".")[0] + ".99",
            "",
            "x" * 64,
        ]
        for data in forgeries:
            forge_press(rig, rig.team, card.message_id, data)
        forge_press(rig, rig.team, card.message_id + 1, real)  # a real button's data on another message
        forge_press(rig, other, decoy["message_id"], real)  # ... or in another chat
        await rig.settle()
        answers = rig.emu.callback_answers[-(len(forgeries) + 2) :]
        assert len(answers) == len(forgeries) + 2 and all(a.show_alert for a in answers)
        assert await snapshot(db) == before
        assert await refusals(db) == [("unknown:telegram:1003", "bad_button")] * (len(forgeries) + 2)


async def test_a_command_above_the_members_role_is_refused_and_audited(
    db: Database, clock: FakeClock
) -> None:
    async with running_rig(db, clock) as rig:
        conversation = await a_conversation_with_its_card(rig)
        await rig.core.execute(CommandInvocation.terminal("carol", f"/reply {conversation} Hello"))
        notifier = Notifier(db, clock, rig.settings)
        assert rig.connector.team_sender is not None
        broken = Dispatcher(
            db,
            clock,
            {"tg": _Refusing(), "team:ops": rig.connector.team_sender},
            worker_id="w",
            policy=RetryPolicy(max_attempts=1),
            on_failed=notifier.on_failed,
        )
        await broken.run_once()  # the reply fails for good; the notice (with Retry) reaches the team
        await broken.run_once()
        notice = rig.emu.last_sent(rig.team)
        retry = next(b for b in notice.buttons if b["text"].startswith("Retry"))
        before = await snapshot(db)
        rig.emu.press_button(rig.team, notice.message_id, rig.carol, retry["callback_data"])  # needs a lead
        await rig.settle()
        assert rig.emu.callback_answers[-1].show_alert
        rig.emu.group_message(rig.team, rig.carol, "/template add greet Hello there")  # needs a lead
        await rig.settle()
        assert "lead" in (rig.emu.last_sent(rig.team).plain_text or "").lower()
        assert await snapshot(db) == before
        [(_, failed)] = [
            (d.id, d.status) for d in await rows(db, Delivery, col(Delivery.destination) == "tg")
        ]
        assert failed == "failed"
        audited = await rows(db, Event, col(Event.type) == REFUSED_EVENT)
        assert [(e.actor, e.data["reason"], e.data["required"]) for e in audited] == [
            ("member:carol", "role", "lead"),
            ("member:carol", "role", "lead"),
        ]


class _Refusing:
    async def send(self, outbound: Any) -> Any:
        raise PermanentFailure("Forbidden: bot was blocked by the user")


def forge_press(rig: Rig, chat: EmuChat, message_id: int, data: str) -> None:
    """A modified client sends a callback query with data of its own choosing."""
    world, bot = rig.emu.world, rig.emu.bot
    query_id = world.new_query_id(bot)
    world.callback_queries[query_id] = (bot.id, rig.carol.id, chat.id, message_id, data)
    message = {
        "message_id": message_id,
        "date": 1793610000,
        "chat": {"id": chat.id, "type": "supergroup", "title": chat.title},
    }
    world.emit(
        bot,
        "callback_query",
        {"id": query_id, "from": rig.carol.to_api(), "chat_instance": "1", "data": data, "message": message},
    )
    bot.wake()
