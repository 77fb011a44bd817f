"""Item 1: the same webhook delivered twice in sequence, and 20 times at once across two workers (two
web applications, each with its own database engine, on one database): exactly one message is stored,
a team command runs once, and every request is answered 2xx, so the platform stops retrying.

Covered routes: the Telegram webhook (secret token), the X Account Activity webhook (signed), the
signed inbound API. PostgreSQL is the multi-worker database; the same tests run on SQLite, where the
two engines are serialised by its single writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import col

from connectors.telegram.emulator import EmuChat, TelegramEmulator
from connectors.x.emulator import XEmulator, webhook_signature
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.models import Channel, Delivery, Message
from inbox.web.signing import signed_headers
from tests.reliability.support import (
    API_PATH,
    PARTNER_SECRET,
    TG_PATH,
    X_PATH,
    Worker,
    api_channel,
    count,
    encode,
    environ,
    open_worker,
    rows,
    settings_for,
    stamp_head,
    telegram_channel,
    telegram_dm,
    telegram_group_message,
    telegram_headers,
    x_channel,
)

COPIES = 20


@pytest.fixture
async def platforms(clock: FakeClock) -> AsyncIterator[tuple[TelegramEmulator, XEmulator, EmuChat]]:
    """The Telegram emulator (with the team's supergroup) and the X emulator."""
    async with TelegramEmulator(clock=clock) as tg, XEmulator(clock=lambda: clock.now().timestamp()) as x:
        team = tg.supergroup("Ops", bot_status="administrator")
        yield tg, x, team


@pytest.fixture
async def workers(
    db: Database,
    db_url: str,
    clock: FakeClock,
    tmp_path: Path,
    platforms: tuple[TelegramEmulator, XEmulator, EmuChat],
) -> AsyncIterator[tuple[Worker, Worker]]:
    """Two workers on the test database, serving the telegram, x and api channels."""
    tg, x, team = platforms
    await stamp_head(db)
    settings = settings_for(
        db_url, [telegram_channel(tg), x_channel(x), api_channel()], environ(tg, x), team=team
    )
    first = await open_worker(settings, clock, tmp_path)
    second = await open_worker(settings, clock, tmp_path)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def deliver_everywhere(
    workers: tuple[Worker, Worker], path: str, body: bytes, headers: dict[str, str], copies: int
) -> list[int]:
    """POST the same request ``copies`` times at once, alternating between the workers."""
    requests = [workers[i % 2].post(path, body, headers) for i in range(copies)]
    return [status for status, _ in await asyncio.gather(*requests)]


async def messages_in(db: Database, channel: str) -> list[Message]:
    channel_id = next(c.id for c in await rows(db, Channel) if c.name == channel)
    return await rows(db, Message, col(Message.channel_id) == channel_id)


# --- Telegram ---------------------------------------------------------------------------------------


async def test_a_telegram_update_delivered_twice_is_stored_once(
    db: Database,
    workers: tuple[Worker, Worker],
) -> None:
    body = encode(telegram_dm(500, 777, "Is my order on its way?"))
    for _ in range(2):
        status, _ = await workers[0].post(TG_PATH, body, telegram_headers())
        assert status == 200
    [message] = await messages_in(db, "tg")
    assert message.text == "Is my order on its way?" and message.external_id == "777:1"


async def test_a_telegram_update_delivered_20_times_at_once_to_two_workers_is_stored_once(
    db: Database,
    workers: tuple[Worker, Worker],
) -> None:
    body = encode(telegram_dm(600, 778, "Hello?", message_id=9))
    statuses = await deliver_everywhere(workers, TG_PATH, body, telegram_headers(), COPIES)
    assert statuses == [200] * COPIES
    assert [m.external_id for m in await messages_in(db, "tg")] == ["778:9"]
    [channel] = [c for c in await rows(db, Channel) if c.name == "tg"]
    assert channel.cursor == "601"  # the next update to ask for, whichever copy stored it
    assert await count(db, Delivery, col(Delivery.purpose) == "card") == 1  # one card for the team


async def test_a_team_command_delivered_20_times_at_once_to_two_workers_runs_once(
    db: Database,
    workers: tuple[Worker, Worker],
    platforms: tuple[TelegramEmulator, XEmulator, EmuChat],
) -> None:
    _, _, team = platforms
    await workers[0].post(TG_PATH, encode(telegram_dm(700, 779, "Help")), telegram_headers())
    [message] = await messages_in(db, "tg")
    command = telegram_group_message(
        701, team, 1003, f"/reply {message.conversation_id} On its way!", message_id=50
    )
    statuses = await deliver_everywhere(workers, TG_PATH, encode(command), telegram_headers(), COPIES)
    assert statuses == [200] * COPIES
    replies = await rows(db, Delivery, col(Delivery.destination) == "tg")
    assert [d.payload["text"] for d in replies] == ["On its way!"]  # one reply queued, not twenty


# --- X ----------------------------------------------------------------------------------------------


async def test_an_x_activity_delivered_twice_is_stored_once(
    db: Database,
    workers: tuple[Worker, Worker],
    platforms: tuple[TelegramEmulator, XEmulator, EmuChat],
) -> None:
    _, x, _ = platforms
    body = encode(x.activity_payload(x.post_mention("ana", "where is my parcel?")))
    headers = {
        "Content-Type": "application/json",
        "x-twitter-webhooks-signature": webhook_signature(x.consumer_secret, body),
    }
    for _ in range(2):
        assert (await workers[1].post(X_PATH, body, headers))[0] == 200
    assert len(await messages_in(db, "xs")) == 1


async def test_an_x_activity_delivered_20_times_at_once_to_two_workers_is_stored_once(
    db: Database,
    workers: tuple[Worker, Worker],
    platforms: tuple[TelegramEmulator, XEmulator, EmuChat],
) -> None:
    _, x, _ = platforms
    dm = x.send_dm("budi", "my refund?")
    body = encode(x.activity_payload(dm))
    headers = {
        "Content-Type": "application/json",
        "x-twitter-webhooks-signature": webhook_signature(x.consumer_secret, body),
    }
    assert await deliver_everywhere(workers, X_PATH, body, headers, COPIES) == [200] * COPIES
    assert [m.external_id for m in await messages_in(db, "xs")] == [dm.id]


# --- inbound API ------------------------------------------------------------------------------------


def api_event(external_id: str) -> dict[str, object]:
    return {
        "external_id": external_id,
        "kind": "dm",
        "author": {"id": "crm-42"},
        "text": "From the CRM",
        "created_at": "2026-11-02T08:59:00Z",
    }


async def test_a_signed_api_request_sent_twice_is_stored_once(
    db: Database,
    clock: FakeClock,
    workers: tuple[Worker, Worker],
) -> None:
    body = encode([api_event("crm-1"), api_event("crm-2")])
    headers = {"Content-Type": "application/json", **signed_headers(PARTNER_SECRET, body, clock.now())}
    assert (await workers[0].post(API_PATH, body, headers))[0] == 202
    status, answer = await workers[1].post(API_PATH, body, headers)
    assert status == 202 and '"duplicates": 2' in answer and '"stored": 0' in answer
    assert sorted(str(m.external_id) for m in await messages_in(db, "partner")) == ["crm-1", "crm-2"]


async def test_a_signed_api_request_sent_20_times_at_once_to_two_workers_is_stored_once(
    db: Database,
    clock: FakeClock,
    workers: tuple[Worker, Worker],
) -> None:
    body = encode(api_event("crm-9"))
    headers = {"Content-Type": "application/json", **signed_headers(PARTNER_SECRET, body, clock.now())}
    assert await deliver_everywhere(workers, API_PATH, body, headers, COPIES) == [202] * COPIES
    assert [m.external_id for m in await messages_in(db, "partner")] == ["crm-9"]
