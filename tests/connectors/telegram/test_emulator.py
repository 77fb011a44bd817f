"""The Telegram emulator against the real python-telegram-bot: polling, sending, markup,
flood limits, faults, buttons, forum topics, uploads, webhooks and the user-side test API."""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, ReplyParameters, Update
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters
from telegram.helpers import escape_markdown
from telegram.request import HTTPXRequest

from connectors.telegram.emulator import FloodLimits, TelegramEmulator
from connectors.telegram.emulator_markup import format_text
from inbox.clock import FakeClock

CUSTOMER_TEXT = "Hi <b>team</b> & co: *_[]()~`>#+-=|{}.! @everyone 😀 café"


@pytest.fixture(autouse=True)
def _timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns when RetryAfter.retry_after is read as an int; opt in to timedelta values
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    """A running emulator with real time and default flood limits."""
    async with TelegramEmulator() as emulator:
        yield emulator


def make_bot(emu: TelegramEmulator, token: str | None = None, read_timeout: float = 5.0) -> Bot:
    """A real PTB Bot pointed at the emulator."""
    return Bot(token or emu.token, base_url=emu.base_url, base_file_url=emu.base_file_url,
               request=HTTPXRequest(read_timeout=read_timeout))


@pytest.fixture
async def bot(emu: TelegramEmulator) -> AsyncIterator[Bot]:
    """An initialised PTB Bot for the emulator's default bot."""
    async with make_bot(emu) as tg_bot:
        yield tg_bot


def make_app(emu: TelegramEmulator) -> Application[Any, Any, Any, Any, Any, Any]:
    """A PTB Application built the way the connector will build it."""
    return (Application.builder().token(emu.token).base_url(f"{emu.url}/bot")
            .base_file_url(f"{emu.url}/file/bot").build())


@contextlib.asynccontextmanager
async def polling(app: Application[Any, Any, Any, Any, Any, Any], long_poll: int = 10) -> AsyncIterator[None]:
    """Run the application with long polling for the duration of the block."""
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(timeout=long_poll, poll_interval=0)
        await app.start()
        try:
            yield
        finally:
            await app.updater.stop()
            await app.stop()


