"""X sender end to end: members' replies go through the outbox and appear on the emulated X."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import col

from connectors.x.emulator import post_length as emulator_post_length
from connectors.x.sender import TooLong, post_length, split_thread
from inbox.actions import Actions
from inbox.events import Actor, Outbound
from inbox.models import Delivery, Member, Message
from inbox.outbox import Dispatcher, enqueue
from inbox.ports import DeliveryFailed, PermanentFailure, RateLimited
from tests.connectors.x.conftest import CHANNEL, MakeWorld, XWorld

LONG = " ".join(f"word{i}" for i in range(60))  # 409 characters: two posts


async def member(world: XWorld, name: str = "carol") -> Actor:
    async with world.db.sessions() as session:
        row = (await session.execute(select(Member).where(col(Member.name) == name))).scalar_one()
    return Actor("member", name, row.id)


async def conversation_id(world: XWorld, external_id: str) -> int:
    async with world.db.sessions() as session:
        found = await session.scalar(
            select(col(Message.conversation_id)).where(col(Message.external_id) == external_id)
        )
    assert found is not None
    return found


def dispatcher(world: XWorld) -> Dispatcher:
    return Dispatcher(world.db, world.clock, {CHANNEL: world.sender}, worker_id="test",
                      rng=random.Random(1))


async def deliveries(world: XWorld) -> list[Delivery]:
    async with world.db.sessions() as session:
        return list((await session.execute(select(Delivery).order_by(col(Delivery.id)))).scalars())


async def test_members_reply_appears_as_a_reply_post(world: XWorld) -> None:
    emu = world.emu
    mention = emu.post_mention("alice", "where is my parcel?")
    await world.poll()
    conv = await conversation_id(world, mention.id)
    actions = Actions(world.db, world.clock)
    reply = await actions.reply(await member(world), conv, "@alice Sorry! We are checking with the courier.")
    assert await dispatcher(world).run_once() == 1

    [post] = emu.posts_by_bot()
    assert post.text == "@alice Sorry! We are checking with the courier."
    assert post.in_reply_to_id == mention.id and post.conversation_id == mention.id
    [delivery] = await deliveries(world)
    assert (delivery.status, delivery.platform_message_id) == ("sent", post.id)
    async with world.db.sessions() as session:
        stored = await session.get(Message, reply.id)
    assert stored is not None and stored.external_id == post.id

    # The customer answers our reply: it lands in the same conversation.
    answer = emu.post_mention("alice", "thanks, any news?", in_reply_to=post.id)
    assert await world.poll() == 1
    assert await conversation_id(world, answer.id) == conv


async def test_dm_reply_goes_out_as_a_dm_and_is_not_read_back(world: XWorld) -> None:
    emu = world.emu
    dm = emu.send_dm("rina", "refund please")
    await world.poll()
    conv = await conversation_id(world, dm.id)
    await Actions(world.db, world.clock).reply(await member(world), conv, "Refund sent today.")
    await dispatcher(world).run_once()

    [sent] = emu.dms_by_bot()
    assert (sent.recipient_id, sent.text) == (emu.user("rina").id, "Refund sent today.")
    [delivery] = await deliveries(world)
    assert delivery.platform_message_id == sent.id
    assert await world.poll() == 0  # our own DM event is skipped
    assert await world.messages("in") == 1 and await world.messages("out") == 1


async def test_over_length_reply_is_refused_with_a_clear_message(world: XWorld) -> None:
    mention = world.emu.post_mention("alice", "tell me everything")
    await world.poll()
    conv = await conversation_id(world, mention.id)
    await Actions(world.db, world.clock).reply(await member(world), conv, LONG)
    await dispatcher(world).run_once()
    [delivery] = await deliveries(world)
    assert delivery.status == "failed"
    assert delivery.last_error is not None
    assert "a post on X holds at most 280" in delivery.last_error and "numbered thread" in delivery.last_error
    assert world.emu.posts_by_bot() == []


async def test_long_reply_goes_out_as_a_numbered_thread_when_asked(world: XWorld) -> None:
    emu = world.emu
    mention = emu.post_mention("alice", "tell me everything")
    await world.poll()
    conv = await conversation_id(world, mention.id)
    async with world.db.transaction() as session:  # as a member's "send as thread" reply would queue it
        await enqueue(session, destination=CHANNEL, purpose="reply", now=world.clock.now(),
                      conversation_id=conv,
                      payload={"text": LONG, "reply_to": mention.id, "kind": "mention", "thread": True})
    await dispatcher(world).run_once()

    posts = emu.posts_by_bot()
    assert len(posts) == 2
    assert [p.text[:6] for p in posts] == ["(1/2) ", "(2/2) "]
    assert posts[0].in_reply_to_id == mention.id and posts[1].in_reply_to_id == posts[0].id
    assert all(emulator_post_length(p.text) <= 280 for p in posts)
    assert " ".join(p.text[6:] for p in posts) == LONG
    [delivery] = await deliveries(world)
    assert (delivery.status, delivery.platform_message_id) == ("sent", posts[0].id)


async def test_thread_cut_by_a_rate_limit_continues_where_it_stopped(world: XWorld) -> None:
    emu = world.emu
    mention = emu.post_mention("alice", "long story please")
    emu.set_rate_limit("POST /2/tweets", 1)
    outbound = Outbound(7, CHANNEL, "reply", LONG, reply_to=mention.id, kind="mention",
                        extra={"thread": True})
    with pytest.raises(RateLimited) as limited:
        await world.sender.send(outbound)
    assert limited.value.retry_after == pytest.approx(900, abs=1)
    assert len(emu.posts_by_bot()) == 1
    world.clock.advance(900)
    receipt = await world.sender.send(outbound)
    first, second = emu.posts_by_bot()
    assert receipt.platform_message_id == first.id
    assert second.in_reply_to_id == first.id and second.text.startswith("(2/2)")


async def test_errors_map_to_the_outbox_failure_types(world: XWorld) -> None:
    emu = world.emu
    mention = emu.post_mention("alice", "hi")

    def out(text: str, *, reply_to: str | None = mention.id, kind: str = "mention",
            recipient: str | None = None) -> Outbound:
        return Outbound(1, CHANNEL, "reply", text, reply_to=reply_to, kind=kind, recipient=recipient)

    emu.inject("/2/tweets", status=503, method="POST")
    with pytest.raises(DeliveryFailed) as server:
        await world.sender.send(out("one"))
    assert server.value.retryable and not isinstance(server.value, RateLimited)
    assert "X server error 503" in str(server.value)

    emu.inject("/2/tweets", status=429, reset_in=120, method="POST")
    with pytest.raises(RateLimited) as limited:
        await world.sender.send(out("two"))
    assert limited.value.retry_after == pytest.approx(120, abs=1)

    with pytest.raises(PermanentFailure, match="deleted or not visible"):  # X's own detail
        await world.sender.send(out("three", reply_to="123"))
    with pytest.raises(PermanentFailure, match="no customer post to reply to"):
        await world.sender.send(out("four", reply_to=None))
    with pytest.raises(PermanentFailure, match="recipient"):
        await world.sender.send(out("five", kind="dm"))
    closed = emu.add_user("closed", accepts_dms=False)
    with pytest.raises(PermanentFailure, match="cannot send messages"):
        await world.sender.send(out("six", kind="dm", recipient=closed.id))
    await world.sender.send(out("one"))  # the first text was never posted: it goes now
    assert [p.text for p in emu.posts_by_bot()] == ["one"]


async def test_timeout_then_duplicate_counts_as_sent(make_world: MakeWorld) -> None:
    world = await make_world(request_timeout=0.2)
    emu = world.emu
    mention = emu.post_mention("alice", "hi")
    outbound = Outbound(9, CHANNEL, "reply", "We are on it", reply_to=mention.id, kind="mention")
    emu.slow("/2/tweets", 1.0, times=1, method="POST", after=True)  # posted, but the answer is lost
    with pytest.raises(DeliveryFailed, match="did not answer"):
        await world.sender.send(outbound)
    receipt = await world.sender.send(outbound)  # X: duplicate content, i.e. the first try made it
    assert receipt.platform_message_id is None
    assert [p.text for p in emu.posts_by_bot()] == ["We are on it"]


async def test_long_dm_is_refused_or_split(world: XWorld) -> None:
    emu = world.emu
    dina = emu.add_user("dina")
    text = "x " * 6000
    with pytest.raises(PermanentFailure, match="a direct message on X holds at most 10000"):
        await world.sender.send(Outbound(3, CHANNEL, "reply", text, recipient=dina.id, kind="dm"))
    await world.sender.send(Outbound(4, CHANNEL, "reply", text, recipient=dina.id, kind="dm",
                                     extra={"thread": True}))
    assert [d.text[:6] for d in emu.dms_by_bot()] == ["(1/2) ", "(2/2) "]


# --- counting like X ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "plain ascii", "字" * 140, "see https://example.com/a/very/long/path/that/is/long", "café ☕ and 🎉",
    "Terima kasih atas kesabaran Anda", "line\nbreaks\n\nkept",
])
def test_post_length_matches_the_emulators_twitter_text_rule(text: str) -> None:
    assert post_length(text) == emulator_post_length(text)


def test_post_length_errs_high_where_x_is_subtler() -> None:
    assert post_length("see example.com") == 4 + 23  # X links bare domains too
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one emoji on X (2), more for us
    assert post_length(family) >= 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([*"ab cd\n字🎉", "https://ex.com/p ", "example.org "]), min_size=1,
                max_size=700).map("".join))
def test_split_thread_parts_fit_and_keep_the_words(text: str) -> None:
    try:
        parts = split_thread(text)
    except TooLong:
        return
    assert all(post_length(p) <= 280 for p in parts)
    if len(parts) == 1:
        assert parts[0] == text.strip()
        return
    assert all(p.startswith(f"({i}/{len(parts)}) ") for i, p in enumerate(parts, 1))
    bodies = "".join(p.split(") ", 1)[1] for p in parts)
    assert "".join(bodies.split()) == "".join(text.split())  # every character kept, in order


def test_split_thread_refuses_an_essay() -> None:
    with pytest.raises(TooLong, match="at most 25"):
        split_thread("word " * 3000)
