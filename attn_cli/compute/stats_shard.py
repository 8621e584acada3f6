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
from typing import TYPE_CHECKING, NamedTuple

from ..errors import AttnError, InputError
from .workers import chunks, ordered_map

if TYPE_CHECKING:
    import numpy as np

    from ..loading.model import Model
    from ..loading.tokenizer import Tokenization
    from ..maths.headsums import DetectorOptions, HeadSums, LayerSums

SHARD_LINES = 32  # texts per shard: few round trips to a worker, a progress count that moves
AHEAD = 3  # shards in flight per worker
INDUCTION_SEQUENCES = 10  # repeated random-token prompts for the induction score
INDUCTION_LENGTH = 25  # random tokens in each half

Shard = list[tuple[int | None, str]]  # (line number, or None for a lone TEXT; text)


class CorpusOptions(NamedTuple):
    """What `shard_sums` measures besides the attention statistics, the same in every engine."""

    detectors: DetectorOptions  # TransformerLens' exclusions, for the detector scores
    ablate: str | None = None  # `stats --ablate`: "zero" or "mean", every head ablated alone on every text (`ablate.head_sweep`)
    knockout: int | None = None  # `stats --knockout W`: every word knocked out on every text, windows of W layers (`knockout.source_changes`)
    contributions: str | None = None  # `stats --contributions METHOD`: each text's contribution matrices (`contribution_sums`)


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


# A text of at most this many tokens has its q and k kept until its last layer, and its maps
# made and reduced for every layer at once (one `attention_rows` and one `layer_sums` call on
# (layers·heads, seq, seq), not one per layer: on ~35-token sentences a call is mostly NumPy's
# per-call cost). At 128 tokens a 6×12-head model's maps are 9 MB in float64; longer texts are
# reduced layer by layer.
STACK_TOKENS = 128


class TextSums:
    """One text's statistics, fed its traces layer by layer (`add`), added into `into` by `close`."""

    def __init__(self, model: Model, tok: Tokenization, options: DetectorOptions, into: HeadSums) -> None:
        import numpy as np

        from ..maths.headsums import patterns, visible_keys

        s, n = model.spec, len(tok.ids)
        self.ids, self.options, self.into, self.n, self.spec = tok.ids, options, into, n, s
        self.special = np.array([t.special for t in tok.tokens], dtype=bool)
        self.punctuation = punctuation_mask(tok)
        self.found = patterns(tok.ids) if n > 1 else None
        self.visible = [visible_keys(n, s.causal, s.window(layer)) for layer in range(s.layers)]  # Gemma 3: each layer its own window
        self.stack = n <= STACK_TOKENS and all((v == self.visible[0]).all() for v in self.visible)
        self.kept: list = []  # a stacked text's (q, k, score bias) copies of each layer so far
        self.mask = None  # and its first layer's mask (`LayerTrace.visible`), every layer's (see `stack`)

    def add(self, trace) -> None:
        from ..maths.headsums import layer_sums

        if self.stack:
            # Copies: a packed trace's q and k are views of the whole pack's layer.
            if not self.kept:
                self.mask = trace.visible(slice(None))
            self.kept.append((trace.q.copy(), trace.k.copy(), None if trace.score_bias is None else trace.score_bias.copy()))
            return
        weights = trace.rows()[2]
        parts, histogram = layer_sums(weights, self.ids, self.special, self.punctuation, self.visible[trace.layer], self.options, self.found)
        self.into.add_layer(trace.layer, parts, histogram)

    def close(self) -> None:
        from ..maths.headsums import layer_sums

        if self.kept:
            layers, heads = len(self.kept), self.kept[0][0].shape[0]
            parts, histogram = layer_sums(self.stacked_weights(), self.ids, self.special, self.punctuation, self.visible[0], self.options, self.found)
            self.into.add_layers({k: (v.reshape(layers, heads), c) for k, (v, c) in parts.items()}, histogram.reshape(layers, heads, -1))
        self.into.texts += 1
        self.into.tokens += self.n

    def stacked_weights(self) -> np.ndarray:
        """Every kept layer's attention weights, (layers·heads, seq, seq): each layer's
        `LayerTrace.rows()[2]`, computed by the same function (`ops.attention_rows`) in one call
        for all of them (the same numbers: each head's product and softmax rows are computed
        alone either way)."""
        import numpy as np

        from ..maths.ops import attention_rows

        qs, ks, biases = zip(*self.kept, strict=True)
        group = qs[0].shape[0] // ks[0].shape[0]  # grouped-query attention: each kv head serves `group` query heads
        keys = np.concatenate([k if group == 1 else np.repeat(k, group, axis=0) for k in ks])
        bias = None if biases[0] is None else np.concatenate(biases)
        return attention_rows(np.concatenate(qs), keys, self.spec.scale, self.mask, bias, self.spec.attn_softcap)[2]


def add_text(model: Model, tok: Tokenization, options: DetectorOptions, into: HeadSums) -> None:
    """One text's forward pass, its maps reduced to sums (see `TextSums`)."""
    text = TextSums(model, tok, options, into)
    for trace in model.trace(tok.ids):
        text.add(trace)
    text.close()


def add_packed(model: Model, toks: list[Tokenization], options: DetectorOptions, into: HeadSums) -> None:
    """Several texts in one packed forward pass (`Model.trace_packed_layers`, as `attn batch`
    packs lines), each text's maps reduced to its sums: the same sums as `add_text` of each
    (the traces are those of each text alone)."""
    texts = [TextSums(model, tok, options, into) for tok in toks]
    for traces in model.trace_packed_layers([tok.ids for tok in toks]):
        for text, trace in zip(texts, traces, strict=True):
            text.add(trace)
    for text in texts:
        text.close()


