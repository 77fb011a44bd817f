"""The real discord.py against the Discord emulator: login, gateway, messages, rate limits, commands, buttons,
threads and reconnects; plus the raw gateway protocol and HTTP details discord.py depends on."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from connectors.discord.emulator import DiscordEmulator
from connectors.discord.emulator_gateway import ALL_INTENTS, MESSAGE_CONTENT

MESSAGES = "POST /channels/{channel_id}/messages"


async def eventually(predicate: Callable[[], Any], within: float = 5.0) -> Any:
    """Poll until ``predicate()`` is truthy (the client processes gateway events on its own schedule)."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


class RecordingClient(discord.Client):
    """A discord.py client that records what it receives."""

    def __init__(self, *, message_content: bool = True, members: bool = False) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        intents.members = members
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.seen: list[discord.Message] = []
        self.edits: list[discord.Message] = []
        self.threads: list[discord.Thread] = []
        self.events: list[str] = []

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Skip discord.py's 5-second pause before identifying again: the emulator has no identify limit."""

    async def on_ready(self) -> None:
        self.events.append("ready")

    async def on_resumed(self) -> None:
        self.events.append("resumed")

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)

    async def on_message_edit(self, before: discord.Message, after: discord.Message) -> None:
        self.edits.append(after)

    async def on_thread_create(self, thread: discord.Thread) -> None:
        self.threads.append(thread)

    def received(self, content: str) -> list[discord.Message]:
        return [m for m in self.seen if m.content == content]


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator() as emu:
        with emu.discord_py():
            yield emu


@contextlib.asynccontextmanager
async def running(client: RecordingClient, emu: DiscordEmulator) -> AsyncIterator[RecordingClient]:
    """Log in, connect, wait for on_ready; always close the client."""
    await client.login(emu.token)
    task = asyncio.create_task(client.connect())
    try:
        await eventually(lambda: "ready" in client.events or task.done())
        if task.done():
            task.result()
        yield client
    finally:
        await client.close()
        await task


@pytest.fixture
async def bot(emulator: DiscordEmulator) -> AsyncIterator[RecordingClient]:
    async with running(RecordingClient(), emulator) as client:
        yield client


# --- login and gateway -----------------------------------------------------------------------------


async def test_login_ready_and_guild_create(emulator: DiscordEmulator, bot: RecordingClient):
    assert bot.user is not None and bot.user.id == emulator.bot.id and bot.user.bot
    assert bot.application_id == emulator.application_id
    assert sorted(g.name for g in bot.guilds) == ["Saluran Community", "Saluran Team"]
    community = bot.get_guild(emulator.guild("Saluran Community").id)
    assert community is not None and community.me is not None
    assert {c.name for c in community.text_channels} == {"general", "support", "announcements"}
    assert community.get_role(emulator.guild("Saluran Community").role_named("Moderators").id) is not None

    assert [r.route for r in emulator.requests[:2]] == ["GET /users/@me", "GET /oauth2/applications/@me"]
    (session,) = emulator.gateway.sessions.values()
    assert session.intents & MESSAGE_CONTENT
    (connection,) = emulator.gateway.connections
    assert connection.compress, "discord.py asks for zlib-stream; the emulator must honour it"
    assert connection.heartbeats >= 1
    types = [e.type for e in emulator.dispatched]
    assert types[:3] == ["READY", "GUILD_CREATE", "GUILD_CREATE"]


async def test_receives_dms_and_guild_messages(emulator: DiscordEmulator, bot: RecordingClient):
    dana = emulator.user("dana")
    support = emulator.channel("support")
    dm = await emulator.user_dm(dana, "Hi, my parcel is late")
    post = await emulator.guild_message(support, dana, f"{emulator.bot.mention} can someone help?")
    await eventually(lambda: len(bot.seen) >= 2)

    by_id = {m.id: m for m in bot.seen}
    private, public = by_id[dm.id], by_id[post.id]
    assert isinstance(private.channel, discord.DMChannel) and private.guild is None
    assert private.author.id == dana.id and private.content == "Hi, my parcel is late"
    assert isinstance(public.channel, discord.TextChannel) and public.channel.name == "support"
    assert public.guild is not None and isinstance(public.author, discord.Member)
    assert bot.user in public.mentions

    reply = await emulator.guild_message(support, dana, "also this", reply_to=post)
    await eventually(lambda: reply.id in {m.id for m in bot.seen})
    received = next(m for m in bot.seen if m.id == reply.id)
    assert received.reference is not None and received.reference.message_id == post.id
    assert received.type is discord.MessageType.reply

    await emulator.user_edit(post, f"{emulator.bot.mention} can someone help? (edited)")
    await eventually(lambda: bot.edits)
    assert bot.edits[-1].content.endswith("(edited)")


