"""Item 11: no configured secret ever reaches a log line.

A real `inbox run` (subprocess) at DEBUG serves Telegram (webhook mode, secret token), X (polled with
OAuth 1.0a, plus its signed webhook), the contact form (replies over SMTP with STARTTLS and a password)
and the signed inbound API, against the emulators and a local SMTP server; customers write, members
reply, everything is delivered. Then every line the process wrote is searched for every configured
secret, and for the database password. The SDKs' own loggers (httpx, telegram, tweepy, aiohttp) must
be among what was written: they go through the same redacting handler.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from sqlalchemy import text
from sqlalchemy.engine import make_url

from connectors.telegram.emulator import TelegramEmulator
from connectors.x.emulator import XEmulator, webhook_signature
from inbox.clock import SystemClock
from inbox.db import Database
from inbox.logs import REDACTED, RedactingFormatter, Redactor, configure_logging
from inbox.web.signing import signed_headers
from tests.conftest import POSTGRES_ENV, create_scratch_postgres, drop_scratch_postgres
from tests.reliability.support import (
    PARTNER_SECRET,
    SMTP_PASSWORD,
    TG_WEBHOOK_SECRET,
    child_env,
    environ,
    inbox_cli,
    start_run,
    stop_run,
)

CERTS = Path(__file__).resolve().parents[1] / "web" / "certs"
DB_PASSWORD = "db-password-0123456789abcdef"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    """An aiosmtpd handler keeping what it received."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"


