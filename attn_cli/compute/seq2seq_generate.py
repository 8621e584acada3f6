"""`generate` for encoder–decoder models (T5, BART, Marian): the encoder reads the source once,
each decoder layer's cross-attention keys and values of it are computed once (`Model.memory`),
and the decoder writes with a KV cache of its own keys and values. Each step names the source
word its cross-attention looked at most (the last layer, mean over heads).

Greedy ids and the top log-probabilities equal transformers' `generate` (tests/test_seq2seq_generate.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..errors import InputError, OptionError
from ..loading.model import Model, kept
from ..loading.tokenizer import Token, Tokenization, continued, decoded_piece, tokenize
from ..maths.analysis import to_words
from ..maths.sampling import greedy, log_softmax
from ..models import KVCache
from ..models.cache import cache_bytes
from .decoding import DecodeStep, Sampling, bad_words, decode_steps, eos_ids, forced_eos, likeliest
from .inspect import inspect_decoder, model_info
from .options import InspectOptions


def decode_seq2seq(
    model: Model, memory, max_new_tokens: int, choose: Callable[[np.ndarray], int] = greedy,
    eos: tuple[int, ...] = (), use_cache: bool = True, bad: tuple[tuple[int, ...], ...] = (), forced: tuple[int, ...] = (),
) -> Iterator[DecodeStep]:
    """Write up to `max_new_tokens` after the decoder start token, stopping after an id in
    `eos` (yielded), never completing a sequence of `bad` (`bad_words`: Marian's `<pad>`), the
    last one of `forced` (`forced_eos`: Marian's `</s>`) when it has any, over the source's
    `memory` (`Model.memory`: the encoder ran once). With `use_cache` each step runs the new
    token alone over the decoder's KV cache, else the whole target so far. Each step's traces
    are the decoder's layers (their `cross` the cross-attention of the new positions over the
    source)."""
    cache = KVCache(model.spec.seq2seq.decoder, 1 + max_new_tokens) if use_cache else None

    def run(ids: np.ndarray, cache: KVCache | None):
        return model.trace_decoder(ids, memory, cache)

    yield from decode_steps([model.spec.seq2seq.decoder_start], max_new_tokens, cache, run, model.decoder_logits, choose, eos, bad, forced)


def generate_seq2seq(
    model: Model, source: str, max_new_tokens: int, sampling: Sampling, top: int, inspect: InspectOptions | None, use_cache: bool, on_step=None,
):
    """`generate`'s result for an encoder–decoder: `tokenization` is what the decoder read and
    wrote (its start token, then the new tokens), `prompt` and `source` the source. With
    `inspect`, whose query names a position of `tokenization`, inspect's view of its
    cross-attention over the source, or with `inspect.attention` "decoder" of its self-attention
    (`inspect_decoder`): what `inspect(source, target=<what was written>, attention=…)` shows
    of that token, when the written text tokenizes back to the written ids."""
    from .generate import Candidate, GenerateResult, Step

    kind = None if inspect is None else written_kind(inspect)
    decoder = model.spec.seq2seq.decoder
    if 1 + max_new_tokens > decoder.max_positions:
        raise InputError(
            f"{max_new_tokens} new tokens after the decoder start token would make {1 + max_new_tokens}, but the decoder reads at most "
            f"{decoder.max_positions}",
            f"give -n {decoder.max_positions - 1} or less",
        )
    model = kept(model)
    src = tokenize(model.tokenizer, source, max_tokens=model.spec.max_positions)
    eos = eos_ids(model)
    start = model.spec.seq2seq.decoder_start
    written: list[int] = []
    steps = []
    stop = "length"
    units = src.word_units
    memory = model.memory(src.ids)
    for d in decode_seq2seq(model, memory, max_new_tokens, sampling.chooser(), eos, use_cache, bad_words(model), forced_eos(model)):
        logprobs = log_softmax(d.logits)
        candidates = tuple(Candidate(int(i), decoded_piece(model.decoder_tokenizer, written, int(i)), float(logprobs[i])) for i in likeliest(logprobs, top))
        piece = decoded_piece(model.decoder_tokenizer, written, d.id)
        steps.append(Step(d.position, d.id, piece, float(logprobs[d.id]), candidates, _attended_source(d.traces[-1].cross, units)))
        written.append(d.id)
        if on_step is not None:
            on_step(steps[-1])
        if d.id in eos:
            stop = "eos"
    first = Token(0, model.decoder_tokenizer.id_to_token(start) or f"[{start}]", start, None, None, None, True)
    target = continued(model.decoder_tokenizer, Tokenization("", (first,), ()), written, [s.text for s in steps])
    view = None if inspect is None else inspect_decoder(model, src, target, memory, inspect, kind)
    used = cache_bytes(decoder, 1 + len(steps)) if use_cache else 0
    return GenerateResult(model_info(model, decoder), target, 1, tuple(steps), stop, sampling, max_new_tokens, eos, False, None, used, src, view, source=src)


def written_kind(inspect: InspectOptions) -> str:
    """The attention shown of a token the decoder read or wrote: "cross" (the default) or
    "decoder"; the encoder's has no target token, and a target is what generate writes."""
    if inspect.attention == "encoder":
        raise OptionError(
            "`attention='encoder'` is a source token's attention, and generate's query is a token the decoder read or wrote",
            "give `attention='cross'` or `attention='decoder'`, or see the encoder with `attn inspect SOURCE --attention encoder`",
        )
    if inspect.target is not None:
        raise OptionError("`target=...` is the text generate writes", "drop `target`; the query names a token of what was written")
    return inspect.attention or "cross"


def _attended_source(cross, units) -> object:
    """The source word the newest target position's cross-attention weighs most: the last
    layer's row, mean over heads, summed per word (special tokens are units of their own)."""
    from .generate import Attended

    _, _, weights = cross.rows([cross.q.shape[1] - 1])
    mass = to_words(weights[:, 0].mean(axis=0).astype(np.float32), [list(u.token_indices) for u in units])
    best = int(np.argmax(mass))
    return Attended(units[best].text, tuple(units[best].token_indices), float(mass[best]), units[best].label)
