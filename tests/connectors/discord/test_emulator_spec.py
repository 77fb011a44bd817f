"""The Discord emulator checked against Discord's own OpenAPI description (tests/specs/discord-openapi.json).

Every REST route it serves exists in the spec with the same method; every request field it reads
is a property of the spec's request schema; every JSON body it answers (successes and errors),
and the objects it dispatches on the gateway, validate against the spec's response schemas: no
property the spec does not define, every property the spec requires, and the right types.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connectors.discord.emulator import ROUTES, DiscordEmulator, RequestRecord
from connectors.discord.emulator_gateway import ALL_INTENTS

SPEC_PATH = Path(__file__).resolve().parents[2] / "specs" / "discord-openapi.json"


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec()
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def schema_ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def normalise(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def spec_operation(method: str, template: str) -> dict[str, Any]:
    for path, item in spec()["paths"].items():
        if normalise(path) == normalise(template) and method.lower() in item:
            return item[method.lower()]
    raise KeyError(f"{method} {template} is not in Discord's OpenAPI spec")


# --- a small JSON-schema validator for the subset the spec uses ---------------------------------

_JSON_TYPES = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _merge_all_of(schema: dict[str, Any]) -> dict[str, Any] | None:
    """Merge an allOf of object schemas into one, so unknown-property checks see every part."""
    parts = [resolve(p) for p in schema["allOf"]]
    if not all("properties" in p or p.get("type") == "object" for p in parts):
        return None
    merged: dict[str, Any] = {
        "type": "object",
        "properties": dict(schema.get("properties", {})),
        "required": list(schema.get("required", [])),
    }
    for part in parts:
        if "allOf" in part:
            inner = _merge_all_of(part)
            part = inner if inner is not None else part
        merged["properties"].update(part.get("properties", {}))
        merged["required"].extend(part.get("required", []))
    return merged


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Errors of ``value`` against ``schema`` (empty when valid)."""
    schema = resolve(schema)
    errors: list[str] = []
    if "allOf" in schema:
        merged = _merge_all_of(schema)
        if merged is not None:
            return validate(value, merged, path)
        for part in schema["allOf"]:
            errors += validate(value, part, path)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            outcomes = [validate(value, branch, path) for branch in schema[key]]
            if all(outcomes):
                best = min(outcomes, key=len)
                errors.append(f"{path}: matches no branch of {key}; closest: {best[:3]}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} != const {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']!r}")
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_JSON_TYPES[k](value) for k in kinds):
            return [*errors, f"{path}: {type(value).__name__} {value!r:.60} is not {kinds}"]
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                errors.append(f"{path}: {value!r} is not a date-time")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}: required property {name!r} is missing")
        for name, item in value.items():
            if properties is not None and name in properties:
                errors += validate(item, properties[name], f"{path}.{name}")
            elif isinstance(extra, dict):
                errors += validate(item, extra, f"{path}.{name}")
            elif properties is not None and extra is not True:
                errors.append(f"{path}: property {name!r} is not defined by the spec")
    return errors


