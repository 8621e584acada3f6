"""`stats` and `compare`: what each head does over one text or a corpus, and how one query's
attention moves between two texts. The compare result and its JSON ($defs/compare) live here;
the stats result (StatsResult, $defs/stats) in `stats_result.py`, its per-shard function and
engines in `stats_shard.py` and `stats_ray.py`, its maths in `maths/headsums.py`.

Both keep only small per-head results, never a layer's full map longer than it is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import closing

import numpy as np

from ..errors import AttnError, InputError, QueryNotFound
from ..loading.model import Model
from ..loading.tokenizer import Tokenization
from ..maths import analysis
from ..maths.headsums import NO_EXCLUSIONS, DetectorOptions, HeadSums
from ..records import frozen
from . import stats_shard
from .decoding import require_decoder
from .inspect import model_info
from .options import select_layers
from .query import resolve_query
from .result import SCHEMA_VERSION, ModelInfo, QueryInfo, floats
from .seq2seq import Attended, attended, check_kind
from .stats_result import STAT_FIELDS, Induction, NamedHead, StatsResult, build_result
from .workers import check_workers

__all__ = ["STAT_FIELDS", "NamedHead", "StatsResult", "corpus_statistics", "head_statistics", "compare"]

# --- Inputs ----------------------------------------------------------------------------------


def _file_name(file: str) -> str:
    return "stdin" if file == "-" else file


# --- attn stats ------------------------------------------------------------------------------

ENGINES = ("local", "ray")


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"--threshold {threshold} is not valid", "give a mass between 0 and 1, e.g. --threshold 0.5")


def _check_seed(seed: int) -> None:
    # The induction prompts run after the whole corpus: a seed NumPy refuses must fail first.
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"`seed={seed}` is not valid", "give `seed` 0 or more")


def _induction(model: Model, options: DetectorOptions, seed: int) -> tuple[HeadSums, Induction]:
    from .stats_shard import INDUCTION_LENGTH, INDUCTION_SEQUENCES, induction_sums

    return induction_sums(model, options, seed), Induction(seed, INDUCTION_SEQUENCES, INDUCTION_LENGTH)


def _check_ablate(ablate: str | None) -> None:
    from .ablate import MODES

    if ablate is not None and ablate not in MODES:
        raise InputError(f"--ablate {ablate!r} is not a mode", f"give one of {', '.join(MODES)}")


def _check_knockout(knockout: int | None) -> None:
    if knockout is not None and (isinstance(knockout, bool) or not isinstance(knockout, int) or knockout < 1):
        raise InputError(f"--knockout {knockout!r} is not a window", "give a window of 1 layer or more, e.g. --knockout 9 (Geva et al.'s)")


def _check_contributions(method: str | None, model: Model | None = None) -> None:
    """A method `stats --contributions` knows; with the model, one it covers (ALTI refuses
    families it does not decompose) before any text runs."""
    if method is not None and method not in stats_shard.CONTRIBUTION_METHODS:
        raise InputError(f"--contributions {method!r} is not a method", f"give one of {', '.join(stats_shard.CONTRIBUTION_METHODS)}")
    if method == "alti" and model is not None:
        from .contrib_matrices import alti_layout

        alti_layout(model)


def _ablation(model: Model, ablate: str | None) -> tuple[str, str] | None:
    from .ablate import measure_of

    return None if ablate is None else (ablate, measure_of(model))


def head_statistics(
    model: Model, texts: Iterable[tuple[int | None, str]], threshold: float = 0.5, options: DetectorOptions = NO_EXCLUSIONS, seed: int = 0,
    ablate: str | None = None, knockout: int | None = None, contributions: str | None = None,
) -> StatsResult:
    """Per-head statistics of `texts` ((line number or None, text) pairs) in this process, the
    induction score on seeded repeated random tokens, and the heads whose mean mass for a kind
    is ≥ threshold. `ablate` ("zero" or "mean"): each head ablated on each text too
    (`stats_shard.ablation`), its mean the `ablation` statistic. `knockout` (a window of
    layers, decoders): each word knocked out on each text (`stats_shard.knockout_by_distance`).
    `contributions` (a method of `stats_shard.CONTRIBUTION_METHODS`): each text's contribution
    matrices reduced by kind of token (`stats_shard.contribution_sums`)."""
    _check_threshold(threshold)
    _check_seed(seed)
    _check_ablate(ablate)
    _check_knockout(knockout)
    _check_contributions(contributions, model)
    if knockout is not None:
        require_decoder(model, "head_statistics")
    sums = HeadSums(model.spec.layers, model.spec.heads)
    for shard in stats_shard.shards(texts):
        sums.merge(stats_shard.shard_sums(model, shard, stats_shard.CorpusOptions(options, ablate, knockout, contributions)))
    if sums.texts == 0:
        raise InputError("there is no text", "give at least one non-blank text")
    induction, how = _induction(model, options, seed)
    return build_result(model_info(model), sums.merge(induction), threshold, options, how, _ablation(model, ablate), knockout, contributions)


def corpus_statistics(
    model_path: str | None,
    file: str,
    threshold: float = 0.5,
    engine: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    options: DetectorOptions = NO_EXCLUSIONS,
    seed: int = 0,
    on_progress: Callable[[int], None] | None = None,
    ablate: str | None = None,
    knockout: int | None = None,
    contributions: str | None = None,
    attention: str | None = None,
    max_memory: int | None = None,
) -> StatsResult:
    """Per-head statistics over every non-blank line of `file` (`-`: stdin), streamed in shards.

    engine "local": this process (workers 1) or `workers` spawned processes; "ray": `workers`
    Ray actors on the cluster at `ray_address` / RAY_ADDRESS, else on a local Ray started for
    the run. Every engine maps `stats_shard.shard_sums` over the same shards and merges in shard
    order, so the numbers agree (to float32 rounding of the forward pass, as BLAS threads differ).
    A bad line stops the run with its line number. on_progress(texts done) after each shard.
    `ablate`, `knockout`, `contributions`: as `head_statistics`, in every engine (merged shards
    equal one run). A line may be a JSON object {"text": ...}. An encoder–decoder model (or
    `attention`): `stats_seq2seq.corpus_statistics`, the lines (source, target) pairs.
    `max_memory`: bytes of a GGUF model's de-quantized weights kept between passes (None: the
    default; `loading.model.budgeted`), each of `workers` processes or actors keeping its share
    (`budget.share`); the rest is de-quantized again at each pass, to the same numbers.
    """
    from ..loading.budget import share
    from ..loading.model import budgeted, load_for_passes

    _check_threshold(threshold)
    _check_seed(seed)
    _check_ablate(ablate)
    _check_knockout(knockout)
    _check_contributions(contributions)
    if engine not in ENGINES:
        raise InputError(f"--engine {engine!r} is not valid", f"give one of {', '.join(ENGINES)}")
    check_workers(workers)
    if engine == "ray":
        from .stats_ray import import_ray

        import_ray()  # fail now, before reading anything
    # Loaded here even when workers load their own: a bad model fails now, as a ModelError; the
    # induction prompts run on it; and it names the model in the result. While workers run,
    # they keep the float32 weights, this process none.
    budget = share(max_memory, 1)  # the default measured once, here
    model = load_for_passes(model_path, budget if engine == "local" and workers == 1 else 0)
    if model.has_cross_attention or attention is not None:
        from . import stats_seq2seq

        return stats_seq2seq.corpus_statistics(
            model, model_path, file, attention, threshold, engine, workers, options, seed, on_progress, ablate, knockout, contributions
        )
    _check_contributions(contributions, model)
    if knockout is not None:
        require_decoder(model, "corpus_statistics")
    from .stats_seq2seq import texts_only

    parts = stats_shard.shards(texts_only(model, stats_shard.iter_lines(file)))
    shard_options = stats_shard.CorpusOptions(options, ablate, knockout, contributions)
    if engine == "ray":
        from .stats_ray import run_ray

        results = run_ray(model_path, parts, shard_options, workers, ray_address, share(budget, workers))
    elif workers > 1:
        results = stats_shard.run_processes(model_path, parts, shard_options, workers, share(budget, workers))
    else:
        results = stats_shard.run_local(model, parts, shard_options)
    sums = HeadSums(model.spec.layers, model.spec.heads)
    with closing(results):  # stops the workers now, also on an error or Ctrl-C
        for shard in results:  # in shard order, whatever the engine
            sums.merge(shard)
            if on_progress is not None:
                on_progress(sums.texts)
    if sums.texts == 0:
        raise InputError(f"{_file_name(file)} has no text: every line is blank", "put one text on each line")
    model = budgeted(model, budget)  # the workers are done: the induction prompts may keep the whole budget
    induction, how = _induction(model, options, seed)
    return build_result(model_info(model), sums.merge(induction), threshold, options, how, _ablation(model, ablate), knockout, contributions)


# --- attn compare ----------------------------------------------------------------------------


@frozen  # a short repr: arrays as their shapes
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


@frozen  # a short repr: arrays as their shapes
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
    # Encoder–decoder models: the kind of attention ("encoder", "decoder", "cross"), and with a
    # target the targets of A and B (their labels' text); the texts are then the sources.
    attention: str | None = None
    target_a: str | None = None
    target_b: str | None = None

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
            **({} if self.attention is None else {"attention": self.attention}),
            **({} if self.target_a is None else {"target_a": self.target_a, "target_b": self.target_b}),
        }


def word_entries(tok: Tokenization) -> list[tuple[str, tuple[int, ...]]]:
    """(text, token indices) per word unit in token order (`Tokenization.word_units`: special
    and whitespace tokens their own entries), so the groups cover every token once (the groups
    of `analysis.to_words`)."""
    return [(u.text, u.token_indices) for u in tok.word_units]


def _query(tok: Tokenization, query: str, which: str, option: str) -> QueryInfo:
    """resolve_query, its errors saying which text they are about (`which`: "text A", "text
    B's target", ...) and, for a missing word, which option to change (`compare` has no
    --query-index to suggest)."""
    try:
        q = resolve_query(tok, query)
    except QueryNotFound as exc:
        occurrence = "#" in query  # WORD#N beyond its occurrences: the library's fix lists them
        fix = exc.fix if occurrence else f"pick a word of {which} for `{option}` (or @N for token position N; see `tokenize()`)"
        raise QueryNotFound(f"not found in {which}: {exc.message}", fix, exc.candidates) from None
    except AttnError as exc:
        raise exc.prefixed(f"{which}: ") from None
    return QueryInfo(q.text, q.token_indices, q.occurrence, q.occurrences)


def _query_words(trace, rows: Sequence[int], groups) -> np.ndarray:
    """The query's attention to each word: (heads, words). A query of several tokens (a split
    word) averages its rows, as `inspect` does; a word's weight sums its tokens."""
    weights = trace.rows(list(rows))[2].mean(axis=1)  # (heads, seq)
    return analysis.to_words(weights, groups)


