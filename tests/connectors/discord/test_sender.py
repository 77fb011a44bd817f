"""The senders against the emulator's REST API (no gateway, no database): where replies go, what a team
notice pings, pictures, and how Discord's errors become the outbox's."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from connectors.discord.emulator import DiscordEmulator
from connectors.discord.render import ButtonSigner
from connectors.discord.sender import DiscordSender, ReplyTarget, TeamSender, delivery_error, reply_target
from connectors.discord.service import DiscordRest, point_discord_py
from inbox.events import Outbound
from inbox.ports import DeliveryFailed, PermanentFailure, RateLimited
from inbox.view_codec import dump
from inbox.views import Button, ConversationCard, ConversationNotice
from tests.connectors.discord.conftest import MESSAGES

SIGNER = ButtonSigner.for_token("test")


def outbound(**fields: Any) -> Outbound:
    """A reply row as the dispatcher hands it over."""
    base: dict[str, Any] = {"delivery_id": 5, "destination": "discord", "purpose": "reply", "text": "Hi"}
    return Outbound(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "target"),
    [
        ({"reply_to": "10:11", "kind": "dm", "recipient": "99"}, ReplyTarget(10, (10, 11))),
        ({"reply_to": None, "kind": "dm", "recipient": "99"}, ReplyTarget(None, user_id=99)),
        ({"reply_to": None, "kind": "comment", "thread_key": "20:21"}, ReplyTarget(20, (20, 21))),
        ({"reply_to": None, "kind": "comment", "thread_key": "30:30"}, ReplyTarget(30, None)),  # a thread
    ],
)
def test_reply_target(fields: dict[str, Any], target: ReplyTarget) -> None:
    assert reply_target(outbound(**fields)) == target


def test_a_reply_without_any_address_fails_for_good() -> None:
    with pytest.raises(PermanentFailure, match="no Discord channel"):
        reply_target(outbound(reply_to="jsonl:1", kind="mention", thread_key=None))


def _http_error(kind: type[discord.HTTPException], status: int, code: int = 0) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason="x")
    return kind(response, {"message": "nope", "code": code})  # type: ignore[arg-type]


def test_delivery_errors() -> None:
    rate = delivery_error(discord.RateLimited(120.0))
    assert isinstance(rate, RateLimited) and rate.retry_after == 120.0
    blocked = delivery_error(_http_error(discord.Forbidden, 403, 50007))
    assert isinstance(blocked, PermanentFailure) and "50007" in str(blocked)
    assert isinstance(delivery_error(_http_error(discord.NotFound, 404, 10003)), PermanentFailure)
    for failure in (_http_error(discord.DiscordServerError, 503), _http_error(discord.HTTPException, 401),
                    OSError("reset"), TimeoutError()):
        error = delivery_error(failure)
        assert error is not None and error.retryable and not isinstance(error, RateLimited)
    cloudflare = delivery_error(_http_error(discord.HTTPException, 429))
    assert isinstance(cloudflare, RateLimited) and cloudflare.retry_after == 60.0
    assert delivery_error(ValueError("a bug")) is None


@pytest.fixture
async def emu() -> AsyncIterator[DiscordEmulator]:
    """An emulator that discord.py talks to."""
    async with DiscordEmulator() as emulator:
        with emulator.discord_py():
            yield emulator


@pytest.fixture
async def rest(emu: DiscordEmulator) -> AsyncIterator[DiscordRest]:
    """The senders' REST client, closed afterwards."""
    client = DiscordRest(emu.token)
    yield client
    await client.aclose()


async def test_a_dm_reply_opens_the_dm_and_answers_the_customer(emu: DiscordEmulator, rest: DiscordRest):
    dana = emu.user("dana")
    receipt = await DiscordSender(rest).send(outbound(kind="dm", recipient=str(dana.id), text="@everyone hi"))
    (sent,) = emu.sent(emu.dm_channel(dana))
    assert receipt.platform_message_id == f"{sent.channel_id}:{sent.id}"
    assert sent.content == "@everyone hi" and sent.pings.none and sent.nonce == "r5.0"

    asked = await emu.user_dm(dana, "and my refund?")
    answer = outbound(delivery_id=6, kind="dm", reply_to=f"{asked.channel_id}:{asked.id}", text="On its way")
    await DiscordSender(rest).send(answer)
    assert emu.sent(emu.dm_channel(dana))[-1].reply_to == asked.id


