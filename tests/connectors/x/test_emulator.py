"""X emulator: the real tweepy AsyncClient, reached through the session seam, against the fake X."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tweepy.asynchronous import AsyncClient, AsyncPaginator
from tweepy.errors import BadRequest, Forbidden, TooManyRequests, TwitterServerError, Unauthorized
from yarl import URL

from connectors.x.emulator import XEmulator, crc_response, post_length, webhook_signature
from connectors.x.session import XApiSession, attach, rewrite_url
from inbox.clock import FakeClock

MENTIONS = "GET /2/users/:id/mentions"
ALL_TWEET_FIELDS = ["created_at", "conversation_id", "in_reply_to_user_id", "referenced_tweets",
                    "author_id", "entities"]


@pytest.fixture
async def emulator(clock: FakeClock) -> AsyncIterator[XEmulator]:
    async with XEmulator(clock=lambda: clock.now().timestamp()) as emu:
        yield emu


@pytest.fixture
async def session(emulator: XEmulator) -> AsyncIterator[XApiSession]:
    async with XApiSession(emulator.base_url, timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


def bearer_client(emu: XEmulator, session: XApiSession, token: str | None = None, **kw: Any) -> AsyncClient:
    client = AsyncClient(bearer_token=token or emu.bearer_token, wait_on_rate_limit=False, **kw)
    client.session = session
    return client


def user_client(emu: XEmulator, session: XApiSession, **overrides: str) -> AsyncClient:
    keys = {k: v for k, v in emu.credentials().items() if k != "bearer_token"} | overrides
    client = AsyncClient(**keys, wait_on_rate_limit=False)
    client.session = session
    return client


# --- the seam ------------------------------------------------------------------------------


def test_rewrite_keeps_path_and_encoded_query_exactly() -> None:
    base = "http://127.0.0.1:8123"
    assert str(rewrite_url("https://api.twitter.com/2/users/me", base)) == f"{base}/2/users/me"
    assert str(rewrite_url("https://api.x.com/2/tweets", base)) == f"{base}/2/tweets"
    signed = URL("https://api.twitter.com/2/users/1/mentions?max_results=5&t=1%3A2%2C3", encoded=True)
    rewritten = rewrite_url(signed, base)
    assert isinstance(rewritten, URL)
    assert rewritten.raw_path == "/2/users/1/mentions"
    assert rewritten.raw_query_string == "max_results=5&t=1%3A2%2C3"
    assert str(rewrite_url("https://api.twitter.com/2/users/me", "http://h:1/x/")) == "http://h:1/x/2/users/me"


def test_rewrite_leaves_other_hosts_and_production_alone() -> None:
    other = "https://upload.example.com/1.1/media/upload.json"
    assert rewrite_url(other, "http://127.0.0.1:1") == other
    assert rewrite_url("https://api.twitter.com/2/users/me", None) == "https://api.twitter.com/2/users/me"


async def test_attach_gives_tweepy_a_session(emulator: XEmulator) -> None:
    client = AsyncClient(bearer_token=emulator.bearer_token)
    seam = attach(client, emulator.base_url, timeout=5)
    try:
        me = await client.get_me(user_auth=False)
        assert me.data.username == emulator.bot.username
    finally:
        await seam.close()
    assert seam.closed


# --- auth ----------------------------------------------------------------------------------


async def test_get_me_with_bearer_and_with_oauth1(emulator: XEmulator, session: XApiSession) -> None:
    by_bearer = await bearer_client(emulator, session).get_me(user_auth=False, user_fields=["created_at"])
    by_oauth1 = await user_client(emulator, session).get_me()
    assert by_bearer.data.id == by_oauth1.data.id == int(emulator.bot.id)
    assert by_bearer.data.username == "saluran_help"
    assert by_bearer.data.created_at is not None
    assert [r.auth for r in emulator.calls("GET", "/2/users/me")] == ["oauth2_user", "oauth1_user"]


async def test_oauth1_signature_is_verified(emulator: XEmulator, session: XApiSession) -> None:
    with pytest.raises(Unauthorized):
        await user_client(emulator, session, consumer_secret="not-the-secret").get_me()
    with pytest.raises(Unauthorized):
        await user_client(emulator, session, access_token_secret="stolen-token-wrong-secret").get_me()
    # Query parameters are signed too (tweepy percent-encodes the ':' in them itself).
    emulator.post_mention("alice", "hi")
    fetched = await user_client(emulator, session).get_users_mentions(
        emulator.bot.id, user_auth=True, start_time="2026-11-01T00:00:00Z", tweet_fields=["created_at"],
    )
    assert len(fetched.data) == 1


async def test_missing_or_wrong_auth_is_unauthorized(emulator: XEmulator, session: XApiSession) -> None:
    async with session.inner.get(f"{emulator.base_url}/2/users/me") as response:
        assert response.status == 401
        assert await response.json() == {
            "title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized",
        }
    with pytest.raises(Unauthorized) as caught:
        await bearer_client(emulator, session, token="revoked").get_me(user_auth=False)
    assert caught.value.response.status == 401
    assert emulator.requests[-1].auth is None
    async with session.inner.get(f"{emulator.base_url}/2/nothing-here") as response:
        assert response.status == 404
        assert (await response.json())["errors"][0]["code"] == 34


async def test_app_only_bearer_reads_mentions_but_not_user_endpoints(
    emulator: XEmulator, session: XApiSession
) -> None:
    emulator.post_mention("alice", "hello")
    app = bearer_client(emulator, session, token=emulator.app_bearer_token)
    mentions = await app.get_users_mentions(emulator.bot.id)
    assert [t.text for t in mentions.data] == ["@saluran_help hello"]
    with pytest.raises(Forbidden) as caught:
        await app.get_me(user_auth=False)
    assert "Application-Only is forbidden" in str(caught.value)
    assert emulator.requests[-1].auth == "oauth2_app"


# --- mentions ------------------------------------------------------------------------------


async def test_250_mentions_between_polls_are_each_seen_once(
    emulator: XEmulator, session: XApiSession
) -> None:
    client = bearer_client(emulator, session)
    old = [emulator.post_mention(f"fan{i}", f"old {i}") for i in range(3)]
    first = await client.get_users_mentions(emulator.bot.id, max_results=100)
    assert first.meta["newest_id"] == old[-1].id
    assert "next_token" not in first.meta
    since_id = first.meta["newest_id"]

    new = [emulator.post_mention(f"user{i % 40}", f"complaint {i}") for i in range(250)]
    seen: list[int] = []
    token: str | None = None
    pages = 0
    while True:
        page = await client.get_users_mentions(
            emulator.bot.id, since_id=since_id, max_results=100, pagination_token=token,
            expansions="author_id", tweet_fields=ALL_TWEET_FIELDS,
        )
        pages += 1
        ids = [t.id for t in page.data]
        assert ids == sorted(ids, reverse=True)
        assert page.meta["result_count"] == len(ids)
        assert (int(page.meta["newest_id"]), int(page.meta["oldest_id"])) == (ids[0], ids[-1])
        assert {t.author_id for t in page.data} == {u.id for u in page.includes["users"]}
        seen += ids
        if pages == 1:
            newest = page.meta["newest_id"]
            # Arrives mid-pagination: must not shift pages; the next poll picks it up.
            late = emulator.post_mention("latecomer", "arrived while paging")
        token = page.meta.get("next_token")
        if token is None:
            break
    assert pages == 3
    assert len(seen) == 250 == len(set(seen))
    assert set(seen) == {int(p.id) for p in new}

    following = await client.get_users_mentions(emulator.bot.id, since_id=newest, max_results=100)
    assert [t.id for t in following.data] == [int(late.id)]
    empty = await client.get_users_mentions(emulator.bot.id, since_id=late.id)
    assert empty.data is None and empty.meta == {"result_count": 0}


async def test_tweepy_paginator_follows_tokens(emulator: XEmulator, session: XApiSession) -> None:
    client = bearer_client(emulator, session)
    anchor = emulator.post_mention("alice", "before")
    posted = [emulator.post_mention("bob", f"n{i}") for i in range(23)]
    got = [t.id async for t in AsyncPaginator(
        client.get_users_mentions, emulator.bot.id, since_id=anchor.id, max_results=5
    ).flatten()]
    assert got == [int(p.id) for p in reversed(posted)]
    page_two = await client.get_users_mentions(
        emulator.bot.id, max_results=5,
        pagination_token=(await client.get_users_mentions(emulator.bot.id, max_results=5)).meta["next_token"],
    )
    back = await client.get_users_mentions(
        emulator.bot.id, max_results=5, pagination_token=page_two.meta["previous_token"]
    )
    assert [t.id for t in back.data] == [int(p.id) for p in reversed(posted[-5:])]


async def test_mention_fields_and_conversation_threading(
    emulator: XEmulator, session: XApiSession, clock: FakeClock
) -> None:
    client = bearer_client(emulator, session)
    root = emulator.post_mention("alice", "my order #A12 never arrived")
    reply = await client.create_tweet(
        text="Sorry! Checking now.", in_reply_to_tweet_id=root.id, user_auth=False
    )
    clock.advance(60)
    follow_up = emulator.post_mention("alice", "thanks, still waiting", in_reply_to=reply.data["id"])

    page = await client.get_users_mentions(
        emulator.bot.id, tweet_fields=ALL_TWEET_FIELDS, expansions=["author_id", "referenced_tweets.id"],
        user_fields=["created_at"],
    )
    newest, oldest = page.data
    assert (newest.id, oldest.id) == (int(follow_up.id), int(root.id))
    assert newest.conversation_id == oldest.conversation_id == int(root.id)
    assert newest.in_reply_to_user_id == int(emulator.bot.id)
    assert [(r.type, r.id) for r in newest.referenced_tweets] == [("replied_to", int(reply.data["id"]))]
    assert newest.author_id == int(emulator.user("alice").id)
    assert newest.created_at.timestamp() == clock.now().timestamp()
    mention = newest.entities["mentions"][0]
    assert (mention["username"], mention["id"], mention["start"]) == ("saluran_help", emulator.bot.id, 0)
    assert oldest.entities["hashtags"][0]["tag"] == "A12"
    assert oldest.referenced_tweets is None and oldest.in_reply_to_user_id is None
    assert [t.id for t in page.includes["tweets"]] == [int(reply.data["id"])]
    assert page.includes["users"][0].created_at is not None


async def test_mention_parameters_are_validated_like_x(emulator: XEmulator, session: XApiSession) -> None:
    client = bearer_client(emulator, session)
    for bad in (4, 101):
        with pytest.raises(BadRequest) as caught:
            await client.get_users_mentions(emulator.bot.id, max_results=bad)
        assert "is not between 5 and 100" in str(caught.value)
    with pytest.raises(BadRequest):
        await client.get_users_mentions(emulator.bot.id, pagination_token="not-a-token")
    with pytest.raises(BadRequest):
        await client.get_users_mentions(emulator.bot.id, tweet_fields=["no_such_field"])
    unknown = await client.get_users_mentions("42")
    assert unknown.data is None and unknown.errors[0]["title"] == "Not Found Error"


# --- direct messages -----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated")  # tweepy's own log call
async def test_dm_events_newest_first_with_senders_and_pages(
    emulator: XEmulator, session: XApiSession, clock: FakeClock
) -> None:
    client = user_client(emulator, session)
    ancient = emulator.send_dm("alice", "from last season")
    clock.advance(31 * 86_400)  # older than X's 30-day DM history
    first = emulator.send_dm("alice", "where is my refund?")
    second = emulator.send_dm("bob", "hello?")
    alice, bob, bot = emulator.user("alice"), emulator.user("bob"), emulator.bot
    sent = await client.create_direct_message(participant_id=alice.id, text="Looking into it")
    fields = ["id", "text", "event_type", "created_at", "sender_id", "dm_conversation_id"]

    page_one = await client.get_direct_message_events(
        dm_event_fields=fields, expansions="sender_id", max_results=2
    )
    page_two = await client.get_direct_message_events(
        dm_event_fields=fields, expansions="sender_id", max_results=2,
        pagination_token=page_one.meta["next_token"],
    )
    events = page_one.data + page_two.data
    assert [e.id for e in events] == [int(sent.data["dm_event_id"]), int(second.id), int(first.id)]
    assert "next_token" not in page_two.meta
    assert int(ancient.id) not in {e.id for e in events}
    assert [e.sender_id for e in events] == [int(bot.id), int(bob.id), int(alice.id)]
    assert events[2].dm_conversation_id == f"{alice.id}-{bot.id}" == sent.data["dm_conversation_id"]
    assert events[2].event_type == "MessageCreate" and events[2].text == "where is my refund?"
    assert {u.id for u in page_one.includes["users"]} == {int(bot.id), int(bob.id)}

    with pytest.raises(BadRequest) as caught:  # the endpoint has no since_id: X refuses it
        await client.get_direct_message_events(since_id=first.id)
    assert "since_id" in str(caught.value)


async def test_create_direct_message(emulator: XEmulator, session: XApiSession) -> None:
    client = bearer_client(emulator, session)
    carol = emulator.add_user("carol", "Carol C")
    created = await client.create_direct_message(
        participant_id=carol.id, text="We refunded you.", user_auth=False
    )
    assert created.data["dm_conversation_id"] == f"{carol.id}-{emulator.bot.id}"
    [dm] = emulator.dms_by_bot()
    assert (dm.id, dm.recipient_id, dm.text) == (created.data["dm_event_id"], carol.id, "We refunded you.")
    assert emulator.calls("POST")[-1].status == 201

    closed = emulator.add_user("closed_dms", accepts_dms=False)
    with pytest.raises(Forbidden):
        await client.create_direct_message(participant_id=closed.id, text="hi", user_auth=False)
    with pytest.raises(BadRequest):
        await client.create_direct_message(participant_id="99", text="nobody", user_auth=False)


# --- posting -------------------------------------------------------------------------------


async def test_reply_appears_in_posts_by_bot(emulator: XEmulator, session: XApiSession) -> None:
    client = user_client(emulator, session)
    mention = emulator.post_mention("alice", "help")
    created = await client.create_tweet(text="@alice we are on it", in_reply_to_tweet_id=mention.id)
    assert set(created.data) == {"id", "text", "edit_history_tweet_ids"}
    [post] = emulator.posts_by_bot()
    assert (post.id, post.text) == (created.data["id"], "@alice we are on it")
    assert post.in_reply_to_id == mention.id
    assert post.in_reply_to_user_id == emulator.user("alice").id
    assert post.conversation_id == mention.id
    assert emulator.calls("POST", "/2/tweets")[0].body == {
        "text": "@alice we are on it", "reply": {"in_reply_to_tweet_id": mention.id},
    }

    with pytest.raises(Forbidden):  # X refuses replies to posts it cannot find
        await client.create_tweet(text="into the void", in_reply_to_tweet_id="123")
    with pytest.raises(Forbidden) as caught:  # and the same text twice
        await client.create_tweet(text="@alice we are on it", in_reply_to_tweet_id=mention.id)
    assert "duplicate" in str(caught.value)


async def test_post_length_limit(emulator: XEmulator, session: XApiSession) -> None:
    client = bearer_client(emulator, session)
    with pytest.raises(BadRequest) as caught:
        await client.create_tweet(text="a" * 281, user_auth=False)
    assert "too long" in str(caught.value)
    assert caught.value.response.status == 400
    assert emulator.posts_by_bot() == []
    await client.create_tweet(text="b" * 280, user_auth=False)
    with pytest.raises(BadRequest):  # CJK weighs 2 on X
        await client.create_tweet(text="字" * 141, user_auth=False)
    assert post_length("字" * 140) == 280
    assert post_length("see https://example.com/a/very/long/path/that/is/long") == 4 + 23
    assert len(emulator.posts_by_bot()) == 1


# --- rate limits and faults ----------------------------------------------------------------


async def test_rate_limit_headers_429_and_reset(
    emulator: XEmulator, session: XApiSession, clock: FakeClock
) -> None:
    emulator.set_rate_limit(MENTIONS, 2)
    start = int(clock.now().timestamp())
    raw = bearer_client(emulator, session, return_type=aiohttp.ClientResponse)
    remaining = []
    for _ in range(2):
        response = await raw.get_users_mentions(emulator.bot.id)
        remaining.append(response.headers["x-rate-limit-remaining"])
        assert response.headers["x-rate-limit-limit"] == "2"
        assert response.headers["x-rate-limit-reset"] == str(start + 900)
    assert remaining == ["1", "0"]

    client = bearer_client(emulator, session)
    with pytest.raises(TooManyRequests) as caught:
        await client.get_users_mentions(emulator.bot.id)
    assert caught.value.reset_time == start + 900 == emulator.rate_limit_reset(MENTIONS)
    assert caught.value.response.headers["x-rate-limit-remaining"] == "0"
    assert emulator.requests[-1].status == 429
    assert (await client.get_me(user_auth=False)).data is not None  # other endpoints keep their own budget

    clock.advance(899)
    with pytest.raises(TooManyRequests):
        await client.get_users_mentions(emulator.bot.id)
    clock.advance(1)
    fresh = await raw.get_users_mentions(emulator.bot.id)
    assert fresh.headers["x-rate-limit-remaining"] == "1"
    assert fresh.headers["x-rate-limit-reset"] == str(start + 1800)


async def test_429_body_has_x_shape(emulator: XEmulator, session: XApiSession) -> None:
    emulator.set_rate_limit("GET /2/users/me", 0)
    async with session.get(
        "https://api.twitter.com/2/users/me", headers={"Authorization": f"Bearer {emulator.bearer_token}"}
    ) as response:
        assert response.status == 429
        assert await response.json() == {
            "title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429,
        }


async def test_injected_faults(emulator: XEmulator, session: XApiSession, clock: FakeClock) -> None:
    client = bearer_client(emulator, session)
    emulator.inject("/2/users/:id/mentions", status=503, times=1)
    with pytest.raises(TwitterServerError) as caught:
        await client.get_users_mentions(emulator.bot.id)
    assert caught.value.response.status == 503
    assert (await client.get_users_mentions(emulator.bot.id)).meta == {"result_count": 0}

    emulator.inject("/2/tweets", status=500, times=2, method="POST")
    for _ in range(2):
        with pytest.raises(TwitterServerError):
            await client.create_tweet(text="retry me", user_auth=False)
    await client.create_tweet(text="retry me", user_auth=False)
    assert [p.text for p in emulator.posts_by_bot()] == ["retry me"]

    emulator.inject("/2/dm_events", status=429, reset_in=60)
    with pytest.raises(TooManyRequests) as limited:
        await client.get_direct_message_events(user_auth=False)
    assert limited.value.reset_time == int(clock.now().timestamp()) + 60


async def test_slow_endpoint_triggers_client_timeout(emulator: XEmulator) -> None:
    async with XApiSession(emulator.base_url, timeout=aiohttp.ClientTimeout(total=0.2)) as hasty:
        client = bearer_client(emulator, hasty)
        emulator.slow("/2/users/me", 5, times=1)
        began = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await client.get_me(user_auth=False)
        assert time.monotonic() - began < 2
        assert (await client.get_me(user_auth=False)).data is not None

        emulator.slow("/2/tweets", 0.5, times=1)  # the client gave up first: X never processes it
        with pytest.raises(asyncio.TimeoutError):
            await client.create_tweet(text="lost", user_auth=False)
        emulator.slow("/2/tweets", 5, times=1, after=True)  # processed, only the answer is lost
        with pytest.raises(asyncio.TimeoutError):
            await client.create_tweet(text="ghost", user_auth=False)
    await asyncio.sleep(0.6)  # past the first delay: the abandoned request must not post late
    assert [p.text for p in emulator.posts_by_bot()] == ["ghost"]
    assert [r.status for r in emulator.calls("POST", "/2/tweets")] == [None, None]


# --- usage ---------------------------------------------------------------------------------


async def test_usage_counts_reads_per_resource_and_writes_per_request(
    emulator: XEmulator, session: XApiSession, clock: FakeClock
) -> None:
    client = bearer_client(emulator, session)
    for i in range(4):
        emulator.post_mention("alice" if i % 2 else "bob", f"m{i}")
    emulator.send_dm("carol", "dm")
    await client.get_users_mentions(emulator.bot.id, expansions="author_id")
    await client.get_users_mentions(emulator.bot.id, expansions="author_id")
    await client.get_direct_message_events(user_auth=False)
    usage = emulator.usage
    assert (usage.posts_read, usage.users_read, usage.dm_events_read) == (8, 4, 1)
    assert (usage.billed_posts_read, usage.billed_users_read) == (4, 2)  # same resources, same UTC day

    clock.advance(86_400)
    await client.get_users_mentions(emulator.bot.id)
    assert (usage.posts_read, usage.billed_posts_read) == (12, 8)

    await client.create_tweet(text="hello", user_auth=False)
    await client.create_direct_message(participant_id=emulator.user("carol").id, text="hi", user_auth=False)
    with pytest.raises(BadRequest):
        await client.create_tweet(text="x" * 300, user_auth=False)
    assert (usage.posts_created, usage.dms_created, usage.writes) == (1, 1, 2)


# --- Account Activity webhooks -------------------------------------------------------------


async def test_webhook_crc_and_signed_delivery(emulator: XEmulator) -> None:
    secret = emulator.consumer_secret.encode()
    received: list[dict[str, Any]] = []

    def sign(data: bytes) -> str:
        return "sha256=" + base64.b64encode(hmac.new(secret, data, hashlib.sha256).digest()).decode()

    async def crc(request: web.Request) -> web.Response:
        return web.json_response({"response_token": sign(request.query["crc_token"].encode())})

    async def event(request: web.Request) -> web.Response:
        body = await request.read()
        if not hmac.compare_digest(request.headers.get("x-twitter-webhooks-signature", ""), sign(body)):
            return web.Response(status=401)
        received.append(json.loads(body))
        return web.Response(status=200)

    async def wrong_crc(request: web.Request) -> web.Response:
        return web.json_response({"response_token": "sha256=nope"})

    app = web.Application()
    app.router.add_get("/hook", crc)
    app.router.add_post("/hook", event)
    app.router.add_get("/bad", wrong_crc)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}/hook"
    try:
        assert await emulator.check_crc(url)
        assert not await emulator.check_crc(f"http://{host}:{port}/bad")
        assert crc_response(emulator.consumer_secret, "abc") == {"response_token": sign(b"abc")}
        assert webhook_signature(emulator.consumer_secret, b"{}") == sign(b"{}")

        mention = emulator.post_mention("alice", "via webhook")
        payload = emulator.activity_payload(mention)
        assert await emulator.deliver_activity(url, payload) == (200, "")
        assert (await emulator.deliver_activity(url, payload, sign_with="wrong-secret"))[0] == 401
        assert (await emulator.deliver_activity(url, payload, signature="sha256=AAAA"))[0] == 401
        assert (await emulator.deliver_activity(url, payload, signed=False))[0] == 401
        dm = emulator.activity_payload(emulator.send_dm("bob", "private"))
        assert (await emulator.deliver_activity(url, dm))[0] == 200
    finally:
        await runner.cleanup()

    tweet = received[0]["tweet_create_events"][0]
    assert (received[0]["for_user_id"], tweet["id_str"]) == (emulator.bot.id, mention.id)
    assert tweet["user"]["screen_name"] == "alice"
    assert tweet["entities"]["user_mentions"][0]["screen_name"] == "saluran_help"
    message = received[1]["direct_message_events"][0]
    assert message["message_create"]["message_data"]["text"] == "private"
    assert message["message_create"]["sender_id"] == emulator.user("bob").id
    assert len(received) == 2
