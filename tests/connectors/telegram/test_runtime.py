"""The telegram channel inside the real runtime of ``inbox run`` (leases, notifier, paced team sender,
outbox dispatcher), against the emulator: a DM becomes a card, a member's /reply reaches the customer."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from connectors.telegram.emulator import TelegramEmulator
from inbox.app import App
from inbox.runtime import run_forever
from inbox.settings import settings_from_dict


async def test_inbox_run_serves_a_telegram_channel(tmp_path: Path) -> None:
    async with TelegramEmulator() as emu:
        carol = emu.user("Carol", user_id=1003)
        team = emu.supergroup("Ops", is_forum=True, bot_status="administrator", members=[carol])
        settings = settings_from_dict(
            {
                "database": {"url": f"sqlite:///{tmp_path / 'inbox.db'}"},
                "outbox": {"idle_interval": "0.05s"},
                "members": [{"name": "carol", "telegram_id": 1003}],
                "channels": [
                    {
                        "name": "tg",
                        "type": "telegram",
                        "token_env": "TG_TOKEN",
                        "api_base_url": emu.url,
                        "poll_timeout": 0.5,
                    }
                ],
                "team_chats": [{"name": "ops", "channel": "tg", "chat_id": str(team.id)}],
            },
            environ={"TG_TOKEN": emu.token},
        )
        app = await App.open(settings, migrate=True)
        stop = asyncio.Event()
        gc.unfreeze()
        runner = asyncio.create_task(run_forever(app, tmp_path, stop))
        try:
            ana = emu.user("Ana", username="ana_k")
            emu.user_dm(ana, "Where is my <order>?")
            [card] = await emu.wait_for_sent(1, team, within=10)
            assert "Where is my <order>?" in (card.plain_text or "") and card.buttons
            emu.group_message(team, carol, "/reply 1 It ships today & arrives tomorrow")
            [answer] = await emu.wait_for_sent(1, ana, within=10)
            assert answer.plain_text == "It ships today & arrives tomorrow"
            assert emu.commands(scope={"type": "chat", "chat_id": team.id})  # the menu was registered
            assert gc.get_freeze_count() > 0  # what startup built is out of the collector's passes
        finally:
            stop.set()
            await asyncio.wait_for(runner, 15)
            await app.close()
            gc.unfreeze()  # the test process's heap goes back to the collector