async def test_a_reply_to_a_deleted_message_is_still_sent(emu: DiscordEmulator, rest: DiscordRest):
    support = emu.channel("support")
    await DiscordSender(rest).send(outbound(kind="comment", reply_to=f"{support.id}:12345", text="Answer"))
    (sent,) = emu.sent(support)
    assert sent.content == "Answer" and sent.reply_to is None


async def test_refusals_and_server_errors(emu: DiscordEmulator, rest: DiscordRest):
    dana = emu.user("dana")
    emu.close_dms(dana)
    with pytest.raises(PermanentFailure, match="50007"):
        await DiscordSender(rest).send(outbound(kind="dm", recipient=str(dana.id)))
    support = emu.channel("support")
    emu.inject(MESSAGES, 503)
    with pytest.raises(DeliveryFailed) as caught:
        await DiscordSender(rest).send(outbound(kind="comment", reply_to=f"{support.id}:1"))
    assert caught.value.retryable
    emu.inject(MESSAGES, 429, retry_after=90)
    with pytest.raises(RateLimited) as limited:
        await DiscordSender(rest).send(outbound(kind="comment", reply_to=f"{support.id}:1"))
    assert limited.value.retry_after == 90
    assert emu.sent() == []


def _notice(**extra: Any) -> Outbound:
    card = ConversationCard(id=12, status="open", priority="normal", channel="discord", kind="dm",
                            contact="@dana", excerpt="@here <@&1> help",
                            buttons=(Button("Take", "/assign 12 me", "primary"),))
    view = ConversationNotice(event="reopened", card=card, mentions=("alice", "carol"))
    return outbound(destination="team:ops", purpose="card", text="plain", extra={"view": dump(view), **extra})


async def test_a_team_notice_pings_only_the_members_it_names(emu: DiscordEmulator, rest: DiscordRest):
    inbox = emu.channel("inbox")
    alice = emu.user("alice")
    receipt = await TeamSender(rest, SIGNER).send(_notice(chat_id=str(inbox.id),
                                                          mentions={"alice": str(alice.id), "carol": None}))
    (card,) = emu.sent(inbox)
    assert receipt.platform_message_id == f"{inbox.id}:{card.id}"
    assert card.pings.users == {alice.id} and not card.pings.mass
    assert card.flags & 4, "customer links in the team chat do not unfurl"
    assert [SIGNER.command(c) for c in card.custom_ids] == ["/assign 12 me", "/thread 12"]


async def test_a_notice_carries_its_picture_and_falls_back_to_its_text(emu: DiscordEmulator,
                                                                       rest: DiscordRest):
    inbox = emu.channel("inbox")
    png = b"\x89PNG\r\n\x1a\nchart"
    await TeamSender(rest, SIGNER).send(outbound(
        destination="team:ops", purpose="report", text="Week 45: **3** new",
        extra={"chat_id": str(inbox.id), "image_png_b64": base64.b64encode(png).decode(),
               "image_name": "w45.png"},
    ))
    (post,) = emu.sent(inbox)
    assert post.content == "Week 45: \\*\\*3\\*\\* new"  # no view in the payload: its text, escaped
    assert [(a.filename, a.data) for a in post.attachments] == [("w45.png", png)]
    with pytest.raises(PermanentFailure, match="not a Discord channel id"):
        await TeamSender(rest, SIGNER).send(_notice(chat_id="ops"))


def test_a_second_channel_cannot_point_discord_py_elsewhere(emu: DiscordEmulator) -> None:
    point_discord_py(emu.api_base, emu.gateway_url)  # the same URLs again: fine
    with pytest.raises(ValueError, match="second channel"):
        point_discord_py("http://127.0.0.1:9/api/v10", None)
    with pytest.raises(ValueError, match="second channel"):
        point_discord_py(None, "ws://127.0.0.1:9/gateway")
