"""The Bot API methods of the emulator that act on its world (sending, editing, chats, commands).

Long polling and webhooks are transport concerns and live in ``emulator.py``.
"""

from __future__ import annotations

import copy
import json
import mimetypes
import re
import struct
from typing import Any

from connectors.telegram.emulator_limits import FloodGate
from connectors.telegram.emulator_markup import (
    EntityParseError,
    Formatted,
    checked_link,
    format_text,
    utf16_len,
)
from connectors.telegram.emulator_params import Upload
from connectors.telegram.emulator_world import (
    ApiError,
    CallbackAnswer,
    EmuBot,
    EmuChat,
    EmuUser,
    Json,
    SentMessage,
    StoredFile,
    World,
    bad_request,
    member_json,
)

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
TOPIC_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)
CHAT_ACTIONS = {
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
}
SCOPES = {
    "default", "all_private_chats", "all_group_chats", "all_chat_administrators", "chat",
    "chat_administrators", "chat_member",
}
_BUTTON_ACTIONS = (
    "url", "callback_data", "web_app", "login_url", "switch_inline_query", "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat", "copy_text", "callback_game", "pay",
)
_BUTTON_FIELDS = ("text", "icon_custom_emoji_id", "style", *_BUTTON_ACTIONS)
_PREVIEW_FIELDS = ("is_disabled", "url", "prefer_small_media", "prefer_large_media", "show_above_text")
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same as a "
    "current content and reply markup of the message"
)


