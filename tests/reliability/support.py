"""Shared pieces of the reliability suite: "workers" (an App with its connectors and web application,
as one `inbox run` process builds them), platform payloads, subprocess helpers and row counts.

The suite stands on its own: what other test folders also have (a stamped schema, the emulators'
settings) is rebuilt here in a few lines so that each guarantee's test reads on its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from connectors.telegram.emulator import EmuChat, TelegramEmulator
from connectors.x.emulator import XEmulator
from inbox.app import App
from inbox.clock import Clock
from inbox.db import Database
from inbox.migrate import head_revision
from inbox.runtime import Runtime
from inbox.settings import Settings, settings_from_dict
from inbox.web.server import build_web_app

ROOT = Path(__file__).resolve().parents[2]

# Every secret the suite configures: long and distinct, so a search of the logs cannot miss one.
TG_TOKEN_ENV, TG_SECRET_ENV = "REL_TG_TOKEN", "REL_TG_WEBHOOK_SECRET"
TG_WEBHOOK_SECRET = "tg-webhook-Secret_0123456789abcdef"
PARTNER_SECRET = "partner-hmac-secret-0123456789abcdef"
SMTP_PASSWORD = "smtp-password-0123456789abcdef"
X_KEYS = ("X_CONSUMER_KEY", "X_CONSUMER_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET", "X_BEARER")
TG_PATH = "/webhooks/telegram/tg"
X_PATH = "/webhooks/x/xs"
API_PATH = "/api/v1/inbound/partner"
FORM_PATH = "/contact/website"

MEMBERS: list[dict[str, Any]] = [
    {"name": "alice", "role": "admin", "telegram_id": 1001, "discord_id": 2001},
    {"name": "bob", "role": "lead", "telegram_id": 1002},
    {"name": "carol", "role": "agent", "telegram_id": 1003},
]


# --- configuration ----------------------------------------------------------------------------------


def environ(tg: TelegramEmulator | None = None, x: XEmulator | None = None) -> dict[str, str]:
    """The environment variables the suite's channels read their secrets from."""
    env = {
        TG_SECRET_ENV: TG_WEBHOOK_SECRET,
        "REL_PARTNER_SECRET": PARTNER_SECRET,
        "REL_SMTP_PASSWORD": SMTP_PASSWORD,
    }
    if tg is not None:
        env[TG_TOKEN_ENV] = tg.token
    if x is not None:
        env.update(
            zip(
                X_KEYS,
                (x.consumer_key, x.consumer_secret, x.access_token, x.access_token_secret, x.bearer_token),
                strict=True,
            )
        )
    return env


def telegram_channel(tg: TelegramEmulator, **overrides: Any) -> dict[str, Any]:
    """A telegram channel on the emulator (webhook mode unless overridden)."""
    return {
        "name": "tg",
        "type": "telegram",
        "token_env": TG_TOKEN_ENV,
        "api_base_url": tg.url,
        "mode": "webhook",
        "webhook_secret_env": TG_SECRET_ENV,
        "webhook_url": f"http://127.0.0.1:9{TG_PATH}",
        "poll_timeout": 0.5,
        "request_timeout": 5,
        **overrides,
    }


def x_channel(x: XEmulator, **overrides: Any) -> dict[str, Any]:
    """An x channel on the emulator with its Account Activity webhook."""
    return {
        "name": "xs",
        "type": "x",
        "api_base_url": x.base_url,
        "consumer_key_env": X_KEYS[0],
        "consumer_secret_env": X_KEYS[1],
        "access_token_env": X_KEYS[2],
        "access_token_secret_env": X_KEYS[3],
        "webhook_path": X_PATH,
        "user_id": x.bot.id,
        "poll_interval": 3600,
        "request_timeout": 5,
        **overrides,
    }


def api_channel(**overrides: Any) -> dict[str, Any]:
    """The signed inbound API channel ``partner``."""
    return {"name": "partner", "type": "api", "secret_env": "REL_PARTNER_SECRET", **overrides}


def webform_channel(**overrides: Any) -> dict[str, Any]:
    """The contact form ``website`` (replies would go to a local SMTP relay)."""
    return {
        "name": "website",
        "type": "webform",
        "from_address": "help@example.org",
        "smtp_host": "127.0.0.1",
        "smtp_port": 2525,
        "smtp_security": "none",
        "rate_limit": 3,
        "rate_window": "10m",
        "max_message_length": 2000,
        **overrides,
    }


def settings_for(
    db_url: str,
    channels: list[dict[str, Any]],
    env: Mapping[str, str],
    *,
    team: EmuChat | None = None,
    team_budget: int | None = 1000,
    **sections: Any,
) -> Settings:
    """Settings with the suite's team, the given channels and (with ``team``) the team chat ``ops`` on tg
    (``team_budget`` None: Telegram's default send budget, with digests)."""
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "members": MEMBERS,
        "channels": channels,
        "web": {"max_body_bytes": 8192},
        **sections,
    }
    if team is not None:
        chat: dict[str, Any] = {"name": "ops", "channel": "tg", "chat_id": str(team.id)}
        if team_budget is not None:
            chat["budget"] = team_budget
        data["team_chats"] = [chat]
    return settings_from_dict(data, environ=dict(env))


# --- workers ----------------------------------------------------------------------------------------


async def stamp_head(db: Database) -> None:
    """Mark a schema made by ``create_all`` as migrated to head (App.open refuses it otherwise)."""
    async with db.engine.begin() as conn:
        await conn.execute(
            text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)")
        )
        await conn.execute(text("DELETE FROM alembic_version"))
        await conn.execute(
            text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head_revision()}
        )


