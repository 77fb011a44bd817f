"""Sending to Discord: replies to customers, and team notices with buttons.

Both senders go through ``DiscordRest`` (HTTP only), so any worker can deliver outbox rows. Every
message is sent with ``allowed_mentions`` that ping nobody, except the members a notice names.
Long texts are split at 2,000 characters; each part carries a nonce derived from the delivery, and
Discord returns the earlier message for a nonce it saw a few minutes before, so a retried delivery
does not post its first parts twice.

Errors become what the outbox expects: a 429 longer than discord.py waits itself is RateLimited,
5xx and network errors are DeliveryFailed (retried with backoff), other 4xx (a user who blocks DMs:
50007, an unknown channel) are PermanentFailure.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import discord

from connectors.discord.convert import address, parse_address
from connectors.discord.render import (
    BUTTONS_PER_ROW,
    ButtonSigner,
    DiscordButton,
    Rendered,
    discord_buttons,
    escape,
    render,
    split_message,
)
from connectors.discord.service import DiscordRest
from inbox.events import Outbound, Receipt
from inbox.ports import DeliveryFailed, Pace, PermanentFailure, RateLimited
from inbox.view_codec import ViewCodecError, load

log = logging.getLogger(__name__)

CLOUDFLARE_WAIT = 60.0  # a 429 without Discord's headers comes from Cloudflare; wait a minute


def delivery_error(exc: BaseException) -> DeliveryFailed | None:
    """The outbox error for a failed Discord call; None if ``exc`` concerns neither Discord nor network."""
    if isinstance(exc, discord.RateLimited):
        return RateLimited(exc.retry_after, "Discord asked to wait")
    if isinstance(exc, discord.LoginFailure):
        return DeliveryFailed(f"Discord refused the bot token: {exc}")
    if isinstance(exc, discord.DiscordServerError):
        return DeliveryFailed(f"Discord server error {exc.status}: {exc.text or exc}")
    if isinstance(exc, discord.HTTPException):
        if exc.status == 429:
            return RateLimited(CLOUDFLARE_WAIT, "rate limited before reaching Discord")
        if exc.status in (401, 408) or exc.status >= 500:
            return DeliveryFailed(f"Discord answered {exc.status}: {exc.text or exc}")
        return PermanentFailure(f"Discord refused ({exc.status}, code {exc.code}): {exc.text or exc}")
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
        return DeliveryFailed(f"cannot reach Discord: {exc!r}")
    return None


def ui_view(buttons: Sequence[DiscordButton]) -> discord.ui.View | None:
    """A discord.py View holding ``buttons``, already stopped: discord.py sends its components but
    keeps no listener for it (the console reads the signed custom_id of every press itself)."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for index, button in enumerate(buttons):
        style = discord.ButtonStyle(button.style)
        view.add_item(discord.ui.Button(label=button.label, custom_id=button.custom_id, style=style,
                                        row=index // BUTTONS_PER_ROW))
    view.stop()
    return view


def allowed(pings: Sequence[int]) -> discord.AllowedMentions:
    """Mentions that notify exactly ``pings`` (user ids): no @everyone, no roles, no replied user."""
    if not pings:
        return discord.AllowedMentions.none()
    return discord.AllowedMentions(everyone=False, roles=False, replied_user=False,
                                   users=[discord.Object(user) for user in pings])


async def send_parts(
    messageable: discord.abc.Messageable, parts: Sequence[str], *, buttons: Sequence[DiscordButton] = (),
    pings: Sequence[int] = (), reference: discord.MessageReference | None = None, nonce: str | None = None,
    suppress_embeds: bool = False, file: tuple[str, bytes] | None = None,
) -> list[discord.Message]:
    """Send ``parts`` in order: the first answers ``reference``, the last carries the buttons and ``file``
    (a name and its bytes)."""
    sent = []
    mentions = allowed(pings)
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        options: dict[str, Any] = {"allowed_mentions": mentions, "suppress_embeds": suppress_embeds}
        if index == 0 and reference is not None:
            options["reference"] = reference
        view = ui_view(buttons) if last else None
        if view is not None:
            options["view"] = view
        if last and file is not None:
            options["file"] = discord.File(io.BytesIO(file[1]), filename=file[0])
        if nonce is not None:
            options["nonce"] = f"{nonce}.{index}"[:25]
        sent.append(await messageable.send(part, **options))
    return sent


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where a reply goes: a channel (or, for a DM never answered, the user to open one with) and the
    customer's message it answers."""

    channel_id: int | None
    reference: tuple[int, int] | None = None
    user_id: int | None = None


def reply_target(outbound: Outbound) -> ReplyTarget:
    """Where a reply to a customer goes, from the outbox row alone.

    The customer's last message (``reply_to``) names the channel: a DM, a support channel or a
    thread. Without one, a DM goes to the recipient's DM channel and anything else to the channel of
    the conversation's thread key.
    """
    last = parse_address(outbound.reply_to)
    if last is not None:
        return ReplyTarget(last[0], last)
    if outbound.kind == "dm" and outbound.recipient and outbound.recipient.isdigit():
        return ReplyTarget(None, user_id=int(outbound.recipient))
    root = parse_address(outbound.thread_key)
    if root is not None:
        return ReplyTarget(root[0], root if root[0] != root[1] else None)
    raise PermanentFailure(f"delivery #{outbound.delivery_id}: no Discord channel to answer in "
                           f"(reply_to={outbound.reply_to!r}, thread_key={outbound.thread_key!r})")


class DiscordSender:
    """Replies to customers: a message answering theirs, in their DM, channel or thread."""

    def __init__(self, rest: DiscordRest) -> None:
        self.rest = rest

    async def send(self, outbound: Outbound) -> Receipt:
        """Send the reply (split at 2,000 characters); the receipt names its first message."""
        target = reply_target(outbound)
        parts = split_message(outbound.text)
        if not parts:
            raise PermanentFailure(f"delivery #{outbound.delivery_id}: the reply is empty")
        try:
            client = await self.rest.client()
            channel_id = target.channel_id
            if channel_id is None:
                assert target.user_id is not None  # reply_target gives one or the other
                channel_id = (await client.create_dm(discord.Object(target.user_id))).id
            reference = None
            if target.reference is not None:
                # fail_if_not_exists=False: a deleted customer message must not block the answer.
                channel, message = target.reference
                reference = discord.MessageReference(message_id=message, channel_id=channel,
                                                     fail_if_not_exists=False)
            sent = await send_parts(client.get_partial_messageable(channel_id), parts, reference=reference,
                                    nonce=f"r{outbound.delivery_id}")
        except Exception as exc:
            error = delivery_error(exc)
            if error is None:
                raise
            raise error from exc
        return Receipt(platform_message_id=address(channel_id, sent[0].id))


def _image(extra: Mapping[str, Any]) -> tuple[str, bytes] | None:
    """The picture a notice carries (the weekly report's chart: ``image_png_b64``, ``image_name``)."""
    encoded = extra.get("image_png_b64")
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        log.warning("a team notice carries an image that is not base64; sending the text only")
        return None
    return str(extra.get("image_name") or "image.png"), data


class TeamSender:
    """Team notices (outbox destination ``team:<name>``): the view rendered for Discord, with buttons,
    and the picture a notice may carry (the weekly report's chart) attached to its last message."""

    # Discord allows 5 messages per 5 s in one channel, whatever budget the team chat is given.
    pace: Final = Pace(interval=1.0, burst=5)

    def __init__(self, rest: DiscordRest, signer: ButtonSigner) -> None:
        self.rest = rest
        self.signer = signer

    def rendered(self, outbound: Outbound) -> Rendered:
        """The notice as Discord messages: its stored view, else its plain text (escaped)."""
        mentions = outbound.extra.get("mentions")
        ids: Mapping[str, str | None] = mentions if isinstance(mentions, Mapping) else {}
        stored = outbound.extra.get("view")
        if isinstance(stored, Mapping):
            try:
                return render(load(stored), {str(k): (None if v is None else str(v)) for k, v in ids.items()})
            except ViewCodecError as exc:
                log.warning("team notice #%s: stored view unreadable (%s); sending its text",
                            outbound.delivery_id, exc)
        return Rendered(tuple(split_message(escape(outbound.text))) or (escape("-"),))

    async def send(self, outbound: Outbound) -> Receipt:
        """Post the notice in the team chat's channel; it pings only the members it names."""
        chat = str(outbound.extra.get("chat_id") or "")
        if not chat.isdigit():
            raise PermanentFailure(f"team chat id {chat!r} is not a Discord channel id")
        rendered = self.rendered(outbound)
        try:
            client = await self.rest.client()
            sent = await send_parts(
                client.get_partial_messageable(int(chat)), rendered.parts,
                buttons=discord_buttons(rendered.buttons, self.signer), pings=rendered.pings,
                nonce=f"t{outbound.delivery_id}", suppress_embeds=True, file=_image(outbound.extra),
            )
        except Exception as exc:
            error = delivery_error(exc)
            if error is None:
                raise
            raise error from exc
        return Receipt(platform_message_id=address(chat, sent[0].id))
