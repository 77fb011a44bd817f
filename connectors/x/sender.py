"""X sender: public replies as posts in reply to the customer's post, DM replies as DMs.

Text longer than X allows is refused with a clear message, or, when the outbox payload says
``thread: true``, sent as a numbered thread ("(1/3) ...", each part answering the previous one).
Every post or DM created is counted as a write in the channel's budget; sending is never
blocked by the budget, because answering a customer matters more than the bill.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tweepy.errors import HTTPException, TooManyRequests, TwitterServerError

from connectors.x.budget import UsageLedger
from connectors.x.source import XClient, count_usage, reset_of
from inbox.clock import Clock
from inbox.events import Outbound, Receipt
from inbox.ports import DeliveryFailed, PermanentFailure, RateLimited

log = logging.getLogger(__name__)

POST_MAX_LENGTH = 280  # weighted characters, as X's twitter-text counts them
DM_MAX_LENGTH = 10_000  # plain characters
MAX_THREAD_PARTS = 25  # a longer "thread" is a blog post; refuse rather than flood the timeline
URL_WEIGHT = 23  # every link counts as a t.co link, whatever its length
DEFAULT_RETRY_AFTER = 60.0
# twitter-text v3: code points in these ranges weigh 1, all others 2 (CJK, emoji ...).
_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_URL_RE = re.compile(r"https?://\S+", re.IGNORECASE)
# Links X recognises without a scheme ("example.com/x"); we count them as at least a t.co link.
_BARE_DOMAIN_RE = re.compile(r"(?<![\w@.-])(?:[a-z0-9-]+\.)+[a-z]{2,}(?:/\S*)?(?![\w-])", re.IGNORECASE)


def _weighted(text: str) -> int:
    return sum(1 if any(lo <= ord(ch) <= hi for lo, hi in _LIGHT_RANGES) else 2 for ch in text)


def post_length(text: str) -> int:
    """The length X counts for a post, never less than X's own count.

    The rule of X's twitter-text v3: NFC-normalised, most Latin characters weigh 1, CJK and emoji 2,
    each URL 23. Where our parsing is simpler than X's it errs high: an emoji sequence weighs 2 per
    code point (X: 2 in total), and a bare domain counts its own length when that exceeds 23.
    """
    text = unicodedata.normalize("NFC", text)
    length = 0
    position = 0
    for match in _URL_RE.finditer(text):
        length += _bare_length(text[position:match.start()]) + URL_WEIGHT
        position = match.end()
    return length + _bare_length(text[position:])


def _bare_length(text: str) -> int:
    length = 0
    position = 0
    for match in _BARE_DOMAIN_RE.finditer(text):
        length += _weighted(text[position:match.start()]) + max(URL_WEIGHT, _weighted(match.group()))
        position = match.end()
    return length + _weighted(text[position:])


class TooLong(ValueError):
    """Text that cannot be sent, even as a thread."""


def split_thread(text: str, limit: int = POST_MAX_LENGTH, *, measure: Any = post_length,
                 max_parts: int = MAX_THREAD_PARTS) -> list[str]:
    """Split ``text`` at whitespace into parts numbered "(1/n) ", each at most ``limit`` long.

    Text that fits comes back as one part without a number.
    """
    text = text.strip()
    if measure(text) <= limit:
        return [text]
    tokens = re.findall(r"\S+\s*", text)
    parts = 2
    for _ in range(5):  # the prefix width depends on the count: converge
        prefix_room = measure(f"({parts}/{parts}) ")
        chunks = _pack(tokens, limit - prefix_room, measure)
        if len(chunks) > max_parts:
            raise TooLong(f"the reply would need {len(chunks)} posts; "
                          f"at most {max_parts} are sent as a thread")
        if len(chunks) == parts or len(str(len(chunks))) == len(str(parts)):
            break
        parts = len(chunks)
    total = len(chunks)
    return [f"({i}/{total}) {chunk}" for i, chunk in enumerate(chunks, 1)]


def _pack(tokens: list[str], room: int, measure: Any) -> list[str]:
    chunks: list[str] = []
    current = ""
    for token in tokens:
        candidate = current + token
        if measure(candidate.rstrip()) <= room:
            current = candidate
            continue
        if current.strip():
            chunks.append(current.rstrip())
        current = ""
        while measure(token.rstrip()) > room:  # one word longer than a post: cut it
            cut = _longest_prefix(token, room, measure)
            chunks.append(token[:cut])
            token = token[cut:]
        current = token
    if current.strip():
        chunks.append(current.rstrip())
    return chunks


def _longest_prefix(token: str, room: int, measure: Any) -> int:
    cut = 1
    while cut < len(token) and measure(token[: cut + 1]) <= room:
        cut += 1
    return cut


def _detail(exc: HTTPException) -> str:
    messages = [str(m) for m in exc.api_messages if m]
    return "; ".join(messages) or str(exc)


def map_error(exc: BaseException, now: float, what: str) -> DeliveryFailed:
    """Turn a tweepy or network error into the outbox's failure types."""
    if isinstance(exc, TooManyRequests):
        reset = exc.reset_time or reset_of(exc.response.headers)
        wait = max(1.0, reset - now) if reset is not None else DEFAULT_RETRY_AFTER
        return RateLimited(wait, f"X rate limit on {what}")
    if isinstance(exc, TwitterServerError):
        return DeliveryFailed(f"X server error {exc.response.status} on {what}: {_detail(exc)}")
    if isinstance(exc, HTTPException):
        return PermanentFailure(f"X refused {what} ({exc.response.status}): {_detail(exc)}")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return DeliveryFailed(f"X did not answer {what} in time")
    if isinstance(exc, aiohttp.ClientError):
        return DeliveryFailed(f"could not reach X for {what}: {exc}")
    raise exc


