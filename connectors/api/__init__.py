"""Inbound API connector: other systems post signed neutral events to ``/api/v1/inbound/<channel>``.

The channel's secret (``secret_env``) checks the HMAC of each request (scheme in
``inbox.web.signing`` and ``docs/web.md``). With ``reply_url`` set, the team's replies are posted
back to that URL, signed the same way; without it the channel is inbound-only.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.api.callback import CallbackSender
from inbox.registry import Connector, ConnectorContext
from inbox.settings import ChannelSettings
from inbox.web.inbound_api import inbound_route


class Options(BaseModel):
    """Keys of a ``type = "api"`` channel."""

    model_config = ConfigDict(extra="forbid")

    secret_env: str = Field(min_length=1, description="variable holding the HMAC secret (32+ random bytes)")
    reply_url: str | None = Field(default=None, description="where the team's replies are POSTed, signed")
    reply_timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("reply_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("reply_url must start with http:// or https://")
        return value


def build(channel: ChannelSettings, context: ConnectorContext) -> Connector:
    """The inbound route of one api channel and, with ``reply_url``, its reply sender."""
    options = Options.model_validate(channel.options())
    secret = channel.secret("secret")
    sender = (
        CallbackSender(channel.name, options.reply_url, secret, context.clock, timeout=options.reply_timeout)
        if options.reply_url
        else None
    )
    return Connector(channel.name, sender=sender, routes=[inbound_route(channel.name, secret)])


__all__ = ["CallbackSender", "Options", "build"]
