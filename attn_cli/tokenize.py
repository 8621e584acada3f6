"""Tokenizing text with a model's `tokenizer.json`, keeping each token's place in the text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .errors import InputError, ModelError


@dataclass(frozen=True)
class Token:
    """One token. `start`/`end` are character offsets into the text (None for special tokens);
    `word` is the index of the input word it belongs to (None for special tokens)."""

    index: int
    text: str
    id: int
    start: int | None
    end: int | None
    word: int | None
    special: bool


@dataclass(frozen=True)
class Word:
    """A word of the input as the tokenizer's pre-tokenizer splits it, and its tokens."""

    index: int
    text: str
    start: int
    end: int
    token_indices: tuple[int, ...]


@dataclass(frozen=True)
class Tokenization:
    text: str
    tokens: tuple[Token, ...]
    words: tuple[Word, ...]

    @property
    def ids(self) -> np.ndarray:
        """(seq,) int64 token ids, the model's input."""
        return np.array([t.id for t in self.tokens], dtype=np.int64)


def load_tokenizer(path: Path) -> Tokenizer:
    """A tokenizer that neither pads nor truncates (MiniLM's tokenizer.json does both by default)."""
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises plain Exception on bad JSON
        raise ModelError(f"cannot read {path}: {exc}", "re-download tokenizer.json") from None
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def tokenize(tokenizer: Tokenizer, text: str, max_tokens: int | None = None) -> Tokenization:
    """Tokenize one text with the model's special tokens ([CLS] … [SEP] for BERT)."""
    if not text.strip():
        raise InputError("the text is empty", 'give a sentence, e.g. attn inspect "The cat sat." --query cat')
    encoding = tokenizer.encode(text, add_special_tokens=True)
    if max_tokens is not None and len(encoding.ids) > max_tokens:
        raise InputError(
            f"the text is {len(encoding.ids)} tokens long, but the model reads at most {max_tokens}",
            f"shorten the text to at most {max_tokens} tokens (see `attn tokens`)",
        )
    # The tokenizer's word ids may skip numbers; number the words 0, 1, 2, ... in order.
    dense = {w: n for n, w in enumerate(sorted({w for w in encoding.word_ids if w is not None}))}
    tokens = []
    for i, (token_id, piece, (start, end), word, special) in enumerate(
        zip(encoding.ids, encoding.tokens, encoding.offsets, encoding.word_ids, encoding.special_tokens_mask)
    ):
        special = bool(special) or word is None
        tokens.append(
            Token(
                index=i,
                text=piece,
                id=int(token_id),
                start=None if special else start,
                end=None if special else end,
                word=None if special else dense[word],
                special=special,
            )
        )
    return Tokenization(text, tuple(tokens), _words(text, tokens))


def _words(text: str, tokens: list[Token]) -> tuple[Word, ...]:
    by_word: dict[int, list[Token]] = {}
    for token in tokens:
        if token.word is not None:
            by_word.setdefault(token.word, []).append(token)
    words = []
    for index in sorted(by_word):
        members = by_word[index]
        start, end = min(t.start for t in members), max(t.end for t in members)
        words.append(Word(index, text[start:end], start, end, tuple(t.index for t in members)))
    return tuple(words)
