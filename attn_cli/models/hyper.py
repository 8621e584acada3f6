"""A model's hyper-parameters: config.json read and checked once into a frozen `Hyper`.

Every architecture's `parse(config) -> Hyper` reads its config through `ConfigValues`, so a
wrong type or range is a ModelError at load, naming the key; the forward pass then reads only
the `Hyper`, never the config again.
"""

from __future__ import annotations

import json
import math
from dataclasses import field

import numpy as np

from ..errors import ModelError
from ..records import frozen

_MISSING = object()
MAX_COUNT = 1 << 20  # layers, heads, widths: far beyond any real model, far below a typo's 1e13
MAX_POSITIONS = 1 << 24


class ConfigValues:
    """config.json read once, each value checked as an architecture's `spec()` reads it: a wrong
    type or range is a ModelError naming the key, the value and what was expected, at load,
    never a TypeError mid-forward. A key set to null counts as absent (configs write
    "num_key_value_heads": null for "the default")."""

    def __init__(self, config: dict) -> None:
        self.config = config

    def _get(self, key: str, default):
        value = self.config.get(key)
        if value is None:
            if default is _MISSING:
                raise ModelError(f"config.json has no {key}", f"add {key} to config.json (or re-download it)")
            return default
        return value

    def _wrong(self, key: str, value, expected: str) -> ModelError:
        try:
            shown = json.dumps(value)
        except (RecursionError, TypeError, ValueError):
            shown = f"a {type(value).__name__}"
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return ModelError(f"config.json: {key} is {shown}, expected {expected}", f"set {key} to {expected} in config.json (or re-download it)")

    def integer(self, key: str, default=_MISSING, low: int = 1, high: int = MAX_COUNT) -> int | None:
        """The key's integer in [low, high]; a default of None makes the key optional (absent or
        null: None), as `sliding_window` is (Mistral 7B v0.2's config says null)."""
        value = self._get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._wrong(key, value, f"an integer from {low:,} to {high:,}")
        return value

    def number(self, key: str, default=_MISSING, positive: bool = True) -> float:
        value = self._get(key, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and (value > 0 or not positive)
        if not ok:
            raise self._wrong(key, value, "a positive number" if positive else "a number")
        return float(value)

    def boolean(self, key: str, default=_MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self._wrong(key, value, "true or false")
        return value

    def string(self, key: str, default=_MISSING) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self._wrong(key, value, "a string")
        return value

    def choice(self, key: str, choices, default=_MISSING, what: str = "") -> str:
        value = self.string(key, default)
        if value not in choices:
            raise ModelError(
                f"config.json: {what or key} {value!r} is not supported (supported: {', '.join(choices)})",
                "use a model with one of those",
            )
        return value

    def mapping(self, key: str) -> dict:
        value = self._get(key, {})
        if not isinstance(value, dict):
            raise self._wrong(key, value, "an object")
        return value


@frozen
class Experts:
    """A mixture-of-experts feed-forward: each token goes to the `top_k` of `count` experts its
    router rates highest, their outputs weighted by the router's softmax probabilities (over all
    experts), `renormalize`d to sum to 1 over the k or not; `sparse[layer]` False where a
    layer keeps a dense feed-forward (Qwen3-MoE's mlp_only_layers, decoder_sparse_step)."""

    count: int
    top_k: int
    renormalize: bool
    sparse: tuple[bool, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= self.count:
            raise ModelError(
                f"config.json: num_experts_per_tok is {self.top_k}, expected 1 to the model's {self.count} experts",
                "correct num_experts_per_tok: from 1 to the number of experts",
            )


@frozen
class EncoderDecoder:
    """What an encoder–decoder model (T5, BART, Marian) adds to its encoder's `Hyper`: the
    decoder's own (causal; its cross-attention reads the same counts, not causal), the token the
    decoder starts from, the factor on the token embeddings (BART's and Marian's √d_model under
    `scale_embedding`, else 1), T5's relative position buckets (count and the distance past which
    all share the last; 0 buckets without them) and the factor on the decoder's last hidden state
    before the LM head (original T5's d_model^-0.5 with tied embeddings, else 1)."""

    decoder: Hyper
    decoder_start: int
    embed_scale: float = 1.0
    buckets: int = 0
    max_distance: int = 0
    output_scale: float = 1.0


@frozen
class Hyper:
    """Everything a forward pass needs besides the weights, checked whole when made: every count
    positive, the heads splitting the width, the key/value heads dividing the heads, one window
    (and one set of RoPE frequencies) per layer."""

    model_type: str
    layers: int
    heads: int
    kv_heads: int  # < heads under grouped-query attention: query head h reads kv head h // (heads // kv_heads)
    head_dim: int
    hidden: int
    max_positions: int
    causal: bool
    eps: float  # the norms' epsilon
    activation: str = "gelu"  # the feed-forward's: gelu (erf), gelu_tanh or silu
    query_scale: float | None = None  # the factor on Q·Kᵀ when it is not 1/√head_dim (Gemma)
    # Per layer: a sliding layer's window, None for all the keys. A query sees the keys fewer than
    # `window` positions away: behind it in a decoder (itself included), on either side in an
    # encoder (ModernBERT's local layers: |i - j| < window).
    windows: tuple[int | None, ...] | None = None
    # Per layer: RoPE's inv_freq (rotary/2,) float32, None for a model without RoPE; rotary is
    # head_dim, or fewer under partial rotary (only each head's first `rotary` dimensions turn).
    inv_freq: tuple[np.ndarray, ...] | None = field(default=None, compare=False, repr=False)
    position_offset: int = 0  # the first position id (RoBERTa's padding_idx + 1)
    lm_head: str | None = None  # decoders: the tensor of the LM head (the embeddings when tied)
    final_softcap: float | None = None  # Gemma's cap·tanh(logits/cap) on the next-token logits
    attn_softcap: float | None = None  # Gemma 2's cap·tanh(s/cap) on the scaled scores, before the softmax
    # Both branches read the layer's input, x + attention(norm(x)) + MLP(norm'(x)) (GPT-NeoX, GPT-J)
    parallel_residual: bool = False
    experts: Experts | None = None  # a mixture-of-experts feed-forward, None for a dense one
    seq2seq: EncoderDecoder | None = None  # an encoder–decoder model: this Hyper is its encoder's

    def __post_init__(self) -> None:
        for name in ("layers", "heads", "kv_heads", "head_dim", "hidden", "max_positions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"config.json gives the model {value!r} {name.replace('_', ' ')}", "correct config.json: it must be a positive integer")
        if self.heads % self.kv_heads:
            raise ModelError(
                f"config.json: {self.kv_heads} key/value heads do not divide {self.heads} attention heads",
                "correct num_key_value_heads: it must divide num_attention_heads",
            )
        windows = (None,) * self.layers if self.windows is None else tuple(self.windows)
        for w in windows:
            if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
                raise ModelError(f"config.json: sliding_window is {w!r}, expected a positive integer or null", "correct sliding_window")
        if len(windows) != self.layers or (self.inv_freq is not None and len(self.inv_freq) != self.layers):
            raise ModelError(f"config.json: per-layer settings for {len(windows)} layers where the model has {self.layers}", "re-download config.json")
        object.__setattr__(self, "windows", windows)
        if self.experts is not None and len(self.experts.sparse) != self.layers:
            raise ModelError(f"config.json: expert settings for {len(self.experts.sparse)} layers where the model has {self.layers}", "re-download config.json")

    @property
    def scale(self) -> float:
        """The factor on Q·Kᵀ: 1/√head_dim, or the architecture's own."""
        return self.query_scale if self.query_scale is not None else float(self.head_dim) ** -0.5

    @property
    def rotary(self) -> bool:
        """Whether q and k are rotated (RoPE) before Q·Kᵀ."""
        return self.inv_freq is not None

    def window(self, layer: int) -> int | None:
        """The sliding window of `layer` (keys `window` or more positions away are masked: behind
        the query in a decoder, on either side in an encoder), None if it sees all."""
        return self.windows[layer]

    @property
    def sliding_window(self) -> int | None:
        """The window of the sliding layers (Mistral's all, Gemma 3's five in six), None if none slide."""
        return max((w for w in self.windows if w is not None), default=None)

    @property
    def layer_windows(self) -> tuple[int | None, ...] | None:
        """The windows per layer when the layers differ (Gemma 3), else None."""
        return self.windows if len(set(self.windows)) > 1 else None


def windows(layers: int, window: int | None) -> tuple[int | None, ...]:
    """The same window (or none) for every layer."""
    return (window,) * layers


def head_dim(c: ConfigValues, hidden: int, heads: int, key: str | None = "head_dim") -> int:
    """The config's `key` (head_dim) if the architecture has one and it is set, else
    hidden / heads, which must then divide evenly."""
    if key is not None and c.config.get(key) is not None:
        return c.integer(key)
    if hidden % heads:
        raise ModelError(
            f"config.json: the width {hidden} does not split into {heads} heads", "correct the hidden size or the number of heads: heads must divide it"
        )
    return hidden // heads


def decoder_hyper(c: ConfigValues, model_type: str, layers: int, heads: int, dim: int, tied: bool = False, **rest) -> Hyper:
    """A Llama-shaped decoder's settings: what Llama, OLMo 2, Phi-3 and the Gemmas read alike
    from config.json (grouped kv heads, width, positions, an LM head tied to the embeddings or
    not, `tied` where tie_word_embeddings is absent); `rest`: the fields each sets its own way."""
    return Hyper(
        model_type=model_type,
        layers=layers,
        heads=heads,
        kv_heads=c.integer("num_key_value_heads", heads),
        head_dim=dim,
        hidden=c.integer("hidden_size"),
        max_positions=c.integer("max_position_embeddings", high=MAX_POSITIONS),
        causal=True,
        lm_head="embed_tokens.weight" if c.boolean("tie_word_embeddings", tied) else "lm_head.weight",
        **rest,
    )
