"""`generate`: a decoder writes tokens (KV cache, greedy or seeded sampling); for each one, what
it predicted and what it attended to while writing it; with a query, inspect's view of that token.

Each step's attention is the row of the position that chose the token (the last one before
it), in the last layer, mean over heads, read from the cached forward pass itself.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, OptionError
from ..loading.model import Model, kept
from ..loading.tokenizer import Tokenization, continued, decoded_piece, tokenize
from ..maths.analysis import to_words
from ..maths.sampling import log_softmax
from ..models.cache import cache_bytes
from ..records import frozen
from .decoding import Sampling, bad_words, check_length, decode, eos_ids, forced_eos, likeliest, require_decoder
from .inspect import inspect_tokens, model_info
from .options import InspectOptions, check_chat
from .result import InspectResult, ModelInfo, document_header, floats, tokens_json
from .seq2seq import check_kind


@frozen
class Candidate:
    """A token the model could write next, with its log-probability (temperature 1, before top-k/top-p;
    over the tokens `bad_words_ids` leaves: `decoding.bad_words`)."""

    id: int
    text: str
    logprob: float


@frozen
class Attended:
    """The prompt or earlier word a step attended to most (first token excluded: the sink)."""

    text: str
    token_indices: tuple[int, ...]
    weight: float
    label: str = ""  # the text, with #N for a repeated prompt word (as in a top list)


@frozen
class Step:
    """One generated token at `position`: its id, decoded text, log-probability, the top
    alternatives (itself included, when it is among them) and its most-attended word."""

    position: int
    id: int
    text: str
    logprob: float
    top: tuple[Candidate, ...]
    attended: Attended | None


@frozen  # a short repr: arrays as their shapes
class GenerateResult:
    model: ModelInfo
    tokenization: Tokenization  # the prompt (or rendered chat) and every generated token
    prompt_tokens: int
    steps: tuple[Step, ...]
    stop_reason: str  # "eos" or "length"
    sampling: Sampling
    max_new_tokens: int
    eos_ids: tuple[int, ...]
    chat: bool
    system: str | None
    cache_bytes: int  # the KV cache's size: Σ layers' kept positions (a sliding layer's: its window) × kv_heads × head_dim × 2 × 4 bytes
    prompt: Tokenization | None = None  # the prompt alone (its tokens are the first prompt_tokens of `tokenization`)
    inspect: InspectResult | None = None  # with --query: inspect's view of that token of the whole sequence
    # An encoder–decoder's source: `tokenization` is then the decoder's (its start token and what
    # it wrote), and each step's `attended` a source word, by cross-attention.
    source: Tokenization | None = None

    @property
    def continuation(self) -> str:
        return "".join(s.text for s in self.steps)

    def to_json(self) -> dict:
        doc = {
            **document_header(self.model, self.tokenization),
            "prompt_tokens": self.prompt_tokens,
            "chat": self.chat,
            "system": self.system,
            "continuation": self.continuation,
            "steps": [
                {
                    "position": s.position,
                    "id": s.id,
                    "text": s.text,
                    "logprob": floats(np.float32(s.logprob)),
                    "top": [{"id": c.id, "text": c.text, "logprob": floats(np.float32(c.logprob))} for c in s.top],
                    "attended": None if s.attended is None else {
                        "text": s.attended.text, "label": s.attended.label or s.attended.text, "token_indices": list(s.attended.token_indices),
                        "weight": floats(np.float32(s.attended.weight)),
                    },
                }
                for s in self.steps
            ],
            "stop_reason": self.stop_reason,
            "max_new_tokens": self.max_new_tokens,
            "eos_ids": list(self.eos_ids),
            "sampling": {
                "sample": self.sampling.sample, "temperature": self.sampling.temperature, "top_k": self.sampling.top_k,
                "top_p": self.sampling.top_p, "seed": self.sampling.seed,
            },
            "kv_cache_bytes": self.cache_bytes,
        }
        for t, token in zip(doc["tokens"], self.tokenization.tokens):
            t["generated"] = token.index >= self.prompt_tokens
        if self.source is not None:  # attended[].token_indices are then positions of source_tokens
            doc |= {"source": self.source.text, "source_tokens": tokens_json(self.source), "attended_by": "cross-attention"}
        if self.inspect is not None:
            view = self.inspect.to_json()
            doc |= {k: view[k] for k in ("query", "top_k", "include_special", "level", "units", "rank_by", "layers", "attention") if k in view}
            doc["notes"] = view["notes"]
        return doc


def prompt_tokenization(model: Model, prompt: str, chat: bool = False, system: str | None = None) -> Tokenization:
    if chat:
        from .chat import chat_tokenization

        return chat_tokenization(model, prompt, system)
    check_chat(chat, system)
    return tokenize(model.tokenizer, prompt, max_tokens=None)


def generate(
    model: Model,
    prompt: str,
    max_new_tokens: int = 20,
    sampling: Sampling | None = None,
    top: int = 5,
    chat: bool = False,
    system: str | None = None,
    inspect: InspectOptions | None = None,
    use_cache: bool = True,
    on_step=None,
    max_memory: int | None = None,
) -> GenerateResult:
    """Generate up to `max_new_tokens` after `prompt` (greedy unless `sampling.sample`), stopping
    at the model's EOS (included). `on_step(step)` is called as each token is written. With
    `inspect`, whose query (or query_index, negative from the end) names a token of the whole
    sequence, the result also holds inspect's view of that token (its layer, head, steps, ...):
    for an encoder–decoder, of a token the decoder read or wrote, its cross-attention over the
    source unless `inspect.attention` is "decoder".
    `max_memory`: bytes of de-quantized weights kept between steps (`loading.model.kept`; None:
    the default share of RAM); the rest is de-quantized again at each step, to the same numbers."""
    if inspect is not None and inspect.query is None and inspect.query_index is None:
        raise OptionError("the inspect options name no token to inspect", "give them a `query` or a `query_index`")
    if model.has_cross_attention:  # T5, BART, Marian: the decoder writes a target for the source
        if chat:
            raise OptionError("`chat=True` renders a decoder's chat template; an encoder–decoder model reads a source", "drop `chat=True`")
        from .seq2seq_generate import generate_seq2seq

        sampling = sampling or Sampling()
        sampling.validate()
        if top < 1:
            raise InputError(f"`top={top}` is not valid", "give `top` 1 or more")
        return generate_seq2seq(model, prompt, max_new_tokens, sampling, top, inspect, use_cache, on_step)
    require_decoder(model)
    if inspect is not None and inspect.attention is not None:
        check_kind(model, None, inspect.attention)  # refused: a decoder has one kind of attention
    if top < 1:
        raise InputError(f"`top={top}` is not valid", "give `top` 1 or more")
    if max_new_tokens < 1:
        raise InputError(f"`max_new_tokens={max_new_tokens}` is not valid", "give `max_new_tokens` 1 or more")
    sampling = sampling or Sampling()
    sampling.validate()
    model = kept(model, max_memory)
    tok = prompt_tokenization(model, prompt, chat, system)
    check_length(model, len(tok.tokens), max_new_tokens)
    eos = eos_ids(model)
    ids = [int(i) for i in tok.ids]
    prompt_tokens = len(ids)
    steps, pieces, stop = [], [], "length"
    for d in decode(model, tok.ids, max_new_tokens, sampling.chooser(), eos, use_cache, bad_words(model), forced_eos(model)):
        logprobs = log_softmax(d.logits)
        candidates = tuple(Candidate(int(i), decoded_piece(model.tokenizer, ids, int(i)), float(logprobs[i])) for i in likeliest(logprobs, top))
        piece = decoded_piece(model.tokenizer, ids, d.id)
        step = Step(d.position, d.id, piece, float(logprobs[d.id]), candidates, _attended(d.traces[-1], tok, ids, pieces))
        steps.append(step)
        pieces.append(piece)
        ids.append(d.id)
        if on_step is not None:
            on_step(step)
        if d.id in eos:
            stop = "eos"
    full = continued(model.tokenizer, tok, ids[prompt_tokens:], pieces)
    view = None if inspect is None else inspect_tokens(model, full, inspect)
    return GenerateResult(
        model_info(model), full, prompt_tokens, tuple(steps), stop, sampling, max_new_tokens, eos, chat, system,
        cache_bytes(model.spec, len(ids)) if use_cache else 0, tok, view,
    )


def _attended(trace, tok: Tokenization, ids: list[int], pieces: list[str]) -> Attended | None:
    """The word the writing position attended to most: its last-layer row, mean over heads,
    summed per word, the first token left out (a sink that takes weight from every query)."""
    _, _, weights = trace.rows([trace.q.shape[1] - 1])
    row = weights[:, 0].mean(axis=0)  # (keys,): from position key_start on (a sliding layer's cache keeps only its window)
    row = np.concatenate([np.zeros(trace.key_start, dtype=row.dtype), row])  # (seq,): by position
    if row.shape[0] < 2:
        return None
    prompt = len(tok.tokens)
    # Units: the prompt's words and special tokens, then each generated token so far.
    units = [(u.text, u.token_indices, u.label) for u in tok.word_units]
    units += [(piece.strip() or piece, (prompt + k,), piece.strip() or piece) for k, piece in enumerate(pieces)]
    units = [u for u in units if 0 not in u[1] or len(u[1]) > 1]
    mass = to_words(np.where(np.arange(row.shape[0]) == 0, 0.0, row).astype(np.float32), [list(u[1]) for u in units])
    best = int(np.argmax(mass))
    text, indices, label = units[best]
    return Attended(text, tuple(indices), float(mass[best]), label)
