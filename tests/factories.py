"""Helpers that put a configured team and channels into a test database."""

from __future__ import annotations

from typing import Any

from inbox.clock import Clock
from inbox.config_sync import sync_config
from inbox.db import Database
from inbox.settings import Settings, settings_from_dict

DEFAULT_CONFIG: dict[str, Any] = {
    "members": [
        {"name": "alice", "role": "admin", "telegram_id": 1001, "discord_id": 2001},
        {"name": "bob", "role": "lead", "telegram_id": 1002},
        {"name": "carol", "role": "agent", "telegram_id": 1003},
    ],
    "channels": [
        {"name": "support", "type": "jsonl", "inbound_path": "in.jsonl", "outbound_path": "out.jsonl"},
        {"name": "social", "type": "jsonl", "inbound_path": "s-in.jsonl", "outbound_path": "s-out.jsonl"},
    ],
}


def make_settings(**overrides: Any) -> Settings:
    """Settings with the default team and channels, plus overrides per top-level key."""
    return settings_from_dict({**DEFAULT_CONFIG, **overrides}, environ={})


async def seed(db: Database, clock: Clock, settings: Settings | None = None) -> Settings:
    """Sync the (default) configuration into the database and return it."""
    settings = settings or make_settings()
    await sync_config(db, settings, clock)
    return settings