@dataclass
class _Progress:
    """Parts of one delivery already on X (kept across retries in this process)."""

    ids: list[str] = field(default_factory=list)
    uncertain: bool = False  # an attempt timed out: X may have created the part anyway


class XSender:
    """Sends outbox rows of one X channel (a ``Sender``)."""

    post_max_length = POST_MAX_LENGTH
    dm_max_length = DM_MAX_LENGTH

    def __init__(
        self, channel: str, client: XClient, clock: Clock, ledger: UsageLedger | None = None
    ) -> None:
        self.channel = channel
        self.client = client
        self.clock = clock
        self.ledger = ledger
        # In memory on purpose: a retry in this process continues a half-sent thread; after a restart
        # the thread starts again, and X refuses the duplicate first part (reported, not re-posted).
        self._progress: dict[int, _Progress] = {}

    async def send(self, outbound: Outbound) -> Receipt:
        """Post the reply (or DM it); raise RateLimited, DeliveryFailed or PermanentFailure."""
        is_dm = outbound.kind == "dm"
        parts = self._parts(outbound, is_dm)
        progress = self._progress.setdefault(outbound.delivery_id, _Progress())
        while len(progress.ids) < len(parts):
            index = len(progress.ids)
            what = "the direct message" if is_dm else "the reply post"
            if len(parts) > 1:
                what += f" (part {index + 1} of {len(parts)})"
            try:
                created = await (self._dm(outbound, parts[index]) if is_dm
                                 else self._post(outbound, parts[index], progress.ids))
            except PermanentFailure:
                self._progress.pop(outbound.delivery_id, None)
                raise
            except (HTTPException, aiohttp.ClientError, TimeoutError) as exc:
                failure = map_error(exc, self.clock.now().timestamp(), what)
                if isinstance(exc, TimeoutError):
                    progress.uncertain = True
                elif self._already_posted(exc, progress, parts):
                    log.warning("channel %s: delivery #%s timed out earlier and X now calls it a duplicate; "
                                "counting it as sent", self.channel, outbound.delivery_id)
                    self._progress.pop(outbound.delivery_id, None)
                    return Receipt(platform_message_id=None)
                if not failure.retryable:
                    self._progress.pop(outbound.delivery_id, None)
                raise failure from exc
            progress.ids.append(created)
            progress.uncertain = False
            await count_usage(self.ledger, {"writes.dms" if is_dm else "writes.posts": 1})
        self._progress.pop(outbound.delivery_id, None)
        return Receipt(platform_message_id=progress.ids[0])

    def _parts(self, outbound: Outbound, is_dm: bool) -> list[str]:
        text = outbound.text.strip()
        if not text:
            raise PermanentFailure("an empty reply cannot be sent to X")
        limit = self.dm_max_length if is_dm else self.post_max_length
        measure = len if is_dm else post_length
        length = measure(text)
        if length <= limit:
            return [text]
        if not outbound.extra.get("thread"):
            unit = "characters" if is_dm else "characters as X counts them (links 23, CJK and emoji 2)"
            kind = "a direct message" if is_dm else "a post"
            raise PermanentFailure(f"the reply is {length} {unit}; {kind} on X holds at most {limit}. "
                                   "Shorten it, or send it as a numbered thread.")
        try:
            return split_thread(text, limit, measure=measure)
        except TooLong as exc:
            raise PermanentFailure(str(exc)) from None

    @staticmethod
    def _already_posted(exc: BaseException, progress: _Progress, parts: list[str]) -> bool:
        # Only a single post can be recognised: for a thread we would not know the lost part's id.
        return (progress.uncertain and len(parts) == 1 and isinstance(exc, HTTPException)
                and exc.response.status == 403 and "duplicate" in _detail(exc).lower())

    async def _post(self, outbound: Outbound, text: str, earlier: list[str]) -> str:
        parent = earlier[-1] if earlier else outbound.reply_to
        if not parent:
            raise PermanentFailure("no customer post to reply to (the conversation has no inbound post id)")
        body, _ = await self.client.call("create_tweet", text=text, in_reply_to_tweet_id=parent)
        return str(body["data"]["id"])

    async def _dm(self, outbound: Outbound, text: str) -> str:
        if not outbound.recipient:
            raise PermanentFailure("a direct message needs the customer's X user id (recipient)")
        body, _ = await self.client.call(
            "create_direct_message", participant_id=outbound.recipient, text=text
        )
        return str(body["data"]["dm_event_id"])
