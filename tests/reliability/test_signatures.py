"""Item 2: every webhook route refuses a request whose proof of origin is missing, wrong or stale with
401/403 and stores nothing: the Telegram secret token, the X signature (and a CRC route that does not
sign forged bodies), the inbound API's HMAC and its timestamp window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col

from connectors.telegram.emulator import TelegramEmulator
from connectors.x.emulator import XEmulator, crc_response, webhook_signature
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.models import Channel, Contact, Conversation, Message
from inbox.web.inbound_api import AUTH_FAILURES_LIMIT
from inbox.web.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, signed_headers
from tests.reliability.support import (
    API_PATH,
    PARTNER_SECRET,
    TG_PATH,
    TG_WEBHOOK_SECRET,
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
    telegram_headers,
    x_channel,
)


@pytest.fixture
async def worker(
    db: Database, db_url: str, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[tuple[Worker, XEmulator]]:
    """One worker serving the three signed routes."""
    async with TelegramEmulator(clock=clock) as tg, XEmulator(clock=lambda: clock.now().timestamp()) as x:
        await stamp_head(db)
        settings = settings_for(db_url, [telegram_channel(tg), x_channel(x), api_channel()], environ(tg, x))
        opened = await open_worker(settings, clock, tmp_path)
        try:
            yield opened, x
        finally:
            await opened.close()


async def nothing_stored(db: Database) -> None:
    assert await count(db, Message) == 0
    assert await count(db, Conversation) == 0
    assert await count(db, Contact) == 0
    cursors = [c.cursor for c in await rows(db, Channel)]
    assert cursors == [None] * len(cursors)


@pytest.mark.parametrize(
    "secret", [None, "", "wrong", TG_WEBHOOK_SECRET + "x", TG_WEBHOOK_SECRET[:-1], TG_WEBHOOK_SECRET.upper()]
)
async def test_telegram_webhook_without_the_secret_token_is_403(
    db: Database,
    worker: tuple[Worker, XEmulator],
    secret: str | None,
) -> None:
    status, body = await worker[0].post(
        TG_PATH, encode(telegram_dm(1, 42, "I am not Telegram")), telegram_headers(secret)
    )
    assert (status, body) == (403, '{"error": "forbidden"}')
    await nothing_stored(db)


async def test_telegram_secret_is_checked_before_the_body_is_read(
    db: Database,
    worker: tuple[Worker, XEmulator],
) -> None:
    status, _ = await worker[0].post(TG_PATH, b"{not json", telegram_headers("wrong"))
    assert status == 403  # not 400: an impostor learns nothing about what we parse
    await nothing_stored(db)


def x_tampering(x: XEmulator, body: bytes) -> list[dict[str, str]]:
    """Header sets that must all be refused for ``body``."""
    good = webhook_signature(x.consumer_secret, body)
    return [
        {},
        {"x-twitter-webhooks-signature": ""},
        {"x-twitter-webhooks-signature": webhook_signature("not-the-consumer-secret", body)},
        {"x-twitter-webhooks-signature": webhook_signature(x.consumer_secret, body + b" ")},
        {"x-twitter-webhooks-signature": good.replace("sha256=", "sha1=")},
        {"x-twitter-webhooks-signature": good[:-2]},
        {"x-twitter-webhooks-signature": "sha256=" + "A" * 44},
    ]


async def test_x_webhook_without_a_valid_signature_is_401(
    db: Database,
    worker: tuple[Worker, XEmulator],
) -> None:
    opened, x = worker
    body = encode(x.activity_payload(x.post_mention("ana", "forged?")))
    for headers in x_tampering(x, body):
        status, _ = await opened.post(X_PATH, body, {"Content-Type": "application/json", **headers})
        assert status == 401, headers
    await nothing_stored(db)


async def test_x_crc_answers_only_with_the_consumer_secret_and_never_signs_a_body(
    db: Database,
    worker: tuple[Worker, XEmulator],
) -> None:
    opened, x = worker
    response = await opened.client.get(X_PATH, params={"crc_token": "Zm9vYmFy-crc_token=="})
    assert response.status == 200
    assert await response.json() == crc_response(x.consumer_secret, "Zm9vYmFy-crc_token==")
    assert (await opened.client.get(X_PATH)).status == 400
    # The CRC answer is the HMAC that signs bodies: asked to "answer" an event body, it would hand an
    # attacker the signature of a forged event. Such tokens are refused.
    forged = x.activity_payload(x.post_mention("mallory", "forged through the CRC"))
    body = encode(forged)
    for token in (body.decode(), " " + body.decode(), "[1]", "a b", "x" * 2000):
        answer = await opened.client.get(X_PATH, params={"crc_token": token})
        assert answer.status == 400, token[:20]
        assert "response_token" not in await answer.text()
    await nothing_stored(db)


def api_body() -> bytes:
    return encode(
        {
            "external_id": "a-1",
            "kind": "dm",
            "author": {"id": "c-1"},
            "text": "hi",
            "created_at": "2026-11-02T08:59:00Z",
        }
    )


def api_tampering(body: bytes, now_ts: int) -> list[tuple[str, dict[str, str]]]:
    """(what is wrong, headers) for requests the inbound API must refuse."""
    good_sig = signature(PARTNER_SECRET, now_ts, body)
    stale = now_ts - 301
    future = now_ts + 301
    return [
        ("no headers", {}),
        ("no signature", {TIMESTAMP_HEADER: str(now_ts)}),
        ("no timestamp", {SIGNATURE_HEADER: good_sig}),
        ("wrong key", {TIMESTAMP_HEADER: str(now_ts), SIGNATURE_HEADER: signature("guess", now_ts, body)}),
        (
            "other body",
            {TIMESTAMP_HEADER: str(now_ts), SIGNATURE_HEADER: signature(PARTNER_SECRET, now_ts, body + b" ")},
        ),
        ("timestamp changed", {TIMESTAMP_HEADER: str(now_ts + 1), SIGNATURE_HEADER: good_sig}),
        ("stale", {TIMESTAMP_HEADER: str(stale), SIGNATURE_HEADER: signature(PARTNER_SECRET, stale, body)}),
        (
            "future",
            {TIMESTAMP_HEADER: str(future), SIGNATURE_HEADER: signature(PARTNER_SECRET, future, body)},
        ),
        ("not a number", {TIMESTAMP_HEADER: "yesterday", SIGNATURE_HEADER: good_sig}),
        ("no prefix", {TIMESTAMP_HEADER: str(now_ts), SIGNATURE_HEADER: good_sig.removeprefix("sha256=")}),
        ("non-ascii", {TIMESTAMP_HEADER: str(now_ts), SIGNATURE_HEADER: "sha256=é"}),
    ]


async def test_inbound_api_with_a_missing_wrong_or_stale_signature_is_401(
    db: Database,
    clock: FakeClock,
    worker: tuple[Worker, XEmulator],
) -> None:
    opened, _ = worker
    body = api_body()
    now_ts = int(clock.now().timestamp())
    for what, headers in api_tampering(body, now_ts):
        status, answer = await opened.post(API_PATH, body, {"Content-Type": "application/json", **headers})
        assert status == 401, (what, answer)
    await nothing_stored(db)
    # A captured request replayed after its five minutes is refused too.
    captured = signed_headers(PARTNER_SECRET, body, clock.now())
    assert (await opened.post(API_PATH, body, {"Content-Type": "application/json", **captured}))[0] == 202
    clock.advance(timedelta(minutes=5, seconds=1))
    replayed = await opened.post(
        API_PATH,
        encode(
            {"external_id": "a-2", "kind": "dm", "author": {"id": "c"}, "created_at": "2026-11-02T08:59:00Z"}
        ),
        {"Content-Type": "application/json", **captured},
    )
    assert replayed[0] == 401
    assert await count(db, Message) == 1


async def test_a_flood_of_bad_signatures_is_cut_off_with_429(
    db: Database,
    clock: FakeClock,
    worker: tuple[Worker, XEmulator],
) -> None:
    opened, _ = worker
    body = api_body()
    bad = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(int(clock.now().timestamp())),
        SIGNATURE_HEADER: "sha256=" + "0" * 64,
    }
    statuses = [(await opened.post(API_PATH, body, bad))[0] for _ in range(AUTH_FAILURES_LIMIT + 5)]
    assert statuses == [401] * AUTH_FAILURES_LIMIT + [429] * 5
    response = await opened.client.post(API_PATH, data=body, headers=bad)
    assert response.status == 429 and int(response.headers["Retry-After"]) > 0
    # A correctly signed request is never held back by someone else's failures.
    good = {"Content-Type": "application/json", **signed_headers(PARTNER_SECRET, body, clock.now())}
    assert (await opened.post(API_PATH, body, good))[0] == 202
    clock.advance(timedelta(minutes=1))
    assert (await opened.post(API_PATH, body, bad))[0] == 401  # the window passed
    assert [m.external_id for m in await rows(db, Message, col(Message.direction) == "in")] == ["a-1"]
