"""`attn stats` of encoder–decoder models (T5, BART, Marian): per-head statistics of one kind of
attention over (source, target) pairs, as `stats` measures any model's self-attention.

- `encoder`: the encoder's self-attention over the source, as an encoder's (every key visible).
- `decoder`: the decoder's causal self-attention over its input, the target teacher-forced as
  `compute.seq2seq` does (the decoder start token, then the labels but the last).
- `cross`: each target position's row over the source: (heads, m, n) maps whose rows are the
  decoder's positions and whose keys are the source's tokens.

Position-based statistics compare a query's position with a key's, and a cross-attention row and
its keys live in two sequences: `self`, `previous_token`, `next_token` and the previous- and
duplicate-token detectors are not measured for `cross` (null, and listed in the result's
`omitted`), nor the induction score (TransformerLens' pattern is a self-attention's). Entropy,
the masses on special tokens, the first token and punctuation (of the source) and the sink rate
are measured on every kind. Induction: the encoder reads seeded repeated random tokens inside
the tokenizer's own special tokens; the decoder is taught them (its start token first) over an
empty source (the tokenizer's special tokens alone).

Each pair runs by itself (the encoder–decoder families do not pack), and a shard's sums merge by
addition as every `stats` shard's, so `--workers N` gives the numbers of one process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from typing import TYPE_CHECKING, NamedTuple

from ..errors import AttnError, InputError
from .batch import json_object

if TYPE_CHECKING:
    import numpy as np

    from ..loading.model import Model
    from ..maths.headsums import DetectorOptions, HeadSums, LayerSums
    from .stats_result import StatsResult

Line = tuple[int | None, str, str | None]  # (line number, or None for a lone TEXT; source; target or None)

# Not measured on cross-attention: a query row and its keys are positions of two sequences.
CROSS_OMITTED = (
    "previous_token", "self", "next_token", "previous_token_mul", "previous_token_abs", "duplicate_token_mul", "duplicate_token_abs",
    "induction_mul", "induction_abs",
)
JSONL_FIELDS = ("text", "target")


class PairOptions(NamedTuple):
    """What each engine's shard function needs besides the model: the kind and the exclusions."""

    kind: str  # "encoder", "decoder" or "cross"
    detectors: DetectorOptions


# --- Reading the corpus ----------------------------------------------------------------------


def parse_line(number: int | None, raw: str) -> Line:
    """A corpus line: plain text (a source without a target), or, when it starts with `{`, a JSON
    object {"text": SOURCE, "target": TARGET} (as `attn batch` reads lines; "target" optional).
    A line that is not such an object raises an InputError naming its line number."""
    if not raw.lstrip().startswith("{"):
        return number, raw, None
    where = "" if number is None else f"line {number}: "
    fix = 'write one JSON object per line, e.g. {"text": "The house is small.", "target": "Das Haus ist klein."}'
    obj, problem = json_object(raw)
    if problem is not None:
        raise InputError(f"{where}{problem}", fix)
    unknown = [k for k in obj if k not in JSONL_FIELDS]
    if unknown or not isinstance(obj.get("text"), str) or not isinstance(obj.get("target"), str | None):
        what = f"unknown field {', '.join(map(json.dumps, unknown))}" if unknown else 'not an object with a string "text" (and "target")'
        raise InputError(f"{where}{what}; a stats line may have: {', '.join(JSONL_FIELDS)}", fix)
    return number, obj["text"], obj.get("target")