@dataclass
class Worker:
    """What one `inbox run` process builds: the App (its own database engine), the connectors as the
    runtime builds them, and the one web application, served on 127.0.0.1."""

    app: App
    runtime: Runtime
    client: TestClient[Any, Any]

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        """POST raw bytes; return (status, body text)."""
        response = await self.client.post(path, data=body, headers=dict(headers))
        return response.status, await response.text()

    async def close(self) -> None:
        """Stop serving and release the connectors and the engine."""
        await self.client.close()
        for connector in self.runtime.connectors.values():
            if connector.close is not None:
                await connector.close()
        await self.app.close()


async def open_worker(settings: Settings, clock: Clock, base_dir: Path) -> Worker:
    """Open an App on the settings' database and build its connectors and web application."""
    app = await App.open(settings, clock)
    runtime = Runtime(app, base_dir)
    runtime.build_connectors()
    missing = sorted({c.name for c in settings.channels} - set(runtime.connectors))
    assert not missing, f"channels not built: {missing}"
    client: TestClient[Any, Any] = TestClient(TestServer(build_web_app(app, runtime.connectors.values())))
    await client.start_server()
    return Worker(app, runtime, client)


# --- platform payloads --------------------------------------------------------------------------------


def telegram_dm(
    update_id: int, user_id: int, text: str, *, message_id: int = 1, date: int = 1793610000
) -> dict[str, Any]:
    """A Telegram update carrying a customer's private message, as Telegram posts it to a webhook."""
    user = {"id": user_id, "is_bot": False, "first_name": "Ana"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": date,
            "chat": {**user, "type": "private"},
            "from": user,
            "text": text,
        },
    }


def telegram_group_message(
    update_id: int, chat: EmuChat, user_id: int, text: str, *, message_id: int
) -> dict[str, Any]:
    """A Telegram update carrying a message in a group (e.g. a member's command in the team chat)."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1793610000,
            "chat": {"id": chat.id, "type": "supergroup", "title": chat.title},
            "from": {"id": user_id, "is_bot": False, "first_name": "Member"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        },
    }


def telegram_headers(secret: str | None = TG_WEBHOOK_SECRET) -> dict[str, str]:
    """Headers of a Telegram webhook POST (the secret token header left out with None)."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return headers


def encode(payload: Any) -> bytes:
    """JSON bytes as a platform sends them."""
    return json.dumps(payload, separators=(",", ":")).encode()


# --- rows -------------------------------------------------------------------------------------------


async def count(db: Database, model: Any, *where: Any) -> int:
    """How many rows of ``model`` match."""
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def rows(db: Database, model: Any, *where: Any) -> list[Any]:
    """Rows of ``model`` that match, by id."""
    async with db.sessions() as session:
        query = select(model).where(*where).order_by(model.id)
        return list((await session.execute(query)).scalars())


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0, step: float = 0.02) -> Any:
    """Wait (real time) until ``await check()`` is truthy; return it, or fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {within}s (last value: {value!r})")
        await asyncio.sleep(step)


# --- `inbox` subprocesses ------------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """The environment of an `inbox` subprocess: this checkout importable, plus ``extra``."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def inbox_cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run one `inbox` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "inbox.cli.main", *args],
        cwd=cwd,
        env=dict(env or child_env()),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# Output of the processes start_run started, by pid. A file, not a pipe: at DEBUG a process writes more
# than a pipe holds, and one that nobody reads from blocks on its next log line.
_RUN_LOGS: dict[int, IO[str]] = {}


def start_run(
    config: Path, *, env: Mapping[str, str] | None = None, log_level: str = "INFO"
) -> subprocess.Popen[str]:
    """Start `inbox run` in the background; everything it writes is returned by ``stop_run``."""
    log = tempfile.TemporaryFile("w+", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "inbox.cli.main", "-c", str(config), "run"],
        cwd=config.parent,
        env={**dict(env or child_env()), "INBOX_LOG_LEVEL": log_level},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _RUN_LOGS[proc.pid] = log
    return proc


def stop_run(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    """SIGTERM (if still running), wait, and return everything it wrote."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log = _RUN_LOGS.pop(proc.pid, None)
    if log is None:
        return ""
    with log:
        log.seek(0)
        return log.read()


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, step: float = 0.1) -> Any:
    """Poll a blocking predicate (real time); return its truthy value or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s (last value: {value!r})")
        time.sleep(step)


def psql(url: str, sql: str) -> str:
    """Run one SQL statement with psql against a PostgreSQL URL; return its unaligned output."""
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    done = subprocess.run(["psql", plain, "-Atc", sql], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@dataclass
class JsonlFeed:
    """A file of neutral events that a jsonl channel tails."""

    path: Path
    written: int = 0
    texts: dict[str, str] = field(default_factory=dict)

    def append(self, count: int, *, prefix: str = "m") -> list[str]:
        """Append ``count`` customer DMs (each from its own customer); return their external ids."""
        ids = []
        with self.path.open("a", encoding="utf-8") as fh:
            for _ in range(count):
                n = self.written
                self.written += 1
                external = f"{prefix}{n}"
                self.texts[external] = f"message {n}"
                fh.write(
                    json.dumps(
                        {
                            "external_id": external,
                            "kind": "dm",
                            "author": {"id": f"c{n}"},
                            "text": f"message {n}",
                            "created_at": "2026-11-02T09:00:00Z",
                        }
                    )
                    + "\n"
                )
                ids.append(external)
        return ids
