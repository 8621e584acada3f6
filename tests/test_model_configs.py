"""Config settings the reference fixtures hold at one value only (found by mutation testing,
docs/testing.md): llama3 RoPE with a low_freq_factor other than 1, RoBERTa's usable positions,
defaults for keys a config leaves out."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
from option_registry import TINY, ref, runner
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from attn_cli.cli import app
from attn_cli.loading.model import load_model
from attn_cli.loading.tokenizer import tokenize
from attn_cli.models.llama import rope_frequencies


def llama3_inv_freq(theta, d, factor, low, high, old):
    """transformers' `_compute_llama3_parameters`, written out again from its notes
    (tests/fixtures/tiny/README.md)."""
    inv = (1.0 / theta ** (np.arange(0, d, 2, dtype=np.float32) / np.float32(d))).astype(np.float32)
    wavelen = 2 * math.pi / inv
    inv_l = np.where(wavelen > old / low, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    return np.where(~(wavelen < old / high) & ~(wavelen > old / low), smoothed, inv_l)


def test_llama3_rope_with_other_frequency_factors():
    params = {"rope_type": "llama3", "rope_theta": 50000.0, "factor": 8.0, "low_freq_factor": 2.0, "high_freq_factor": 16.0}
    params["original_max_position_embeddings"] = 256
    ours = rope_frequencies({"rope_parameters": params}, 32)
    want = llama3_inv_freq(50000.0, 32, 8.0, 2.0, 16.0, 256)
    wavelen = 2 * math.pi / want
    assert (wavelen < 256 / 16).any() and (wavelen > 256 / 2).any() and ((wavelen >= 16) & (wavelen <= 128)).any()  # all three bands
    assert np.allclose(ours, want, rtol=1e-6, atol=0)


def test_roberta_reads_max_positions_minus_its_offset():
    """max_position_embeddings 130, positions start at pad + 1 = 2: 128 tokens fit, 129 do not."""
    tokenizer = Tokenizer.from_file(str(TINY / "roberta" / "tokenizer.json"))
    words = []
    while len(tokenizer.encode(" ".join(words)).ids) < 129:
        words.append("cat")
    text_129, text_128 = " ".join(words), " ".join(words[:-1])
    assert len(tokenizer.encode(text_128).ids) == 128
    ok = runner.invoke(app, ["tokens", text_128, "-m", str(TINY / "roberta")])
    inspect_ok = runner.invoke(app, ["inspect", text_128, "-m", str(TINY / "roberta"), "-i", "-1", "--json"])
    too_long = runner.invoke(app, ["inspect", text_129, "-m", str(TINY / "roberta"), "-i", "1"])
    assert ok.exit_code == 0 and inspect_ok.exit_code == 0
    assert len(json.loads(inspect_ok.stdout)["tokens"]) == 128
    assert too_long.exit_code == 2 and "128" in too_long.output


def test_configs_without_optional_keys_use_transformers_defaults(tmp_path):
    """GPT-2 without layer_norm_epsilon: 1e-5, transformers' default (and the fixture's value)."""
    folder = tmp_path / "gpt2"
    shutil.copytree(TINY / "gpt2", folder)
    config = json.loads((folder / "config.json").read_text())
    assert config.pop("layer_norm_epsilon") == 1e-5
    (folder / "config.json").write_text(json.dumps(config))
    model, r = load_model(folder), ref("gpt2", 2)
    ours = np.stack([t.rows()[2] for t in model.trace(tokenize(model.tokenizer, str(r["text"])).ids)])
    assert np.abs(ours - r["attentions"]).max() <= 1e-5


def test_pythia_configs_of_transformers_4_give_the_same_model(tmp_path):
    """Pythia's config.json (transformers 4) says rotary_pct and rotary_emb_base where
    transformers 5 writes rope_parameters; left out, they are 0.25 and 10000 (GPTNeoXConfig)."""
    for rope in ({"rotary_pct": 0.25, "rotary_emb_base": 10000}, {}):
        folder = tmp_path / f"pythia{len(rope)}"
        shutil.copytree(TINY / "gpt_neox", folder)
        config = json.loads((folder / "config.json").read_text())
        assert config.pop("rope_parameters") == {"partial_rotary_factor": 0.25, "rope_theta": 10000.0, "rope_type": "default"}
        (folder / "config.json").write_text(json.dumps(config | rope))
        model, r = load_model(folder), ref("gpt_neox", 2)
        assert model.spec.inv_freq[0].shape == (model.spec.head_dim // 8,)  # a quarter of each head: 2 frequencies of 16 dimensions
        ours = np.stack([t.rows()[2] for t in model.trace(tokenize(model.tokenizer, str(r["text"])).ids)])
        assert np.abs(ours - r["attentions"]).max() <= 1e-5


def test_partial_rotary_is_refused_where_the_architecture_turns_whole_heads():
    import pytest

    from attn_cli.errors import ModelError

    params = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    assert rope_frequencies({"rope_parameters": params}, 16, partial=True).shape == (4,)
    with pytest.raises(ModelError, match="partial rotary"):
        rope_frequencies({"rope_parameters": params}, 16)
    with pytest.raises(ModelError, match="partial_rotary_factor 0.1 rotates 1"):
        rope_frequencies({"rope_parameters": params | {"partial_rotary_factor": 0.1}}, 16, partial=True)


def test_phi3_longrope_is_refused_naming_it(tmp_path):
    """The 128k Phi-3 models' LongRoPE switches frequencies with the text's length: refused at
    load, with what to use instead, in transformers 5's and 4's spelling of the settings."""
    import pytest

    from attn_cli.errors import ModelError

    config = json.loads((TINY / "phi3" / "config.json").read_text())
    factors = {"short_factor": [1.0] * 6, "long_factor": [2.0] * 6, "original_max_position_embeddings": 64}
    for key, params in (("rope_parameters", {"rope_type": "longrope", "rope_theta": 1e4}), ("rope_scaling", {"type": "su"})):
        folder = tmp_path / key
        shutil.copytree(TINY / "phi3", folder)
        (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "rope_parameters"} | {key: params | factors}))
        with pytest.raises(ModelError, match="Phi-3 with (longrope|su) RoPE scaling") as caught:
            load_model(folder)
        assert "Phi-3-mini-4k-instruct" in caught.value.fix


def test_a_null_sliding_window_is_no_window(tmp_path):
    """Mistral 7B v0.2 and Mixtral say "sliding_window": null: every key is seen, not a config error."""
    folder = tmp_path / "mistral"
    shutil.copytree(TINY / "mistral", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"sliding_window": None}))
    model = load_model(folder)
    assert model.spec.sliding_window is None and model.spec.windows == (None, None)


def test_experts_stacked_as_transformers_5_holds_them(tmp_path):
    """Mixtral's experts as one (experts, 2·inner, hidden) gate_up_proj and one down_proj per
    layer, under mlp. (transformers 5's names in memory), give the per-expert file's numbers."""
    from helpers import write_safetensors

    folder = tmp_path / "mixtral"
    shutil.copytree(TINY / "mixtral", folder)
    tensors = load_file(str(folder / "model.safetensors"))
    stacked = {k: v for k, v in tensors.items() if ".experts." not in k and ".gate." not in k}
    for layer in range(2):
        p = f"layers.{layer}.block_sparse_moe."
        experts = range(4)
        stacked[f"layers.{layer}.mlp.gate.weight"] = tensors[f"{p}gate.weight"]
        gate_up = [np.concatenate([tensors[f"{p}experts.{e}.w1.weight"], tensors[f"{p}experts.{e}.w3.weight"]]) for e in experts]
        stacked[f"layers.{layer}.mlp.experts.gate_up_proj"] = np.stack(gate_up)
        stacked[f"layers.{layer}.mlp.experts.down_proj"] = np.stack([tensors[f"{p}experts.{e}.w2.weight"] for e in experts])
    write_safetensors(folder / "model.safetensors", stacked)
    model, r = load_model(folder), ref("mixtral", 2)
    traces = list(model.trace(tokenize(model.tokenizer, str(r["text"])).ids))
    assert np.abs(np.stack([t.rows()[2] for t in traces]) - r["attentions"]).max() <= 1e-5
    assert np.array_equal(np.stack([t.routing.experts for t in traces]), r["router_experts"])


def test_more_experts_per_token_than_experts_is_a_model_error_naming_the_key(tmp_path):
    import pytest

    from attn_cli.errors import ModelError

    folder = tmp_path / "qwen3_moe"
    shutil.copytree(TINY / "qwen3_moe", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"num_experts_per_tok": 7}))
    with pytest.raises(ModelError, match="num_experts_per_tok is 7, expected 1 to the model's 6 experts"):
        load_model(folder)
    # Qwen3-MoE's Hub configs count the experts as num_experts (transformers 5 writes num_local_experts)
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "num_local_experts"} | {"num_experts": 6}))
    assert load_model(folder).spec.experts.count == 6
    (folder / "config.json").write_text(json.dumps(config | {"num_local_experts": 8}))
    with pytest.raises(ModelError, match="layer 0's router rates 6 experts where config.json says 8"):
        list(load_model(folder).trace(np.arange(3)))
