"""Text as a terminal may show it: the input's control characters made visible.

A text can hold ESC, BEL, CSI or a carriage return; printed raw they would drive the terminal
(clear it, move the cursor, retitle the window) instead of showing. Every view and every message
passes the text it shows through `printable`. JSON needs none of this: it escapes them itself.
"""

from __future__ import annotations

import unicodedata

# Not "Cc" but as dangerous: line and paragraph separators, and the bidirectional overrides
# and isolates that can make a line read differently from what it holds.
_INVISIBLE_BREAKS = {"\u2028", "\u2029", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with its control characters as escapes (ESC -> \\x1b, newline -> \\n); the rest
    (letters, symbols, emoji, combining marks) untouched."""
    if text.isprintable():  # the common case, fast: no Cc, Cf, Z* but space, ...
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) == "Cc" or ch in _INVISIBLE_BREAKS else ch for ch in text)


_SIGNS = {"\n": "↵", "\t": "⇥", "\r": "␍"}


def token_text(text: str) -> str:
    """A token as every view shows it (inspect's tables, generate, lens): a newline as ↵, a tab
    as ⇥, a carriage return as ␍, a token of spaces as ␣, the empty token as ∅; other control
    characters as escapes (`printable`)."""
    if not text:
        return "∅"
    if not text.strip():
        return "".join(_SIGNS.get(c, "␣") for c in text)
    return printable("".join(_SIGNS.get(c, c) for c in text))
