"""One settings model: a TOML file for everything, environment variables for secrets."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from sqlalchemy.engine import make_url

from inbox.durations import DurationError, parse_duration
from inbox.models import Role
from inbox.reports.config import ReportSettings
from inbox.sla.policy import SlaSettings

DEFAULT_CONFIG_PATH = "inbox.toml"
DATABASE_URL_ENV = "INBOX_DATABASE_URL"
MASK = "********"


class ConfigError(Exception):
    """A configuration that cannot be used; ``problems`` has one line per key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def check_timezone(name: str) -> str:
    """Return ``name`` if it is a known IANA timezone, else raise ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone '{name}' (use an IANA name such as Asia/Jakarta)") from None
    return name


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Strict):
    """Where the data lives."""

    url: str = "sqlite+aiosqlite:///saluran.db"

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        try:
            backend = make_url(value).get_backend_name()
        except Exception:
            raise ValueError(f"'{mask_url(value)}' is not a database URL") from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database '{backend}': use sqlite or postgresql")
        return value


class GeneralSettings(Strict):
    """Team-wide behaviour."""

    timezone: str = "UTC"
    language: str = "en"
    reopen_window: Duration = timedelta(days=7)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in ("en", "id"):
            raise ValueError("language must be 'en' (English) or 'id' (Indonesian)")
        return value


class OutboxSettings(Strict):
    """How deliveries are retried."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    base_delay: Duration = timedelta(seconds=5)
    max_delay: Duration = timedelta(hours=1)
    lease: Duration = timedelta(minutes=2)
    batch_size: int = Field(default=50, ge=1, le=1000)
    idle_interval: Duration = timedelta(seconds=1)


class WebSettings(Strict):
    """The ``[web]`` section: the HTTP server of ``inbox run`` (form, inbound API, health, metrics)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0 picks a free port (tests)
    public_url: str | None = None
    trusted_proxies: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=65_536, ge=1024, le=10_485_760)

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"'{item}' is not an IP address or network (e.g. 10.0.0.0/8)") from None
        return value


class RuntimeSettings(Strict):
    """How ``inbox run`` processes share work and log."""

    # Log level (DEBUG, INFO, WARNING, ERROR) and format: "plain" lines or "json" objects.
    # INBOX_LOG_LEVEL in the environment overrides the level. Secrets are always redacted.
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|debug|info|warning|error)$")
    log_format: str = Field(default="plain", pattern=r"^(plain|json)$")

    # A lease (unique poller, gateway, long poll) whose holder stops renewing it is taken over by
    # another process after this long; holders renew at a third of it.
    lease_ttl: Duration = timedelta(seconds=30)


class MemberSettings(Strict):
    """A team member and the ids that identify them on each platform."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    role: Role = Role.AGENT
    display_name: str | None = None
    telegram_id: int | None = None
    discord_id: int | None = None
    x_id: str | None = None

    def platform_ids(self) -> dict[str, str]:
        """Platform user ids as strings, keyed by platform."""
        ids = {"telegram": self.telegram_id, "discord": self.discord_id, "x": self.x_id}
        return {k: str(v) for k, v in ids.items() if v is not None}


