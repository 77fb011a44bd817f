"""The fake platforms of the spike scenario, in a process of their own: ``python -m bench.platforms``.

The X emulator (for tweepy) and the Telegram emulator (for python-telegram-bot) serve on loopback ports.
They stand for X's and Telegram's servers, so they must not share the measured process's CPU. The
protocol on stdin/stdout, one JSON line each:

1. on start it prints the endpoints and credentials;
2. ``start`` on stdin: customers post ``--rate`` mentions a minute for ``--seconds`` (a steady stream,
   one in five a reply to an earlier mention); it prints ``{"produced": N}`` when done;
3. ``stop`` on stdin: it prints what the platforms saw (429s, requests, when each team-chat message was
   sent) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from typing import Any

from connectors.telegram.emulator import TelegramEmulator
from connectors.x.emulator import XEmulator, XPost
from inbox.clock import SystemClock

MEMBERS = (("Alice", 1001), ("Budi", 1002), ("Citra", 1003), ("Dewi", 1004), ("Eko", 1005))
TICK = 0.05  # seconds between bursts of the stream


def _say(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def _line() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


async def produce(x: XEmulator, rate: int, seconds: float, seed: int) -> int:
    """Post ``rate`` mentions a minute for ``seconds``, evenly over time; return how many were posted."""
    rng = random.Random(seed)
    users = [x.add_user(f"customer{i}") for i in range(2_000)]
    recent: list[XPost] = []
    total = round(rate * seconds / 60)
    started = time.monotonic()
    posted = 0
    while posted < total:
        due = min(total, int((time.monotonic() - started) / seconds * total) + 1)
        while posted < due:
            author = (
                users[min(len(users) - 1, int(rng.paretovariate(1.1)) - 1)]
                if rng.random() < 0.3
                else rng.choice(users)
            )
            parent = rng.choice(recent) if recent and rng.random() < 0.2 else None
            post = x.post_mention(
                author, f"@{x.bot.username} help, payment failed #{posted}", in_reply_to=parent
            )
            recent.append(post)
            if len(recent) > 500:
                del recent[:250]
            posted += 1
        await asyncio.sleep(TICK)
    return posted


async def main_async(args: argparse.Namespace) -> None:
    """Serve both emulators and follow the stdin protocol."""
    x = XEmulator(rate_limits={"GET /2/users/:id/mentions": args.mentions_limit})
    telegram = TelegramEmulator(clock=SystemClock())
    await x.start()
    await telegram.start()
    for name, uid in MEMBERS:
        telegram.user(name, username=f"{name.lower()}_ops", user_id=uid)
    team = telegram.supergroup(
        "Ops", bot_status="administrator", members=[telegram.world.users[uid] for _, uid in MEMBERS]
    )
    _say(
        {
            "x_url": x.base_url,
            "x": x.credentials(),
            "x_user_id": x.bot.id,
            "tg_url": telegram.url,
            "tg_token": telegram.token,
            "team_chat_id": team.id,
        }
    )
    try:
        while (command := await _line()) != "start":
            if not command:
                return  # the parent went away
        produced = await produce(x, args.rate, args.seconds, args.seed)
        _say({"produced": produced})
        while (command := await _line()) != "stop":
            if not command:
                return
        team_sent = [m.message.get("date") for m in telegram.sent(team)]
        _say(
            {
                "x_requests": len(x.requests),
                "x_429": sum(1 for r in x.requests if r.status == 429),
                "tg_requests": len(telegram.requests),
                "tg_429": sum(1 for r in telegram.requests if r.status == 429),
                "team_sent_at": team_sent,
            }
        )
    finally:
        await telegram.stop()
        await x.stop()


def main() -> None:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(prog="python -m bench.platforms")
    parser.add_argument("--rate", type=int, default=10_000, help="mentions a minute")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mentions-limit", type=int, default=15_000, help="mention reads per 15-minute window"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
