"""Views to JSON and back, so a View can wait in an outbox payload and be rendered at send time.

The format is plain JSON: a view (or any dataclass of ``inbox.views``) is an object with a ``$type``
key naming its class; a datetime is ``{"$datetime": ISO 8601, "tz": IANA name or null}`` (the zone
name is kept because renderers print it, e.g. ``WIB``); a timedelta is ``{"$timedelta": microseconds}``
(an integer, so it round-trips exactly); tuples are arrays. The top level also carries ``$v`` (the
format version). Fields a newer writer added are ignored on reading, so workers of different
versions can share one outbox; a missing required field or an unknown type raises ViewCodecError.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from inbox import views
from inbox.views import View

FORMAT_VERSION = 1
_TYPE, _VERSION, _DATETIME, _TIMEDELTA = "$type", "$v", "$datetime", "$timedelta"


class ViewCodecError(ValueError):
    """A stored view that cannot be read back."""


def _classes() -> dict[str, type[Any]]:
    """Every dataclass defined in inbox.views, by class name."""
    return {
        name: obj for name, obj in inspect.getmembers(views, inspect.isclass)
        if dataclasses.is_dataclass(obj) and obj.__module__ == views.__name__
    }


_CLASSES = _classes()


def dump(view: View) -> dict[str, Any]:
    """The view as a JSON-ready dict."""
    if not isinstance(view, View):
        raise TypeError(f"not a View: {type(view).__name__}")
    data: dict[str, Any] = _encode(view)
    data[_VERSION] = FORMAT_VERSION
    return data


def load(data: Mapping[str, Any]) -> View:
    """The View that ``dump`` made ``data`` from."""
    if not isinstance(data, Mapping) or _TYPE not in data:
        raise ViewCodecError("not a stored view (no $type)")
    version = data.get(_VERSION, FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ViewCodecError(f"stored view has format version {version!r}; this version reads up to "
                             f"{FORMAT_VERSION}")
    view = _decode(data)
    if not isinstance(view, View):
        raise ViewCodecError(f"{data[_TYPE]} is not a View")
    return view


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat(), "tz": _zone_name(value)}
    if isinstance(value, timedelta):
        return {_TIMEDELTA: (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds}
    if isinstance(value, tuple | list):
        return [_encode(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if _CLASSES.get(name) is not type(value):
            raise TypeError(f"{name} is not a class of inbox.views")
        out: dict[str, Any] = {_TYPE: name}
        for f in dataclasses.fields(value):
            out[f.name] = _encode(getattr(value, f.name))
        return out
    raise TypeError(f"cannot store a {type(value).__name__} in a view")


def _zone_name(value: datetime) -> str | None:
    tz = value.tzinfo
    if isinstance(tz, ZoneInfo):
        return tz.key
    if tz is UTC:
        return "UTC"
    return None  # a fixed offset: the ISO text keeps it


def _decode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return tuple(_decode(item) for item in value)
    if not isinstance(value, Mapping):
        raise ViewCodecError(f"unexpected {type(value).__name__} in a stored view")
    if _DATETIME in value:
        return _decode_datetime(value)
    if _TIMEDELTA in value:
        micros = value[_TIMEDELTA]
        if not isinstance(micros, int) or isinstance(micros, bool):
            raise ViewCodecError(f"bad timedelta {micros!r}")
        return timedelta(microseconds=micros)
    name = value.get(_TYPE)
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ViewCodecError(f"unknown view type {name!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {key: _decode(item) for key, item in value.items() if key in known}
    missing = [
        n for n, f in known.items() if n not in kwargs and f.init
        and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ViewCodecError(f"stored {name} lacks {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ViewCodecError(f"stored {name} does not fit: {exc}") from None


def _decode_datetime(value: Mapping[str, Any]) -> datetime:
    try:
        instant = datetime.fromisoformat(str(value[_DATETIME]))
    except ValueError:
        raise ViewCodecError(f"bad datetime {value[_DATETIME]!r}") from None
    zone = value.get("tz")
    if zone == "UTC":
        return instant.astimezone(UTC)
    if isinstance(zone, str):
        try:
            return instant.astimezone(ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            pass  # an unknown zone on this machine: the ISO offset still gives the right instant
    return instant
