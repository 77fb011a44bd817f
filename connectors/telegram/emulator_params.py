"""The Bot API methods the emulator implements, their parameters in the Bot API's own type names,
and the parsing of a request's raw values (form, multipart or JSON) into typed values."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """One parameter: its Bot API types (e.g. ``("Integer", "String")``) and whether it is required."""

    types: tuple[str, ...]
    required: bool = False


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


class ParamError(Exception):
    """A parameter is missing or has the wrong type; ``description`` is Telegram's wording."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def _p(*types: str, required: bool = False) -> Param:
    return Param(tuple(types), required)


_CHAT_ID = ("Integer", "String")
_MARKUP = ("InlineKeyboardMarkup", "ReplyKeyboardMarkup", "ReplyKeyboardRemove", "ForceReply")
_ENTITIES = "Array of MessageEntity"

# Parameters follow the Bot API specification (tests/specs/telegram-bot-api.json checks them).
# Parameters a request carries that are not declared here are ignored, as Telegram ignores them.
METHODS: dict[str, dict[str, Param]] = {
    "getMe": {},
    "getUpdates": {
        "offset": _p("Integer"), "limit": _p("Integer"), "timeout": _p("Integer"),
        "allowed_updates": _p("Array of String"),
    },
    "setWebhook": {
        "url": _p("String", required=True), "certificate": _p("InputFile"), "ip_address": _p("String"),
        "max_connections": _p("Integer"), "allowed_updates": _p("Array of String"),
        "drop_pending_updates": _p("Boolean"), "secret_token": _p("String"),
    },
    "deleteWebhook": {"drop_pending_updates": _p("Boolean")},
    "getWebhookInfo": {},
    "sendMessage": {
        "chat_id": _p(*_CHAT_ID, required=True), "message_thread_id": _p("Integer"),
        "text": _p("String", required=True), "parse_mode": _p("String"), "entities": _p(_ENTITIES),
        "link_preview_options": _p("LinkPreviewOptions"), "disable_notification": _p("Boolean"),
        "protect_content": _p("Boolean"), "reply_parameters": _p("ReplyParameters"),
        "reply_markup": _p(*_MARKUP),
    },
    "editMessageText": {
        "chat_id": _p(*_CHAT_ID), "message_id": _p("Integer"), "inline_message_id": _p("String"),
        "text": _p("String"), "parse_mode": _p("String"), "entities": _p(_ENTITIES),
        "link_preview_options": _p("LinkPreviewOptions"), "reply_markup": _p("InlineKeyboardMarkup"),
    },
    "editMessageReplyMarkup": {
        "chat_id": _p(*_CHAT_ID), "message_id": _p("Integer"), "inline_message_id": _p("String"),
        "reply_markup": _p("InlineKeyboardMarkup"),
    },
    "answerCallbackQuery": {
        "callback_query_id": _p("String", required=True), "text": _p("String"),
        "show_alert": _p("Boolean"), "url": _p("String"), "cache_time": _p("Integer"),
    },
    "createForumTopic": {
        "chat_id": _p(*_CHAT_ID, required=True), "name": _p("String", required=True),
        "icon_color": _p("Integer"), "icon_custom_emoji_id": _p("String"),
    },
    "sendPhoto": {
        "chat_id": _p(*_CHAT_ID, required=True), "message_thread_id": _p("Integer"),
        "photo": _p("InputFile", "String", required=True), "caption": _p("String"),
        "parse_mode": _p("String"), "caption_entities": _p(_ENTITIES),
        "show_caption_above_media": _p("Boolean"), "has_spoiler": _p("Boolean"),
        "disable_notification": _p("Boolean"), "protect_content": _p("Boolean"),
        "reply_parameters": _p("ReplyParameters"), "reply_markup": _p(*_MARKUP),
    },
    "sendDocument": {
        "chat_id": _p(*_CHAT_ID, required=True), "message_thread_id": _p("Integer"),
        "document": _p("InputFile", "String", required=True), "thumbnail": _p("InputFile", "String"),
        "caption": _p("String"), "parse_mode": _p("String"), "caption_entities": _p(_ENTITIES),
        "disable_content_type_detection": _p("Boolean"), "disable_notification": _p("Boolean"),
        "protect_content": _p("Boolean"), "reply_parameters": _p("ReplyParameters"),
        "reply_markup": _p(*_MARKUP),
    },
    "sendChatAction": {
        "chat_id": _p(*_CHAT_ID, required=True), "message_thread_id": _p("Integer"),
        "action": _p("String", required=True),
    },
    "setMyCommands": {
        "commands": _p("Array of BotCommand", required=True), "scope": _p("BotCommandScope"),
        "language_code": _p("String"),
    },
    "getMyCommands": {"scope": _p("BotCommandScope"), "language_code": _p("String")},
    "deleteMyCommands": {"scope": _p("BotCommandScope"), "language_code": _p("String")},
    "deleteMessage": {"chat_id": _p(*_CHAT_ID, required=True), "message_id": _p("Integer", required=True)},
    "getChat": {"chat_id": _p(*_CHAT_ID, required=True)},
    "getChatMember": {"chat_id": _p(*_CHAT_ID, required=True), "user_id": _p("Integer", required=True)},
    "leaveChat": {"chat_id": _p(*_CHAT_ID, required=True)},
    "getFile": {"file_id": _p("String", required=True)},
}

