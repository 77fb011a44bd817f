"""Fixtures of the reliability suite (``db``, ``clock`` and ``backend`` come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import create_scratch_postgres, drop_scratch_postgres


@pytest.fixture
def fresh_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema) of the test's backend, for `inbox` processes to migrate and run on:
    a SQLite file, or a scratch PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'inbox.db'}"
        return
    url = create_scratch_postgres("saluran_rel")
    try:
        yield url
    finally:
        drop_scratch_postgres(url)
