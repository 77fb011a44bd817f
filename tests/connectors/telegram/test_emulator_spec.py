"""The Telegram emulator checked against the official Bot API specification
(tests/specs/telegram-bot-api.json): every method and parameter it accepts, every required field
it demands, and every object it returns, recursively."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from connectors.telegram.emulator import FloodLimits, TelegramEmulator
from connectors.telegram.emulator_params import METHODS, declared_types

SPEC = json.loads((Path(__file__).parents[2] / "specs" / "telegram-bot-api.json").read_text())
SPEC_METHODS: dict[str, Any] = SPEC["methods"]
SPEC_TYPES: dict[str, Any] = SPEC["types"]
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + (320).to_bytes(4, "big") + (200).to_bytes(4, "big")


def spec_fields(method: str) -> dict[str, Any]:
    """A method's parameters in the spec, by name."""
    return {field["name"]: field for field in SPEC_METHODS[method].get("fields", [])}


# --- declarations ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_and_parameters_exist_in_the_spec(method: str) -> None:
    assert method in SPEC_METHODS, f"{method} is not a Bot API method"
    fields = spec_fields(method)
    for name, param in METHODS[method].items():
        assert name in fields, f"{method} accepts {name!r}, which the spec does not define"
        assert set(param.types) <= set(fields[name]["types"]), (
            f"{method}.{name}: emulator types {param.types} vs spec {fields[name]['types']}")
        assert param.required == fields[name]["required"], f"{method}.{name}: required flag differs"
    required = {name for name, field in fields.items() if field["required"]}
    missing = required - set(METHODS[method])
    assert not missing, f"{method} does not declare required {missing}"


def test_declared_object_types_exist_in_the_spec() -> None:
    for type_name in declared_types():
        base = type_name
        while base.startswith("Array of "):
            base = base[len("Array of "):]
        assert base in SPEC_TYPES or base in ("Integer", "String", "Boolean", "Float"), type_name


# --- a world in which every method can be called -----------------------------------------------


