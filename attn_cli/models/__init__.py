"""Architectures, keyed by config.json's `model_type`: each family is one file ending in an
`ARCHITECTURE` record (see `architecture.py` for the interface, docs/architecture.md for how
to add one)."""

from __future__ import annotations

from ..errors import ModelError
from . import bart, bert, distilbert, gemma2, gemma3, gpt2, gpt_neox, llama, marian, modernbert, moe, mpnet, nomic_bert, olmo2, phi3, roberta, t5
from .architecture import Architecture, GGUFLayout
from .base import LayerTrace, Weights
from .cache import KVCache
from .hyper import Hyper
from .interventions import HeadEdit, Interventions, Knockout, Resume, ValueZeroing

ARCHITECTURES: dict[str, Architecture] = {
    "bert": bert.ARCHITECTURE,
    "roberta": roberta.ARCHITECTURE,
    "distilbert": distilbert.ARCHITECTURE,
    "mpnet": mpnet.ARCHITECTURE,
    "modernbert": modernbert.ARCHITECTURE,
    "nomic_bert": nomic_bert.ARCHITECTURE,
    "gpt2": gpt2.ARCHITECTURE,
    "gpt_neox": gpt_neox.ARCHITECTURE,
    "llama": llama.ARCHITECTURE,
    "mistral": llama.ARCHITECTURE,
    "qwen2": llama.ARCHITECTURE,
    "qwen3": llama.ARCHITECTURE,
    "olmo2": olmo2.ARCHITECTURE,
    "phi3": phi3.ARCHITECTURE,
    "mixtral": moe.ARCHITECTURE,
    "qwen3_moe": moe.ARCHITECTURE,
    "gemma3_text": gemma3.ARCHITECTURE,
    "gemma3": gemma3.ARCHITECTURE,  # the multimodal checkpoint: attn reads its text model
    "gemma2": gemma2.ARCHITECTURE,
    # Encoder–decoder models (`Architecture.seq2seq`): `forward` is the encoder.
    "t5": t5.ARCHITECTURE,
    "bart": bart.ARCHITECTURE,
    "marian": marian.ARCHITECTURE,
}


def architecture(model_type) -> Architecture:
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


def cross_attention_models() -> list[str]:
    """The model_types with cross-attention (encoder–decoder models), for messages."""
    return sorted(name for name, a in ARCHITECTURES.items() if a.seq2seq is not None)


def gguf_layouts() -> dict[str, GGUFLayout]:
    """general.architecture -> the layout of the family that reads such GGUF files."""
    return {name: a.gguf for a in ARCHITECTURES.values() if a.gguf is not None for name in a.gguf.names}


__all__ = [
    "ARCHITECTURES", "Architecture", "GGUFLayout", "HeadEdit", "Hyper", "Interventions", "KVCache", "Knockout", "LayerTrace",
    "Resume", "ValueZeroing", "Weights", "architecture", "cross_attention_models", "gguf_layouts",
]
