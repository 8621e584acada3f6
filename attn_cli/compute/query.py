"""Finding the query (the token or word whose attention is inspected) in a tokenized text."""

from __future__ import annotations

import difflib
import re

from ..errors import InputError, QueryNotFound
from ..loading.tokenizer import Tokenization, check_unicode
from ..loading.words import same_text, without_accents
from ..records import frozen

_OCCURRENCE = re.compile(r"^(?P<text>.+?)#(?P<n>\d+)$")
_POSITION = re.compile(r"^@(?P<n>-?\d+)$")


@frozen
class Query:
    """The resolved query. A word split into several tokens has several `token_indices`;
    its attention row is the mean of theirs. `occurrence` is 1-based among `occurrences`
    matches of `text` (both None for a query given by position)."""

    text: str
    token_indices: tuple[int, ...]
    occurrence: int | None
    occurrences: int | None
    accents_ignored: bool = False  # found only once accents were set aside ("cafe" for "Café")


def resolve_query(tok: Tokenization, query: str | None = None, query_index: int | None = None, what: str = "query") -> Query:
    """`query`: a word ("making"), a word's n-th occurrence ("dog#2") or a position ("@5").
    `query_index`: a token position (0 = the first token; negative counts from the end).
    `what` the word is, for messages ("key")."""
    if query is not None and query_index is not None:
        raise InputError("both a query word and a query index were given", "give either `query` or `query_index`")
    if query is None and query_index is None:
        if not tok.words:
            raise InputError("no query given, and the text has no words, only special tokens", "add `query_index=N` (see `tokenize()`)")
        raise InputError(
            "no query given",
            f"add `query=WORD` (one of: {_word_list(tok)}) or `query_index=N`",
        )
    if query is not None and (m := _POSITION.match(query.strip())):
        query_index = _number(m["n"])
    if query_index is not None:
        return _by_position(tok, query_index)
    assert query is not None
    query = check_unicode(query, "the query").strip()
    if not query:
        raise InputError(f"the {what} is empty", f"give a word of the text ({_word_list(tok)})" if tok.words else "the text has no words: give `query_index=N`")
    occurrence = None
    if m := _OCCURRENCE.match(query):
        query, occurrence = m["text"], _number(m["n"])
        if occurrence < 1:
            raise InputError(f"occurrence #{occurrence} is not valid", f"count occurrences from 1: {query}#1")
    matches, accents_ignored = _find(tok, query, same_text), False
    if not matches:
        matches, accents_ignored = _find(tok, query, without_accents), True
    if not matches and not tok.words:
        raise QueryNotFound(
            f"{_short(query)!r} is not a word of the text: the text has no words, only special tokens",
            "give a text with words, or a token position with `query_index` (see `tokenize()`)",
        )
    if not matches:
        _check_cut(tok, query)
        close = difflib.get_close_matches(same_text(query), [same_text(w.text) for w in tok.words], n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(dict.fromkeys(close))}? " if close else ""
        raise QueryNotFound(
            f"{_short(query)!r} is not a word of the text; {hint}the words are: {_word_list(tok)}",
            "pick one of those words, or a token position with `query_index` (see `tokenize()`)",
            candidates=[w.text for w in tok.words],
        )
    if occurrence is not None and occurrence > len(matches):
        times = "once" if len(matches) == 1 else f"{len(matches)} times"
        raise QueryNotFound(
            f"{query!r} occurs {times} in the text, so there is no occurrence #{occurrence}",
            f"use {query}#1" + ("" if len(matches) == 1 else f" … {query}#{len(matches)}"),
            candidates=[f"{query}#{n}" for n in range(1, len(matches) + 1)],
        )
    first, last = matches[(occurrence or 1) - 1]
    text = tok.text[tok.words[first].start : tok.words[last].end]
    return Query(text, _tokens_of(tok, first, last), occurrence or 1, len(matches), accents_ignored)


def check_rankable(tok: Tokenization, q: Query, causal: bool, include_special: bool) -> None:
    """With --no-special, a decoder's query must see a word that is not special: `<s>` (or any
    query before the first word) sees only special tokens, which leaves nothing to rank."""
    if include_special:
        return
    seen = tok.tokens[: q.token_indices[-1] + 1] if causal else tok.tokens
    if all(t.special for t in seen):
        raise InputError(
            f"the query {q.text!r} sees only special tokens ({', '.join(dict.fromkeys(t.text for t in seen))}), "
            "so `include_special=False` leaves no word to rank",
            "use `include_special=True`, or pick a later query",
        )


def _check_cut(tok: Tokenization, query: str) -> None:
    """A query that is in the part of the text --truncate cut off: say so, not "not a word"."""
    if tok.total_tokens is None or not tok.words:
        return
    rest = tok.text[tok.words[-1].end :]
    if same_text(query) in same_text(rest) or without_accents(query) in without_accents(rest):
        raise QueryNotFound(
            f"{query!r} is in the part of the text that truncation (`truncate=True`) cut off: the model reads its first "
            f"{len(tok.tokens)} of {tok.total_tokens} tokens, up to {tok.words[-1].text!r}",
            "pick a word before the cut, or shorten the text so that the word comes earlier",
            candidates=[w.text for w in tok.words],
        )


def _by_position(tok: Tokenization, index: int) -> Query:
    n = len(tok.tokens)
    if not -n <= index < n:
        raise InputError(
            f"token position {index} is out of range: the text has {n} tokens (0 … {n - 1})",
            "pick a position from `tokenize()`",
        )
    token = tok.tokens[index % n]
    return Query(token.text, (token.index,), None, None)


def _find(tok: Tokenization, query: str, form) -> list[tuple[int, int]]:
    """(first, last) word of each run of consecutive words whose text is `query` once both are
    put in `form` (same_text or without_accents: case, Unicode form, apostrophes ’ and ', runs of
    whitespace do not matter). A run may be one word or several ("New York", "well-known")."""
    target = form(query)
    matches = []
    words = tok.words
    for i, first in enumerate(words):
        for last in words[i:]:
            span = form(tok.text[first.start : last.end])
            if span == target:
                matches.append((first.index, last.index))
                break
            if len(span) >= len(target):
                break
    return matches


def _tokens_of(tok: Tokenization, first: int, last: int) -> tuple[int, ...]:
    """The tokens of words first … last, in order, each once (neighbouring words may share one)."""
    return tuple(sorted({t for w in tok.words[first : last + 1] for t in w.token_indices}))


def _number(digits: str) -> int:
    """A position or occurrence; one of thousands of digits is refused (Python will not convert it)."""
    if len(digits.lstrip("-")) > 100:
        raise InputError(f"the number {_short(digits)} is out of range", "give a token position or occurrence from `tokenize()`")
    return int(digits)


def _short(word: str, limit: int = 40) -> str:
    """`word` as a message shows it: a 10,000-character word would make a 10,000-character line."""
    return word if len(word) <= limit else f"{word[: limit // 2]}…{word[-(limit // 2) :]}"


def _word_list(tok: Tokenization, limit: int = 30) -> str:
    names = list(dict.fromkeys(_short(w.text) for w in tok.words))
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")