# Bot API method names are case-insensitive.
CANONICAL = {name.lower(): name for name in METHODS}

_SCALARS = {"Integer", "String", "Boolean", "Float", "InputFile"}
_MISSING = {
    "chat_id": "Bad Request: chat_id is empty",
    "text": "Bad Request: message text is empty",
    "callback_query_id": "Bad Request: query is too old and response timeout expired or query ID is invalid",
    "file_id": "Bad Request: file_id not specified",
    "user_id": "Bad Request: user not found",
    "message_id": "Bad Request: message identifier is not specified",
    "photo": "Bad Request: there is no photo in the request",
    "document": "Bad Request: there is no document in the request",
    "commands": "Bad Request: parameter \"commands\" is required",
    "url": "Bad Request: parameter \"url\" is required",
}


def parse_params(method: str, raw: Mapping[str, Any], uploads: Mapping[str, Upload]) -> dict[str, Any]:
    """Typed parameters of one call; raises ParamError like Telegram for missing or bad values."""
    declared = METHODS[method]
    result: dict[str, Any] = {}
    for name, param in declared.items():
        value: Any = raw.get(name)
        if "InputFile" in param.types and name in uploads:
            value = uploads[name]
        if value is None or value == "":
            if param.required:
                raise ParamError(_MISSING.get(name, f'Bad Request: parameter "{name}" is required'))
            continue
        result[name] = _coerce(name, param.types, value, uploads)
    return result


def _coerce(name: str, types: tuple[str, ...], value: Any, uploads: Mapping[str, Upload]) -> Any:
    if isinstance(value, Upload):
        return value
    if "InputFile" in types:
        if isinstance(value, str) and value.startswith("attach://"):
            upload = uploads.get(value[len("attach://"):])
            if upload is None:
                raise ParamError(f"Bad Request: file {value!r} is not attached to the request")
            return upload
        if types == ("InputFile",):
            raise ParamError(f'Bad Request: parameter "{name}" must be a file upload')
    if set(types) == {"Integer", "String"}:
        if isinstance(value, bool):
            raise ParamError(f"Bad Request: invalid {name}")
        if isinstance(value, int):
            return value
        text = str(value).strip()
        return int(text) if re.fullmatch(r"-?\d+", text) else text
    kind = next((t for t in types if t != "InputFile"), "String")
    if kind == "Integer" and name == "timeout":
        # PTB sends fractional long-poll timeouts as given; accepting them keeps tests fast
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ParamError(f'Bad Request: field "{name}" must be an Integer') from None
        return int(number) if number.is_integer() else number
    if kind == "Integer":
        return _integer(name, value)
    if kind == "Float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ParamError(f'Bad Request: field "{name}" must be a Float') from None
    if kind == "Boolean":
        return _boolean(name, value)
    if kind == "String":
        if isinstance(value, dict | list):
            raise ParamError(f'Bad Request: field "{name}" must be a String')
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    return _json(name, types, value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ParamError(f'Bad Request: field "{name}" must be an Integer')
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.0*", text):
        return int(float(text))
    raise ParamError(f'Bad Request: field "{name}" must be an Integer')


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ParamError(f'Bad Request: field "{name}" must be a Boolean')


def _json(name: str, types: tuple[str, ...], value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ParamError(f"Bad Request: can't parse {types[0]} JSON object") from None
    if types[0].startswith("Array of"):
        if not isinstance(value, list):
            raise ParamError(f'Bad Request: field "{name}" must be an Array')
    elif not isinstance(value, dict):
        raise ParamError(f'Bad Request: field "{name}" must be a JSON object')
    return value


def declared_types() -> set[str]:
    """Every Bot API type name used by a declared parameter (for the spec test)."""
    return {t for params in METHODS.values() for param in params.values() for t in param.types} - _SCALARS
