"""Records the Telegram update payloads under ``fixtures/`` from the emulator (whose shapes are checked
against the Bot API spec): ``.venv/bin/python -m tests.connectors.telegram.record_fixtures``.

The fixtures are committed; the conversion tests read them and never need the emulator.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.telegram.emulator import TelegramEmulator
from inbox.clock import FakeClock

FIXTURES = Path(__file__).parent / "fixtures"
NASTY = "Hi <b>team</b> & co: *_[]()~`>#+-=|{}.! @everyone 😀 café"


async def record() -> dict[str, dict[str, Any]]:
    """Play the scenes and return each update by fixture name."""
    clock = FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    out: dict[str, dict[str, Any]] = {}
    async with TelegramEmulator(clock=clock) as emu:
        bot = emu.bot

        def take(name: str) -> None:
            update = emu.pending_updates()[-1]
            out[name] = update
            bot.pending.clear()

        ana = emu.user("Ana", username="ana_k", last_name="Kusuma", user_id=500000001)
        ben = emu.user("Ben", user_id=500000002)
        emu.user_dm(ana, NASTY)
        take("dm_text")
        first = emu.user_dm(ana, "Where is my order 1234?")
        bot.pending.clear()
        clock.advance(60)
        emu.edit_message(ana, first["message_id"], "Where is my order 1235?")
        take("dm_edited")
        emu.user_dm(ana, "/start")
        take("dm_start")
        emu.send_photo(ana, ana, caption="my receipt")
        take("dm_photo")
        emu.send_document(ana, ana, file_name="invoice.pdf", caption="the invoice")
        take("dm_document")
        emu.send_sticker(ana, ana)
        take("dm_sticker")
        emu.world.sent.clear()

        room = emu.supergroup("Acme fans", username="acme_fans", bot_status="administrator", members=[ben])
        emu.group_message(room, ben, "just chatting about the weather")
        take("group_chatter")
        mention = emu.group_message(room, ana, "😀 @saluran_bot my parcel is late")
        take("group_mention")
        answer = emu.api.call(
            bot,
            "sendMessage",
            {
                "chat_id": room.id,
                "text": "Sorry! Looking into it",
                "reply_parameters": {"message_id": mention["message_id"]},
            },
        )
        emu.group_message(room, ana, "thanks, order 1234", reply_to=answer["message_id"])
        take("group_reply_to_bot")
        other = emu.group_message(room, ben, "mine too")
        bot.pending.clear()
        emu.group_message(room, ana, "same here", reply_to=other["message_id"])
        take("group_thread_reply")
        emu.group_message(
            room,
            ana,
            "hello there",
            entities=[{"type": "text_mention", "offset": 6, "length": 5, "user": bot.user.to_api()}],
        )
        take("group_text_mention")
        basic = emu.group("Small shop", members=[ana])
        emu.group_message(basic, ana, "@saluran_bot is the shop open?")
        take("basic_group_mention")

        discussion = emu.supergroup("Acme chat", bot_status="administrator")
        channel = emu.channel("Acme news", username="acme_news", discussion=discussion)
        post = emu.channel_post(channel, "We ship on Monday")
        take("discussion_forward")
        comment = emu.comment(channel, post["message_id"], ana, "Will it reach Surabaya?")
        take("comment")
        emu.comment(channel, post["message_id"], ben, "I hope so", reply_to=comment["message_id"])
        take("comment_reply")
    return out


def main() -> None:
    """Write every fixture as pretty JSON."""
    FIXTURES.mkdir(exist_ok=True)
    for name, update in asyncio.run(record()).items():
        (FIXTURES / f"{name}.json").write_text(
            json.dumps(update, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    main()
