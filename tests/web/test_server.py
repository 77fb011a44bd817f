"""The web server as `inbox run` serves it: one application, a named task that stops with the runtime."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from inbox.registry import Connector
from inbox.settings import WebSettings
from inbox.web.server import RouteConflict, build_web_app, serve, web_task
from tests.web.conftest import Recorder, WebHarness, free_port

ROOT = Path(__file__).resolve().parents[2]


async def test_serve_listens_and_stops_on_the_stop_event(harness: WebHarness) -> None:
    stop = asyncio.Event()
    started: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(harness.app, harness.connectors.values(), stop, settings=WebSettings(port=0), started=started)
    )
    (url,) = await asyncio.wait_for(started, 5)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/healthz") as response:
            assert response.status == 200
        async with session.get(f"{url}/contact/website") as response:
            assert response.status == 200
    stop.set()
    await asyncio.wait_for(task, 15)


async def test_a_port_in_use_stops_the_process(harness: WebHarness, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stop = asyncio.Event()
        with pytest.raises(OSError):
            await serve(harness.app, [], stop, settings=WebSettings(port=port))
    assert stop.is_set()
    assert f"web server cannot listen on 127.0.0.1:{port}" in caplog.text


async def test_two_connectors_cannot_claim_one_route(harness: WebHarness) -> None:
    async def nothing(request: web.Request) -> web.Response:
        return web.Response()

    clash = [
        Connector("a", routes=[web.get("/hook", nothing)]),
        Connector("b", routes=[web.get("/hook", nothing)]),
    ]
    with pytest.raises(RouteConflict, match="channel 'b' wants GET /hook, already served by 'a'"):
        build_web_app(harness.app, clash)
    with pytest.raises(RouteConflict, match="already served by 'core'"):
        build_web_app(harness.app, [Connector("c", routes=[web.get("/metrics", nothing)])])


async def test_no_web_section_means_no_server(harness: WebHarness, caplog: pytest.LogCaptureFixture) -> None:
    harness.app.settings.web = None
    caplog.set_level(logging.ERROR)
    assert web_task(harness.app, harness.connectors, asyncio.Event()) is None
    assert "channels partner, website serve web pages but [web] is not configured" in caplog.text


# --- `inbox run` end to end ------------------------------------------------------------------------------

CONFIG = """
[database]
url = "sqlite:///{db}"

[outbox]
idle_interval = "0.2s"

[web]
host = "127.0.0.1"
port = {port}

[[members]]
name = "alice"
role = "admin"

[[channels]]
name = "website"
type = "webform"
from_address = "help@example.org"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_security = "none"
"""


def wait_for(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except OSError:
        return 0


def test_inbox_run_serves_the_form_and_mails_the_reply(
    tmp_path: Path, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, smtp_port = smtp_server
    port = free_port()
    config = tmp_path / "inbox.toml"
    config.write_text(CONFIG.format(db=tmp_path / "x.db", port=port, smtp_port=smtp_port))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "inbox.cli.main", "-c", str(config)]
    proc = subprocess.Popen(
        [*command, "run", "--migrate"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: get_status(f"{base}/readyz") == 200), "the web server never became ready"
        form = urllib.parse.urlencode(
            {
                "name": "Rina",
                "email": "rina@example.com",
                "subject": "Jam buka",
                "message": "Buka hari Minggu?",
                "lang": "id",
            }
        ).encode()
        with urllib.request.urlopen(f"{base}/contact/website", data=form, timeout=5) as response:
            assert response.status == 200
            assert "Nomor referensi Anda adalah #1." in response.read().decode()
        reply = subprocess.run(
            [*command, "cmd", "--as", "alice", "/reply 1 Ya, buka jam 10-16."],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert reply.returncode == 0, reply.stdout + reply.stderr
        assert wait_for(lambda: len(recorder.envelopes) == 1), "the reply never reached the SMTP server"
        raw = recorder.envelopes[0].original_content
        assert raw is not None
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        assert mail["Subject"] == "[#1] Re: Jam buka" and mail["To"] == "rina@example.com"
        assert str(mail["In-Reply-To"]).startswith("<form.")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = proc.stdout.read() if proc.stdout else ""
    assert "web server listening on http://127.0.0.1:" in output, output
    queue = subprocess.run(
        [*command, "queue", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert json.loads(queue.stdout)[0]["kind"] == "form"


async def test_clashing_routes_stop_the_process(harness: WebHarness) -> None:
    async def nothing(request: web.Request) -> web.Response:
        return web.Response()

    stop = asyncio.Event()
    clash = [
        Connector("a", routes=[web.post("/hook", nothing)]),
        Connector("b", routes=[web.post("/hook", nothing)]),
    ]
    with pytest.raises(RouteConflict):
        await serve(harness.app, clash, stop, settings=WebSettings(port=0))
    assert stop.is_set()
