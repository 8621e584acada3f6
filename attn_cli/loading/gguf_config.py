"""A GGUF file's metadata as a Hugging Face-style config, so that one architecture module reads
a GGUF file and a model folder alike; and what `attn models` says of a file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..models import gguf_layouts
from .gguf import GGUFFile, GGUFWeights


def config_from_metadata(file: GGUFFile) -> dict:
    """A Hugging Face-style config.json dict from the GGUF metadata, so that the architecture
    code reads a GGUF file and a model folder alike. Floats stay the float32 values the file
    stores (e.g. rms eps 9.999999747e-06), as transformers reads them."""
    arch, layouts = file.architecture, gguf_layouts()
    if arch not in layouts:
        raise ModelError(
            f"{file.path.name} is a GGUF model of architecture {arch!r}, which attn does not support "
            f"(supported: {', '.join(sorted(layouts))})",
            "use a GGUF file of a supported architecture, or a Hugging Face model folder",
        )
    m = file.metadata

    def get(key: str, default=None):  # `<arch>.<key>`: llama.cpp's keys of this family
        value = m.get(f"{arch}.{key}", default)
        if value is None:
            raise ModelError(f"{file.path.name} lacks the metadata key {arch}.{key}", "re-convert the model with a current llama.cpp")
        return value.item() if isinstance(value, np.generic) else value

    heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    kv_heads = m.get(f"{arch}.attention.head_count_kv", heads)
    if isinstance(kv_heads, np.ndarray):  # per-layer counts: attn supports one for all layers
        if len(set(kv_heads.tolist())) != 1:
            raise ModelError(f"{file.path.name} has a different number of key/value heads per layer", "use a model with one count for all layers")
        kv_heads = int(kv_heads[0])
    head_dim = m.get(f"{arch}.attention.key_length") or m.get(f"{arch}.rope.dimension_count") or hidden // heads
    config = {
        "model_type": layouts[arch].names[arch],
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": int(kv_heads),
        "head_dim": int(head_dim),
        "num_hidden_layers": int(get("block_count")),
        "intermediate_size": int(get("feed_forward_length")),
        "max_position_embeddings": int(get("context_length")),
        "vocab_size": len(m.get("tokenizer.ggml.tokens", [])) or m.get(f"{arch}.vocab_size"),
        "tie_word_embeddings": "output.weight" not in file.tensors,
        "bos_token_id": _int_or_none(m.get("tokenizer.ggml.bos_token_id")),
        "eos_token_id": _int_or_none(m.get("tokenizer.ggml.eos_token_id")),
    }
    if f"{arch}.attention.layer_norm_epsilon" not in m:  # LayerNorm families (gptneox) give their eps in `config`
        config["rms_norm_eps"] = float(np.float32(get("attention.layer_norm_rms_epsilon")))
    if "rope_freqs.weight" in file.tensors:
        raise ModelError(
            f"{file.path.name} stores per-frequency RoPE factors (Llama 3.1-style scaling), which attn does not read from GGUF yet",
            "use the model's Hugging Face folder (config.json with rope_scaling), which attn supports",
        )
    if "rope_factors_long.weight" in file.tensors:
        raise ModelError(
            f"{file.path.name} stores LongRoPE factors (a 128k-context Phi-3), which attn does not support",
            "use a model without LongRoPE scaling (Phi-3-mini-4k-instruct)",
        )
    try:
        config |= layouts[arch].config(m, get, config)
    except ModelError as exc:
        raise ModelError(f"{file.path.name}: {exc.message}", exc.fix) from None
    return config


def _int_or_none(value) -> int | None:
    return None if value is None else int(value)


def checked_config(file: GGUFFile) -> dict:
    """`config_from_metadata`, with metadata of the wrong type (a string for a count) a ModelError."""
    try:
        return config_from_metadata(file)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ModelError(f"{file.path.name} has garbled metadata ({exc})", "re-download the file, or re-convert it with a current llama.cpp") from None


def open_gguf(path: Path) -> tuple[dict, GGUFFile, GGUFWeights]:
    """(config, file, weights) of a GGUF model file."""
    file = GGUFFile(path)
    config = checked_config(file)
    return config, file, GGUFWeights(file, gguf_layouts()[file.architecture], config)


@dataclass(frozen=True)
class GGUFSummary:
    """What `attn models` says of a GGUF file, read from its header only."""

    architecture: str
    layers: int
    heads: int
    quantization: str
    size_bytes: int


def summarize(path: Path) -> GGUFSummary:
    """Architecture, layers × heads, quantization and size of a GGUF file (ModelError if attn
    cannot use it). Neither the weights nor the tokenizer are read."""
    file = GGUFFile(path)
    config = checked_config(file)
    return GGUFSummary(config["model_type"], config["num_hidden_layers"], config["num_attention_heads"], file.quantization(), path.stat().st_size)