class ChannelSettings(BaseModel):
    """A channel: name and connector type here; the connector validates its own keys."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    type: str = Field(min_length=1)
    secrets: dict[str, SecretStr] = Field(default_factory=dict, exclude=True)

    def options(self) -> dict[str, Any]:
        """The connector-specific keys (everything but name and type)."""
        return dict(self.model_extra or {})

    def secret(self, key: str) -> str:
        """The resolved value of ``<key>_env``."""
        return self.secrets[key].get_secret_value()


# Send budgets of a team chat by the type of the channel hosting it: (messages, per window).
# Telegram allows a bot about 20 messages a minute in one group; Discord 5 per 5 seconds per channel.
TEAM_CHAT_BUDGETS: dict[str, tuple[int, timedelta]] = {
    "telegram": (20, timedelta(minutes=1)),
    "discord": (5, timedelta(seconds=5)),
}
DEFAULT_TEAM_CHAT_BUDGET: tuple[int, timedelta] = (30, timedelta(minutes=1))
NOTICE_PURPOSES = ("card", "sla", "failed", "health", "budget")


def _chat_id(value: Any) -> Any:
    # Telegram group ids are (negative) integers; TOML users will write them unquoted.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class TeamChatSettings(Strict):
    """A team chat the notifier posts to, hosted by a configured channel's bot or connector."""

    name: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")
    channel: str = Field(min_length=1)
    chat_id: Annotated[str, BeforeValidator(_chat_id)] = Field(min_length=1, max_length=200)
    language: str | None = None
    budget: int | None = Field(default=None, ge=2, le=10_000)
    window: Duration | None = None
    priority_reserve: int | None = Field(default=None, ge=0)
    hears: list[str] = Field(default_factory=lambda: list(NOTICE_PURPOSES))
    channels: list[str] = Field(default_factory=list)

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is not None and value not in ("en", "id"):
            raise ValueError("language must be 'en' (English) or 'id' (Indonesian)")
        return value

    @field_validator("window")
    @classmethod
    def _positive_window(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("window must be longer than zero")
        return value

    @field_validator("hears")
    @classmethod
    def _known_purposes(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in NOTICE_PURPOSES]
        if unknown:
            raise ValueError(f"unknown notice kind(s) {', '.join(unknown)}: use {', '.join(NOTICE_PURPOSES)}")
        return value

    def limits(self, channel_type: str) -> tuple[int, timedelta, int]:
        """(budget, window, priority reserve): the configured values, else the hosting platform's defaults.

        The reserve is the part of the budget that only SLA alerts, failures, health and budget notices
        and urgent conversations may use; by default a fifth of it.
        """
        default_budget, default_window = TEAM_CHAT_BUDGETS.get(channel_type, DEFAULT_TEAM_CHAT_BUDGET)
        budget = self.budget if self.budget is not None else default_budget
        window = self.window if self.window is not None else default_window
        reserve = self.priority_reserve if self.priority_reserve is not None else budget // 5
        return budget, window, reserve


class Settings(Strict):
    """The whole configuration."""

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    general: GeneralSettings = Field(default_factory=GeneralSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    members: list[MemberSettings] = Field(default_factory=list)
    channels: list[ChannelSettings] = Field(default_factory=list)
    sla: SlaSettings = Field(default_factory=SlaSettings)
    web: WebSettings | None = None  # the HTTP server runs only when [web] is configured
    team_chats: list[TeamChatSettings] = Field(default_factory=list)
    runtime: RuntimeSettings = Field(default_factory=lambda: RuntimeSettings())
    reports: ReportSettings = Field(default_factory=ReportSettings)  # the weekly post (docs/reports.md)

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        for label, names in (
            ("members", [m.name for m in self.members]),
            ("channels", [c.name for c in self.channels]),
            ("team_chats", [c.name for c in self.team_chats]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{label}: duplicate name(s) {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _team_chat_references(self) -> Settings:
        problems: list[InitErrorDetails] = []

        def problem(index: int, key: str, message: str, value: Any) -> None:
            problems.append(InitErrorDetails(type=PydanticCustomError("team_chat", message),
                                             loc=("team_chats", index, key), input=value))

        for index, chat in enumerate(self.team_chats):
            host = self.channel(chat.channel)
            if host is None:
                problem(index, "channel", f"'{chat.channel}' is not a configured channel", chat.channel)
            unknown = [c for c in chat.channels if self.channel(c) is None]
            if unknown:
                problem(index, "channels", f"not configured: {', '.join(unknown)}", chat.channels)
            budget, _window, reserve = chat.limits(host.type if host else "")
            if reserve > budget - 2:
                problem(index, "priority_reserve", f"must leave room in the budget of {budget}: at most "
                        f"{budget - 2} (one message is kept for the digest, one for new conversations)",
                        reserve)
        if problems:
            raise ValidationError.from_exception_data("Settings", problems)
        return self

    def channel(self, name: str) -> ChannelSettings | None:
        """The channel with that name, if configured."""
        return next((c for c in self.channels if c.name == name), None)

    def masked(self) -> dict[str, Any]:
        """The configuration as a dict with every secret masked: the only form ever printed."""
        data = self.model_dump(mode="json")
        data["database"]["url"] = mask_url(self.database.url)
        for raw, channel in zip(data["channels"], self.channels, strict=True):
            for key in channel.secrets:
                raw[key] = MASK
        return data


def mask_url(url: str) -> str:
    """Hide the password of a database URL."""
    try:
        parsed = make_url(url)
    except Exception:
        return MASK
    return parsed.render_as_string(hide_password=True)  # the password becomes ***


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _describe(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def settings_from_dict(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Validate a parsed config, resolve secrets from the environment, or raise ConfigError."""
    env = os.environ if environ is None else environ
    data = dict(data)
    if env.get(DATABASE_URL_ENV):
        data["database"] = {**dict(data.get("database") or {}), "url": env[DATABASE_URL_ENV]}
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"{_location(e['loc'])}: {_describe(e)}" for e in exc.errors()]) from None
    problems = _resolve_secrets(settings, env)
    problems += _check_connectors(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def _resolve_secrets(settings: Settings, env: Mapping[str, str]) -> list[str]:
    problems = []
    for index, channel in enumerate(settings.channels):
        for key, value in channel.options().items():
            if not key.endswith("_env"):
                continue
            where = f"channels[{index}].{key}"
            if not isinstance(value, str) or not value:
                problems.append(f"{where}: must name an environment variable")
            elif not env.get(value):
                problems.append(f"{where}: environment variable {value} is not set")
            else:
                channel.secrets[key.removesuffix("_env")] = SecretStr(env[value])
    return problems


def _check_connectors(settings: Settings) -> list[str]:
    from inbox.registry import UnknownConnector, channel_options_model

    problems = []
    for index, channel in enumerate(settings.channels):
        where = f"channels[{index}]"
        try:
            model = channel_options_model(channel.type)
        except UnknownConnector as exc:
            problems.append(f"{where}.type: {exc}")
            continue
        try:
            model.model_validate(channel.options())
        except ValidationError as exc:
            problems += [f"{where}.{_location(e['loc'])}: {_describe(e)}" for e in exc.errors()]
    return problems


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a TOML config file, or raise ConfigError."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: config file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file}: not valid TOML ({exc})"]) from None
    return settings_from_dict(data, environ)