def texts_only(model: Model, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """A model without cross-attention's corpus: each line's text (a JSON line's "text"); a line
    with a target is refused as `inspect` refuses --target."""
    from .seq2seq import check_kind

    for n, raw in lines:
        _, text, target = parse_line(n, raw)
        if target is not None:
            try:
                check_kind(model, target, None)
            except AttnError as exc:
                raise exc.prefixed(f"line {n}: ") from None
        yield n, text


def corpus_kind(lines: Iterable[Line], attention: str | None) -> tuple[str, Iterator[Line]]:
    """The kind of attention of a corpus (`attention`, else decoder when its first line has a
    target, else encoder, as `inspect` chooses) and its lines, the first one included, each
    checked to have a target when the kind needs one (`require_target`)."""
    from itertools import chain

    lines = iter(lines)
    first = [line for line in (next(lines, None),) if line is not None]
    kind = attention or ("decoder" if first and first[0][2] is not None else "encoder")
    return kind, (require_target(line, kind, attention is None) for line in chain(first, lines))


def require_target(line: Line, kind: str, defaulted: bool) -> Line:
    """`line`, once it is known to have a target if `kind` needs one, and (the kind `defaulted`
    to the encoder by a first line without one) not to have one that would be ignored."""
    number, _, target = line
    where = "the text" if number is None else f"line {number}"
    if kind != "encoder" and target is None:
        fix = "give it one (--target TEXT, or a JSONL line's \"target\")" if number is None else 'give every line a "target", or --attention encoder'
        raise InputError(f"{where} has no target, and {kind} attention is a target token's", fix)
    if kind == "encoder" and defaulted and target is not None:
        raise InputError(f"{where} has a target, and the first line has none (so its encoder was chosen)", 'give every line a "target", or --attention encoder')
    return line


# --- One pair's sums -------------------------------------------------------------------------


def kind_spec(model: Model, kind: str):
    """The `Hyper` of the stack whose attention `kind` is: the encoder's, else the decoder's."""
    return model.spec if kind == "encoder" else model.spec.seq2seq.decoder


def pair_sums(model: Model, line: Line, options: PairOptions, into: HeadSums) -> None:
    """One (source, target) pair's statistics of `options.kind`, every layer, added into `into`."""
    import numpy as np

    from ..loading.tokenizer import tokenize
    from ..maths.headsums import layer_sums, visible_keys
    from .seq2seq import pair
    from .stats_shard import punctuation_mask

    number, source, target = line
    try:
        if options.kind == "encoder":
            tok = tokenize(model.tokenizer, source, max_tokens=model.spec.max_positions)
            keys, traces, rows = tok, model.trace(tok.ids), len(tok.ids)
        else:
            p = pair(model, source, target)
            traces = model.trace_decoder(p.decoder.ids, model.memory(p.source.ids))
            keys, rows = (p.decoder if options.kind == "decoder" else p.source), len(p.decoder.ids)
    except AttnError as exc:
        raise exc if number is None else exc.prefixed(f"line {number}: ") from None
    special = np.array([t.special for t in keys.tokens], dtype=bool)
    punctuation = punctuation_mask(keys)
    if options.kind == "cross":
        for trace in traces:
            into.add_layer(trace.layer, *cross_layer_sums(trace.cross.rows()[2], special, punctuation))
    else:
        visible = visible_keys(rows, options.kind == "decoder")
        for trace in traces:
            into.add_layer(trace.layer, *layer_sums(trace.rows()[2], keys.ids, special, punctuation, visible, options.detectors))
    into.texts += 1
    into.tokens += rows


def cross_layer_sums(weights: np.ndarray, special: np.ndarray, punctuation: np.ndarray) -> tuple[LayerSums, np.ndarray]:
    """One pair's sums of one decoder layer's cross-attention: weights (heads, m, n), each target
    position's row over the n source keys (every key visible); special, punctuation bool (n,).
    The row statistics of `headsums.layer_sums` that do not compare positions, each over the m
    rows, and the (heads, bins) histogram of normalised entropy (÷ ln n)."""
    import numpy as np

    from ..maths.headsums import HISTOGRAM_BINS, SINK_EPSILON, row_entropy

    p = np.asarray(weights, dtype=np.float64)
    heads, rows, keys = p.shape
    entropy = row_entropy(p)  # (heads, m)
    normalised = entropy / np.log(keys) if keys > 1 else entropy[:, :0]
    bins = np.clip((normalised * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
    histogram = np.bincount((np.arange(heads)[:, None] * HISTOGRAM_BINS + bins).ravel(), minlength=heads * HISTOGRAM_BINS).reshape(heads, -1)

    def mass(mask: np.ndarray) -> tuple[np.ndarray, int]:
        return p[..., mask].sum(axis=(-2, -1)), rows

    return {
        "entropy": (entropy.sum(axis=-1), rows),
        "entropy_normalised": (normalised.sum(axis=-1), normalised.shape[-1]),
        "special": mass(special),
        "first_token": mass(np.arange(keys) == 0),
        "punctuation": mass(punctuation),
        "sink_rate": ((p[..., 0].mean(axis=-1) > SINK_EPSILON).astype(np.float64), 1),
    }, histogram


def shard_sums(model: Model, shard: list[Line], options: PairOptions) -> HeadSums:
    """The sums of one shard of pairs (every engine runs this)."""
    from ..maths.headsums import HeadSums

    spec = kind_spec(model, options.kind)
    sums = HeadSums(spec.layers, spec.heads)
    for line in shard:
        pair_sums(model, line, options, sums)
    return sums


# --- Induction -------------------------------------------------------------------------------


def induction_sums(model: Model, kind: str, options: DetectorOptions, seed: int) -> HeadSums:
    """TransformerLens' induction scores of the encoder or the decoder (see the module's
    docstring) on `stats_shard`'s INDUCTION_SEQUENCES seeded repeated random-token prompts."""
    import numpy as np

    from ..maths import headsums
    from .stats_shard import INDUCTION_LENGTH, INDUCTION_SEQUENCES

    spec = kind_spec(model, kind)
    sums = headsums.HeadSums(spec.layers, spec.heads)
    prompts = headsums.repeated_random_tokens(induction_vocabulary(model), INDUCTION_LENGTH, INDUCTION_SEQUENCES, seed)
    empty = model.tokenizer.encode("", add_special_tokens=True).ids  # the tokenizer's special tokens alone
    lead = model.tokenizer.encode("a", add_special_tokens=True).special_tokens_mask.index(0)  # those before the text ("<s>" of BART)
    no_histogram = np.zeros((spec.heads, headsums.HISTOGRAM_BINS), np.int64)
    for prompt in prompts:
        if kind == "encoder":
            ids = np.array([*empty[:lead], *prompt, *empty[lead:]], dtype=np.int64)
            traces = model.trace(ids)
        else:
            ids = np.array([model.spec.seq2seq.decoder_start, *prompt], dtype=np.int64)
            traces = model.trace_decoder(ids, model.memory(np.array(empty, dtype=np.int64)))
        for trace in traces:
            sums.add_layer(trace.layer, headsums.induction_sums(trace.rows()[2], ids, options), no_histogram)
    return sums


def induction_vocabulary(model: Model) -> np.ndarray:
    """The ids random tokens are drawn from: the vocabulary less special and bracketed tokens, as
    `stats_shard.induction_sums` draws them."""
    import numpy as np

    special = {t.content for t in model.tokenizer.get_added_tokens_decoder().values() if t.special}
    return np.array(sorted(i for t, i in model.tokenizer.get_vocab().items() if t not in special and not (t.startswith("[") and t.endswith("]"))))


# --- attn stats ------------------------------------------------------------------------------


def check_options(model: Model, ablate: str | None, knockout: int | None, contributions: str | None, engine: str = "local") -> None:
    """What `stats` measures of other models and not yet of encoder–decoder ones: refused."""
    given = [name for name, value in (("--ablate", ablate), ("--knockout", knockout), ("--contributions", contributions)) if value is not None]
    if engine == "ray":
        given.append("--engine ray")
    if given:
        raise InputError(
            f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} not available for encoder–decoder models ({model.spec.model_type}) in attn stats",
            f"drop {' and '.join(given)} (--workers N runs the corpus in processes)",
        )


def pair_statistics(
    model: Model, lines: Iterable[Line], attention: str | None = None, threshold: float = 0.5, options: DetectorOptions | None = None,
    seed: int = 0, run: Callable[[Iterable[list[Line]], PairOptions], Iterator[HeadSums]] | None = None,
    on_progress: Callable[[int], None] | None = None, empty: str = "there is no text",
) -> StatsResult:
    """Per-head statistics of one kind of attention (`attention`; default: as `corpus_kind`)
    over (line, source, target) lines. `run(shards, options)`: the engine, sums per shard in
    shard order (default: this process). The StatsResult says its `attention`, and for
    cross-attention which statistics it `omitted`."""
    from dataclasses import replace

    from ..maths.headsums import NO_EXCLUSIONS, HeadSums
    from .inspect import model_info
    from .options import ATTENTION_KINDS
    from .stats import _check_threshold
    from .stats_result import Induction, build_result
    from .stats_shard import INDUCTION_LENGTH, INDUCTION_SEQUENCES, SHARD_LINES
    from .workers import chunks

    _check_threshold(threshold)
    if attention is not None and attention not in ATTENTION_KINDS:
        raise InputError(f"`attention={attention!r}` is not valid", f"give one of {', '.join(ATTENTION_KINDS)}")
    options = NO_EXCLUSIONS if options is None else options
    kind, checked = corpus_kind(lines, attention)
    if kind == "cross" and options != NO_EXCLUSIONS:  # they change only the detector scores, which cross-attention has none of
        used = [f"`{name}=True`" for name, on in options._asdict().items() if on]
        what = " and ".join(used)
        raise InputError(f"{what} would change only detector scores, and cross-attention has none", f"drop {what}, or give `attention='decoder'`")
    pair_options = PairOptions(kind, options)
    shards = chunks(checked, SHARD_LINES)
    results = (shard_sums(model, shard, pair_options) for shard in shards) if run is None else run(shards, pair_options)
    spec = kind_spec(model, kind)
    sums = HeadSums(spec.layers, spec.heads)
    with closing(results):  # stops the workers now, also on an error or Ctrl-C
        for shard in results:
            sums.merge(shard)
            if on_progress is not None:
                on_progress(sums.texts)
    if sums.texts == 0:
        raise InputError(empty, "put one text on each line")
    how = None
    if kind != "cross":
        sums.merge(induction_sums(model, kind, options, seed))
        how = Induction(seed, INDUCTION_SEQUENCES, INDUCTION_LENGTH)
    result = build_result(model_info(model, None if kind == "encoder" else spec), sums, threshold, options, how)
    return replace(result, attention=kind, omitted=CROSS_OMITTED if kind == "cross" else ())


def run_processes(model_path: str | None, workers: int) -> Callable[[Iterable[list[Line]], PairOptions], Iterator[HeadSums]]:
    """The engine of `--workers N`: shards to N processes (compute/workers.py), each loading the
    model once, sums in shard order."""
    from .stats_shard import AHEAD
    from .workers import ordered_map

    return lambda shards, options: ordered_map(_load_worker, (model_path, options), _worker_shard, shards, workers, AHEAD)


def _load_worker(model_path: str | None, options: PairOptions) -> tuple:
    from ..loading.model import load_model

    return load_model(model_path, release_weights=False), options


def _worker_shard(state: tuple, shard: list[Line]) -> HeadSums:
    model, options = state
    return shard_sums(model, shard, options)


def text_statistics(
    model: Model, text: str, target: str | None = None, attention: str | None = None, threshold: float = 0.5,
    options: DetectorOptions | None = None, seed: int = 0, ablate: str | None = None, knockout: int | None = None, contributions: str | None = None,
) -> StatsResult:
    """`attn stats TEXT [--target TARGET] [--attention KIND]` of an encoder–decoder model; a
    model without cross-attention given a target or a kind is refused as `inspect` refuses it."""
    _check_model(model, target, attention, ablate, knockout, contributions)
    return pair_statistics(model, [(None, text, target)], attention, threshold, options, seed)


def corpus_statistics(
    model: Model, model_path: str | None, file: str, attention: str | None = None, threshold: float = 0.5, engine: str = "local",
    workers: int = 1, options: DetectorOptions | None = None, seed: int = 0, on_progress: Callable[[int], None] | None = None,
    ablate: str | None = None, knockout: int | None = None, contributions: str | None = None,
) -> StatsResult:
    """`attn stats --file FILE [--attention KIND]` of an encoder–decoder model (`model`, loaded
    from `model_path`): each line a source, or a JSON object with its "target" (`parse_line`);
    `workers` processes when more than 1."""
    from .stats_shard import iter_lines

    _check_model(model, None, attention, ablate, knockout, contributions, engine)
    lines = (parse_line(n, raw) for n, raw in iter_lines(file))
    run = None if workers == 1 else run_processes(model_path, workers)
    empty = f"{'stdin' if file == '-' else file} has no text: every line is blank"
    return pair_statistics(model, lines, attention, threshold, options, seed, run, on_progress, empty)


def _check_model(model: Model, target, attention, ablate, knockout, contributions, engine: str = "local") -> None:
    if not model.has_cross_attention:
        from .seq2seq import check_kind

        check_kind(model, target, attention)  # refused, naming the models that have cross-attention
    check_options(model, ablate, knockout, contributions, engine)
