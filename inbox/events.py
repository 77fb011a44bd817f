"""Neutral events: what connectors hand to the core and what the core hands back to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inbox.models import Direction, Kind


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote a message, as the platform names them."""

    id: str
    handle: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """Metadata of a file, photo or sticker; the bytes stay on the platform."""

    type: str
    name: str | None = None
    mime_type: str | None = None
    size: int | None = None
    platform_ref: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form stored on the message."""
        return {
            k: v
            for k, v in {
                "type": self.type,
                "name": self.name,
                "mime_type": self.mime_type,
                "size": self.size,
                "platform_ref": self.platform_ref,
            }.items()
            if v is not None
        }


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message from a platform (or an import), before it is stored."""

    channel: str
    external_id: str
    kind: Kind
    author: Author
    text: str
    created_at: datetime
    thread_key: str | None = None
    reply_to: str | None = None
    direction: Direction = Direction.IN
    member: str | None = None
    subject: str | None = None
    attachments: tuple[Attachment, ...] = ()
    edited_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Inbound events of one channel plus the cursor to store with them, atomically."""

    channel: str
    events: list[Inbound]
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Outbound:
    """One side effect a connector must perform, as read from an outbox row."""

    delivery_id: int
    destination: str
    purpose: str
    text: str
    recipient: str | None = None
    reply_to: str | None = None
    thread_key: str | None = None
    kind: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the platform answered for a sent Outbound."""

    platform_message_id: str | None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs an action: a team member, the system, or a customer."""

    kind: str  # "member", "system" or "contact"
    name: str
    member_id: int | None = None

    @property
    def label(self) -> str:
        """How the audit log names the actor."""
        return f"{self.kind}:{self.name}"

    @classmethod
    def system(cls, component: str = "system") -> Actor:
        """An actor for automatic actions."""
        return cls(kind="system", name=component)
