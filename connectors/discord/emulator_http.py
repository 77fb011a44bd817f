"""The Discord emulator's HTTP side: routes, errors, faults, rate limits, and request-body validation.

The validators turn a request body into the response shape Discord would store (message content,
embeds, components, ``allowed_mentions``, application commands) and collect field errors into
Discord's nested ``errors`` object, answered as 400 / 50035 "Invalid Form Body".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from connectors.discord.emulator_world import Attachment, Json

API_PREFIX = "/api/v10"
MAX_CONTENT = 2000  # characters in one message, for bots
MAX_EMBEDS = 10
MAX_ACTION_ROWS = 5
ALLOWED_MESSAGE_FLAGS = (1 << 2) | (1 << 12) | (1 << 15)  # SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS, V2
_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")
_ALLOWED_MENTION_KINDS = {"users", "roles", "everyone"}


@dataclass(frozen=True)
class RestRoute:
    """One REST endpoint: method, path template (as in Discord's OpenAPI), and the body fields it reads.

    ``accepts`` names the request fields the emulator uses, as paths: ``content``,
    ``allowed_mentions.parse``, ``components[].components[].custom_id``; for a JSON array body the
    paths start with ``[]``. Discord ignores unknown fields and so does the emulator (it records
    them on the request).
    """

    method: str
    path: str
    handler: str
    accepts: frozenset[str] = frozenset()
    bucket: str = "default"
    auth: bool = True

    @property
    def name(self) -> str:
        """``METHOD /path/{template}``: how faults and the request log name a route."""
        return f"{self.method} {self.path}"

    @property
    def bucket_hash(self) -> str:
        """A stable, Discord-looking rate-limit bucket id."""
        return hashlib.sha1(self.name.encode()).hexdigest()[:32]


_MESSAGE_BODY = frozenset(
    {
        "content",
        "embeds",
        "tts",
        "flags",
        "nonce",
        "enforce_nonce",
        "allowed_mentions",
        "allowed_mentions.parse",
        "allowed_mentions.users",
        "allowed_mentions.roles",
        "allowed_mentions.replied_user",
        "components",
        "components[].type",
        "components[].components",
        "components[].components[].type",
        "components[].components[].style",
        "components[].components[].label",
        "components[].components[].custom_id",
        "components[].components[].url",
        "components[].components[].disabled",
        "components[].components[].emoji",
        "components[].components[].options",
        "components[].components[].placeholder",
        "components[].components[].min_values",
        "components[].components[].max_values",
        "attachments",
        "attachments[].id",
        "attachments[].filename",
        "attachments[].description",
    }
)
_MESSAGE_EDIT_BODY = frozenset(
    f for f in _MESSAGE_BODY if not f.startswith(("tts", "nonce", "enforce_nonce"))
)
_CREATE_MESSAGE_BODY = _MESSAGE_BODY | {
    "message_reference",
    "message_reference.message_id",
    "message_reference.channel_id",
    "message_reference.guild_id",
    "message_reference.fail_if_not_exists",
    "message_reference.type",
}
_WEBHOOK_EDIT_BODY = frozenset(f for f in _MESSAGE_EDIT_BODY if f != "flags") | {"flags"}
_COMMAND_BODY = frozenset(
    {
        "[]",
        "[].name",
        "[].description",
        "[].type",
        "[].options",
        "[].default_member_permissions",
        "[].dm_permission",
        "[].contexts",
        "[].integration_types",
        "[].name_localizations",
        "[].description_localizations",
        "[].id",
        "[].options[].type",
        "[].options[].name",
        "[].options[].description",
        "[].options[].required",
        "[].options[].choices",
        "[].options[].options",
        "[].options[].channel_types",
        "[].options[].min_value",
        "[].options[].max_value",
        "[].options[].min_length",
        "[].options[].max_length",
        "[].options[].autocomplete",
    }
)
_CALLBACK_BODY = frozenset({"type", "data"} | {f"data.{f}" for f in _MESSAGE_EDIT_BODY} | {"data.tts"})

ROUTES: tuple[RestRoute, ...] = (
    RestRoute("GET", "/users/@me", "_get_me"),
    RestRoute("GET", "/users/{user_id}", "_get_user"),
    RestRoute("POST", "/users/@me/channels", "_create_dm", frozenset({"recipient_id"})),
    RestRoute("GET", "/oauth2/applications/@me", "_get_application"),
    RestRoute("GET", "/gateway", "_get_gateway", auth=False),
    RestRoute("GET", "/gateway/bot", "_get_gateway_bot"),
    RestRoute("GET", "/channels/{channel_id}", "_get_channel"),
    RestRoute("POST", "/channels/{channel_id}/typing", "_typing"),
    RestRoute(
        "POST", "/channels/{channel_id}/messages", "_create_message", _CREATE_MESSAGE_BODY, bucket="messages"
    ),
    RestRoute("GET", "/channels/{channel_id}/messages", "_list_messages"),
    RestRoute("GET", "/channels/{channel_id}/messages/{message_id}", "_get_message"),
    RestRoute("PATCH", "/channels/{channel_id}/messages/{message_id}", "_edit_message", _MESSAGE_EDIT_BODY),
    RestRoute(
        "POST",
        "/channels/{channel_id}/threads",
        "_create_thread",
        frozenset({"name", "type", "auto_archive_duration", "invitable", "rate_limit_per_user"}),
    ),
    RestRoute(
        "POST",
        "/channels/{channel_id}/messages/{message_id}/threads",
        "_create_thread_from_message",
        frozenset({"name", "auto_archive_duration", "rate_limit_per_user"}),
    ),
    RestRoute("GET", "/applications/{application_id}/commands", "_get_commands"),
    RestRoute("PUT", "/applications/{application_id}/commands", "_put_commands", _COMMAND_BODY),
    RestRoute("GET", "/applications/{application_id}/guilds/{guild_id}/commands", "_get_commands"),
    RestRoute(
        "PUT", "/applications/{application_id}/guilds/{guild_id}/commands", "_put_commands", _COMMAND_BODY
    ),
    RestRoute(
        "POST",
        "/interactions/{interaction_id}/{interaction_token}/callback",
        "_interaction_callback",
        _CALLBACK_BODY,
        bucket="interaction",
        auth=False,
    ),
    RestRoute(
        "GET",
        "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
        "_get_original",
        bucket="webhook",
        auth=False,
    ),
    RestRoute(
        "PATCH",
        "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
        "_edit_original",
        _WEBHOOK_EDIT_BODY,
        bucket="webhook",
        auth=False,
    ),
    RestRoute(
        "POST",
        "/webhooks/{webhook_id}/{webhook_token}",
        "_followup",
        _MESSAGE_BODY - {"nonce", "enforce_nonce"},
        bucket="webhook",
        auth=False,
    ),
)


class DiscordHTTPError(Exception):
    """An error response in Discord's shape: ``{"message", "code", "errors"?}``."""

    def __init__(self, status: int, code: int, message: str, errors: Json | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> Json:
        """The JSON body Discord would send."""
        data: Json = {"message": self.message, "code": self.code}
        if self.errors:
            data["errors"] = self.errors
        return data


def field_error(code: str, message: str) -> Json:
    """One field's entry in Discord's ``errors`` object: ``{"_errors": [{"code", "message"}]}``."""
    return {"_errors": [{"code": code, "message": message}]}


class FormErrors:
    """Collects field errors into Discord's nested ``errors`` object (code 50035)."""

    def __init__(self) -> None:
        self.errors: Json = {}

    def add(self, path: Sequence[str | int], code: str, message: str) -> None:
        """Record an error at a field path such as ``["components", 0, "custom_id"]``."""
        node = self.errors
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def raise_if_any(self) -> None:
        """Raise the 400 Invalid Form Body if any error was recorded."""
        if self.errors:
            raise DiscordHTTPError(400, 50035, "Invalid Form Body", self.errors)


DEFAULT_FAULT_BODIES: dict[int, tuple[int, str]] = {
    400: (50035, "Invalid Form Body"),
    401: (0, "401: Unauthorized"),
    403: (50013, "Missing Permissions"),
    404: (0, "404: Not Found"),
    500: (0, "500: Internal Server Error"),
    502: (0, "502: Bad Gateway"),
    503: (0, "503: Service Unavailable"),
    504: (0, "504: Gateway Timeout"),
}


def _normalise_template(path: str) -> str:
    path = path.removeprefix(API_PREFIX)
    return re.sub(r"\{[^}]*\}", "{}", path)


@dataclass
class Fault:
    """An injected failure: the next ``times`` requests matching ``route`` get it (``None``: all of them).

    ``route`` is ``"METHOD /path/{template}"``, a template without method, a concrete path such as
    ``"/channels/123/messages"``, or ``"*"`` for every route. ``status=None`` with a ``delay``
    makes responses slow without failing them.
    """

    route: str
    status: int | None
    times: int | None
    retry_after: float = 1.0
    delay: float = 0.0
    body: Json | str | None = None
    scope: str = "user"
    hits: int = 0

    def matches(self, method: str, template: str, path: str) -> bool:
        """Whether a request (method, route template, concrete path) is hit by this fault."""
        if self.route == "*":
            return True
        want_method, _, want_path = self.route.partition(" ")
        if not want_path:
            want_method, want_path = "", want_method
        if want_method and want_method.upper() != method:
            return False
        want = _normalise_template(want_path)
        return want in (_normalise_template(template), path.removeprefix(API_PREFIX))

    @property
    def exhausted(self) -> bool:
        """Whether this fault has been used up."""
        return self.times is not None and self.hits >= self.times


@dataclass
class RequestRecord:
    """One HTTP request the emulator received, and what it answered."""

    method: str
    path: str
    route: str | None
    query: dict[str, str]
    body: Any
    at: float
    status: int = 0
    response: Any = None
    ignored_fields: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


@dataclass
class Call:
    """One REST request on its way to a handler: route, path parameters, parsed body, uploaded files."""

    request: web.Request
    route: RestRoute
    params: dict[str, str]
    body: Any
    files: list[Attachment] = field(default_factory=list)

    def int_param(self, name: str) -> int:
        """A snowflake path parameter (a malformed one is a 404, as on Discord)."""
        try:
            return int(self.params[name])
        except ValueError:
            raise DiscordHTTPError(404, 0, "404: Not Found") from None

    def flag(self, name: str) -> bool:
        """A boolean query parameter such as ``with_response`` or ``wait``."""
        return self.request.query.get(name, "").lower() in ("1", "true")


class RateLimits:
    """Fixed windows per (bucket, major parameter), like Discord's per-route buckets."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def hit(self, bucket: str, major: str, limit: int, per: float) -> tuple[bool, int, float]:
        """Count one request; returns (allowed, remaining, seconds until the window resets)."""
        now = self._now()
        started, count = self._windows.get((bucket, major), (now, 0))
        if now >= started + per:
            started, count = now, 0
        reset_after = started + per - now
        if count >= limit:
            return False, 0, reset_after
        count += 1
        self._windows[(bucket, major)] = (started, count)
        return True, limit - count, reset_after


class RateLimitedError(DiscordHTTPError):
    """A bucket is exhausted: Discord's 429 body."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(429, 0, "You are being rate limited.")
        self.retry_after = retry_after

    def body(self) -> Json:
        """The JSON body Discord sends with a 429."""
        return {
            "message": self.message,
            "retry_after": round(self.retry_after, 3),
            "global": False,
            "code": 0,
        }


# --- request bodies → stored (response-shaped) values ----------------------------------------------


def message_content(body: Json, errors: FormErrors) -> str:
    """The ``content`` of a message body ("" when absent); at most 2,000 characters."""
    content = body.get("content")
    if content is None:
        return ""
    if not isinstance(content, str):
        errors.add(["content"], "BASE_TYPE_STRING", "Must be a string.")
        return ""
    if len(content) > MAX_CONTENT:
        errors.add(["content"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length.")
    return content


def message_embeds(body: Json, errors: FormErrors) -> list[Json]:
    """The rich embeds of a message body, as ``MessageEmbedResponse`` objects."""
    embeds = body.get("embeds")
    if embeds is None:
        return []
    if not isinstance(embeds, list) or len(embeds) > MAX_EMBEDS:
        errors.add(["embeds"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
        return []
    keys = (
        "title",
        "description",
        "url",
        "timestamp",
        "color",
        "footer",
        "image",
        "thumbnail",
        "author",
        "fields",
    )
    out = []
    for embed in embeds:
        if isinstance(embed, dict):
            out.append({"type": "rich", **{k: embed[k] for k in keys if embed.get(k) is not None}})
    return out


def message_components(components: Any, errors: FormErrors) -> list[Json]:
    """Action rows of buttons and selects, numbered with component ids as Discord returns them."""
    if not components:
        return []
    if not isinstance(components, list) or len(components) > MAX_ACTION_ROWS:
        errors.add(["components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        return []
    counter = iter(range(1, 1000))
    seen: set[str] = set()
    rows = []
    for r, row in enumerate(components):
        if not isinstance(row, dict) or row.get("type") != 1:
            errors.add(["components", r, "type"], "UNION_TYPE_CHOICES", 'Value of field "type" must be 1.')
            continue
        children = row.get("components") or []
        if not 1 <= len(children) <= 5:
            errors.add(
                ["components", r, "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."
            )
        row_out: Json = {"type": 1, "id": next(counter), "components": []}
        for c, child in enumerate(children):
            path: list[str | int] = ["components", r, "components", c]
            row_out["components"].append(_component(child, next(counter), path, seen, errors))
        rows.append(row_out)
    return rows


def _component(child: Any, ident: int, path: list[str | int], seen: set[str], errors: FormErrors) -> Json:
    if not isinstance(child, dict):
        errors.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return {}
    kind = child.get("type")
    out: Json = {"type": kind, "id": ident}
    custom_id = child.get("custom_id")
    if kind == 2:
        style = child.get("style")
        out["style"] = style
        if style == 5:
            if not child.get("url"):
                errors.add([*path, "url"], "BASE_TYPE_REQUIRED", "This field is required")
        elif not custom_id:
            errors.add([*path, "custom_id"], "BASE_TYPE_REQUIRED", "This field is required")
        if len(str(child.get("label") or "")) > 80:
            errors.add([*path, "label"], "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.")
        for key in ("label", "url", "emoji"):
            if child.get(key) is not None:
                out[key] = child[key]
        out["disabled"] = bool(child.get("disabled"))
    elif kind == 3:
        if not custom_id:
            errors.add([*path, "custom_id"], "BASE_TYPE_REQUIRED", "This field is required")
        for key in ("options", "placeholder", "min_values", "max_values"):
            if child.get(key) is not None:
                out[key] = child[key]
        out["disabled"] = bool(child.get("disabled"))
    else:
        out.update({k: v for k, v in child.items() if k not in ("id",) and v is not None})
    if custom_id:
        if len(str(custom_id)) > 100:
            errors.add([*path, "custom_id"], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        if custom_id in seen:
            errors.add(
                [*path, "custom_id"],
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            )
        seen.add(str(custom_id))
        out["custom_id"] = custom_id
    return out


def allowed_mentions(value: Any, errors: FormErrors) -> Json | None:
    """The ``allowed_mentions`` object, checked (``parse`` kinds; ``parse`` and ids are exclusive)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.add(["allowed_mentions"], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return None
    parse = value.get("parse") or []
    for index, kind in enumerate(parse):
        if kind not in _ALLOWED_MENTION_KINDS:
            errors.add(
                ["allowed_mentions", "parse", index],
                "BASE_TYPE_CHOICES",
                "Value must be one of ('roles', 'users', 'everyone').",
            )
    for kind in ("users", "roles"):
        if kind in parse and value.get(kind):
            errors.add(
                ["allowed_mentions", "parse"],
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
            )
    return dict(value)


def command_payload(
    spec: Json,
    *,
    application_id: int,
    guild_id: int | None,
    previous: Json | None,
    new_id: Callable[[], int],
    version: str,
    errors: FormErrors,
    path: list[str | int],
) -> Json:
    """An ``ApplicationCommandResponse`` for one command of a bulk overwrite (keeping the id of a
    command that already existed under the same name and type)."""
    kind = spec.get("type") or 1
    name = spec.get("name")
    if not isinstance(name, str) or not _COMMAND_NAME.match(name) or (kind == 1 and name != name.lower()):
        errors.add([*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        name = str(name)
    description = spec.get("description") or ""
    if kind == 1 and not 1 <= len(description) <= 100:
        errors.add([*path, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    permissions = spec.get("default_member_permissions")
    command: Json = {
        "id": previous["id"] if previous else str(new_id()),
        "application_id": str(application_id),
        "version": version,
        "default_member_permissions": None if permissions is None else str(permissions),
        "type": kind,
        "name": name,
        "description": description if kind == 1 else "",
        "dm_permission": bool(spec.get("dm_permission", True)),
        "contexts": spec.get("contexts"),
        "integration_types": spec.get("integration_types") or [0],
        "nsfw": False,  # not settable through the bulk overwrite in the spec
    }
    if spec.get("name_localizations"):
        command["name_localizations"] = spec["name_localizations"]
    if spec.get("description_localizations"):
        command["description_localizations"] = spec["description_localizations"]
    options = spec.get("options") or []
    if options:
        command["options"] = option_payloads(options, errors, [*path, "options"])
    if guild_id is not None:
        command["guild_id"] = str(guild_id)
    return command


def option_payloads(options: Any, errors: FormErrors, path: list[str | int]) -> list[Json]:
    """Validate command options and return them in response shape (only the keys each option type has)."""
    if not isinstance(options, list) or len(options) > 25:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        return []
    extras = {
        1: ("options",),
        2: ("options",),
        3: ("choices", "min_length", "max_length", "autocomplete"),
        4: ("choices", "min_value", "max_value", "autocomplete"),
        7: ("channel_types",),
        10: ("choices", "min_value", "max_value", "autocomplete"),
    }
    out = []
    optional_seen = False
    for index, option in enumerate(options):
        here = [*path, index]
        if not isinstance(option, dict) or option.get("type") not in range(1, 12):
            errors.add([*here, "type"], "BASE_TYPE_CHOICES", "Value must be one of {1, ..., 11}.")
            continue
        kind = option["type"]
        name = option.get("name")
        if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
            errors.add([*here, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if not 1 <= len(str(option.get("description") or "")) <= 100:
            errors.add([*here, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if option.get("required") and optional_seen:
            errors.add(
                [*here, "required"],
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            )
        optional_seen = optional_seen or (kind not in (1, 2) and not option.get("required"))
        item: Json = {"type": kind, "name": name, "description": option.get("description") or ""}
        if option.get("required"):
            item["required"] = True
        for key in ("name_localizations", "description_localizations"):
            if option.get(key):
                item[key] = option[key]
        for key in extras.get(kind, ()):
            value = option.get(key)
            if value is None or value == []:
                continue
            item[key] = option_payloads(value, errors, [*here, key]) if key == "options" else value
        out.append(item)
    return out
