"""Plain rows for batch firing: the columns firing reads and writes, without the ORM's bookkeeping.

Firing a batch reads a few hundred conversations and their timers and changes a few columns of each.
As ORM objects every row costs an identity-map entry, instrumented attribute sets and a flush that
compares every attribute; as these plain objects it costs a tuple. The engine's rules read and set the
same attribute names on either, and ``write_conversations``/``write_timers`` send the columns that
changed, one executemany per set of changed columns (a batch has a few: fired, cancelled, ...).

The rows are read without SQLAlchemy's result processing too (``_Reader``): its per-value processors (a
dozen UTC timestamps and the JSON SLA state per conversation) cost more than the query. A column that
needs it is converted by one function chosen once per dialect, as ``inbox.db_bulk`` does for writes.

A conversation's SLA state stays the JSON text it is stored as (``ConversationRow.sla_state`` decodes it
when the engine reads it; the engine sets the text ``SlaState.dump_text`` writes): the decoded object tree
of a batch's conversations, kept until the batch is written, was most of the objects a batch left for the
garbage collector's full passes, and comparing two texts is cheaper than comparing two trees.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from itertools import compress, count
from operator import attrgetter, ne
from typing import Any, Final

from sqlalchemy import JSON, Boolean, Column, Table, Text, cast, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import Label
from sqlalchemy.types import NullType

from inbox.db_bulk import DriverStatement, fetch_rows, ids_condition, ids_param, json_text, time_binder
from inbox.db_types import UTCDateTime
from inbox.models import Conversation, Timer, TimerStatus
from inbox.sla.outcomes import OUTCOME_COLUMN_NAMES

_CONVERSATIONS: Table = Conversation.__table__  # type: ignore[attr-defined]
_TIMERS: Table = Timer.__table__  # type: ignore[attr-defined]

# What firing may change on a conversation: the SLA columns (``_settle``), a ladder step's priority and
# escalation, a snooze's end.
CONVERSATION_WRITTEN: Final = (
    "status", "priority", "priority_rank", "escalation_level", "sla_policy", "sla_state", "breached",
    "first_response_due_at", "next_response_due_at", "resolution_due_at", *OUTCOME_COLUMN_NAMES,
    "snoozed_until", "updated_at",
)
CONVERSATION_READ: Final = ("id", "channel_id", "kind", *CONVERSATION_WRITTEN)
TIMER_WRITTEN: Final = ("status", "due_at", "fired_at", "late", "claimed_by")
TIMER_READ: Final = ("id", "kind", "conversation_id", "data", *TIMER_WRITTEN)

_Convert = Callable[[Any], Any]


def _sqlite_time(value: str | None) -> datetime | None:
    # What UTCDateTime reads back on SQLite (text without a zone), without SQLAlchemy's regex parsing.
    # Parsing the zone with the text costs a fifth of ``.replace(tzinfo=UTC)``; a batch converts ~20 a timer.
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # the text has a zone of its own (or is invalid): as UTCDateTime reads it
        return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _postgres_time(value: datetime | None) -> datetime | None:
    # asyncpg returns timestamptz in UTC already (its ``timezone.utc`` is ``UTC``).
    return value if value is None or value.tzinfo is UTC else value.astimezone(UTC)


def _sqlite_json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _sqlite_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _converter(column: Column[Any], dialect: str) -> _Convert | None:
    """How the driver's value of ``column`` becomes what SQLAlchemy would return; None: as it is."""
    type_ = column.type
    if isinstance(type_, UTCDateTime):
        return _sqlite_time if dialect == "sqlite" else _postgres_time
    if isinstance(type_, JSON):
        # asyncpg decodes JSON itself: SQLAlchemy installs the codec on every connection.
        return _sqlite_json if dialect == "sqlite" else None
    if isinstance(type_, Boolean) and dialect == "sqlite":
        return _sqlite_bool
    return None