async def raw_call(emu: TelegramEmulator, method: str, *, token: str | None = None,
                   **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """Call the Bot API over plain HTTP and return the status and JSON body."""
    async with aiohttp.ClientSession() as session:
        verb = kwargs.pop("verb", "POST")
        async with session.request(verb, f"{emu.base_url}{token or emu.token}/{method}", **kwargs) as resp:
            return resp.status, await resp.json()


# --- basics ------------------------------------------------------------------------------------


async def test_get_me_describes_the_bot(emu: TelegramEmulator, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == emu.bot.id and me.is_bot and me.username == "saluran_bot"
    assert me.can_read_all_group_messages is False  # privacy mode is on by default
    assert emu.calls("getMe")[0].status == 200


async def test_bad_token_and_unknown_method(emu: TelegramEmulator) -> None:
    with pytest.raises(InvalidToken):
        async with make_bot(emu, token="123456:" + "x" * 35):
            pass
    status, body = await raw_call(emu, "getMe", token="123456:" + "x" * 35)
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    status, body = await raw_call(emu, "fooBar")
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}


async def test_bodies_may_be_json_form_or_query_string(emu: TelegramEmulator) -> None:
    ana = emu.user("Ana")
    emu.user_dm(ana, "hi")
    status, body = await raw_call(emu, "sendMessage", json={"chat_id": ana.id, "text": "json",
                                                            "reply_markup": {"inline_keyboard": []}})
    assert status == 200 and body["result"]["text"] == "json"
    status, body = await raw_call(emu, "sendMessage", data={"chat_id": str(ana.id), "text": "form"})
    assert status == 200 and body["result"]["chat"]["id"] == ana.id
    status, body = await raw_call(emu, "getMe", verb="GET")
    assert status == 200 and body["result"]["id"] == emu.bot.id
    status, body = await raw_call(emu, "sendmessage", verb="GET", params={"chat_id": ana.id, "text": "query"})
    assert status == 200 and body["result"]["text"] == "query"  # method names are case-insensitive
    status, body = await raw_call(emu, "sendMessage", json={"chat_id": ana.id})
    assert status == 400 and body == {"ok": False, "error_code": 400,
                                      "description": "Bad Request: message text is empty"}
    assert [s.plain_text for s in emu.sent(ana)] == ["json", "form", "query"]


# --- polling -----------------------------------------------------------------------------------


async def test_a_dm_reaches_a_message_handler_through_polling_promptly(emu: TelegramEmulator) -> None:
    app = make_app(emu)
    received: asyncio.Queue[Update] = asyncio.Queue()

    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await received.put(update)
        assert update.effective_chat is not None and update.message is not None
        await context.bot.send_message(update.effective_chat.id, f"echo: {update.message.text}")

    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
    ana = emu.user("Ana", username="ana_k", last_name="K")
    async with polling(app, long_poll=10):
        await emu.wait_for_request("getUpdates", count=1)
        await asyncio.sleep(0.05)  # the long poll is now waiting
        started = time.monotonic()
        sent = emu.user_dm(ana, "Where is my order? 😀")
        update = await asyncio.wait_for(received.get(), 5)
        assert time.monotonic() - started < 2  # the 10 s long poll returned as soon as the DM arrived
        echoes = await emu.wait_for_sent(1, ana)
    assert update.message is not None and update.message.from_user is not None
    assert update.message.text == "Where is my order? 😀"
    assert update.message.message_id == sent["message_id"]
    assert update.message.chat.type == "private" and update.message.chat.id == ana.id
    assert update.message.from_user.username == "ana_k"
    assert echoes[0].plain_text == "echo: Where is my order? 😀"
    assert emu.pending_updates() == []  # PTB confirmed the update with its next offset


async def test_offset_confirms_and_a_second_poll_ends_the_first(emu: TelegramEmulator, bot: Bot) -> None:
    ana = emu.user("Ana")
    for text in ("one", "two", "three"):
        emu.user_dm(ana, text)
    first = await bot.get_updates(timeout=0, limit=2)
    assert [u.message.text for u in first if u.message] == ["one", "two"]
    assert first[1].update_id == first[0].update_id + 1
    rest = await bot.get_updates(offset=first[-1].update_id + 1, timeout=0)
    assert [u.message.text for u in rest if u.message] == ["three"]
    started = time.monotonic()
    assert await bot.get_updates(offset=rest[-1].update_id + 1, timeout=timedelta(seconds=0.3)) == ()
    assert 0.25 < time.monotonic() - started < 2  # the long poll respected its timeout

    async with make_bot(emu) as twin:
        polls = len(emu.calls("getUpdates"))
        older = asyncio.create_task(bot.get_updates(timeout=5))
        await emu.wait_for_request("getUpdates", count=polls + 1)
        await asyncio.sleep(0.05)
        newer = asyncio.create_task(twin.get_updates(timeout=timedelta(seconds=0.2)))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await older
        assert await newer == ()


# --- sending and markup ------------------------------------------------------------------------


async def test_html_reply_with_escaped_customer_text_round_trips(emu: TelegramEmulator, bot: Bot) -> None:
    ana = emu.user("Ana")
    emu.user_dm(ana, CUSTOMER_TEXT)
    [update] = await bot.get_updates(timeout=0)
    assert update.message is not None and update.message.text == CUSTOMER_TEXT
    mention = [e for e in update.message.entities if e.type == "mention"]
    assert mention and update.message.parse_entity(mention[0]) == "@everyone"

    raw = f"<b>Customer wrote:</b>\n{html.escape(CUSTOMER_TEXT)}"
    message = await bot.send_message(ana.id, raw, parse_mode="HTML",
                                     reply_parameters=ReplyParameters(update.message.message_id))
    record = emu.last_sent(ana)
    assert record.text == raw
    assert record.plain_text == message.text == "Customer wrote:\n" + CUSTOMER_TEXT
    assert record.entities[0] == {"type": "bold", "offset": 0, "length": len("Customer wrote:")}
    assert record.reply_to == update.message.message_id
    assert message.reply_to_message is not None and message.reply_to_message.text == CUSTOMER_TEXT

    markdown = await bot.send_message(ana.id, "*Copy:* " + escape_markdown(CUSTOMER_TEXT, version=2),
                                      parse_mode="MarkdownV2")
    assert markdown.text == "Copy: " + CUSTOMER_TEXT
    assert markdown.entities[0].type == "bold"


@pytest.mark.parametrize(("mode", "text", "reason"), [
    ("HTML", "<b>unclosed", "Can't find end tag corresponding to start tag"),
    ("HTML", "a < b", 'Unsupported start tag ""'),
    ("HTML", "<b>x</i>", "Unmatched end tag"),
    ("HTML", "<blink>x</blink>", 'Unsupported start tag "blink"'),
    ("HTML", "AT&T", 'Character "&" must be escaped'),
    ("MarkdownV2", "Order 1.5 (paid)", "Character '.' is reserved"),
    ("MarkdownV2", "*bold", "Can't find end of Bold entity"),
])
async def test_invalid_markup_is_refused(emu: TelegramEmulator, bot: Bot, mode: str, text: str,
                                         reason: str) -> None:
    ana = emu.user("Ana")
    emu.user_dm(ana, "hi")
    with pytest.raises(BadRequest) as caught:
        await bot.send_message(ana.id, text, parse_mode=mode)
    assert "can't parse entities" in str(caught.value).lower()
    assert reason.lower() in str(caught.value).lower()
    assert emu.sent() == []
    response = emu.requests[-1].response
    assert response is not None and response["ok"] is False and response["error_code"] == 400
    assert response["description"].startswith("Bad Request: can't parse entities: ")


async def test_text_length_counts_after_parsing(emu: TelegramEmulator, bot: Bot) -> None:
    ana = emu.user("Ana")
    emu.user_dm(ana, "hi")
    await bot.send_message(ana.id, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    await bot.send_message(ana.id, "😀" * 2048)  # 4,096 UTF-16 code units
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(ana.id, "a" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(ana.id, "  \n ")


async def test_flood_limits_answer_retry_after(clock: FakeClock) -> None:
    async with TelegramEmulator(clock=clock) as emu, make_bot(emu) as bot:
        ana = emu.user("Ana")
        emu.user_dm(ana, "hi")
        for n in range(3):  # the burst
            await bot.send_message(ana.id, f"burst {n}")
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(ana.id, "one too many")
        assert caught.value.retry_after == timedelta(seconds=1)
        clock.advance(1)
        await bot.send_message(ana.id, "after waiting")

        room = emu.supergroup("Customers", bot_status="administrator")
        for n in range(20):
            await bot.send_message(room.id, f"group {n}")
            clock.advance(1)
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(room.id, "21st in a minute")
        assert caught.value.retry_after == timedelta(seconds=40)
        assert emu.requests[-1].response == {
            "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 40",
            "parameters": {"retry_after": 40}}
        clock.advance(40)
        await bot.send_message(room.id, "allowed again")


async def test_overall_limit_and_disabled_limits(clock: FakeClock) -> None:
    limits = FloodLimits(overall_per_second=5)
    async with TelegramEmulator(clock=clock, flood_limits=limits) as emu, make_bot(emu) as bot:
        users = [emu.user(f"U{n}") for n in range(6)]
        for user in users:
            emu.user_dm(user, "hi")
        for user in users[:5]:
            await bot.send_message(user.id, "hello")
        with pytest.raises(RetryAfter):
            await bot.send_message(users[5].id, "hello")
    async with TelegramEmulator(clock=clock, flood_limits=FloodLimits(enabled=False)) as emu, \
            make_bot(emu) as bot:
        ana = emu.user("Ana")
        emu.user_dm(ana, "hi")
        for n in range(10):
            await bot.send_message(ana.id, str(n))


async def test_injected_faults(emu: TelegramEmulator) -> None:
    ana = emu.user("Ana")
    emu.user_dm(ana, "hi")
    async with make_bot(emu, read_timeout=0.3) as bot:
        emu.inject("sendMessage", 500)
        with pytest.raises(NetworkError, match="Internal Server Error"):
            await bot.send_message(ana.id, "x")
        emu.inject("sendMessage", 502, times=2)
        for _ in range(2):
            with pytest.raises(NetworkError, match="Bad Gateway"):
                await bot.send_message(ana.id, "x")
        emu.inject("*", 429, retry_after=7)
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(ana.id, "x")
        assert caught.value.retry_after == timedelta(seconds=7)
        emu.slow("sendMessage", 1.0, times=1)
        with pytest.raises(TimedOut):
            await bot.send_message(ana.id, "slow")
        emu.drop("sendMessage")
        with pytest.raises(NetworkError):
            await bot.send_message(ana.id, "dropped before")
        emu.drop("sendMessage", after_processing=True)
        with pytest.raises(NetworkError):
            await bot.send_message(ana.id, "dropped after")
        assert (await bot.send_message(ana.id, "fine")).text == "fine"
    # the slow call was processed after the client gave up; the late drop was processed too
    assert [s.plain_text for s in emu.sent(ana)] == ["slow", "dropped after", "fine"]
    assert [r.status for r in emu.calls("sendMessage")] == [500, 502, 502, 429, 200, 0, 0, 200]


# --- buttons, topics, files -----------------------------------------------------------------------


async def test_button_press_runs_the_callback_handler(emu: TelegramEmulator) -> None:
    app = make_app(emu)

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer(f"Assigned ({query.data})")
        await query.edit_message_text("Assigned to Ana")

    app.add_handler(CallbackQueryHandler(on_button))
    team = emu.supergroup("Team", is_forum=True, bot_status="administrator")
    carol = emu.user("Carol")
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Assign to me", callback_data="assign:42"),
                                      InlineKeyboardButton("Resolve", callback_data="resolve:42")]])
    async with polling(app, long_poll=5):
        card = await app.bot.send_message(team.id, "New DM from Ana", reply_markup=keyboard)
        assert emu.last_sent(team).buttons[0]["callback_data"] == "assign:42"
        query_id = emu.press_button(team, card.message_id, carol, "assign:42")
        await emu.wait_for(lambda: bool(emu.callback_answers) and bool(emu.last_sent(team).edits))
    answer = emu.callback_answers[0]
    assert (answer.callback_query_id, answer.user_id, answer.data, answer.text) == (
        query_id, carol.id, "assign:42", "Assigned (assign:42)")
    record = emu.last_sent(team)
    assert record.plain_text == "Assigned to Ana" and record.reply_markup is None  # the edit dropped it
    assert record.edits[0]["text"] == "New DM from Ana"
    with pytest.raises(ValueError, match="no button"):
        emu.press_button(team, card.message_id, carol, "nope")

    async with make_bot(emu) as bot:
        too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            await bot.send_message(team.id, "card", reply_markup=too_long)
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_callback_query(query_id)  # already answered
        await bot.edit_message_reply_markup(team.id, card.message_id, reply_markup=keyboard)
        restored = emu.message(team, card.message_id)["reply_markup"]["inline_keyboard"]
        assert restored[0][1]["text"] == "Resolve"


