"""`stats` and `compare`: what each head does over many texts, and how one query's attention
moves between two texts. Result types and their JSON form ($defs/stats, $defs/compare).

The math is `analysis.py`'s; this module runs the forward pass, feeds it one layer at a time,
and keeps only small per-head results, never a layer's full map longer than it is needed.
"""

from __future__ import annotations

import io
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import AttnError, InputError, QueryNotFound
from ..loading.model import Model
from ..loading.tokenizer import Tokenization, tokenize
from ..maths import analysis
from .inspect import model_info, select_layers
from .query import resolve_query
from .result import SCHEMA_VERSION, ModelInfo, QueryInfo, floats

# JSON field -> the key `analysis.head_stats` uses, in the order the JSON lists them.
STAT_FIELDS = {
    "entropy": "entropy", "special": "special-token", "first_token": "first-token", "punctuation": "punctuation",
    "previous_token": "previous-token", "self": "self", "next_token": "next-token",
}

# --- Inputs ----------------------------------------------------------------------------------


def collect_texts(text: str | None, file: str | None) -> list[tuple[int | None, str]]:
    """The texts of `attn stats`: TEXT (already read, `-` resolved), or each non-blank line of
    FILE (`-` for stdin) as (line number, text). Exactly one of the two must be given."""
    if (text is None) == (file is None):
        raise InputError("give either TEXT or --file FILE", 'e.g. attn stats "The cat sat." or attn stats --file sentences.txt')
    if text is not None:
        return [(None, text)]
    texts = [(n, line) for n, line in enumerate(_read_lines(file), start=1) if line.strip()]
    if not texts:
        raise InputError(f"{_file_name(file)} has no text: every line is blank", "put one text on each line")
    return texts


def _file_name(file: str) -> str:
    return "stdin" if file == "-" else file


def _read_lines(file: str) -> list[str]:
    """The lines of FILE as a text file has them (split at \\n, \\r\\n or \\r, as `attn batch` and
    editors count them; not at U+2028 or a form feed, as str.splitlines would), BOM dropped.
    Bytes that are not UTF-8 stay as surrogates, so that their line fails by number."""
    if file == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("--file is - but nothing is piped to stdin", "pipe the lines in (attn stats --file - < texts.txt) or give a file name")
        buffer = getattr(sys.stdin, "buffer", None)
        data = buffer.read().decode("utf-8", errors="surrogateescape") if buffer is not None else sys.stdin.read()
    else:
        try:
            with open(file, encoding="utf-8", errors="surrogateescape") as handle:
                data = handle.read()
        except OSError as exc:
            raise InputError(f"cannot read {file}: {exc.strerror or exc}", "check the file name") from None
    return [line.rstrip("\r\n") for line in io.StringIO(data.removeprefix("\ufeff"), newline=None)]


def _relabel(exc: AttnError, prefix: str) -> AttnError:
    """The same kind of error (fix and candidates kept) with `prefix` saying which input it is about."""
    if isinstance(exc, QueryNotFound):
        return QueryNotFound(prefix + exc.message, exc.fix, exc.candidates)
    return type(exc)(prefix + exc.message, exc.fix)


def _tokenize(model: Model, text: str, prefix: str) -> Tokenization:
    try:
        return tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
    except AttnError as exc:
        raise _relabel(exc, prefix) from None


# --- attn stats ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NamedHead:
    """A head that passes the threshold for one kind (`analysis.HEAD_KINDS`)."""

    layer: int
    head: int
    kind: str
    value: float


@dataclass(frozen=True)
class StatsResult:
    """Per-head statistics pooled over every query row of every text.
    layers[l]: kind -> (heads,) mean, for the kinds of `analysis.head_stats` (incl. "entropy")."""

    model: ModelInfo
    texts: int
    tokens: int
    threshold: float
    layers: tuple[dict[str, np.ndarray], ...]
    named: tuple[NamedHead, ...]

    def strongest(self, layer: int) -> tuple[list[str], np.ndarray]:
        """Each head's heaviest kind (first in HEAD_KINDS on ties) and its value: ([heads], (heads,))."""
        masses = np.stack([self.layers[layer][k] for k in analysis.HEAD_KINDS])  # (kinds, heads)
        best = masses.argmax(axis=0)
        return [analysis.HEAD_KINDS[k] for k in best], masses[best, np.arange(masses.shape[1])]

    def to_json(self) -> dict:
        def head(stats: dict[str, np.ndarray], h: int) -> dict:
            return {"head": h, **{name: floats(np.float32(stats[key][h])) for name, key in STAT_FIELDS.items()}}

        return {
            "schema_version": SCHEMA_VERSION,
            "model": vars(self.model),
            "texts": self.texts,
            "tokens": self.tokens,
            "threshold": self.threshold,
            "layers": [{"layer": layer, "heads": [head(stats, h) for h in range(self.model.heads)]} for layer, stats in enumerate(self.layers)],
            "named": [{"layer": n.layer, "head": n.head, "kind": n.kind, "value": floats(np.float32(n.value))} for n in self.named],
        }


