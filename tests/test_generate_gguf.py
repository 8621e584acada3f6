"""`attn generate` on the real GGUF decoders equals transformers' `generate` through its own GGUF
loader (fixtures by scripts/make_generate_fixtures.py): a plain and a chat prompt, greedy —
the same ids, top-5 log-probs within 1e-3 per step, attention rows within 1e-5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from option_registry import covers, run_json
from test_generate import check_steps

from attn_cli.compute.chat import chat_tokenization
from attn_cli.compute.decoding import decode, eos_ids
from attn_cli.compute.generate import generate
from attn_cli.errors import ModelError
from attn_cli.loading.model import kept, load_model
from attn_cli.loading.packaged import is_installed
from attn_cli.loading.tokenizer import tokenize

FIXTURES = Path(__file__).parent / "fixtures" / "generate"
MODELS = ("smollm2", "gemma3")


@pytest.fixture(scope="module", params=MODELS)
def real(request):
    if not is_installed(request.param):
        pytest.skip(f"{request.param} is not installed (uv sync --group models)")
    return request.param, kept(load_model(request.param))


@pytest.mark.parametrize("kind", ["plain", "chat"])
def test_greedy_generate_equals_transformers(real, kind):
    name, model = real
    if kind == "chat" and name == "gemma3":  # its GGUF file ships no chat template
        with pytest.raises(ModelError, match="no chat template"):
            chat_tokenization(model, "What is the capital of France?")
        return
    ref = np.load(FIXTURES / f"{name}-{kind}.npz")
    text = str(ref["text"])
    tok = chat_tokenization(model, text) if kind == "chat" else tokenize(model.tokenizer, text)
    assert tok.ids.tolist() == ref["input_ids"].tolist()  # the chat template renders as transformers'
    steps = list(decode(model, tok.ids, 12, eos=eos_ids(model)))
    assert [s.id for s in steps] == ref["generated"].tolist()
    check_steps(steps, ref)


def test_chat_marks_the_template_special_tokens_and_stops_at_eos(real):
    name, model = real
    if name == "gemma3":
        pytest.skip("Gemma 3 270M's GGUF file ships no chat template")
    r = generate(model, "What is the capital of France?", 16, chat=True)
    prompt = r.tokenization.tokens[: r.prompt_tokens]
    assert any(t.special for t in prompt[1:])  # the turn markers the template writes
    assert "Paris" in r.continuation
    if r.stop_reason == "eos":
        assert r.steps[-1].id in r.eos_ids and r.tokenization.tokens[-1].special


def test_kv_cache_size_is_layers_kv_heads_positions_head_dim_two_floats(real):
    _, model = real
    s = model.spec
    r = generate(model, "The capital of France is", 2)
    assert r.cache_bytes == s.layers * s.kv_heads * len(r.tokenization.tokens) * s.head_dim * 2 * 4


@pytest.mark.parametrize("name, kind", [("smollm2", "plain"), ("smollm2", "chat"), ("gemma3", "plain")])
@covers("generate --model", "generate --chat", "lens --model", "lens --chat")
def test_the_cli_by_model_name_writes_transformers_text(name, kind):
    """`--model smollm2` through the command line: the ids transformers' GGUF loader generated, and
    the logit lens' last layer is its first prediction (with --chat, from its chat template)."""
    if not is_installed(name):
        pytest.skip(f"{name} is not installed (uv sync --group models)")
    ref = np.load(FIXTURES / f"{name}-{kind}.npz")
    chat = ["--chat"] if kind == "chat" else []
    doc = run_json("generate", str(ref["text"]), "--model", name, *chat, "-n", "12", "--json")
    assert [t["id"] for t in doc["tokens"][: doc["prompt_tokens"]]] == ref["input_ids"].tolist()
    assert [s["id"] for s in doc["steps"]] == ref["generated"].tolist()
    seen = run_json("lens", str(ref["text"]), "--model", name, *chat, "--top", "5", "--json")
    assert [t["id"] for t in seen["layers"][-1]["top"]] == ref["top_ids"][0].tolist()