async def test_forum_topics(emu: TelegramEmulator, bot: Bot) -> None:
    team = emu.supergroup("Team", is_forum=True, bot_status="administrator")
    plain = emu.supergroup("Plain", bot_status="administrator")
    bob = emu.user("Bob")
    topic = await bot.create_forum_topic(team.id, "Ana · order 1234")
    assert topic.name == "Ana · order 1234" and topic.icon_color == 7322096
    assert emu.topics(team)[0]["message_thread_id"] == topic.message_thread_id

    thread = topic.message_thread_id
    message = await bot.send_message(team.id, "Conversation opened", message_thread_id=thread)
    assert message.message_thread_id == topic.message_thread_id and message.is_topic_message
    assert emu.last_sent(team).thread_id == topic.message_thread_id
    assert emu.last_sent(team).reply_to is None  # the implicit reply to the topic root is not a reply

    note = emu.group_message(team, bob, "internal note", message_thread_id=topic.message_thread_id)
    updates = await bot.get_updates(timeout=0)
    got = [u.message for u in updates if u.message and u.message.text == "internal note"]
    assert got and got[0].message_thread_id == topic.message_thread_id and got[0].is_topic_message
    assert got[0].message_id == note["message_id"]
    # as on Telegram, a message in a topic quotes the topic's creation message
    assert got[0].reply_to_message is not None and got[0].reply_to_message.forum_topic_created is not None

    with pytest.raises(BadRequest, match=r"(?i)the chat is not a forum"):
        await bot.create_forum_topic(plain.id, "x")
    with pytest.raises(BadRequest, match=r"(?i)message thread not found"):
        await bot.send_message(team.id, "x", message_thread_id=999)
    emu.set_bot_status(team, "member")
    with pytest.raises(BadRequest, match=r"(?i)not enough rights"):
        await bot.create_forum_topic(team.id, "y")