def _login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture
def log_db_url(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(backend, URL): a scratch PostgreSQL database when one is configured (its URL can carry a password
    to look for in the logs), else SQLite. One database is enough here: logging does not depend on it."""
    if not os.environ.get(POSTGRES_ENV):
        yield "sqlite", f"sqlite:///{tmp_path / 'inbox.db'}"
        return
    url = create_scratch_postgres("saluran_rel_logs")
    try:
        yield "postgres", url
    finally:
        drop_scratch_postgres(url)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server that needs STARTTLS and a password."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERTS / "server.pem", CERTS / "server-key.pem")
    mailbox, port = Mailbox(), free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_login,
        auth_require_tls=True,
        tls_context=context,
        require_starttls=True,
        server_hostname="localhost",
    )
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def config_text(
    db_url: str, port: int, tg: TelegramEmulator, x: XEmulator, smtp_port: int, team_id: int
) -> str:
    base = f"http://127.0.0.1:{port}"
    return f"""
[database]
url = "{db_url}"

[runtime]
log_level = "DEBUG"

[outbox]
idle_interval = "0.1s"

[web]
host = "127.0.0.1"
port = {port}
public_url = "{base}"

[[members]]
name = "carol"
role = "admin"
telegram_id = 1003

[[channels]]
name = "tg"
type = "telegram"
token_env = "REL_TG_TOKEN"
api_base_url = "{tg.url}"
mode = "webhook"
webhook_secret_env = "REL_TG_WEBHOOK_SECRET"

[[channels]]
name = "xs"
type = "x"
api_base_url = "{x.base_url}"
consumer_key_env = "X_CONSUMER_KEY"
consumer_secret_env = "X_CONSUMER_SECRET"
access_token_env = "X_ACCESS_TOKEN"
access_token_secret_env = "X_ACCESS_TOKEN_SECRET"
webhook_path = "/webhooks/x/xs"
user_id = "{x.bot.id}"
poll_interval = 0.5

[[channels]]
name = "website"
type = "webform"
from_address = "help@example.org"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_security = "starttls"
smtp_username = "mailer"
smtp_password_env = "REL_SMTP_PASSWORD"
smtp_ca_file = "{CERTS / "ca.pem"}"
smtp_timeout = 5

[[channels]]
name = "partner"
type = "api"
secret_env = "REL_PARTNER_SECRET"

[[team_chats]]
name = "ops"
channel = "tg"
chat_id = "{team_id}"
budget = 1000
"""


async def conversations(db_url: str) -> int:
    """How many conversations the process stored."""
    db = Database(db_url)
    try:
        async with db.sessions() as session:
            return int(await session.scalar(text("SELECT count(*) FROM conversations")) or 0)
    finally:
        await db.dispose()


async def until(check: Callable[[], bool | Awaitable[bool]], within: float = 30.0) -> None:
    """Wait (real time) until ``check()`` holds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = check()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


async def test_the_end_to_end_scenario_at_debug_logs_no_secret(
    log_db_url: tuple[str, str],
    tmp_path: Path,
    smtp: tuple[Mailbox, int],
) -> None:
    mailbox, smtp_port = smtp
    backend, db_url = log_db_url
    if backend == "postgres":  # trust authentication ignores it; the URL (and the config) still carry it
        db_url = make_url(db_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with TelegramEmulator() as tg, XEmulator() as x:
        carol = tg.user("Carol", user_id=1003)
        team = tg.supergroup("Ops", bot_status="administrator", members=[carol])
        config = tmp_path / "inbox.toml"
        config.write_text(config_text(db_url, port, tg, x, smtp_port, team.id))
        env = child_env(**environ(tg, x))
        secrets = sorted(set(environ(tg, x).values()) | ({DB_PASSWORD} if backend == "postgres" else set()))
        assert {TG_WEBHOOK_SECRET, PARTNER_SECRET, SMTP_PASSWORD, tg.token, x.consumer_secret} <= set(secrets)
        done = await asyncio.to_thread(inbox_cli, "-c", str(config), "db", "upgrade", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        worker = start_run(config, env=env, log_level="DEBUG")
        try:
            await tg.wait_for(lambda: tg.bot.webhook is not None, within=30)
            ana = tg.user("Ana", username="ana_k")
            tg.user_dm(ana, "Where is my order?")  # Telegram posts it to our webhook with the secret
            x.post_mention("budi", "is the shop open?")  # found by polling
            dm = x.send_dm("citra", "refund please")
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
                body = json.dumps(x.activity_payload(dm)).encode()
                async with http.post(
                    f"{base}/webhooks/x/xs",
                    data=body,
                    headers={"x-twitter-webhooks-signature": webhook_signature(x.consumer_secret, body)},
                ) as answer:
                    assert answer.status == 200
                async with http.get(f"{base}/webhooks/x/xs", params={"crc_token": "abc123"}) as answer:
                    assert answer.status == 200
                form = {"name": "Dewi", "email": "dewi@example.org", "subject": "Hi", "message": "A question"}
                async with http.post(f"{base}/contact/website", data=form) as answer:
                    assert answer.status == 200
                event = json.dumps(
                    {
                        "external_id": "crm-1",
                        "kind": "dm",
                        "author": {"id": "crm-c"},
                        "text": "from the CRM",
                        "created_at": "2026-11-02T09:00:00Z",
                    }
                ).encode()
                headers = {
                    "Content-Type": "application/json",
                    **signed_headers(PARTNER_SECRET, event, _now()),
                }
                async with http.post(f"{base}/api/v1/inbound/partner", data=event, headers=headers) as answer:
                    assert answer.status == 202
                async with http.post(
                    f"{base}/api/v1/inbound/partner", data=event, headers={"X-Saluran-Signature": "sha256=00"}
                ) as answer:
                    assert answer.status == 401

            async def all_five() -> bool:
                return await conversations(db_url) >= 5

            await until(all_five)
            for conversation in range(1, 6):  # telegram, x mention, x dm, form, api (in some order)
                tg.group_message(team, carol, f"/reply {conversation} Thanks, we are on it ({conversation})")
            await tg.wait_for(lambda: bool(tg.sent(ana)), within=30)
            await until(lambda: len(x.posts_by_bot()) + len(x.dms_by_bot()) >= 2)
            await until(lambda: bool(mailbox.envelopes))
            assert worker.poll() is None
        finally:
            log = await asyncio.to_thread(stop_run, worker)
    lines = log.splitlines()
    leaks = [(secret, line) for line in lines for secret in secrets if secret in line]
    assert leaks == [], leaks[:5]
    # The libraries' own loggers were there (at DEBUG) and went through the redactor too.
    for logger in (" httpx:", " telegram.", " aiohttp.access:", " tweepy."):
        assert any(logger in line for line in lines), f"no line from{logger} in the log"
    assert REDACTED in log


def _now() -> datetime:
    return SystemClock().now()


def test_secrets_are_redacted_in_every_spelling_libraries_log_them() -> None:
    redact = Redactor(['k+y/s=cr&t"x'])
    for spelling in (
        'k+y/s=cr&t"x',
        "k%2By%2Fs%3Dcr%26t%22x",
        "k%252By%252Fs%253Dcr%2526t%2522x",
        'k+y/s=cr&t\\"x',
    ):
        assert redact(f"before {spelling} after") == f"before {REDACTED} after"


@pytest.mark.parametrize("json_lines", [False, True])
def test_secrets_with_json_special_characters_are_redacted_in_json_lines(json_lines: bool) -> None:
    secret = 'pa"ss\\word-with-quotes'
    formatter = RedactingFormatter(Redactor([secret]), json_lines=json_lines)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "login with %s failed", (secret,), None)
    line = formatter.format(record)
    assert secret not in line and json.dumps(secret)[1:-1] not in line and REDACTED in line


def test_sdk_loggers_with_handlers_of_their_own_are_routed_through_the_redactor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    sdk = logging.getLogger("discord")
    own = logging.StreamHandler()  # as discord.utils.setup_logging would add
    sdk.addHandler(own)
    sdk.propagate = False
    try:
        configure_logging("DEBUG", json_lines=False, secrets=["discord-token-0123456789"])
        sdk.debug("connecting with discord-token-0123456789")
        err = capsys.readouterr().err
        assert "discord-token-0123456789" not in err and REDACTED in err
        assert own not in sdk.handlers and sdk.propagate
    finally:
        root.handlers = saved[0]
        root.setLevel(saved[1])
        sdk.propagate = True
