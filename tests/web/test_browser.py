"""A real browser (Debian's headless Chromium, driven by Playwright) fills in the contact form.

Needs ``apt-get install chromium`` and the ``playwright`` Python package (a dev dependency); the
browser binary comes from Debian, so ``playwright install`` is never run. Skipped, with the reason,
only when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from inbox.cli.main import main
from inbox.queries import list_queue
from tests.web.conftest import WebHarness

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# CI installs Chromium and sets INBOX_REQUIRE_BROWSER=1, so there a missing browser fails instead of skipping.
if os.environ.get("INBOX_REQUIRE_BROWSER") == "1" and not os.path.exists(CHROMIUM):
    raise RuntimeError(f"{CHROMIUM} is required (INBOX_REQUIRE_BROWSER=1): apt-get install -y chromium")

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (apt-get install -y chromium)"
)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=15_000)
        try:
            yield chromium
        finally:
            await chromium.close()


async def test_browser_without_javascript_submits_the_form_and_it_reaches_the_queue(
    harness: WebHarness, browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = await browser.new_context(java_script_enabled=False, locale="en-GB")
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    base = str(harness.client.make_url("/contact/website"))

    await page.goto(base)
    assert await page.title() == "Contact us"
    await page.get_by_label("Your name").fill("Dewi Lestari")
    await page.get_by_label("Email address").fill("dewi@example.com")
    await page.get_by_label("Subject").fill("Delivery is late")
    await page.get_by_label("Message").fill("My parcel has not arrived.\nOrder 1234.")
    await page.get_by_role("button", name="Send message").click()
    await page.wait_for_load_state()

    assert await page.get_by_role("heading", level=1).inner_text() == "Thank you"
    status = await page.get_by_role("status").inner_text()
    assert "Your reference number is #1." in status and "dewi@example.com" in status
    assert not [m for m in console if "Content Security Policy" in m]  # the inline style's hash matches
    await context.close()

    async with harness.app.db.sessions() as session:
        queue = await list_queue(session, harness.clock.now())
    assert [(item.id, item.kind, item.channel, item.contact) for item in queue] == [
        (1, "form", "website", "Dewi Lestari")
    ]
    assert queue[0].excerpt.startswith("My parcel has not arrived.")

    # And as an operator sees it: `inbox queue --json` against the same database.
    config = tmp_path / "cli.toml"
    config.write_text(
        f'[database]\nurl = "{harness.app.db.url}"\n\n[[channels]]\nname = "website"\ntype = "webform"\n'
        'from_address = "help@example.org"\n'
    )
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["-c", str(config), "queue", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(row["id"], row["kind"], row["channel"]) for row in listed] == [(1, "form", "website")]


async def test_browser_sees_indonesian_errors_next_to_the_fields(harness: WebHarness, browser: Any) -> None:
    context = await browser.new_context(locale="id-ID")
    page = await context.new_page()
    await page.goto(str(harness.client.make_url("/contact/website")))
    assert await page.get_by_role("heading", level=1).inner_text() == "Hubungi kami"
    await page.get_by_label("Nama Anda").fill("Budi")
    await page.get_by_label("Alamat email").fill("budi@localhost")  # the browser allows it; we do not
    await page.get_by_label("Subjek").fill("Tanya")
    await page.get_by_label("Pesan").fill("Halo")
    await page.get_by_role("button", name="Kirim pesan").click()
    await page.wait_for_load_state()

    assert await page.title() == "Kesalahan: Hubungi kami"
    email = page.get_by_label("Alamat email")
    assert await email.get_attribute("aria-invalid") == "true"
    assert await email.input_value() == "budi@localhost"  # kept
    assert await page.get_by_label("Nama Anda").input_value() == "Budi"
    assert (
        "Isi alamat email seperti nama@contoh.com." in await page.locator("#field-email-error").inner_text()
    )
    # The inline stylesheet is applied under the CSP: the button is green, the honeypot is off-screen.
    background = await page.get_by_role("button", name="Kirim pesan").evaluate(
        "b => getComputedStyle(b).backgroundColor"
    )
    assert background == "rgb(0, 112, 60)"
    box = await page.locator(".hp").bounding_box()
    assert box is not None and box["x"] < -1000
    await context.close()
    async with harness.app.db.sessions() as session:
        assert await list_queue(session, harness.clock.now()) == []