async def test_send_document_and_photo_multipart(emu: TelegramEmulator, bot: Bot) -> None:
    ana = emu.user("Ana")
    emu.user_dm(ana, "hi")
    content = b"order,total\n1234,9.99\n"
    sent = await bot.send_document(ana.id, InputFile(content, filename="orders.csv"),
                                   caption="<i>your</i> export", parse_mode="HTML")
    assert sent.document is not None and sent.document.file_name == "orders.csv"
    assert sent.caption == "your export" and sent.caption_entities[0].type == "italic"
    request = emu.calls("sendDocument")[-1]
    assert request.content_type == "multipart/form-data"
    assert request.params["document"] == {"filename": "orders.csv", "content_type": "text/csv",
                                          "size": len(content)}
    record = emu.last_sent(ana)
    assert record.kind == "document" and record.file is not None and record.file.data == content

    again = await bot.send_document(ana.id, sent.document.file_id)  # re-send by file_id
    assert again.document is not None and again.document.file_unique_id == sent.document.file_unique_id
    file = await bot.get_file(sent.document.file_id)
    assert bytes(await file.download_as_bytearray()) == content

    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + (640).to_bytes(4, "big")
    png += (480).to_bytes(4, "big")
    photo = await bot.send_photo(ana.id, png + b"\x08\x06\x00\x00\x00", caption="receipt")
    assert photo.photo[-1].width == 640 and photo.photo[-1].height == 480
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
        await bot.send_photo(ana.id, "no-such-file-id")


