"""X (Twitter) connector: mentions and DMs through tweepy, with an emulator for tests and demos.

The registry loads ``Options`` (the channel's keys), ``build`` and ``usage_summary`` (the cost
budget shown by ``inbox channels`` and ``/stats``). See docs/x.md.
"""

from __future__ import annotations

import logging

from connectors.x.budget import UsageLedger, usage_summary
from connectors.x.sender import XSender, post_length, split_thread
from connectors.x.source import Options, XClient, XSource
from connectors.x.webhook import channel_webhook_routes, webhook_routes
from inbox.registry import Connector, ConnectorContext
from inbox.settings import ChannelSettings

log = logging.getLogger(__name__)

__all__ = [
    "Options",
    "UsageLedger",
    "XClient",
    "XSender",
    "XSource",
    "build",
    "channel_webhook_routes",
    "post_length",
    "split_thread",
    "usage_summary",
    "webhook_routes",
]


def build(channel: ChannelSettings, context: ConnectorContext) -> Connector:
    """Build the source, sender and webhook routes of an X channel (one API client, one budget ledger)."""
    options = Options.model_validate(channel.options())
    if context.db is None and options.monthly_budget is not None:
        raise ValueError(f"channel {channel.name}: monthly_budget needs the database to count usage")
    secrets = {key: channel.secret(key) for key in channel.secrets}
    client = XClient(options, secrets)
    ledger = None
    if context.db is not None:
        ledger = UsageLedger(context.db, channel.name, context.clock, context.notices)
    source = None
    if options.mentions or options.dms:
        source = XSource(channel.name, client, context.clock, options, ledger)
    sender = XSender(channel.name, client, context.clock, ledger)
    routes = []
    if options.webhook_path is not None:
        if context.ingest is None:
            log.warning("channel %s: webhook_path is set but this process does not ingest; no webhook served",
                        channel.name)
        else:
            routes = channel_webhook_routes(channel, context.ingest)
    return Connector(channel.name, source=source, sender=sender, poll_interval=options.poll_interval,
                     routes=routes, close=client.close)
