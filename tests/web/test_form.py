"""The contact form over HTTP: every status (200, 422, 413, 429, 404), the honeypot, languages, headers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.webform.form import clean_line, clean_text, validate
from connectors.webform.options import Options
from connectors.webform.templates import STYLE, STYLE_HASH, pick_language
from inbox.models import Contact, Conversation, Message
from tests.web.conftest import WebHarness

GOOD = {
    "name": "Siti Rahma",
    "email": "Siti@Example.COM",
    "subject": "Refund for order 42",
    "message": "Hello,\r\nI was charged twice.\r\nThanks",
}


async def count(harness: WebHarness, model: Any) -> int:
    async with harness.app.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def token_of(page: str) -> str:
    found = re.search(r'name="submission" value="([^"]+)"', page)
    assert found, "the form carries a submission token"
    return found.group(1)


# --- GET ----------------------------------------------------------------------------------------------


async def test_form_is_served_in_english_with_strict_headers(harness: WebHarness) -> None:
    response = await harness.client.get("/contact/website")
    assert response.status == 200
    page = await response.text()
    assert response.content_type == "text/html" and response.charset == "utf-8"
    assert '<html lang="en">' in page and "<h1>Contact us</h1>" in page
    for name, kind in (("name", "text"), ("email", "email"), ("subject", "text")):
        assert f'<label for="field-{name}">' in page and f'id="field-{name}" name="{name}" required' in page
        assert f'type="{kind}"' in page
    assert '<textarea id="field-message" name="message" required' in page
    assert 'name="website" type="text" tabindex="-1"' in page  # the honeypot, out of the tab order
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and f"style-src 'sha256-{STYLE_HASH}'" in csp
    assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert f"<style>{STYLE}</style>" in page  # the hash in the CSP is the hash of exactly this
    assert "<script" not in page and "http://" not in page and "https://" not in page  # no external assets


async def test_form_speaks_indonesian_by_query_or_accept_language(harness: WebHarness) -> None:
    by_query = await (await harness.client.get("/contact/website?lang=id")).text()
    assert (
        '<html lang="id">' in by_query and "<h1>Hubungi kami</h1>" in by_query and "Kirim pesan" in by_query
    )
    response = await harness.client.get(
        "/contact/website", headers={"Accept-Language": "id-ID,id;q=0.9,en;q=0.5"}
    )
    assert response.headers["Content-Language"] == "id"
    assert "Alamat email" in await response.text()
    english = await harness.client.get("/contact/website?lang=en", headers={"Accept-Language": "id"})
    assert '<html lang="en">' in await english.text()


def test_language_choice() -> None:
    assert pick_language(None, "fr-FR, id;q=0.8, en;q=0.9", "id") == "en"
    assert pick_language(None, "in", "en") == "id"  # the old code for Indonesian
    assert pick_language(None, "de, fr", "id") == "id"
    assert pick_language("xx", "en;q=0", "en") == "en"
    assert pick_language("ID", None, "en") == "id"


async def test_unknown_form_is_404(harness: WebHarness) -> None:
    assert (await harness.client.get("/contact/nope")).status == 404
    assert (await harness.client.post("/contact/support", data=GOOD)).status == 404  # a jsonl channel
    assert await count(harness, Conversation) == 0


# --- POST: success --------------------------------------------------------------------------------------


async def test_valid_submission_stores_a_form_conversation_and_shows_its_reference(
    harness: WebHarness,
) -> None:
    form_page = await (await harness.client.get("/contact/website")).text()
    response = await harness.client.post(
        "/contact/website", data={**GOOD, "submission": token_of(form_page), "lang": "en"}
    )
    assert response.status == 200
    page = await response.text()
    async with harness.app.db.sessions() as session:
        conversation = (await session.execute(select(Conversation))).scalar_one()
        contact = (await session.execute(select(Contact))).scalar_one()
        message = (await session.execute(select(Message))).scalar_one()
    assert f"Your reference number is #{conversation.id}." in page
    assert "We will answer you at siti@example.com." in page
    assert conversation.kind == "form" and conversation.subject == "Refund for order 42"
    assert contact.external_id == "siti@example.com" and contact.name == "Siti Rahma"
    assert message.text == "Hello,\nI was charged twice.\nThanks"
    assert message.external_id is not None and message.external_id.endswith("@example.org>")
    assert message.created_at == harness.clock.now()


async def test_posting_the_same_form_twice_stores_it_once(harness: WebHarness) -> None:
    data = {**GOOD, "submission": "same-token-0123456789"}
    first = await (await harness.client.post("/contact/website", data=data)).text()
    second = await (await harness.client.post("/contact/website", data=data)).text()
    assert "reference number is #1." in first and "reference number is #1." in second
    assert await count(harness, Conversation) == 1 and await count(harness, Message) == 1


async def test_each_new_form_starts_its_own_conversation(harness: WebHarness) -> None:
    for _ in range(2):
        assert (await harness.client.post("/contact/website", data=GOOD)).status == 200
    assert await count(harness, Conversation) == 2 and await count(harness, Contact) == 1


async def test_confirmation_in_indonesian(harness: WebHarness) -> None:
    page = await (await harness.client.post("/contact/website", data={**GOOD, "lang": "id"})).text()
    assert '<html lang="id">' in page and "Nomor referensi Anda adalah #1." in page


# --- POST: refused ---------------------------------------------------------------------------------------


async def test_invalid_fields_get_422_with_values_kept_and_errors_by_the_fields(harness: WebHarness) -> None:
    data = {"name": "  ", "email": "not-an-email", "subject": "<b>Hi</b> & bye", "message": "x" * 1001}
    response = await harness.client.post("/contact/website", data=data)
    assert response.status == 422
    page = await response.text()
    assert "<title>Error: Contact us</title>" in page and "There is a problem" in page
    assert (
        '<p class="error" id="field-name-error"><span class="prefix">Error:</span> Enter your name.</p>'
        in page
    )
    assert "Enter an email address like name@example.com." in page
    assert "This is too long: at most 1000 characters." in page
    assert 'aria-invalid="true"' in page and 'aria-describedby="field-email-hint field-email-error"' in page
    assert '<a href="#field-email">' in page  # the summary links to the field
    assert 'value="not-an-email"' in page  # kept
    assert 'value="&lt;b&gt;Hi&lt;/b&gt; &amp; bye"' in page  # kept, escaped
    assert "<b>Hi</b>" not in page
    assert "field-subject-error" not in page  # a good field is not flagged
    assert await count(harness, Conversation) == 0 and await count(harness, Contact) == 0


async def test_invalid_fields_in_indonesian(harness: WebHarness) -> None:
    response = await harness.client.post("/contact/website", data={**GOOD, "email": "a@b", "lang": "id"})
    assert response.status == 422
    page = await response.text()
    assert "Isi alamat email seperti nama@contoh.com." in page and "Ada yang perlu diperbaiki" in page
    assert await count(harness, Conversation) == 0


async def test_a_missing_field_is_named(harness: WebHarness) -> None:
    response = await harness.client.post("/contact/website", data={"name": "A", "email": "a@example.com"})
    assert response.status == 422
    page = await response.text()
    assert "Enter a subject." in page and "Enter your message." in page


async def test_body_over_the_limit_is_413_and_stores_nothing(harness: WebHarness) -> None:
    response = await harness.client.post("/contact/website", data={**GOOD, "message": "y" * 5000})
    assert response.status == 413
    assert "Your message is too large" in await response.text()
    assert await count(harness, Conversation) == 0


async def test_chunked_body_over_the_limit_is_413(harness: WebHarness) -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b"message=" + b"z" * 1000 + b"&"

    response = await harness.client.post(
        "/contact/website", data=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 413
    assert await count(harness, Conversation) == 0


async def test_honeypot_submission_looks_accepted_but_is_dropped(harness: WebHarness) -> None:
    response = await harness.client.post("/contact/website", data={**GOOD, "website": "http://spam.example"})
    assert response.status == 200
    page = await response.text()
    assert "<h1>Thank you</h1>" in page and "We received your message." in page
    assert "reference number" not in page
    assert await count(harness, Conversation) == 0 and await count(harness, Contact) == 0


async def test_more_than_n_posts_per_ip_per_window_get_429(harness: WebHarness) -> None:
    for _ in range(3):  # the test config allows 3 per 10 minutes
        assert (await harness.client.post("/contact/website", data=GOOD)).status == 200
    refused = await harness.client.post("/contact/website", data=GOOD)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "600"
    assert "Too many messages" in await refused.text()
    assert await count(harness, Conversation) == 3
    harness.clock.advance(599)
    assert (await harness.client.post("/contact/website", data=GOOD)).status == 429
    harness.clock.advance(2)  # the first post has left the window
    assert (await harness.client.post("/contact/website", data=GOOD)).status == 200
    assert await count(harness, Conversation) == 4


async def test_forwarded_for_is_ignored_from_untrusted_peers(harness: WebHarness) -> None:
    for n in range(3):
        headers = {"X-Forwarded-For": f"203.0.113.{n}"}
        assert (await harness.client.post("/contact/website", data=GOOD, headers=headers)).status == 200
    headers = {"X-Forwarded-For": "203.0.113.99"}
    assert (await harness.client.post("/contact/website", data=GOOD, headers=headers)).status == 429


# --- pure parts ------------------------------------------------------------------------------------------


def test_cleaning() -> None:
    assert clean_line("  Ana\r\nBcc: x@y.z\t ") == "Ana Bcc: x@y.z"
    assert clean_text("a\r\nb\x00c\x1b[31m\n") == "a\nbc[31m"


def test_validation_rules() -> None:
    options = Options(from_address="help@example.org")
    values, errors = validate(
        {"name": "A", "email": "a@example.co.id", "subject": "S", "message": "M"}, options, "en"
    )
    assert errors == {} and values["email"] == "a@example.co.id"
    for bad in ("a@b", "a b@example.com", "@example.com", "a@example.com>", "a@-x.com", "x" * 65 + "@e.com"):
        _, errors = validate({"name": "A", "email": bad, "subject": "S", "message": "M"}, options, "en")
        assert "email" in errors, bad


@pytest.mark.parametrize("web_overrides", [{"web": {"trusted_proxies": ["127.0.0.0/8"]}}])
async def test_forwarded_for_from_a_trusted_proxy_names_the_client(harness: WebHarness) -> None:
    for _ in range(3):
        headers = {"X-Forwarded-For": "198.51.100.7"}
        assert (await harness.client.post("/contact/website", data=GOOD, headers=headers)).status == 200
    refused = await harness.client.post(
        "/contact/website", data=GOOD, headers={"X-Forwarded-For": "198.51.100.7"}
    )
    assert refused.status == 429
    # Another visitor behind the same proxy has an allowance of their own.
    other = {"X-Forwarded-For": "198.51.100.8, 127.0.0.1"}
    assert (await harness.client.post("/contact/website", data=GOOD, headers=other)).status == 200
