"""Plain rows of batch firing (inbox.sla.rows): their columns, their SQLite times."""

from __future__ import annotations

from datetime import UTC, datetime

from inbox.sla.rows import _CONVERSATION_SLOTS, CONVERSATION_WRITTEN, ConversationRow, _sqlite_time


def test_a_conversation_row_takes_its_values_in_the_order_it_reads_them() -> None:
    row = ConversationRow(list(range(len(_CONVERSATION_SLOTS))))
    assert [getattr(row, name) for name in _CONVERSATION_SLOTS] == list(range(len(_CONVERSATION_SLOTS)))
    slots = ["_sla_state_text" if n == "sla_state" else n for n in CONVERSATION_WRITTEN]
    written = [_CONVERSATION_SLOTS.index(n) for n in slots]
    assert list(row.written()) == written


def test_sqlite_times_read_back_as_utc_whatever_their_text() -> None:
    assert _sqlite_time(None) is None
    plain = _sqlite_time("2026-11-02 09:00:00.000005")
    assert plain == datetime(2026, 11, 2, 9, 0, 0, 5, tzinfo=UTC)
    assert plain is not None and plain.tzinfo is UTC
    assert _sqlite_time("2026-11-02 09:00:00") == datetime(2026, 11, 2, 9, tzinfo=UTC)
    # A text with a zone of its own is read as UTCDateTime's reader did here before: the zone replaced.
    assert _sqlite_time("9999-12-31 00:00:00+00") == datetime(9999, 12, 31, tzinfo=UTC)
    assert _sqlite_time("2026-11-02 16:00:00+07:00") == datetime(2026, 11, 2, 16, tzinfo=UTC)
