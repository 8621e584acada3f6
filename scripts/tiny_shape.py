"""What every tiny reference model shares: its shape, the redraw scales, and the `Spec` record
(see tiny_specs.py for the models, tiny_specs_encoders.py for the encoders after BERT's three)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import transformers
from tokenizers import Tokenizer

SEED = 20240611

# Shared shape of every tiny model.
HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2  # Llama-family models (llama, llama3rope, mistral, qwen2, qwen3)
INTERMEDIATE = 96  # keeps tests/fixtures/tiny/ under ~6 MB
MAX_POSITIONS = 128

# Redraw scales (see redraw_parameters). Chosen so that attention rows are
# neither uniform nor one-hot (the script prints the typical row maximum).
EMBED_STD = 0.5
MATRIX_STD = 0.2
BIAS_STD = 0.1
NORM_LOW, NORM_HIGH = 0.7, 1.3


def ids_of(tok: Tokenizer, *names: str) -> list[int]:
    out = [tok.token_to_id(n) for n in names]
    assert None not in out, (names, out)
    return out


def tiny_common(tok: Tokenizer) -> dict:
    """The shape every tiny model has, in the names most transformers configs use."""
    return dict(
        vocab_size=tok.get_vocab_size(),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
    )


def llama_family_common(tok: Tokenizer) -> dict:
    return tiny_common(tok) | dict(num_key_value_heads=KV_HEADS, hidden_act="silu", tie_word_embeddings=False)


def bert_family_common(tok: Tokenizer) -> dict:
    return tiny_common(tok) | dict(hidden_act="gelu")


def llama_family_config(config_class, tok: Tokenizer, specials: tuple[str, ...], eps: float, theta: float, **settings):
    """A Llama-family config at the tiny shape: BOS and EOS the first and last of the tokens
    `specials` (one token: both), RMSNorm's eps, RoPE's θ (default scaling), then the model's
    own `settings`, which win over all of these (a Gemma's `hidden_activation` replaces hidden_act)."""
    ids = ids_of(tok, *specials)
    common = llama_family_common(tok)
    if "hidden_activation" in settings:
        del common["hidden_act"]
    rope = {"rope_type": "default", "rope_theta": theta}
    base = dict(max_position_embeddings=MAX_POSITIONS, rms_norm_eps=eps, rope_parameters=rope, bos_token_id=ids[0], eos_token_id=ids[-1])
    return config_class(**common | base | settings)



@dataclass
class Spec:
    name: str
    tokenizer: str
    make_config: Callable[[Tokenizer], transformers.PretrainedConfig]
    model_class: str  # base model class used for the references
    module: str  # transformers.models.<module>.modeling_<module>
    # Variants re-save the weights of `source` differently instead of drawing new ones.
    source: str | None = None
    save_class: str | None = None  # class used to save, if not model_class
    save_dtype: torch.dtype = torch.float32
    max_shard_size: str | None = None
    rope: bool = False
    causal: bool = False
    sliding_window: int | None = None
    layer_windows: tuple[int | None, ...] | None = None  # per layer, when layers differ (Gemma 3)
    token_types: bool = False
    position_offset: int = 0  # position_ids = arange(seq) + position_offset