class BotApi:
    """Implements the world-changing Bot API methods for one emulated Telegram."""

    def __init__(self, world: World, flood: FloodGate, *, strict_html: bool = True) -> None:
        self.world = world
        self.flood = flood
        self.strict_html = strict_html

    def call(self, bot: EmuBot, method: str, params: Json) -> Any:
        """Run one method; raises ApiError like Telegram."""
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            raise ApiError(404, "Not Found: method not found")
        return handler(bot, params)

    # --- identity and chats -------------------------------------------------------------------

    def _getMe(self, bot: EmuBot, params: Json) -> Json:
        data = bot.user.to_api()
        data.update({
            "can_join_groups": True,
            "can_read_all_group_messages": not bot.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        })
        return data

    def _getChat(self, bot: EmuBot, params: Json) -> Json:
        chat = self.world.chat_for_bot(bot, params["chat_id"])
        if chat.type != "private" and not chat.is_member(bot.id):
            raise _not_member(chat)
        data = chat.to_api()
        data.update({
            "accent_color_id": abs(chat.id) % 7,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
                "premium_subscription": False, "gifts_from_channels": False,
            },
        })
        if chat.description:
            data["description"] = chat.description
        if chat.linked_chat_id:
            data["linked_chat_id"] = chat.linked_chat_id
        return data

    def _getChatMember(self, bot: EmuBot, params: Json) -> Json:
        chat = self.world.chat_for_bot(bot, params["chat_id"])
        user_id = params["user_id"]
        user = self.world.users.get(user_id) or (self.world.bots[user_id].user if user_id in self.world.bots
                                                 else None)
        if user is None:
            raise bad_request("user not found")
        if chat.type != "private" and not chat.is_member(bot.id):
            raise _not_member(chat)
        return member_json(chat, user)

    def _leaveChat(self, bot: EmuBot, params: Json) -> bool:
        chat = self.world.chat_for_bot(bot, params["chat_id"])
        if chat.type == "private":
            raise bad_request("chat member status can't be changed in private chats")
        if not chat.is_member(bot.id):
            raise _not_member(chat)
        old = member_json(chat, bot.user)
        chat.members[bot.id] = "left"
        self.world.emit(bot, "my_chat_member", {
            "chat": chat.to_api(), "from": bot.user.to_api(), "date": self.world.now(),
            "old_chat_member": old, "new_chat_member": member_json(chat, bot.user),
        })
        return True

    def _getFile(self, bot: EmuBot, params: Json) -> Json:
        stored = self.world.files.get(params["file_id"])
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.data) > 20 * 1024 * 1024:
            raise bad_request("file is too big")
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.data), "file_path": stored.file_path}

    # --- sending ------------------------------------------------------------------------------

    def _sendMessage(self, bot: EmuBot, params: Json) -> Json:
        chat = self.writable_chat(bot, params["chat_id"])
        formatted = self.format(params["text"], params.get("parse_mode"), params.get("entities"))
        if not formatted.text:
            raise bad_request("message text is empty")
        if utf16_len(formatted.text) > TEXT_LIMIT:
            raise bad_request("message is too long")
        markup = inline_markup(params.get("reply_markup"))
        reply_to, allow_missing = self._reply(chat, params.get("reply_parameters"))
        body: Json = {"text": formatted.text}
        if formatted.entities:
            body["entities"] = formatted.entities
        options = params.get("link_preview_options") or {}
        preview = {key: value for key, value in options.items() if key in _PREVIEW_FIELDS}
        if preview:
            body["link_preview_options"] = preview
        if params.get("protect_content"):
            body["has_protected_content"] = True
        if markup:
            body["reply_markup"] = markup
        message = self._send(bot, chat, body, reply_to, allow_missing, params.get("message_thread_id"))
        self._record(bot, "sendMessage", chat, message, params["text"], params.get("parse_mode"), formatted)
        return message

    def _sendPhoto(self, bot: EmuBot, params: Json) -> Json:
        return self._send_media(bot, params, "photo")

    def _sendDocument(self, bot: EmuBot, params: Json) -> Json:
        return self._send_media(bot, params, "document")

    def _send_media(self, bot: EmuBot, params: Json, kind: str) -> Json:
        chat = self.writable_chat(bot, params["chat_id"])
        stored = self.input_file(params[kind], kind)
        caption = params.get("caption")
        formatted = Formatted("")
        if caption:
            formatted = self.format(caption, params.get("parse_mode"), params.get("caption_entities"))
            if utf16_len(formatted.text) > CAPTION_LIMIT:
                raise bad_request("message caption is too long")
        markup = inline_markup(params.get("reply_markup"))
        reply_to, allow_missing = self._reply(chat, params.get("reply_parameters"))
        body: Json
        if kind == "photo":
            body = {"photo": photo_sizes(self.world, stored)}
            if params.get("has_spoiler"):
                body["has_media_spoiler"] = True
        else:
            document = document_json(stored)
            thumbnail = params.get("thumbnail")
            if thumbnail is not None:
                thumb = self.input_file(thumbnail, "thumbnail")
                document["thumbnail"] = photo_size(thumb, 90)
            body = {"document": document}
        if formatted.text:
            body["caption"] = formatted.text
            if formatted.entities:
                body["caption_entities"] = formatted.entities
            if params.get("show_caption_above_media"):
                body["show_caption_above_media"] = True
        if params.get("protect_content"):
            body["has_protected_content"] = True
        if markup:
            body["reply_markup"] = markup
        method = "sendPhoto" if kind == "photo" else "sendDocument"
        message = self._send(bot, chat, body, reply_to, allow_missing, params.get("message_thread_id"))
        self._record(bot, method, chat, message, caption, params.get("parse_mode"),
                     formatted if caption else None, kind=kind, stored=stored)
        return message

    def _sendChatAction(self, bot: EmuBot, params: Json) -> bool:
        self.writable_chat(bot, params["chat_id"])
        if params["action"] not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _send(self, bot: EmuBot, chat: EmuChat, body: Json, reply_to: int | None, allow_missing: bool,
              thread_id: int | None) -> Json:
        """Check flood limits, then store the bot's message."""
        limited = chat.is_group or chat.type == "channel"
        wait = self.flood.retry_after(bot.id, chat.id, limited)
        if wait is not None:
            raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        if chat.type != "supergroup":
            thread_id = None  # Telegram ignores thread ids outside supergroups
        if chat.type == "channel":
            message = self.world.add_message(chat, body, sender_chat=chat, reply_to=reply_to,
                                             allow_missing_reply=allow_missing)
        else:
            message = self.world.add_message(chat, body, sender=bot.user, reply_to=reply_to,
                                             thread_id=thread_id, allow_missing_reply=allow_missing)
        self.flood.record(bot.id, chat.id, limited)
        if chat.is_group:
            chat.last_bot_sender = bot.id
        return copy.deepcopy(message)

    def _reply(self, chat: EmuChat, reply: Json | None) -> tuple[int | None, bool]:
        if not reply:
            return None, False
        message_id = reply.get("message_id")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise bad_request("message to be replied not found")
        allow = bool(reply.get("allow_sending_without_reply"))
        other = reply.get("chat_id")
        same_chat = other is None or other == chat.id or (
            isinstance(other, str) and other.lstrip("@").lower() == (chat.username or "").lower())
        if not same_chat:
            if allow:
                return None, True
            raise bad_request("message to be replied not found")
        if message_id not in chat.messages and allow:
            return None, True
        return message_id, allow

    def _record(self, bot: EmuBot, method: str, chat: EmuChat, message: Json, text: str | None,
                parse_mode: str | None, formatted: Formatted | None, *, kind: str = "text",
                stored: StoredFile | None = None) -> None:
        reply = message.get("reply_to_message")
        self.world.sent.append(SentMessage(
            bot_id=bot.id, method=method, chat_id=chat.id, message_id=message["message_id"], text=text,
            parse_mode=parse_mode, plain_text=formatted.text if formatted else None,
            entities=list(formatted.entities) if formatted else [],
            reply_markup=message.get("reply_markup"),
            reply_to=reply["message_id"] if reply and not _is_topic_root(message, reply) else None,
            thread_id=message.get("message_thread_id"), message=message, kind=kind, file=stored,
        ))

    # --- editing and deleting -----------------------------------------------------------------

    def _editMessageText(self, bot: EmuBot, params: Json) -> Json:
        chat, message = self._own_message(bot, params)
        if "text" not in params:
            raise bad_request("message text is empty")
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        formatted = self.format(params["text"], params.get("parse_mode"), params.get("entities"))
        if not formatted.text:
            raise bad_request("message text is empty")
        if utf16_len(formatted.text) > TEXT_LIMIT:
            raise bad_request("message is too long")
        markup = inline_markup(params.get("reply_markup"))
        if (formatted.text == message.get("text") and formatted.entities == message.get("entities", [])
                and markup == message.get("reply_markup")):
            raise bad_request(_NOT_MODIFIED)
        record = self.world.find_sent(bot.id, chat.id, message["message_id"])
        if record is not None:
            record.edits.append(copy.deepcopy(message))
        message["text"] = formatted.text
        _set_or_drop(message, "entities", formatted.entities)
        _set_or_drop(message, "reply_markup", markup)  # an edit without a keyboard removes it
        message["edit_date"] = self.world.now()
        if record is not None:
            record.text = params["text"]
            record.parse_mode = params.get("parse_mode")
            record.plain_text = formatted.text
            record.entities = list(formatted.entities)
            record.reply_markup = markup
            record.message = message
        return copy.deepcopy(message)

    def _editMessageReplyMarkup(self, bot: EmuBot, params: Json) -> Json:
        chat, message = self._own_message(bot, params)
        markup = inline_markup(params.get("reply_markup"))
        if markup == message.get("reply_markup"):
            raise bad_request(_NOT_MODIFIED)
        record = self.world.find_sent(bot.id, chat.id, message["message_id"])
        if record is not None:
            record.edits.append(copy.deepcopy(message))
        _set_or_drop(message, "reply_markup", markup)
        message["edit_date"] = self.world.now()
        if record is not None:
            record.reply_markup = markup
            record.message = message
        return copy.deepcopy(message)

    def _own_message(self, bot: EmuBot, params: Json) -> tuple[EmuChat, Json]:
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        if "chat_id" not in params:
            raise bad_request("chat_id is empty")
        if "message_id" not in params:
            raise bad_request("message identifier is not specified")
        chat = self.world.chat_for_bot(bot, params["chat_id"])
        message = chat.messages.get(params["message_id"])
        if message is None:
            raise bad_request("message to edit not found")
        if not _sent_by(bot, chat, message):
            raise bad_request("message can't be edited")
        return chat, message

    def _deleteMessage(self, bot: EmuBot, params: Json) -> bool:
        chat = self.world.chat_for_bot(bot, params["chat_id"])
        if chat.type != "private" and not chat.is_member(bot.id):
            raise _not_member(chat)
        message = chat.messages.get(params["message_id"])
        if message is None:
            raise bad_request("message to delete not found")
        allowed = (_sent_by(bot, chat, message) or chat.type == "private"
                   or chat.right(bot.id, "can_delete_messages"))
        if not allowed:
            raise bad_request("message can't be deleted")
        del chat.messages[params["message_id"]]
        record = self.world.find_sent(bot.id, chat.id, params["message_id"])
        if record is not None:
            record.deleted = True
        return True

    # --- buttons, topics, commands ------------------------------------------------------------

    def _answerCallbackQuery(self, bot: EmuBot, params: Json) -> bool:
        query_id = params["callback_query_id"]
        query = self.world.callback_queries.get(query_id)
        if query is None or query[0] != bot.id:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        if any(a.callback_query_id == query_id for a in self.world.callback_answers):
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        text = params.get("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.world.callback_answers.append(CallbackAnswer(
            callback_query_id=query_id, bot_id=bot.id, user_id=query[1], data=query[4], text=text,
            show_alert=bool(params.get("show_alert")), url=params.get("url"),
        ))
        return True

    def _createForumTopic(self, bot: EmuBot, params: Json) -> Json:
        chat = self.world.chat_for_bot(bot, params["chat_id"])
        if chat.type != "private" and not chat.is_member(bot.id):
            raise _not_member(chat)
        if chat.type != "supergroup" or not chat.is_forum:
            raise bad_request("the chat is not a forum")
        if not chat.right(bot.id, "can_manage_topics"):
            raise bad_request("not enough rights to create a topic")
        name = params["name"]
        if not 1 <= len(name) <= 128:
            raise bad_request("TOPIC_TITLE_EMPTY" if not name.strip() else "TOPIC_NAME_INVALID")
        color = params.get("icon_color", TOPIC_COLORS[0])
        if color not in TOPIC_COLORS:
            raise bad_request("TOPIC_ICON_COLOR_INVALID")
        return create_topic(self.world, chat, bot.user, name, color, params.get("icon_custom_emoji_id"))

    def _setMyCommands(self, bot: EmuBot, params: Json) -> bool:
        commands = params["commands"]
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        cleaned: list[Json] = []
        for item in commands:
            if not isinstance(item, dict):
                raise bad_request("can't parse BotCommand")
            command, description = item.get("command"), item.get("description")
            if not isinstance(command, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", command.lstrip("/")):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": command.lstrip("/"), "description": description})
        bot.commands[self._command_key(bot, params)] = cleaned
        return True

    def _getMyCommands(self, bot: EmuBot, params: Json) -> list[Json]:
        return copy.deepcopy(bot.commands.get(self._command_key(bot, params), []))

    def _deleteMyCommands(self, bot: EmuBot, params: Json) -> bool:
        bot.commands.pop(self._command_key(bot, params), None)
        return True

    def _command_key(self, bot: EmuBot, params: Json) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        kind = scope.get("type")
        if kind not in SCOPES:
            raise bad_request("wrong parameter scope type")
        if kind in ("chat", "chat_administrators", "chat_member"):
            chat = self.world.chat_for_bot(bot, scope.get("chat_id", 0))
            scope = {**scope, "chat_id": chat.id}
        if kind == "chat_member" and not isinstance(scope.get("user_id"), int):
            raise bad_request("user not found")
        language = params.get("language_code") or ""
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise bad_request("invalid language code specified")
        return json.dumps(scope, sort_keys=True), language

    # --- helpers shared with the emulator -----------------------------------------------------

    def writable_chat(self, bot: EmuBot, chat_id: int | str) -> EmuChat:
        """Resolve a chat the bot wants to post in, with Telegram's 403s."""
        if isinstance(chat_id, int) and chat_id in self.world.bots:
            raise ApiError(403, "Forbidden: bots can't send messages to bots")
        if isinstance(chat_id, int) and chat_id > 0:
            if chat_id in bot.blocked_by:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if (bot.id, chat_id) not in self.world.private:
                if chat_id in self.world.users:
                    raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
                raise bad_request("chat not found")
        chat = self.world.chat_for_bot(bot, chat_id)
        if chat.type == "private":
            return chat
        status = chat.status(bot.id)
        if status == "kicked":
            raise ApiError(403, f"Forbidden: bot was kicked from the {chat.type} chat")
        if not chat.is_member(bot.id):
            raise _not_member(chat)
        if chat.type == "channel" and not chat.right(bot.id, "can_post_messages"):
            raise bad_request("need administrator rights in the channel chat")
        return chat

    def format(self, text: str, parse_mode: str | None, entities: list[Any] | None) -> Formatted:
        """Parse a text or caption like Telegram; 400 "can't parse entities" on bad markup."""
        try:
            return format_text(text, parse_mode, entities, strict_html=self.strict_html,
                               lookup=self.world.user_json)
        except EntityParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
        except ValueError:
            raise bad_request("unsupported parse_mode") from None

    def input_file(self, value: Upload | str, kind: str) -> StoredFile:
        """Store an upload, or look up a file_id / accept an HTTP URL."""
        if isinstance(value, Upload):
            width = height = None
            if kind == "photo":
                width, height = image_size(value.data)
            mime = value.content_type
            if not mime or mime == "application/octet-stream":
                mime = mimetypes.guess_type(value.filename)[0] or "application/octet-stream"
            return self.world.store_file(kind, value.data, file_name=value.filename, mime_type=mime,
                                         width=width, height=height)
        if re.match(r"^https?://", value):
            name = value.rstrip("/").rsplit("/", 1)[-1] or "file"
            return self.world.store_file(kind, b"", file_name=name, mime_type=mimetypes.guess_type(name)[0],
                                         width=800, height=600, url=value)
        stored = self.world.files.get(value)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if kind == "photo" and stored.kind not in ("photo",):
            raise bad_request(f"can't use file of type {stored.kind.capitalize()} as Photo")
        return stored