def alternatives(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The concrete schemas a (possibly union) schema stands for."""
    schema = resolve(schema)
    branches = schema.get("oneOf") or schema.get("anyOf") or schema.get("allOf")
    if branches:
        for branch in branches:
            yield from alternatives(branch)
    if "properties" in schema or "items" in schema or "type" in schema:
        yield schema


def field_exists(schema: dict[str, Any], field: str) -> bool:
    """Whether a field path (``a.b``, ``a[].b``, ``[].a``) names properties of the schema."""
    tokens = re.findall(r"\[\]|[^.\[\]]+", field)
    current = [schema]
    for token in tokens:
        following = []
        for candidate in current:
            for alt in alternatives(candidate):
                if token == "[]" and "items" in alt:
                    following.append(alt["items"])
                elif token != "[]" and token in alt.get("properties", {}):
                    following.append(alt["properties"][token])
        if not following:
            return False
        current = following
    return True


def test_the_validator_catches_what_it_should():
    user = schema_ref("UserResponse")
    good = {
        "id": "80351110224678912",
        "username": "nelly",
        "avatar": None,
        "discriminator": "0",
        "public_flags": 0,
        "flags": 0,
        "global_name": None,
        "primary_guild": None,
    }
    assert validate(good, user) == []
    assert any("not defined" in e for e in validate({**good, "nickname": "x"}, user))
    assert any("required" in e for e in validate({k: v for k, v in good.items() if k != "id"}, user))
    assert validate({**good, "id": 5}, user)
    assert field_exists(schema_ref("MessageCreateRequest"), "allowed_mentions.replied_user")
    assert not field_exists(schema_ref("MessageCreateRequest"), "allowed_mentions.everyone")


# --- routes and request bodies ---------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_every_route_exists_in_the_spec(route):
    assert spec_operation(route.method, route.path)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.accepts], ids=lambda r: r.name)
def test_request_fields_the_emulator_reads_are_defined_by_the_spec(route):
    body = spec_operation(route.method, route.path)["requestBody"]["content"]["application/json"]["schema"]
    unknown = sorted(f for f in route.accepts if not field_exists(body, f))
    assert unknown == []


# --- responses -------------------------------------------------------------------------------------


def response_schema(record: RequestRecord) -> dict[str, Any] | None:
    assert record.route is not None
    method, template = record.route.split(" ", 1)
    responses = spec_operation(method, template)["responses"]
    entry = responses.get(str(record.status)) or responses.get(f"{str(record.status)[0]}XX")
    assert entry is not None, f"{record.route} answered {record.status}, which the spec does not list"
    entry = resolve(entry)
    content = entry.get("content")
    return None if content is None else content["application/json"]["schema"]


def with_integer_field_codes(value: Any) -> Any:
    """Discord documents field errors with string codes (``{"code": "BASE_TYPE_MAX_LENGTH", ...}``) and
    answers that way, but the OpenAPI file types ``Error.code`` as an integer everywhere. The emulator
    follows the documentation and Discord's behaviour; for the schema check the string codes under
    ``errors`` stand in as integers so that everything else is still checked."""
    if isinstance(value, dict):
        return {
            k: (0 if k == "code" and isinstance(v, str) else with_integer_field_codes(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [with_integer_field_codes(v) for v in value]
    return value


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(interaction_deadline=30.0) as emu:
        yield emu


async def _identify(emu: DiscordEmulator, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"{emu.gateway_url}?v=10&encoding=json")
    hello = await ws.receive_json()
    assert hello["op"] == 10
    await ws.send_json(
        {
            "op": 2,
            "d": {
                "token": emu.token,
                "intents": ALL_INTENTS,
                "properties": {"os": "linux", "browser": "test", "device": "test"},
            },
        }
    )
    await emu.wait_connected()
    return ws


async def _exercise_every_route(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    api = emu.api_base
    support = emu.channel("support")
    team = emu.guild("Saluran Team")
    dana = emu.user("dana")
    app = emu.application_id

    async def call(method: str, path: str, body: Any = None, **params: str) -> Any:
        async with http.request(method, api + path, json=body, params=params) as response:
            return await response.json() if response.status != 204 else None

    await call("GET", "/users/@me")
    await call("GET", f"/users/{dana.id}")
    await call("GET", "/users/1")
    await call("GET", "/oauth2/applications/@me")
    await call("GET", "/gateway")
    await call("GET", "/gateway/bot")
    await call("GET", f"/channels/{support.id}")
    await call("GET", "/channels/1")
    await call("POST", f"/channels/{support.id}/typing")
    dm = await call("POST", "/users/@me/channels", {"recipient_id": str(dana.id)})
    await call("GET", f"/channels/{dm['id']}")

    customer = await emu.guild_message(support, dana, "my order never came, <@&1> @everyone", reply_to=None)
    sent = await call(
        "POST",
        f"/channels/{support.id}/messages",
        {
            "content": f"Sorry {dana.mention}, we are on it.",
            "message_reference": {"message_id": str(customer.id), "fail_if_not_exists": True},
            "allowed_mentions": {"parse": [], "users": [str(dana.id)], "replied_user": True},
            "embeds": [
                {
                    "title": "Ticket #12",
                    "description": "open",
                    "color": 0x5865F2,
                    "fields": [{"name": "SLA", "value": "2 h", "inline": True}],
                }
            ],
            "components": [
                {
                    "type": 1,
                    "components": [
                        {"type": 2, "style": 1, "label": "Claim", "custom_id": "claim:12"},
                        {"type": 2, "style": 5, "label": "Open", "url": "https://example.invalid/t/12"},
                    ],
                }
            ],
            "nonce": "12345",
            "enforce_nonce": True,
            "tts": False,
        },
    )
    await call("POST", f"/channels/{dm['id']}/messages", {"content": "hello in DM"})
    await call("POST", f"/channels/{support.id}/messages", {"content": "x" * 2001})
    await call("POST", f"/channels/{support.id}/messages", {"content": ""})
    await call(
        "POST",
        f"/channels/{support.id}/messages",
        {"content": "hi", "message_reference": {"message_id": "1"}},
    )
    await call(
        "POST",
        f"/channels/{support.id}/messages",
        {"content": "hi", "allowed_mentions": {"parse": ["users"], "users": [str(dana.id)]}},
    )
    await call("GET", f"/channels/{support.id}/messages/{sent['id']}")
    await call("GET", f"/channels/{support.id}/messages/1")
    await call("GET", f"/channels/{support.id}/messages", after=str(customer.id), limit="100")
    await call("GET", f"/channels/{support.id}/messages", limit="101")
    await call(
        "PATCH", f"/channels/{support.id}/messages/{sent['id']}", {"content": "Sorry, on it (edited)."}
    )
    await call("PATCH", f"/channels/{support.id}/messages/{customer.id}", {"content": "not mine"})

    await call(
        "POST",
        f"/channels/{support.id}/threads",
        {"name": "Ticket 12", "type": 11, "auto_archive_duration": 1440},
    )
    await call("POST", f"/channels/{support.id}/threads", {"name": ""})
    await call("POST", f"/channels/{support.id}/messages/{customer.id}/threads", {"name": "Order 12"})
    await call("POST", f"/channels/{support.id}/messages/{customer.id}/threads", {"name": "Again"})

    command = {
        "name": "reply",
        "description": "Reply to the conversation",
        "type": 1,
        "options": [
            {"type": 3, "name": "text", "description": "What to say", "required": True, "max_length": 2000},
            {
                "type": 4,
                "name": "priority",
                "description": "Priority",
                "choices": [{"name": "high", "value": 1}],
            },
            {"type": 6, "name": "member", "description": "Who"},
            {"type": 7, "name": "channel", "description": "Where", "channel_types": [0]},
        ],
        "default_member_permissions": None,
        "dm_permission": True,
        "nsfw": False,
    }
    group = {
        "name": "ticket",
        "description": "Tickets",
        "options": [
            {
                "type": 1,
                "name": "close",
                "description": "Close a ticket",
                "options": [{"type": 5, "name": "silent", "description": "No message", "required": False}],
            },
        ],
    }
    await call("PUT", f"/applications/{app}/commands", [command, group])
    await call("PUT", f"/applications/{app}/guilds/{team.id}/commands", [command])
    await call("PUT", f"/applications/{app}/guilds/{team.id}/commands", [command, command])
    await call("PUT", f"/applications/{app}/guilds/1/commands", [command])
    await call("GET", f"/applications/{app}/commands")
    await call("GET", f"/applications/{app}/guilds/{team.id}/commands")

    alice = emu.user("alice")
    slash = await emu.slash_command(
        team,
        emu.channel("inbox"),
        alice,
        "reply",
        {"text": "hello", "member": alice, "channel": emu.channel("inbox")},
    )
    base = f"/interactions/{slash.id}/{slash.token}/callback"
    await call(
        "POST",
        base,
        {"type": 4, "data": {"content": "Replied.", "flags": 64, "allowed_mentions": {"parse": []}}},
        with_response="true",
    )
    await call("POST", base, {"type": 4, "data": {"content": "twice"}}, with_response="true")
    await call("GET", f"/webhooks/{app}/{slash.token}/messages/@original")
    await call("PATCH", f"/webhooks/{app}/{slash.token}/messages/@original", {"content": "Replied (edited)."})
    await call("POST", f"/webhooks/{app}/{slash.token}", {"content": "follow-up", "flags": 64}, wait="true")

    deferred = await emu.slash_command(None, None, dana, "ticket close", {"silent": True})
    await call(
        "POST", f"/interactions/{deferred.id}/{deferred.token}/callback", {"type": 5}, with_response="true"
    )
    await call("PATCH", f"/webhooks/{app}/{deferred.token}/messages/@original", {"content": "Closed."})

    press = await emu.press_button(int(sent["id"]), alice, "claim:12")
    await call(
        "POST",
        f"/interactions/{press.id}/{press.token}/callback",
        {"type": 7, "data": {"content": "Claimed by Alice", "components": []}},
        with_response="true",
    )
    dm_press = await call(
        "POST",
        f"/channels/{dm['id']}/messages",
        {
            "content": "Rate us",
            "components": [
                {"type": 1, "components": [{"type": 2, "style": 3, "label": "Good", "custom_id": "good"}]}
            ],
        },
    )
    press2 = await emu.press_button(int(dm_press["id"]), dana, "good")
    await call(
        "POST", f"/interactions/{press2.id}/{press2.token}/callback", {"type": 6}, with_response="true"
    )
    await call("POST", f"/interactions/{press2.id}/{press2.token}/callback", {"type": 6})
    await call("POST", f"/webhooks/{app}/unknown-token", {"content": "nobody"})

    emu.inject(f"POST /channels/{support.id}/messages", 429, retry_after=0.25)
    await call("POST", f"/channels/{support.id}/messages", {"content": "limited"})
    emu.inject("GET /gateway/bot", 502)
    await call("GET", "/gateway/bot")
    for index in range(6):  # the sixth message in the window hits the channel's own bucket
        await call("POST", f"/channels/{dm['id']}/messages", {"content": f"burst {index}"})


async def test_responses_and_gateway_payloads_match_the_spec(emulator: DiscordEmulator):
    headers = {"Authorization": f"Bot {emulator.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        ws = await _identify(emulator, http)
        try:
            await _exercise_every_route(emulator, http)
        finally:
            await ws.close()

    served = {r.route for r in emulator.requests}
    assert {r.name for r in ROUTES} <= served, "the scenario must exercise every route"
    statuses = {r.status for r in emulator.requests}
    assert {200, 201, 204, 400, 403, 404, 429, 502} <= statuses

    problems = []
    for record in emulator.requests:
        if record.status >= 500:  # proxy errors in front of Discord: not part of the API description
            continue
        schema = response_schema(record)
        if schema is None:
            assert record.response is None, f"{record.route} {record.status} must have no body"
            continue
        body = record.response
        if isinstance(body, dict) and "errors" in body:
            body = {**body, "errors": with_integer_field_codes(body["errors"])}
        for error in validate(body, schema):
            problems.append(f"{record.method} {record.path} → {record.status}: {error}")
    assert problems == [], "\n".join(problems)

    gateway_checks = {
        "MESSAGE_CREATE": ("MessageResponse", {"guild_id", "member"}),
        "MESSAGE_UPDATE": ("MessageResponse", {"guild_id", "member"}),
        "THREAD_CREATE": ("ThreadResponse", {"newly_created"}),
    }
    seen = set()
    for event in emulator.dispatched:
        if event.type in gateway_checks:
            name, gateway_only = gateway_checks[event.type]
            data = {k: v for k, v in event.data.items() if k not in gateway_only}
            problems += [f"{event.type}: {e}" for e in validate(data, schema_ref(name))]
            seen.add(event.type)
        elif event.type == "READY":
            problems += [
                f"READY.user: {e}" for e in validate(event.data["user"], schema_ref("UserPIIResponse"))
            ]
        elif event.type == "GUILD_CREATE":
            gateway_only = {
                "joined_at",
                "large",
                "unavailable",
                "member_count",
                "members",
                "channels",
                "threads",
                "presences",
                "voice_states",
                "stage_instances",
                "guild_scheduled_events",
                "soundboard_sounds",
                "lazy",
            }
            guild = {k: v for k, v in event.data.items() if k not in gateway_only}
            problems += [f"GUILD_CREATE: {e}" for e in validate(guild, schema_ref("GuildResponse"))]
            for channel in event.data["channels"]:
                problems += [
                    f"GUILD_CREATE channel: {e}"
                    for e in validate(channel, schema_ref("GuildChannelResponse"))
                ]
            for member in event.data["members"]:
                problems += [
                    f"GUILD_CREATE member: {e}" for e in validate(member, schema_ref("GuildMemberResponse"))
                ]
        elif event.type == "INTERACTION_CREATE" and "message" in event.data:
            problems += [
                f"INTERACTION_CREATE.message: {e}"
                for e in validate(event.data["message"], schema_ref("MessageResponse"))
            ]
    assert problems == [], "\n".join(problems)
    assert seen == set(gateway_checks)


async def test_error_bodies_have_discords_shape(emulator: DiscordEmulator):
    support = emulator.channel("support")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {emulator.token}"}) as http:
        async with http.post(
            f"{emulator.api_base}/channels/{support.id}/messages", json={"content": "x" * 2001}
        ) as response:
            assert response.status == 400
            assert response.headers["Content-Type"] == "application/json"
            body = await response.json()
        async with http.post(
            f"{emulator.api_base}/channels/{support.id}/messages",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        ) as response:
            invalid = await response.json()
    assert body == {
        "message": "Invalid Form Body",
        "code": 50035,
        "errors": {
            "content": {
                "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]
            }
        },
    }
    assert invalid["code"] == 50109
