"""Logs never contain secrets: configured values and bot tokens in URLs are redacted."""

from __future__ import annotations

import io
import json
import logging

import pytest

from inbox.logs import REDACTED, RedactingFormatter, Redactor, configure_logging, settings_secrets
from inbox.settings import settings_from_dict

TOKEN = "123456789:AAHk2-secret_token_value_xyz"


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


@pytest.mark.parametrize("json_lines", [False, True])
def test_secrets_are_redacted_in_messages_arguments_and_tracebacks(json_lines: bool) -> None:
    logger, stream = capture(RedactingFormatter(Redactor(["hunter2-password"]), json_lines=json_lines))
    logger.info("HTTP Request: POST https://api.telegram.org/bot%s/getUpdates", TOKEN)
    logger.debug("connecting with %s", "hunter2-password")
    try:
        raise RuntimeError("login failed for hunter2-password")
    except RuntimeError:
        logger.exception("boom")
    out = stream.getvalue()
    assert TOKEN not in out and "AAHk2" not in out and "hunter2-password" not in out
    # the URL, the argument, and the secret twice in the traceback (source line and message)
    assert out.count(REDACTED) == 4
    assert "/bot[redacted]/getUpdates" in out
    if json_lines:
        for line in out.strip().splitlines():
            assert json.loads(line)["level"] in ("INFO", "DEBUG", "ERROR")


def test_settings_secrets_come_from_channels_and_the_database_url() -> None:
    settings = settings_from_dict(
        {
            "database": {"url": "postgresql://u:db-password-1@h/db"},
            "channels": [{"name": "x", "type": "x", "bearer_token_env": "XB"}],
        },
        environ={"XB": "bearer-secret-value"},
    )
    assert sorted(settings_secrets(settings)) == ["bearer-secret-value", "db-password-1"]


def test_short_values_are_not_treated_as_secrets() -> None:
    assert Redactor(["abc"])("abc def") == "abc def"


def test_configure_logging_redacts_the_root_logger(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("DEBUG", json_lines=False, secrets=["topsecretvalue"])
        logging.getLogger("httpx").debug("GET https://x/?key=topsecretvalue")
        err = capsys.readouterr().err
        assert "topsecretvalue" not in err and REDACTED in err
    finally:
        root.handlers, _ = saved[0], root.setLevel(saved[1])