def _not_member(chat: EmuChat) -> ApiError:
    return ApiError(403, f"Forbidden: bot is not a member of the {chat.type} chat")


def _sent_by(bot: EmuBot, chat: EmuChat, message: Json) -> bool:
    if (message.get("from") or {}).get("id") == bot.id:
        return True
    return chat.type == "channel" and (message.get("sender_chat") or {}).get("id") == chat.id and \
        "author_signature" not in message and chat.is_admin(bot.id)


def _is_topic_root(message: Json, reply: Json) -> bool:
    is_topic = bool(message.get("is_topic_message"))
    return is_topic and reply.get("message_id") == message.get("message_thread_id")


def _set_or_drop(message: Json, key: str, value: Any) -> None:
    if value:
        message[key] = value
    else:
        message.pop(key, None)


def inline_markup(markup: Json | None) -> Json | None:
    """Validate reply_markup; return the inline keyboard a message carries, if any."""
    if markup is None:
        return None
    if "inline_keyboard" not in markup:
        if "keyboard" in markup or "remove_keyboard" in markup or "force_reply" in markup:
            return None  # reply keyboards are shown by the client but are not part of Message
        raise bad_request("can't parse reply keyboard markup JSON object")
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays')
    cleaned: list[list[Json]] = []
    for row in rows:
        out_row: list[Json] = []
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request("can't parse inline keyboard button: Field \"text\" must be of type String")
            actions = [key for key in _BUTTON_ACTIONS if key in button]
            if len(actions) != 1:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT:
                    raise bad_request("BUTTON_DATA_INVALID")
            if "url" in button and checked_link(str(button["url"])) is None:
                raise bad_request("BUTTON_URL_INVALID")
            out_row.append({key: button[key] for key in _BUTTON_FIELDS if key in button})
        if out_row:
            cleaned.append(out_row)
    return {"inline_keyboard": cleaned} if cleaned else None


