"""Logging for `inbox run`: plain or JSON lines, with every configured secret redacted.

Redaction happens on the formatted line (message, arguments and traceback alike), so a secret
that reaches a log record by any path — a bot token inside a Telegram API URL logged by an HTTP
library, a password in an exception — is replaced before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote

from sqlalchemy.engine import make_url

from inbox.settings import Settings

REDACTED = "[redacted]"
# Telegram puts the bot token in the URL path: https://api.telegram.org/bot<id>:<secret>/getMe
_BOT_TOKEN_IN_URL = re.compile(r"(/bot|/file/bot)\d+:[A-Za-z0-9_-]{20,}")
# Short values would redact ordinary words; real secrets are longer than this.
MIN_SECRET_LENGTH = 6
# Loggers of the libraries under the connectors. Their records must reach the root handler (and so
# the redactor): a handler of their own would write lines that bypass it.
SDK_LOGGERS = ("httpx", "httpcore", "telegram", "discord", "tweepy", "aiohttp", "aiohttp.access",
               "aiohttp.server", "aiohttp.client", "aiosmtpd", "asyncio")


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret value the configuration holds: channel secrets and the database password."""
    secrets = [s.get_secret_value() for c in settings.channels for s in c.secrets.values()]
    try:
        password = make_url(settings.database.url).password
    except Exception:
        password = None
    if password:
        secrets.append(str(password))
    return secrets


class Redactor:
    """Replaces known secret values and token-shaped URL parts in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Libraries log secrets in other spellings too: percent-encoded in a URL, twice in an OAuth
        # signature base string, escaped inside JSON.
        spellings = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                once = quote(secret, safe="")
                spellings |= {secret, once, quote(once, safe=""), json.dumps(secret)[1:-1]}
        values = sorted(spellings, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        """The text with secrets replaced."""
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _BOT_TOKEN_IN_URL.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


class RedactingFormatter(logging.Formatter):
    """Formats a record (plain or JSON), then redacts the whole line."""

    def __init__(self, redact: Redactor, *, json_lines: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redact = redact
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        """One log line, secrets removed."""
        if not self.json_lines:
            return self.redact(super().format(record))
        # Each field is redacted before encoding too: JSON escapes quotes and backslashes, so a
        # secret containing one would no longer match once encoded.
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.redact(self.formatStack(record.stack_info))
        return self.redact(json.dumps(entry, ensure_ascii=False))


def configure_logging(level: str, *, json_lines: bool, secrets: Iterable[str]) -> logging.Handler:
    """Send all logging to stderr through a redacting formatter; returns the handler."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(Redactor(secrets), json_lines=json_lines))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in SDK_LOGGERS:
        sdk = logging.getLogger(name)
        for own in list(sdk.handlers):
            sdk.removeHandler(own)
        sdk.propagate = True
    return handler
