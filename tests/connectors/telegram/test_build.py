"""The telegram channel's config: keys, secrets, webhook requirements, one token shared by two channels
or two bots for the two sides; and the documented example in inbox.example.toml."""

from __future__ import annotations

import asyncio
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from connectors.telegram import Options, build, lease_key
from connectors.telegram.emulator import FloodLimits, TelegramEmulator
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.outbox import Dispatcher
from inbox.registry import CONNECTOR_PACKAGES, ConnectorContext, channel_options_model
from inbox.settings import ConfigError, load_settings, settings_from_dict
from tests.connectors.telegram.harness import build_channel, start_core
from tests.factories import DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "123456789:" + "A" * 35


def settings_with(*channels: dict[str, Any], environ: dict[str, str] | None = None, **extra: Any) -> Any:
    """Settings with these telegram channels (tokens from TG_TOKEN / TG_TOKEN_2)."""
    env = {
        "TG_TOKEN": TOKEN,
        "TG_TOKEN_2": "987654321:" + "B" * 35,
        "TG_SECRET": "abc_DEF-123",
        **(environ or {}),
    }
    data = {**DEFAULT_CONFIG, "channels": [*DEFAULT_CONFIG["channels"], *channels], **extra}
    return settings_from_dict(data, environ=env)


def tg(name: str = "tg", **keys: Any) -> dict[str, Any]:
    """A telegram channel entry."""
    return {"name": name, "type": "telegram", "token_env": "TG_TOKEN", **keys}


