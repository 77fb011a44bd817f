"""Telegram text formatting for the emulator: HTML, MarkdownV2 and legacy Markdown parsing into
plain text plus entities, automatic entity detection, and the whitespace trimming Telegram does.

The parsers follow TDLib's (``td/telegram/MessageEntity.cpp``) behaviour and error messages, so
a renderer that passes here passes on Telegram. Offsets and lengths are UTF-16 code units, as in
the Bot API. One deliberate difference: in HTML, Telegram keeps a bare ``&`` that starts no
known entity as a literal character; the emulator, when ``strict_html`` is on (the default),
refuses it, because a renderer that leaves ``&`` unescaped also turns a customer's ``&lt;`` into
``<`` without anyone noticing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Entity = dict[str, Any]
UserLookup = Callable[[int], dict[str, Any] | None]

# TDLib's sort priority: at one offset and length, lower values come first.
_PRIORITY = {
    "blockquote": 0, "expandable_blockquote": 0, "pre": 11, "code": 20, "text_link": 49,
    "text_mention": 49, "mention": 50, "hashtag": 50, "cashtag": 50, "bot_command": 50, "url": 50,
    "email": 50, "phone_number": 50, "date_time": 50, "bold": 90, "italic": 91, "underline": 92,
    "strikethrough": 93, "spoiler": 94, "custom_emoji": 99,
}
# Entities that automatic detection must not overlap (TDLib's "continuous" entities).
_BLOCKING = {"pre", "code", "text_link", "text_mention", "custom_emoji", "date_time"}
_FOUND_TYPES = {"mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number"}
# TDLib's names, used in MarkdownV2 error messages.
_MD_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji", "blockquote": "BlockQuote", "expandable_blockquote": "BlockQuote",
}
_HTML_TAGS = {
    "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji", "span",
    "pre", "code", "blockquote", "tg-time",
}
_SIMPLE_HTML = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "s": "strikethrough",
    "strike": "strikethrough", "del": "strikethrough", "u": "underline", "ins": "underline",
    "tg-spoiler": "spoiler",
}
PARSE_MODES = {"html": "HTML", "markdownv2": "MarkdownV2", "markdown": "Markdown"}


class EntityParseError(ValueError):
    """The text's markup is invalid; the message is Telegram's (without the API prefix)."""


@dataclass
class Formatted:
    """Text as a user sees it, with its entities (UTF-16 offsets)."""

    text: str
    entities: list[Entity] = field(default_factory=list)


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Bot API offsets."""
    return len(text.encode("utf-16-le")) // 2


