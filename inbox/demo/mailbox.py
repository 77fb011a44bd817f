"""The demo customers' mailbox: a small SMTP server on 127.0.0.1 that keeps every email it receives.

The contact form's replies go out by email through the real ``smtplib`` code of the webform
connector; this server plays the customer's mail provider. It speaks just enough SMTP for that
(EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and never relays anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

_HOST = "demo.mailbox"
MAX_MESSAGE_BYTES = 1_000_000


@dataclass(frozen=True)
class ReceivedEmail:
    """One email as the mailbox received it."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        """The Subject header, decoded."""
        return str(self.message.get("Subject", ""))

    @property
    def body(self) -> str:
        """The plain-text body, decoded."""
        part = self.message.get_body(preferencelist=("plain",))
        if part is None:
            return ""
        content = part.get_content()
        return str(content).replace("\r\n", "\n").strip()


class Mailbox:
    """An SMTP sink: ``start()`` returns its port; ``received`` lists what arrived, oldest first."""

    def __init__(self) -> None:
        self.received: list[ReceivedEmail] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1") -> int:
        """Listen on ``host`` at a free port; return the port."""
        self._server = await asyncio.start_server(self._serve, host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Stop listening and end open sessions."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        try:
            await self._dialogue(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            if task is not None:
                self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        await say(f"220 {_HOST} ESMTP demo mailbox")
        sender: str | None = None
        recipients: list[str] = []
        while True:
            raw = await reader.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                await say(f"250-{_HOST}")
                await say("250-8BITMIME")
                await say("250-SMTPUTF8")
                await say(f"250 SIZE {MAX_MESSAGE_BYTES}")
            elif verb == "HELO":
                await say(f"250 {_HOST}")
            elif verb == "MAIL":
                sender, recipients = _address(line), []
                await say("250 OK")
            elif verb == "RCPT":
                if sender is None:
                    await say("503 need MAIL first")
                else:
                    recipients.append(_address(line))
                    await say("250 OK")
            elif verb == "DATA":
                if sender is None or not recipients:
                    await say("503 need MAIL and RCPT first")
                    continue
                await say("354 end with <CRLF>.<CRLF>")
                data = await _read_data(reader)
                parsed = email.message_from_bytes(data, policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                self.received.append(ReceivedEmail(sender, tuple(recipients), parsed))
                sender, recipients = None, []
                await say("250 OK: delivered to the demo mailbox")
            elif verb in ("RSET", "NOOP"):
                if verb == "RSET":
                    sender, recipients = None, []
                await say("250 OK")
            elif verb == "QUIT":
                await say("221 bye")
                return
            else:
                await say("502 command not implemented")


def _address(line: str) -> str:
    """The address inside ``<...>`` of a MAIL FROM or RCPT TO line."""
    start, end = line.find("<"), line.find(">")
    return line[start + 1 : end] if 0 <= start < end else line.split(":", 1)[-1].strip()


async def _read_data(reader: asyncio.StreamReader) -> bytes:
    """The message after DATA, up to the lone dot, with dot-stuffing undone."""
    lines: list[bytes] = []
    size = 0
    while True:
        raw = await reader.readline()
        if not raw or raw in (b".\r\n", b".\n"):
            return b"".join(lines)
        size += len(raw)
        if size <= MAX_MESSAGE_BYTES:
            lines.append(raw[1:] if raw.startswith(b"..") else raw)