def punctuation_mask(tok: Tokenization) -> np.ndarray:
    """bool (seq,): tokens whose text (read from the input, so without ## or a leading-space
    marker) is all Unicode punctuation (categories P*). Special tokens are not punctuation."""
    def is_punct(t) -> bool:
        piece = "" if t.special else tok.text[t.start : t.end].strip()
        return bool(piece) and all(unicodedata.category(c).startswith("P") for c in piece)

    return np.array([is_punct(t) for t in tok.tokens], dtype=bool)


def text_layer_stats(model: Model, tok: Tokenization) -> Iterable[analysis.Stats]:
    """`analysis.head_stats` of each layer in turn for one text. Each layer's full
    (heads, seq, seq) map lives only while its statistics are computed."""
    special = np.array([t.special for t in tok.tokens], dtype=bool)
    punctuation = punctuation_mask(tok)
    for trace in model.trace(tok.ids):
        weights = trace.rows()[2]  # (heads, seq, seq); scores are not needed
        yield analysis.head_stats(weights, special, punctuation)


def _float64(stats: analysis.Stats) -> analysis.Stats:
    # merge_stats keeps its first input's dtype: pooling a float64 running total with each new
    # text loses no digits however many texts there are.
    return {kind: (mean.astype(np.float64), count) for kind, (mean, count) in stats.items()}


def head_statistics(model: Model, texts: Sequence[tuple[int | None, str]], threshold: float = 0.5) -> StatsResult:
    """Pool `head_stats` over `texts` ((line number or None, text) pairs) and name the heads
    whose mean mass for a kind is ≥ threshold. Every text is tokenized before any forward pass,
    so a bad line fails fast."""
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"--threshold {threshold} is not valid", "give a mass between 0 and 1, e.g. --threshold 0.5")
    toks = [_tokenize(model, text, "" if line is None else f"line {line}: ") for line, text in texts]
    pooled: list[analysis.Stats] | None = None
    for tok in toks:
        per_layer = [_float64(s) for s in text_layer_stats(model, tok)]
        pooled = per_layer if pooled is None else [analysis.merge_stats([p, s]) for p, s in zip(pooled, per_layer)]
    assert pooled is not None  # collect_texts never returns an empty list
    layers = tuple(analysis.stat_means(s) for s in pooled)
    named = [
        NamedHead(layer, head, kind, value)
        for layer, means in enumerate(layers)
        for head, kind, value in analysis.classify_heads(means, threshold)
    ]
    named.sort(key=lambda n: -n.value)  # stable: ties keep layer order
    return StatsResult(model_info(model), len(toks), sum(len(t.tokens) for t in toks), threshold, layers, tuple(named))


# --- attn compare ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareLayer:
    """One layer's word weights of the query on the alignment's n pairs: weights_a, weights_b,
    diff = weights_b − weights_a, each (heads, n) (0 where a side has no word); change (heads,)
    = Σ|diff|, the L1 norm `analysis.most_changed_heads` ranks by."""

    layer: int
    weights_a: np.ndarray
    weights_b: np.ndarray
    diff: np.ndarray
    change: np.ndarray

    @property
    def mean_diff(self) -> np.ndarray:
        """(n,): diff averaged over the layer's heads."""
        return self.diff.mean(axis=0)

    @property
    def top_head(self) -> int:
        """The head whose attention moved most (the first on ties)."""
        return int(np.argmax(self.change))

    @property
    def most_moved(self) -> int:
        """The aligned pair whose mean weight over heads moved most (|mean_diff|)."""
        return int(np.argmax(np.abs(self.mean_diff)))


@dataclass(frozen=True)
class CompareResult:
    model: ModelInfo
    text_a: str
    text_b: str
    query_a: QueryInfo
    query_b: QueryInfo
    words_a: tuple[str, ...]  # words and special tokens, in token order
    words_b: tuple[str, ...]
    alignment: tuple[tuple[int | None, int | None], ...]
    layers: tuple[CompareLayer, ...]
    most_changed: tuple[tuple[int, int, float], ...]  # (layer, head, change), every pair, most first
    top: int  # how many of most_changed the table view details
    # Decoders: whether the query may see each word of A and of B (views show the rest as
    # masked, as inspect does); empty for encoders, which see every word.
    seen_a: tuple[bool, ...] = ()
    seen_b: tuple[bool, ...] = ()

    def layer(self, layer: int) -> CompareLayer:
        return next(entry for entry in self.layers if entry.layer == layer)

    def to_json(self) -> dict:
        def query(q: QueryInfo) -> dict:
            return {"text": q.text, "token_indices": list(q.token_indices)}

        def head(c: CompareLayer, h: int) -> dict:
            arrays = {"weights_a": c.weights_a[h], "weights_b": c.weights_b[h], "diff": c.diff[h]}
            return {"head": h, **{name: floats(x) for name, x in arrays.items()}, "change": floats(np.float32(c.change[h]))}

        return {
            "schema_version": SCHEMA_VERSION,
            "model": vars(self.model),
            "text_a": self.text_a,
            "text_b": self.text_b,
            "query_a": query(self.query_a),
            "query_b": query(self.query_b),
            "alignment": [list(pair) for pair in self.alignment],
            "words_a": list(self.words_a),
            "words_b": list(self.words_b),
            "layers": [{"layer": c.layer, "heads": [head(c, h) for h in range(len(c.change))]} for c in self.layers],
            "most_changed": [{"layer": layer, "head": head, "change": floats(np.float32(change))} for layer, head, change in self.most_changed],
        }


