"""``inbox import``: bulk-ingest neutral events from a JSONL file, keeping the good lines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from inbox.events import Batch, Inbound
from inbox.ingest import Ingestor
from inbox.neutral_json import BadEvent, parse_event

BATCH_LINES = 500


@dataclass
class ImportReport:
    """How an import went."""

    lines: int = 0
    stored: int = 0
    duplicates: int = 0
    edited: int = 0
    conversations: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Number of rejected lines."""
        return len(self.errors)


def _read_lines(fh: IO[bytes]) -> Iterator[tuple[int, bytes, int]]:
    for number, raw in enumerate(fh, start=1):
        yield number, raw, fh.tell()


async def import_file(
    ingestor: Ingestor,
    path: Path,
    *,
    channels: set[str],
    members: set[str],
    progress: Callable[[int, int, ImportReport], None] | None = None,
) -> ImportReport:
    """Ingest every valid line of ``path``; invalid lines are reported with their number."""
    report = ImportReport()
    total = path.stat().st_size
    pending: list[tuple[int, Inbound]] = []
    with path.open("rb") as fh:
        for number, raw, position in _read_lines(fh):
            report.lines = number
            if not raw.strip():
                continue
            try:
                event = _parse_line(raw, channels, members)
            except BadEvent as exc:
                report.errors.append(f"line {number}: {exc}")
                continue
            pending.append((number, event))
            if len(pending) >= BATCH_LINES:
                await _flush(ingestor, pending, report)
                pending = []
                if progress:
                    progress(position, total, report)
        await _flush(ingestor, pending, report)
    if progress:
        progress(total, total, report)
    return report


def _parse_line(raw: bytes, channels: set[str], members: set[str]) -> Inbound:
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadEvent(f"not valid JSON ({exc})") from None
    event = parse_event(obj)
    if event.channel not in channels:
        known = ", ".join(sorted(channels)) or "none configured"
        raise BadEvent(f"unknown channel '{event.channel}' (configured: {known})")
    if event.member is not None and event.member not in members:
        raise BadEvent(f"unknown member '{event.member}'")
    return event


async def _flush(ingestor: Ingestor, pending: list[tuple[int, Inbound]], report: ImportReport) -> None:
    by_channel: dict[str, list[Inbound]] = {}
    for _, event in pending:
        by_channel.setdefault(event.channel, []).append(event)
    for channel, events in by_channel.items():
        result = await ingestor.ingest(Batch(channel, events))
        report.stored += len(result.stored)
        report.duplicates += result.duplicates
        report.edited += result.edited
        report.conversations += len(result.new_conversations)
