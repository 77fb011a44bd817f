"""Freezing the startup heap: what exists at the call leaves the collector's passes; later objects do not."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from inbox.heap import freeze_startup_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_objects_alive_at_the_call_are_frozen_and_later_ones_are_not(unfrozen: None) -> None:
    before = [object()]  # a container the collector tracks
    frozen = freeze_startup_heap()
    assert frozen == gc.get_freeze_count() > 0
    assert not any(o is before for o in gc.get_objects())  # frozen objects are not in any generation
    after = [object()]
    assert any(o is after for o in gc.get_objects())