# --- webhooks ---------------------------------------------------------------------------------------


Delivery = tuple[dict[str, str], dict[str, Any]]


@contextlib.asynccontextmanager
async def receiver(statuses: list[int]) -> AsyncIterator[tuple[str, list[Delivery]]]:
    """A local webhook endpoint answering with ``statuses`` in turn (then 200); yields its URL and
    what it received."""
    got: list[Delivery] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.json()))
        return web.Response(status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/telegram", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/telegram", got
    finally:
        await runner.cleanup()


async def test_webhook_mode(emu: TelegramEmulator, bot: Bot) -> None:
    ana = emu.user("Ana")
    async with receiver([500]) as (url, got):
        assert await bot.set_webhook(url, secret_token="s3cret-token")
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates(timeout=0)
        message = emu.user_dm(ana, "via webhook")
        await emu.wait_for(lambda: len(got) >= 2)  # the first attempt got a 500 and was retried
        headers, update = got[-1]
        assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret-token"
        assert update["message"]["message_id"] == message["message_id"]
        assert got[0][1] == update
        await emu.wait_for(lambda: not emu.pending_updates())
        info = await bot.get_webhook_info()
        assert info.url == url and info.pending_update_count == 0
        assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        assert await bot.delete_webhook()
    emu.user_dm(ana, "polled again")
    updates = await bot.get_updates(timeout=0)
    assert [u.message.text for u in updates if u.message] == ["polled again"]
    assert (await bot.get_webhook_info()).url == ""


# --- groups, channels and the user-side API ----------------------------------------------------


async def test_privacy_mode_mentions_replies_and_entities(emu: TelegramEmulator, bot: Bot) -> None:
    room = emu.supergroup("Public", username="public_room")
    ana, ben = emu.user("Ana", username="ana_k"), emu.user("Ben")
    emu.group_message(room, ana, "just chatting")  # privacy mode: not for the bot
    mention = emu.group_message(room, ana, "😀 @saluran_bot where is my order?")
    command = emu.group_message(room, ben, "/status@saluran_bot 1234")
    updates = await bot.get_updates(timeout=0)
    texts = [u.message.text for u in updates if u.message]
    assert texts == [mention["text"], command["text"]]
    entity = mention["entities"][0]
    assert entity == {"type": "mention", "offset": 3, "length": 12}  # the emoji counts as two UTF-16 units
    assert command["entities"][0] == {"type": "bot_command", "offset": 0,
                                      "length": len("/status@saluran_bot")}
    first = updates[0].message
    assert first is not None and first.parse_entity(first.entities[0]) == "@saluran_bot"

    answer = await bot.send_message(room.id, "Let me check",
                                    reply_parameters=ReplyParameters(mention["message_id"]))
    follow_up = emu.group_message(room, ana, "thanks", reply_to=answer.message_id)
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert [u.message.message_id for u in updates if u.message] == [follow_up["message_id"]]
    assert follow_up["message_thread_id"] == mention["message_id"]  # replies form a thread in supergroups
    assert follow_up["reply_to_message"]["from"]["id"] == emu.bot.id


async def test_channel_post_discussion_and_comments(emu: TelegramEmulator, bot: Bot) -> None:
    discussion = emu.supergroup("Acme chat", bot_status="administrator")
    channel = emu.channel("Acme news", username="acme_news", discussion=discussion)
    ana = emu.user("Ana")
    post = emu.channel_post(channel, "We ship on Monday", author_signature="Rina")
    forward = emu.discussion_copy(channel, post["message_id"])
    comment = emu.comment(channel, post["message_id"], ana, "Will it reach Surabaya?")
    updates = await bot.get_updates(timeout=0)
    kinds = [("channel_post" if u.channel_post else "message") for u in updates]
    assert kinds == ["channel_post", "message", "message"]
    auto = updates[1].message
    assert auto is not None and auto.is_automatic_forward and auto.sender_chat is not None
    assert auto.sender_chat.id == channel.id and auto.forward_origin is not None
    assert auto.forward_origin.chat.id == channel.id  # type: ignore[attr-defined]
    said = updates[2].message
    assert said is not None and said.reply_to_message is not None
    assert said.reply_to_message.message_id == forward["message_id"]
    assert said.message_thread_id == forward["message_id"] == comment["message_thread_id"]
    chat = await bot.get_chat(channel.id)
    assert chat.linked_chat_id == discussion.id

    emu.edit_message(channel, post["message_id"], "We ship on Tuesday")
    edits = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert edits[0].edited_channel_post is not None
    assert edits[0].edited_channel_post.text == "We ship on Tuesday"
    assert edits[1].edited_message is not None and edits[1].edited_message.edit_date is not None


async def test_media_edits_membership_and_chat_methods(emu: TelegramEmulator, bot: Bot) -> None:
    ana, owner = emu.user("Ana"), emu.user("Owner")
    first = emu.user_dm(ana, "hello")
    emu.edit_message(ana, first["message_id"], "hello again")
    emu.send_photo(ana, ana, caption="my receipt")
    emu.send_document(ana, ana, file_name="invoice.pdf")
    emu.send_sticker(ana, ana)
    room = emu.group("Shop", members=[owner], bot_status="left")
    emu.add_bot_to_group(room, by=owner, status="administrator")
    updates = await bot.get_updates(timeout=0)
    assert updates[1].edited_message is not None and updates[1].edited_message.text == "hello again"
    assert updates[2].message is not None and updates[2].message.photo
    assert updates[2].message.caption == "my receipt"
    assert updates[3].message is not None and updates[3].message.document is not None
    assert updates[3].message.document.mime_type == "application/pdf"
    assert updates[4].message is not None and updates[4].message.sticker is not None
    joined = updates[5].my_chat_member
    assert joined is not None and joined.new_chat_member.status == "administrator"
    assert joined.old_chat_member.status == "left" and joined.from_user.id == owner.id
    assert updates[6].message is not None and updates[6].message.new_chat_members[0].id == emu.bot.id

    member = await bot.get_chat_member(room.id, owner.id)
    assert member.status == "creator"
    assert (await bot.get_chat_member(room.id, emu.bot.id)).status == "administrator"
    assert (await bot.get_chat(ana.id)).first_name == "Ana"
    reply = await bot.send_message(ana.id, "Got it")
    assert await bot.delete_message(ana.id, reply.message_id)
    assert emu.last_sent(ana).deleted
    assert await bot.set_my_commands([("r", "Reply to the customer"), ("open", "Open a topic")])
    assert [c.command for c in await bot.get_my_commands()] == ["r", "open"]
    assert emu.commands()[0] == {"command": "r", "description": "Reply to the customer"}
    assert await bot.send_chat_action(ana.id, "typing")
    assert await bot.leave_chat(room.id)
    with pytest.raises(Forbidden, match=r"(?i)not a member"):
        await bot.send_message(room.id, "still here?")
    stranger = emu.user("Stranger")
    with pytest.raises(Forbidden, match=r"(?i)can't initiate conversation"):
        await bot.send_message(stranger.id, "hi")
    emu.block_bot(ana)
    with pytest.raises(Forbidden, match=r"(?i)blocked by the user"):
        await bot.send_message(ana.id, "hi")


async def test_two_bots_share_one_world(emu: TelegramEmulator, bot: Bot) -> None:
    team_bot = emu.add_bot(username="saluran_team_bot", first_name="Saluran team")
    room = emu.supergroup("Both", bots=[emu.bot, team_bot])
    ana = emu.user("Ana")
    emu.group_message(room, ana, "@saluran_team_bot please help")
    async with make_bot(emu, token=team_bot.token) as second:
        assert (await second.get_me()).username == "saluran_team_bot"
        updates = await second.get_updates(timeout=0)
        assert [u.message.text for u in updates if u.message] == ["@saluran_team_bot please help"]
        await second.send_message(room.id, "on it")
    assert await bot.get_updates(timeout=0) == ()  # not for the first bot, and bots never see bots
    emu.user_dm(ana, "hello first bot")
    assert await bot.get_updates(timeout=0)
    # the DM went to the first bot only; the team bot has not confirmed its update yet
    pending = emu.pending_updates(bot=team_bot)
    assert [u["message"]["text"] for u in pending] == ["@saluran_team_bot please help"]
    assert [s.plain_text for s in emu.sent(room, bot=team_bot)] == ["on it"]


@pytest.mark.parametrize(("mode", "text", "plain", "entities"), [
    ("HTML", '<pre><code class="language-python">print(1)</code></pre>', "print(1)",
     [{"type": "pre", "offset": 0, "length": 8, "language": "python"}]),
    ("HTML", '<a href="https://example.com/a?b=1&amp;c=2">link</a> <code>x</code>', "link x",
     [{"type": "text_link", "offset": 0, "length": 4, "url": "https://example.com/a?b=1&c=2"},
      {"type": "code", "offset": 5, "length": 1}]),
    ("HTML", "<blockquote expandable>quoted</blockquote>&#128512;&#x1F600;&quot;", "quoted😀😀\"",
     [{"type": "expandable_blockquote", "offset": 0, "length": 6}]),
    ("HTML", '<tg-spoiler>s</tg-spoiler><span class="tg-spoiler">t</span><u>u</u><s>v</s>', "stuv",
     [{"type": "spoiler", "offset": 0, "length": 1}, {"type": "spoiler", "offset": 1, "length": 1},
      {"type": "underline", "offset": 2, "length": 1}, {"type": "strikethrough", "offset": 3, "length": 1}]),
    ("MarkdownV2", "[docs](https://example.com/x\\)y) ||spoiler|| ~gone~", "docs spoiler gone",
     [{"type": "text_link", "offset": 0, "length": 4, "url": "https://example.com/x)y"},
      {"type": "spoiler", "offset": 5, "length": 7}, {"type": "strikethrough", "offset": 13, "length": 4}]),
    ("MarkdownV2", ">line one\n>line two\nafter", "line one\nline two\nafter",
     [{"type": "blockquote", "offset": 0, "length": 17}]),
    ("MarkdownV2", "```js\nlet a = 1;```", "let a = 1;",
     [{"type": "pre", "offset": 0, "length": 10, "language": "js"}]),
    (None, "  \n padded text \n\n", "padded text", []),
    (None, "mail me: ana@example.com or see https://example.com/x. #help", None, None),
])
def test_formatting_matches_telegram(mode: str | None, text: str, plain: str | None,
                                     entities: list[dict[str, Any]] | None) -> None:
    formatted = format_text(text, mode)
    if plain is None:
        kinds = [(e["type"], formatted.text[e["offset"]:e["offset"] + e["length"]])
                 for e in formatted.entities]
        assert kinds == [("email", "ana@example.com"), ("url", "https://example.com/x"), ("hashtag", "#help")]
        return
    assert formatted.text == plain
    assert formatted.entities == entities
