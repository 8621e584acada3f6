"""Test helpers: tiny GGUF files written from the tiny Hugging Face fixtures with ggml-org's
GGUFWriter, laid out as llama.cpp's converter lays them out (Q and K rows permuted for llama,
Gemma's norms stored as 1 + w, GPT-NeoX's fused rows as q | k | v, experts stacked, each
family's metadata keys), and the real packaged GGUF models when installed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize

from attn_cli.loading.packaged import PACKAGED, is_installed, resolve_packaged
from attn_cli.loading.weights import open_weights
from attn_cli.models import gguf_layouts

TINY = Path(__file__).parent / "fixtures" / "tiny"
GGUF_ARCH = {  # model_type -> llama.cpp's general.architecture
    "llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma2": "gemma2",
    "olmo2": "olmo2", "phi3": "phi3", "qwen3_moe": "qwen3moe", "gpt_neox": "gptneox",
}


def packaged_gguf(name: str) -> Path:
    """The real model file of packaged model `name`. Outside CI a missing package skips the
    test; in CI (where `uv run --group test pytest` installs them) it fails it."""
    if not is_installed(name):
        if os.environ.get("CI"):
            pytest.fail(f"{PACKAGED[name].title} is not installed: CI must run `uv run --group test pytest`")
        pytest.skip(f"{name} not installed (`uv sync --group models`)")
    return resolve_packaged(name)


def gguf_name(hf_name: str, arch: str) -> str | None:
    """The inverse of attn's tensor table: `layers.0.self_attn.q_proj.weight` -> `blk.0.attn_q.weight`."""
    parts = hf_name.split(".")
    layer = parts[1] if parts[0] == "layers" else None
    key = hf_name if layer is None else ".".join(["layers", "{n}", *parts[2:]])
    layouts = gguf_layouts()
    for g, target in layouts.get(arch, layouts["llama"]).tensors.items():  # an unknown arch: written as Llama
        if target == key:
            return g.replace("{n}", layer or "")
    return None


def permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter: interleave each head's two rotary halves (rows)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def stacked_experts(weights, layers: int) -> dict[str, np.ndarray]:
    """Each MoE layer's per-expert gate, up and down matrices, stacked over the experts under
    attn's stacked names (`layers.N.mlp.experts.gate_proj`), as llama.cpp's converter stores them."""
    out = {}
    for layer in range(layers):
        for part in ("gate_proj", "up_proj", "down_proj"):
            names = sorted((n for n in weights._where if n.startswith(f"layers.{layer}.mlp.experts.") and n.endswith(f".{part}.weight")),
                           key=lambda n: int(n.split(".")[4]))
            if names:
                out[f"layers.{layer}.mlp.experts.{part}"] = np.stack([np.asarray(weights[n]) for n in names])
    return out