async def test_without_message_content_intent_only_mentions_and_dms_have_content(emulator: DiscordEmulator):
    dana = emulator.user("dana")
    support = emulator.channel("support")
    async with running(RecordingClient(message_content=False), emulator) as client:
        plain = await emulator.guild_message(support, dana, "nobody mentioned the bot")
        mention = await emulator.guild_message(support, dana, f"{emulator.bot.mention} help")
        dm = await emulator.user_dm(dana, "in private")
        await eventually(lambda: len(client.seen) >= 3)
    contents = {m.id: m.content for m in client.seen}
    assert contents == {plain.id: "", mention.id: f"{emulator.bot.mention} help", dm.id: "in private"}


async def test_with_the_members_intent_discord_py_chunks_the_guilds(emulator: DiscordEmulator):
    community = emulator.guild("Saluran Community")
    async with running(RecordingClient(members=True), emulator) as client:
        guild = client.get_guild(community.id)
        assert guild is not None and guild.chunked
        assert {m.name for m in guild.members} == {"owner", "Saluran", "dana", "eli"}
    # GUILD_CREATE already carried every member of these small guilds: nothing left to chunk.
    assert "GUILD_MEMBERS_CHUNK" not in {e.type for e in emulator.dispatched}


# --- sending, mentions, limits ---------------------------------------------------------------------


async def test_sent_messages_are_recorded_with_their_reply_and_mentions(
    emulator: DiscordEmulator, bot: RecordingClient
):
    dana = emulator.user("dana")
    support = emulator.channel("support")
    customer = await emulator.guild_message(support, dana, "where is my order?")
    await eventually(lambda: bot.received("where is my order?"))
    incoming = bot.received("where is my order?")[0]

    answer = await incoming.reply("It ships today.", mention_author=False)

    (record,) = emulator.sent(support)
    assert record.id == answer.id and record.via == "rest"
    assert record.content == "It ships today." and record.reply_to == customer.id
    assert record.pings.none, "mention_author=False must not ping the customer"
    await eventually(lambda: bot.received("It ships today."))  # Discord echoes the bot's own message
    assert bot.received("It ships today.")[0].author == bot.user

    edited = await answer.edit(content="It ships tomorrow.")
    assert edited.edited_at is not None
    assert (record.content, record.history, record.edited_at is not None) == (
        "It ships tomorrow.",
        ["It ships today."],
        True,
    )


async def test_mass_mentions_are_computed_from_allowed_mentions(
    emulator: DiscordEmulator, bot: RecordingClient
):
    community = emulator.guild("Saluran Community")
    dana = emulator.user("dana")
    moderators = community.role_named("Moderators")
    channel = bot.get_channel(emulator.channel("support").id)
    assert isinstance(channel, discord.TextChannel)
    hostile = f"@everyone {moderators.mention} {dana.mention} read this"

    await channel.send(hostile)
    await channel.send(hostile, allowed_mentions=discord.AllowedMentions.none())
    await channel.send(
        hostile,
        allowed_mentions=discord.AllowedMentions(
            everyone=False, roles=False, users=[discord.Object(dana.id)]
        ),
    )

    default, silenced, only_user = emulator.sent(channel.id)
    assert default.pings.mass and default.pings.everyone and moderators.id in default.pings.roles
    assert silenced.pings.none and silenced.allowed_mentions == {"parse": []}
    assert not only_user.pings.mass and only_user.pings.users == {dana.id}


