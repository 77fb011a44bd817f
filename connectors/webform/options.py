"""Keys of a ``type = "webform"`` channel: the form, its spam guards, and the SMTP server for replies."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from inbox.settings import Duration

# Deliberately simple: one @, no spaces or characters that break headers, a dotted ASCII domain.
EMAIL_PATTERN = re.compile(
    r"^[^@\s<>()\[\],;:\"\\]{1,64}@(?=.{1,190}$)"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
RESERVED_FIELDS = frozenset({"name", "email", "subject", "message", "lang", "submission"})


def is_email(value: str) -> bool:
    """True for an address we are willing to store and send to (at most 200 characters)."""
    return len(value) <= 200 and EMAIL_PATTERN.match(value) is not None


class Options(BaseModel):
    """Keys of a ``type = "webform"`` channel."""

    model_config = ConfigDict(extra="forbid")

    # --- the form ---
    title: str | None = Field(default=None, max_length=120, description="heading of the form page")
    language: Literal["en", "id"] | None = Field(
        default=None, description="page and email language when the visitor's browser names neither"
    )
    rate_limit: int = Field(default=5, ge=1, le=100_000, description="submissions per IP per window")
    rate_window: Duration = Field(default=timedelta(hours=1), description="the rate limit's window")
    honeypot_field: str = Field(default="website", pattern=r"^[a-z][a-z0-9_]{0,39}$")
    max_message_length: int = Field(default=5000, ge=100, le=100_000)

    # --- email replies ---
    from_address: str = Field(description="sender of the reply emails")
    from_name: str | None = Field(default=None, max_length=120)
    message_id_domain: str | None = Field(default=None, description="right side of Message-IDs")
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password_env: str | None = Field(default=None, validate_default=True)
    smtp_timeout: float = Field(default=30.0, gt=0, le=300)
    smtp_ca_file: str | None = Field(default=None, description="CA bundle for a private SMTP server")

    @field_validator("from_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not is_email(value):
            raise ValueError(f"'{value}' is not an email address")
        return value

    @field_validator("honeypot_field")
    @classmethod
    def _not_a_real_field(cls, value: str) -> str:
        if value in RESERVED_FIELDS:
            raise ValueError(f"'{value}' is a field of the form itself; pick another name such as 'website'")
        return value

    @field_validator("message_id_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9.-]{1,190}", value):
            raise ValueError(f"'{value}' is not a domain name")
        return value

    @field_validator("smtp_password_env")
    @classmethod
    def _auth(cls, value: str | None, info: ValidationInfo) -> str | None:
        username = info.data.get("smtp_username")
        if username is not None and value is None:
            raise ValueError("required when smtp_username is set (names the variable holding the password)")
        if username is None and value is not None:
            raise ValueError("needs smtp_username too")
        if value is not None and info.data.get("smtp_security") == "none":
            raise ValueError("a password needs smtp_security 'starttls' or 'tls': never send it in the clear")
        return value

    @property
    def domain(self) -> str:
        """The domain of our Message-IDs: ``message_id_domain`` or the domain of ``from_address``."""
        return self.message_id_domain or self.from_address.rsplit("@", 1)[1].lower()
