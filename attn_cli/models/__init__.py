"""Architectures, keyed by config.json's `model_type`.

Each module provides `WEIGHT_PREFIXES`, `spec(config) -> ModelSpec`,
`forward(weights, spec, config, input_ids, cache=None) -> Iterator[LayerTrace]` and
`final_norm(weights, config, hidden)` (the last hidden state as transformers reports it) and
`output_projection(weights, layer)` (W_O in x·W layout, for value norms). Decoders also take a
`cache` (`cache.KVCache`, the keys and values of earlier positions: `forward` then runs the new
tokens only, from position cache.length) and provide `logits(weights, config, hidden)` (the
final norm and LM head: (seq, vocab)), which is what `attn generate` and `attn lens` need.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import ModelError
from . import bert, distilbert, gemma3, gpt2, llama, roberta
from .base import LayerTrace, ModelSpec, Weights
from .cache import KVCache

ARCHITECTURES: dict[str, ModuleType] = {
    "bert": bert,
    "roberta": roberta,
    "distilbert": distilbert,
    "gpt2": gpt2,
    "llama": llama,
    "mistral": llama,
    "qwen2": llama,
    "qwen3": llama,
    "gemma3_text": gemma3,
    "gemma3": gemma3,  # the multimodal checkpoint: attn reads its text model
}


def architecture(model_type) -> ModuleType:
    if not isinstance(model_type, str):
        shown = "missing" if model_type is None else f"{model_type!r}, not a string"
        raise ModelError(f"config.json: model_type is {shown}", f"set model_type to one of: {', '.join(sorted(ARCHITECTURES))}")
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        supported = ", ".join(sorted(ARCHITECTURES))
        raise ModelError(
            f"model_type {model_type!r} is not supported (supported: {supported})",
            "use a model of a supported architecture",
        ) from None


__all__ = ["ARCHITECTURES", "KVCache", "LayerTrace", "ModelSpec", "Weights", "architecture"]