class _Reader:
    """A table's columns selected without result processing, and their conversions per dialect."""

    def __init__(self, table: Table, names: Sequence[str], *, as_text: Sequence[str] = ()) -> None:
        self.table = table
        self.names = tuple(names)
        self.as_text = frozenset(as_text)  # JSON columns read as their text (the caller decodes them)
        self.columns: tuple[Label[Any], ...] = tuple(
            type_coerce(cast(table.c[name], Text) if name in self.as_text else table.c[name], NullType())
            .label(name) for name in self.names)
        self._converters: dict[str, list[tuple[int, _Convert]]] = {}

    def select_list(self) -> str:
        """The columns as plain SQL, for statements sent through the driver."""
        return ", ".join(f"CAST({name} AS TEXT) AS {name}" if name in self.as_text else name
                         for name in self.names)

    def converters(self, dialect: str) -> list[tuple[int, _Convert]]:
        """(index, converter) of the columns whose driver values need converting, chosen once."""
        found = self._converters.get(dialect)
        if found is None:
            found = [(index, convert) for index, name in enumerate(self.names)
                     if name not in self.as_text
                     and (convert := _converter(self.table.c[name], dialect)) is not None]
            self._converters[dialect] = found
        return found

    async def rows(self, session: AsyncSession, query: Any) -> list[list[Any]]:
        """Run ``query`` (a select of ``columns``) and return each row's values, converted."""
        return self._converted(session.get_bind().dialect.name, await session.execute(query))

    async def by_ids(self, session: AsyncSession, read: _ByIds, ids: Sequence[int]) -> list[list[Any]]:
        """``read``'s SELECT of these columns for ``ids``, sent through the driver; each row's values."""
        dialect = session.get_bind().dialect.name
        rows = await fetch_rows(session, read.sql(self, dialect), (ids_param(ids, dialect),))
        return self._converted(dialect, rows)

    def _converted(self, dialect: str, rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
        converters = self.converters(dialect)
        out = []
        for row in rows:
            values = list(row)
            for index, convert in converters:
                values[index] = convert(values[index])
            out.append(values)
        return out


class _ByIds:
    """A SELECT of a reader's columns WHERE ``key`` is one of a list of ids, written once per dialect.

    The list is one parameter (an array on PostgreSQL, a JSON array read by ``json_each`` on SQLite), sent
    through the driver: SQLAlchemy renders an expanding ``IN`` with a bound parameter per id on every
    execution, which for a batch's few hundred ids cost more than the query. ``where`` is constant SQL.
    """

    def __init__(self, key: str, where: str = "", *, lock: bool) -> None:
        self.key, self.where, self.lock = key, where, lock
        self._sql: dict[str, str] = {}

    def sql(self, reader: _Reader, dialect: str) -> str:
        """The statement for ``dialect`` (qmark for sqlite3, numeric for asyncpg)."""
        found = self._sql.get(dialect)
        if found is None:
            postgres = dialect == "postgresql"
            columns = reader.select_list()
            ids = ids_condition(self.key, dialect)
            # One lock order everywhere (by id), so two writers cannot deadlock; held rows are skipped.
            found = (f'SELECT {columns} FROM "{reader.table.name}" WHERE {ids}{self.where} ORDER BY id'
                     + (" FOR UPDATE SKIP LOCKED" if postgres and self.lock else ""))
            self._sql[dialect] = found
        return found


def _quoted(values: Iterable[str]) -> str:
    """Constant strings as SQL literals (code's own constants, never user data)."""
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


# ``data`` as its JSON text: decoded once per distinct value instead of once per row (``timer_data``).
_TIMER_READER: Final = _Reader(_TIMERS, TIMER_READ, as_text=("data",))
# ``sla_state`` as its JSON text, kept as text by ConversationRow (see the module's docstring).
_CONVERSATION_READER: Final = _Reader(_CONVERSATIONS, CONVERSATION_READ, as_text=("sla_state",))
_STATE_SLOT: Final = "_sla_state_text"
# ConversationRow's slots in CONVERSATION_READ's and CONVERSATION_WRITTEN's orders (the state as its text).
_CONVERSATION_SLOTS: Final = tuple(_STATE_SLOT if n == "sla_state" else n for n in CONVERSATION_READ)
_conversation_written = attrgetter(*(_STATE_SLOT if n == "sla_state" else n for n in CONVERSATION_WRITTEN))


class ConversationRow:
    """A conversation's firing columns as plain attributes (the names of ``Conversation``'s).

    ``sla_state`` is kept as its stored JSON text: reading the attribute decodes it (a new object each
    time), setting it encodes the value as the column stores it.
    """

    __slots__ = (*_CONVERSATION_SLOTS, "_saved")

    id: int | None
    channel_id: int
    kind: str
    status: str
    priority: str
    priority_rank: int
    escalation_level: int
    sla_policy: str | None
    _sla_state_text: str | None
    breached: list[str]
    first_response_due_at: datetime | None
    next_response_due_at: datetime | None
    resolution_due_at: datetime | None
    first_response_outcome_at: datetime | None
    first_response_ended_at: datetime | None
    next_response_outcome_at: datetime | None
    next_response_ended_at: datetime | None
    next_response_started_at: datetime | None
    resolution_outcome_at: datetime | None
    resolution_ended_at: datetime | None
    snoozed_until: datetime | None
    updated_at: datetime
    _saved: tuple[Any, ...]

    def __init__(self, values: Sequence[Any]) -> None:
        # One unpacking in ``_CONVERSATION_SLOTS``' order (tests/sla/test_rows.py checks they agree): a
        # setattr per column cost twice as much, for each of a batch's few hundred rows.
        (self.id, self.channel_id, self.kind, self.status, self.priority, self.priority_rank,
         self.escalation_level, self.sla_policy, self._sla_state_text, self.breached,
         self.first_response_due_at, self.next_response_due_at, self.resolution_due_at,
         self.first_response_outcome_at, self.first_response_ended_at, self.next_response_outcome_at,
         self.next_response_ended_at, self.resolution_outcome_at, self.resolution_ended_at,
         self.next_response_started_at, self.snoozed_until, self.updated_at) = values
        self.saved()

    @property
    def sla_state(self) -> dict[str, Any] | None:
        """The SLA state column, decoded (None when the column is NULL or JSON null)."""
        text = self._sla_state_text
        value: dict[str, Any] | None = None if text is None else json.loads(text)
        return value

    @sla_state.setter
    def sla_state(self, value: dict[str, Any] | None) -> None:
        self._sla_state_text = json_text(value)  # what the column's JSON type would bind

    def set_sla_state_text(self, text: str) -> None:
        """Set the SLA state column to JSON ``text`` (what ``json_text`` makes of the state's dict)."""
        self._sla_state_text = text

    def written(self) -> tuple[Any, ...]:
        """The values of the columns firing may change, as they are now (the SLA state as its text)."""
        values: tuple[Any, ...] = _conversation_written(self)
        return values

    def saved(self) -> None:
        """What the database holds now (read, or just written)."""
        self._saved = self.written()


class TimerRow:
    """A timer's firing columns as plain attributes (the names of ``Timer``'s)."""

    __slots__ = (*TIMER_READ, "_saved")

    id: int | None
    kind: str
    conversation_id: int | None
    data: dict[str, Any]
    status: str
    due_at: datetime
    fired_at: datetime | None
    late: bool
    claimed_by: str | None
    _saved: tuple[Any, ...]

    def __init__(self, values: Sequence[Any]) -> None:
        (self.id, self.kind, self.conversation_id, data, self.status, self.due_at, self.fired_at, self.late,
         self.claimed_by) = values  # in TIMER_READ's order
        self.data = timer_data(data)
        self.saved()

    def written(self) -> tuple[Any, ...]:
        """The values of the columns firing may change, as they are now."""
        return (self.status, self.due_at, self.fired_at, self.late, self.claimed_by)

    def saved(self) -> None:
        """What the database holds now (read, or just written)."""
        self._saved = self.written()


def timer_data(text: str | None) -> dict[str, Any]:
    """A timer's ``data`` from its JSON text (read as text: see ``_TIMER_READER``), a dict of its own."""
    if not text:
        return {}
    flat, value = _decoded(text)
    return dict(value) if flat else json.loads(text)  # nested values must not be shared between rows


@lru_cache(maxsize=4096)
def _decoded(text: str) -> tuple[bool, dict[str, Any]]:
    """Decoded once per distinct text: a batch's timers carry a handful of different ``data`` values."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"timer data is not an object: {text[:80]!r}")
    return all(not isinstance(v, dict | list) for v in value.values()), value


AnyConversation = Conversation | ConversationRow
"""A conversation as the ORM loads it, or as batch firing reads it (the same attribute names)."""
AnyTimer = Timer | TimerRow
"""A timer as the ORM loads it, or as batch firing reads it (the same attribute names)."""


async def claim_timers(
    session: AsyncSession, kinds: Sequence[str], now: datetime, limit: int, *, skip_locked: bool
) -> list[TimerRow]:
    """Up to ``limit`` pending timers of ``kinds`` due by ``now``, oldest first, locked (skipping those
    another transaction holds, on PostgreSQL); one statement through the driver (``fetch_rows``)."""
    if not kinds:
        return []
    dialect = session.get_bind().dialect.name
    key = (dialect, tuple(kinds), skip_locked)
    sql = _CLAIMS.get(key)
    if sql is None:
        now_mark, limit_mark = ("$1", "$2") if dialect == "postgresql" else ("?", "?")
        # The status and kinds are constants, written as literals: the (status, due_at) index gives the
        # order (due_at, then id) without a sort.
        sql = _CLAIMS[key] = (
            f'SELECT {_TIMER_READER.select_list()} FROM "{_TIMERS.name}"'
            f" WHERE status = '{TimerStatus.PENDING.value}' AND due_at <= {now_mark}"
            f" AND kind IN ({_quoted(kinds)}) ORDER BY due_at, id LIMIT {limit_mark}"
            + (" FOR UPDATE SKIP LOCKED" if skip_locked else ""))
    rows = await fetch_rows(session, sql, (time_binder(dialect)(now), limit))
    return list(map(TimerRow, _TIMER_READER._converted(dialect, rows)))


_CLAIMS: dict[tuple[str, tuple[str, ...], bool], str] = {}


async def first_due(session: AsyncSession, kinds: Sequence[str]) -> datetime | None:
    """The earliest due time of a pending timer of ``kinds``: one lookup on the (status, due_at) index,
    in one trip to the driver (``fetch_rows``)."""
    if not kinds:
        return None
    dialect = session.get_bind().dialect.name
    sql = _FIRST_DUE.get((dialect, tuple(kinds)))
    if sql is None:
        # Constants as literals: the same plan on every call, and nothing to bind.
        sql = _FIRST_DUE[(dialect, tuple(kinds))] = (
            f"SELECT due_at FROM \"{_TIMERS.name}\" WHERE status = '{TimerStatus.PENDING.value}'"
            f" AND kind IN ({_quoted(kinds)}) ORDER BY due_at LIMIT 1")
    rows = await fetch_rows(session, sql)
    if not rows:
        return None
    convert = _converter(_TIMERS.c.due_at, dialect)
    due: datetime | None = convert(rows[0][0]) if convert else rows[0][0]
    return due


_FIRST_DUE: dict[tuple[str, tuple[str, ...]], str] = {}


async def timers_by_id(session: AsyncSession, ids: Sequence[int]) -> list[TimerRow]:
    """These timers as they are in the database now, in the order of ``ids`` (missing ones left out)."""
    rows = await _TIMER_READER.rows(session, select(*_TIMER_READER.columns).where(_TIMERS.c.id.in_(ids)))
    found = {row.id: row for row in map(TimerRow, rows)}
    return [found[i] for i in ids if i in found]


async def pending_sla_timers(
    session: AsyncSession, conversation_ids: Sequence[int], kinds: Sequence[str],
    known: Mapping[int | None, TimerRow] | None = None,
) -> dict[int, list[TimerRow]]:
    """Pending timers of ``kinds`` of these conversations by id order, locked (skipping held rows); a
    timer in ``known`` (the claimed batch) is that object, not a new one."""
    read = _PENDING_BY_KINDS.get(tuple(kinds))
    if read is None:
        read = _PENDING_BY_KINDS[tuple(kinds)] = _ByIds(
            "conversation_id", f" AND status = '{TimerStatus.PENDING.value}' AND kind IN ({_quoted(kinds)})",
            lock=True)
    rows = await _TIMER_READER.by_ids(session, read, conversation_ids)
    known = known or {}
    found: dict[int, list[TimerRow]] = {}
    for values in rows:
        timer = known.get(values[0]) or TimerRow(values)
        assert timer.conversation_id is not None
        found.setdefault(timer.conversation_id, []).append(timer)
    return found


async def conversation_tags(session: AsyncSession, ids: Sequence[int]) -> dict[int, frozenset[str]]:
    """The tag names of these conversations (those without tags left out), in one statement through the
    driver: what ``SlaEngine._tags`` reads, for a batch's few hundred ids."""
    dialect = session.get_bind().dialect.name
    rows = await fetch_rows(  # (conversation id, tag name)
        session, "SELECT ct.conversation_id, t.name FROM conversation_tags ct JOIN tags t ON t.id = ct.tag_id"
        f" WHERE {ids_condition('ct.conversation_id', dialect)}", (ids_param(ids, dialect),))
    found: dict[int, set[str]] = {}
    for conversation_id, name in rows:
        found.setdefault(conversation_id, set()).add(name)
    return {k: frozenset(v) for k, v in found.items()}


async def lock_conversations(session: AsyncSession, ids: Sequence[int]) -> list[ConversationRow]:
    """These conversations' firing columns, locked in id order, skipping those another transaction holds."""
    return list(map(ConversationRow, await _CONVERSATION_READER.by_ids(session, _LOCK_CONVERSATIONS, ids)))


_LOCK_CONVERSATIONS: Final = _ByIds("id", lock=True)
_PENDING_BY_KINDS: dict[tuple[str, ...], _ByIds] = {}


async def write_conversations(session: AsyncSession, rows: Iterable[ConversationRow]) -> None:
    """Write the columns that changed: one executemany per set of changed columns (a batch has a few)."""
    await _write(session, _CONVERSATIONS, CONVERSATION_WRITTEN, rows)


async def write_timers(session: AsyncSession, rows: Iterable[TimerRow]) -> None:
    """Write the columns that changed: one executemany per set of changed columns (fired, cancelled)."""
    await _write(session, _TIMERS, TIMER_WRITTEN, rows)


async def _write(
    session: AsyncSession, table: Table, names: tuple[str, ...], rows: Iterable[ConversationRow | TimerRow]
) -> None:
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    for row in rows:
        values, saved = row.written(), row._saved
        if values == saved:
            continue
        # Only what changed: binding a dozen unchanged timestamps per row costs more than the UPDATE. (The
        # indexes whose values differ, found in C: a generator over twenty values costs more per row.)
        changed = tuple(compress(count(), map(ne, values, saved)))
        params = {names[i]: values[i] for i in changed}
        params["_id"] = row.id
        groups.setdefault(changed, []).append(params)
        row._saved = values
    for changed, batch in groups.items():
        await _update(table, tuple(names[i] for i in changed)).execute_many(session, batch)


_UPDATES: dict[tuple[str, tuple[str, ...]], DriverStatement] = {}


def _update(table: Table, names: tuple[str, ...]) -> DriverStatement:
    """``UPDATE table SET name = :name, ... WHERE id = :_id``, made once per set of columns, bound
    through the driver (``inbox.db_bulk``: SQLAlchemy's executemany costs more per row than the UPDATE)."""
    key = (table.name, names)
    if key not in _UPDATES:
        sets = ", ".join(f"{name} = :{name}" for name in names)
        # A conversation's SLA state is already its JSON text (ConversationRow): bound as it is.
        types = {name: None if (table is _CONVERSATIONS and name == "sla_state") else table.c[name].type
                 for name in names}
        _UPDATES[key] = DriverStatement(
            f'UPDATE "{table.name}" SET {sets} WHERE id = :_id', types,
            set_sql=f'UPDATE "{table.name}" SET {sets} FROM json_each(?) AS j WHERE "{table.name}".id = :_id')
    return _UPDATES[key]
