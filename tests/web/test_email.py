"""Email replies to form conversations, received by a real local SMTP server (aiosmtpd).

A member's reply goes through the outbox like every side effect; the message that arrives carries a
Message-ID on our domain, In-Reply-To/References, and the reference number in the subject. A 5xx
from the server fails the delivery for good; a 4xx or a connection problem leaves it to be retried.
"""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select
from sqlmodel import col

from connectors.webform.options import Options
from connectors.webform.sender import EmailSender, reply_subject, smtp_failure, threading_headers
from inbox.events import Actor, Outbound
from inbox.models import Delivery, Event, Member, Message
from inbox.outbox import Dispatcher, RetryPolicy
from inbox.ports import DeliveryFailed, PermanentFailure, Sender
from tests.web.conftest import CERTS, SMTP_PASSWORD, Recorder, WebHarness, free_port

FORM = {
    "name": "Siti",
    "email": "siti@example.com",
    "subject": "Refund for order 42",
    "message": "Charged twice",
}


@pytest.fixture
def web_overrides(smtp_server: tuple[Recorder, int]) -> dict[str, Any]:
    return {"smtp_port": smtp_server[1]}


async def alice(harness: WebHarness) -> Actor:
    async with harness.app.db.sessions() as session:
        member_id = await session.scalar(select(col(Member.id)).where(col(Member.name) == "alice"))
    return Actor("member", "alice", member_id)


async def submit(harness: WebHarness) -> int:
    response = await harness.client.post("/contact/website", data=FORM)
    assert response.status == 200
    async with harness.app.db.sessions() as session:
        return int(await session.scalar(select(col(Message.conversation_id))) or 0)


def dispatcher(harness: WebHarness, sender: Sender | None = None) -> Dispatcher:
    senders = {"website": sender or harness.connectors["website"].sender}
    assert all(s is not None for s in senders.values())
    policy = RetryPolicy(max_attempts=5, base_delay=timedelta(seconds=10), jitter="none")
    return Dispatcher(harness.app.db, harness.clock, senders, worker_id="test", policy=policy)  # type: ignore[arg-type]


async def delivery(harness: WebHarness) -> Delivery:
    async with harness.app.db.sessions() as session:
        row = (await session.execute(select(Delivery).order_by(col(Delivery.id).desc()))).scalars().first()
    assert row is not None
    return row


def received(recorder: Recorder, index: int = -1) -> email.message.EmailMessage:
    raw = recorder.envelopes[index].original_content
    assert raw is not None
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