def _w(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _byte_offsets(text: str) -> list[int]:
    offsets = [0]
    for char in text:
        offsets.append(offsets[-1] + len(char.encode("utf-8", "surrogatepass")))
    return offsets


def sort_entities(entities: list[Entity]) -> list[Entity]:
    """Order entities like Telegram: by offset, longer first, then by type priority."""
    return sorted(entities, key=lambda e: (e["offset"], -e["length"], _PRIORITY.get(e["type"], 50)))


def checked_link(url: str) -> str | None:
    """The URL Telegram would keep for a text link, or None when it drops the link."""
    url = url.strip()
    if not url or any(ch.isspace() for ch in url):
        return None
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", url)
    if match:
        scheme = match.group(1).lower()
        if scheme in ("http", "https", "tg", "ton", "ftp", "mailto"):
            return url
        return None
    if re.match(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:\d+)?([/?#].*)?$", url):
        return "http://" + url
    return None


def _link_entity(url: str, offset: int, length: int, lookup: UserLookup | None) -> Entity | None:
    match = re.fullmatch(r"tg://user\?id=(\d+)", url.strip())
    if match:
        user = lookup(int(match.group(1))) if lookup else None
        if user is None:
            return None
        return {"type": "text_mention", "offset": offset, "length": length, "user": user}
    checked = checked_link(url)
    if checked is None:
        return None
    return {"type": "text_link", "offset": offset, "length": length, "url": checked}


def _time_entity(url: str, offset: int, length: int) -> Entity | None:
    match = re.fullmatch(r"tg://time\?unix=(\d+)(?:&format=([A-Za-z]*))?", url)
    if not match:
        return None
    entity: Entity = {"type": "date_time", "offset": offset, "length": length,
                      "unix_time": int(match.group(1))}
    if match.group(2):
        entity["date_time_format"] = match.group(2)
    return entity


# --- HTML ------------------------------------------------------------------------------------


def _decode_html_entity(text: str, pos: int) -> tuple[str | None, int]:
    """Decode the character reference at ``pos`` (a '&'); (None, pos) when there is none."""
    n = len(text)
    end = pos + 1
    if end < n and text[end] == "#":
        end += 1
        value = 0
        digits = 0
        if end < n and text[end] == "x":
            end += 1
            while end < n and text[end] in "0123456789abcdefABCDEF":
                value = value * 16 + int(text[end], 16)
                end += 1
                digits += 1
        else:
            while end < n and text[end].isdigit() and text[end].isascii():
                value = value * 10 + int(text[end])
                end += 1
                digits += 1
        if digits == 0 or value == 0 or value >= 0x10FFFF or end - pos >= 10:
            return None, pos
        if 0xD800 <= value <= 0xDFFF:
            raise EntityParseError(
                "Text contains invalid Unicode characters after decoding HTML entities, check for "
                "unmatched surrogate code units")
        decoded = chr(value)
    else:
        while end < n and text[end].isascii() and text[end].isalpha():
            end += 1
        name = text[pos + 1:end]
        named = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}.get(name)
        if named is None:
            return None, pos
        decoded = named
    if end < n and text[end] == ";":
        end += 1
    return decoded, end


@dataclass
class _HtmlOpen:
    tag: str
    attrs: dict[str, str]
    offset: int
    out_len: int


def parse_html(source: str, *, strict: bool = True, lookup: UserLookup | None = None) -> Formatted:
    """Parse Telegram HTML into plain text and entities, or raise EntityParseError."""
    bytes_at = _byte_offsets(source)
    n = len(source)

    def at(k: int) -> str:
        return source[k] if k < n else ""

    out: list[str] = []
    u16 = 0
    stack: list[_HtmlOpen] = []
    entities: list[Entity] = []
    i = 0
    while i < n:
        c = source[i]
        if c == "&":
            decoded, after = _decode_html_entity(source, i)
            if decoded is not None:
                out.append(decoded)
                u16 += _w(decoded)
                i = after
                continue
            if strict:
                raise EntityParseError(
                    f'Character "&" must be escaped as "&amp;" at byte offset {bytes_at[i]}')
        if c != "<":
            out.append(c)
            u16 += _w(c)
            i += 1
            continue
        begin = i
        i += 1
        if at(i) != "/":
            while i < n and not at(i).isspace() and at(i) != ">":
                i += 1
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {bytes_at[begin]}")
            tag = source[begin + 1:i].lower()
            if tag not in _HTML_TAGS:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {bytes_at[begin]}')
            attrs, i = _html_attributes(source, i, tag, bytes_at[begin])
            if tag == "span" and attrs.get("class") != "tg-spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {bytes_at[begin]}')
            stack.append(_HtmlOpen(tag, attrs, u16, len(out)))
            i += 1  # past '>'
            continue
        # an end tag
        if not stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {bytes_at[begin]}")
        i += 1
        while i < n and not at(i).isspace() and at(i) != ">":
            i += 1
        end_tag = source[begin + 2:i].lower()
        while i < n and at(i).isspace():
            i += 1
        if at(i) != ">":
            raise EntityParseError(f"Unclosed end tag at byte offset {bytes_at[begin]}")
        top = stack[-1]
        if end_tag and end_tag != top.tag:
            raise EntityParseError(
                f'Unmatched end tag at byte offset {bytes_at[begin]}, expected "</{top.tag}>", '
                f'found "</{end_tag}>"')
        if u16 > top.offset:
            _close_html_entity(top, u16 - top.offset, "".join(out[top.out_len:]), entities, lookup)
        stack.pop()
        i += 1
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    return Formatted("".join(out), sort_entities(entities))


def _html_attributes(source: str, i: int, tag: str, begin_byte: int) -> tuple[dict[str, str], int]:
    """Read a start tag's attributes from ``i``; return them and the index of the closing '>'."""
    n = len(source)

    def at(k: int) -> str:
        return source[k] if k < n else ""

    attrs: dict[str, str] = {}
    while at(i) != ">":
        while i < n and at(i).isspace():
            i += 1
        if at(i) == ">":
            break
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {begin_byte}")
        name_begin = i
        while i < n and not at(i).isspace() and at(i) not in "=>":
            i += 1
        name = source[name_begin:i].lower()
        if not name:
            raise EntityParseError(f'Empty attribute name in the tag "{tag}" at byte offset {begin_byte}')
        while i < n and at(i).isspace():
            i += 1
        if at(i) != "=":
            attrs[name] = ""  # a valueless attribute, such as <blockquote expandable>
            continue
        i += 1
        while i < n and at(i).isspace():
            i += 1
        if i >= n:
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin_byte}')
        if at(i) not in "'\"":
            token_begin = i
            while i < n and (at(i).isalnum() or at(i) in ".-"):
                i += 1
            value = source[token_begin:i].lower()
            if not at(i).isspace() and at(i) != ">":
                raise EntityParseError(f"Unexpected end of name token at byte offset {token_begin}")
        else:
            quote = source[i]
            i += 1
            chars: list[str] = []
            while i < n and source[i] != quote:
                if source[i] == "&":
                    decoded, after = _decode_html_entity(source, i)
                    if decoded is not None:
                        chars.append(decoded)
                        i = after
                        continue
                chars.append(source[i])
                i += 1
            if at(i) == quote:
                i += 1
            value = "".join(chars)
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {begin_byte}")
        attrs[name] = value
    return attrs, i


def _close_html_entity(top: _HtmlOpen, length: int, inner: str, entities: list[Entity],
                       lookup: UserLookup | None) -> None:
    offset = top.offset
    tag = top.tag
    if tag in _SIMPLE_HTML or tag == "span":
        entities.append({"type": _SIMPLE_HTML.get(tag, "spoiler"), "offset": offset, "length": length})
    elif tag == "tg-emoji":
        emoji_id = top.attrs.get("emoji-id", "")
        if not emoji_id.isdigit() or int(emoji_id) == 0:
            raise EntityParseError("Invalid custom emoji identifier specified")
        entities.append({"type": "custom_emoji", "offset": offset, "length": length,
                         "custom_emoji_id": emoji_id})
    elif tag == "tg-time":
        unix = top.attrs.get("unix", "")
        if not unix.isdigit():
            raise EntityParseError("Invalid Unix time specified")
        entity: Entity = {"type": "date_time", "offset": offset, "length": length, "unix_time": int(unix)}
        if top.attrs.get("format"):
            entity["date_time_format"] = top.attrs["format"]
        entities.append(entity)
    elif tag == "a":
        link = _link_entity(top.attrs.get("href") or inner, offset, length, lookup)
        if link is not None:
            entities.append(link)
    elif tag == "pre":
        last = entities[-1] if entities else None
        if (last and last["type"] == "code" and last["offset"] == offset and last["length"] == length
                and last.get("language")):
            last["type"] = "pre"
        else:
            entities.append({"type": "pre", "offset": offset, "length": length})
    elif tag == "code":
        language = top.attrs.get("class", "")
        language = language[len("language-"):] if language.startswith("language-") else ""
        last = entities[-1] if entities else None
        if (last and last["type"] == "pre" and last["offset"] == offset and last["length"] == length
                and language):
            last["language"] = language
        else:
            code: Entity = {"type": "code", "offset": offset, "length": length}
            if language:
                code["language"] = language  # kept until a surrounding <pre> claims it
            entities.append(code)
    elif tag == "blockquote":
        kind = "expandable_blockquote" if "expandable" in top.attrs else "blockquote"
        entities.append({"type": kind, "offset": offset, "length": length})


# --- MarkdownV2 ------------------------------------------------------------------------------

_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!\n"


@dataclass
class _MdOpen:
    type: str
    argument: str
    offset: int
    byte_offset: int
    out_len: int


def _reserved(char: str) -> EntityParseError:
    return EntityParseError(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")


def parse_markdown_v2(source: str, *, lookup: UserLookup | None = None) -> Formatted:
    """Parse MarkdownV2 into plain text and entities, or raise EntityParseError."""
    bytes_at = _byte_offsets(source)
    n = len(source)

    def at(k: int) -> str:
        return source[k] if 0 <= k < n else ""

    out: list[str] = []
    u16 = 0
    entities: list[Entity] = []
    stack: list[_MdOpen] = []
    have_quote = False
    i = 0
    while i < n:
        c = source[i]
        nxt = at(i + 1)
        if c == "\\" and nxt and 0 < ord(nxt) <= 126:
            out.append(nxt)
            u16 += 1
            i += 2
            continue
        reserved = "`" if stack and stack[-1].type in ("code", "pre") else _MDV2_RESERVED
        if c not in reserved:
            out.append(c)
            u16 += _w(c)
            i += 1
            continue
        if stack and _md_ends(stack[-1].type, c, nxt, at(i + 2), have_quote, i + 1 >= n or nxt != ">"):
            top = stack[-1]
            if c == "\n" and top.type not in ("blockquote", "expandable_blockquote"):
                raise EntityParseError(
                    f"Can't find end of {_MD_NAMES[top.type]} entity at byte offset {top.byte_offset}")
            entity, i = _md_close(source, i, top, u16, out, lookup, bytes_at)
            if top.type in ("blockquote", "expandable_blockquote"):
                have_quote = False
            if entity is not None:
                entities.append(entity)
            stack.pop()
            if c == "\n":
                out.append("\n")
                u16 += 1
            i += 1
            continue
        # the beginning of an entity
        byte_offset = bytes_at[i]
        kind = ""
        argument = ""
        if c == "_":
            if nxt == "_":
                kind = "underline"
                i += 1
            else:
                kind = "italic"
        elif c == "*":
            if (i == 0 or source[i - 1] == "\n") and nxt == "*" and at(i + 2) == ">" and not have_quote:
                kind = "expandable_blockquote"
                have_quote = True
                i += 2
            else:
                kind = "bold"
        elif c == "~":
            kind = "strikethrough"
        elif c == "|":
            if nxt != "|":
                raise _reserved(c)
            i += 1
            kind = "spoiler"
        elif c == "[":
            kind = "text_link"
        elif c == "`":
            if nxt == "`" and at(i + 2) == "`":
                i += 3
                kind = "pre"
                language_end = i
                while language_end < n and not source[language_end].isspace() and source[language_end] != "`":
                    language_end += 1
                if i != language_end and language_end < n and source[language_end] != "`":
                    argument = source[i:language_end]
                    i = language_end
                if at(i) in ("\n", "\r") and at(i):
                    if at(i + 1) in ("\n", "\r") and at(i + 1) and at(i) != at(i + 1):
                        i += 2
                    else:
                        i += 1
                i -= 1
            else:
                kind = "code"
        elif c == "!":
            if nxt != "[":
                raise _reserved(c)
            i += 1
            kind = "custom_emoji"
        elif c == "\n":
            out.append("\n")
            u16 += 1
            if nxt == ">":
                i += 1
                if not have_quote:
                    kind = "blockquote"
                    have_quote = True
        elif c == ">":
            if i != 0:
                raise _reserved(c)
            kind = "blockquote"
            have_quote = True
        else:
            raise _reserved(c)
        if kind:
            stack.append(_MdOpen(kind, argument, u16, byte_offset, len(out)))
        i += 1
    if stack and stack[-1].type in ("blockquote", "expandable_blockquote"):
        top = stack.pop()
        if u16 > top.offset:
            entities.append({"type": top.type, "offset": top.offset, "length": u16 - top.offset})
    if stack:
        top = stack[-1]
        raise EntityParseError(
            f"Can't find end of {_MD_NAMES[top.type]} entity at byte offset {top.byte_offset}")
    return Formatted("".join(out), sort_entities(entities))


def _md_ends(kind: str, c: str, nxt: str, after: str, have_quote: bool, line_ends: bool) -> bool:
    if have_quote and c == "\n" and line_ends:
        return True
    return {
        "bold": c == "*",
        "italic": c == "_" and nxt != "_",
        "code": c == "`",
        "pre": c == "`" and nxt == "`" and after == "`",
        "text_link": c == "]",
        "underline": c == "_" and nxt == "_",
        "strikethrough": c == "~",
        "spoiler": c == "|" and nxt == "|",
        "custom_emoji": c == "]",
        "blockquote": False,
        "expandable_blockquote": c == "|" and nxt == "|" and after in ("", "\n"),
    }[kind]


def _md_close(source: str, i: int, top: _MdOpen, u16: int, out: list[str], lookup: UserLookup | None,
              bytes_at: list[int]) -> tuple[Entity | None, int]:
    """Finish the innermost MarkdownV2 entity at ``i``; return it (or None) and the new index."""
    n = len(source)

    def at(k: int) -> str:
        return source[k] if k < n else ""

    length = u16 - top.offset
    skip = length == 0
    entity: Entity | None = {"type": top.type, "offset": top.offset, "length": length}
    if top.type in ("underline", "spoiler") or (top.type == "expandable_blockquote" and source[i] == "|"):
        i += 1
    elif top.type == "pre":
        i += 2
        if top.argument:
            entity = {"type": "pre", "offset": top.offset, "length": length, "language": top.argument}
    elif top.type in ("text_link", "custom_emoji"):
        if at(i + 1) != "(":
            if top.type == "custom_emoji":
                raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
            url = "".join(out[top.out_len:])
        else:
            i += 2
            url_begin = i
            chars: list[str] = []
            while i < n and source[i] != ")":
                if source[i] == "\\" and at(i + 1) and 0 < ord(at(i + 1)) <= 126:
                    chars.append(source[i + 1])
                    i += 2
                    continue
                chars.append(source[i])
                i += 1
            if at(i) != ")":
                what = "a custom emoji URL" if top.type == "custom_emoji" else "a URL"
                raise EntityParseError(f"Can't find end of {what} at byte offset {bytes_at[url_begin]}")
            url = "".join(chars)
        if top.type == "text_link":
            entity = _link_entity(url, top.offset, length, lookup)
        else:
            match = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
            if match:
                entity = {"type": "custom_emoji", "offset": top.offset, "length": length,
                          "custom_emoji_id": match.group(1)}
            else:
                entity = _time_entity(url, top.offset, length)
                if entity is None:
                    raise EntityParseError("Custom emoji URL must have an emoji identifier")
    return (None if skip else entity), i


# --- legacy Markdown -------------------------------------------------------------------------


def parse_markdown(source: str, *, lookup: UserLookup | None = None) -> Formatted:
    """Parse legacy Markdown (``*bold*``, ``_italic_``, ``[text](url)``, code) into entities."""
    bytes_at = _byte_offsets(source)
    n = len(source)

    def at(k: int) -> str:
        return source[k] if k < n else ""

    out: list[str] = []
    u16 = 0
    entities: list[Entity] = []
    i = 0
    while i < n:
        c = source[i]
        if c == "\\" and at(i + 1) in ("_", "*", "`", "[") and at(i + 1):
            out.append(source[i + 1])
            u16 += 1
            i += 2
            continue
        if c not in "_*`[":
            out.append(c)
            u16 += _w(c)
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        is_pre = False
        language = ""
        i += 1
        if c == "`" and at(i) == "`" and at(i + 1) == "`":
            i += 2
            is_pre = True
            language_end = i
            while language_end < n and not source[language_end].isspace() and source[language_end] != "`":
                language_end += 1
            if i != language_end and language_end < n and source[language_end] != "`":
                language = source[i:language_end]
                i = language_end
            if at(i) in ("\n", "\r") and at(i):
                i += 2 if (at(i + 1) in ("\n", "\r") and at(i + 1) and at(i) != at(i + 1)) else 1
        offset = u16
        out_begin = len(out)
        while i < n and (source[i] != end_char or (is_pre and not (at(i + 1) == "`" and at(i + 2) == "`"))):
            out.append(source[i])
            u16 += _w(source[i])
            i += 1
        if i >= n:
            raise EntityParseError(f"Can't find end of the entity starting at byte offset {bytes_at[begin]}")
        if u16 != offset:
            length = u16 - offset
            if c == "_":
                entities.append({"type": "italic", "offset": offset, "length": length})
            elif c == "*":
                entities.append({"type": "bold", "offset": offset, "length": length})
            elif c == "[":
                url = "".join(out[out_begin:])
                if at(i + 1) == "(":
                    i += 2
                    chars: list[str] = []
                    while i < n and source[i] != ")":
                        chars.append(source[i])
                        i += 1
                    url = "".join(chars)
                link = _link_entity(url, offset, length, lookup)
                if link is not None:
                    entities.append(link)
            elif is_pre:
                pre: Entity = {"type": "pre", "offset": offset, "length": length}
                if language:
                    pre["language"] = language
                entities.append(pre)
            else:
                entities.append({"type": "code", "offset": offset, "length": length})
        if is_pre:
            i += 2
        i += 1
    return Formatted("".join(out), sort_entities(entities))


# --- automatic entities ----------------------------------------------------------------------


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"]+|\b(?:t\.me|telegram\.me)/[^\s<>\"]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_TRAILING = ".,;:!?'\")]}"


def find_entities(text: str) -> list[Entity]:
    """Entities Telegram finds by itself in any text: mentions, commands, hashtags, URLs, e-mail."""
    found: list[tuple[int, int, str]] = []  # (start, end) in str indexes, type
    n = len(text)
    for match in re.finditer("@", text):
        start = match.start()
        if start > 0 and _is_word(text[start - 1]):
            continue
        end = start + 1
        while end < n and text[end].isascii() and _is_word(text[end]):
            end += 1
        size = end - start - 1
        if 4 <= size <= 32 and not (end < n and _is_word(text[end])):
            found.append((start, end, "mention"))
    for match in re.finditer("/", text):
        start = match.start()
        if start > 0 and (_is_word(text[start - 1]) or text[start - 1] in "/<>"):
            continue
        end = start + 1
        while end < n and text[end].isascii() and _is_word(text[end]):
            end += 1
        if not 1 <= end - start - 1 <= 64:
            continue
        if end < n and text[end] == "@":
            mention_end = end + 1
            while mention_end < n and text[mention_end].isascii() and _is_word(text[mention_end]):
                mention_end += 1
            if not 3 <= mention_end - end - 1 <= 32:
                continue
            end = mention_end
        if end < n and (_is_word(text[end]) or text[end] in "/<>"):
            continue
        found.append((start, end, "bot_command"))
    for match in re.finditer("#", text):
        start = match.start()
        if start > 0 and _is_word(text[start - 1]):
            continue
        end = start + 1
        while end < n and _is_word(text[end]):
            end += 1
        body = text[start + 1:end]
        if body and any(ch.isalpha() for ch in body) and not (end < n and text[end] == "#"):
            found.append((start, end, "hashtag"))
    for match in re.finditer(r"(?<![$\w])\$[A-Z]{1,8}(?![$\w])", text):
        found.append((match.start(), match.end(), "cashtag"))
    for match in _EMAIL.finditer(text):
        found.append((match.start(), match.end(), "email"))
    for match in _URL.finditer(text):
        end = match.end()
        while end > match.start() and text[end - 1] in _TRAILING:
            end -= 1
        found.append((match.start(), end, "url"))
    # keep the first of overlapping matches, preferring e-mail over the URL or mention inside it
    order = {"email": 0, "url": 1, "bot_command": 2, "mention": 3, "hashtag": 4, "cashtag": 5}
    found.sort(key=lambda item: (item[0], order[item[2]]))
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in found:
        if any(start < k_end and k_start < end for k_start, k_end, _ in kept):
            continue
        kept.append((start, end, kind))
    return [
        {"type": kind, "offset": utf16_len(text[:start]), "length": utf16_len(text[start:end])}
        for start, end, kind in sorted(kept)
    ]


def merge_found_entities(text: str, entities: list[Entity]) -> list[Entity]:
    """Add automatically found entities that do not overlap links, code or similar entities."""
    blocking = [e for e in entities if e["type"] in _BLOCKING or e["type"] in _FOUND_TYPES]
    merged = list(entities)
    for found in find_entities(text):
        start, end = found["offset"], found["offset"] + found["length"]
        if any(start < b["offset"] + b["length"] and b["offset"] < end for b in blocking):
            continue
        merged.append(found)
    return sort_entities(merged)


# --- the whole pipeline ----------------------------------------------------------------------


def trim(formatted: Formatted) -> Formatted:
    """Drop leading and trailing spaces and newlines like Telegram, keeping entities in place."""
    text = formatted.text
    end = len(text)
    while end > 0 and text[end - 1] in " \n":
        end -= 1
    first_entity = min((e["offset"] for e in formatted.entities), default=None)
    start = 0
    while start < end and text[start] in " \n":
        if first_entity is not None and utf16_len(text[:start]) >= first_entity:
            break
        start += 1
    shift = utf16_len(text[:start])
    limit = utf16_len(text[:end]) - shift
    entities: list[Entity] = []
    for entity in formatted.entities:
        offset = max(0, entity["offset"] - shift)
        stop = min(limit, entity["offset"] + entity["length"] - shift)
        if stop > offset:
            entities.append({**entity, "offset": offset, "length": stop - offset})
    kept = text[start:end]
    entities = [e for e in entities if _slice16(kept, e["offset"], e["length"]).strip(" \n")]
    return Formatted(kept, sort_entities(entities))


def _slice16(text: str, offset: int, length: int) -> str:
    encoded = text.encode("utf-16-le")
    return encoded[offset * 2:(offset + length) * 2].decode("utf-16-le", "replace")


def validate_entities(text: str, raw: list[Any], lookup: UserLookup | None = None) -> list[Entity]:
    """Check entities a bot passed explicitly (instead of a parse mode) against the text."""
    size = utf16_len(text)
    entities: list[Entity] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise EntityParseError("Entity must be an object with a type")
        offset, length = item.get("offset"), item.get("length")
        if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length < 0:
            raise EntityParseError("Entity offset and length must be non-negative integers")
        if offset + length > size:
            raise EntityParseError(
                f"Entity beginning at UTF-16 offset {offset} ends after the end of the text at UTF-16 "
                f"offset {offset + length}")
        if item["type"] not in _PRIORITY:
            raise EntityParseError(f'Unsupported entity type "{item["type"]}"')
        entity = {k: v for k, v in item.items() if k in (
            "type", "offset", "length", "url", "user", "language", "custom_emoji_id", "unix_time",
            "date_time_format")}
        if entity["type"] == "text_mention" and isinstance(item.get("user"), dict) and lookup:
            entity["user"] = lookup(int(item["user"].get("id", 0))) or item["user"]
        if length:
            entities.append(entity)
    return sort_entities(entities)


def format_text(text: str, parse_mode: str | None = None, entities: list[Any] | None = None, *,
                strict_html: bool = True, lookup: UserLookup | None = None) -> Formatted:
    """What Telegram stores for ``text`` sent with ``parse_mode`` or explicit ``entities``.

    Raises EntityParseError for invalid markup and ValueError("unsupported parse_mode") for an
    unknown mode.
    """
    if parse_mode:
        mode = PARSE_MODES.get(parse_mode.lower())
        if mode is None:
            raise ValueError("unsupported parse_mode")
        if mode == "HTML":
            formatted = parse_html(text, strict=strict_html, lookup=lookup)
        elif mode == "MarkdownV2":
            formatted = parse_markdown_v2(text, lookup=lookup)
        else:
            formatted = parse_markdown(text, lookup=lookup)
    else:
        formatted = Formatted(text, validate_entities(text, entities, lookup) if entities else [])
    formatted = trim(formatted)
    return Formatted(formatted.text, merge_found_entities(formatted.text, formatted.entities))
