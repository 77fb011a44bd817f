"""Records gateway MESSAGE_CREATE/MESSAGE_UPDATE payloads under ``fixtures/`` from the emulator (whose
shapes are checked against Discord's OpenAPI spec), as a gateway client receives them:
``.venv/bin/python -m tests.connectors.discord.record_fixtures``.

The fixtures are committed; the conversion tests read them and never need the emulator. ``where.json``
records what the client's channel cache says about each fixture's channel (the payload does not say
whether a channel is a thread, nor its parent).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from connectors.discord.emulator import DiscordEmulator
from connectors.discord.emulator_gateway import ALL_INTENTS
from inbox.clock import FakeClock

FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE = "@everyone <@&{role}> **x** `code` ~~y~~ ||z||\n> quote\n# head [link](https://evil.example)"


async def record() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Play the scenes; return each payload by fixture name, and each channel's kind by channel id."""
    clock = FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    out: dict[str, dict[str, Any]] = {}
    async with DiscordEmulator(clock=clock) as emu, aiohttp.ClientSession() as http:
        http.headers["Authorization"] = f"Bot {emu.token}"
        community, team = emu.guild("Saluran Community"), emu.guild("Saluran Team")
        support, general = emu.channel("support", community), emu.channel("general", community)
        dana, eli, alice = emu.user("dana"), emu.user("eli"), emu.user("alice")
        moderators = community.role_named("Moderators")

        async with http.ws_connect(f"{emu.gateway_url}?v=10&encoding=json") as ws:
            await ws.receive_json()  # HELLO
            await ws.send_json({"op": 2, "d": {"token": emu.token, "intents": ALL_INTENTS,
                                               "properties": {"os": "linux", "browser": "t", "device": "t"}}})

            async def take(name: str, event: str = "MESSAGE_CREATE") -> dict[str, Any]:
                while True:
                    frame = await ws.receive_json(timeout=2)
                    if frame.get("t") == event:
                        out[name] = frame["d"]
                        return dict(frame["d"])

            async def bot_post(channel_id: int, content: str) -> dict[str, Any]:
                body = {"content": content, "allowed_mentions": {"parse": []}}
                async with http.post(f"{emu.api_base}/channels/{channel_id}/messages", json=body) as response:
                    return dict(await response.json())

            await take("ready", "READY")
            del out["ready"]
            dm = await emu.user_dm(dana, "Hi, my parcel is late")
            await take("dm_text")
            clock.advance(60)
            await emu.user_edit(dm, "Hi, my parcel is late (order 1234)")
            await take("dm_edit", "MESSAGE_UPDATE")
            await emu.user_dm(dana, HOSTILE.format(role=moderators.id))
            await take("dm_hostile")

            post = await emu.guild_message(support, dana, "My invoice is wrong")
            await take("support_post")
            await emu.guild_message(support, eli, "Same here!", reply_to=post)
            await take("support_reply")
            async with http.post(f"{emu.api_base}/channels/{support.id}/messages/{post.id}/threads",
                                 json={"name": "Invoice"}) as response:
                assert response.status == 201
            await take("support_thread_update", "MESSAGE_UPDATE")  # the starter message now has a thread
            await emu.guild_message(post.id, dana, "Any news in here?")
            await take("support_thread_message")

            await emu.guild_message(general, dana, f"{emu.bot.mention} can someone help?")
            await take("general_mention")
            await emu.guild_message(general, eli, "nice weather today")
            await take("general_chatter")
            answer = await bot_post(general.id, "Happy to help!")
            await take("bot_echo")
            await emu.guild_message(general, dana, "thanks, and one more thing", reply_to=int(answer["id"]),
                                    mention_author=False)
            await take("general_reply_to_bot")

            await emu.guild_message(emu.channel("inbox", team), alice, "on it")
            await take("team_message")
            async with http.post(f"{emu.api_base}/channels/{general.id}/threads",
                                 json={"name": "Escalation", "type": 11}) as response:
                assert response.status == 201
            await take("system_thread_created")

        where = {
            str(c.id): {"kind": "thread" if c.is_thread else ("dm" if c.guild_id is None else "guild"),
                        "guild_id": c.guild_id, "parent_id": c.parent_id if c.is_thread else None,
                        "name": c.name if c.is_thread else None}
            for c in emu.channels.values()
        }
    return out, where


def main() -> None:
    """Write the fixtures."""
    payloads, where = asyncio.run(record())
    FIXTURES.mkdir(exist_ok=True)
    for name, payload in payloads.items():
        (FIXTURES / f"{name}.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n",
                                               encoding="utf-8")
    (FIXTURES / "where.json").write_text(json.dumps(where, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(payloads)} fixtures to {FIXTURES}")


if __name__ == "__main__":
    main()