@dataclass
class Scenario:
    """A running emulator with a user, a forum supergroup, a group and a channel, and a raw client."""

    emu: TelegramEmulator
    session: aiohttp.ClientSession
    ana_id: int
    team_id: int
    group_id: int
    channel_id: int

    async def call(self, method: str, body: dict[str, Any] | None = None, *, form: bool = False,
                   files: dict[str, tuple[str, bytes]] | None = None) -> tuple[int, dict[str, Any]]:
        """POST a method as JSON, a form, or multipart with files."""
        url = f"{self.emu.base_url}{self.emu.token}/{method}"
        if files:
            data = aiohttp.FormData()
            for key, value in (body or {}).items():
                data.add_field(key, value if isinstance(value, str) else json.dumps(value))
            for key, (filename, content) in files.items():
                data.add_field(key, content, filename=filename)
            request = self.session.post(url, data=data)
        elif form:
            request = self.session.post(url, data={k: v if isinstance(v, str) else json.dumps(v)
                                                   for k, v in (body or {}).items()})
        else:
            request = self.session.post(url, json=body or {})
        async with request as response:
            return response.status, await response.json()

    async def ok(self, method: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Call a method that must succeed; return its result."""
        status, payload = await self.call(method, body, **kwargs)
        assert status == 200 and payload["ok"] is True, (method, payload)
        assert set(payload) == {"ok", "result"}
        return payload["result"]


@pytest.fixture
async def scenario() -> AsyncIterator[Scenario]:
    """The scenario, with flood limits off so that every call can be made."""
    async with TelegramEmulator(flood_limits=FloodLimits(enabled=False)) as emu, \
            aiohttp.ClientSession() as session:
        ana = emu.user("Ana", username="ana_k", last_name="K")
        emu.user_dm(ana, "hello @saluran_bot /start")
        team = emu.supergroup("Team", is_forum=True, bot_status="administrator", members=[ana])
        group = emu.group("Shop", members=[ana])
        channel = emu.channel("News", username="acme_news", discussion=emu.supergroup(
            "News chat", bot_status="administrator"))
        yield Scenario(emu, session, ana.id, team.id, group.id, channel.id)


def valid_params(s: Scenario, message_id: int, query_id: str, file_id: str) -> dict[str, dict[str, Any]]:
    """One valid call of every method (needs a bot message, a callback query and a file)."""
    return {
        "getMe": {},
        "getUpdates": {"timeout": 0},
        "setWebhook": {"url": "http://127.0.0.1:9/hook"},
        "deleteWebhook": {},
        "getWebhookInfo": {},
        "sendMessage": {"chat_id": s.ana_id, "text": "hi"},
        "editMessageText": {"chat_id": s.ana_id, "message_id": message_id, "text": "edited"},
        "editMessageReplyMarkup": {"chat_id": s.ana_id, "message_id": message_id},
        "answerCallbackQuery": {"callback_query_id": query_id},
        "createForumTopic": {"chat_id": s.team_id, "name": "Topic"},
        "sendPhoto": {"chat_id": s.ana_id, "photo": file_id},
        "sendDocument": {"chat_id": s.ana_id, "document": file_id},
        "sendChatAction": {"chat_id": s.ana_id, "action": "typing"},
        "setMyCommands": {"commands": [{"command": "r", "description": "Reply"}]},
        "getMyCommands": {},
        "deleteMyCommands": {},
        "deleteMessage": {"chat_id": s.ana_id, "message_id": message_id},
        "getChat": {"chat_id": s.ana_id},
        "getChatMember": {"chat_id": s.team_id, "user_id": s.ana_id},
        "leaveChat": {"chat_id": s.group_id},
        "getFile": {"file_id": file_id},
    }


async def prepared(s: Scenario) -> dict[str, dict[str, Any]]:
    """Create what the valid calls need, then return them."""
    keyboard = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    message = await s.ok("sendMessage", {"chat_id": s.ana_id, "text": "card", "reply_markup": keyboard})
    query_id = s.emu.press_button(s.ana_id, message["message_id"], s.emu.world.users[s.ana_id], "go")
    photo = await s.ok("sendPhoto", {"chat_id": str(s.ana_id)}, files={"photo": ("p.png", PNG)})
    return valid_params(s, message["message_id"], query_id, photo["photo"][-1]["file_id"])


def test_the_scenario_covers_every_implemented_method() -> None:
    scenario = Scenario(emu=cast(Any, None), session=cast(Any, None), ana_id=1, team_id=-2, group_id=-3,
                        channel_id=-4)
    assert set(valid_params(scenario, 1, "query", "file")) == set(METHODS)


@pytest.mark.parametrize(("method", "field"), sorted(
    (method, name) for method in METHODS for name, field in spec_fields(method).items() if field["required"]))
async def test_a_missing_required_field_is_refused(scenario: Scenario, method: str, field: str) -> None:
    params = (await prepared(scenario))[method]
    assert field in params
    status, payload = await scenario.call(method, {k: v for k, v in params.items() if k != field})
    assert status == 400, payload
    assert payload["ok"] is False and payload["error_code"] == 400
    assert payload["description"].startswith("Bad Request: ")
    status, payload = await scenario.call(method, params)  # and the complete call works
    assert status == 200, payload


# --- responses -------------------------------------------------------------------------------------

_ALWAYS = re.compile(r'always "([^"]+)"')


class SpecChecker:
    """Checks JSON values against Bot API types: known fields only, required fields present,
    the right JSON types, recursively; records which types it saw."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def errors(self, value: Any, types: list[str], path: str) -> list[str]:
        """Problems of ``value`` against the closest of several allowed types (none: it fits one)."""
        best: list[str] | None = None
        for type_name in types:
            found = self.check(value, type_name, path)
            if not found:
                return []
            if best is None or len(found) < len(best):
                best = found
        return best or [f"{path}: no type in {types}"]

    def check(self, value: Any, type_name: str, path: str) -> list[str]:
        """Problems of ``value`` as one type."""
        if type_name.startswith("Array of "):
            if not isinstance(value, list):
                return [f"{path}: expected {type_name}, got {value!r}"]
            inner = type_name[len("Array of "):]
            return [e for i, item in enumerate(value) for e in self.check(item, inner, f"{path}[{i}]")]
        scalar = {
            "Integer": isinstance(value, int) and not isinstance(value, bool),
            "Float": isinstance(value, int | float) and not isinstance(value, bool),
            "String": isinstance(value, str),
            "Boolean": isinstance(value, bool),
        }
        if type_name in scalar:
            return [] if scalar[type_name] else [f"{path}: expected {type_name}, got {value!r}"]
        spec = SPEC_TYPES[type_name]
        if "subtypes" in spec:
            return self.errors(value, spec["subtypes"], f"{path}<{type_name}>")
        if not isinstance(value, dict):
            return [f"{path}: expected {type_name} object, got {value!r}"]
        fields = {field["name"]: field for field in spec.get("fields", [])}
        problems = [f"{path}.{key}: not a field of {type_name}" for key in value if key not in fields]
        problems += [f"{path}.{name}: required by {type_name} but missing"
                     for name, field in fields.items() if field["required"] and name not in value]
        for key, item in value.items():
            if key in fields:
                problems += self.errors(item, fields[key]["types"], f"{path}.{key}")
                fixed = _ALWAYS.search(str(fields[key].get("description", "")))
                if fixed and item != fixed.group(1):
                    problems.append(f"{path}.{key}: must be {fixed.group(1)!r}, is {item!r}")
        if not problems:
            self.seen.add(type_name)
        return problems


async def test_every_returned_object_matches_the_spec(scenario: Scenario) -> None:
    s, emu = scenario, scenario.emu
    checker = SpecChecker()
    called: set[str] = set()

    async def check(method: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        result = await s.ok(method, body, **kwargs)
        problems = checker.errors(result, SPEC_METHODS[method]["returns"], method)
        assert not problems, "\n".join(problems)
        called.add(method)
        return result

    team = emu.world.chats[s.team_id]
    channel = emu.world.chats[s.channel_id]
    ana = emu.world.users[s.ana_id]
    ben = emu.user("Ben")

    await check("getMe")
    await check("setMyCommands", {"commands": [{"command": "r", "description": "Reply"}],
                                  "scope": {"type": "chat", "chat_id": s.team_id}, "language_code": "en"})
    await check("getMyCommands", {"scope": {"type": "chat", "chat_id": s.team_id}, "language_code": "en"})
    await check("deleteMyCommands", {"scope": {"type": "all_group_chats"}})
    topic = await check("createForumTopic", {"chat_id": s.team_id, "name": "Ana #1", "icon_color": 16766590})
    keyboard = {"inline_keyboard": [[{"text": "Assign", "callback_data": "assign:1"},
                                      {"text": "Open", "url": "https://example.com/c/1"}]]}
    card = await check("sendMessage", {
        "chat_id": s.team_id, "message_thread_id": topic["message_thread_id"],
        "text": f'<b>Ana</b> wrote: see https://example.com &amp; <a href="tg://user?id={s.ana_id}">her</a>',
        "parse_mode": "HTML", "reply_markup": keyboard, "link_preview_options": {"is_disabled": True}})
    await check("sendMessage", {"chat_id": s.team_id, "text": "*re:* ok",
                                "parse_mode": "MarkdownV2",
                                "reply_parameters": {"message_id": card["message_id"]}}, form=True)
    await check("editMessageText", {"chat_id": s.team_id, "message_id": card["message_id"],
                                    "text": "<i>assigned</i>", "parse_mode": "HTML",
                                    "reply_markup": keyboard})
    await check("editMessageReplyMarkup", {"chat_id": s.team_id, "message_id": card["message_id"]})
    await check("sendMessage", {"chat_id": s.team_id, "text": "pick",
                                "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}})
    picked = emu.last_sent(team)
    query_id = emu.press_button(team, picked.message_id, ana, "a")
    await check("answerCallbackQuery", {"callback_query_id": query_id, "text": "ok", "show_alert": True})
    photo = await check("sendPhoto", {"chat_id": str(s.ana_id), "caption": "<b>receipt</b>",
                                      "parse_mode": "HTML"}, files={"photo": ("r.png", PNG)})
    document = await check("sendDocument", {"chat_id": str(s.ana_id), "caption": "export"},
                           files={"document": ("export.csv", b"a,b\n"), "thumbnail": ("t.png", PNG)})
    await check("sendDocument", {"chat_id": s.ana_id, "document": document["document"]["file_id"]})
    await check("sendPhoto", {"chat_id": s.ana_id, "photo": photo["photo"][0]["file_id"]})
    await check("getFile", {"file_id": document["document"]["file_id"]})
    await check("sendChatAction", {"chat_id": s.ana_id, "action": "upload_document"})
    await check("sendMessage", {"chat_id": s.channel_id, "text": "From the channel"})
    await check("getChat", {"chat_id": s.ana_id})
    await check("getChat", {"chat_id": s.team_id})
    await check("getChat", {"chat_id": "@acme_news"})
    emu.group_message(team, ben, "hello team")  # Ben joins as a plain member
    stranger = emu.user("Cy")
    for user_id in (s.ana_id, emu.bot.id, ben.id, stranger.id):
        await check("getChatMember", {"chat_id": s.team_id, "user_id": user_id})
    await check("getChatMember", {"chat_id": s.channel_id, "user_id": emu.bot.id})
    emu.set_bot_status(team, "creator")
    await check("getChatMember", {"chat_id": s.team_id, "user_id": emu.bot.id})
    emu.set_bot_status(team, "administrator")
    doomed = await check("sendMessage", {"chat_id": s.ana_id, "text": "oops"})
    await check("deleteMessage", {"chat_id": s.ana_id, "message_id": doomed["message_id"]})

    # updates of every kind the emulator produces
    emu.group_message(team, ana, "note in topic @saluran_bot #tag",
                      message_thread_id=topic["message_thread_id"])
    emu.create_topic(team, ben, "Ben's topic")
    first = emu.user_dm(ben, "/start hello")
    emu.edit_message(ben, first["message_id"], "/start hello again")
    emu.send_photo(ben, ben, caption="look")
    emu.send_document(ben, ben, file_name="a.pdf", caption="doc")
    emu.send_sticker(ben, ben)
    post = emu.channel_post(channel, "News!", author_signature="Rina")
    emu.comment(channel, post["message_id"], ben, "first comment")
    emu.edit_message(channel, post["message_id"], "News, edited")
    shop = emu.group("Other shop", members=[ben], bot_status="left")
    emu.add_bot_to_group(shop, by=ben, status="administrator")
    await check("leaveChat", {"chat_id": shop.id})
    updates = await check("getUpdates", {"timeout": 0, "allowed_updates": []})
    kinds = {key for update in updates for key in update if key != "update_id"}
    assert kinds >= {"message", "edited_message", "channel_post", "edited_channel_post", "callback_query",
                     "my_chat_member"}

    await check("setWebhook", {"url": "http://127.0.0.1:9/hook", "secret_token": "abc",
                               "allowed_updates": ["message"], "max_connections": 5})
    emu.user_dm(ben, "pending while the webhook is down")
    await emu.wait_for(lambda: emu.bot.webhook is not None and emu.bot.webhook.last_error_date is not None)
    info = await check("getWebhookInfo")
    assert info["last_error_message"] == "Connection refused"
    await check("deleteWebhook", {"drop_pending_updates": True})
    await check("getWebhookInfo")

    assert called == set(METHODS), f"not exercised: {set(METHODS) - called}"
    assert checker.seen >= {
        "User", "Chat", "ChatFullInfo", "Message", "Update", "CallbackQuery", "ForumTopic",
        "ForumTopicCreated", "WebhookInfo", "BotCommand", "ChatMemberOwner", "ChatMemberAdministrator",
        "ChatMemberMember", "ChatMemberLeft", "ChatMemberUpdated", "MessageEntity", "InlineKeyboardMarkup",
        "InlineKeyboardButton", "PhotoSize", "Document", "Sticker", "File", "MessageOriginChannel",
        "LinkPreviewOptions", "AcceptedGiftTypes",
    }, sorted(checker.seen)
