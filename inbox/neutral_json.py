"""The neutral event JSON format (``inbox import``, the JSONL connector, the inbound API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from inbox.clock import ensure_utc
from inbox.events import Attachment, Author, Inbound
from inbox.models import Direction, Kind

E = TypeVar("E", Kind, Direction)
MAX_TEXT = 100_000
_KNOWN_KEYS = {
    "channel",
    "external_id",
    "kind",
    "direction",
    "thread_key",
    "author",
    "text",
    "created_at",
    "member",
    "reply_to",
    "subject",
    "attachments",
    "edited_at",
}


class BadEvent(ValueError):
    """A neutral event that cannot be accepted; the message names the field."""


def _str(obj: dict[str, Any], key: str, *, required: bool = False, limit: int = 200) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise BadEvent(f"'{key}' is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise BadEvent(f"'{key}' must be a string")
    if required and not value.strip():
        raise BadEvent(f"'{key}' must not be empty")
    if len(value) > limit:
        raise BadEvent(f"'{key}' is longer than {limit} characters")
    return value


def _time(obj: dict[str, Any], key: str, *, required: bool) -> datetime | None:
    raw = _str(obj, key, required=required)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadEvent(f"'{key}' must be an ISO 8601 timestamp, got '{raw}'") from None
    if value.tzinfo is None:
        raise BadEvent(f"'{key}' needs a timezone (e.g. 2026-11-02T09:00:00Z)")
    return ensure_utc(value)


def _enum(obj: dict[str, Any], key: str, enum: type[E], default: E | None) -> E:
    raw = obj.get(key)
    if raw is None:
        if default is None:
            raise BadEvent(f"'{key}' is required")
        return default
    try:
        return enum(raw)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise BadEvent(f"'{key}' must be one of {allowed}, got {raw!r}") from None


def _author(obj: dict[str, Any]) -> Author:
    raw = obj.get("author")
    if not isinstance(raw, dict):
        raise BadEvent("'author' must be an object with at least 'id'")
    try:
        return Author(
            id=_str(raw, "id", required=True) or "",
            handle=_str(raw, "handle"),
            name=_str(raw, "name", limit=300),
        )
    except BadEvent as exc:
        raise BadEvent(f"author: {exc}") from None


def _attachments(obj: dict[str, Any]) -> tuple[Attachment, ...]:
    raw = obj.get("attachments") or []
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise BadEvent("'attachments' must be a list of objects")
    out = []
    for item in raw:
        size = item.get("size")
        out.append(
            Attachment(
                type=_str(item, "type", required=True) or "file",
                name=_str(item, "name", limit=500),
                mime_type=_str(item, "mime_type"),
                size=size if isinstance(size, int) else None,
                platform_ref=_str(item, "platform_ref", limit=500),
            )
        )
    return tuple(out)


def parse_event(obj: Any, *, channel: str | None = None) -> Inbound:
    """Turn one decoded JSON object into an Inbound, or raise BadEvent naming the problem.

    ``channel`` fills in (or must match) the object's ``channel`` key.
    """
    if not isinstance(obj, dict):
        raise BadEvent("each event must be a JSON object")
    unknown = sorted(set(obj) - _KNOWN_KEYS)
    if unknown:
        raise BadEvent(f"unknown key(s): {', '.join(unknown)}")
    named = _str(obj, "channel", required=channel is None, limit=100)
    if channel is not None and named is not None and named != channel:
        raise BadEvent(f"'channel' is '{named}' but this source is '{channel}'")
    text = obj.get("text", "")
    if not isinstance(text, str):
        raise BadEvent("'text' must be a string")
    if len(text) > MAX_TEXT:
        raise BadEvent(f"'text' is longer than {MAX_TEXT} characters")
    direction = _enum(obj, "direction", Direction, Direction.IN)
    member = _str(obj, "member", limit=100)
    if member and direction is Direction.IN:
        raise BadEvent("'member' is only for direction 'out' or 'note'")
    return Inbound(
        channel=(named or channel) or "",
        external_id=_str(obj, "external_id", required=True) or "",
        kind=_enum(obj, "kind", Kind, None),
        author=_author(obj),
        text=text,
        created_at=_time(obj, "created_at", required=True) or datetime.min,
        thread_key=_str(obj, "thread_key"),
        reply_to=_str(obj, "reply_to"),
        direction=direction,
        member=member,
        subject=_str(obj, "subject", limit=300),
        attachments=_attachments(obj),
        edited_at=_time(obj, "edited_at", required=False),
    )
