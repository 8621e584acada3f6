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
from ..loading.model import Model, kept
from ..loading.tokenizer import Tokenization, tokenize
from ..maths.analysis import output_slices, transformed_vectors
from ..models import Interventions, LayerTrace, Resume, ValueZeroing
from ..models.base import lm_head
from ..records import frozen
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
        raise InputError(f"contribution method {method!r}", f"use one of: {', '.join(METHODS)}")
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


def rollout_rows(matrices: list[np.ndarray], rows: list[int]) -> np.ndarray:
    """The mean over `rows` of the rows of C_L·…·C_0 (the later layer on the left; matrices
    first layer first), as a chain of vector–matrix products in float64: (seq,)."""
    r = np.zeros(matrices[-1].shape[0])
    r[rows] = 1.0 / len(rows)
    for c in reversed(matrices):
        r = r @ c
    return r


def normalised(c: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (a row of zeros stays zeros)."""
    sums = c.sum(axis=-1, keepdims=True)
    return np.divide(c, sums, out=np.zeros_like(c), where=sums > 0)


def cosine_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row by row 1 - cos(x_i, y_i) as ½‖x/‖x‖ - y/‖y‖‖² in float64 (no cancellation; see
    `ablate.cosine_distance`), clipped to [0, 2] as sklearn's `cosine_distances`: (n, d) ×2 -> (n,)."""
    a, b = np.asarray(x, np.float64), np.asarray(y, np.float64)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.clip(0.5 * np.sum(np.square(a - b), axis=-1), 0.0, 2.0)


# --- value zeroing ---------------------------------------------------------------------------


def value_zeroing_matrices(model: Model, ids: np.ndarray, rows: list[int], last: int) -> list[np.ndarray]:
    """C (seq, seq) of layers 0 … last by value zeroing: every row (one rerun of the layer per
    zeroed position gives all rows at once). The plain output is the same layer run through the
    same (textbook) attention with nothing zeroed, so that C holds the zeroing alone."""
    model = kept(model)
    inputs = [t.residual for t in model.trace(ids, through=None, interventions=Interventions(capture={"residual"}))][: last + 1]
    seq = len(ids)
    out = []
    for layer, x in enumerate(inputs):

        def rerun(positions: tuple[int, ...], layer=layer, x=x) -> LayerTrace:
            passes = model.trace(ids, interventions=Interventions(value_zeroing=(ValueZeroing(layer, positions),), resume=Resume(layer, x)))
            try:
                return next(passes)
            finally:
                passes.close()

        plain = rerun(())
        seen = _visible(plain)
        c = np.zeros((seq, seq))
        for j in range(seq):
            c[:, j] = cosine_distances(rerun((j,)).hidden, plain.hidden)
        out.append(normalised(np.where(seen, c, 0.0)))  # a token cannot see: its value changes nothing
    return out


def _visible(trace: LayerTrace) -> np.ndarray:
    """bool (seq, seq): where query i may look at key j (a decoder's causal mask and window)."""
    seen = trace.visible(slice(None))
    return np.ones((trace.q.shape[1], trace.k.shape[1]), dtype=bool) if seen is None else seen


# --- ALTI and norms: the attention block as one vector per input position --------------------


@frozen
class AltiLayout:
    """Where a family keeps what ALTI reads beyond the trace: `ln1` (post-LN encoders: the
    LayerNorm after the attention block's residual sum, "{n}" the layer; None for pre-LN
    decoders, whose norm comes before the values) and `bias` (the output projection's bias;
    absent from the checkpoint: none)."""

    ln1: str | None
    bias: str
    final_norm: str | None = None  # decoders: the final norm's γ (ALTI-Logit linearises it)
    centred: bool = False  # the final norm is a LayerNorm (else RMSNorm)


_BERT = AltiLayout("encoder.layer.{n}.attention.output.LayerNorm", "encoder.layer.{n}.attention.output.dense.bias")
_LLAMA = AltiLayout(None, "layers.{n}.self_attn.o_proj.bias", "norm.weight")
ALTI_LAYOUTS = {
    "bert": _BERT, "roberta": _BERT,
    "distilbert": AltiLayout("transformer.layer.{n}.sa_layer_norm", "transformer.layer.{n}.attention.out_lin.bias"),
    # BERT's post-LN layer with RoPE (on q and k: the values are plain) and no biases: the same form, b_O = 0
    "nomic_bert": AltiLayout("encoder.layers.{n}.norm1", "encoder.layers.{n}.attn.out_proj.bias"),
    "gpt2": AltiLayout(None, "h.{n}.attn.c_proj.bias", "ln_f.weight", centred=True),
    "llama": _LLAMA, "mistral": _LLAMA, "qwen2": _LLAMA, "qwen3": _LLAMA,
}


def alti_layout(model: Model) -> AltiLayout:
    """Where `model`'s family keeps what ALTI reads. A family it does not cover is the method's
    limit, not a fault of the model: refused as an option that does not fit it."""
    layout = ALTI_LAYOUTS.get(model.spec.model_type)
    if layout is None and model.has_cross_attention:  # T5 is pre-norm: the reason below would be false
        raise OptionError(
            f"ALTI is not defined here for encoder–decoder models ({model.spec.model_type}): contrib reads their encoder only, "
            "and ALTI's decomposition of it (and of cross-attention) is not written yet",
            "use --method norms or value-zeroing (the encoder's self-attention), or attn inspect --target TEXT --attention cross "
            "for what the decoder reads of the source",
        )
    if layout is None:
        raise OptionError(
            f"ALTI is not defined here for {model.spec.model_type} ({_WHY_NOT_ALTI.get(model.spec.model_type, _UNCHECKED)})",
            "use `method='value-zeroing'` or `method='norms'`",
        )
    return layout


_UNCHECKED = "its decomposition is not checked against the reference code here"
_WHY_NOT_ALTI = {
    "gemma2": "its attention output is normalised before the residual sum",
    "gemma3": "its attention output is normalised before the residual sum",
    "gemma3_text": "its attention output is normalised before the residual sum",
    "olmo2": "its attention output is normalised before the residual sum",
}


def head_vectors(trace: LayerTrace, w_o: np.ndarray) -> np.ndarray:
    """f^h(x_j) = v_j·W_O^h for every head and position: (heads, seq, hidden), float64. A
    grouped-query head reads its shared value head."""
    s = trace.spec
    values = trace.v[[trace.kv_head(h) for h in range(s.heads)]]
    return transformed_vectors(values.astype(np.float64), output_slices(w_o, s.heads).astype(np.float64))


def attention_parts(weights: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Σ_h α_ij^h·f^h(x_j) for one query row: weights (heads, seq), vectors (heads, seq, hidden)
    -> (seq, hidden), what each position adds to the attention block's output (no bias). Per
    row and head: never a positions × positions × heads × hidden array."""
    out = np.zeros(vectors.shape[1:])
    for h in range(vectors.shape[0]):
        out += weights[h][:, None] * vectors[h]
    return out


def _layer_parts(model: Model, ids: np.ndarray, last: int, extra: frozenset):
    """(trace, f vectors (heads, seq, hidden)) of layers 0 … last."""
    for trace in model.trace(ids, interventions=Interventions(capture=extra)):
        if trace.layer > last:
            return
        yield trace, head_vectors(trace, model.arch.output_projection(model.weights, trace.layer))


def _query_rows(trace: LayerTrace, rows: list[int], chunk: int = 64):
    """(i, α_i (heads, seq)) for each query row i of `rows`, the softmax computed `chunk` rows at
    a time: never every row's (heads, seq, seq) maps at once."""
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        weights = trace.rows(part)[2].astype(np.float64)
        for n, i in enumerate(part):
            yield i, weights[:, n]


def norms_matrices(model: Model, ids: np.ndarray, rows: list[int], last: int) -> list[np.ndarray]:
    """C (seq, seq) of layers 0 … last by ‖Σ_h α·f^h(x_j)‖₂, rows `rows` filled."""
    out = []
    for trace, vectors in _layer_parts(model, ids, last, frozenset()):
        c = np.zeros((len(ids), len(ids)))
        for i, weights in _query_rows(trace, rows):
            c[i] = np.linalg.norm(attention_parts(weights, vectors), axis=-1)
        out.append(normalised(c))
    return out


def alti_matrices(model: Model, ids: np.ndarray, rows: list[int], last: int) -> list[np.ndarray]:
    """C (seq, seq) of layers 0 … last by ALTI, rows `rows` filled. T_i(x_j): the attention
    parts plus x_i at j = i. y_i is what the layer summed, x_i + Σ_h (head writes) + b_O (the
    `residual` and `heads` captures): as it is for pre-LN decoders, LN1's output for post-LN
    encoders, LN1's linear part split over the T's with the population std of its input."""
    layout = alti_layout(model)
    w, s = model.weights, model.spec
    out = []
    for trace, vectors in _layer_parts(model, ids, last, frozenset({"residual", "heads"})):
        n = trace.layer
        x = trace.residual.astype(np.float64)
        written = trace.head_writes.sum(axis=0, dtype=np.float64)  # Σ_h α·f(x) over every j: the attention's output less b_O
        name = layout.bias.format(n=n)
        bias = w[name].astype(np.float64) if name in w else np.zeros(s.hidden)
        if layout.ln1 is not None:
            gamma, beta = (w[f"{layout.ln1.format(n=n)}.{p}"].astype(np.float64) for p in ("weight", "bias"))
        c = np.zeros((len(ids), len(ids)))
        for i, weights in _query_rows(trace, rows):
            t = attention_parts(weights, vectors)
            t[i] += x[i]
            pre = x[i] + written[i] + bias  # what the layer summed (= Σ_j T_i(x_j) + b_O, up to rounding)
            if layout.ln1 is None:
                y = pre
            else:
                std = ln_std(pre, s.eps)
                t = (t - t.mean(axis=-1, keepdims=True)) * (gamma / std)
                y = (pre - pre.mean()) * (gamma / std) + beta
            distance = np.abs(y[None] - t).sum(axis=-1)  # plain L1: no 1e-6 inside the norm as torch's pairwise_distance
            c[i] = np.maximum(0.0, np.abs(y).sum() - distance)
        out.append(normalised(c))
    return out


def ln_std(x: np.ndarray, eps: float) -> float:
    """The std LayerNorm divides by: √(population variance + eps). (transformer-contributions
    takes torch's unbiased `.std()` of x + eps, which is not what the layer computed.)"""
    return float(np.sqrt(np.square(x - x.mean()).mean() + eps))


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


def alti_logit_rows(model: Model, ids: np.ndarray, position: int, tokens: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ALTI-Logit at `position` of a decoder for each token of `tokens`: (direct, rolled, heads),
    float64. direct[k, l, j] (tokens, layers, position + 1): what layer l's attention writes at
    `position` from input j (Σ_h α·f^h(x_j), no b_O), through the final norm linearised at
    `position`, on token k's unembedding row; heads[k, l, h, j]: head h's part of it;
    rolled[k, l] = direct[k, l]·C_{l-1}·…·C_0 with ALTI's C (rows 0 … position of every layer
    below l). The norm's scale at `position` is one number, known after the last layer: each
    layer is projected on γ·(unembedding row) as it comes (a (heads, seq, tokens) array kept per
    layer, never the layers' (heads, seq, hidden) parts) and divided by it at the end."""
    layout = alti_layout(model)
    s, w = model.spec, model.weights
    ids = np.asarray(ids[: position + 1])
    head = lm_head(w, s)
    scaled = w[layout.final_norm].astype(np.float64)[:, None] * np.stack([head.row(t) for t in tokens]).astype(np.float64).T  # (hidden, tokens): γ·W_U[t]
    if layout.centred:  # LayerNorm: centring is a symmetric projection, so it moves onto the direction
        scaled = scaled - scaled.mean(axis=0)
    projected, pre = [], None
    for trace, vectors in _layer_parts(model, ids, s.layers - 1, frozenset()):
        weights = trace.rows([position])[2][:, 0].astype(np.float64)  # (heads, seq): the predicting row
        projected.append((weights[:, :, None] * vectors) @ scaled)  # (heads, seq, tokens): one row, never seq × seq × hidden
        pre = trace.hidden[position].astype(np.float64)  # the last layer's output: the final norm's input
    scale = ln_std(pre, s.eps) if layout.centred else np.sqrt(np.square(pre).mean() + s.eps)  # LayerNorm's std, RMSNorm's root mean square
    heads = np.stack(projected).transpose(3, 0, 1, 2) / scale  # (tokens, layers, heads, seq)
    direct = heads.sum(axis=2)  # (tokens, layers, seq)
    matrices = alti_matrices(model, ids, list(range(len(ids))), s.layers - 2) if s.layers > 1 else []
    rolled = direct.copy()
    for n in range(1, s.layers):
        for k in range(len(tokens)):
            r = direct[k, n]
            for c in reversed(matrices[:n]):
                r = r @ c
            rolled[k, n] = r
    return direct, rolled, heads


MATRICES = {"value-zeroing": value_zeroing_matrices, "alti": alti_matrices, "norms": norms_matrices}
