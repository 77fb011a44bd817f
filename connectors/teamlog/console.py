"""The teamlog "console": appends every team notice to a file as a JSON line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from inbox.clock import Clock, isoformat_utc
from inbox.events import Outbound, Receipt
from inbox.ports import DeliveryFailed, Pace
from inbox.registry import Connector, ConnectorContext
from inbox.settings import ChannelSettings


class Options(BaseModel):
    """Keys of a ``type = "teamlog"`` channel."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(default="team.jsonl", min_length=1,
                      description="file the team notices are appended to (relative to the config file)")


class TeamLogSender:
    """Appends ``{delivery_id, destination, purpose, chat_id, text, view, mentions, sent_at}`` lines.

    A delivery may be sent more than once (at-least-once outbox): readers deduplicate by ``delivery_id``.
    """

    pace: Final = Pace()  # a file takes lines as fast as they come

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock

    async def send(self, outbound: Outbound) -> Receipt:
        """Write the line and flush it to disk."""
        line: dict[str, Any] = {
            "delivery_id": outbound.delivery_id,
            "destination": outbound.destination,
            "purpose": outbound.purpose,
            "chat_id": outbound.extra.get("chat_id"),
            "text": outbound.text,
            "view": outbound.extra.get("view"),
            "mentions": outbound.extra.get("mentions") or {},
            "sent_at": isoformat_utc(self.clock.now()),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise DeliveryFailed(f"cannot write {self.path}: {exc.strerror}") from exc
        return Receipt(platform_message_id=f"teamlog:{outbound.delivery_id}")


def build(channel: ChannelSettings, context: ConnectorContext) -> Connector:
    """A team sender only: a teamlog channel hosts team chats and has no customers."""
    options = Options.model_validate(channel.options())
    base = Path(context.extra.get("base_dir", "."))
    return Connector(channel.name, team_sender=TeamLogSender(base / options.path, context.clock))
