"""Text as a terminal may show it: the input's control and format characters made visible.

A text can hold ESC, BEL, CSI or a carriage return; printed raw they would drive the terminal
(clear it, move the cursor, retitle the window) instead of showing. Format characters (a
zero-width space, a right-to-left override, a soft hyphen) take no cell, or reorder the line:
a token made of one would be invisible, and a table measured with it would not line up. Every
view and every message passes the text it shows through `printable`, before it is measured
(Rich tables: `terminal.visible`; `terminal.fit` tables: when they are built). JSON needs none
of this: it escapes them itself, or keeps them as they are.
"""

from __future__ import annotations

import unicodedata

# Controls (Cc); format characters (Cf: zero-width space and joiners, the bidirectional marks,
# overrides and isolates that make a line read differently from what it holds, soft hyphen,
# BOM); lone surrogates (Cs, which no terminal encoding can write); line and paragraph
# separators (Zl, Zp).
_ESCAPED = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with its control and format characters as escapes (ESC -> \\x1b, newline -> \\n,
    U+200B -> \\u200b); the rest (letters, symbols, emoji, combining marks) untouched."""
    if text.isprintable():  # the common case, fast: no Cc, Cf, Z* but space, ...
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in _ESCAPED else ch for ch in text)


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
