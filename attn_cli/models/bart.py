"""BART (`model_type: bart`): an encoder–decoder of post-LayerNorm layers with biases, learned
absolute positions and a LayerNorm on the embeddings.

Positions are looked up at position + 2 (BART's offset: the table's first two rows are never
read), the token embeddings are scaled by √d_model when `scale_embedding` is set, and the sum
goes through `layernorm_embedding`. Each layer: x = LN(x + attention(x)); in the decoder,
x = LN(x + cross-attention(x, source)); x = LN(x + fc2(act(fc1(x)))). Q·Kᵀ is scaled by
1/√head_dim. The LM head is the shared embeddings plus `final_logits_bias`. Marian (marian.py)
is this with sinusoidal positions and no embedding LayerNorm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np

from ..maths.ops import layer_norm, linear, merge_heads, split_heads
from .architecture import Architecture
from .base import LayerTrace, Weights, attend, kept, run_layers
from .hyper import MAX_POSITIONS, ConfigValues, EncoderDecoder, Hyper, head_dim
from .seq2seq import Memory, Seq2Seq, activation, cross_attention, cross_spec

OFFSET = 2  # BartLearnedPositionalEmbedding's


def parse(config: dict, model_type: str = "bart", offset: int = OFFSET) -> Hyper:
    """BART's config (Marian's too: `model_type`, and its positions' `offset` 0)."""
    c = ConfigValues(config)
    act = c.string("activation_function", "gelu")
    activation(act)  # refused here, at load, if not supported
    hidden = c.integer("d_model")
    common = dict(hidden=hidden, max_positions=c.integer("max_position_embeddings", high=MAX_POSITIONS), eps=1e-5, activation=act, position_offset=offset)

    def part(prefix: str, causal: bool) -> Hyper:
        heads = c.integer(f"{prefix}_attention_heads")
        layers = c.integer(f"{prefix}_layers")
        return Hyper(model_type=model_type, layers=layers, heads=heads, kv_heads=heads, head_dim=head_dim(c, hidden, heads, key=None), causal=causal, **common)

    decoder = part("decoder", True)
    start = c.integer("decoder_start_token_id", low=0)
    scale = math.sqrt(hidden) if c.boolean("scale_embedding", False) else 1.0
    return replace(part("encoder", False), seq2seq=EncoderDecoder(decoder, start, embed_scale=scale))


def learned_positions(w: Weights, s: Hyper, part: str, start: int, n: int) -> np.ndarray:
    """(n, hidden): the learned position embeddings of positions start … start+n-1, read at + offset."""
    return w.rows(f"{part}.embed_positions.weight", np.arange(start, start + n) + s.position_offset)


Positions = Callable[[Weights, Hyper, str, int, int], np.ndarray]


def embeddings(w: Weights, s: Hyper, part: str, ids: np.ndarray, start: int, positions: Positions) -> np.ndarray:
    """Token embeddings × embed_scale + positions, then the embedding LayerNorm where there is one."""
    tokens = w.rows("shared.weight" if "shared.weight" in w else f"{part}.embed_tokens.weight", ids)
    x = tokens * np.float32(s.seq2seq.embed_scale) + positions(w, s, part, start, len(ids))
    if f"{part}.layernorm_embedding.weight" in w:
        x = layer_norm(x, w[f"{part}.layernorm_embedding.weight"], w[f"{part}.layernorm_embedding.bias"], s.eps)
    return x.astype(np.float32)


def _lin(w: Weights, name: str, x: np.ndarray) -> np.ndarray:
    return linear(x, w[f"{name}.weight"], w[f"{name}.bias"])


def _norm(w: Weights, name: str, x: np.ndarray, eps: float) -> np.ndarray:
    return layer_norm(x, w[f"{name}.weight"], w[f"{name}.bias"], eps)


def _heads(w: Weights, s: Hyper, p: str, x: np.ndarray, names=("q", "k", "v")) -> tuple[np.ndarray, ...]:
    return tuple(split_heads(_lin(w, f"{p}.{n}_proj", x), s.heads) for n in names)


def _feed_forward(w: Weights, s: Hyper, p: str, x: np.ndarray) -> np.ndarray:
    return _lin(w, f"{p}.fc2", activation(s.activation)(_lin(w, f"{p}.fc1", x)))


