"""PNG and SVG labels in any script: attn draws with a font that has the characters when the
system has one (matplotlib falls back to it glyph by glyph), else says once, in its own words,
which characters will be boxes; matplotlib's "Glyph … missing" warnings never reach stderr."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import attn

pytest.importorskip("matplotlib")

from matplotlib import font_manager  # noqa: E402

from attn_cli.views import fonts  # noqa: E402
from attn_cli.views.plot import write_heatmap  # noqa: E402

TINY = Path(__file__).parent / "fixtures" / "tiny"
FAMILY = "Attn Test Han"


def han_font(path: Path) -> Path:
    """A font with two glyphs, 日 and 本 (filled squares), built with fontTools."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    def square():
        pen = TTGlyphPen(None)
        pen.moveTo((100, 0))
        pen.lineTo((100, 700))
        pen.lineTo((900, 700))
        pen.lineTo((900, 0))
        pen.closePath()
        return pen.glyph()

    names = [".notdef", "uni65E5", "uni672C"]
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder(names)
    fb.setupCharacterMap({0x65E5: "uni65E5", 0x672C: "uni672C"})
    fb.setupGlyf({n: square() for n in names})
    fb.setupHorizontalMetrics({n: (1000, 100) for n in names})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": FAMILY, "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=800, usWinAscent=800, usWinDescent=200)
    fb.setupPost()
    fb.save(str(path))
    return path


@pytest.fixture
def han(tmp_path, monkeypatch):
    """The test font, known to matplotlib's font manager for this test only."""
    path = han_font(tmp_path / "han.ttf")
    dejavu = [f for f in font_manager.fontManager.ttflist if f.name.startswith("DejaVu")]  # whatever else the system has
    monkeypatch.setattr(font_manager.fontManager, "ttflist", dejavu)
    monkeypatch.setattr(fonts, "_add_new_system_fonts", lambda: None)
    font_manager.fontManager.addfont(str(path))
    return path


def test_fonts_installed_after_matplotlibs_cache_are_found(tmp_path, monkeypatch):
    """matplotlib's font cache does not see a font installed later: attn adds the system's."""
    path = han_font(tmp_path / "han.ttf")
    dejavu = [f for f in font_manager.fontManager.ttflist if f.name.startswith("DejaVu")]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", dejavu)
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [str(path)])
    fonts._add_new_system_fonts.cache_clear()
    try:
        assert fonts.choose(["日本"]) == (["DejaVu Sans", FAMILY], "")
    finally:
        fonts._add_new_system_fonts.cache_clear()


def test_a_font_with_the_characters_is_chosen_after_dejavu(han):
    assert fonts.choose(["日本 cat", "L0"]) == (["DejaVu Sans", FAMILY], "")
    assert fonts.choose(["cat ▶ é"]) == (["DejaVu Sans"], "")  # DejaVu has these: nothing added


def test_the_files_use_it_and_nothing_is_said(han, tmp_path):
    told = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("grid.png", "grid.svg"):
            write_heatmap(tmp_path / name, np.array([[0.2, 0.8], [0.5, 0.5]]), ["日", "本"], ["0", "1"], "日本", warn=told.append)
    assert told == [] and [str(w.message) for w in caught] == []
    assert FAMILY in (tmp_path / "grid.svg").read_text(encoding="utf-8")  # the SVG's text names the font that has them


def test_characters_no_font_has_are_named_once_in_attns_words(tmp_path):
    """U+F0000 (private use, plane 15): no font has it. One warning, attn's; none of matplotlib's."""
    out = tmp_path / "pua.png"
    done = attn("plot", "the \U000f0000 cat sat", "-q", "cat", "-m", str(TINY / "gpt2"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out) and out.stat().st_size > 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("attn: warning: no font on this system has \U000f0000:"), done.stderr
    assert "Glyph" not in done.stderr and "UserWarning" not in done.stderr and "findfont" not in done.stderr


def test_html_needs_no_font_and_says_nothing(tmp_path):
    done = attn("plot", "the \U000f0000 cat sat", "-q", "cat", "-m", str(TINY / "gpt2"), "-o", str(tmp_path / "pua.html"))
    assert done.returncode == 0 and done.stderr == ""
