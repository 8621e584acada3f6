"""Words of a text, found in its characters, the same way for every tokenizer.

A tokenizer's own idea of a word differs from model to model: BERT's pre-tokenizer splits at
every apostrophe, a byte-level BPE or SentencePiece tokenizer sees a whole Chinese sentence as
one "word". attn finds words in the text itself and then gives each word the tokens that
overlap it (by character offsets), so two models read a text as the same words:

- a run of letters, digits and combining marks is a word; an apostrophe (' or ’) between two
  of them stays inside it (didn't, l’eau), and so does a . or , between two digits (3.14, 1,000);
- a CJK ideograph, hiragana or katakana is a word of its own (scripts written without spaces;
  Thai, Lao, Khmer and Myanmar, which need a dictionary to split, stay runs);
- any other character (punctuation, a symbol, an emoji with its modifiers and joiners) is a
  word of its own, a run of the same one (..., !!) one word;
- whitespace, and the zero-width space, separate words and belong to none.
"""

from __future__ import annotations

import bisect
import unicodedata
from functools import lru_cache

_SPACE, _LETTER, _MARK, _CJK, _JOIN, _APOSTROPHE, _OTHER = range(7)
_APOSTROPHES = "'\u2019"  # ' and ’; ʼ (U+02BC) is a letter already
_SEPARATING_FORMATS = "\u200b\ufeff"  # zero-width space, BOM: between words, never inside one
_CJK_RANGES = (
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x31F0, 0x31FF),  # katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width katakana
    (0x20000, 0x3134F),  # CJK extensions B … G
)
_REGIONAL_INDICATORS = (0x1F1E6, 0x1F1FF)  # two make a flag
_EMOJI_MODIFIERS = (0x1F3FB, 0x1F3FF)  # skin tones
_ZWJ = "\u200d"


@lru_cache(maxsize=4096)
def _kind(char: str) -> int:
    code = ord(char)
    if char.isspace() or char in _SEPARATING_FORMATS:
        return _SPACE
    if any(lo <= code <= hi for lo, hi in _CJK_RANGES):
        return _CJK
    if char in _APOSTROPHES:
        return _APOSTROPHE
    category = unicodedata.category(char)
    if category[0] in "LN":
        return _LETTER
    if category[0] == "M" or _EMOJI_MODIFIERS[0] <= code <= _EMOJI_MODIFIERS[1]:
        return _MARK
    if category == "Cf":  # joiners, the soft hyphen: inside whatever they are written in
        return _JOIN
    return _OTHER


def segment(text: str, skip: tuple[tuple[int, int], ...] = ()) -> list[tuple[int, int]]:
    """(start, end) character offsets of each word of `text`, in order (see the module).
    `skip`: spans that are no words' (special tokens written in the text, e.g. <|im_start|>)."""
    spans, i, n = [], 0, len(text)
    skip = sorted(skip)
    k = 0
    while i < n:
        while k < len(skip) and skip[k][1] <= i:
            k += 1
        if k < len(skip) and skip[k][0] <= i:
            i = skip[k][1]
            continue
        limit = skip[k][0] if k < len(skip) else n
        kind = _kind(text[i])
        if kind in (_SPACE, _JOIN):
            i += 1
            continue
        start = i
        if kind == _LETTER:
            i = _letters(text, i, limit)
        else:
            i = _cluster(text, i, limit)
            if kind != _CJK:  # a run of one punctuation or symbol: ..., !!, 🎉🎉
                size = i - start
                while i + size <= limit and text[i : i + size] == text[start : start + size] and _cluster(text, i, limit) == i + size:
                    i += size
        spans.append((start, i))
    return spans


def _letters(text: str, i: int, limit: int) -> int:
    """The end of the run of letters, digits and marks starting at `i`."""
    i += 1
    while i < limit:
        kind = _kind(text[i])
        if kind in (_LETTER, _MARK, _JOIN):
            i += 1
        elif i + 1 < limit and _kind(text[i + 1]) == _LETTER and (
            kind == _APOSTROPHE or text[i] in ".," and text[i - 1].isdigit() and text[i + 1].isdigit()
        ):
            i += 2
        else:
            break
    return i


def _cluster(text: str, i: int, limit: int) -> int:
    """The end of the character at `i` with what is written onto it: combining marks,
    variation selectors, skin tones, characters joined by a zero-width joiner, a flag's second
    regional indicator."""
    first = ord(text[i])
    i += 1
    if _REGIONAL_INDICATORS[0] <= first <= _REGIONAL_INDICATORS[1] and i < limit:
        if _REGIONAL_INDICATORS[0] <= ord(text[i]) <= _REGIONAL_INDICATORS[1]:
            i += 1
    while i < limit:
        if text[i] == _ZWJ and i + 1 < limit and _kind(text[i + 1]) != _SPACE:
            i += 2
        elif _kind(text[i]) in (_MARK, _JOIN):
            i += 1
        else:
            break
    return i


def overlaps(spans: list[tuple[int, int]], start: int, end: int) -> range:
    """Indices of the `spans` (sorted, disjoint) that share a character with [start, end)."""
    if end <= start:
        return range(0)
    first = bisect.bisect_right(spans, (start, float("inf")))
    if first and spans[first - 1][1] > start:
        first -= 1
    last = first
    while last < len(spans) and spans[last][0] < end:
        last += 1
    return range(first, last)


_APOSTROPHE_FORMS = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'"})


def same_text(text: str) -> str:
    """The form in which a query and the text's words are compared: NFC (a decomposed é is the
    composed é), case-folded, every apostrophe ’ ‘ ʼ ′ read as ', each run of whitespace as one
    space."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().translate(_APOSTROPHE_FORMS).split())


def without_accents(text: str) -> str:
    """The fallback form: `same_text` with combining marks removed ("Café" -> "cafe")."""
    decomposed = unicodedata.normalize("NFD", same_text(text))
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))
