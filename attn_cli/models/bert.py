"""BERT (`model_type: bert`), e.g. all-MiniLM-L6-v2: post-LayerNorm encoder, exact GELU.

Weight names follow Hugging Face's BertModel; checkpoints with and without the `bert.`
prefix both load. RoBERTa (roberta.py) is this encoder with other positions.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..maths.gelu import gelu
from ..maths.ops import layer_norm, linear, merge_heads, split_heads
from .architecture import Architecture
from .base import LayerTrace, Weights, attend, kept, run_layers, segments_of, split_trace
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, head_dim
from .runtime import row_local, rows_runner


def parse(config: dict, model_type: str = "bert") -> Hyper:
    c = ConfigValues(config)
    c.choice("position_embedding_type", ("absolute",), "absolute", "BERT position_embedding_type")
    c.choice("hidden_act", ("gelu",), "gelu", "BERT hidden_act")
    c.integer("type_vocab_size", 2)
    hidden, heads = c.integer("hidden_size"), c.integer("num_attention_heads")
    return Hyper(
        model_type=model_type,
        layers=c.integer("num_hidden_layers"),
        heads=heads,
        kv_heads=heads,
        head_dim=head_dim(c, hidden, heads, key=None),
        hidden=hidden,
        max_positions=c.integer("max_position_embeddings", high=MAX_POSITIONS),
        causal=False,
        eps=c.number("layer_norm_eps", 1e-12),
    )


def embeddings(w: Weights, input_ids: np.ndarray, positions: np.ndarray, eps: float) -> np.ndarray:
    """Word + position + token-type (all type 0: one sentence) embeddings, then LayerNorm.

    input_ids, positions: (seq,) -> (seq, hidden).
    """
    x = (
        w.rows("embeddings.word_embeddings.weight", input_ids)
        + w.rows("embeddings.position_embeddings.weight", positions)
        + w.rows("embeddings.token_type_embeddings.weight", np.zeros_like(input_ids))
    )
    return layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)


def block(x: np.ndarray, w: Weights, layer: int, s: Hyper, segments=None, whole: bool = True, iv=None) -> LayerTrace:
    """One encoder layer: self-attention, residual, LayerNorm; feed-forward, residual, LayerNorm.
    A long input's rows (and heads) are shared between threads (`runtime.rows_runner`);
    `segments`: several texts packed in x's rows (see `base.attend`); not `whole`: q, k and v
    only (`base.layer_plan`)."""
    p = f"encoder.layer.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays
    wq, wk, wv, wo, inner_w, out_w = (
        (w[f"{p}{n}.weight"], w[f"{p}{n}.bias"])
        for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense")
    )
    (ln1, ln1_b), (ln2, ln2_b) = ((w[f"{p}{n}.weight"], w[f"{p}{n}.bias"]) for n in ("attention.output.LayerNorm", "output.LayerNorm"))

    def project(x: np.ndarray):
        """q, k, v: (rows, hidden) -> three (rows, hidden)."""
        return linear(x, *wq), linear(x, *wk), linear(x, *wv)

    q, k, v = (split_heads(a, s.heads) for a in row_local(run, project, (s.hidden,) * 3, x))
    if not whole:
        return LayerTrace(layer, s, q, k, v, None, None)
    head_output, k, v, _ = attend(q, k, v, s, layer, interventions=iv, run=run, segments=segments)
    ffn = []

    def tail(merged: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Output projection, residual, LayerNorm; feed-forward, residual, LayerNorm: row by row."""
        x = layer_norm(linear(merged, *wo) + x, ln1, ln1_b, s.eps)
        out = linear(gelu(linear(x, *inner_w), beside_threads=run is not None), *out_w)
        ffn.append(kept(iv, "ffn", out))
        return layer_norm(out + x, ln2, ln2_b, s.eps)

    hidden = row_local(run, tail, s.hidden, merge_heads(head_output), x)
    return LayerTrace(layer, s, q, k, v, head_output, hidden, interventions=iv, ffn=ffn[0])


def encoder(w: Weights, s: Hyper, input_ids: np.ndarray, positions: np.ndarray, segments=None, through=None, iv=None) -> Iterator[LayerTrace]:
    """Run the encoder layer by layer, yielding each layer's trace; stop early by not iterating,
    or at layer `through` (see `base.layer_plan`)."""
    x = embeddings(w, input_ids, positions, s.eps)
    return run_layers(x, s.layers, through, lambda x, layer, whole: block(x, w, layer, s, segments, whole, iv), iv)


def forward(w: Weights, s: Hyper, input_ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
    return encoder(w, s, input_ids, s.position_offset + np.arange(len(input_ids)), through=through, iv=interventions)


def forward_packed(w: Weights, s: Hyper, texts: list[np.ndarray]) -> Iterator[list[LayerTrace]]:
    """Several texts' forward passes at once, layer by layer: their tokens packed into one matrix
    for everything that works token by token (embeddings, projections, feed-forward, norms),
    each text's attention over itself alone. Yields, per layer, one trace per text, the same
    numbers as `forward` of that text alone (each row is computed whole, as alone)."""
    segments = segments_of(texts)
    ids = np.concatenate(texts)
    positions = np.concatenate([s.position_offset + np.arange(len(t)) for t in texts])
    for trace in encoder(w, s, ids, positions, segments):
        yield split_trace(trace, segments)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return hidden  # post-LayerNorm: the last layer's output is already normalised


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden): head h owns rows h·d:(h+1)·d."""
    return w[f"encoder.layer.{layer}.attention.output.dense.weight"].T


ARCHITECTURE = Architecture("bert", parse, forward, final_norm, output_projection, ("bert.",), forward_packed=forward_packed)
