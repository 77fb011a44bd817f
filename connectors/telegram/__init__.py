"""Telegram connector: customer source, team console, renderer and the Bot API emulator.

A channel of ``type = "telegram"`` is one bot token. Its customers are people who DM the bot,
mention it (or reply to it) in public groups, or comment under the organisation's channel posts; its
team side is every ``[[team_chats]]`` entry whose ``channel`` names it. One token may serve both
sides, or a customer-facing bot and a team bot may be two channels. The registry loads ``Options``
and ``build``; see docs/telegram.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence

from pydantic import ValidationError

from connectors.telegram.client import BotClient
from connectors.telegram.console import Forums, Refs, TeamChatInfo, TeamConsole, team_chat_infos
from connectors.telegram.render import render
from connectors.telegram.sender import TeamSender, TelegramSender
from connectors.telegram.service import TelegramService
from connectors.telegram.source import Options, TelegramSource
from inbox.notify.chats import team_destination
from inbox.registry import Connector, ConnectorContext
from inbox.settings import ChannelSettings, Settings, TeamChatSettings

__all__ = [
    "BotClient",
    "Options",
    "TeamConsole",
    "TeamSender",
    "TelegramSender",
    "TelegramService",
    "TelegramSource",
    "build",
    "lease_key",
    "render",
]

log = logging.getLogger(__name__)

_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def lease_key(token: str) -> str:
    """The lease of a token's update loop: channels sharing a token share it (one loop per token)."""
    return "telegram:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _token_group(
    channel: ChannelSettings, token: str, settings: Settings | None
) -> list[tuple[str, Options]]:
    """Every telegram channel using this token (this one included), in config order."""
    if settings is None:
        return [(channel.name, Options.model_validate(channel.options()))]
    group: list[tuple[str, Options]] = []
    for other in settings.channels:
        if other.type != "telegram":
            continue
        secret = other.secrets.get("token")
        if other.name != channel.name and (secret is None or secret.get_secret_value() != token):
            continue
        try:
            group.append((other.name, Options.model_validate(other.options())))
        except ValidationError:
            continue  # that channel is refused on its own
    return group or [(channel.name, Options.model_validate(channel.options()))]


def build(channel: ChannelSettings, context: ConnectorContext) -> Connector:
    """Build the sender, team sender and update loop (polling or webhook route) of a telegram channel."""
    options = Options.model_validate(channel.options())
    try:
        token = channel.secret("token")
    except KeyError:
        raise ValueError(f"channel {channel.name}: the bot token ({options.token_env}) is not set") from None
    settings = context.settings
    group = _token_group(channel, token, settings)
    names = [name for name, _ in group]
    customers = [name for name, opts in group if opts.customers]
    if len(customers) > 1:
        raise ValueError(
            f"channels {', '.join(customers)} share one bot token; only one of them can receive "
            "its customers: set customers = false on the others"
        )
    customer_channel = customers[0] if customers else None
    language = settings.general.language if settings is not None else str(context.extra.get("language", "en"))
    configured = list(settings.team_chats) if settings is not None else []
    hosted = team_chat_infos([c for c in configured if c.channel in names], language)
    own = {
        team_destination(c.name): info
        for c, info in zip([c for c in configured if c.channel in names], hosted, strict=True)
        if c.channel == channel.name
    }

    client = BotClient(token, options.api_base_url, request_timeout=options.request_timeout)
    if context.db is None:
        # Without the database there are no cards to remember and no cursor: replies only.
        return Connector(
            channel.name,
            sender=TelegramSender(channel.name, client),
            lease_key=lease_key(token),
            close=client.close,
        )

    refs = Refs(context.db, context.clock)
    forums = Forums(client)
    team_sender = TeamSender(client, refs, forums, own) if own else None
    sender = TelegramSender(channel.name, client, team_sender)
    service = _service(
        channel, options, token, context, client, refs, forums, hosted, customer_channel, names, configured
    )
    routes = []
    if service is not None and options.mode == "webhook":
        routes = service.routes(options.webhook_path or f"/webhooks/telegram/{channel.name}")
    return Connector(
        channel.name,
        sender=sender,
        team_sender=team_sender,
        service=service.run if service is not None else None,
        lease_key=lease_key(token),
        routes=routes,
        close=client.close,
    )


def _service(
    channel: ChannelSettings,
    options: Options,
    token: str,
    context: ConnectorContext,
    client: BotClient,
    refs: Refs,
    forums: Forums,
    hosted: list[TeamChatInfo],
    customer_channel: str | None,
    names: list[str],
    configured: Sequence[TeamChatSettings],
) -> TelegramService | None:
    if context.ingest is None or context.db is None:
        return None
    excluded: set[int] = set()
    for chat in configured:
        try:
            excluded.add(int(chat.chat_id))
        except ValueError:
            continue  # a Discord channel id or a teamlog name: not a Telegram chat
    cursor_channel = customer_channel or names[0]
    source = TelegramSource(customer_channel, cursor_channel, context.db, frozenset(excluded))
    console = TeamConsole(client, refs, forums, hosted, context.commands, context.db, context.clock)
    webhook_url = webhook_secret = None
    if options.mode == "webhook":
        webhook_secret = channel.secret("webhook_secret")
        if not _SECRET_TOKEN.match(webhook_secret):
            raise ValueError(
                f"channel {channel.name}: the webhook secret ({options.webhook_secret_env}) must be "
                "1-256 characters of A-Z, a-z, 0-9, _ and -"
            )
        path = options.webhook_path or f"/webhooks/telegram/{channel.name}"
        settings = context.settings
        public = settings.web.public_url if settings is not None and settings.web is not None else None
        webhook_url = options.webhook_url or (f"{public}{path}" if public else None)
        if webhook_url is None:
            raise ValueError(
                f"channel {channel.name}: webhook mode needs webhook_url, or [web] public_url "
                "so that Telegram can reach the web server"
            )
    return TelegramService(
        channel.name,
        options,
        client,
        source,
        console,
        context.ingest,
        context.db,
        context.clock,
        channels=names,
        notices=context.notices,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )
