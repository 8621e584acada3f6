"""Tokenizing text with a model's `tokenizer.json`, keeping each token's place in the text."""

from __future__ import annotations

import unicodedata
from functools import cached_property
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from ..errors import InputError, ModelError
from ..records import frozen


@frozen
class Token:
    """One token. `start`/`end` are character offsets into the text (None for special tokens);
    `word` is the index of the input word it belongs to (None for special tokens). `text` is the
    token as a person reads it; `piece` as the vocabulary spells it (`Ġcat`, `Ã©`, `<0xF0>`)."""

    index: int
    text: str
    id: int
    start: int | None
    end: int | None
    word: int | None
    special: bool
    piece: str | None = None  # None when it reads as `text`


@frozen
class Word:
    """A word of the input as the tokenizer's pre-tokenizer splits it, and its tokens."""

    index: int
    text: str
    start: int
    end: int
    token_indices: tuple[int, ...]


@frozen
class Unit:
    """A row of a view: a token (`--level token`) or a word (`--level word`); special tokens
    are units of their own at both levels."""

    text: str
    token_indices: tuple[int, ...]
    word: int | None
    special: bool


@frozen
class Tokenization:
    text: str
    tokens: tuple[Token, ...]
    words: tuple[Word, ...]
    total_tokens: int | None = None  # set when the text was truncated: its length before

    @property
    def ids(self) -> np.ndarray:
        """(seq,) int64 token ids, the model's input."""
        return np.array([t.id for t in self.tokens], dtype=np.int64)

    # Computed once per text: views ask for them once per head.
    @cached_property
    def token_units(self) -> tuple[Unit, ...]:
        return tuple(Unit(t.text, (t.index,), t.word, t.special) for t in self.tokens)

    @cached_property
    def word_units(self) -> tuple[Unit, ...]:
        items = [Unit(w.text, w.token_indices, w.index, False) for w in self.words]
        items += [Unit(t.text, (t.index,), None, True) for t in self.tokens if t.special]
        return tuple(sorted(items, key=lambda u: u.token_indices[0]))


def units(tok: Tokenization, level: str = "token") -> tuple[Unit, ...]:
    """The rows of a view, in text order: every token, or every word and special token."""
    return tok.token_units if level == "token" else tok.word_units


def load_tokenizer(path: Path) -> Tokenizer:
    """A tokenizer that neither pads nor truncates (MiniLM's tokenizer.json does both by default).
    A WordPiece folder's is built from its vocab.txt once that is proved the same (`tokenizer_vocab`)."""
    from . import tokenizer_vocab

    stamp = tokenizer_vocab.stamp(path)
    if stamp is not None and (fast := tokenizer_vocab.cached(path, stamp)) is not None:
        return fast
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises plain Exception on bad JSON
        raise ModelError(f"cannot read {path}: {exc}", "re-download tokenizer.json") from None
    tokenizer.no_padding()
    tokenizer.no_truncation()
    if stamp is not None:
        tokenizer_vocab.remember(path, tokenizer, stamp)
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
        raise InputError("the text is empty", 'give a sentence, e.g. attn inspect "The cat sat." --query cat')
    encoding = tokenizer.encode(text, add_special_tokens=add_special_tokens)
    total = None
    if max_tokens is not None and len(encoding.ids) > max_tokens:
        if not truncate:
            offer = f", or add --truncate to keep its first {max_tokens} tokens" if truncate is not None else f" to at most {max_tokens} tokens"
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
    word_of = _word_indices(text, encoding.offsets, encoding.word_ids, specials)
    shown = _readable(text, encoding.tokens, encoding.offsets, specials) if _pieces_are_bytes(tokenizer) else encoding.tokens
    tokens = tuple(
        Token(
            index=i,
            text=label,
            id=int(token_id),
            start=None if special else start,
            end=None if special else end,
            word=word_of[i],
            special=special,
            piece=None if label == piece else piece,
        )
        for i, (token_id, piece, label, (start, end), special) in enumerate(zip(encoding.ids, encoding.tokens, shown, encoding.offsets, specials))
    )
    return Tokenization(text, tokens, _words(text, tokens), total)


def special_ids(tokenizer: Tokenizer) -> frozenset[int]:
    """Ids of the tokenizer's added tokens marked special (<s>, <|im_end|>, ...)."""
    return frozenset(i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special)


_WHITESPACE_SIGNS = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def _pieces_are_bytes(tokenizer: Tokenizer) -> bool:
    """Whether the vocabulary spells tokens as bytes (`Ġcat`, `Ã©`) or falls back to them
    (`<0xF0>`, with `▁` for a space): then a token is shown as the text it covers."""
    decoder = repr(tokenizer.decoder)
    return "ByteLevel" in decoder or "ByteFallback" in decoder


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


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS"


