"""Fixtures for the web tests: an App on the test database, its aiohttp test client, a local SMTP server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import text

from inbox.app import App
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.migrate import head_revision
from inbox.registry import Connector, ConnectorContext, build_connector
from inbox.settings import Settings, settings_from_dict
from inbox.web.server import build_web_app

SECRET = "test-secret-0123456789abcdef"
SMTP_PASSWORD = "smtp-pass"
ENVIRON = {"PARTNER_SECRET": SECRET, "SMTP_PASSWORD": SMTP_PASSWORD}
CERTS = Path(__file__).parent / "certs"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def stamp_head(db: Database) -> None:
    """Mark the (create_all-made) schema as migrated to head, as `alembic stamp head` would."""
    async with db.engine.begin() as conn:
        await conn.execute(
            text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)")
        )
        await conn.execute(text("DELETE FROM alembic_version"))
        await conn.execute(
            text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head_revision()}
        )


def config(
    db_url: str,
    *,
    smtp_port: int = 2525,
    webform: dict[str, Any] | None = None,
    web: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A configuration with a webform channel, an api channel and a jsonl channel."""
    return {
        "database": {"url": db_url},
        "members": [{"name": "alice", "role": "admin"}, {"name": "carol", "role": "agent"}],
        "channels": [
            {
                "name": "website",
                "type": "webform",
                "from_address": "help@example.org",
                "from_name": "Example Help",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "smtp_security": "none",
                "rate_limit": 3,
                "rate_window": "10m",
                "smtp_timeout": 5,
                "max_message_length": 1000,
                **(webform or {}),
            },
            {"name": "partner", "type": "api", "secret_env": "PARTNER_SECRET"},
            {"name": "support", "type": "jsonl", "inbound_path": "in.jsonl", "outbound_path": "out.jsonl"},
        ],
        "web": {"max_body_bytes": 4096, **(web or {})},
    }


@dataclass
class WebHarness:
    """An App, its connectors and a test client of the web application."""

    app: App
    connectors: dict[str, Connector]
    client: TestClient[Any, Any]
    clock: FakeClock
    settings: Settings
    base_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)


async def open_harness(
    db: Database, db_url: str, clock: FakeClock, tmp_path: Path, **overrides: Any
) -> tuple[App, dict[str, Connector]]:
    """Stamp the schema, open the App like `inbox run` does, and build every channel's connector."""
    await stamp_head(db)
    settings = settings_from_dict(config(db_url, **overrides), environ=ENVIRON)
    app = await App.open(settings, clock)
    context = ConnectorContext(clock=clock, db=app.db, extra={"base_dir": tmp_path, "language": "en"})
    connectors = {c.name: build_connector(c, context) for c in settings.channels}
    return app, connectors


@pytest.fixture
def web_overrides() -> dict[str, Any]:
    """Per-test changes to the configuration (override this fixture, or parametrize it indirectly)."""
    return {}


@pytest.fixture
async def harness(
    db: Database, db_url: str, clock: FakeClock, tmp_path: Path, web_overrides: dict[str, Any]
) -> AsyncIterator[WebHarness]:
    """The web application of a configured App, served on 127.0.0.1 for a test client."""
    app, connectors = await open_harness(db, db_url, clock, tmp_path, **web_overrides)
    client: TestClient[Any, Any] = TestClient(TestServer(build_web_app(app, connectors.values())))
    await client.start_server()
    try:
        yield WebHarness(app, connectors, client, clock, app.settings, tmp_path)
    finally:
        await client.close()
        await app.close()


# --- a real SMTP server ---------------------------------------------------------------------------


class Recorder:
    """An aiosmtpd handler that keeps what it received and can refuse with a chosen reply."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.rcpt_reply: str | None = None  # e.g. "550 5.1.1 no such user"
        self.authenticated: list[str] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if session.authenticated:
            self.authenticated.append(session.auth_data.login.decode())  # type: ignore[attr-defined]
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    """A plain SMTP server on 127.0.0.1 (no TLS, no auth): (recorder, port)."""
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()
