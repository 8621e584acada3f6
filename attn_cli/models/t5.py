"""T5 (`model_type: t5`; T5 v1.1 and Flan-T5 by `feed_forward_proj`): an encoder–decoder with
RMS-norms before each sublayer, no biases, and no absolute positions.

Positions enter only as a bias on the scores, shown as the term it is: Q·Kᵀ (not scaled: T5
folds √d_k into its initialisation) + position bias → softmax. The bias is a learned value per
head for the bucket of each key's offset from its query (`relative_buckets`): a few exact
offsets, then logarithmic buckets up to `relative_attention_max_distance`. The encoder's buckets
are two-sided (keys before and after the query in separate halves), the decoder's one-sided
(its keys are all behind the query). Only the first layer holds the table; every layer adds the
same bias (`LayerTrace.score_bias`). Cross-attention has none. The feed-forward is
wo(act(wi·x)), or gated, wo(act(wi_0·x) ⊙ wi_1·x) (Flan-T5's "gated-gelu": tanh GELU).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..maths.ops import linear, merge_heads, rms_norm, split_heads
from .architecture import Architecture
from .base import LayerTrace, Weights, attend, kept, run_layers
from .hyper import MAX_POSITIONS, ConfigValues, EncoderDecoder, Hyper
from .seq2seq import Memory, Seq2Seq, activation, cross_attention, cross_spec


def parse(config: dict) -> Hyper:
    c = ConfigValues(config)
    proj = c.string("feed_forward_proj", "relu")
    gated = proj.startswith("gated-")
    act = proj.removeprefix("gated-")
    act = "gelu_new" if proj == "gated-gelu" else act  # transformers' T5Config does the same
    activation(act)  # refused here, at load, if not supported
    hidden, heads, dim = c.integer("d_model"), c.integer("num_heads"), c.integer("d_kv")
    layers = c.integer("num_layers")
    # Original T5 (tied embeddings) scales the decoder's output by d_model^-0.5 before the LM head.
    rescale = c.boolean("scale_decoder_outputs", config.get("tie_word_embeddings") is not False)
    common = dict(heads=heads, kv_heads=heads, head_dim=dim, hidden=hidden, max_positions=MAX_POSITIONS,
                  eps=c.number("layer_norm_epsilon", 1e-6), activation=("gated-" if gated else "") + act, query_scale=1.0)
    decoder = Hyper(model_type="t5", layers=c.integer("num_decoder_layers", layers), causal=True, **common)
    extra = EncoderDecoder(
        decoder, c.integer("decoder_start_token_id", 0, low=0), buckets=c.integer("relative_attention_num_buckets", 32, low=2),
        max_distance=c.integer("relative_attention_max_distance", 128, low=2), output_scale=hidden**-0.5 if rescale else 1.0,
    )
    return Hyper(model_type="t5", layers=layers, causal=False, seq2seq=extra, **common)


def relative_buckets(offsets: np.ndarray, buckets: int, max_distance: int, bidirectional: bool) -> np.ndarray:
    """The bucket of each key's offset from its query, j - i (any shape of int), as T5's
    `_relative_position_bucket`: two-sided, keys after the query take the upper half of the
    buckets; one-sided (a decoder), keys ahead share bucket 0. Within a half, offsets under half
    of it are exact, then logarithmic up to max_distance. The logarithm is taken in float32, as
    transformers takes it, so that the buckets' edges fall where its do."""
    n = np.asarray(offsets)
    base = np.zeros(n.shape, dtype=np.int64)
    if bidirectional:
        buckets //= 2
        base = np.where(n > 0, buckets, 0)
        n = np.abs(n)
    else:
        n = -np.minimum(n, 0)
    exact = buckets // 2
    far = np.maximum(n, exact)  # the log of the offsets that take the logarithmic buckets (the others are exact)
    scaled = np.log(far.astype(np.float32) / np.float32(exact)) / np.float32(math.log(max_distance / exact)) * np.float32(buckets - exact)
    large = np.minimum(exact + scaled.astype(np.int64), buckets - 1)
    return base + np.where(n < exact, n, large)