def shard_sums(model: Model, shard: Shard, options: CorpusOptions) -> HeadSums:
    """The sums of one shard's texts, packed into forward passes where the model packs (see
    `packed.pack_groups`), and with `options.ablate` / `options.knockout` /
    `options.contributions` each text's head ablations (`ablation`) / word knockouts
    (`knockout_by_distance`) / contribution matrices (`contribution_sums`); a bad line raises its
    error, with its line number. Every engine runs this."""
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
            add_text(model, toks[group[0]], options.detectors, sums)
        else:
            add_packed(model, [toks[i] for i in group], options.detectors, sums)
    if options.ablate is not None or options.knockout is not None or options.contributions is not None:
        from ..loading.model import kept

        model = kept(model)  # its weights converted once for the shard's reruns
    for line, tok in zip((line for line, _ in shard), toks, strict=True):
        if options.ablate is not None:
            sums.add_text_metric("ablation", ablation(model, tok, options.ablate))
        if options.contributions is not None:
            sums.add_contributions(contribution_sums(model, tok, options.contributions))
        if options.knockout is not None:
            try:
                for distance, changes in knockout_by_distance(model, tok, options.knockout):
                    sums.add_knockout(distance, changes)
            except AttnError as exc:
                raise exc if line is None else exc.prefixed(f"line {line}: ") from None
    return sums


def contribution_sums(model: Model, tok: Tokenization, method: str) -> LayerSums:
    """One text's contribution matrices (`attn contrib --method METHOD`: `CONTRIBUTION_METHODS`),
    every row of every layer, reduced as attention maps are (`headsums.mass_sums`): kind ->
    ((layers,) sum over rows of the share on that kind, rows)."""
    import numpy as np

    from ..maths.headsums import mass_sums
    from .contrib_matrices import MATRICES

    seq = len(tok.ids)
    matrices = np.stack(MATRICES[method](model, np.asarray(tok.ids), list(range(seq)), model.spec.layers - 1))  # (layers, seq, seq)
    return mass_sums(matrices, np.array([t.special for t in tok.tokens], dtype=bool), punctuation_mask(tok))


# `stats --contributions`: the methods of `attn contrib` that give a (seq, seq) matrix per layer (`contrib_matrices.MATRICES`).
CONTRIBUTION_METHODS = ("value-zeroing", "alti", "norms")


def knockout_by_distance(model: Model, tok: Tokenization, window: int) -> list[tuple[int, np.ndarray]]:
    """One text's attention knockout (`attn knockout` of the text, without --query, --target or
    --source): at its last position, each word's edges blocked in turn; per word, its distance
    in words back from the last word (0: that word) and the relative changes (layers,) of p of
    the model's top-1 next token. A text of one word has nothing to knock out: refused."""
    from ..errors import InputError
    from .knockout import source_changes
    from .prediction import Reruns

    words = tok.words
    if len(words) < 2:
        raise InputError("the text has one word: nothing to knock out but the word that predicts", "give texts of two words or more, or leave out --knockout")
    reruns = Reruns(model, tok.ids, len(tok.ids) - 1)
    chosen = reruns.target(None, None)
    return [(len(words) - 1 - n, source_changes(reruns, chosen, word.token_indices, window)) for n, word in enumerate(words)]


def ablation(model: Model, tok: Tokenization, mode: str) -> np.ndarray:
    """One text's head ablations (`attn ablate` of the text, without --query or --target): at
    its last position, each head ablated alone, Δ log p of the model's top-1 next token
    (decoders) or the cosine distance of the final representation (encoders). (layers, heads)."""
    from .ablate import head_sweep
    from .prediction import Reruns

    reruns = Reruns(model, tok.ids, len(tok.ids) - 1)
    return head_sweep(reruns, reruns.target(None, None) if model.arch.decodes else None, mode)


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
    texts = [np.array([*wrapper[:lead], *prompt, *wrapper[lead:]], dtype=np.int64) for prompt in prompts]
    no_histogram = np.zeros((model.spec.heads, headsums.HISTOGRAM_BINS), np.int64)

    def add(ids: np.ndarray, trace) -> None:
        sums.add_layer(trace.layer, headsums.induction_sums(trace.rows()[2], ids, options), no_histogram)

    if model.packs:  # in one packed pass, as the corpus's texts: the same traces as each prompt alone
        for traces in model.trace_packed_layers(texts):
            for ids, trace in zip(texts, traces, strict=True):
                add(ids, trace)
    else:
        for ids in texts:
            for trace in model.trace(ids):
                add(ids, trace)
    return sums


# --- Engines: this process, worker processes -------------------------------------------------


def run_local(model: Model, parts: Iterable[Shard], options: CorpusOptions) -> Iterator[HeadSums]:
    for shard in parts:
        yield shard_sums(model, shard, options)


def run_processes(model_path: str | None, parts: Iterable[Shard], options: CorpusOptions, workers: int, budget: int | None = None) -> Iterator[HeadSums]:
    """Shards to `workers` processes (compute/workers.py, each loads the model once, a GGUF
    model's float32 weights kept up to `budget` bytes each), results in shard order, at most
    workers·AHEAD shards in flight."""
    return ordered_map(_load_worker, (model_path, options, budget), _worker_shard, parts, workers, AHEAD)


def _load_worker(model_path: str | None, options: CorpusOptions, budget: int | None) -> tuple:
    from ..loading.model import load_for_passes

    return load_for_passes(model_path, budget), options


def _worker_shard(state: tuple, shard: Shard) -> HeadSums:
    model, options = state
    return shard_sums(model, shard, options)
