"""The demo's world: emulated Telegram, X and Discord, a mailbox, a temporary SQLite database, and the
real runtime of ``inbox run`` on a clock that runs ``speed`` times faster than real time.

Nothing here is a shortcut around the product: every connector is built from a config by the
registry, gets its made-up tokens from environment variables named by ``*_env`` keys, and talks to
its emulator over HTTP (or a websocket) on 127.0.0.1 through the real SDK. Emulators listen on
port 0, so two demos never collide. ``DemoWorld`` is an async context manager that takes all of it
down again — runtime first, then the emulators — on exit, on Ctrl-C and on errors.

The platform packages are imported inside functions: ``inbox`` itself never imports a platform SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from inbox.app import App
from inbox.clock import ScaledClock
from inbox.demo.mailbox import Mailbox
from inbox.logs import RedactingFormatter, Redactor, settings_secrets
from inbox.settings import Settings, settings_from_dict

if TYPE_CHECKING:
    from connectors.discord.emulator import DiscordEmulator
    from connectors.telegram.emulator import EmuChat, EmuUser, TelegramEmulator
    from connectors.x.emulator import XEmulator, XUser

log = logging.getLogger(__name__)

# Monday 2 November 2026, 09:00 in Jakarta: the morning the payments went down.
DEMO_START = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
TIMEZONE = "Asia/Jakarta"
# The team: member name, display name, role. Each has a Telegram account in the team group.
TEAM: tuple[tuple[str, str, str], ...] = (
    ("alice", "Alice", "admin"),
    ("bob", "Bob", "lead"),
    ("budi", "Budi", "agent"),
)
# Someone in the team group who is not in [[members]]: the bot refuses their commands.
STRANGER = ("rudi", "Rudi")
TEAM_CHAT = "ops"
START_TIMEOUT = 20.0  # real seconds for every connector to be up
STOP_TIMEOUT = 20.0  # real seconds for the runtime to stop cleanly before it is cancelled

_ENV = {
    "telegram": "SALURAN_DEMO_TELEGRAM_TOKEN",
    "discord": "SALURAN_DEMO_DISCORD_TOKEN",
    "x_consumer_key": "SALURAN_DEMO_X_CONSUMER_KEY",
    "x_consumer_secret": "SALURAN_DEMO_X_CONSUMER_SECRET",
    "x_access_token": "SALURAN_DEMO_X_ACCESS_TOKEN",
    "x_access_token_secret": "SALURAN_DEMO_X_ACCESS_TOKEN_SECRET",
}
_LISTENING = re.compile(r"https?://127\.0\.0\.1:\d+")


class DemoError(RuntimeError):
    """The demo's world could not be set up (the message says which part and where the log is)."""


class DemoInterrupted(DemoError):
    """Ctrl-C (or SIGTERM) arrived while the world was starting."""


def discord_ready() -> bool:
    """Whether the Discord connector is importable and exports ``build`` (it is optional in the demo)."""
    try:
        module = importlib.import_module("connectors.discord")
        importlib.import_module("connectors.discord.emulator")
    except Exception:
        return False
    return callable(getattr(module, "build", None))


@dataclass
class Tokens:
    """Made-up credentials for the emulators; the connectors read them from environment variables."""

    telegram: str
    discord: str
    x_consumer_key: str
    x_consumer_secret: str
    x_access_token: str
    x_access_token_secret: str

    @classmethod
    def make_up(cls, x_user_id: str) -> Tokens:
        """Fresh random credentials, shaped like each platform's."""
        bot_id = 6_000_000_000 + secrets.randbelow(900_000_000)
        return cls(
            telegram=f"{bot_id}:{secrets.token_urlsafe(30)}",
            discord=secrets.token_urlsafe(48),
            x_consumer_key=secrets.token_urlsafe(18),
            x_consumer_secret=secrets.token_urlsafe(36),
            # tweepy reads the account's id from the access token's prefix, as X issues them.
            x_access_token=f"{x_user_id}-{secrets.token_urlsafe(30)}",
            x_access_token_secret=secrets.token_urlsafe(33),
        )

    def environ(self) -> dict[str, str]:
        """Variable name -> value."""
        return {name: getattr(self, key) for key, name in _ENV.items()}


class _WebUrl(logging.Handler):
    """Learns the web server's address (it listens on port 0) from its "listening on" log line."""

    def __init__(self, url: asyncio.Future[str]) -> None:
        super().__init__(logging.INFO)
        self.url = url

    def emit(self, record: logging.LogRecord) -> None:
        """Resolve ``url`` with the first 127.0.0.1 address the server logs."""
        found = _LISTENING.search(record.getMessage())
        if found is not None and not self.url.done():
            self.url.get_loop().call_soon_threadsafe(_resolve, self.url, found.group(0))


