"""Email replies to form conversations over SMTP, threaded by Message-ID and a reference in the subject.

A reply carries a fresh ``Message-ID`` on our domain, ``In-Reply-To``/``References`` built from the
conversation's earlier message ids (the form submission got one of ours when it was stored, and
every sent reply keeps its own as the message's external id), and the subject
``[#<conversation id>] Re: <subject>``, so a later email channel can thread the customer's answer
by either. SMTP runs in a worker thread (``smtplib``) so the event loop never blocks on it.

Failures map onto the outbox's retry rules: a 4xx reply or a connection problem is temporary
(``DeliveryFailed``: retried with backoff), a 5xx reply is permanent (``PermanentFailure``: the row
fails at once and the team is told).
"""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

from sqlmodel import col, select

from connectors.webform.options import Options, is_email
from connectors.webform.templates import text
from inbox.clock import Clock
from inbox.db import Database
from inbox.events import Outbound, Receipt
from inbox.models import Conversation, Delivery, Message
from inbox.ports import DeliveryFailed, PermanentFailure

log = logging.getLogger(__name__)

MESSAGE_ID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
MAX_REFERENCES = 20  # long threads: the first id and the latest ones are what clients need
# "Re:" (and the German/Danish forms) and our own "[#12]" tag, so a subject never grows with each reply.
_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv)\s*:|\[#\d+\])\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Thread:
    """What a reply needs to know about its conversation to thread in the customer's mailbox."""

    reference: int | None
    subject: str | None
    message_ids: tuple[str, ...] = ()


def reply_subject(reference: int | None, subject: str | None, lang: str) -> str:
    """``[#123] Re: <subject>`` on one line; earlier "Re:" and reference tags are not repeated."""
    base = " ".join((subject or "").split())
    while (found := _PREFIX.match(base)) is not None:
        base = base[found.end() :]
    base = base or text(lang, "email.default_subject")
    return f"[#{reference}] Re: {base}" if reference is not None else f"Re: {base}"


def threading_headers(reply_to: str | None, message_ids: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """In-Reply-To and References: the message answered last, after the conversation's earlier ids."""
    known = [m for m in message_ids if MESSAGE_ID.match(m)]
    parent = reply_to if reply_to and MESSAGE_ID.match(reply_to) else (known[-1] if known else None)
    references = [m for m in known if m != parent]
    if parent is not None:
        references.append(parent)
    if len(references) > MAX_REFERENCES:
        references = [references[0], *references[-(MAX_REFERENCES - 1) :]]
    return parent, references


def smtp_failure(exc: Exception) -> DeliveryFailed:
    """The outbox error for an SMTP exception: 5xx is permanent, anything else is worth retrying."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(f"{rcpt}: {code} {_decode(msg)}" for rcpt, (code, msg) in exc.recipients.items())
        if codes and all(500 <= code < 600 for code in codes):
            return PermanentFailure(f"SMTP server refused the recipient ({detail})")
        return DeliveryFailed(f"SMTP server refused the recipient for now ({detail})")
    if isinstance(exc, smtplib.SMTPResponseException):
        message = f"SMTP {exc.smtp_code} {_decode(exc.smtp_error)}"
        if 500 <= exc.smtp_code < 600:
            return PermanentFailure(message)
        return DeliveryFailed(message)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentFailure(f"SMTP server does not support what the settings ask for: {exc}")
    if isinstance(exc, ssl.SSLError):
        return DeliveryFailed(f"TLS with the SMTP server failed: {exc}")
    if isinstance(exc, OSError | smtplib.SMTPException):
        return DeliveryFailed(f"cannot talk to the SMTP server: {exc or type(exc).__name__}")
    return DeliveryFailed(f"SMTP error: {exc}")


def _decode(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


class EmailSender:
    """Sends the team's replies to form conversations as plain-text email."""

    def __init__(
        self,
        channel: str,
        options: Options,
        clock: Clock,
        *,
        password: str | None = None,
        db: Database | None = None,
        base_dir: Path = Path("."),
        language: str = "en",
    ) -> None:
        self.channel = channel
        self.options = options
        self.clock = clock
        self.password = password
        self.db = db
        self.language = options.language or language
        self.ca_file = str(base_dir / options.smtp_ca_file) if options.smtp_ca_file else None

    async def send(self, outbound: Outbound) -> Receipt:
        """Compose the email for ``outbound`` and hand it to the SMTP server."""
        recipient = (outbound.recipient or "").strip()
        if not is_email(recipient):
            raise PermanentFailure(f"no email address to answer to (recipient is {outbound.recipient!r})")
        thread = await self.thread_of(outbound)
        message = self.compose(outbound, recipient, thread)
        await asyncio.to_thread(self._deliver, message, recipient)
        message_id = str(message["Message-ID"])
        log.info("%s: delivery #%s sent to %s as %s", self.channel, outbound.delivery_id, recipient,
                 message_id)
        return Receipt(platform_message_id=message_id)

    async def thread_of(self, outbound: Outbound) -> Thread:
        """The conversation's number, subject and earlier message ids (from the database, if any)."""
        fallback = Thread(_int(outbound.extra.get("conversation_id")), _str(outbound.extra.get("subject")))
        if self.db is None:
            return fallback
        async with self.db.sessions() as session:
            conversation_id = await session.scalar(
                select(col(Delivery.conversation_id)).where(col(Delivery.id) == outbound.delivery_id)
            )
            if conversation_id is None:
                return fallback
            subject = await session.scalar(
                select(col(Conversation.subject)).where(col(Conversation.id) == conversation_id)
            )
            ids = await session.scalars(
                select(col(Message.external_id))
                .where(col(Message.conversation_id) == conversation_id, col(Message.external_id).is_not(None))
                .order_by(col(Message.created_at), col(Message.id))
            )
            return Thread(conversation_id, subject, tuple(str(i) for i in ids))

    def compose(self, outbound: Outbound, recipient: str, thread: Thread) -> EmailMessage:
        """The email: headers for threading, the reply text, and a footer naming the reference."""
        message = EmailMessage()
        message["From"] = formataddr((self.options.from_name or "", self.options.from_address))
        message["To"] = recipient
        message["Subject"] = reply_subject(thread.reference, thread.subject, self.language)
        message["Date"] = format_datetime(self.clock.now())
        message["Message-ID"] = make_msgid(f"saluran.{outbound.delivery_id}", domain=self.options.domain)
        parent, references = threading_headers(outbound.reply_to, thread.message_ids)
        if parent is not None:
            message["In-Reply-To"] = parent
        if references:
            message["References"] = " ".join(references)
        if thread.reference is not None:
            message["X-Saluran-Reference"] = str(thread.reference)
        body = outbound.text.rstrip()
        if thread.reference is not None:
            body += "\n\n-- \n" + text(self.language, "email.footer", reference=thread.reference)
        message.set_content(body + "\n")
        return message

    def _deliver(self, message: EmailMessage, recipient: str) -> None:
        """Talk SMTP (blocking; runs in a worker thread)."""
        opts = self.options
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
            smtp: smtplib.SMTP
            if opts.smtp_security == "tls":
                smtp = smtplib.SMTP_SSL(
                    opts.smtp_host, opts.smtp_port, timeout=opts.smtp_timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(opts.smtp_host, opts.smtp_port, timeout=opts.smtp_timeout)
            with smtp:
                if opts.smtp_security == "starttls":
                    smtp.starttls(context=context)
                if opts.smtp_username is not None:
                    smtp.login(opts.smtp_username, self.password or "")
                smtp.send_message(message, from_addr=opts.from_address, to_addrs=[recipient])
        except DeliveryFailed:
            raise
        except Exception as exc:
            raise smtp_failure(exc) from exc


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
