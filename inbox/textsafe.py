"""Making customer text safe to print on a terminal (no escape sequences, no bidi tricks) and to store."""

from __future__ import annotations

import unicodedata

_KEEP = {"\n", "\t"}


def terminal_safe(text: str) -> str:
    """Replace control and format characters (ANSI escapes, bidi overrides) with visible escapes."""
    out = []
    for char in text:
        if char in _KEEP:
            out.append(char)
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs"):
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    """``text`` as every database can store it: lone surrogates and NUL become U+FFFD.

    JSON may carry ``"\\ud800"`` (a surrogate without its pair) and ``"\\u0000"``; neither SQLite nor
    PostgreSQL stores them (UTF-8 cannot encode the first, PostgreSQL's text refuses the second),
    so one such message would fail its whole batch again and again and block its channel. A split
    surrogate pair is joined back into the character it encodes.
    """
    if "\x00" not in text:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return text  # the common case costs one encode
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return joined.replace("\x00", REPLACEMENT)
