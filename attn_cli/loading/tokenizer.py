"""Tokenizing text with a model's `tokenizer.json`, keeping each token's place in the text."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from ..errors import InputError, ModelError
from ..records import frozen
from .words import overlaps, same_text, segment


@frozen
class Token:
    """One token. `start`/`end` are character offsets into the text (None for special tokens),
    so `text[start:end]` is the source text it covers. `word` is the index of the first word it
    overlaps (None for special tokens and for tokens that cover only whitespace). `text` is the
    token as a person reads it (`cat`, `é`, `↵`); `piece` as the vocabulary spells it (`Ġcat`,
    `Ã©`, `<0xF0>`), None when it reads as `text`."""

    index: int
    text: str
    id: int
    start: int | None
    end: int | None
    word: int | None
    special: bool
    piece: str | None = None


@frozen
class Word:
    """A word of the text (`words.segment`: found in the characters, the same for every
    tokenizer) and the tokens that overlap it. A token may overlap two words (Gemma's `坐在`
    is one token): it is then among the tokens of both."""

    index: int
    text: str
    start: int
    end: int
    token_indices: tuple[int, ...]


@frozen
class Unit:
    """A row of a view: a token (`--level token`) or a word (`--level word`). At word level,
    words that share a token are one unit (`word` is the first); special tokens, and tokens of
    whitespace alone, are units of their own (`word` None). `label` names the unit in a list:
    its text, with `#N` for the N-th of a word that occurs more than once (as `WORD#N` queries
    count), or `@I` for a special or whitespace token at position I that occurs more than once."""

    text: str
    token_indices: tuple[int, ...]
    word: int | None
    special: bool
    label: str = ""


@frozen
class Tokenization:
    text: str
    tokens: tuple[Token, ...]
    words: tuple[Word, ...]
    total_tokens: int | None = None  # set when the text was truncated: its length before

    def __repr__(self) -> str:
        cut = f", truncated_from={self.total_tokens}" if self.total_tokens is not None else ""
        text = self.text if len(self.text) <= 40 else self.text[:39] + "…"
        return f"Tokenization(text={text!r}, tokens={len(self.tokens)}, words={len(self.words)}{cut})"

    @property
    def ids(self) -> np.ndarray:
        """(seq,) int64 token ids, the model's input."""
        return np.array([t.id for t in self.tokens], dtype=np.int64)

    def words_of(self, token: Token) -> tuple[Word, ...]:
        """The words `token` overlaps: none for a special or whitespace token, two or more for a
        token that spans words (Gemma's `坐在`)."""
        if token.word is None:
            return ()
        found = [self.words[token.word]]
        while found[-1].index + 1 < len(self.words) and token.index in self.words[found[-1].index + 1].token_indices:
            found.append(self.words[found[-1].index + 1])
        return tuple(found)

    def source(self, token: Token) -> str | None:
        """The text `token` covers, exactly (None for a special token)."""
        return None if token.start is None else self.text[token.start : token.end]

    # Computed once per text: views ask for them once per head.
    @cached_property
    def token_units(self) -> tuple[Unit, ...]:
        return tuple(Unit(t.text, (t.index,), t.word, t.special, t.text) for t in self.tokens)

    @cached_property
    def word_units(self) -> tuple[Unit, ...]:
        groups: list[list[Word]] = []
        for w in self.words:
            if groups and w.token_indices[0] <= groups[-1][-1].token_indices[-1]:  # shares a token with the word before
                groups[-1].append(w)
            else:
                groups.append([w])
        items = [
            (self.text[g[0].start : g[-1].end], tuple(sorted({t for w in g for t in w.token_indices})), g[0].index, False)
            for g in groups
        ]
        items += [(t.text, (t.index,), None, t.special) for t in self.tokens if t.word is None]
        items.sort(key=lambda u: u[1][0])
        return tuple(Unit(*u, label) for u, label in zip(items, _labels(items)))


