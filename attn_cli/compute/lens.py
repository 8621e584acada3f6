"""`lens`: the logit lens (nostalgebraist 2020). The residual stream after each layer, read
through the model's final norm and LM head, as if the model stopped there: what it would
predict next, layer by layer. After the last layer it is the model's real prediction."""

from __future__ import annotations

import numpy as np

from ..loading.model import Model, kept
from ..loading.tokenizer import Tokenization, decoded_piece, tokenize
from ..maths.sampling import log_softmax, top_tokens
from ..models.base import lm_head
from ..records import frozen
from .decoding import require_decoder
from .generate import Candidate
from .inspect import model_info
from .options import check_chat
from .query import resolve_query
from .result import ModelInfo, QueryInfo, document_header, floats, query_json


@frozen
class LensLayer:
    """The next-token prediction read after `layer`: the top candidates by log-probability."""

    layer: int
    top: tuple[Candidate, ...]


@frozen  # a short repr: arrays as their shapes
class LensResult:
    model: ModelInfo
    tokenization: Tokenization
    query: QueryInfo  # the position read: its last token (the next token comes after it)
    position: int
    layers: tuple[LensLayer, ...]
    top_k: int

    def to_json(self) -> dict:
        return {
            **document_header(self.model, self.tokenization),
            "query": query_json(self.query),
            "position": self.position,
            "top_k": self.top_k,
            "layers": [
                {"layer": r.layer, "top": [{"id": c.id, "text": c.text, "logprob": floats(np.float32(c.logprob))} for c in r.top]}
                for r in self.layers
            ],
        }


def lens(
    model: Model, text: str, query: str | None = None, query_index: int | None = None, top_k: int = 5, chat: bool = False, system: str | None = None,
) -> LensResult:
    """Top-`top_k` next-token predictions after every layer, at the last token (or the query's
    last token)."""
    from ..errors import InputError

    require_decoder(model, "lens")
    check_chat(chat, system)
    if top_k < 1:
        raise InputError(f"`top_k={top_k}` is not valid", "give `top_k` 1 or more")
    if chat:
        from .chat import chat_tokenization

        tok = chat_tokenization(model, text, system)
    else:
        tok = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
    q = resolve_query(tok, query, query_index if query is not None or query_index is not None else -1)
    position = q.token_indices[-1]
    before = [int(i) for i in tok.ids[: position + 1]]
    rows = []
    model = kept(model)
    head = lm_head(model.weights, model.spec)
    for _ in head.blocks():  # read first, so that the budget keeps the head (read at every layer) before layers (read once)
        pass
    for trace in model.trace(tok.ids[: position + 1]):  # later tokens cannot change this position
        logprobs = log_softmax(model.arch.logits(model.weights, model.spec, trace.hidden[-1:], head)[0])
        top = tuple(Candidate(int(i), decoded_piece(model.tokenizer, before, int(i)), float(logprobs[i])) for i in top_tokens(logprobs, top_k))
        rows.append(LensLayer(trace.layer, top))
    return LensResult(model_info(model), tok, QueryInfo(q.text, q.token_indices, q.occurrence, q.occurrences), position, tuple(rows), top_k)
