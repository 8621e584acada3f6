"""Nomic BERT (`model_type: nomic_bert`; llama.cpp's `nomic-bert`): nomic-embed-text-v1.5.

BERT's post-LayerNorm encoder (word + token-type embeddings and a LayerNorm; in each layer
x = LN(x + attention(x)), then x = LN(x + SwiGLU(x))) with RoPE in place of learned positions
(θ 1000, the whole head, NeoX's rotate_half pairs) and no biases in the projections or the
feed-forward: SwiGLU fc2(silu(fc12(x)) · fc11(x)). q, k and v come from one fused projection
(q | k | v: `attn.Wqkv`; GGUF's `attn_qkv`). Weight names are the checkpoint's, which transformers
5 reads and writes (it splits Wqkv into q/k/v_proj in memory only); `nomic_bert.` in its
masked-LM checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..maths.ops import layer_norm, linear, rope_angles, silu
from . import llama
from .architecture import Architecture, GGUFLayout
from .base import LayerTrace, Weights, encoder_passes, fused_rope_parts, kept, rotary_layer, run_layers
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, head_dim
from .runtime import rows_runner

DEFAULT_THETA = 1000.0  # NomicBertConfig's default_theta


def parse(config: dict) -> Hyper:
    c = ConfigValues(config)
    c.choice("hidden_act", ("silu",), "silu", "Nomic BERT hidden_act")
    c.integer("type_vocab_size", 2)
    hidden, heads = c.integer("hidden_size"), c.integer("num_attention_heads")
    dim, layers = head_dim(c, hidden, heads), c.integer("num_hidden_layers")
    rope = config if config.get("rope_parameters") or "rope_theta" in config else config | {"rope_theta": DEFAULT_THETA}
    return Hyper(
        model_type="nomic_bert",
        layers=layers,
        heads=heads,
        kv_heads=heads,
        head_dim=dim,
        hidden=hidden,
        max_positions=c.integer("max_position_embeddings", 2048, high=MAX_POSITIONS),
        causal=False,
        eps=c.number("layer_norm_eps", 1e-12),
        activation="silu",
        inv_freq=(llama.rope_frequencies(rope, dim),) * layers,
    )


def block(x, w: Weights, layer: int, s: Hyper, cos, sin, segments=None, whole: bool = True, iv=None) -> LayerTrace:
    """One layer: LN(x + attention(x)), then LN(x + SwiGLU(x)). Not `whole`: q, k and v only
    (`base.layer_plan`). The steps before and after attention are row-local (`runtime.row_local`)."""
    p = f"encoder.layers.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays
    qkv, wo = w[f"{p}attn.Wqkv.weight"], w[f"{p}attn.out_proj.weight"]
    up, gate, down = (w[f"{p}mlp.{n}.weight"] for n in ("fc11", "fc12", "fc2"))
    (ln1, ln1_b), (ln2, ln2_b) = ((w[f"{p}{n}.weight"], w[f"{p}{n}.bias"]) for n in ("norm1", "norm2"))

    def project(x, cos, sin):
        """The fused projection [q|k|v], RoPE: (rows, hidden) -> q, k, v, q and k after RoPE, each (rows, heads·d)."""
        return fused_rope_parts(linear(x, qkv), s, cos, sin)

    def tail(merged: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """out_proj, residual, LayerNorm; SwiGLU, residual, LayerNorm: (rows, heads·d), (rows, hidden) -> (rows, hidden), the kept SwiGLU output."""
        x = layer_norm(x + linear(merged, wo), ln1, ln1_b, s.eps)
        fed = linear(silu(linear(x, gate)) * linear(x, up), down)
        return layer_norm(x + fed, ln2, ln2_b, s.eps), kept(iv, "ffn", fed)

    return rotary_layer(x, s, layer, cos, sin, project, tail, run, whole=whole, iv=iv, segments=segments)


def embeddings(w: Weights, input_ids: np.ndarray, eps: float) -> np.ndarray:
    """Word + token-type (all type 0: one sentence) embeddings, then LayerNorm: (seq,) -> (seq, hidden).
    No position embeddings: positions enter through RoPE."""
    x = w.rows("embeddings.word_embeddings.weight", input_ids) + w.rows("embeddings.token_type_embeddings.weight", np.zeros_like(input_ids))
    return layer_norm(x, w["emb_ln.weight"], w["emb_ln.bias"], eps)


def encoder(w: Weights, s: Hyper, input_ids: np.ndarray, positions: np.ndarray, segments=None, through=None, iv=None) -> Iterator[LayerTrace]:
    """The embeddings, then the layers; positions (seq,) from 0 in each text."""
    cos, sin = rope_angles(s.inv_freq[0], int(positions.max()) + 1)
    cos, sin = cos[positions], sin[positions]
    x = embeddings(w, input_ids, s.eps)
    return run_layers(x, s.layers, through, lambda x, layer, whole: block(x, w, layer, s, cos, sin, segments, whole, iv), iv)


forward, forward_packed = encoder_passes(encoder)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return hidden  # post-LayerNorm: the last layer's output is already normalised


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden)."""
    return w[f"encoder.layers.{layer}.attn.out_proj.weight"].T


# llama.cpp's tensor names -> this family's. Its converter keeps Wqkv fused (q | k | v) and
# permutes nothing (the rotation pairs are NeoX's, as transformers' rotate_half).
GGUF_TENSORS = {
    "token_embd.weight": "embeddings.word_embeddings.weight",
    "token_types.weight": "embeddings.token_type_embeddings.weight",
    "token_embd_norm.weight": "emb_ln.weight",
    "token_embd_norm.bias": "emb_ln.bias",
    "blk.{n}.attn_qkv.weight": "encoder.layers.{n}.attn.Wqkv.weight",
    "blk.{n}.attn_output.weight": "encoder.layers.{n}.attn.out_proj.weight",
    "blk.{n}.attn_output_norm.weight": "encoder.layers.{n}.norm1.weight",
    "blk.{n}.attn_output_norm.bias": "encoder.layers.{n}.norm1.bias",
    "blk.{n}.ffn_gate.weight": "encoder.layers.{n}.mlp.fc12.weight",  # the gate: silu(fc12(x)) · fc11(x)
    "blk.{n}.ffn_up.weight": "encoder.layers.{n}.mlp.fc11.weight",
    "blk.{n}.ffn_down.weight": "encoder.layers.{n}.mlp.fc2.weight",
    "blk.{n}.layer_output_norm.weight": "encoder.layers.{n}.norm2.weight",
    "blk.{n}.layer_output_norm.bias": "encoder.layers.{n}.norm2.bias",
}


def gguf_config(metadata: dict, get, config: dict) -> dict:
    """nomic-bert's own settings: the LayerNorm eps (as the float32 the file stores), RoPE's θ,
    the token types."""
    return {
        "hidden_act": "silu",
        "layer_norm_eps": float(np.float32(get("attention.layer_norm_epsilon"))),
        "rope_parameters": llama.gguf_rope(get, DEFAULT_THETA),
        "type_vocab_size": int(metadata.get("tokenizer.ggml.token_type_count", 2)),
    }


GGUF = GGUFLayout({"nomic-bert": "nomic_bert"}, GGUF_TENSORS, None, gguf_config)
ARCHITECTURE = Architecture(
    "nomic_bert", parse, forward, final_norm, output_projection, ("nomic_bert.",), forward_packed=forward_packed, gguf=GGUF
)
