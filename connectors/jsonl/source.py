"""JSONL source (tails a file of neutral events) and sender (appends replies to a file)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from inbox.clock import Clock, isoformat_utc
from inbox.events import Batch, Inbound, Outbound, Receipt
from inbox.neutral_json import BadEvent, parse_event
from inbox.ports import DeliveryFailed
from inbox.registry import Connector, ConnectorContext
from inbox.settings import ChannelSettings

log = logging.getLogger(__name__)


class Options(BaseModel):
    """Keys of a ``type = "jsonl"`` channel."""

    model_config = ConfigDict(extra="forbid")

    inbound_path: str | None = Field(default=None, description="file of neutral events to tail")
    outbound_path: str | None = Field(default=None, description="file the team's replies go to")
    poll_interval: float = Field(default=2.0, gt=0, le=3600)
    max_batch: int = Field(default=500, ge=1, le=10_000)


class JsonlSource:
    """Reads complete lines appended since the cursor (a byte offset) as one batch."""

    def __init__(self, channel: str, path: Path, max_batch: int = 500) -> None:
        self.channel = channel
        self.path = path
        self.max_batch = max_batch

    async def fetch(self, cursor: str | None) -> Batch:
        """Return the events after byte offset ``cursor``; bad lines are logged and skipped."""
        offset = int(cursor or 0)
        if not self.path.exists():
            return Batch(self.channel, [], cursor)
        events: list[Inbound] = []
        with self.path.open("rb") as fh:
            fh.seek(offset)
            while len(events) < self.max_batch:
                line = fh.readline()
                if not line.endswith(b"\n"):
                    break  # a line still being written: read it next time
                start, offset = offset, offset + len(line)
                if not line.strip():
                    continue
                try:
                    events.append(parse_event(json.loads(line), channel=self.channel))
                except (ValueError, BadEvent) as exc:  # the line's first byte: where a reader finds it
                    log.warning("%s: skipped bad line at byte %d: %s", self.path, start, exc)
        return Batch(self.channel, events, str(offset))


class JsonlSender:
    """Appends each outbound item as a JSON line; consumers deduplicate by ``delivery_id``."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock

    async def send(self, outbound: Outbound) -> Receipt:
        """Write the line and flush it to disk."""
        record: dict[str, Any] = {
            "delivery_id": outbound.delivery_id,
            "destination": outbound.destination,
            "purpose": outbound.purpose,
            "text": outbound.text,
            "recipient": outbound.recipient,
            "reply_to": outbound.reply_to,
            "thread_key": outbound.thread_key,
            "sent_at": isoformat_utc(self.clock.now()),
        }
        try:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise DeliveryFailed(f"cannot write {self.path}: {exc.strerror}") from exc
        return Receipt(platform_message_id=f"jsonl:{outbound.delivery_id}")


def build(channel: ChannelSettings, context: ConnectorContext) -> Connector:
    """Build the source and sender a jsonl channel asks for."""
    options = Options.model_validate(channel.options())
    base = Path(context.extra.get("base_dir", "."))
    source = (
        JsonlSource(channel.name, base / options.inbound_path, options.max_batch)
        if options.inbound_path
        else None
    )
    sender = JsonlSender(base / options.outbound_path, context.clock) if options.outbound_path else None
    return Connector(channel.name, source=source, sender=sender, poll_interval=options.poll_interval)
