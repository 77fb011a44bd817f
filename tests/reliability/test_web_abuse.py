"""Item 10: the public contact form and the signed inbound API under abuse. Over the rate limit: 429
with Retry-After; oversized (declared or chunked): 413; malformed: 400 (API) or 422 (form, with the
form shown again). Nothing of a refused request is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from inbox.clock import FakeClock
from inbox.db import Database
from inbox.models import Contact, Conversation, Message
from inbox.web.signing import signed_headers
from tests.reliability.support import (
    API_PATH,
    FORM_PATH,
    PARTNER_SECRET,
    Worker,
    api_channel,
    count,
    environ,
    open_worker,
    settings_for,
    stamp_head,
    webform_channel,
)

LIMIT = 8192  # [web] max_body_bytes of the suite


@pytest.fixture
async def worker(db: Database, db_url: str, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Worker]:
    """A worker serving the contact form (3 posts per 10 minutes per address) and the inbound API."""
    await stamp_head(db)
    opened = await open_worker(
        settings_for(db_url, [webform_channel(), api_channel()], environ()), clock, tmp_path
    )
    try:
        yield opened
    finally:
        await opened.close()


async def nothing_stored(db: Database) -> None:
    assert (await count(db, Message), await count(db, Conversation), await count(db, Contact)) == (0, 0, 0)


def form(**changes: str) -> dict[str, str]:
    return {
        "name": "Budi",
        "email": "budi@example.org",
        "subject": "Refund",
        "message": "Where is it?",
        **changes,
    }


async def submit(worker: Worker, data: Any, **headers: str) -> tuple[int, str, dict[str, str]]:
    response = await worker.client.post(FORM_PATH, data=data, headers=headers)
    return response.status, await response.text(), dict(response.headers)


# --- contact form -----------------------------------------------------------------------------------


async def test_form_posts_over_the_rate_limit_get_429_and_are_not_stored(
    db: Database,
    clock: FakeClock,
    worker: Worker,
) -> None:
    statuses = [(await submit(worker, form(message=f"spam {i}", website="")))[0] for i in range(3)]
    assert statuses == [200, 200, 200]
    for i in range(5):
        status, page, headers = await submit(worker, form(message=f"more spam {i}"))
        assert status == 429 and int(headers["Retry-After"]) > 0 and "Budi" not in page
    assert await count(db, Message) == 3
    clock.advance(timedelta(minutes=10, seconds=1))  # the window slides on
    assert (await submit(worker, form(message="later")))[0] == 200
    assert await count(db, Message) == 4


async def test_oversized_form_posts_get_413_declared_or_chunked(db: Database, worker: Worker) -> None:
    big = form(message="x" * (LIMIT + 1))
    assert (await submit(worker, big))[0] == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 1024 + 2):
            yield b"message=" + b"y" * 1024 + b"&"

    assert (await submit(worker, chunks(), **{"Content-Type": "application/x-www-form-urlencoded"}))[0] == 413
    await nothing_stored(db)


@pytest.mark.parametrize(
    "data",
    [
        form(email="not-an-address"),
        form(email="a@b"),
        form(name=""),
        form(message="   "),
        form(message="\x00\x01\x02"),
        form(subject="s" * 201),
        form(message="m" * 2001),
        {},
        {"unrelated": "field"},
    ],
)
async def test_malformed_form_posts_get_422_and_the_form_again(
    db: Database,
    worker: Worker,
    data: dict[str, str],
) -> None:
    status, page, _ = await submit(worker, data)
    assert status == 422 and 'role="alert"' in page
    await nothing_stored(db)


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b'{"name": "json", "email": "j@example.org"}', "application/json"),
        (
            b"name=%FF%FE&email=x%ED%A0%80%40example.org&subject=%00&message=%C0%AF",
            "application/x-www-form-urlencoded",
        ),
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
        (
            b'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nB\r\n--x--\r\n',
            "multipart/form-data; boundary=x",
        ),
        (b"--broken", "multipart/form-data; boundary=x"),
    ],
)
async def test_garbage_form_bodies_are_refused_without_a_server_error(
    db: Database,
    worker: Worker,
    body: bytes,
    content_type: str,
) -> None:
    status, _, _ = await submit(worker, body, **{"Content-Type": content_type})
    assert status in (400, 422), status
    await nothing_stored(db)


async def test_honeypot_posts_are_thanked_but_dropped(db: Database, worker: Worker) -> None:
    status, page, _ = await submit(worker, form(website="http://spam.example"))
    assert status == 200 and "Thank you" in page and "reference number" not in page
    await nothing_stored(db)


# --- inbound API -------------------------------------------------------------------------------------


async def post_api(
    worker: Worker, clock: FakeClock, body: bytes, **headers: str
) -> tuple[int, dict[str, Any]]:
    signed = {
        "Content-Type": "application/json",
        **signed_headers(PARTNER_SECRET, body, clock.now()),
        **headers,
    }
    status, text = await worker.post(API_PATH, body, signed)
    return status, json.loads(text)


def event(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "external_id": f"e{n}",
        "kind": "dm",
        "author": {"id": "c"},
        "text": "hi",
        "created_at": "2026-11-02T08:59:00Z",
        **changes,
    }


async def test_oversized_api_bodies_get_413(db: Database, clock: FakeClock, worker: Worker) -> None:
    body = json.dumps([event(i, text="z" * 500) for i in range(20)]).encode()
    assert len(body) > LIMIT
    assert (await post_api(worker, clock, body))[0] == 413

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    response = await worker.client.post(
        API_PATH,
        data=chunks(),
        headers={"Content-Type": "application/json", **signed_headers(PARTNER_SECRET, body, clock.now())},
    )
    assert response.status == 413
    await nothing_stored(db)


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"", "malformed JSON"),
        (b"{not json", "malformed JSON at line 1"),
        (b"[1, 2", "malformed JSON"),
        (b'{"external_id": NaN}', "NaN"),
        (b"\xff\xfe", "not UTF-8"),
        (b'"just a string"', "event object or a list"),
        (json.dumps([event(1), event(2, kind="telepathy")]).encode(), "event 1: 'kind'"),
        (json.dumps(event(1, created_at="yesterday")).encode(), "ISO 8601"),
        (json.dumps(event(1, surprise=True)).encode(), "unknown key"),
        (json.dumps(event(1, author="me")).encode(), "author"),
        (json.dumps(event(1, text=7)).encode(), "'text' must be a string"),
        (b"[" + b",".join([b"{}"] * 1001) + b"]", "at most 1000 events"),
        (json.dumps(event(1, direction="out", member="mallory")).encode(), "mallory"),
    ],
)
async def test_malformed_api_bodies_get_400_and_store_nothing(
    db: Database,
    clock: FakeClock,
    worker: Worker,
    body: bytes,
    fragment: str,
) -> None:
    status, answer = await post_api(worker, clock, body)
    assert status == 400 and fragment in answer["error"], answer
    await nothing_stored(db)


async def test_one_bad_event_refuses_the_whole_batch(db: Database, clock: FakeClock, worker: Worker) -> None:
    body = json.dumps([event(1), event(2), event(3, external_id="")]).encode()
    status, answer = await post_api(worker, clock, body)
    assert status == 400 and answer["index"] == 2
    await nothing_stored(db)
