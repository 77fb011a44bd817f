"""Web contact form connector: a public form on ``/contact/<channel>``; the team's replies go out by email.

Channel keys are in ``connectors.webform.options.Options`` and ``docs/web.md``.
"""

from __future__ import annotations

from pathlib import Path

from connectors.webform.form import ContactForm
from connectors.webform.options import Options
from connectors.webform.sender import EmailSender
from inbox.registry import Connector, ConnectorContext
from inbox.settings import ChannelSettings


def build(channel: ChannelSettings, context: ConnectorContext) -> Connector:
    """The form's routes and the email sender of one webform channel."""
    options = Options.model_validate(channel.options())
    password = channel.secret("smtp_password") if options.smtp_password_env else None
    sender = EmailSender(
        channel.name,
        options,
        context.clock,
        password=password,
        db=context.db,
        base_dir=Path(context.extra.get("base_dir", ".")),
        language=str(context.extra.get("language", "en")),
    )
    return Connector(channel.name, sender=sender, routes=ContactForm(channel.name, options).routes())


__all__ = ["ContactForm", "EmailSender", "Options", "build"]
