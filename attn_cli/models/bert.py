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
from .base import LayerTrace, Weights, attend, encoder_passes, kept, run_layers
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


def post_ln_layer(x: np.ndarray, s: Hyper, layer: int, weights, run, whole: bool, iv, attention, score_bias=None) -> LayerTrace:
    """BERT's encoder layer (DistilBERT's, MPNet's): q, k, v, then `attention(q, k, v)` ->
    (head_output, k, v as they entered P·V); the output projection, residual, LayerNorm; GELU
    feed-forward, residual, LayerNorm. `weights`: (weight, bias) of q, k, v, the output
    projection, the feed-forward's two, LN1, LN2. The steps before and after attention are
    row-local (`runtime.row_local`, split over `run`); not `whole`: q, k and v only
    (`base.layer_plan`). `score_bias`: the trace's (MPNet's relative positions)."""
    wq, wk, wv, wo, inner_w, out_w, ln1, ln2 = weights

    def project(x: np.ndarray):
        """q, k, v: (rows, hidden) -> three (rows, hidden)."""
        return linear(x, *wq), linear(x, *wk), linear(x, *wv)

    q, k, v = (split_heads(a, s.heads) for a in row_local(run, project, (s.hidden,) * 3, x))
    if not whole:
        return LayerTrace(layer, s, q, k, v, None, None, score_bias=score_bias)
    head_output, k, v = attention(q, k, v)
    ffn = []

    def tail(merged: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Output projection, residual, LayerNorm; feed-forward, residual, LayerNorm: row by row."""
        x = layer_norm(linear(merged, *wo) + x, *ln1, s.eps)
        out = linear(gelu(linear(x, *inner_w), beside_threads=run is not None), *out_w)
        ffn.append(kept(iv, "ffn", out))
        return layer_norm(out + x, *ln2, s.eps)

    hidden = row_local(run, tail, s.hidden, merge_heads(head_output), x)
    return LayerTrace(layer, s, q, k, v, head_output, hidden, interventions=iv, ffn=ffn[0], score_bias=score_bias)


def block(x: np.ndarray, w: Weights, layer: int, s: Hyper, segments=None, whole: bool = True, iv=None) -> LayerTrace:
    """One encoder layer (`post_ln_layer`). A long input's rows (and heads) are shared between
    threads (`runtime.rows_runner`); `segments`: several texts packed in x's rows (see `base.attend`)."""
    p = f"encoder.layer.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays
    names = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense",
             "attention.output.LayerNorm", "output.LayerNorm")
    weights = [(w[f"{p}{n}.weight"], w[f"{p}{n}.bias"]) for n in names]
    attention = lambda q, k, v: attend(q, k, v, s, layer, interventions=iv, run=run, segments=segments)[:3]  # noqa: E731
    return post_ln_layer(x, s, layer, weights, run, whole, iv, attention)


def encoder(w: Weights, s: Hyper, input_ids: np.ndarray, positions: np.ndarray, segments=None, through=None, iv=None) -> Iterator[LayerTrace]:
    """Run the encoder layer by layer, yielding each layer's trace; stop early by not iterating,
    or at layer `through` (see `base.layer_plan`)."""
    x = embeddings(w, input_ids, positions, s.eps)
    return run_layers(x, s.layers, through, lambda x, layer, whole: block(x, w, layer, s, segments, whole, iv), iv)


forward, forward_packed = encoder_passes(encoder)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return hidden  # post-LayerNorm: the last layer's output is already normalised


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden): head h owns rows h·d:(h+1)·d."""
    return w[f"encoder.layer.{layer}.attention.output.dense.weight"].T


ARCHITECTURE = Architecture("bert", parse, forward, final_norm, output_projection, ("bert.",), forward_packed=forward_packed)