def create_topic(world: World, chat: EmuChat, creator: EmuUser, name: str, color: int,
                 emoji_id: str | None) -> Json:
    """Open a forum topic: its id is the id of the service message that creates it."""
    thread_id = chat.next_message_id
    topic: Json = {"message_thread_id": thread_id, "name": name, "icon_color": color}
    if emoji_id:
        topic["icon_custom_emoji_id"] = emoji_id
    chat.topics[thread_id] = topic
    created: Json = {"name": name, "icon_color": color}
    if emoji_id:
        created["icon_custom_emoji_id"] = emoji_id
    world.add_message(chat, {"forum_topic_created": created}, sender=creator, thread_id=thread_id)
    return copy.deepcopy(topic)


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, GIF or JPEG image (800x600 when it cannot tell)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return int(width), int(height)
            i += 2 + length
    return 800, 600


def photo_size(stored: StoredFile, limit: int) -> Json:
    """A ``PhotoSize`` for a stored image scaled to fit ``limit`` pixels."""
    width, height = stored.width or 800, stored.height or 600
    scale = min(1.0, limit / max(width, height))
    return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data), "width": max(1, round(width * scale)),
            "height": max(1, round(height * scale))}


def photo_sizes(world: World, stored: StoredFile) -> list[Json]:
    """The sizes Telegram offers for a photo: a thumbnail and the photo itself."""
    thumb = world.store_file("photo", stored.data, width=stored.width, height=stored.height)
    return [photo_size(thumb, 90), photo_size(stored, 1280)]


def document_json(stored: StoredFile) -> Json:
    """A ``Document`` object for a stored file."""
    data: Json = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
    if stored.file_name:
        data["file_name"] = stored.file_name
    if stored.mime_type:
        data["mime_type"] = stored.mime_type
    data["file_size"] = len(stored.data)
    return data