def encoder_block(x: np.ndarray, w: Weights, layer: int, s: Hyper, whole: bool = True, iv=None) -> LayerTrace:
    p = f"encoder.layers.{layer}"
    q, k, v = _heads(w, s, f"{p}.self_attn", x)
    if not whole:
        return LayerTrace(layer, s, q, k, v, None, None)
    head_output, k, v, _ = attend(q, k, v, s, layer, interventions=iv)
    x = _norm(w, f"{p}.self_attn_layer_norm", x + _lin(w, f"{p}.self_attn.out_proj", merge_heads(head_output)), s.eps)
    fed = _feed_forward(w, s, p, x)
    return LayerTrace(layer, s, q, k, v, head_output, _norm(w, f"{p}.final_layer_norm", x + fed, s.eps), interventions=iv, ffn=kept(iv, "ffn", fed))


def encoder(positions: Positions):
    """The family's `forward` (its encoder), with its positions."""
    def forward(w: Weights, s: Hyper, ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
        x = embeddings(w, s, "encoder", ids, 0, positions)
        return run_layers(x, s.layers, through, lambda x, layer, whole: encoder_block(x, w, layer, s, whole, interventions), interventions)

    return forward


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return hidden  # post-LayerNorm: the last layer's output is already normalised


def output_projection(w: Weights, layer: int) -> np.ndarray:
    return w[f"encoder.layers.{layer}.self_attn.out_proj.weight"].T


def memory(w: Weights, s: Hyper, encoded: np.ndarray) -> Memory:
    d = s.seq2seq.decoder
    return tuple(_heads(w, d, f"decoder.layers.{layer}.encoder_attn", encoded, ("k", "v")) for layer in range(d.layers))


def decoder_block(x, w: Weights, layer: int, s: Hyper, mem: Memory, cache=None, whole: bool = True, iv=None) -> LayerTrace:
    d, p = s.seq2seq.decoder, f"decoder.layers.{layer}"
    q, k, v = _heads(w, d, f"{p}.self_attn", x)
    if not whole and cache is None:
        return LayerTrace(layer, d, q, k, v, None, None)
    head_output, k, v, start = attend(q, k, v, d, layer, cache, iv)
    x = _norm(w, f"{p}.self_attn_layer_norm", x + _lin(w, f"{p}.self_attn.out_proj", merge_heads(head_output)), d.eps)
    (cq,) = _heads(w, d, f"{p}.encoder_attn", x, ("q",))
    cross = cross_attention(cq, mem, cross_spec(s), layer, start, iv)
    x = _norm(w, f"{p}.encoder_attn_layer_norm", x + _lin(w, f"{p}.encoder_attn.out_proj", merge_heads(cross.head_output)), d.eps)
    fed = _feed_forward(w, d, p, x)
    hidden = _norm(w, f"{p}.final_layer_norm", x + fed, d.eps)
    return LayerTrace(layer, d, q, k, v, head_output, hidden, start=start, interventions=iv, ffn=kept(iv, "ffn", fed), cross=cross)


def decoder(positions: Positions):
    """The family's `Seq2Seq.decode`, with its positions."""
    def decode(w: Weights, s: Hyper, ids: np.ndarray, mem: Memory, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
        x = embeddings(w, s, "decoder", ids, 0 if cache is None else cache.length, positions)
        block = lambda x, layer, whole: decoder_block(x, w, layer, s, mem, cache, whole, interventions)  # noqa: E731
        return run_layers(x, s.seq2seq.decoder.layers, through, block, interventions)

    return decode


def logits(w: Weights, s: Hyper, normed: np.ndarray) -> np.ndarray:
    """The LM head (the shared embeddings, unless the checkpoint has its own) + final_logits_bias."""
    out = normed @ (w["lm_head.weight"] if "lm_head.weight" in w else w["shared.weight"]).T
    if "final_logits_bias" in w:
        out = out + w["final_logits_bias"].reshape(-1)
    return out.astype(np.float32)


def decoder_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return hidden


def decoder_projections(w: Weights, layer: int) -> tuple[np.ndarray, np.ndarray]:
    p = f"decoder.layers.{layer}"
    return w[f"{p}.self_attn.out_proj.weight"].T, w[f"{p}.encoder_attn.out_proj.weight"].T


def seq2seq(positions: Positions) -> Seq2Seq:
    """The decoder side of BART's layout with `positions` (Marian's too)."""
    return Seq2Seq(decoder(positions), memory, decoder_norm, logits, decoder_projections)


ARCHITECTURE = Architecture("bart", parse, encoder(learned_positions), final_norm, output_projection, ("model.",), seq2seq=seq2seq(learned_positions))
