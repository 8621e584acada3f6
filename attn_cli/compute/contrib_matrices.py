"""The per-layer contribution matrices `attn contrib` and `attn stats --contributions` read, one
function per method, and ALTI-Logit's per-layer rows (the definitions: `compute.contrib`'s
docstring and docs/contributions.md). Each matrix is (seq, seq), rows normalised; work goes per
layer and per query row, never a positions × positions × heads × hidden array."""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from ..loading.model import Model, kept
from ..maths.analysis import output_slices, transformed_vectors
from ..models import Interventions, LayerTrace, Resume, ValueZeroing
from ..models.base import lm_head
from ..records import frozen


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
    layers, decoders' and ModernBERT's, whose norm comes before the values) and `bias` (the
    output projection's bias; absent from the checkpoint: none)."""

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
    # BERT's layer with a relative position bias on the scores (in the weights ALTI reads; its values are plain)
    "mpnet": AltiLayout("encoder.layer.{n}.attention.LayerNorm", "encoder.layer.{n}.attention.attn.o.bias"),
    # A pre-LN encoder: its norm comes before the values (layer 0 has none), mlp_norm reads x + attention, as a decoder's
    "modernbert": AltiLayout(None, "layers.{n}.attn.Wo.bias"),
    "gpt2": AltiLayout(None, "h.{n}.attn.c_proj.bias", "ln_f.weight", centred=True),
    "llama": _LLAMA, "mistral": _LLAMA, "qwen2": _LLAMA, "qwen3": _LLAMA,
    "phi3": _LLAMA,  # Llama's layer with q | k | v fused: the values ALTI reads are the trace's
    "mixtral": _LLAMA, "qwen3_moe": _LLAMA,  # Llama's attention block; the experts come after LN2, which ALTI leaves out
    # The sequential layer only: LN2 reads x + attention, the sum ALTI decomposes (the parallel one: see alti_layout)
    "gpt_neox": AltiLayout(None, "layers.{n}.attention.dense.bias", "final_layer_norm.weight", centred=True),
}


def alti_layout(model: Model) -> AltiLayout:
    """Where `model`'s family keeps what ALTI reads. A family it does not cover is the method's
    limit, not a fault of the model: refused as an option that does not fit it."""
    layout = ALTI_LAYOUTS.get(model.spec.model_type)
    if model.spec.parallel_residual:
        raise OptionError(
            f"ALTI is not defined for {model.spec.model_type} with the parallel residual (use_parallel_residual, as every Pythia): "
            "its attention and MLP both read the layer's input, so the layer never forms x + attention, the sum ALTI decomposes",
            "use `method='value-zeroing'` or `method='norms'`",
        )
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


_UNCHECKED = "no reference fixture checks its decomposition for this family yet"
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