def qwen2_tokenizer() -> tuple[list[str], list[str], list[int]]:
    """tokens, merges and token types of the tiny byte-level BPE (Qwen2-style)."""
    t = json.loads((TINY / "qwen2" / "tokenizer.json").read_text())
    vocab = dict(t["model"]["vocab"]) | {a["content"]: a["id"] for a in t["added_tokens"]}
    tokens = [tok for tok, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    specials = {a["content"] for a in t["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in t["model"]["merges"]]
    return tokens, merges, [3 if tok in specials else 1 for tok in tokens]


def write_gguf(path: Path, source: str | Path = "llama", qtype: GGMLQuantizationType = GGMLQuantizationType.F32, *, arch: str | None = None,
               raw: dict[str, tuple[np.ndarray, GGMLQuantizationType]] | None = None, extra: dict[str, float | int] | None = None) -> Path:
    """A GGUF file with the weights of tiny fixture `source`, matrices stored as `qtype`.
    `raw`: tensors to store as given bytes of a given ggml type instead; `extra`: the family's
    own metadata by key (`<arch>.` prepended). `source` may be a folder of its own."""
    folder = source if isinstance(source, Path) else TINY / source
    config = json.loads((folder / "config.json").read_text())
    arch = arch or GGUF_ARCH[config["model_type"]]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    w = GGUFWriter(str(path), arch)
    w.add_uint32(f"{arch}.block_count", config["num_hidden_layers"])
    w.add_uint32(f"{arch}.context_length", config["max_position_embeddings"])
    w.add_uint32(f"{arch}.embedding_length", config["hidden_size"])
    w.add_uint32(f"{arch}.feed_forward_length", config["intermediate_size"])
    w.add_uint32(f"{arch}.attention.head_count", heads)
    if arch == "gptneox":  # GPTNeoXModel's few keys: no kv heads, key_length, RoPE base or RMS eps
        w.add_uint32(f"{arch}.rope.dimension_count", int(config["rope_parameters"]["partial_rotary_factor"] * head_dim))
        w.add_bool(f"{arch}.use_parallel_residual", config.get("use_parallel_residual", True))
        w.add_float32(f"{arch}.attention.layer_norm_epsilon", config["layer_norm_eps"])
        return finish_gguf(w, config, arch, folder, qtype, raw, ("gpt_neox.",))
    w.add_uint32(f"{arch}.attention.head_count_kv", kv_heads)
    if arch == "phi3":  # Phi3MiniModel: the rotated dimensions per head, no key_length, a window of 0 for none
        fraction = config["rope_parameters"].get("partial_rotary_factor", 1.0)
        w.add_uint32(f"{arch}.rope.dimension_count", int(fraction * config["hidden_size"]) // heads)
        w.add_uint32(f"{arch}.attention.sliding_window", config.get("sliding_window") or 0)
    else:
        w.add_uint32(f"{arch}.attention.key_length", head_dim)
    w.add_float32(f"{arch}.rope.freq_base", config["rope_parameters"]["rope_theta"])
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", config["rms_norm_eps"])
    if arch == "qwen3moe":  # Qwen2MoeModel's keys
        w.add_uint32(f"{arch}.expert_count", config["num_experts"] if "num_experts" in config else config["num_local_experts"])
        w.add_uint32(f"{arch}.expert_used_count", config["num_experts_per_tok"])
        w.add_uint32(f"{arch}.expert_feed_forward_length", config["moe_intermediate_size"])
    for key, value in (extra or {}).items():  # llama.cpp's types: counts uint32, the rest float32
        (w.add_uint32 if isinstance(value, int) else w.add_float32)(f"{arch}.{key}", value)
    return finish_gguf(w, config, arch, folder, qtype, raw)


def finish_gguf(w: GGUFWriter, config: dict, arch: str, folder: Path, qtype: GGMLQuantizationType, raw, prefixes=("model.",)) -> Path:
    """The tokenizer's metadata and the tensors, in llama.cpp's layout; the file written."""
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    tokens, merges, types = qwen2_tokenizer()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types(types)
    w.add_eos_token_id(400)
    w.add_bos_token_id(400)
    w.add_add_bos_token(False)
    w.add_string("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}")
    weights = open_weights(folder, prefixes)
    for name, array in stacked_experts(weights, config["num_hidden_layers"]).items():
        target = gguf_name(name, arch)
        if target is not None:
            w.add_tensor(target, array)  # llama.cpp's converter stacks each expert matrix: (experts, out, in)
    for name in sorted(weights._where):
        if name.startswith("layers.") and int(name.split(".")[1]) >= config["num_hidden_layers"]:
            continue
        target = gguf_name(name, arch)
        if target is None:
            continue
        array = np.ascontiguousarray(weights[name])
        if arch == "llama" and name.endswith("q_proj.weight"):
            array = permute(array, heads)
        if arch == "llama" and name.endswith("k_proj.weight"):
            array = permute(array, kv_heads)
        if arch == "gptneox" and "query_key_value" in name:  # per head [q|k|v] -> q | k | v, as GPTNeoXModel does
            array = np.ascontiguousarray(array.reshape(heads, 3, array.shape[0] // 3 // heads, *array.shape[1:]).swapaxes(0, 1).reshape(array.shape))
        if arch.startswith("gemma") and name.endswith("norm.weight"):
            array = array + np.float32(1.0)  # llama.cpp's converter stores Gemma's norms as 1 + w
        if raw and target in raw:
            data, kind = raw[target]
            w.add_tensor(target, data, raw_dtype=kind)  # the shape follows from the bytes
        elif array.ndim == 2 and qtype == GGMLQuantizationType.F16:
            w.add_tensor(target, array.astype(np.float16))
        elif array.ndim == 2 and qtype != GGMLQuantizationType.F32:
            w.add_tensor(target, quantize(array, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(target, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(w.path)
