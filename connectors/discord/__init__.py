"""Discord connector: customer source, team console, renderer and the Discord emulator.

The registry loads ``Options`` (the channel's keys) and ``build``. One bot token serves both sides:
customers write to the bot in DMs, mention it in the community's servers or post in support
channels (``source``, ``convert``); the team works in its own server with slash commands, card
buttons and a thread per conversation (``console``, ``render``); replies and notices go out through
the outbox (``sender``); ``service`` runs the gateway session under a lease. ``emulator`` is a fake
Discord for tests and ``inbox demo``. Setup: docs/discord.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.discord.catch_up import CatchUp
from connectors.discord.console import DiscordConsole
from connectors.discord.convert import Scope
from connectors.discord.render import ButtonSigner
from connectors.discord.sender import DiscordSender, TeamSender
from connectors.discord.service import DiscordRest, DiscordService, lease_key, point_discord_py
from connectors.discord.source import DiscordSource, Options
from inbox.commands import CommandCore, CommandSpec, Registry
from inbox.registry import Connector, ConnectorContext
from inbox.settings import ChannelSettings

__all__ = [
    "DiscordConsole",
    "DiscordParts",
    "DiscordRest",
    "DiscordSender",
    "DiscordService",
    "DiscordSource",
    "Options",
    "TeamSender",
    "assemble",
    "build",
]


@dataclass
class DiscordParts:
    """Everything one Discord channel is made of (tests and the demo reach into it; the runtime uses
    ``connector``)."""

    connector: Connector
    rest: DiscordRest
    service: DiscordService
    source: DiscordSource | None
    console: DiscordConsole | None

    async def aclose(self) -> None:
        """Close the REST client (the gateway client closes when its service stops)."""
        await self.rest.aclose()


def command_specs(context: ConnectorContext) -> list[CommandSpec]:
    """The commands the console offers as slash commands: the registry of the core behind ``commands``."""
    registry = getattr(getattr(context.commands, "__self__", None), "registry", None)
    if not isinstance(registry, Registry) and context.db is not None and context.settings is not None:
        from inbox.actions import Actions

        # A core only to read its declarations; commands still run through context.commands.
        actions = Actions(context.db, context.clock)
        registry = CommandCore(context.db, context.clock, context.settings, actions).registry
    return [command.spec for command in registry.all()] if isinstance(registry, Registry) else []


def assemble(channel: ChannelSettings, context: ConnectorContext) -> DiscordParts:
    """Build every part of a Discord channel from its settings."""
    options = Options.model_validate(channel.options())
    token = channel.secret("token")
    point_discord_py(options.api_base_url, options.gateway_url)
    rest = DiscordRest(token)
    signer = ButtonSigner.for_token(token)
    scope = Scope(
        channel=channel.name, bot_id=0, team_guild_id=options.team_guild_id,
        support_channel_ids=frozenset(options.support_channel_ids),
        community_guild_ids=frozenset(options.community_guild_ids),
    )
    settings = context.settings
    console = None
    if options.team_guild_id is not None and context.commands is not None and context.db is not None:
        chats = settings.team_chats if settings is not None else []
        languages = {
            int(c.chat_id): c.language for c in chats if c.channel == channel.name and c.chat_id.isdigit()
        }
        language = str(context.extra.get("language") or (settings.general.language if settings else "en"))
        console = DiscordConsole(
            scope=scope, commands=context.commands, specs=command_specs(context), db=context.db,
            clock=context.clock, signer=signer, chat_languages=languages, language=language,
        )
    service = DiscordService(channel.name, token, None, console, notices=context.notices)
    source = None
    if context.ingest is not None:
        source = DiscordSource(scope, context.ingest, service.resolve)
        service.source = source
        if context.db is not None:
            service.catch_up = CatchUp(context.db, context.clock, channel.name)
    runs = source is not None or console is not None
    connector = Connector(
        channel.name, sender=DiscordSender(rest), team_sender=TeamSender(rest, signer),
        service=service.run if runs else None, lease_key=lease_key(token), close=rest.aclose,
    )
    return DiscordParts(connector, rest, service, source, console)


def build(channel: ChannelSettings, context: ConnectorContext) -> Connector:
    """Build a Discord channel: sender, team sender, and the gateway service (run under a lease)."""
    return assemble(channel, context).connector