def _labels(items: list[tuple]) -> list[str]:
    """Each unit's label (see `Unit`)."""
    keys = [("word", same_text(text)) if word is not None else ("token", text) for text, _, word, _ in items]
    counts: dict[tuple, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    seen: dict[tuple, int] = {}
    labels = []
    for (text, indices, word, _), key in zip(items, keys):
        seen[key] = seen.get(key, 0) + 1
        if counts[key] == 1:
            labels.append(text)
        else:
            labels.append(f"{text}#{seen[key]}" if word is not None else f"{text}@{indices[0]}")
    return labels


def units(tok: Tokenization, level: str = "token") -> tuple[Unit, ...]:
    """The rows of a view, in text order: every token, or every word and special token."""
    return tok.token_units if level == "token" else tok.word_units


def load_tokenizer(path: Path) -> Tokenizer:
    """A tokenizer that neither pads nor truncates (MiniLM's tokenizer.json does both by default).
    A WordPiece folder's is built from its vocab.txt once that is proved the same (`tokenizer_vocab`)."""
    from . import tokenizer_vocab

    stamp = tokenizer_vocab.stamp(path)
    if stamp is not None and (fast := tokenizer_vocab.cached(path, stamp)) is not None:
        return check_encodes(fast, str(path), "re-download tokenizer.json")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises plain Exception on bad JSON
        raise ModelError(f"cannot read {path}: {exc}", "re-download tokenizer.json") from None
    tokenizer.no_padding()
    tokenizer.no_truncation()
    check_encodes(tokenizer, str(path), "re-download tokenizer.json")
    if stamp is not None:
        tokenizer_vocab.remember(path, tokenizer, stamp)
    return tokenizer


def check_encodes(tokenizer: Tokenizer, source: str, fix: str) -> Tokenizer:
    """`tokenizer`, once it has tokenized a word. A post-processor that names a special token the
    vocabulary lacks loads fine, then panics in Rust at the first encode (a PanicException, which
    `except Exception` misses, and a Rust backtrace on stderr): found here, at load, as a ModelError,
    with stderr silenced for the probe."""
    saved = os.dup(2)
    problem = None
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        try:
            tokenizer.encode("a")
        except BaseException as exc:  # pyo3's PanicException derives from BaseException
            if type(exc).__name__ != "PanicException":
                raise
            problem = str(exc) or "the tokenizer panicked"
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    if problem is not None:
        raise ModelError(f"{source}: the tokenizer fails on any text ({problem})", fix)
    return tokenizer


def check_unicode(text: str, what: str = "the text") -> str:
    """`text` if it is valid Unicode, else InputError naming the first bad character.

    Text that was not valid UTF-8 reaches attn as lone surrogates: Python decodes argv, and attn
    decodes stdin and files, with `surrogateescape`, which keeps each bad byte as U+DC80+byte;
    a JSON string may also spell one ("\\ud800"). Checked here, where every text and query enters.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(text[exc.start])
        problem = f"byte 0x{bad - 0xDC00:02x}, which is not UTF-8" if 0xDC80 <= bad <= 0xDCFF else f"a lone surrogate U+{bad:04X}"
        raise InputError(
            f"{what} is not valid Unicode: character {exc.start + 1} is {problem}",
            "give UTF-8 text (convert it first, e.g. iconv -f latin1 -t utf-8)",
        ) from None
    return text


def tokenize(
    tokenizer: Tokenizer, text: str, max_tokens: int | None = None, truncate: bool | None = None, add_special_tokens: bool = True
) -> Tokenization:
    """Tokenize one text with the model's special tokens ([CLS] … [SEP] for BERT; none added
    with `add_special_tokens=False`, for a chat template's text, which writes its own). A text
    longer than `max_tokens` is an error, or with `truncate`, cut to its first tokens (the
    tokenizer keeps the closing special tokens). `truncate=None`: the caller offers no way to
    truncate, so the error does not suggest one."""
    check_unicode(text)
    if not text.strip():
        raise InputError("the text is empty", 'give a sentence, e.g. "The cat sat."')
    encoding = tokenizer.encode(text, add_special_tokens=add_special_tokens)
    total = None
    if max_tokens is not None and len(encoding.ids) > max_tokens:
        if not truncate:
            offer = f", or pass `truncate=True` to keep its first {max_tokens} tokens" if truncate is not None else f" to at most {max_tokens} tokens"
            raise InputError(
                f"the text is {len(encoding.ids)} tokens long, but the model reads at most {max_tokens}",
                f"shorten the text{offer}",
            )
        total = len(encoding.ids)
        tokenizer.enable_truncation(max_tokens)
        try:
            encoding = tokenizer.encode(text, add_special_tokens=add_special_tokens)
        finally:
            tokenizer.no_truncation()
    # Special tokens written in the text itself (a chat template's <|im_start|>) are special too;
    # an unknown character that became [UNK] is not: the text there is the character, not "[UNK]".
    written = special_ids(tokenizer)
    specials = [
        bool(m) or w is None and o == (0, 0) or i in written and text[o[0] : o[1]] == piece
        for m, w, o, i, piece in zip(encoding.special_tokens_mask, encoding.word_ids, encoding.offsets, encoding.ids, encoding.tokens)
    ]
    shown = _readable(text, encoding.tokens, encoding.offsets, specials) if _pieces_are_bytes(tokenizer) else encoding.tokens
    return _tokenization(text, encoding.ids, encoding.tokens, shown, encoding.offsets, specials, total)


def special_ids(tokenizer: Tokenizer) -> frozenset[int]:
    """Ids of the tokenizer's added tokens marked special (<s>, <|im_end|>, ...)."""
    return frozenset(i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special)


_WHITESPACE_SIGNS = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def _pieces_are_bytes(tokenizer: Tokenizer) -> bool:
    """Whether the vocabulary spells tokens as bytes (`Ġcat`, `Ã©`), falls back to them
    (`<0xF0>`), or marks a word's start with `▁` (SentencePiece's Metaspace: T5, Marian): then a
    token is shown as the text it covers (`▁Le` -> `Le`)."""
    decoder = repr(tokenizer.decoder)
    return any(kind in decoder for kind in ("ByteLevel", "ByteFallback", "Metaspace"))


def _readable(text: str, pieces, offsets, specials) -> list[str]:
    """Each token as a person reads it: the text it covers, without the leading space the piece
    carries (`Ġcat` -> `cat`, `Ã©` -> `é`); whitespace alone as a sign (␣ ↵ ⇥). A character
    split into several byte tokens (an emoji) is shown on its first token, and each further
    token reads `+` and the character."""
    shown, previous_end = [], None
    for piece, (start, end), special in zip(pieces, offsets, specials):
        if special:
            shown.append(piece)
            previous_end = None
            continue
        span = text[start:end]
        if previous_end is not None and start < previous_end:  # continues the previous token's last character
            shown.append("+" + text[previous_end - 1 : previous_end])
        elif span.strip():
            shown.append(span.lstrip())
        else:
            shown.append("".join(_WHITESPACE_SIGNS.get(c, c) for c in span) or piece)
        previous_end = end
    return shown


def _tokenization(text: str, ids, pieces, shown, offsets, specials, total: int | None = None) -> Tokenization:
    """Tokens from the tokenizer's output, and the words of the text they cover: the text up to
    its last token's end is split into words (`words.segment`), each word gets the tokens that
    overlap it, and a word no token overlaps (a character the tokenizer drops) is left out."""
    covered = max((end for (_, end), special in zip(offsets, specials) if not special), default=0)
    written = tuple((start, end) for (start, end), special in zip(offsets, specials) if special and end > start)
    spans = segment(text[:covered], written)
    overlapped = [range(0) if special else overlaps(spans, start, end) for (start, end), special in zip(offsets, specials)]
    members: list[list[int]] = [[] for _ in spans]
    for i, found in enumerate(overlapped):
        for w in found:
            members[w].append(i)
    kept = [w for w in range(len(spans)) if members[w]]
    number = {w: n for n, w in enumerate(kept)}
    words = tuple(Word(n, text[spans[w][0] : spans[w][1]], *spans[w], tuple(members[w])) for n, w in enumerate(kept))
    tokens = tuple(
        Token(
            index=i,
            text=label,
            id=int(token_id),
            start=None if special else start,
            end=None if special else end,
            word=number[found[0]] if found else None,
            special=special,
            piece=None if label == piece else piece,
        )
        for i, (token_id, piece, label, (start, end), special, found) in enumerate(zip(ids, pieces, shown, offsets, specials, overlapped))
    )
    return Tokenization(text, tokens, words, total)


def decoded_piece(tokenizer: Tokenizer, before: list[int], token_id: int, context: int = 6) -> str:
    """The text `token_id` adds after the tokens `before`, as the tokenizer decodes it: decoding
    a token alone would lose a SentencePiece leading space (" Paris" -> "Paris"), so decode it
    after the last `context` tokens and keep what it adds."""
    tail = list(before[-context:])
    return tokenizer.decode(tail + [token_id], skip_special_tokens=False)[len(tokenizer.decode(tail, skip_special_tokens=False)) :]


def continued(tokenizer: Tokenizer, tok: Tokenization, ids: list[int], pieces: list[str]) -> Tokenization:
    """`tok` followed by generated tokens `ids`, whose decoded texts are `pieces`: the text grows
    by the pieces, each new token gets its character span, and the words are found again in the
    whole text (a generated piece may finish the prompt's last word)."""
    written = special_ids(tokenizer)
    text, offsets, specials = tok.text, [], []
    for token_id, piece in zip(ids, pieces):
        offsets.append((len(text), len(text) + len(piece)))
        specials.append(token_id in written)
        text += piece
    vocab = [tokenizer.id_to_token(i) or "" for i in ids]
    shown = _readable(text, vocab, offsets, specials) if _pieces_are_bytes(tokenizer) else vocab
    old = tok.tokens
    return _tokenization(
        text,
        [t.id for t in old] + list(ids),
        [t.piece or t.text for t in old] + vocab,
        [t.text for t in old] + shown,
        [(t.start, t.end) if t.start is not None else _special_span(tok, t) for t in old] + offsets,
        [t.special for t in old] + specials,
        tok.total_tokens,
    )


def _special_span(tok: Tokenization, token: Token) -> tuple[int, int]:
    """Where a special token of `tok` is written in its text (a chat's <|im_start|>), if it is:
    the text between the tokens around it; else (a [CLS] the tokenizer added) an empty span."""
    before = max((t.end for t in tok.tokens[: token.index] if t.end is not None), default=0)
    after = next((t.start for t in tok.tokens[token.index + 1 :] if t.start is not None), len(tok.text))
    piece = token.piece or token.text
    at = tok.text.find(piece, before, after)
    return (at, at + len(piece)) if at >= 0 else (before, before)
