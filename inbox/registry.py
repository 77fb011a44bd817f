"""Connector registry: channel types map to packages under ``connectors/``, imported lazily."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any, Protocol

from aiohttp.web import RouteDef
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.clock import Clock
from inbox.db import Database
from inbox.events import Batch
from inbox.ports import NoticeSink, PolledSource, Sender, StreamSource
from inbox.settings import ChannelSettings, Settings

# Type name -> importable package. A package exports `Options` (a pydantic model of its
# channel keys) and `build(channel, context) -> Connector`.
CONNECTOR_PACKAGES: Mapping[str, str] = {
    "jsonl": "connectors.jsonl",
    "x": "connectors.x",
    "webform": "connectors.webform",
    "api": "connectors.api",
    "teamlog": "connectors.teamlog",
    "discord": "connectors.discord",
    "telegram": "connectors.telegram",
}


class UnknownConnector(LookupError):
    """A channel type that no connector provides."""

    def __init__(self, type_name: str) -> None:
        known = ", ".join(sorted(CONNECTOR_PACKAGES))
        super().__init__(f"unknown channel type '{type_name}' (known: {known})")


@dataclass
class ConnectorContext:
    """What the runtime hands a connector when building it.

    Platform connectors whose SDK owns the connection (a Telegram long poll, a Discord gateway)
    receive customer messages and team commands in one loop; they get what they need here:
    ``ingest`` stores a Batch (inbox.ingest.Ingestor.ingest), ``commands`` runs a
    CommandInvocation and returns a View (inbox.commands.CommandCore.execute), ``settings`` holds
    members (with platform ids) and ``team_chats`` (the chats this channel hosts).
    """

    clock: Clock
    db: Database | None = None
    notices: NoticeSink | None = None
    ingest: Callable[[Batch], Awaitable[Any]] | None = None
    commands: Callable[[Any], Awaitable[Any]] | None = None
    settings: Settings | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Connector:
    """A built connector: its source (customers' side), its sender, or both."""

    channel: str
    source: PolledSource | StreamSource | None = None
    sender: Sender | None = None
    poll_interval: float = 5.0
    # HTTP routes the connector serves in the one web application of `inbox run` (forms, webhooks).
    routes: list[RouteDef] = field(default_factory=list)
    # A long-running loop (long poll, gateway) run as a named task while this process holds the
    # lease `lease_key` (default "service:<channel>"): e.g. one Telegram long poll per token.
    service: Callable[[asyncio.Event], Awaitable[None]] | None = None
    lease_key: str | None = None
    # Sends team notices (outbox destination "team:<name>") for the team chats this channel hosts.
    team_sender: Sender | None = None
    # Releases what the connector holds (HTTP sessions) when `inbox run` stops.
    close: Callable[[], Awaitable[None]] | None = None


class ConnectorModule(Protocol):
    """What a connector package must export."""

    Options: type[BaseModel]

    def build(self, channel: ChannelSettings, context: ConnectorContext) -> Connector:
        """Build the connector for one configured channel."""
        ...


def _load(type_name: str) -> ModuleType:
    try:
        package = CONNECTOR_PACKAGES[type_name]
    except KeyError:
        raise UnknownConnector(type_name) from None
    return importlib.import_module(package)


def channel_options_model(type_name: str) -> type[BaseModel]:
    """The pydantic model that validates a channel's connector-specific keys."""
    model: type[BaseModel] = _load(type_name).Options
    return model


UsageSummary = Callable[[AsyncSession, str, datetime], Awaitable[dict[str, Any]]]


def usage_summary_of(type_name: str) -> UsageSummary | None:
    """The connector's optional ``usage_summary(session, channel, now)`` (e.g. X's cost budget)."""
    try:
        module: Any = _load(type_name)
    except UnknownConnector:
        return None
    summary: UsageSummary | None = getattr(module, "usage_summary", None)
    return summary


def build_connector(channel: ChannelSettings, context: ConnectorContext) -> Connector:
    """Import the channel's connector package and build it."""
    module: Any = _load(channel.type)
    connector: Connector = module.build(channel, context)
    return connector
