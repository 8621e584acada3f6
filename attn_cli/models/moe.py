"""Mixture-of-experts decoders: `mixtral` and `qwen3_moe`.

Llama's layer (`llama.block`: RMSNorm, RoPE, grouped-query attention; Qwen3-MoE's per-head q/k
norms; Mixtral's sliding window when its config sets one) with the SwiGLU feed-forward replaced
by experts: a router (one linear layer) rates every expert for each token, the softmax of those
logits picks the token's top k, and the token's output is the sum of those k experts' SwiGLU
outputs weighted by their probabilities (renormalised over the k: always in Mixtral, where
`norm_topk_prob` says so in Qwen3-MoE). Computed exactly, expert by expert, as transformers'
eager path does; which experts each token went to, and their weights, are on the trace
(`LayerTrace.routing`). Qwen3-MoE layers in `mlp_only_layers` (or off `decoder_sparse_step`)
keep a dense SwiGLU.

Weight names as the checkpoints on the Hub have them (`model.` prefix accepted): Mixtral's
`layers.N.block_sparse_moe.gate` and `.experts.E.w1` (gate), `w3` (up), `w2` (down);
Qwen3-MoE's `layers.N.mlp.gate` and `.experts.E.gate_proj`, `up_proj`, `down_proj`; or the
stacked `mlp.experts.gate_up_proj` (experts, 2·inner, hidden) and `mlp.experts.down_proj`
(experts, hidden, inner) transformers 5 holds in memory; or gate, up and down each stacked
(`mlp.experts.gate_proj`, `up_proj`: (experts, inner, hidden)), as llama.cpp's GGUF files
store them (`ffn_gate_exps`, `ffn_up_exps`, `ffn_down_exps`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import ModelError
from ..maths.ops import linear, silu, softmax
from . import llama
from .architecture import Architecture, GGUFLayout
from .base import LayerTrace, Routing, Weights
from .hyper import ConfigValues, Experts, Hyper

# model_type -> (the keys of the number of experts, first found counts, its default, the default
# of num_experts_per_tok). Qwen3-MoE's Hub configs say num_experts; transformers 5 writes
# num_local_experts for both (Qwen3MoeConfig maps one name onto the other).
COUNTS = {"mixtral": (("num_local_experts",), 8, 2), "qwen3_moe": (("num_experts", "num_local_experts"), 128, 8)}
# per-expert tensor names on the Hub, (gate, up, down): Mixtral's, Qwen3-MoE's
MIXTRAL_EXPERT, QWEN_EXPERT = ("w1", "w3", "w2"), ("gate_proj", "up_proj", "down_proj")


def parse(config: dict) -> Hyper:
    c = ConfigValues(config)
    model_type = c.string("model_type")
    hyper = llama.parse(config)
    keys, count, top_k = COUNTS[model_type]
    key = next((k for k in keys if config.get(k) is not None), keys[0])
    count, top_k = c.integer(key, count), c.integer("num_experts_per_tok", top_k)
    if model_type == "mixtral":
        experts = Experts(count, top_k, renormalize=True, sparse=(True,) * hyper.layers)
        return replace(hyper, eps=c.number("rms_norm_eps", 1e-5), experts=experts)  # MixtralConfig's eps default
    dense = config.get("mlp_only_layers") or []
    if not isinstance(dense, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in dense):
        raise ModelError("config.json: mlp_only_layers is not a list of layer numbers", "correct mlp_only_layers (or remove it)")
    step = c.integer("decoder_sparse_step", 1)
    sparse = tuple(i not in dense and (i + 1) % step == 0 for i in range(hyper.layers))
    return replace(hyper, experts=Experts(count, top_k, c.boolean("norm_topk_prob", False), sparse))


def route(h: np.ndarray, router: np.ndarray, experts: Experts) -> Routing:
    """The router's choice for each token: h (seq, hidden), router (count, hidden) -> the top k
    experts by softmax probability, most probable first, and their weights (see `Routing`)."""
    probabilities = softmax(linear(h, router), axis=-1).astype(np.float32)
    chosen = np.argsort(-probabilities, axis=-1, kind="stable")[:, : experts.top_k]
    weights = np.take_along_axis(probabilities, chosen, axis=-1)
    if experts.renormalize:
        weights = weights / weights.sum(axis=-1, keepdims=True)
    return Routing(chosen.astype(np.int64), weights.astype(np.float32))


def _expert(w: Weights, moe: str, e: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expert e's (gate (inner, hidden), up (inner, hidden), down (hidden, inner)), from the
    Hub's per-expert tensors or transformers 5's stacked ones (prefix `moe`: `layers.N.mlp.`)."""
    if f"{moe}experts.gate_up_proj" in w:
        gate_up = w[f"{moe}experts.gate_up_proj"][e]
        inner = gate_up.shape[0] // 2
        return gate_up[:inner], gate_up[inner:], w[f"{moe}experts.down_proj"][e]
    if f"{moe}experts.gate_proj" in w:  # stacked one by one, as in a GGUF file
        return w[f"{moe}experts.gate_proj"][e], w[f"{moe}experts.up_proj"][e], w[f"{moe}experts.down_proj"][e]
    names = MIXTRAL_EXPERT if moe.endswith("block_sparse_moe.") else QWEN_EXPERT
    gate, up, down = (w[f"{moe}experts.{e}.{name}.weight"] for name in names)
    return gate, up, down


