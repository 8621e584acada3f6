"""The per-shard function of `attn stats` and the engines that map it over a corpus.

A corpus is read line by line and cut into shards of SHARD_LINES texts. `shard_sums(model,
shard)` turns one shard into a `HeadSums`; the engines (this process, worker processes, Ray:
`stats_ray.py`) map it over the shards and merge the sums in shard order, so every engine
gives the same numbers. At most workers·AHEAD shards are read ahead of the merge, so memory
does not grow with the corpus: the parent holds O(workers · AHEAD · SHARD_LINES · line length)
of text and one HeadSums (O(layers · heads · metrics)) per shard in flight.
"""

from __future__ import annotations

import io
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..errors import AttnError, InputError
from .workers import chunks, ordered_map

if TYPE_CHECKING:
    import numpy as np

    from ..loading.model import Model
    from ..loading.tokenizer import Tokenization
    from ..maths.headsums import DetectorOptions, HeadSums

SHARD_LINES = 32  # texts per shard: few round trips to a worker, a progress count that moves
AHEAD = 3  # shards in flight per worker
INDUCTION_SEQUENCES = 10  # repeated random-token prompts for the induction score
INDUCTION_LENGTH = 25  # random tokens in each half

Shard = list[tuple[int | None, str]]  # (line number, or None for a lone TEXT; text)


# --- Reading the corpus ----------------------------------------------------------------------


