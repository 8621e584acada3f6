"""MPNet (`model_type: mpnet`), e.g. all-mpnet-base-v2: BERT's post-LayerNorm encoder with a
relative position bias added to the scaled scores.

The bias is T5's: each key's offset from the query, j - i, falls into one of 32 buckets (exact
up to 8 positions either way, logarithmic up to 128, the last bucket beyond), and each bucket
has a learned value per head (`encoder.relative_attention_bias`). transformers computes it
once, from the first position, and every layer adds the same (heads, seq, seq) term, so here
too: `attend(..., bias=)` adds it before the softmax and each `LayerTrace.score_bias` holds it.
Absolute positions are learned as well and start at padding_idx + 1 = 2 (RoBERTa's rule, with
MPNet's padding index fixed at 1); there are no token types. Weight names follow transformers'
`MPNetModel` (`mpnet.` prefix accepted).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import ModelError
from ..maths.ops import layer_norm
from . import bert, t5
from .architecture import Architecture
from .base import LayerTrace, Weights, attend, run_layers, segments_of, split_trace
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, head_dim
from .runtime import rows_runner

PADDING_IDX = 1  # MPNetEmbeddings' own, whatever config.json's pad_token_id: positions start after it
BUCKETS = 32  # MPNetEncoder.compute_position_bias always asks for 32 buckets, whatever the config says
MAX_DISTANCE = 128


def parse(config: dict) -> Hyper:
    c = ConfigValues(config)
    c.choice("hidden_act", ("gelu",), "gelu", "MPNet hidden_act")
    c.integer("relative_attention_num_buckets", BUCKETS, low=BUCKETS)  # fewer rows than the 32 buckets read: transformers fails too
    hidden, heads = c.integer("hidden_size"), c.integer("num_attention_heads")
    first = PADDING_IDX + 1
    positions = c.integer("max_position_embeddings", high=MAX_POSITIONS)
    if positions <= first:
        raise ModelError(
            f"config.json: max_position_embeddings is {positions}, which leaves no position after the {first} that MPNet reserves",
            f"set max_position_embeddings above {first} (MPNet models have 514)",
        )
    return Hyper(
        model_type="mpnet",
        layers=c.integer("num_hidden_layers"),
        heads=heads,
        kv_heads=heads,
        head_dim=head_dim(c, hidden, heads, key=None),
        hidden=hidden,
        max_positions=positions - first,
        causal=False,
        eps=c.number("layer_norm_eps", 1e-12),
        position_offset=first,
    )


def relative_buckets(offsets: np.ndarray) -> np.ndarray:
    """The bucket of each key's offset from its query, j - i (any shape of int): T5's two-sided
    buckets (`t5.relative_buckets`), 32 of them up to distance 128: keys before the query in
    buckets 0-15, after it in 16-31; offsets under 8 each their own bucket, then logarithmic."""
    return t5.relative_buckets(offsets, BUCKETS, MAX_DISTANCE, bidirectional=True)


def position_bias(w: Weights, seq: int) -> np.ndarray:
    """The relative position term every layer adds to its scaled scores: (heads, seq, seq),
    bias[h, i, j] = the learned value of head h for bucket(j - i)."""
    positions = np.arange(seq)
    table = w["encoder.relative_attention_bias.weight"]  # (buckets, heads)
    return np.ascontiguousarray(table[relative_buckets(positions[None, :] - positions[:, None])].transpose(2, 0, 1))


def embeddings(w: Weights, input_ids: np.ndarray, positions: np.ndarray, eps: float) -> np.ndarray:
    """Word + position embeddings, then LayerNorm: (seq,) ids and positions -> (seq, hidden)."""
    x = w.rows("embeddings.word_embeddings.weight", input_ids) + w.rows("embeddings.position_embeddings.weight", positions)
    return layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)


def block(x: np.ndarray, w: Weights, layer: int, s: Hyper, bias, whole: bool = True, iv=None, segments=None) -> LayerTrace:
    """One encoder layer, BERT's: self-attention (+ the position bias), residual, LayerNorm;
    feed-forward, residual, LayerNorm. Not `whole`: q, k and v only (`base.layer_plan`).
    `segments`: packed texts (see `forward_packed`), `bias` then one (heads, n, n) per text."""
    p = f"encoder.layer.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays
    names = ("attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o", "intermediate.dense", "output.dense",
             "attention.LayerNorm", "output.LayerNorm")
    weights = [(w[f"{p}{n}.weight"], w[f"{p}{n}.bias"]) for n in names]

    def attention(q, k, v):
        if segments is None:
            return attend(q, k, v, s, layer, interventions=iv, bias=bias)[:3]
        # each text attends to itself alone, with its own bias, as it would by itself
        parts = [attend(q[:, a:b], k[:, a:b], v[:, a:b], s, layer, bias=text_bias)[0] for (a, b), text_bias in zip(segments, bias, strict=True)]
        return np.concatenate(parts, axis=1), k, v

    return bert.post_ln_layer(x, s, layer, weights, run, whole, iv, attention, score_bias=None if segments else bias)


def forward(w: Weights, s: Hyper, input_ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
    """One `LayerTrace` per layer (up to `through`: see `base.layer_plan`), each with the one
    position bias of the pass as its `score_bias`."""
    x = embeddings(w, input_ids, s.position_offset + np.arange(len(input_ids)), s.eps)
    bias = position_bias(w, len(input_ids))
    return run_layers(x, s.layers, through, lambda x, layer, whole: block(x, w, layer, s, bias, whole, interventions), interventions)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return hidden  # post-LayerNorm: the last layer's output is already normalised


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden): head h owns rows h·d:(h+1)·d."""
    return w[f"encoder.layer.{layer}.attention.attn.o.weight"].T


def forward_packed(w: Weights, s: Hyper, texts: list[np.ndarray]) -> Iterator[list[LayerTrace]]:
    """Several texts' forward passes at once (as `bert.forward_packed`): the per-token steps on
    their packed rows, each text's attention over itself with its own position bias. Yields,
    per layer, one trace per text (its `score_bias` that text's), the numbers of `forward`."""
    segments = segments_of(texts)
    positions = np.concatenate([s.position_offset + np.arange(len(t)) for t in texts])
    x = embeddings(w, np.concatenate(texts), positions, s.eps)
    biases = [position_bias(w, len(t)) for t in texts]
    for trace in run_layers(x, s.layers, None, lambda x, layer, whole: block(x, w, layer, s, biases, whole, segments=segments), None):
        yield split_trace(trace, segments, biases)


ARCHITECTURE = Architecture("mpnet", parse, forward, final_norm, output_projection, ("mpnet.",), forward_packed=forward_packed)