async def test_member_reply_arrives_by_email_with_threading_headers(
    harness: WebHarness, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    conversation = await submit(harness)
    async with harness.app.db.sessions() as session:
        form_id = await session.scalar(select(col(Message.external_id)))
    await harness.app.actions.reply(await alice(harness), conversation, "We refunded the second charge.")
    assert await dispatcher(harness).run_once() == 1

    mail = received(recorder)
    assert recorder.envelopes[0].rcpt_tos == ["siti@example.com"]
    assert recorder.envelopes[0].mail_from == "help@example.org"
    assert mail["Subject"] == f"[#{conversation}] Re: Refund for order 42"
    assert mail["From"] == "Example Help <help@example.org>" and mail["To"] == "siti@example.com"
    message_id = mail["Message-ID"]
    assert message_id.startswith("<") and message_id.endswith("@example.org>")
    assert mail["In-Reply-To"] == form_id and mail["References"] == form_id
    assert mail["Date"] is not None and mail["X-Saluran-Reference"] == str(conversation)
    body = mail.get_content()
    assert "We refunded the second charge." in body and f"keep [#{conversation}] in the subject" in body

    sent = await delivery(harness)
    assert sent.status == "sent" and sent.platform_message_id == message_id
    async with harness.app.db.sessions() as session:
        ours = await session.scalar(select(col(Message.external_id)).where(col(Message.direction) == "out"))
    assert ours == message_id  # the outbox links the reply to its Message-ID, for later threading

    harness.clock.advance(60)
    await harness.app.actions.reply(await alice(harness), conversation, "Anything else?")
    assert await dispatcher(harness).run_once() == 1
    second = received(recorder)
    assert second["Subject"] == f"[#{conversation}] Re: Refund for order 42"
    assert second["In-Reply-To"] == form_id
    assert second["References"].split() == [message_id, form_id]
    assert second["Message-ID"] != message_id


async def test_5xx_fails_the_delivery_for_good(
    harness: WebHarness, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    recorder.rcpt_reply = "550 5.1.1 No such user here"
    conversation = await submit(harness)
    await harness.app.actions.reply(await alice(harness), conversation, "Hello")
    assert await dispatcher(harness).run_once() == 1
    failed = await delivery(harness)
    assert failed.status == "failed" and failed.attempts == 1
    assert (
        failed.last_error is not None and "550" in failed.last_error and "No such user" in failed.last_error
    )
    async with harness.app.db.sessions() as session:
        event = (
            await session.execute(select(Event).where(col(Event.type) == "delivery.failed"))
        ).scalar_one()
    assert event.data["permanent"] is True
    assert recorder.envelopes == []


async def test_4xx_is_retried_later(harness: WebHarness, smtp_server: tuple[Recorder, int]) -> None:
    recorder, _ = smtp_server
    recorder.rcpt_reply = "451 4.3.0 Mailbox busy, try again"
    conversation = await submit(harness)
    await harness.app.actions.reply(await alice(harness), conversation, "Hello")
    assert await dispatcher(harness).run_once() == 1
    waiting = await delivery(harness)
    assert waiting.status == "pending" and waiting.attempts == 1
    assert waiting.next_attempt_at == harness.clock.now() + timedelta(seconds=10)
    assert waiting.last_error is not None and "451" in waiting.last_error

    recorder.rcpt_reply = None  # the server recovers
    harness.clock.advance(10)
    assert await dispatcher(harness).run_once() == 1
    assert (await delivery(harness)).status == "sent" and len(recorder.envelopes) == 1


async def test_connection_refused_is_retried(harness: WebHarness) -> None:
    conversation = await submit(harness)
    await harness.app.actions.reply(await alice(harness), conversation, "Hello")
    options = Options(
        from_address="help@example.org",
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_security="none",
        smtp_timeout=2,
    )
    sender = EmailSender("website", options, harness.clock, db=harness.app.db)
    assert await dispatcher(harness, sender).run_once() == 1
    waiting = await delivery(harness)
    assert waiting.status == "pending" and waiting.attempts == 1
    assert waiting.last_error is not None and "cannot talk to the SMTP server" in waiting.last_error


# --- TLS and authentication ---------------------------------------------------------------------------


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"mailer"
        and (auth_data.password == SMTP_PASSWORD.encode())
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture(params=["starttls", "tls"])
def tls_smtp(request: pytest.FixtureRequest) -> Iterator[tuple[Recorder, int, str]]:
    """An SMTP server that needs TLS (STARTTLS, or TLS from the first byte) and a password."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERTS / "server.pem", CERTS / "server-key.pem")
    recorder = Recorder()
    port = free_port()
    mode = str(request.param)
    tls: dict[str, Any] = (
        {"tls_context": context, "require_starttls": True} if mode == "starttls" else {"ssl_context": context}
    )
    # aiosmtpd only knows STARTTLS as "TLS" for auth_require_tls; with TLS from the first byte the
    # whole session is encrypted anyway.
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticator,
        auth_require_tls=mode == "starttls",
        server_hostname="localhost",
        **tls,
    )
    controller.start()
    try:
        yield recorder, port, mode
    finally:
        controller.stop()


async def test_tls_and_login(harness: WebHarness, tls_smtp: tuple[Recorder, int, str]) -> None:
    recorder, port, mode = tls_smtp
    options = Options.model_validate(
        {
            "from_address": "help@example.org",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": mode,
            "smtp_username": "mailer",
            "smtp_password_env": "SMTP_PASSWORD",
            "smtp_ca_file": str(CERTS / "ca.pem"),
            "smtp_timeout": 5,
        }
    )
    outbound = Outbound(
        delivery_id=1,
        destination="website",
        purpose="reply",
        text="Hi",
        recipient="siti@example.com",
        extra={"conversation_id": 9, "subject": "Question"},
    )
    sender = EmailSender("website", options, harness.clock, password=SMTP_PASSWORD)
    receipt = await sender.send(outbound)
    assert recorder.authenticated == ["mailer"]
    assert received(recorder)["Message-ID"] == receipt.platform_message_id
    assert received(recorder)["Subject"] == "[#9] Re: Question"  # from the payload when there is no db

    wrong = EmailSender("website", options, harness.clock, password="wrong")
    with pytest.raises(PermanentFailure, match="535"):
        await wrong.send(outbound)
    untrusted = EmailSender(
        "website", options.model_copy(update={"smtp_ca_file": None}), harness.clock, password=SMTP_PASSWORD
    )
    with pytest.raises(
        DeliveryFailed, match="TLS"
    ):  # a certificate we cannot verify: never send the password
        await untrusted.send(outbound)
    assert len(recorder.envelopes) == 1


# --- pure parts -------------------------------------------------------------------------------------


def test_subjects() -> None:
    assert reply_subject(12, "Refund", "en") == "[#12] Re: Refund"
    assert reply_subject(12, "RE: [#12] Re:  Refund\n now", "en") == "[#12] Re: Refund now"
    assert reply_subject(12, None, "id") == "[#12] Re: Pesan Anda"
    assert reply_subject(None, "Hi", "en") == "Re: Hi"


def test_threading_headers() -> None:
    assert threading_headers(None, ()) == (None, [])
    assert threading_headers("<a@x>", ("<a@x>", "tg:5", "<b@x>")) == ("<a@x>", ["<b@x>", "<a@x>"])
    assert threading_headers("tg:5", ("<a@x>",)) == ("<a@x>", ["<a@x>"])
    many = tuple(f"<{n}@x>" for n in range(30))
    parent, refs = threading_headers(None, many)
    assert parent == "<29@x>" and len(refs) == 20 and refs[0] == "<0@x>" and refs[-1] == "<29@x>"


def test_smtp_error_mapping() -> None:
    import smtplib

    assert isinstance(smtp_failure(smtplib.SMTPDataError(554, b"rejected")), PermanentFailure)
    temporary = smtp_failure(smtplib.SMTPDataError(452, b"full"))
    assert temporary.retryable and not isinstance(temporary, PermanentFailure)
    assert smtp_failure(smtplib.SMTPServerDisconnected("gone")).retryable
    assert smtp_failure(ConnectionRefusedError(111, "refused")).retryable
    mixed = smtplib.SMTPRecipientsRefused({"a@x.y": (550, b"no"), "b@x.y": (450, b"later")})
    assert smtp_failure(mixed).retryable
    assert not smtp_failure(smtplib.SMTPRecipientsRefused({"a@x.y": (550, b"no")})).retryable


async def test_no_address_is_permanent(harness: WebHarness) -> None:
    sender = harness.connectors["website"].sender
    assert sender is not None
    with pytest.raises(PermanentFailure, match="no email address"):
        await sender.send(
            Outbound(delivery_id=1, destination="website", purpose="reply", text="x", recipient="@someone")
        )
