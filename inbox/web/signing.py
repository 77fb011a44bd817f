"""The HMAC scheme of the signed inbound API (and of the api channel's reply callbacks).

A request carries ``X-Saluran-Timestamp: <unix seconds>`` and
``X-Saluran-Signature: sha256=<hex>`` where ``<hex>`` is the lower-case hex HMAC-SHA256, keyed
with the channel's secret, of the bytes ``<timestamp>.<raw body>``. The timestamp must be within
five minutes of the server's clock, so a captured request cannot be replayed later; inside the
window a replay stores nothing new because ingest drops duplicate external ids.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta

SIGNATURE_HEADER = "X-Saluran-Signature"
TIMESTAMP_HEADER = "X-Saluran-Timestamp"
TOLERANCE = timedelta(minutes=5)
_PREFIX = "sha256="


class SignatureError(Exception):
    """A request whose signature or timestamp is missing, wrong or stale; the message says which."""


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The header value ``sha256=<hex>`` for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return _PREFIX + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: datetime) -> dict[str, str]:
    """The two headers that sign ``body`` at ``now`` (for clients, tests and the reply callback)."""
    timestamp = int(now.timestamp())
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now: datetime, tolerance: timedelta = TOLERANCE
) -> int:
    """Check the signature and the timestamp of a request; return the timestamp or raise SignatureError."""
    raw_time = headers.get(TIMESTAMP_HEADER)
    given = headers.get(SIGNATURE_HEADER)
    if not given:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    if not raw_time:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header")
    raw_time = raw_time.strip()
    if not raw_time.isdigit() or len(raw_time) > 12:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be unix seconds (an integer)")
    given = given.strip()
    if not given.lower().startswith(_PREFIX):
        raise SignatureError(f"{SIGNATURE_HEADER} must look like sha256=<hex>")
    expected = signature(secret, raw_time, body)
    # compare_digest: the time taken must not tell an attacker how much of a guess was right.
    if not hmac.compare_digest(expected.encode("ascii"), given.lower().encode("ascii", "replace")):
        raise SignatureError("signature does not match")
    timestamp = int(raw_time)
    skew = abs(now.timestamp() - timestamp)
    if skew > tolerance.total_seconds():
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {skew:.0f}s away from the server's time "
            f"(at most {tolerance.total_seconds():.0f}s allowed)"
        )
    return timestamp