def feed_forward(h: np.ndarray, w: Weights, s: Hyper, layer: int) -> tuple[np.ndarray, Routing | None]:
    """The layer's feed-forward of h (seq, hidden) -> ((seq, hidden), its Routing), or a dense
    SwiGLU (routing None) where the layer has no experts. Experts run in ascending order, each
    on its tokens only, adding weight × SwiGLU into the output: the sums transformers makes."""
    p = f"layers.{layer}."
    if not s.experts.sparse[layer]:
        return llama.swiglu(h, *llama.mlp_weights(w, layer)), None
    moe = f"{p}block_sparse_moe." if f"{p}block_sparse_moe.gate.weight" in w else f"{p}mlp."
    router = w[f"{moe}gate.weight"]
    if router.shape[0] != s.experts.count:
        raise ModelError(
            f"layer {layer}'s router rates {router.shape[0]} experts where config.json says {s.experts.count}",
            "correct num_experts (num_local_experts) in config.json, or re-download the model",
        )
    routing = route(h, router, s.experts)
    out = np.zeros(h.shape, dtype=np.float32)
    for e in np.unique(routing.experts):
        tokens, slot = np.nonzero(routing.experts == e)
        gate, up, down = _expert(w, moe, int(e))
        x = h[tokens]
        inner = silu(linear(x, gate)) * linear(x, up)
        out[tokens] += linear(inner, down) * routing.weights[tokens, slot, None]
    return out, routing


def block(x, w: Weights, layer: int, s: Hyper, cos, sin, cache=None, whole: bool = True, iv=None) -> LayerTrace:
    """Llama's layer with the experts (`feed_forward`) in SwiGLU's place; its trace keeps the `routing`."""
    return llama.block(x, w, layer, s, cos, sin, cache, whole, iv, lambda h, layer: feed_forward(h, w, s, layer))


# llama.cpp's tensor names -> this family's: Llama's attention (Qwen's rows are not permuted),
# the router and each expert matrix stacked over the experts. llama.cpp's Qwen3-MoE has no
# dense layers (its converter cannot map a dense MLP), so none are mapped.
GGUF_TENSORS = {k: v for k, v in llama.GGUF_TENSORS.items() if not k.startswith("blk.{n}.ffn_") or k.startswith("blk.{n}.ffn_norm")} | {
    "blk.{n}.ffn_gate_inp.weight": "layers.{n}.mlp.gate.weight",
    "blk.{n}.ffn_gate_exps.weight": "layers.{n}.mlp.experts.gate_proj",  # (experts, inner, hidden)
    "blk.{n}.ffn_up_exps.weight": "layers.{n}.mlp.experts.up_proj",
    "blk.{n}.ffn_down_exps.weight": "layers.{n}.mlp.experts.down_proj",  # (experts, hidden, inner)
}


def gguf_config(metadata: dict, get, config: dict) -> dict:
    """Qwen3-MoE's settings from a GGUF file's metadata: the experts' count, top k and inner
    size; every layer has experts; the top k's weights renormalised, as llama.cpp always does
    for qwen3moe (unless a file says otherwise in expert_weights_norm)."""
    return llama.gguf_config(metadata, get, config) | {
        "num_experts": int(get("expert_count")),
        "num_experts_per_tok": int(get("expert_used_count")),
        "moe_intermediate_size": int(get("expert_feed_forward_length")),
        "mlp_only_layers": [],
        "decoder_sparse_step": 1,
        "norm_topk_prob": bool(get("expert_weights_norm", True)),
    }


GGUF = GGUFLayout({"qwen3moe": "qwen3_moe"}, GGUF_TENSORS, None, gguf_config)
ARCHITECTURE = Architecture(
    "moe", parse, llama.rotary_decoder(block), llama.final_norm, llama.output_projection, ("model.",), logits=llama.logits, gguf=GGUF
)
