"""`contrib`: how much each input position contributes to a token's representation, layer by
layer, by three methods that share one result (docs/contributions.md states the definitions):

- `value-zeroing` (Mohebbi et al., EACL 2023): in layer l, token j's value vectors are zeroed
  (every head, that layer only) and the layer is run again from its unchanged input; C[i, j] is
  the cosine distance of token i's output from its plain output, clipped to [0, 2], each row
  divided by its sum over every position (special tokens and i itself included), as
  hmohebbi/ValueZeroing's `scoring/value_zeroing.py` does.
- `alti` (Ferrando, Gállego & Costa-jussà, EMNLP 2022): the layer's attention block and residual
  decomposed into one vector per input position, T_i(x_j); C[i, j] = max(0, ‖y_i‖₁ - ‖y_i -
  T_i(x_j)‖₁), each row divided by its sum. Encoders (post-LN, Nomic BERT too): LN1 split
  linearly with the population std of its input (mt-upc/transformer-contributions); pre-LN
  decoders: the layer's norm comes before the values, so T_i(x_j) = Σ_h α·v_j·W_O (+ x_i for
  j = i) is exact (mt-upc/logit-explanations). The feed-forward and LN2 are left out.
- `norms` (Kobayashi et al., EMNLP 2020): ‖Σ_h α_ij^h·f^h(x_j)‖₂ with f^h(x_j) = v_j·W_O^h, the
  vectors `attn inspect --norms` measures head by head (`maths.analysis.transformed_vectors`),
  summed over the heads; each row divided by its sum.

- `alti-logit` (Ferrando et al., ACL 2023; mt-upc/logit-explanations), decoders: each input
  token's contribution to the logit of a target token (minus a foil's, with a contrast) at the
  predicting position t. Per layer l, the attention block's per-source vectors at t, Σ_h
  α_tj^h·f^h(x_j) (no b_O, no MLP, no embedding), through the final norm linearised at t (its
  γ and t's own scale, no β) and onto the target's unembedding row: ∆_l[j]; then rolled out
  to the input through the layers below, ∆_l·C_{l-1}·…·C_0 with ALTI's C; the total is the
  sum over layers.

Rollout (`rollout`): the query's row of C_L·…·C_1, the later layer on the left, without an
added identity: each method's C already holds the token's own share.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, OptionError
from ..loading.model import Model
from ..loading.tokenizer import Tokenization, tokenize
from ..models.base import lm_head
from ..records import frozen
from .contrib_matrices import ALTI_LAYOUTS, MATRICES, alti_layout, alti_logit_rows, rollout_rows
from .inspect import model_info
from .options import select_layers
from .prediction import Reruns, Target
from .query import Query, resolve_query
from .result import ModelInfo, document_header, floats, query_json

METHODS = ("alti", "value-zeroing", "norms", "alti-logit")


@frozen
class ContribResult:
    """`rows` (len(layers), seq): per layer shown, the query's row of that layer's contribution
    matrix over the layer's input positions (a query of several tokens: the mean of their rows;
    each row sums to 1). `rollout` (len(layers), seq): the query's row of C_l·…·C_0 through each
    layer shown, None unless asked for; `whole` (seq,): through the last layer of the model."""

    model: ModelInfo
    tokenization: Tokenization
    query: Query
    method: str
    layers: tuple[int, ...]
    rows: np.ndarray
    rollout: np.ndarray | None = None
    whole: np.ndarray | None = None
    logit: LogitExplained | None = None

    def to_json(self) -> dict:
        layers = [
            {"layer": layer, "contributions": floats(row), "rollout": None if self.rollout is None else floats(self.rollout[n])}
            for n, (layer, row) in enumerate(zip(self.layers, self.rows, strict=True))
        ]
        doc = {**document_header(self.model, self.tokenization), "query": query_json(self.query), "method": self.method, "layers": layers}
        doc["whole"] = floats(self.whole)
        if self.logit is not None:
            for entry, direct, heads in zip(layers, self.logit.direct, self.logit.heads, strict=True):
                entry["direct"], entry["heads"] = floats(direct), floats(heads)
            doc["logit"] = self.logit.to_json()
        return doc


@frozen
class LogitExplained:
    """What `alti-logit` explains: the target (and foil) token at the predicting `position`, the
    logit (difference) the model gives it, `direct` (len(layers), seq): each layer shown's
    ∆logit per input position before the rollout (the layer's own inputs), and `heads`
    (len(layers), heads, seq): the same per head (summing to `direct`; logit-explanations'
    `aff_x_j_h`, the paper's head-level logit updates)."""

    position: int
    target: Target
    foil: Target | None
    logit: float
    direct: np.ndarray
    heads: np.ndarray

    def to_json(self) -> dict:
        def token(t: Target | None):
            return None if t is None else {"id": t.id, "text": t.text, "logprob": t.logprob, "chosen": t.chosen}

        return {"position": self.position, "target": token(self.target), "contrast": token(self.foil), "logit": self.logit}


def contributions(
    model: Model, text: str, query: str | None = None, query_index: int | None = None, method: str = "alti",
    layer: str | int = "all", rollout: bool = False, target: str | None = None, target_id: int | None = None,
    contrast: str | None = None, contrast_id: int | None = None,
) -> ContribResult:
    """Each input position's contribution to the query's representation in each layer (see the
    module). No query: a decoder's last token; an encoder needs one."""
    if method not in METHODS:
        raise InputError(f"contribution method {method!r} is not valid", f"use one of: {', '.join(METHODS)}")
    if method != "alti-logit" and any(x is not None for x in (target, target_id, contrast, contrast_id)):
        raise InputError("--target, --target-id and --contrast explain a logit", "use them with --method alti-logit")
    layers = select_layers(layer, model.spec.layers)
    if method == "alti-logit":
        return _logit_contributions(model, text, query, query_index, layers, target, target_id, contrast, contrast_id)
    if method == "alti":
        alti_layout(model)  # refuse a family ALTI does not cover before running anything
    tok = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
    if model.spec.causal and query is None and query_index is None:
        query_index = -1  # a decoder's last token reads the whole text (as ablate and knockout); an encoder's last is [SEP]
    q = resolve_query(tok, query, query_index)
    seq = len(tok.ids)
    # A decoder's token i reads positions 0 … i only: later tokens change nothing asked for.
    seen = max(q.token_indices) + 1 if model.spec.causal else seq
    wanted = list(range(seen)) if rollout else list(q.token_indices)
    last = model.spec.layers - 1 if rollout else max(layers)
    matrices = MATRICES[method](model, np.asarray(tok.ids[:seen]), wanted, last)
    query_rows = list(q.token_indices)

    def padded(x: np.ndarray) -> np.ndarray:
        out = np.zeros(seq, dtype=np.float32)
        out[:seen] = x
        return out

    rows = np.stack([padded(matrices[n][query_rows].mean(axis=0)) for n in layers])
    rolled = whole = None
    if rollout:
        chain = [rollout_rows(matrices[: n + 1], query_rows) for n in range(model.spec.layers)]
        rolled = np.stack([padded(chain[n]) for n in layers])
        whole = padded(chain[-1])
    return ContribResult(model_info(model), tok, q, method, tuple(layers), rows, rolled, whole)


# --- ALTI-Logit ------------------------------------------------------------------------------


def _logit_contributions(
    model: Model, text: str, query: str | None, query_index: int | None, layers: list[int], target: str | None,
    target_id: int | None, contrast: str | None, contrast_id: int | None,
) -> ContribResult:
    if not model.arch.decodes:  # before ALTI's own limits: the method asks for a next token first
        working = "`method='alti'`" if model.spec.model_type in ALTI_LAYOUTS else "`method='value-zeroing'` or `method='norms'`"
        raise OptionError(f"ALTI-Logit explains a decoder's next token; {model.spec.model_type} is an encoder and predicts none", f"use {working}")
    alti_layout(model)  # refuse a family ALTI does not cover before running anything
    tok = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
    q = resolve_query(tok, query, query_index if query is not None or query_index is not None else -1)
    position = q.token_indices[-1]  # the query's last token, else the text's: the one predicting the next
    reruns = Reruns(model, np.asarray(tok.ids), position)
    chosen = reruns.target(target, target_id)
    foil = reruns.target(contrast, contrast_id) if contrast is not None or contrast_id is not None else None
    if foil is not None and foil.id == chosen.id:  # the difference would be 0 at every layer and token
        raise OptionError(
            f"the contrast {foil.text!r} is the target itself (token {foil.id}): their logit difference is 0 everywhere",
            "give `contrast` a token other than the target",
        )
    tokens = (chosen.id,) if foil is None else (chosen.id, foil.id)
    direct, rolled, heads = alti_logit_rows(reruns.model, reruns.ids, position, tokens)
    signs = np.array([1.0, -1.0][: len(tokens)])
    direct, rolled, heads = (np.tensordot(signs, a, 1) for a in (direct, rolled, heads))
    seq = len(tok.ids)

    def padded(x: np.ndarray) -> np.ndarray:
        out = np.zeros(seq, dtype=np.float32)
        out[: len(x)] = x
        return out

    head = lm_head(model.weights, model.spec)
    normed = reruns.output.astype(np.float64)
    logit = float(sum(sign * normed @ head.row(t).astype(np.float64) for sign, t in zip(signs, tokens, strict=True)))
    by_head = np.stack([[padded(h) for h in heads[n]] for n in layers])
    explained = LogitExplained(position, chosen, foil, logit, np.stack([padded(direct[n]) for n in layers]), by_head)
    return ContribResult(
        model_info(model), tok, q, "alti-logit", tuple(layers), np.stack([padded(rolled[n]) for n in layers]),
        whole=padded(rolled.sum(axis=0)), logit=explained,
    )
