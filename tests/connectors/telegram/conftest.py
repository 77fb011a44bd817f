"""Shared settings of the Telegram tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns whenever a RetryAfter is made unless it may use its future timedelta type.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