async def test_a_message_over_2000_characters_is_refused_like_discord(
    emulator: DiscordEmulator, bot: RecordingClient
):
    channel = bot.get_channel(emulator.channel("support").id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as caught:
        await channel.send("x" * 2001)
    assert caught.value.status == 400 and caught.value.code == 50035
    assert "content" in caught.value.text and emulator.sent(channel.id) == []
    await channel.send("x" * 2000)
    assert len(emulator.sent(channel.id)) == 1


async def test_a_429_is_waited_out_by_discord_py_and_the_message_delivered(
    emulator: DiscordEmulator, bot: RecordingClient
):
    channel = bot.get_channel(emulator.channel("support").id)
    assert isinstance(channel, discord.TextChannel)
    emulator.inject(MESSAGES, 429, retry_after=0.3)

    started = time.monotonic()
    await channel.send("after the wait")
    assert time.monotonic() - started >= 0.3
    assert [r.status for r in emulator.requests_to(MESSAGES)] == [429, 200]
    assert [m.content for m in emulator.sent(channel.id)] == ["after the wait"]


async def test_the_channel_bucket_paces_discord_py(emulator: DiscordEmulator, bot: RecordingClient):
    emulator.message_rate_limit = (5, 0.5)
    channel = bot.get_channel(emulator.channel("general").id)
    assert isinstance(channel, discord.TextChannel)
    started = time.monotonic()
    for index in range(7):
        await channel.send(f"update {index}")
    assert time.monotonic() - started >= 0.3, "discord.py must wait for the bucket to reset after 5 messages"
    assert len(emulator.sent(channel.id)) == 7
    assert 429 not in {r.status for r in emulator.requests_to(MESSAGES)}, (
        "the headers let discord.py pre-empt"
    )


async def test_a_500_is_retried_by_discord_py(emulator: DiscordEmulator, bot: RecordingClient):
    channel = bot.get_channel(emulator.channel("support").id)
    assert isinstance(channel, discord.TextChannel)
    emulator.inject(MESSAGES, 500)
    await channel.send("eventually")
    assert [r.status for r in emulator.requests_to(MESSAGES)] == [500, 200]


async def test_slow_responses_and_closed_dms(emulator: DiscordEmulator, bot: RecordingClient):
    dana = emulator.user("dana")
    emulator.inject(MESSAGES, None, delay=0.2)
    user = await bot.fetch_user(dana.id)
    started = time.monotonic()
    await user.send("slow but delivered")
    assert time.monotonic() - started >= 0.2
    emulator.close_dms(dana)
    with pytest.raises(discord.Forbidden) as caught:
        await user.send("you blocked me")
    assert caught.value.code == 50007
    assert [m.content for m in emulator.sent()] == ["slow but delivered"]


async def test_files_are_uploaded_as_attachments(emulator: DiscordEmulator, bot: RecordingClient):
    channel = bot.get_channel(emulator.channel("alerts").id)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("Weekly report", file=discord.File(io.BytesIO(b"\x89PNG..."), "week.png"))
    (record,) = emulator.sent(channel.id)
    assert [(a.filename, a.data) for a in record.attachments] == [("week.png", b"\x89PNG...")]
    assert message.attachments[0].filename == "week.png"


# --- slash commands and buttons --------------------------------------------------------------------


async def test_slash_commands_sync_and_answer(emulator: DiscordEmulator):
    team = emulator.guild("Saluran Team")
    inbox = emulator.channel("inbox")
    alice = emulator.user("alice")
    client = RecordingClient()
    calls: list[tuple[str, int, int]] = []

    @client.tree.command(description="Reply to the conversation")
    @app_commands.describe(text="What to say", priority="1 to 4")
    async def reply(interaction: discord.Interaction, text: str, priority: int = 1) -> None:
        calls.append((text, priority, interaction.user.id))
        await interaction.response.send_message(f"Queued: {text}", ephemeral=True)
        await interaction.followup.send("Reply sent to the customer.")

    @client.tree.command(description="Delete everything")
    @app_commands.default_permissions(manage_guild=True)
    async def purge(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("purged")

    @client.tree.command(description="Add an internal note")
    async def note(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"Noted: {text}")

    async with running(client, emulator):
        client.tree.copy_global_to(guild=discord.Object(team.id))
        await client.tree.sync(guild=discord.Object(team.id))
        await client.tree.sync()
        assert [r.route for r in emulator.requests if r.method == "PUT"] == [
            "PUT /applications/{application_id}/guilds/{guild_id}/commands",
            "PUT /applications/{application_id}/commands",
        ]
        reply_command = next(c for c in emulator.commands(team) if c["name"] == "reply")
        assert [(o["name"], o["type"], o.get("required", False)) for o in reply_command["options"]] == [
            ("text", 3, True),
            ("priority", 4, False),
        ]
        assert {c["name"] for c in emulator.commands()} == {"reply", "note", "purge"}
        with pytest.raises(PermissionError):  # Discord does not offer it to members without Manage Server
            await emulator.slash_command(team, inbox, alice, "purge")

        await emulator.slash_command(team, inbox, alice, "reply", {"text": "On it", "priority": 2})
        await emulator.wait_for(lambda: len(emulator.sent(inbox)) >= 2)
        await emulator.slash_command(team, inbox, alice, "note", {"text": "VIP customer"})
        await emulator.wait_for(lambda: any(m.content == "Noted: VIP customer" for m in emulator.sent(inbox)))

    assert calls == [("On it", 2, alice.id)]
    assert [r.type for r in emulator.interaction_responses] == [4, 5]
    queued, followup, noted = emulator.sent(inbox)
    assert (queued.content, queued.ephemeral, queued.via) == ("Queued: On it", True, "interaction")
    assert (followup.content, followup.via) == ("Reply sent to the customer.", "followup")
    assert noted.via == "interaction" and noted.flags == 0


async def test_button_presses_reach_a_view(emulator: DiscordEmulator, bot: RecordingClient):
    alice = emulator.user("alice")
    pressed: list[int] = []

    class Card(discord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @discord.ui.button(label="Claim", style=discord.ButtonStyle.primary, custom_id="claim:7")
        async def claim(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
            pressed.append(interaction.user.id)
            await interaction.response.edit_message(content=f"Claimed by {interaction.user.name}", view=None)

    channel = bot.get_channel(emulator.channel("inbox").id)
    assert isinstance(channel, discord.TextChannel)
    await channel.send("Conversation #7 from dana", view=Card())
    (card,) = emulator.sent(channel.id)
    assert card.custom_ids == ["claim:7"]

    await emulator.press_button(card, alice, "claim:7")
    await emulator.wait_for(lambda: card.content == "Claimed by alice")
    assert pressed == [alice.id]
    assert card.components == [] and [r.type for r in emulator.interaction_responses] == [7]
    with pytest.raises(LookupError):
        await emulator.press_button(card, alice, "claim:7")


async def test_interactions_must_be_answered_within_three_seconds(emulator: DiscordEmulator):
    team = emulator.guild("Saluran Team")
    client = RecordingClient()
    failures: list[Exception] = []

    @client.tree.command(description="Too slow")
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.3)
        try:
            await interaction.response.send_message("late")
        except discord.NotFound as exc:
            failures.append(exc)

    emulator.interaction_deadline = 0.2
    async with running(client, emulator):
        await client.tree.sync(guild=None)
        await emulator.slash_command(team, None, emulator.user("bob"), "slow")
        await eventually(lambda: failures)
    assert isinstance(failures[0], discord.NotFound) and failures[0].code == 10062


# --- threads ---------------------------------------------------------------------------------------


async def test_threads_from_a_message_and_in_a_channel(emulator: DiscordEmulator, bot: RecordingClient):
    dana = emulator.user("dana")
    support = emulator.channel("support")
    customer = await emulator.guild_message(support, dana, "Where is my order?")
    incoming = (await eventually(lambda: bot.received("Where is my order?")))[0]

    thread = await incoming.create_thread(name="Order question")
    assert thread.id == customer.id and emulator.channels[thread.id].parent_id == support.id
    await eventually(lambda: bot.threads)
    await emulator.guild_message(thread.id, dana, "Any news?")
    news = (await eventually(lambda: bot.received("Any news?")))[0]
    assert isinstance(news.channel, discord.Thread) and news.channel.parent_id == support.id
    await thread.send("Shipped today.")
    assert [m.content for m in emulator.sent(thread.id)] == ["Shipped today."]

    channel = bot.get_channel(support.id)
    assert isinstance(channel, discord.TextChannel)
    escalation = await channel.create_thread(name="Escalation #7", type=discord.ChannelType.public_thread)
    await eventually(lambda: len(bot.threads) == 2)
    assert emulator.channels[escalation.id].name == "Escalation #7"
    notice = next(m for m in emulator.messages.values() if m.type == 18)
    assert notice.channel_id == support.id and notice.content == "Escalation #7"


# --- reconnecting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["tcp-cut", "close-4000", "reconnect-opcode"])
async def test_a_dropped_gateway_resumes_without_losing_events(
    emulator: DiscordEmulator, bot: RecordingClient, how: str
):
    dana = emulator.user("dana")
    support = emulator.channel("support")
    if how == "reconnect-opcode":
        assert await emulator.request_reconnect() == 1
    else:
        assert await emulator.drop_gateway(None if how == "tcp-cut" else 4000) == 1
    missed = await emulator.guild_message(support, dana, "sent while the bot was away")

    await eventually(lambda: bot.received("sent while the bot was away"))
    await eventually(lambda: "resumed" in bot.events)
    assert emulator.resume_count == 1 and emulator.identify_count == 1
    assert [m.id for m in bot.seen] == [missed.id], "replayed once, not twice"
    after = await emulator.guild_message(support, dana, "and after")
    await eventually(lambda: bot.received("and after"))
    assert after.id == bot.seen[-1].id


async def test_an_invalidated_session_identifies_again(emulator: DiscordEmulator, bot: RecordingClient):
    await emulator.invalidate_sessions()
    await eventually(lambda: emulator.identify_count == 2 and bot.events.count("ready") == 2)
    await emulator.user_dm(emulator.user("eli"), "hello again")
    await eventually(lambda: bot.received("hello again"))
    assert emulator.resume_count == 0


# --- the raw protocol ------------------------------------------------------------------------------


async def test_gateway_zlib_stream_handshake_resume_and_close_codes(emulator: DiscordEmulator):
    identify: dict[str, Any] = {
        "op": 2,
        "d": {
            "token": emulator.token,
            "intents": ALL_INTENTS,
            "properties": {"os": "linux", "browser": "t", "device": "t"},
        },
    }
    async with aiohttp.ClientSession() as http:
        url = f"{emulator.gateway_url}?v=10&encoding=json&compress=zlib-stream"
        async with http.ws_connect(url) as ws:
            inflate = zlib.decompressobj()

            async def frame() -> dict[str, Any]:
                message = await ws.receive(timeout=2)
                assert message.type is aiohttp.WSMsgType.BINARY and message.data.endswith(b"\x00\x00\xff\xff")
                return json.loads(inflate.decompress(message.data))

            assert (await frame())["d"]["heartbeat_interval"] == 41_250
            await ws.send_json({"op": 1, "d": None})
            assert (await frame())["op"] == 11
            await ws.send_json(identify)
            ready = await frame()
            assert (ready["t"], ready["s"]) == ("READY", 1)
            assert ready["d"]["resume_gateway_url"] == emulator.gateway_url
            assert [(await frame())["t"] for _ in emulator.guilds] == ["GUILD_CREATE"] * 2
            session_id = ready["d"]["session_id"]
            team = emulator.guild("Saluran Team")
            await ws.send_json(
                {"op": 8, "d": {"guild_id": str(team.id), "query": "", "limit": 0, "nonce": "n1"}}
            )
            chunk = await frame()
            assert (chunk["t"], chunk["s"], chunk["d"]["nonce"]) == ("GUILD_MEMBERS_CHUNK", 4, "n1")
            assert {m["user"]["username"] for m in chunk["d"]["members"]} >= {"alice", "bob", "carol"}
            await ws.close(code=4000)

        missed = await emulator.user_dm(emulator.user("dana"), "while disconnected")
        async with http.ws_connect(f"{emulator.gateway_url}?v=10&encoding=json") as ws:
            assert (await ws.receive_json())["op"] == 10
            await ws.send_json({"op": 6, "d": {"token": emulator.token, "session_id": session_id, "seq": 4}})
            replayed, resumed = await ws.receive_json(), await ws.receive_json()
            assert (replayed["t"], replayed["s"]) == ("MESSAGE_CREATE", 5)
            assert replayed["d"]["id"] == str(missed.id)
            assert (resumed["t"], resumed["s"]) == ("RESUMED", 6)

        async with http.ws_connect(f"{emulator.gateway_url}?v=10&encoding=json") as ws:
            await ws.receive_json()
            await ws.send_json({"op": 6, "d": {"token": emulator.token, "session_id": "nope", "seq": 1}})
            assert await ws.receive_json() == {"op": 9, "d": False, "s": None, "t": None}

        for payload, code in [
            ({"op": 2, "d": {**identify["d"], "token": "wrong"}}, 4004),
            ({"op": 3, "d": {"status": "online"}}, 4003),
            ({"op": 2, "d": {**identify["d"], "intents": "all"}}, 4013),
            ({"op": 42, "d": None}, 4003),
        ]:
            async with http.ws_connect(f"{emulator.gateway_url}?v=10&encoding=json") as ws:
                await ws.receive_json()
                await ws.send_json(payload)
                closing = await ws.receive(timeout=2)
                assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, code)

    strict = DiscordEmulator(privileged_intents=0)
    async with strict, aiohttp.ClientSession() as http, http.ws_connect(f"{strict.gateway_url}?v=10") as ws:
        await ws.receive_json()
        await ws.send_json({"op": 2, "d": {**identify["d"], "token": strict.token}})
        closing = await ws.receive(timeout=2)
        assert closing.data == 4014, "privileged intents the app lacks are refused"


async def test_http_details_discord_py_relies_on(emulator: DiscordEmulator):
    dm = emulator.dm_channel(emulator.user("dana"))
    url = f"{emulator.api_base}/channels/{dm.id}/messages"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emulator.api_base}/users/@me") as response:
            assert response.status == 401 and (await response.json())["message"] == "401: Unauthorized"
        http.headers["Authorization"] = f"Bot {emulator.token}"
        statuses = []
        for index in range(6):
            async with http.post(url, json={"content": f"n{index}"}) as response:
                statuses.append(response.status)
                headers, body = response.headers, await response.json()
        async with http.get(f"{emulator.api_base}/nowhere") as missing:
            assert missing.status == 404 and missing.headers["Content-Type"] == "application/json"

    assert statuses == [200] * 5 + [429]
    assert headers["Content-Type"] == "application/json"
    assert headers["Via"] == "1.1 google" and headers["X-RateLimit-Scope"] == "user"
    assert headers["X-RateLimit-Limit"] == "5" and headers["X-RateLimit-Remaining"] == "0"
    assert int(headers["Retry-After"]) >= 1 and headers["X-RateLimit-Bucket"]
    assert 0 < float(headers["X-RateLimit-Reset-After"]) <= 5
    assert body["message"] == "You are being rate limited." and body["global"] is False
    assert 0 < body["retry_after"] <= 5


# --- world details ---------------------------------------------------------------------------------


async def test_snowflakes_and_timestamps_follow_the_injected_clock():
    from datetime import UTC, datetime

    from connectors.discord.emulator_world import Snowflakes
    from inbox.clock import FakeClock

    clock = FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    emu = DiscordEmulator(clock=clock)
    ids = [u.id for u in emu.users.values()]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(Snowflakes.created_at(i) == clock.now() for i in ids)
    clock.advance(60)
    message = await emu.user_dm(emu.user("dana"), "hello")
    assert message.created_at == clock.now() and Snowflakes.created_at(message.id) == clock.now()
    assert message.id > max(ids)


def test_discord_py_endpoints_are_restored():
    import discord.gateway
    import discord.http

    from connectors.discord.emulator import discord_py_endpoints

    before = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    with discord_py_endpoints("http://127.0.0.1:1/api/v10/", "ws://127.0.0.1:1/gateway"):
        assert discord.http.Route("GET", "/users/@me").url == "http://127.0.0.1:1/api/v10/users/@me"
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:1/gateway"
    assert (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == before


async def test_channel_messages_are_listed_as_discord_pages_them(emulator: DiscordEmulator):
    support, dana = emulator.channel("support"), emulator.user("dana")
    posted = [await emulator.guild_message(support, dana, f"m{n}") for n in range(7)]
    ids = [m.id for m in posted]
    url = f"{emulator.api_base}/channels/{support.id}/messages"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {emulator.token}"}) as http:

        async def listed(**params: str) -> Any:
            async with http.get(url, params=params) as response:
                return response.status, await response.json()

        def page(found: Any) -> list[int]:
            return [int(m["id"]) for m in found[1]]

        assert page(await listed()) == ids[::-1]  # newest first
        assert page(await listed(after=str(ids[1]), limit="3")) == [ids[4], ids[3], ids[2]]
        assert page(await listed(before=str(ids[5]), limit="2")) == [ids[4], ids[3]]
        assert page(await listed(around=str(ids[3]), limit="3")) == [ids[4], ids[3], ids[2]]
        assert page(await listed(after=str(ids[-1]))) == []
        status, body = await listed(limit="0")
        assert status == 400 and body["code"] == 50035 and "limit" in body["errors"]
        status, body = await listed(after=str(ids[0]), before=str(ids[3]))
        assert status == 400 and body["code"] == 50035
        async with http.get(f"{emulator.api_base}/channels/1/messages") as response:
            assert response.status == 404 and (await response.json())["code"] == 10003