def _resolve(future: asyncio.Future[str], value: str) -> None:
    if not future.done():
        future.set_result(value)


class DemoWorld:
    """Emulators, mailbox, database and the running runtime of one demo; use it as ``async with``."""

    telegram: TelegramEmulator
    team_chat: EmuChat
    x: XEmulator

    def __init__(self, speed: float, *, keep: bool = False, with_discord: bool = True) -> None:
        self.speed = speed
        self.keep = keep
        self.with_discord = with_discord
        self.clock = ScaledClock(speed, DEMO_START)
        self.started_at = DEMO_START
        self.workdir = Path(tempfile.mkdtemp(prefix="saluran-demo-"))
        self.team_accounts: dict[str, EmuUser] = {}
        self.discord: DiscordEmulator | None = None
        self.mailbox = Mailbox()
        self.app: App | None = None
        self.settings: Settings | None = None
        self.form_url = ""
        self.stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._customers: dict[str, EmuUser] = {}
        self.x_handles: dict[str, str] = {}  # X user id -> handle, for the transcript
        self._env_before: dict[str, str | None] = {}
        self._log_state: tuple[list[logging.Handler], int] | None = None
        self._web_catcher: _WebUrl | None = None
        self._started: list[Any] = []

    async def __aenter__(self) -> DemoWorld:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- start -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the emulators and the mailbox, write the config, open the database, run the runtime."""
        from connectors.telegram.emulator import TelegramEmulator
        from connectors.x.emulator import XEmulator

        x_user_id = "1580000000000000001"
        tokens = Tokens.make_up(x_user_id)
        self.x = XEmulator(
            clock=lambda: self.clock.now().timestamp(),
            bot_user_id=x_user_id,
            bot_username="saluran_help",
            bot_name="Saluran Help",
            consumer_key=tokens.x_consumer_key,
            consumer_secret=tokens.x_consumer_secret,
            access_token=tokens.x_access_token,
            access_token_secret=tokens.x_access_token_secret,
            bearer_token=secrets.token_urlsafe(30),
            app_bearer_token=None,
        )
        await self.x.start("127.0.0.1", 0)
        self._started.append(self.x)

        self.telegram = TelegramEmulator(tokens.telegram, bot_username="saluran_help_bot", clock=self.clock)
        await self.telegram.start("127.0.0.1", 0)
        self._started.append(self.telegram)
        self._populate_telegram()

        if self.with_discord:
            from connectors.discord.emulator import DiscordEmulator

            self.discord = DiscordEmulator(token=tokens.discord, clock=self.clock)
            await self.discord.start("127.0.0.1", 0)
            self._started.append(self.discord)
            self.discord.add_user("siti", global_name="Siti Rahma")

        await self.mailbox.start("127.0.0.1")
        self._set_environ(tokens.environ())
        self.settings = settings_from_dict(self.config(), environ={k: os.environ[k] for k in _ENV.values()})
        self._configure_logging(self.settings)
        self.app = await App.open(self.settings, self.clock, migrate=True)
        self._start_runtime()
        await self._wait_until_up()
        # The story starts now: time spent starting (many demo minutes at high speed) is not its time.
        self.started_at = self.clock.now()

    def _populate_telegram(self) -> None:
        """The team's supergroup (a forum, the bot an administrator) with the members and a stranger."""
        emu = self.telegram
        accounts = [emu.user(display, username=f"{name}_saluran") for name, display, _ in TEAM]
        stranger = emu.user(STRANGER[1], username=f"{STRANGER[0]}_intern")
        self.team_chat = emu.supergroup(
            "Saluran Ops", is_forum=True, bot_status="administrator", members=[*accounts, stranger]
        )
        self.team_accounts = {name: account for (name, _, _), account in zip(TEAM, accounts, strict=True)}
        self.team_accounts[STRANGER[0]] = stranger

    def config(self) -> dict[str, Any]:
        """The demo's configuration: every channel pointed at its emulator, secrets by ``*_env`` name."""
        speed = self.speed
        channels: list[dict[str, Any]] = [
            {
                "name": "telegram",
                "type": "telegram",
                "token_env": _ENV["telegram"],
                "api_base_url": self.telegram.url,
                "poll_timeout": 2,
                "request_timeout": 10,
            },
            {
                "name": "x",
                "type": "x",
                "api_base_url": self.x.base_url,
                "consumer_key_env": _ENV["x_consumer_key"],
                "consumer_secret_env": _ENV["x_consumer_secret"],
                "access_token_env": _ENV["x_access_token"],
                "access_token_secret_env": _ENV["x_access_token_secret"],
                # Clock seconds: about one poll per real second at any speed.
                "poll_interval": max(1.0, speed),
                "request_timeout": 10,
            },
            {
                "name": "website",
                "type": "webform",
                "title": "Contact Saluran Pay",
                "from_address": "help@saluran.example",
                "from_name": "Saluran Pay Help",
                "smtp_host": "127.0.0.1",
                "smtp_port": self.mailbox.port,
                "smtp_security": "none",
                "smtp_timeout": 5,
            },
        ]
        if self.discord is not None:
            channels.append(
                {
                    "name": "discord",
                    "type": "discord",
                    "token_env": _ENV["discord"],
                    "api_base_url": self.discord.api_base,
                    "gateway_url": self.discord.gateway_url,
                }
            )
        members = [
            {"name": name, "display_name": display, "role": role, "telegram_id": self.team_accounts[name].id}
            for name, display, role in TEAM
        ]
        return {
            "database": {"url": f"sqlite:///{self.workdir / 'demo.db'}"},
            "general": {"timezone": TIMEZONE, "language": "en"},
            # Clock seconds: the dispatcher looks for due rows about five times a real second.
            "outbox": {"idle_interval": max(0.05, 0.2 * speed)},
            "web": {"host": "127.0.0.1", "port": 0},
            "reports": {"enabled": False},
            "sla": {"policies": demo_policies()},
            "members": members,
            "channels": channels,
            # Telegram allows a group 20 messages a minute; notices get 15 of them, so that answers
            # to commands (sent at once, outside the outbox) still fit in a busy minute.
            "team_chats": [
                {"name": TEAM_CHAT, "channel": "telegram", "chat_id": str(self.team_chat.id), "budget": 15}
            ],
        }

    def _set_environ(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._env_before.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _configure_logging(self, settings: Settings) -> None:
        """Logs go to demo.log in the work folder (secrets redacted); only errors reach the terminal."""
        root = logging.getLogger()
        self._log_state = (list(root.handlers), root.level)
        redact = Redactor(settings_secrets(settings))
        to_file = logging.FileHandler(self.workdir / "demo.log", encoding="utf-8")
        to_file.setFormatter(RedactingFormatter(redact))
        to_terminal = logging.StreamHandler()
        to_terminal.setLevel(logging.ERROR)
        to_terminal.setFormatter(RedactingFormatter(redact))
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(to_file)
        root.addHandler(to_terminal)
        root.setLevel(logging.INFO)
        # Quiet libraries that log every request at INFO.
        for name in ("httpx", "aiohttp.access", "discord", "websockets"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._web_catcher = _WebUrl(asyncio.get_running_loop().create_future())
        logging.getLogger("inbox.web.server").addHandler(self._web_catcher)

    def _start_runtime(self) -> None:
        from inbox.runtime import run_forever

        assert self.app is not None
        runtime = run_forever(self.app, self.workdir, self.stop)
        self._runner = asyncio.create_task(runtime, name="demo:runtime")

    async def _wait_until_up(self) -> None:
        """Wait until the web server listens and every platform session is connected."""
        assert self._web_catcher is not None and self._runner is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT

        async def within(what: str, waiter: Any) -> Any:
            remaining = max(0.1, deadline - loop.time())
            watched = asyncio.ensure_future(waiter)
            assert self._runner is not None
            done, _ = await asyncio.wait({watched, self._runner}, timeout=remaining,
                                         return_when=asyncio.FIRST_COMPLETED)
            if watched in done:
                return watched.result()
            watched.cancel()
            await asyncio.gather(watched, return_exceptions=True)
            if self.stop.is_set():
                raise DemoInterrupted("interrupted while starting")
            if self._runner is not None and self._runner.done():
                error = self._runner.exception() if not self._runner.cancelled() else None
                raise DemoError(f"the runtime stopped while starting: {error}; see {self.log_path}")
            raise DemoError(f"{what} did not start within {START_TIMEOUT:.0f} s; see {self.log_path}")

        base = await within("the web server (contact form)", self._web_catcher.url)
        self.form_url = f"{base}/contact/website"
        polling = self.telegram.wait_for_request("getUpdates", within=START_TIMEOUT)
        await within("the Telegram connector", polling)
        await within("the X connector", self._x_polled())
        if self.discord is not None:
            await within("the Discord connector", self.discord.wait_connected(within=START_TIMEOUT))

    async def _x_polled(self) -> None:
        while not self.x.calls("GET", "/2/users/*/mentions"):  # noqa: ASYNC110 - the emulator has no event
            await asyncio.sleep(0.05)

    async def settle(self, within: float = 10.0) -> bool:
        """Wait (real seconds) until no customer reply waits in the outbox; False if one still does."""
        from sqlalchemy import func, select
        from sqlmodel import col

        from inbox.models import Delivery, DeliveryStatus
        from inbox.notify import is_team_destination

        assert self.app is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        waiting = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)
        while True:
            async with self.app.db.sessions() as session:
                rows = await session.execute(
                    select(col(Delivery.destination), func.count())
                    .where(col(Delivery.status).in_(waiting)).group_by(col(Delivery.destination))
                )
                customers = sum(n for destination, n in rows if not is_team_destination(destination))
            if customers == 0:
                return True
            if loop.time() > deadline or not self.running():
                return False
            await asyncio.sleep(0.1)

    @property
    def log_path(self) -> Path:
        """The demo's log file."""
        return self.workdir / "demo.log"

    # --- the world's people --------------------------------------------------------------------

    def telegram_customer(self, name: str, *, username: str | None = None, language: str = "en") -> EmuUser:
        """The Telegram account of a customer (made on first use)."""
        found = self._customers.get(name)
        if found is None:
            found = self.telegram.user(name, username=username, language_code=language)
            self._customers[name] = found
        return found

    def x_account(self, handle: str, name: str) -> XUser:
        """The X account of a customer (made on first use)."""
        user = self.x.add_user(handle, name)
        self.x_handles[user.id] = user.username
        return user

    def running(self) -> bool:
        """True while the runtime runs."""
        return self._runner is not None and not self._runner.done()

    # --- stop ------------------------------------------------------------------------------------

    async def stop_runtime(self) -> None:
        """Stop the runtime cleanly (the emulators and the database stay, to be looked at)."""
        self.stop.set()
        if self._runner is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._runner), STOP_TIMEOUT)
            except TimeoutError:
                log.error("the runtime did not stop within %.0f s; cancelling it", STOP_TIMEOUT)
                self._runner.cancel()
                await asyncio.gather(self._runner, return_exceptions=True)
            except Exception:
                log.exception("the runtime ended with an error")
            self._runner = None

    async def close(self) -> None:
        """Stop the runtime, then the emulators and the mailbox; restore logging and the environment;
        remove the work folder unless ``keep``. Safe to call twice and after a failed start."""
        await self.stop_runtime()
        if self.app is not None:
            if self.keep:
                self._write_config()
            await self.app.close()
            self.app = None
        for emulator in reversed(self._started):
            try:
                await emulator.stop()
            except Exception:
                log.exception("stopping %s failed", type(emulator).__name__)
        self._started.clear()
        await self.mailbox.stop()
        self._restore_logging()
        for name, value in self._env_before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._env_before.clear()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _restore_logging(self) -> None:
        if self._web_catcher is not None:
            logging.getLogger("inbox.web.server").removeHandler(self._web_catcher)
            self._web_catcher = None
        if self._log_state is None:
            return
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
            with contextlib.suppress(Exception):
                handler.close()
        handlers, level = self._log_state
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        self._log_state = None

    def _write_config(self) -> None:
        """With ``--keep``: a config to explore the database afterwards (no channels: emulators are gone)."""
        lines = [
            f'[database]\nurl = "sqlite:///{self.workdir / "demo.db"}"\n',
            f'[general]\ntimezone = "{TIMEZONE}"\n',
            "[sla]\n" + "".join(f"[[sla.policies]]\n{_toml_table(p)}\n" for p in demo_policies()),
        ]
        for name, display, role in TEAM:
            lines.append(f'[[members]]\nname = "{name}"\ndisplay_name = "{display}"\nrole = "{role}"\n')
        (self.workdir / "inbox.toml").write_text("\n".join(lines), encoding="utf-8")


def demo_policies() -> list[dict[str, Any]]:
    """The demo's SLA policies, short enough to see warnings, breaches and the ladder in minutes."""
    return [
        {
            "name": "press",
            "tags": ["press"],
            "first_response": "15m",
            "resolution": "2h",
            "warn_at": 0.5,
            "ladder": [{"after": "0m", "notify": ["assignee", "leads"], "urgent": True}],
        },
        {
            "name": "outage",
            "first_response": "20m",
            "next_response": "20m",
            "resolution": "4h",
            "warn_at": 0.5,
            "ladder": [
                {"after": "5m", "notify": ["assignee", "leads"], "raise_priority": "high"},
                {"after": "12m", "notify": ["admins"], "urgent": True},
            ],
        },
    ]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_table(values: dict[str, Any]) -> str:
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in values.items())