def test_the_registry_knows_telegram_and_its_keys() -> None:
    assert CONNECTOR_PACKAGES["telegram"] == "connectors.telegram"
    assert channel_options_model("telegram") is Options
    options = Options.model_validate({"token_env": "T"})
    assert (options.mode, options.poll_timeout, options.customers, options.api_base_url) == (
        "polling",
        30.0,
        True,
        None,
    )


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({}, "channels[2].token_env: required key is missing"),
        (
            {"token_env": "TG_TOKEN", "mode": "push"},
            "channels[2].mode: Input should be 'polling' or 'webhook'",
        ),
        ({"token_env": "TG_TOKEN", "mode": "webhook"}, "needs webhook_secret_env"),
        ({"token_env": "TG_TOKEN", "api_base_url": "localhost:8081"}, "must start with http:// or https://"),
        (
            {"token_env": "TG_TOKEN", "poll_timeout": 0},
            "channels[2].poll_timeout: Input should be greater than 0",
        ),
        ({"token_env": "TG_TOKEN", "webhook_path": "hook"}, "webhook_path must start with '/'"),
        ({"token_env": "TG_TOKEN", "tokn": "x"}, "channels[2].tokn: unknown key"),
        ({"token_env": "NOT_SET"}, "channels[2].token_env: environment variable NOT_SET is not set"),
    ],
)
def test_bad_keys_are_refused_with_the_key_named(keys: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_with({"name": "tg", "type": "telegram", **keys})
    assert any(problem in line for line in caught.value.problems), caught.value.problems


def test_build_problems_name_the_channel() -> None:
    context = ConnectorContext(
        clock=FakeClock(), db=Database("sqlite+aiosqlite://"), ingest=lambda batch: asyncio.sleep(0)
    )
    hook = settings_with(tg(mode="webhook", webhook_secret_env="TG_SECRET"))
    context.settings = hook
    with pytest.raises(ValueError, match="webhook mode needs webhook_url, or \\[web\\] public_url"):
        build_channel(hook, "tg", context)
    bad_secret = settings_with(
        tg(mode="webhook", webhook_secret_env="TG_SECRET", webhook_url="https://bot.example.com/hook"),
        environ={"TG_SECRET": "has spaces"},
    )
    context.settings = bad_secret
    with pytest.raises(ValueError, match=r"webhook secret .* must be 1-256 characters"):
        build_channel(bad_secret, "tg", context)
    named_chat = settings_with(tg(), team_chats=[{"name": "ops", "channel": "tg", "chat_id": "@ops_group"}])
    context.settings = named_chat
    with pytest.raises(ValueError, match="chat_id must be the group's numeric id"):
        build_channel(named_chat, "tg", context)
    both = settings_with(tg("a"), tg("b"))
    context.settings = both
    with pytest.raises(ValueError, match=r"channels a, b share one bot token; .* customers = false"):
        build_channel(both, "a", context)


def test_webhook_routes_default_path_and_public_url() -> None:
    settings = settings_with(
        tg(mode="webhook", webhook_secret_env="TG_SECRET"), web={"public_url": "https://inbox.example.com/"}
    )
    context = ConnectorContext(
        clock=FakeClock(),
        db=Database("sqlite+aiosqlite://"),
        ingest=lambda batch: asyncio.sleep(0),
        settings=settings,
    )
    connector = build_channel(settings, "tg", context)
    [route] = connector.routes
    assert (route.method, route.path) == ("POST", "/webhooks/telegram/tg")
    service = connector.service.__self__  # type: ignore[union-attr]
    assert service.webhook_url == "https://inbox.example.com/webhooks/telegram/tg"
    assert (
        connector.lease_key
        == lease_key(TOKEN)
        == "telegram:" + __import__("hashlib").sha256(TOKEN.encode()).hexdigest()[:16]
    )


def test_without_a_database_only_replies_are_possible() -> None:
    settings = settings_with(tg())
    channel = settings.channel("tg")
    assert channel is not None
    connector = build(channel, ConnectorContext(clock=FakeClock(), settings=settings))
    assert connector.sender is not None and connector.service is None and connector.team_sender is None


async def test_one_token_two_channels_share_one_loop(db: Database, clock: FakeClock) -> None:
    """A customer channel and a team-only channel on the same token: whichever loop runs serves both."""
    async with TelegramEmulator(clock=clock, flood_limits=FloodLimits(enabled=False)) as emu:
        carol = emu.user("Carol", user_id=1003)
        team = emu.supergroup("Ops", bot_status="administrator", members=[carol])
        env = {"TG_TOKEN": emu.token}
        settings = settings_from_dict(
            {
                **DEFAULT_CONFIG,
                "channels": [
                    *DEFAULT_CONFIG["channels"],
                    {
                        "name": "tg",
                        "type": "telegram",
                        "token_env": "TG_TOKEN",
                        "api_base_url": emu.url,
                        "poll_timeout": 0.5,
                    },
                    {
                        "name": "tg-team",
                        "type": "telegram",
                        "token_env": "TG_TOKEN",
                        "api_base_url": emu.url,
                        "customers": False,
                        "poll_timeout": 0.5,
                    },
                ],
                "team_chats": [{"name": "ops", "channel": "tg-team", "chat_id": str(team.id)}],
            },
            environ=env,
        )
        core = await start_core(db, clock, settings)
        context = core.context(db, clock, settings)
        customers, team_side = (
            build_channel(settings, "tg", context),
            build_channel(settings, "tg-team", context),
        )
        assert customers.lease_key == team_side.lease_key  # the runtime runs one of the two loops
        assert customers.team_sender is None and team_side.team_sender is not None
        assert customers.sender is not None
        dispatcher = Dispatcher(
            db, clock, {"tg": customers.sender, "team:ops": team_side.team_sender}, worker_id="t"
        )
        stop = asyncio.Event()
        assert team_side.service is not None
        task = asyncio.ensure_future(team_side.service(stop))  # only the team channel loop runs
        try:
            ana = emu.user("Ana")
            emu.user_dm(ana, "hello")
            emu.group_message(team, carol, "/queue")
            await emu.wait_for(lambda: bool(emu.sent(team)))
            [conversation] = await _rows(db)
            assert conversation.channel_id == (await _channel_id(db, "tg"))  # the customer channel's
            assert await dispatcher.run_once() == 1  # the card, by the shared bot
            emu.group_message(team, carol, f"/reply {conversation.id} Hi Ana")
            await emu.wait_for(lambda: len(emu.sent(team)) >= 3)
            await dispatcher.run_once()
            assert emu.last_sent(ana).plain_text == "Hi Ana"
        finally:
            stop.set()
            await task


async def test_a_customer_bot_and_a_team_bot(db: Database, clock: FakeClock) -> None:
    """Two tokens: the team bot hosts the team chat, the customer bot talks to customers."""
    async with TelegramEmulator(clock=clock, flood_limits=FloodLimits(enabled=False)) as emu:
        team_bot = emu.add_bot(username="saluran_team_bot")
        carol = emu.user("Carol", user_id=1003)
        team = emu.supergroup("Ops", bot_status="administrator", members=[carol], bots=[team_bot])
        settings = settings_from_dict(
            {
                **DEFAULT_CONFIG,
                "channels": [
                    *DEFAULT_CONFIG["channels"],
                    {
                        "name": "tg",
                        "type": "telegram",
                        "token_env": "TG_TOKEN",
                        "api_base_url": emu.url,
                        "poll_timeout": 0.5,
                    },
                    {
                        "name": "tg-team",
                        "type": "telegram",
                        "token_env": "TG_TEAM_TOKEN",
                        "api_base_url": emu.url,
                        "customers": False,
                        "poll_timeout": 0.5,
                    },
                ],
                "team_chats": [{"name": "ops", "channel": "tg-team", "chat_id": str(team.id)}],
            },
            environ={"TG_TOKEN": emu.token, "TG_TEAM_TOKEN": team_bot.token},
        )
        core = await start_core(db, clock, settings)
        context = core.context(db, clock, settings)
        customers, team_side = (
            build_channel(settings, "tg", context),
            build_channel(settings, "tg-team", context),
        )
        assert customers.lease_key != team_side.lease_key
        assert customers.sender is not None and team_side.team_sender is not None
        dispatcher = Dispatcher(
            db, clock, {"tg": customers.sender, "team:ops": team_side.team_sender}, worker_id="t"
        )
        stop = asyncio.Event()
        assert customers.service is not None and team_side.service is not None
        tasks = [
            asyncio.ensure_future(customers.service(stop)),
            asyncio.ensure_future(team_side.service(stop)),
        ]
        try:
            ana = emu.user("Ana")
            emu.user_dm(ana, "hello")
            await emu.wait_for(lambda: not emu.pending_updates())
            await _until(lambda: _rows(db))
            assert await dispatcher.run_once() == 1
            [card] = emu.sent(team)
            assert card.bot_id == team_bot.id  # the card comes from the team bot
            [conversation] = await _rows(db)
            emu.group_message(team, carol, f"/reply {conversation.id} Hi Ana")
            await emu.wait_for(lambda: len(emu.sent(team)) >= 2)
            await dispatcher.run_once()
            answer = emu.last_sent(ana)
            assert answer.plain_text == "Hi Ana" and answer.bot_id == emu.bot.id  # from the customer bot
            assert emu.commands(bot=team_bot, scope={"type": "chat", "chat_id": team.id})
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def _rows(db: Database) -> list[Any]:
    from sqlmodel import select

    from inbox.models import Conversation

    async with db.sessions() as session:
        return list((await session.execute(select(Conversation))).scalars())


async def _channel_id(db: Database, name: str) -> int:
    from sqlmodel import col, select

    from inbox.models import Channel

    async with db.sessions() as session:
        found = await session.scalar(select(col(Channel.id)).where(col(Channel.name) == name))
    assert found is not None
    return int(found)


async def _until(check: Any, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError("not reached")
        await asyncio.sleep(0.02)


def test_the_example_config_documents_a_valid_telegram_channel() -> None:
    """inbox.example.toml has a working telegram channel and, commented out (it needs a real group id), its
    team chat; uncommented, the block is a valid configuration of its own."""
    path = ROOT / "inbox.example.toml"
    settings = load_settings(path, environ={"EXAMPLE_SECRET": TOKEN})
    telegram = settings.channel("telegram")
    assert telegram is not None and telegram.type == "telegram"
    assert Options.model_validate(telegram.options()).mode == "polling"
    block = re.search(
        r"# --- telegram: begin ---\n(.*?)# --- telegram: end ---", path.read_text("utf-8"), re.S
    )
    assert block is not None, "the telegram example block is missing from inbox.example.toml"
    lines = [
        line[2:] if re.match(r"^# (\[\[team_chats\]\]|(name|channel|chat_id|language) = )", line) else line
        for line in block.group(1).splitlines()
    ]
    data = tomllib.loads("\n".join(lines))
    [chat] = data["team_chats"]
    alone = settings_from_dict(
        {**DEFAULT_CONFIG, **data, "channels": [*DEFAULT_CONFIG["channels"], *data["channels"]]},
        environ={"EXAMPLE_SECRET": TOKEN},
    )
    assert [c.channel for c in alone.team_chats] == ["telegram"] and chat["chat_id"].startswith("-100")