def word_entries(tok: Tokenization) -> list[tuple[str, tuple[int, ...]]]:
    """(text, token indices) per word in token order, each special token its own entry, so the
    groups cover every token once (the groups of `analysis.to_words`)."""
    entries, seen = [], set()
    for t in tok.tokens:
        if t.word is None:
            entries.append((t.text, (t.index,)))
        elif t.word not in seen:
            seen.add(t.word)
            word = tok.words[t.word]
            entries.append((word.text, word.token_indices))
    return entries


def _query(tok: Tokenization, query: str, which: str, option: str) -> QueryInfo:
    """resolve_query, its errors saying which text they are about (`which`: "A" or "B") and,
    for a missing word, which option to change (`compare` has no --query-index to suggest)."""
    try:
        q = resolve_query(tok, query)
    except QueryNotFound as exc:
        occurrence = "#" in query  # WORD#N beyond its occurrences: the library's fix lists them
        fix = exc.fix if occurrence else f"pick a word of text {which} for {option} (or @N for token position N; see `attn tokens`)"
        raise QueryNotFound(f"not found in text {which}: {exc.message}", fix, exc.candidates) from None
    except AttnError as exc:
        raise _relabel(exc, f"text {which}: ") from None
    return QueryInfo(q.text, q.token_indices, q.occurrence, q.occurrences)


def _query_words(trace, rows: Sequence[int], groups) -> np.ndarray:
    """The query's attention to each word: (heads, words). A query of several tokens (a split
    word) averages its rows, as `inspect` does; a word's weight sums its tokens."""
    weights = trace.rows(list(rows))[2].mean(axis=1)  # (heads, seq)
    return analysis.to_words(weights, groups)


def compare(model: Model, text_a: str, text_b: str, query: str, query_b: str | None = None, layer: str | int = "all", top: int = 5) -> CompareResult:
    """The query's word weights in text A and in text B (`query_b`, else the same query), per
    selected layer and head, on the case-insensitive word alignment of the two texts."""
    if top < 1:
        raise InputError(f"--top {top} is not valid", "give --top 1 or more")
    s = model.spec
    layers = select_layers(layer, s.layers)
    tok_a, tok_b = _tokenize(model, text_a, "text A: "), _tokenize(model, text_b, "text B: ")
    q_a, q_b = _query(tok_a, query, "A", "--query"), _query(tok_b, query if query_b is None else query_b, "B", "--query-b")
    entries_a, entries_b = word_entries(tok_a), word_entries(tok_b)
    alignment = analysis.align_words([w for w, _ in entries_a], [w for w, _ in entries_b])
    groups_a, groups_b = [g for _, g in entries_a], [g for _, g in entries_b]

    results = []
    # The two forward passes advance together, so only one layer of each is held at a time.
    traces = zip(model.trace(tok_a.ids), model.trace(tok_b.ids))
    for trace_a, trace_b in traces:
        if trace_a.layer in layers:
            wa = _query_words(trace_a, q_a.token_indices, groups_a)
            wb = _query_words(trace_b, q_b.token_indices, groups_b)
            a, b, diff = analysis.compare_rows(wa, wb, alignment)
            results.append(CompareLayer(trace_a.layer, a, b, diff, np.abs(diff.astype(np.float64)).sum(axis=-1)))
        if trace_a.layer >= layers[-1]:
            break  # later layers cannot change what was asked
    return CompareResult(
        model_info(model), tok_a.text, tok_b.text, q_a, q_b, tuple(w for w, _ in entries_a), tuple(w for w, _ in entries_b),
        tuple(alignment), tuple(results), _rank(results, s.heads), top,
        *((_seen(groups_a, q_a), _seen(groups_b, q_b)) if s.causal else ()),
    )


def _seen(groups, q: QueryInfo) -> tuple[bool, ...]:
    """Per word (a group of token indices): whether a decoder's query sees it."""
    return tuple(g[0] <= q.token_indices[-1] for g in groups)


def _rank(layers: Sequence[CompareLayer], heads: int) -> tuple[tuple[int, int, float], ...]:
    """Every (layer, head) pair, most changed first: `most_changed_heads` over the selected
    layers' diffs stacked into (layers·heads, n); ties keep layer, then head order."""
    stacked = np.concatenate([c.diff for c in layers])
    order = analysis.most_changed_heads(stacked)
    return tuple((layers[k // heads].layer, k % heads, float(layers[k // heads].change[k % heads])) for k in order)
