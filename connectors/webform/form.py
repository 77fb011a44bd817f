"""The contact form's routes: ``GET /contact/<channel>`` shows it, ``POST`` stores a ``form`` conversation.

Bad input never stores anything. The order of the guards matters: the rate limit is checked
before the body is read (a flood costs us no parsing), the size before parsing, the honeypot
before validation (a bot learns nothing from error messages), and only a valid submission reaches
the Ingestor, where it becomes a conversation whose contact is the email address.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from sqlmodel import col, select

from connectors.webform.options import Options, is_email
from connectors.webform.templates import (
    CONTENT_SECURITY_POLICY,
    FIELDS,
    confirmation_page,
    form_page,
    pick_language,
    problem_page,
    text,
)
from inbox.events import Author, Batch, Inbound
from inbox.models import Channel, Kind, Message
from inbox.web.context import WebContext, web_context

log = logging.getLogger(__name__)

LIMITS: Mapping[str, int] = {"name": 200, "email": 200, "subject": 200}
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated form submission."""

    name: str
    email: str
    subject: str
    message: str
    token: str


def clean_line(value: str) -> str:
    """One line of text: control characters (newlines too) become spaces, runs of space collapse."""
    return " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in value).split())


def clean_text(value: str) -> str:
    """Multi-line text: CRLF becomes LF, other control characters (NUL, escapes) are dropped."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c for c in value if c in "\n\t" or unicodedata.category(c) != "Cc").strip()


def validate(form: Mapping[str, str], options: Options, lang: str) -> tuple[dict[str, str], dict[str, str]]:
    """The cleaned values and, per field, what is wrong with it (empty when the submission is good)."""
    limits = {**LIMITS, "message": options.max_message_length}
    values = {
        "name": clean_line(form.get("name", "")),
        "email": clean_line(form.get("email", "")),
        "subject": clean_line(form.get("subject", "")),
        "message": clean_text(form.get("message", "")),
    }
    errors: dict[str, str] = {}
    for field in FIELDS:
        if not values[field]:
            errors[field] = text(lang, f"error.{field}")
        elif len(values[field]) > limits[field]:
            errors[field] = text(lang, "error.too_long", limit=limits[field])
    if "email" not in errors and not is_email(values["email"]):
        errors["email"] = text(lang, "error.email")
    return values, errors


class ContactForm:
    """The two routes of one webform channel."""

    def __init__(self, channel: str, options: Options) -> None:
        self.channel = channel
        self.options = options
        self.path = f"/contact/{channel}"

    def routes(self) -> list[web.RouteDef]:
        """``GET`` (and ``HEAD``) shows the form, ``POST`` takes a submission."""
        return [web.get(self.path, self.show), web.post(self.path, self.submit)]

    # --- handlers ---

    async def show(self, request: web.Request) -> web.Response:
        """The empty form in the visitor's language."""
        lang = self._language(request, web_context(request))
        return self._form(lang, {}, {}, secrets.token_urlsafe(16), status=200)

    async def submit(self, request: web.Request) -> web.Response:
        """Check, then store one submission and thank the visitor with its reference number."""
        ctx = web_context(request)
        lang = self._language(request, ctx)
        client = ctx.client_ip(request)
        decision = ctx.limiter.hit(
            f"webform:{self.channel}:{client}", ctx.app.clock.now(),
            limit=self.options.rate_limit, window=self.options.rate_window,
        )
        if not decision.allowed:
            log.info("%s: rate limit reached for %s", self.channel, client)
            wait = max(1, math.ceil(decision.retry_after))
            page = problem_page(lang=lang, action=self.path, title_key="too_many_title", body_key="too_many",
                                minutes=max(1, math.ceil(wait / 60)))
            return self._html(page, lang, status=429, headers={"Retry-After": str(wait)})
        too_large = problem_page(
            lang=lang, action=self.path, title_key="too_large_title", body_key="too_large"
        )
        if request.content_length is not None and request.content_length > ctx.settings.max_body_bytes:
            return self._html(too_large, lang, status=413)
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:  # a chunked body that turned out too large
            return self._html(too_large, lang, status=413)
        except ValueError as exc:  # not UTF-8, a broken multipart body: no browser sends that
            log.info("%s: refused an unreadable form body from %s (%s)", self.channel, client, exc)
            return self._form(lang, {}, {}, secrets.token_urlsafe(16), status=400)
        fields = _strings(form)
        lang = pick_language(fields.get("lang"), None, lang)
        if fields.get(self.options.honeypot_field, "").strip():
            log.info("%s: dropped a submission from %s that filled in the honeypot", self.channel, client)
            page = confirmation_page(lang=lang, action=self.path, reference=None, email=None)
            return self._html(page, lang)
        token = fields.get("submission", "")
        if not _TOKEN.match(token):
            token = secrets.token_urlsafe(16)  # a client that did not load the form first
        values, errors = validate(fields, self.options, lang)
        if errors:
            return self._form(lang, values, errors, token, status=422)
        # Addresses are compared case-insensitively in practice: one contact per address, however typed.
        email = values["email"].lower()
        submission = Submission(values["name"], email, values["subject"], values["message"], token)
        reference = await self.store(ctx, submission)
        log.info("%s: form submission stored as conversation #%s", self.channel, reference)
        page = confirmation_page(lang=lang, action=self.path, reference=reference, email=submission.email)
        return self._html(page, lang)

    # --- storing ---

    def external_id(self, token: str) -> str:
        """The submission's message id: Message-ID shaped, so email replies can point at it."""
        return f"<form.{token}@{self.options.domain}>"

    async def store(self, ctx: WebContext, submission: Submission) -> int:
        """Ingest the submission as a new ``form`` conversation and return its id (the reference number).

        Posting the same form twice (a reload of the confirmation page) carries the same token, so
        the second post is a duplicate that ingest drops; it gets the first post's reference.
        """
        event = Inbound(
            channel=self.channel,
            external_id=self.external_id(submission.token),
            kind=Kind.FORM,
            author=Author(id=submission.email, name=submission.name),
            text=submission.message,
            created_at=ctx.app.clock.now(),
            subject=submission.subject,
        )
        result = await ctx.app.ingestor.ingest(Batch(self.channel, [event]))
        if result.stored:
            return result.stored[0].conversation_id
        async with ctx.app.db.sessions() as session:
            existing = await session.scalar(
                select(col(Message.conversation_id))
                .join(Channel, col(Channel.id) == col(Message.channel_id))
                .where(col(Channel.name) == self.channel, col(Message.external_id) == event.external_id)
            )
        if existing is None:  # cannot happen: ingest only drops what is stored
            raise web.HTTPInternalServerError(text="submission was neither stored nor found")
        return int(existing)

    # --- responses ---

    def _language(self, request: web.Request, ctx: WebContext) -> str:
        default = self.options.language or ctx.app.settings.general.language
        return pick_language(request.query.get("lang"), request.headers.get("Accept-Language"), default)

    def _form(
        self, lang: str, values: Mapping[str, str], errors: Mapping[str, str], token: str, *, status: int
    ) -> web.Response:
        limits = {**LIMITS, "message": self.options.max_message_length}
        page = form_page(lang=lang, action=self.path, title=self.options.title, values=values, errors=errors,
                         honeypot=self.options.honeypot_field, token=token, limits=limits)
        return self._html(page, lang, status=status)

    @staticmethod
    def _html(
        page: str, lang: str, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        response = web.Response(text=page, status=status, content_type="text/html", charset="utf-8")
        response.headers.update(
            {
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                # The pages hold the visitor's own data (and a one-time token): never cache them.
                "Cache-Control": "no-store",
                "Content-Language": lang,
                "Vary": "Accept-Language",
                **(headers or {}),
            }
        )
        return response


def _strings(form: MultiDictProxy[Any]) -> dict[str, str]:
    """The text fields of a posted form (first value of each; uploaded files are ignored)."""
    out: dict[str, str] = {}
    for key, value in form.items():
        if isinstance(value, str) and key not in out:
            out[key] = value
    return out
