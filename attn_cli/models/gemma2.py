"""Gemma 2 (`gemma2`): Gemma 3's layer without the q/k norms, with a soft-cap on the scores.

A pre- and post-norm decoder (four (1 + w) RMSNorms per layer: input, post-attention,
pre-feed-forward, post-feed-forward); embeddings scaled by √hidden; RoPE with one θ for every
layer; Q·Kᵀ scaled by query_pre_attn_scalar^-½; the scaled scores soft-capped,
cap·tanh(s/cap) (`attn_logit_softcapping`, `Hyper.attn_softcap`), before the mask and the
softmax; layers alternating sliding-window (the even ones) and global attention; GeGLU
feed-forward with the tanh GELU; tied embeddings; the next-token logits soft-capped too
(`final_logit_softcapping`). Weight names follow transformers' `Gemma2Model` (`model.` prefix).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..errors import ModelError
from ..maths.ops import rope_angles
from . import llama
from .architecture import Architecture, GGUFLayout
from .base import LayerTrace, Weights, run_layers
from .gemma3 import GGUF_TENSORS, GLOBAL, SLIDING, block, final_norm, from_gguf, logits, output_projection
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, decoder_hyper, head_dim

# Gemma2Config's defaults for what config.json leaves out (a key set to null is not left out:
# a null cap or window means none, as transformers reads it).
DEFAULTS = {
    "head_dim": 256, "rms_norm_eps": 1e-6, "query_pre_attn_scalar": 256, "sliding_window": 4096, "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 8192, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
}


def layer_kinds(c: ConfigValues, layers: int) -> list[str]:
    """`sliding_attention` or `full_attention` per layer: `layer_types`, else Gemma2Config's
    alternation (layer 0 slides, layer 1 sees everything, …)."""
    kinds = c.config.get("layer_types") or [SLIDING if (i + 1) % 2 else GLOBAL for i in range(layers)]
    if not isinstance(kinds, list) or len(kinds) != layers or set(kinds) - {SLIDING, GLOBAL}:
        problem = f"config.json: layer_types does not give sliding_attention or full_attention for each of the {layers} layers"
        raise ModelError(problem, "re-download config.json")
    return kinds


def optional_number(c: ConfigValues, key: str) -> float | None:
    """A positive number, or None where config.json sets the key to null (no cap)."""
    return None if c.config.get(key) is None else c.number(key)


def parse(config: dict) -> Hyper:
    c = ConfigValues(DEFAULTS | config)
    c.choice("hidden_activation", ("gelu_pytorch_tanh", "gelu_tanh"), what="Gemma 2 hidden_activation")
    if c.boolean("use_bidirectional_attention", False):
        raise ModelError("config.json: use_bidirectional_attention is true: bidirectional Gemma 2 is not supported", "use a causal Gemma 2 model")
    if c.boolean("attention_bias", False):
        raise ModelError("config.json: attention_bias is true: Gemma 2 with biases on q, k, v, o is not supported", "use a Gemma 2 model without them")
    layers, hidden, heads = c.integer("num_hidden_layers"), c.integer("hidden_size"), c.integer("num_attention_heads")
    kinds = layer_kinds(c, layers)
    window = None if c.config.get("sliding_window") is None else c.integer("sliding_window", high=MAX_POSITIONS)
    dim = head_dim(c, hidden, heads)
    return decoder_hyper(
        c, "gemma2", layers, heads, dim, tied=True,
        eps=c.number("rms_norm_eps"),
        activation="gelu_tanh",
        query_scale=c.number("query_pre_attn_scalar") ** -0.5,
        windows=tuple(window if kind == SLIDING else None for kind in kinds),
        inv_freq=(llama.rope_frequencies(config, dim),) * layers,
        final_softcap=optional_number(c, "final_logit_softcapping"),
        attn_softcap=optional_number(c, "attn_logit_softcapping"),
    )


def forward(w: Weights, s: Hyper, input_ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
    """One `LayerTrace` per layer (up to `through`: see `base.layer_plan`); with a KV cache,
    `input_ids` follow the cached positions."""
    start = 0 if cache is None else cache.length
    cos, sin = rope_angles(s.inv_freq[0], len(input_ids), start)
    x = w.rows("embed_tokens.weight", input_ids) * np.float32(math.sqrt(s.hidden))
    return run_layers(x, s.layers, through, lambda x, layer, whole: block(x, w, layer, s, cos, sin, cache, whole, interventions), interventions)


LAYERS_27B = 46  # llama.cpp scales Gemma 2 27B's Q·Kᵀ by (hidden/heads)^-½, the others' by head_dim^-½


def gguf_config(metadata: dict, get, config: dict) -> dict:
    """Gemma 2's settings from a GGUF file's metadata: its window, caps and RoPE θ (every
    other layer slides, as in llama.cpp and transformers)."""
    # GGUF has no query_pre_attn_scalar: llama.cpp infers it from the model's size, as here.
    scalar = config["hidden_size"] // config["num_attention_heads"] if config["num_hidden_layers"] == LAYERS_27B else config["head_dim"]
    return {
        "hidden_activation": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": scalar,
        "sliding_window": int(get("attention.sliding_window")),
        "attn_logit_softcapping": float(np.float32(get("attn_logit_softcapping"))),
        "final_logit_softcapping": float(np.float32(get("final_logit_softcapping"))),
        "rope_parameters": llama.gguf_rope(get),
    }


GGUF = GGUFLayout({"gemma2": "gemma2"}, GGUF_TENSORS, from_gguf, gguf_config)
ARCHITECTURE = Architecture("gemma2", parse, forward, final_norm, output_projection, ("model.",), logits=logits, gguf=GGUF)