def position_bias(w: Weights, s: Hyper, part: str, queries: np.ndarray, keys: int) -> np.ndarray:
    """The relative position term every layer of `part` (encoder, decoder) adds to Q·Kᵀ:
    (heads, len(queries), keys), bias[h, i, j] = the learned value of head h for bucket(j - i)."""
    e = s.seq2seq
    table = w[f"{part}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]  # (buckets, heads)
    offsets = np.arange(keys)[None, :] - np.asarray(queries)[:, None]
    return np.ascontiguousarray(table[relative_buckets(offsets, e.buckets, e.max_distance, part == "encoder")].transpose(2, 0, 1))


def embeddings(w: Weights, ids: np.ndarray) -> np.ndarray:
    """The shared token embeddings (seq, hidden): no scale, no positions."""
    return w.rows("shared.weight" if "shared.weight" in w else "encoder.embed_tokens.weight", ids)


def feed_forward(w: Weights, s: Hyper, p: str, x: np.ndarray) -> np.ndarray:
    """wo(act(wi·x)), or gated: wo(act(wi_0·x) ⊙ wi_1·x). (seq, hidden) -> (seq, hidden)."""
    act = activation(s.activation.removeprefix("gated-"))
    if s.activation.startswith("gated-"):
        inner = act(linear(x, w[f"{p}DenseReluDense.wi_0.weight"])) * linear(x, w[f"{p}DenseReluDense.wi_1.weight"])
    else:
        inner = act(linear(x, w[f"{p}DenseReluDense.wi.weight"]))
    return linear(inner, w[f"{p}DenseReluDense.wo.weight"])


def projections(w: Weights, s: Hyper, p: str, h: np.ndarray, names=("q", "k", "v")) -> tuple[np.ndarray, ...]:
    """The named projections of h (seq, hidden), each (heads, seq, d_kv)."""
    return tuple(split_heads(linear(h, w[f"{p}{n}.weight"]), s.heads) for n in names)


def encoder_block(x: np.ndarray, w: Weights, layer: int, s: Hyper, bias: np.ndarray, whole: bool = True, iv=None) -> LayerTrace:
    """x + attention(norm(x)) with the position bias; then x + feed_forward(norm(x))."""
    p = f"encoder.block.{layer}.layer."
    q, k, v = projections(w, s, f"{p}0.SelfAttention.", rms_norm(x, w[f"{p}0.layer_norm.weight"], s.eps))
    if not whole:
        return LayerTrace(layer, s, q, k, v, None, None, score_bias=bias)
    head_output, k, v, _ = attend(q, k, v, s, layer, interventions=iv, bias=bias)
    x = x + linear(merge_heads(head_output), w[f"{p}0.SelfAttention.o.weight"])
    fed = feed_forward(w, s, f"{p}1.", rms_norm(x, w[f"{p}1.layer_norm.weight"], s.eps))
    return LayerTrace(layer, s, q, k, v, head_output, x + fed, interventions=iv, ffn=kept(iv, "ffn", fed), score_bias=bias)


def forward(w: Weights, s: Hyper, ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
    """The encoder: one `LayerTrace` per layer, each with the pass's one (two-sided) position bias."""
    bias = position_bias(w, s, "encoder", np.arange(len(ids)), len(ids))
    block = lambda x, layer, whole: encoder_block(x, w, layer, s, bias, whole, interventions)  # noqa: E731
    return run_layers(embeddings(w, ids), s.layers, through, block, interventions)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return rms_norm(hidden, w["encoder.final_layer_norm.weight"], s.eps)


def output_projection(w: Weights, layer: int) -> np.ndarray:
    return w[f"encoder.block.{layer}.layer.0.SelfAttention.o.weight"].T


def memory(w: Weights, s: Hyper, encoded: np.ndarray) -> Memory:
    """Each decoder layer's cross-attention keys and values of the source, computed once."""
    d = s.seq2seq.decoder
    return tuple(projections(w, d, f"decoder.block.{layer}.layer.1.EncDecAttention.", encoded, ("k", "v")) for layer in range(d.layers))


def decoder_block(x, w: Weights, layer: int, s: Hyper, bias, mem: Memory, cache=None, whole: bool = True, iv=None) -> LayerTrace:
    """Causal self-attention with the one-sided position bias, cross-attention over the source
    (no bias), feed-forward: each x + sublayer(norm(x))."""
    d, p = s.seq2seq.decoder, f"decoder.block.{layer}.layer."
    q, k, v = projections(w, d, f"{p}0.SelfAttention.", rms_norm(x, w[f"{p}0.layer_norm.weight"], d.eps))
    if not whole and cache is None:
        return LayerTrace(layer, d, q, k, v, None, None, score_bias=bias)
    head_output, k, v, start = attend(q, k, v, d, layer, cache, iv, bias=bias)
    x = x + linear(merge_heads(head_output), w[f"{p}0.SelfAttention.o.weight"])
    (cq,) = projections(w, d, f"{p}1.EncDecAttention.", rms_norm(x, w[f"{p}1.layer_norm.weight"], d.eps), ("q",))
    cross = cross_attention(cq, mem, cross_spec(s), layer, start, iv)
    x = x + linear(merge_heads(cross.head_output), w[f"{p}1.EncDecAttention.o.weight"])
    fed = feed_forward(w, d, f"{p}2.", rms_norm(x, w[f"{p}2.layer_norm.weight"], d.eps))
    return LayerTrace(layer, d, q, k, v, head_output, x + fed, start=start, interventions=iv, ffn=kept(iv, "ffn", fed), score_bias=bias, cross=cross)


def decode(w: Weights, s: Hyper, ids: np.ndarray, mem: Memory, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
    """The decoder: one `LayerTrace` per layer (its `cross` the cross-attention); with a KV cache,
    ids are the tokens after the cached ones, and the bias is their rows."""
    start = 0 if cache is None else cache.length
    bias = position_bias(w, s, "decoder", np.arange(start, start + len(ids)), start + len(ids))
    block = lambda x, layer, whole: decoder_block(x, w, layer, s, bias, mem, cache, whole, interventions)  # noqa: E731
    return run_layers(embeddings(w, ids), s.seq2seq.decoder.layers, through, block, interventions)


def decoder_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return rms_norm(hidden, w["decoder.final_layer_norm.weight"], s.eps)


def logits(w: Weights, s: Hyper, normed: np.ndarray) -> np.ndarray:
    """The LM head: its own weights where the checkpoint has them (Flan-T5), else the shared
    embeddings, after the rescaling original T5 applies."""
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["shared.weight"]
    return ((normed * np.float32(s.seq2seq.output_scale)) @ head.T).astype(np.float32)


def decoder_projections(w: Weights, layer: int) -> tuple[np.ndarray, np.ndarray]:
    p = f"decoder.block.{layer}.layer."
    return w[f"{p}0.SelfAttention.o.weight"].T, w[f"{p}1.EncDecAttention.o.weight"].T


ARCHITECTURE = Architecture(
    "t5", parse, forward, final_norm, output_projection, seq2seq=Seq2Seq(decode, memory, decoder_norm, logits, decoder_projections),
)