def iter_lines(file: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line of `file` (`-`: stdin), read lazily. Lines end
    at \n, \r\n or \r (as `attn batch` and editors count them; not at U+2028 or a form feed, as
    str.splitlines would); a BOM is dropped. Bytes that are not UTF-8 stay as surrogates, so that
    their line fails by number."""
    if file == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("--file is - but nothing is piped to stdin", "pipe the lines in (attn stats --file - < texts.txt) or give a file name")
        buffer = getattr(sys.stdin, "buffer", None)
        handle = sys.stdin if buffer is None else io.TextIOWrapper(buffer, encoding="utf-8-sig", errors="surrogateescape", newline=None)
        yield from _numbered(handle)
        return
    try:
        handle = open(file, encoding="utf-8-sig", errors="surrogateescape", newline=None)
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}", "check the file name") from None
    with handle:
        yield from _numbered(handle)


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n").removeprefix("\ufeff")
        if text.strip():
            yield n, text


def shards(texts: Iterable[tuple[int, str]]) -> Iterator[Shard]:
    return chunks(texts, SHARD_LINES)


# --- The per-shard function ------------------------------------------------------------------


def punctuation_mask(tok: Tokenization) -> np.ndarray:
    """bool (seq,): tokens whose text (read from the input, so without ## or a leading-space
    marker) is all Unicode punctuation (categories P*). Special tokens are not punctuation."""
    import numpy as np

    def is_punct(t) -> bool:
        piece = "" if t.special else tok.text[t.start : t.end].strip()
        return bool(piece) and all(unicodedata.category(c).startswith("P") for c in piece)

    return np.array([is_punct(t) for t in tok.tokens], dtype=bool)


def add_text(model: Model, tok: Tokenization, options: DetectorOptions, into: HeadSums) -> None:
    """One text's forward pass, each layer's maps reduced to sums as soon as they exist."""
    for trace in model.trace(tok.ids):
        add_layer(model, tok, trace, options, into)
    add_count(tok, into)


def add_packed(model: Model, toks: list[Tokenization], options: DetectorOptions, into: HeadSums) -> None:
    """Several texts in one packed forward pass (`Model.trace_packed_layers`, as `attn batch`
    packs lines), each text's maps reduced to its sums, layer by layer: the same sums as
    `add_text` of each (the traces are those of each text alone), added in another order."""
    for traces in model.trace_packed_layers([tok.ids for tok in toks]):
        for tok, trace in zip(toks, traces, strict=True):
            add_layer(model, tok, trace, options, into)
    for tok in toks:
        add_count(tok, into)


def add_layer(model: Model, tok: Tokenization, trace, options: DetectorOptions, into: HeadSums) -> None:
    """One layer of one text (its `LayerTrace`) reduced to sums."""
    import numpy as np

    from ..maths.headsums import layer_sums, visible_keys

    ids = tok.ids
    special = np.array([t.special for t in tok.tokens], dtype=bool)
    visible = visible_keys(len(ids), model.spec.causal, model.spec.window(trace.layer))  # Gemma 3: each layer its own window
    parts, histogram = layer_sums(trace.rows()[2], ids, special, punctuation_mask(tok), visible, options)
    into.add_layer(trace.layer, parts, histogram)


def add_count(tok: Tokenization, into: HeadSums) -> None:
    into.texts += 1
    into.tokens += len(tok.ids)


def shard_sums(model: Model, shard: Shard, options: DetectorOptions) -> HeadSums:
    """The sums of one shard's texts, packed into forward passes where the model packs (see
    `packed.pack_groups`); a bad line raises its error, with its line number. Every engine runs
    this."""
    from ..loading.tokenizer import tokenize
    from ..maths.headsums import HeadSums
    from .packed import pack_groups

    toks = []
    for line, text in shard:
        try:
            toks.append(tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions))
        except AttnError as exc:
            raise exc if line is None else exc.prefixed(f"line {line}: ") from None
    sums = HeadSums(model.spec.layers, model.spec.heads)
    for group in pack_groups(model, [len(tok.ids) for tok in toks]):
        if len(group) == 1:
            add_text(model, toks[group[0]], options, sums)
        else:
            add_packed(model, [toks[i] for i in group], options, sums)
    return sums


def induction_sums(model: Model, options: DetectorOptions, seed: int) -> HeadSums:
    """Induction scores on INDUCTION_SEQUENCES seeded repeated random-token prompts, each
    wrapped in the model's own special tokens ([CLS] … [SEP], or BOS). Random tokens are drawn
    from the vocabulary less special and bracketed tokens ([unused7])."""
    import numpy as np

    from ..maths import headsums

    sums = headsums.HeadSums(model.spec.layers, model.spec.heads)
    wrapper = model.tokenizer.encode("", add_special_tokens=True).ids
    special = {t.content for t in model.tokenizer.get_added_tokens_decoder().values() if t.special}
    vocab = np.array(sorted(i for t, i in model.tokenizer.get_vocab().items() if t not in special and not (t.startswith("[") and t.endswith("]"))))
    prompts = headsums.repeated_random_tokens(vocab, INDUCTION_LENGTH, INDUCTION_SEQUENCES, seed)
    lead = len(wrapper) if model.spec.causal else min(1, len(wrapper))  # BERT: [CLS] first, [SEP] last
    for prompt in prompts:
        ids = np.array([*wrapper[:lead], *prompt, *wrapper[lead:]], dtype=np.int64)
        for trace in model.trace(ids):
            sums.add_layer(trace.layer, headsums.induction_sums(trace.rows()[2], ids, options), np.zeros((model.spec.heads, headsums.HISTOGRAM_BINS), np.int64))
    return sums


# --- Engines: this process, worker processes -------------------------------------------------


def run_local(model: Model, parts: Iterable[Shard], options: DetectorOptions) -> Iterator[HeadSums]:
    for shard in parts:
        yield shard_sums(model, shard, options)


def run_processes(model_path: str | None, parts: Iterable[Shard], options: DetectorOptions, workers: int) -> Iterator[HeadSums]:
    """Shards to `workers` processes (compute/workers.py, each loads the model once), results in
    shard order, at most workers·AHEAD shards in flight."""
    return ordered_map(_load_worker, (model_path, options), _worker_shard, parts, workers, AHEAD)


def _load_worker(model_path: str | None, options: DetectorOptions) -> tuple:
    from ..loading.model import load_model

    return load_model(model_path, release_weights=False), options


def _worker_shard(state: tuple, shard: Shard) -> HeadSums:
    model, options = state
    return shard_sums(model, shard, options)
