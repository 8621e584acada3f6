"""Fonts for the PNG and SVG files: matplotlib's default, DejaVu Sans, has no CJK and no emoji,
and draws them as empty boxes with a "Glyph … missing" warning each. Before drawing, attn looks
through the fonts matplotlib knows (font_manager) for ones that have the characters of the
labels and title (Noto Sans CJK, Noto Emoji, Symbola, …) and lists them after DejaVu Sans, so
that matplotlib falls back to them glyph by glyph; fonts installed after matplotlib built its
font cache are found too. What no font has is returned, for the caller to say once in attn's
words; matplotlib's own warnings never reach the user.
"""

from __future__ import annotations

import contextlib
import logging
import unicodedata
import warnings
from collections.abc import Iterable
from functools import cache

DEFAULT = "DejaVu Sans"
# matplotlib's Last Resort font has a placeholder for every character (a box with its code):
# not a glyph of it.
_NOT_REAL = {DEFAULT, "Last Resort High-Efficiency", "LastResort"}


@cache
def _charmap(path: str) -> frozenset[int]:
    """The code points font file `path` has glyphs for; empty if FreeType cannot draw it at
    the sizes matplotlib uses (a colour bitmap emoji font, say)."""
    from matplotlib.ft2font import FT2Font

    try:
        font = FT2Font(path)
        font.set_size(10, 72)
        return frozenset(font.get_charmap())
    except (RuntimeError, OSError, ValueError):
        return frozenset()


def _needed(texts: Iterable[str]) -> set[int]:
    """The characters that need a glyph: all but spaces, controls and formatting marks."""
    return {ord(c) for text in texts for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Zs", "Zl", "Zp")}


def choose(texts: Iterable[str]) -> tuple[list[str], str]:
    """(the font families to draw `texts` with, DejaVu Sans first; the characters that no font
    on this system has, as a string, empty when all are there)."""
    from matplotlib import font_manager

    needed = _needed(texts)
    default = _charmap(font_manager.findfont(DEFAULT, fallback_to_default=True))
    missing = needed - default
    families = [DEFAULT]
    if not missing:
        return families, ""
    _add_new_system_fonts()
    fonts = sorted({(f.name, f.fname) for f in font_manager.fontManager.ttflist if f.name not in _NOT_REAL and f.style == "normal"})
    while missing:
        best = max(fonts, key=lambda f: len(missing & _charmap(f[1])), default=None)
        covered = missing & _charmap(best[1]) if best else set()
        if not covered:
            break
        families.append(best[0])
        missing -= covered
        fonts = [f for f in fonts if f[0] != best[0]]
    return families, "".join(sorted(map(chr, missing)))


@cache
def _add_new_system_fonts() -> None:
    """Make the fonts installed since matplotlib built its font cache known to it, for this
    process: matplotlib does not look for new fonts by itself (its cache would have to be
    deleted), and a font installed to draw CJK should work at once."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    known = {f.fname for f in manager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in known:
            with contextlib.suppress(Exception):  # a font FreeType cannot read is not one we can use
                manager.addfont(path)


@contextlib.contextmanager
def quiet():
    """matplotlib's warnings about fonts (a missing glyph, a family not found) silenced: attn
    says what matters itself."""
    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*Glyph .* missing from")
            warnings.filterwarnings("ignore", message=r"(?s).*findfont")
            yield
    finally:
        logger.setLevel(level)


def missing_message(missing: str, path) -> str:
    """One sentence for stderr about the characters no font has."""
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    return (
        f"no font on this system has {shown}: {path} shows them as empty boxes"
        " — install a font that has them (e.g. Noto Sans CJK for Chinese, Japanese and Korean, Noto Emoji for emoji)"
        " and draw again, or write .html, which the browser draws with its own fonts"
    )