def compare(
    model: Model, text_a: str, text_b: str, query: str, query_b: str | None = None, layer: str | int = "all", top: int = 5,
    target: str | None = None, target_b: str | None = None, attention: str | None = None,
) -> CompareResult:
    """The query's word weights in text A and in text B (`query_b`, else the same query), per
    selected layer and head, on the case-insensitive word alignment of the two texts' keys.
    An encoder–decoder model reads the texts as sources and `target` (A's) and `target_b`
    (B's, else `target`) as what the decoder writes: `attention` "encoder", "decoder" (the
    default with a target) or "cross" (`compute.seq2seq`); the query is then a target token,
    and the keys the targets' words (decoder) or the sources' (cross)."""
    if top < 1:
        raise InputError(f"--top {top} is not valid", "give --top 1 or more")
    if target_b is not None and target is None:
        raise InputError("`target_b` is text B's target, and text A has none", "add `target=TEXT` for text A")
    kind = check_kind(model, target, attention)  # refused once, before either text is read
    a = _attended(model, text_a, target, attention, "A")
    b = _attended(model, text_b, target if target_b is None else target_b, attention, "B")
    s = a.spec
    layers = select_layers(layer, s.layers)
    where = "text {}" if a.decoder is None else "text {}'s target"
    q_a = _query(a.queries, query, where.format("A"), "query")
    q_b = _query(b.queries, query if query_b is None else query_b, where.format("B"), "query_b")
    entries_a, entries_b = word_entries(a.keys), word_entries(b.keys)
    alignment = analysis.align_words([w for w, _ in entries_a], [w for w, _ in entries_b])
    groups_a, groups_b = [g for _, g in entries_a], [g for _, g in entries_b]

    results = []
    # The two forward passes advance together, so only one layer of each is held at a time.
    for trace_a, trace_b in zip(a.traces, b.traces):
        if trace_a.layer in layers:
            wa = _query_words(trace_a, q_a.token_indices, groups_a)
            wb = _query_words(trace_b, q_b.token_indices, groups_b)
            wa, wb, diff = analysis.compare_rows(wa, wb, alignment)
            results.append(CompareLayer(trace_a.layer, wa, wb, diff, np.abs(diff.astype(np.float64)).sum(axis=-1)))
        if trace_a.layer >= layers[-1]:
            break  # later layers cannot change what was asked
    causal = s.causal and kind != "cross"  # a target token sees every source token
    sources, targets = (a.keys, b.keys), (None, None)
    if a.pair is not None:
        sources, targets = (a.pair.source, b.pair.source), (a.pair.labels.text, b.pair.labels.text)
    return CompareResult(
        model_info(model, s), sources[0].text, sources[1].text, q_a, q_b, tuple(w for w, _ in entries_a), tuple(w for w, _ in entries_b),
        tuple(alignment), tuple(results), _rank(results, s.heads), top,
        *((_seen(groups_a, q_a), _seen(groups_b, q_b)) if causal else ((), ())),
        a.kind, *targets,
    )


def _attended(model: Model, text: str, target: str | None, attention: str | None, which: str) -> Attended:
    """`seq2seq.attended`, its errors saying which text they are about."""
    try:
        return attended(model, text, target, attention)
    except AttnError as exc:
        raise exc.prefixed(f"text {which}: ") from None


def _seen(groups, q: QueryInfo) -> tuple[bool, ...]:
    """Per word (a group of token indices): whether a decoder's query sees it."""
    return tuple(g[0] <= q.token_indices[-1] for g in groups)


def _rank(layers: Sequence[CompareLayer], heads: int) -> tuple[tuple[int, int, float], ...]:
    """Every (layer, head) pair, most changed first: `most_changed_heads` over the selected
    layers' diffs stacked into (layers·heads, n); ties keep layer, then head order."""
    stacked = np.concatenate([c.diff for c in layers])
    order = analysis.most_changed_heads(stacked)
    return tuple((layers[k // heads].layer, k % heads, float(layers[k // heads].change[k % heads])) for k in order)
