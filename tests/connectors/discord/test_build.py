"""Configuration and wiring of a Discord channel: its keys checked at load, what ``build`` makes of them,
one gateway lease per token, and the documented example in inbox.example.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.discord import Options, assemble, build, command_specs
from connectors.discord.service import gateway_intents, lease_key
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.registry import ConnectorContext, channel_options_model
from inbox.settings import ConfigError, Settings, load_settings, settings_from_dict
from inbox.views import View
from tests.factories import DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[3]
ENV = {"DISCORD_TOKEN": "secret-token-value"}


def settings(**channel: Any) -> Settings:
    """The default team and one discord channel "dc" with ``channel``'s keys."""
    discord = {"name": "dc", "type": "discord", "token_env": "DISCORD_TOKEN", **channel}
    return settings_from_dict({**DEFAULT_CONFIG, "channels": [discord]}, environ=ENV)


def test_the_registry_knows_discord_and_bad_keys_are_refused_by_name() -> None:
    assert channel_options_model("discord") is Options
    with pytest.raises(ConfigError) as caught:
        settings(api_base_url="discord.com", gateway_url="https://x", support_channel_ids=[0], colour="blue")
    assert sorted(caught.value.problems) == [
        "channels[0].api_base_url: api_base_url must start with http:// or https://",
        "channels[0].colour: unknown key",
        "channels[0].gateway_url: gateway_url must start with ws:// or wss://",
        "channels[0].support_channel_ids: not Discord ids: 0",
    ]
    with pytest.raises(ConfigError, match="DISCORD_TOKEN is not set"):
        settings_from_dict({**DEFAULT_CONFIG, "channels": [{"name": "dc", "type": "discord",
                                                              "token_env": "DISCORD_TOKEN"}]}, environ={})


def test_the_token_is_masked_and_one_gateway_runs_per_token() -> None:
    loaded = settings(team_guild_id=5)
    assert "secret-token-value" not in str(loaded.masked())
    key = lease_key("secret-token-value")
    assert key.startswith("discord:") and "secret" not in key and key == lease_key("secret-token-value")
    assert key != lease_key("another-token")
    intents = gateway_intents()
    assert intents.guilds and intents.guild_messages and intents.dm_messages and intents.message_content
    assert not (intents.members or intents.presences or intents.guild_typing)


async def _execute(invocation: Any) -> View:
    return View()


def test_what_build_makes_depends_on_what_is_configured() -> None:
    clock = FakeClock()
    sender_only = build(settings().channels[0], ConnectorContext(clock=clock))
    assert sender_only.sender is not None and sender_only.team_sender is not None
    assert sender_only.service is None and sender_only.close is not None
    assert sender_only.lease_key == lease_key("secret-token-value")

    async def ingest(batch: Any) -> None:
        return None

    customers = assemble(settings().channels[0], ConnectorContext(clock=clock, ingest=ingest))
    assert customers.source is not None and customers.console is None
    assert customers.connector.service is not None


def test_without_a_core_behind_commands_the_console_reads_a_fresh_cores_declarations(db: Database) -> None:
    loaded = settings(team_guild_id=5)
    context = ConnectorContext(clock=FakeClock(), db=db, commands=_execute, settings=loaded)
    names = [spec.name for spec in command_specs(context)]
    assert {"reply", "note", "queue", "resolve"} <= set(names)
    parts = assemble(loaded.channels[0], context)
    assert parts.console is not None and parts.console.scope.team_guild_id == 5


def test_the_example_config_documents_a_discord_channel() -> None:
    text = (ROOT / "inbox.example.toml").read_text(encoding="utf-8")
    assert "# --- discord: begin ---" in text and "# --- discord: end ---" in text
    example = load_settings(ROOT / "inbox.example.toml", environ={"EXAMPLE_SECRET": "x"})
    channel = example.channel("discord")
    assert channel is not None and channel.type == "discord"
    options = Options.model_validate(channel.options())
    assert options.team_guild_id and options.support_channel_ids and options.api_base_url is None
    for key in Options.model_fields:
        assert f"{key} =" in text, f"inbox.example.toml does not document {key}"
