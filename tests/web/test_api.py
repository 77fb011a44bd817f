"""The signed inbound API: 202 with counts; 401 (missing, bad, stale), 400, 404 and 413 store nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from connectors.api.callback import CallbackSender
from inbox.clock import FakeClock
from inbox.events import Outbound
from inbox.models import Conversation, Message
from inbox.ports import DeliveryFailed, PermanentFailure, RateLimited
from inbox.web.signing import SignatureError, signature, signed_headers, verify
from tests.web.conftest import SECRET, WebHarness

URL = "/api/v1/inbound/partner"


def event(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "external_id": f"t-{n}",
        "kind": "dm",
        "author": {"id": "cust-9", "name": "Budi"},
        "text": f"message {n}",
        "created_at": "2026-11-02T08:59:00Z",
        **changes,
    }


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


async def post(
    harness: WebHarness, body: bytes, headers: dict[str, str] | None = None, url: str = URL
) -> tuple[int, dict[str, Any]]:
    signed = signed_headers(SECRET, body, harness.clock.now()) if headers is None else headers
    response = await harness.client.post(
        url, data=body, headers={"Content-Type": "application/json", **signed}
    )
    return response.status, await response.json()


async def stored(harness: WebHarness) -> int:
    async with harness.app.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


async def test_signed_list_is_stored_and_counted(harness: WebHarness) -> None:
    status, answer = await post(harness, encode([event(1), event(2), event(1)]))
    assert status == 202
    assert answer == {
        "received": 3,
        "stored": 2,
        "duplicates": 1,
        "edited": 0,
        "new_conversations": [1],
        "conversations": [1],
    }
    async with harness.app.db.sessions() as session:
        conversation = (await session.execute(select(Conversation))).scalar_one()
    assert conversation.kind == "dm"


async def test_single_object_and_replay_inside_the_window(harness: WebHarness) -> None:
    body = encode(event(7, channel="partner"))
    headers = signed_headers(SECRET, body, harness.clock.now())
    assert (await post(harness, body, headers))[1]["stored"] == 1
    harness.clock.advance(60)
    status, answer = await post(harness, body, headers)  # the very same request again
    assert status == 202 and answer["stored"] == 0 and answer["duplicates"] == 1
    assert await stored(harness) == 1


async def test_missing_signature_is_401(harness: WebHarness) -> None:
    status, answer = await post(harness, encode(event(1)), headers={})
    assert status == 401 and "missing X-Saluran-Signature" in answer["error"]
    assert await stored(harness) == 0


async def test_wrong_signature_is_401(harness: WebHarness) -> None:
    body = encode(event(1))
    now = int(harness.clock.now().timestamp())
    for headers in (
        {"X-Saluran-Timestamp": str(now), "X-Saluran-Signature": signature("other-secret", now, body)},
        {"X-Saluran-Timestamp": str(now), "X-Saluran-Signature": signature(SECRET, now, body + b" ")},
        {"X-Saluran-Timestamp": str(now + 1), "X-Saluran-Signature": signature(SECRET, now, body)},
        {"X-Saluran-Timestamp": str(now), "X-Saluran-Signature": "deadbeef"},
        {"X-Saluran-Signature": signature(SECRET, now, body)},
    ):
        status, answer = await post(harness, body, headers)
        assert status == 401, headers
        assert answer["error"]
    assert await stored(harness) == 0


async def test_tampered_body_is_401(harness: WebHarness) -> None:
    body = encode(event(1))
    headers = signed_headers(SECRET, body, harness.clock.now())
    status, _ = await post(harness, encode(event(1, text="changed")), headers)
    assert status == 401 and await stored(harness) == 0


@pytest.mark.parametrize("skew", [-301, 301, -3600])
async def test_stale_or_future_timestamp_is_401(harness: WebHarness, skew: int) -> None:
    body = encode(event(1))
    headers = signed_headers(SECRET, body, harness.clock.now() + timedelta(seconds=skew))
    status, answer = await post(harness, body, headers)
    assert status == 401 and "away from the server's time" in answer["error"]
    assert await stored(harness) == 0


async def test_timestamp_at_the_edge_of_the_window_is_accepted(harness: WebHarness) -> None:
    body = encode(event(1))
    headers = signed_headers(SECRET, body, harness.clock.now() - timedelta(seconds=300))
    assert (await post(harness, body, headers))[0] == 202


async def test_malformed_json_is_400_naming_line_and_column(harness: WebHarness) -> None:
    status, answer = await post(harness, b'[\n  {"external_id": "1",\n   "kind": dm}\n]')
    assert status == 400
    assert answer["error"].startswith("malformed JSON at line 3, column 12:")
    assert answer["line"] == 3 and answer["column"] == 12
    assert await stored(harness) == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([{"external_id": "1"}], "event 0: 'kind' is required"),
        ([event(1), event(2, kind="fax")], "event 1: 'kind' must be one of"),
        (event(1, author="x"), "event: 'author' must be an object"),
        (event(1, channel="support"), "'channel' is 'support' but this source is 'partner'"),
        ([event(1), event(2, created_at="yesterday")], "event 1: 'created_at' must be an ISO 8601"),
        ("hello", "body must be an event object or a list"),
        ([event(1, direction="out", member="zed")], "'zed' is not a team member"),
    ],
)
async def test_bad_events_are_400_and_nothing_of_the_batch_is_stored(
    harness: WebHarness, payload: Any, message: str
) -> None:
    status, answer = await post(harness, encode(payload))
    assert status == 400 and message in answer["error"]
    assert await stored(harness) == 0


async def test_non_utf8_and_nan_are_400(harness: WebHarness) -> None:
    assert (await post(harness, b'{"a": "\xff"}'))[0] == 400
    status, answer = await post(harness, b'{"external_id": NaN}')
    assert status == 400 and "NaN" in answer["error"]


async def test_unknown_channel_is_404(harness: WebHarness) -> None:
    for name in ("nope", "support", "website"):  # unknown, jsonl, webform: none takes API events
        status, answer = await post(harness, encode(event(1)), url=f"/api/v1/inbound/{name}")
        assert status == 404 and f"channel '{name}' does not accept API events" in answer["error"]
    assert await stored(harness) == 0


async def test_body_over_the_limit_is_413(harness: WebHarness) -> None:
    status, answer = await post(harness, encode([event(n, text="x" * 200) for n in range(30)]))
    assert status == 413 and "larger than 4096 bytes" in answer["error"]
    assert await stored(harness) == 0


def test_signature_scheme_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # Fixed vector, so clients in other languages can check their implementation (docs/web.md).
    body = (
        b'{"external_id":"42","kind":"dm","author":{"id":"c-7"},"text":"Hi",'
        b'"created_at":"2026-11-02T09:00:00Z"}'
    )
    expected = "sha256=f30837086b1e9266ad6b30e1bc33bc175acef065e0c01792d47e119b56aaf5db"
    assert signature("s3cret", 1793610000, body) == expected
    assert expected == "sha256=" + hmac.new(b"s3cret", b"1793610000." + body, hashlib.sha256).hexdigest()
    clock = FakeClock()
    headers = signed_headers("k", b"body", clock.now())
    assert verify("k", headers, b"body", clock.now()) == int(clock.now().timestamp())
    upper = {
        **headers,
        "X-Saluran-Signature": headers["X-Saluran-Signature"].upper().replace("SHA256=", "sha256="),
    }
    assert verify("k", upper, b"body", clock.now())
    with pytest.raises(SignatureError, match="unix seconds"):
        verify("k", {**headers, "X-Saluran-Timestamp": "2026-11-02"}, b"body", clock.now())


# --- replies of an api channel: the signed callback -------------------------------------------------------


async def test_callback_sender_posts_signed_replies_and_maps_statuses() -> None:
    clock = FakeClock()
    received: list[tuple[bytes, dict[str, str]]] = []
    answers = iter(
        [
            web.json_response({"id": "ext-77"}),
            web.Response(status=429, headers={"Retry-After": "12"}),
            web.Response(status=503),
            web.Response(status=400, text="bad"),
        ]
    )

    async def handle(request: web.Request) -> web.Response:
        received.append((await request.read(), dict(request.headers)))
        return next(answers)

    application = web.Application()
    application.router.add_post("/replies", handle)
    async with TestServer(application) as server:
        sender = CallbackSender("partner", str(server.make_url("/replies")), SECRET, clock)
        outbound = Outbound(
            delivery_id=5,
            destination="partner",
            purpose="reply",
            text="Halo",
            recipient="cust-9",
            reply_to="t-1",
            kind="dm",
        )
        receipt = await sender.send(outbound)
        assert receipt.platform_message_id == "ext-77"
        body, headers = received[0]
        verify(SECRET, headers, body, clock.now())  # signed with the channel's secret
        assert json.loads(body)["text"] == "Halo" and json.loads(body)["delivery_id"] == 5
        with pytest.raises(RateLimited) as limited:
            await sender.send(outbound)
        assert limited.value.retry_after == 12
        with pytest.raises(DeliveryFailed) as temporary:
            await sender.send(outbound)
        assert temporary.value.retryable
        with pytest.raises(PermanentFailure):
            await sender.send(outbound)
    with pytest.raises(DeliveryFailed, match="cannot reach"):
        await sender.send(outbound)  # the server is gone
