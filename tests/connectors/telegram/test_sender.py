"""The senders against the emulator: Telegram's errors as the outbox's failure types, parts that went
out are not sent twice, team notices without a view, and the weekly report's chart as a photo."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TimedOut

from connectors.telegram.client import BotClient, delivery_error, retry_seconds
from connectors.telegram.console import Forums, Refs, TeamChatInfo
from connectors.telegram.emulator import TINY_PNG, FloodLimits, TelegramEmulator
from connectors.telegram.sender import TeamSender, TelegramSender, split_text
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Outbound
from inbox.ports import DeliveryFailed, PermanentFailure, RateLimited
from inbox.view_codec import dump
from inbox.views import HealthNotice


@pytest.fixture
async def emu(clock: FakeClock) -> AsyncIterator[TelegramEmulator]:
    """An emulator without flood limits (tests inject the 429s they want)."""
    async with TelegramEmulator(clock=clock, flood_limits=FloodLimits(enabled=False)) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: TelegramEmulator) -> AsyncIterator[BotClient]:
    """The channel's PTB bot, pointed at the emulator, with short timeouts."""
    bot = BotClient(emu.token, emu.url, request_timeout=0.5)
    yield bot
    await bot.close()


def reply(delivery_id: int, text: str, *, chat: int, to: int | None = None) -> Outbound:
    """An outbox reply row as the dispatcher hands it over."""
    return Outbound(
        delivery_id=delivery_id,
        destination="tg",
        purpose="reply",
        text=text,
        recipient=str(chat),
        reply_to=None if to is None else f"{chat}:{to}",
        kind="dm",
    )


def test_telegram_errors_map_to_the_outbox_failure_types() -> None:
    limited = delivery_error(RetryAfter(timedelta(seconds=7)), "the reply")
    assert isinstance(limited, RateLimited) and limited.retry_after == 7
    assert retry_seconds(RetryAfter(3)) == 3
    for permanent in (
        Forbidden("Forbidden: bot was blocked by the user"),
        BadRequest("Bad Request: chat not found"),
        ChatMigrated(-100123),
    ):
        failure = delivery_error(permanent, "the reply")
        assert isinstance(failure, PermanentFailure) and not failure.retryable
    assert "-100123" in str(delivery_error(ChatMigrated(-100123), "x"))
    for transient in (TimedOut(), NetworkError("Bad Gateway")):
        failure = delivery_error(transient, "the reply")
        assert type(failure) is DeliveryFailed and failure.retryable


async def test_replies_fail_the_right_way(emu: TelegramEmulator, client: BotClient) -> None:
    sender = TelegramSender("tg", client)
    ana = emu.user("Ana")
    first = emu.user_dm(ana, "hello")
    emu.inject("sendMessage", 502)
    with pytest.raises(DeliveryFailed) as caught:
        await sender.send(reply(1, "hi", chat=ana.id, to=first["message_id"]))
    assert caught.value.retryable
    emu.inject("sendMessage", 429, retry_after=9)
    with pytest.raises(RateLimited) as limited:
        await sender.send(reply(1, "hi", chat=ana.id))
    assert limited.value.retry_after == 9
    receipt = await sender.send(reply(1, "hi", chat=ana.id, to=first["message_id"]))
    assert receipt.platform_message_id == f"{ana.id}:{emu.last_sent(ana).message_id}"
    emu.block_bot(ana)
    with pytest.raises(PermanentFailure, match="blocked by the user"):
        await sender.send(reply(2, "still there?", chat=ana.id))
    with pytest.raises(PermanentFailure, match="no Telegram chat"):
        await sender.send(Outbound(delivery_id=3, destination="tg", purpose="reply", text="x"))
    with pytest.raises(PermanentFailure, match="empty reply"):
        await sender.send(reply(4, "   ", chat=ana.id))
    with pytest.raises(PermanentFailure, match="hosts no team chat"):
        await sender.send(Outbound(delivery_id=5, destination="team:ops", purpose="card", text="x"))


async def test_a_retry_sends_only_the_parts_that_did_not_go(clock: FakeClock) -> None:
    limits = FloodLimits(per_chat_burst=1)  # one message a second: the second part must wait
    async with TelegramEmulator(clock=clock, flood_limits=limits) as emu:
        client = BotClient(emu.token, emu.url, request_timeout=0.5)
        sender = TelegramSender("tg", client)
        ana = emu.user("Ana")
        emu.user_dm(ana, "hello")
        text = " ".join(["a" * 4000, "b" * 4000, "c" * 4000])
        for _ in range(2):
            with pytest.raises(RateLimited) as caught:
                await sender.send(reply(7, text, chat=ana.id))
            assert caught.value.retry_after == 1
            clock.advance(1)
        receipt = await sender.send(reply(7, text, chat=ana.id))
        parts = emu.sent(ana)
        assert [p.plain_text for p in parts] == ["a" * 4000, "b" * 4000, "c" * 4000]  # each part once
        assert receipt.platform_message_id == f"{ana.id}:{parts[0].message_id}"
        await client.close()


def test_split_text_keeps_the_text_and_counts_utf16() -> None:
    assert split_text("short") == ["short"]
    emoji = "😀" * 3000
    parts = split_text(emoji)
    assert "".join(parts) == emoji and [len(p) for p in parts] == [2048, 952]
    mixed = "<b>&amp;</b> " * 1000
    assert " ".join(split_text(mixed.strip())) == mixed.strip()


async def test_team_notices_without_a_view_and_with_the_weekly_chart(
    db: Database, clock: FakeClock, emu: TelegramEmulator, client: BotClient
) -> None:
    team = emu.supergroup("Ops", bot_status="administrator")
    destination = "team:ops"
    sender = TeamSender(
        client, Refs(db, clock), Forums(client), {destination: TeamChatInfo("ops", team.id, "en")}
    )
    plain = Outbound(delivery_id=1, destination=destination, purpose="health", text="Channel <x> & y is down")
    receipt = await sender.send(plain)
    assert emu.last_sent(team).plain_text == "Channel <x> & y is down"
    assert receipt.platform_message_id == f"{team.id}:{emu.last_sent(team).message_id}"
    report = Outbound(
        delivery_id=2,
        destination=destination,
        purpose="report",
        text="ignored",
        extra={
            "view": dump(HealthNotice(channel="tg", healthy=True)),
            "chat_id": str(team.id),
            "mentions": {},
            "image_png_b64": base64.b64encode(TINY_PNG).decode(),
            "image_name": "week.png",
            "image_caption": "Week 45 <b>chart</b>",
        },
    )
    emu.inject("sendPhoto", 429, retry_after=2)
    with pytest.raises(RateLimited):
        await sender.send(report)
    await sender.send(report)  # the text is not posted twice, only the photo again
    texts = [s for s in emu.sent(team) if s.kind == "text"]
    assert [s.plain_text for s in texts][-1] == "✅ Channel tg works again." and len(texts) == 2
    photo = emu.last_sent(team)
    assert photo.kind == "photo" and photo.plain_text == "Week 45 <b>chart</b>"
    assert photo.file is not None and photo.file.data == TINY_PNG
    with pytest.raises(PermanentFailure, match="not a Telegram chat id"):
        await sender.send(
            Outbound(
                delivery_id=3, destination="team:other", purpose="card", text="x", extra={"chat_id": "ops"}
            )
        )