def _word_indices(text: str, offsets, word_ids, specials) -> list[int | None]:
    """The word of each token, the same way for every kind of tokenizer.

    A new word starts after whitespace, at punctuation, or where the tokenizer's own word id
    changes (BERT's pre-tokenizer splits words; Llama's SentencePiece-style tokenizers report
    the whole text as one). Byte-level and SentencePiece tokens carry their leading space
    (" cat"); a token that is only whitespace belongs to the word after it.
    """
    words: list[int | None] = [None] * len(offsets)
    count, previous_end, previous_id, waiting = 0, None, None, []
    for i, ((start, end), word_id, special) in enumerate(zip(offsets, word_ids, specials)):
        if special:
            if waiting:  # whitespace before a special token (a chat's "\n<|im_start|>") is a word of its own
                count += 1
                for j in waiting:
                    words[j] = count - 1
                waiting = []
            previous_end = None
            continue
        piece = text[start:end]
        core = start + len(piece) - len(piece.lstrip())
        if previous_end is not None and start < previous_end:  # more bytes of the same character
            words[i] = count - 1
            previous_end = max(previous_end, end)
            continue
        if core == end:  # whitespace only: joins the next word
            waiting.append(i)
            previous_end = None
            continue
        # A combining mark (a decomposed é's accent) belongs to the letter before it, though
        # byte-level pre-tokenizers split it off as a word of its own.
        continues_letter = previous_end == core and unicodedata.category(text[core]).startswith("M")
        new_word = not continues_letter and (
            previous_end is None
            or core > previous_end
            or word_id != previous_id
            or _is_punctuation(text[core])
            or _is_punctuation(text[previous_end - 1])
        )
        if new_word:
            count += 1
        for j in waiting + [i]:
            words[j] = count - 1
        waiting, previous_end, previous_id = [], end, word_id
    for j in waiting:  # trailing whitespace: part of the last word
        words[j] = count - 1 if count else None
    return words


def _words(text: str, tokens: tuple[Token, ...]) -> tuple[Word, ...]:
    by_word: dict[int, list[Token]] = {}
    for token in tokens:
        if token.word is not None:
            by_word.setdefault(token.word, []).append(token)
    words = []
    for index in sorted(by_word):
        members = by_word[index]
        start, end = min(t.start for t in members), max(t.end for t in members)
        span = text[start:end]
        start += len(span) - len(span.lstrip())  # a word's text has no leading space
        words.append(Word(index, text[start:end].rstrip(), start, start + len(text[start:end].rstrip()), tuple(t.index for t in members)))
    return tuple(words)


def decoded_piece(tokenizer: Tokenizer, before: list[int], token_id: int, context: int = 6) -> str:
    """The text `token_id` adds after the tokens `before`, as the tokenizer decodes it: decoding
    a token alone would lose a SentencePiece leading space (" Paris" -> "Paris"), so decode it
    after the last `context` tokens and keep what it adds."""
    tail = list(before[-context:])
    return tokenizer.decode(tail + [token_id], skip_special_tokens=False)[len(tokenizer.decode(tail, skip_special_tokens=False)) :]


def continued(tokenizer: Tokenizer, tok: Tokenization, ids: list[int], pieces: list[str]) -> Tokenization:
    """`tok` followed by generated tokens `ids`, whose decoded texts are `pieces`: the text grows
    by the pieces, each new token gets its character span and words continue the count."""
    written = special_ids(tokenizer)
    text, offsets, specials = tok.text, [], []
    for token_id, piece in zip(ids, pieces):
        offsets.append((len(text), len(text) + len(piece)))
        specials.append(token_id in written)
        text += piece
    first_word = len(tok.words)
    local = _word_indices(text, offsets, [0] * len(ids), specials)
    vocab = [tokenizer.id_to_token(i) or "" for i in ids]
    shown = _readable(text, vocab, offsets, specials) if _pieces_are_bytes(tokenizer) else vocab
    tokens = list(tok.tokens)
    for token_id, piece, label, (start, end), special, word in zip(ids, vocab, shown, offsets, specials, local):
        tokens.append(
            Token(len(tokens), label, int(token_id), None if special else start, None if special else end,
                  None if word is None else first_word + word, special, piece=None if label == piece else piece)
        )
    tokens = tuple(tokens)
    return Tokenization(text, tokens, _words(text, tokens), tok.total_tokens)
