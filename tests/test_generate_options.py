"""`attn generate`'s and `attn lens`'s options, and `inspect --chat`, each passed through the CLI
(in process, on the tiny Llama with a tied LM head) and checked against values computed without
the code under test: transformers' `generate` (tests/fixtures/generate/tiny-llama-plain.npz:
ids, top-5 log-probs, attention rows), numpy's own sampler replayed by hand, a hand-written chat
template's expected text, and `inspect` over the same tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest
from option_registry import close, covers, run_json
from test_generate import FIXTURES, tied_copy

REF = dict(np.load(FIXTURES / "tiny-llama-plain.npz"))
TEXT = str(REF["text"])  # "Every head looks at the other tokens."
PROMPT = len(REF["input_ids"])
VOCAB = 403
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> str:
    """The tiny Llama as transformers' fixture ran it (tied embeddings), plus a chat template."""
    path = tied_copy("llama", tmp_path_factory.mktemp("options"))
    (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": TEMPLATE, "bos_token": "<s>", "eos_token": {"content": "</s>"}}))
    return str(path)


def ids(doc: dict) -> list[int]:
    return [s["id"] for s in doc["steps"]]


@covers("generate TEXT", "generate --model", "generate --json", "generate --max-new-tokens", "generate --top")
def test_greedy_ids_and_alternatives_equal_transformers(llama):
    n = len(REF["generated"])
    doc = run_json("generate", TEXT, "--model", llama, "--max-new-tokens", str(n), "--top", "5", "--json")
    assert [t["id"] for t in doc["tokens"][:PROMPT]] == REF["input_ids"].tolist()
    assert ids(doc) == REF["generated"].tolist()
    for step, want_ids, want_logprobs in zip(doc["steps"], REF["top_ids"], REF["top_logprobs"]):
        assert [t["id"] for t in step["top"]] == want_ids.tolist()
        assert close([t["logprob"] for t in step["top"]], want_logprobs, tol=1e-3)
    short = run_json("generate", TEXT, "-m", llama, "-n", "3", "--top", "2", "--json")
    assert ids(short) == REF["generated"][:3].tolist() and short["max_new_tokens"] == 3
    assert [len(s["top"]) for s in short["steps"]] == [2, 2, 2]
    assert [[t["id"] for t in s["top"]] for s in short["steps"]] == REF["top_ids"][:3, :2].tolist()


@covers("generate --cache", "generate --no-cache")
def test_with_and_without_the_kv_cache_the_same_text(llama):
    cached = run_json("generate", TEXT, "-m", llama, "-n", "6", "--cache", "--json")
    plain = run_json("generate", TEXT, "-m", llama, "-n", "6", "--no-cache", "--json")
    assert ids(cached) == ids(plain) == REF["generated"][:6].tolist()
    assert close([s["logprob"] for s in plain["steps"]], [s["logprob"] for s in cached["steps"]], tol=1e-4)
    assert cached["kv_cache_bytes"] == 2 * 2 * (PROMPT + 6) * 16 * 2 * 4  # layers, kv heads, positions, head_dim, k+v, float32
    assert plain["kv_cache_bytes"] == 0  # nothing kept: every step reran the whole text


def replay(doc: dict, seed: int, temperature: float) -> list[int]:
    """What numpy's `Generator.choice(p=...)` draws from softmax(logprobs / T), step by step, from
    the full log-probs the document lists (--top VOCAB): its cumulative sum searched with one
    uniform draw per token (numpy's documented algorithm), written out here by hand."""
    rng = np.random.default_rng(seed)
    drawn = []
    for step in doc["steps"]:
        logprobs = np.full(VOCAB, -np.inf)
        for t in step["top"]:
            logprobs[t["id"]] = t["logprob"]
        p = np.exp(logprobs / temperature - np.max(logprobs / temperature))
        cdf = np.cumsum(p / p.sum())
        drawn.append(int(np.searchsorted(cdf / cdf[-1], rng.random(), side="right")))
    return drawn


@covers("generate --sample", "generate --seed", "generate --temperature")
def test_seeded_sampling_draws_from_the_tempered_distribution(llama):
    for seed, temperature in ((3, "1.0"), (4, "0.5"), (5, "2.5")):
        args = ("generate", TEXT, "-m", llama, "-n", "8", "--sample", "--seed", str(seed), "--temperature", temperature, "--top", str(VOCAB), "--json")
        doc = run_json(*args)
        assert len(doc["steps"][0]["top"]) == VOCAB  # every token's log-prob, untempered
        assert replay(doc, seed, float(temperature)) == ids(doc)
        assert temperature == "1.0" or replay(doc, seed, 1.0) != ids(doc)  # the replay can tell temperatures apart
        assert doc["sampling"] == {"sample": True, "temperature": float(temperature), "top_k": None, "top_p": None, "seed": seed}
        assert ids(run_json(*args)) == ids(doc)  # the same seed, the same text
    draws = {tuple(ids(run_json("generate", TEXT, "-m", llama, "-n", "8", "--sample", "--seed", str(s), "--json"))) for s in (1, 2, 3)}
    assert len(draws) > 1  # other seeds, other texts
    assert REF["generated"][:8].tolist() not in [list(d) for d in draws]  # and not the greedy text


@covers("generate --top-k")
def test_top_k_1_is_greedy_and_top_k_2_draws_only_the_two_likeliest(llama):
    greedy = REF["generated"][:8].tolist()
    for seed in (1, 2):
        assert ids(run_json("generate", TEXT, "-m", llama, "-n", "8", "--sample", "--top-k", "1", "--seed", str(seed), "--json")) == greedy
    doc = run_json("generate", TEXT, "-m", llama, "-n", "8", "--sample", "--top-k", "2", "--seed", "9", "--temperature", "3", "--json")
    assert all(s["id"] in [t["id"] for t in s["top"][:2]] for s in doc["steps"])
    assert doc["sampling"]["top_k"] == 2
    free = run_json("generate", TEXT, "-m", llama, "-n", "8", "--sample", "--seed", "9", "--temperature", "3", "--json")
    assert not all(s["id"] in [t["id"] for t in s["top"][:2]] for s in free["steps"])  # without --top-k it strays


def inside_nucleus(step: dict, top_p: float) -> bool:
    """The drawn token is among the likeliest tokens whose probabilities, before it, add up to
    less than top_p (the document lists every token, most likely first)."""
    p = np.exp(np.array([t["logprob"] for t in step["top"]], dtype=np.float64))
    before = np.cumsum(p) - p
    return step["id"] in {t["id"] for t, b in zip(step["top"], before) if b < top_p}


@covers("generate --top-p")
def test_top_p_draws_only_inside_the_nucleus(llama):
    # Step 1's probabilities (transformers): 0.33, 0.22, 0.12, ... so p=0.3 keeps the first token only.
    assert np.exp(REF["top_logprobs"][0, 0]) > 0.3
    doc = run_json("generate", TEXT, "-m", llama, "-n", "6", "--sample", "--top-p", "0.3", "--seed", "2", "--top", str(VOCAB), "--json")
    assert all(inside_nucleus(step, 0.3) for step in doc["steps"])
    free = run_json("generate", TEXT, "-m", llama, "-n", "6", "--sample", "--seed", "2", "--top", str(VOCAB), "--json")
    assert not all(inside_nucleus(step, 0.3) for step in free["steps"])  # without --top-p the same seed strays
    assert doc["steps"][0]["id"] == REF["generated"][0] and doc["sampling"]["top_p"] == 0.3


@covers("generate --query-index", "generate --layer", "generate --head")
def test_query_layer_and_head_select_transformers_row(llama):
    """-n N --query-index -2 is the position that chose token N: transformers' row N-1."""
    n = 5
    for layer in (0, 1):
        for head in (1, 3):
            doc = run_json("generate", TEXT, "-m", llama, "-n", str(n), "--query-index", "-2", "--layer", str(layer), "--head", str(head), "--json")
            (view,) = doc["layers"]
            assert view["layer"] == layer and view["focus"] == [head] and doc["query"]["token_indices"] == [PROMPT + n - 2]
            weights = next(h for h in view["heads"] if h["head"] == head)["weights"]
            assert close(weights[: PROMPT + n - 1], REF["rows"][n - 1, layer, head, : PROMPT + n - 1]) and weights[-1] == 0


@covers("generate --query")
def test_query_by_word_is_inspects_row_over_the_prompt(llama):
    doc = run_json("generate", TEXT, "-m", llama, "-n", "3", "--query", "looks", "--layer", "0", "--head", "2", "--json")
    alone = run_json("inspect", TEXT, "-m", llama, "--query", "looks", "--layer", "0", "--head", "2", "--json")
    assert doc["query"]["token_indices"] == alone["query"]["token_indices"] == [4]
    ours = next(h for h in doc["layers"][0]["heads"] if h["head"] == 2)["weights"]
    want = next(h for h in alone["layers"][0]["heads"] if h["head"] == 2)["weights"]
    assert close(ours[:PROMPT], want) and ours[PROMPT:] == [0, 0, 0]  # generated tokens are its future


@covers("generate --steps")
def test_steps_show_q_k_v_and_their_weighted_sum(llama):
    doc = run_json("generate", TEXT, "-m", llama, "-n", "3", "--query-index", "-1", "--layer", "1", "--head", "0", "--steps", "--json")
    without = run_json("generate", TEXT, "-m", llama, "-n", "3", "--query-index", "-1", "--layer", "1", "--head", "0", "--json")
    head = next(h for h in doc["layers"][0]["heads"] if h["head"] == 0)
    assert "steps" not in next(h for h in without["layers"][0]["heads"] if h["head"] == 0)
    q, k, v = (np.array(head["steps"][name], dtype=np.float64) for name in ("query", "keys", "values"))
    assert q.shape == (16,) and k.shape == v.shape == (PROMPT + 3, 16)
    scores = k @ q / 4.0  # / sqrt(head_dim 16)
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    assert close(head["scaled_scores"], scores, tol=1e-4) and close(head["weights"], weights)
    assert close(head["steps"]["output"], weights @ v, tol=1e-4)


@covers("generate --chat", "generate --system", "inspect --chat", "inspect --system")
def test_chat_and_system_are_the_templates_text(llama):
    want = "<s><|system|>Be brief.</s><|user|>Hi there</s><|assistant|>"
    doc = run_json("generate", "Hi there", "-m", llama, "--chat", "--system", "Be brief.", "-n", "2", "--json")
    assert doc["text"] == want + doc["continuation"] and doc["chat"] is True and doc["system"] == "Be brief."
    assert [t["text"] for t in doc["tokens"] if t["special"]][:3] == ["<s>", "</s>", "</s>"]
    user = run_json("generate", "Hi there", "-m", llama, "--chat", "-n", "2", "--json")
    assert user["text"].startswith("<s><|user|>Hi there</s><|assistant|>") and user["system"] is None
    seen = run_json("inspect", "Hi there", "-m", llama, "--chat", "--system", "Be brief.", "-i", "-1", "--json")
    assert seen["text"] == want and [t["id"] for t in seen["tokens"]] == [t["id"] for t in doc["tokens"][: doc["prompt_tokens"]]]
    plain = run_json("inspect", "Hi there", "-m", llama, "--chat", "-i", "-1", "--json")
    assert plain["text"] == "<s><|user|>Hi there</s><|assistant|>"


@covers("lens TEXT", "lens --model", "lens --json", "lens --top")
def test_lens_last_layer_is_transformers_first_prediction(llama):
    doc = run_json("lens", TEXT, "--model", llama, "--top", "3", "--json")
    assert doc["position"] == PROMPT - 1 and [row["layer"] for row in doc["layers"]] == [0, 1]
    last = doc["layers"][-1]["top"]
    assert [t["id"] for t in last] == REF["top_ids"][0, :3].tolist()
    assert close([t["logprob"] for t in last], REF["top_logprobs"][0, :3], tol=1e-3)
    assert [len(row["top"]) for row in doc["layers"]] == [3, 3]


@covers("lens --query", "lens --query-index")
def test_lens_at_a_query_is_the_lens_of_the_text_up_to_it(llama):
    """Causal: the prediction after "looks" depends only on the tokens up to it."""
    prefix = run_json("lens", "Every head looks", "-m", llama, "--json")
    by_word = run_json("lens", TEXT, "-m", llama, "--query", "looks", "--json")
    by_index = run_json("lens", TEXT, "-m", llama, "--query-index", "4", "--json")
    assert by_word["position"] == by_index["position"] == prefix["position"] == 4
    for a, b, c in zip(by_word["layers"], by_index["layers"], prefix["layers"]):
        assert [t["id"] for t in a["top"]] == [t["id"] for t in b["top"]] == [t["id"] for t in c["top"]]
        assert close([t["logprob"] for t in a["top"]], [t["logprob"] for t in c["top"]], tol=1e-4)
    assert [t["id"] for t in by_word["layers"][-1]["top"]] != [t["id"] for t in run_json("lens", TEXT, "-m", llama, "--json")["layers"][-1]["top"]]


@covers("lens --chat", "lens --system")
def test_lens_reads_the_chat_templates_text(llama):
    doc = run_json("lens", "Hi there", "-m", llama, "--chat", "--system", "Be brief.", "--json")
    assert doc["text"] == "<s><|system|>Be brief.</s><|user|>Hi there</s><|assistant|>"
    assert doc["position"] == len(doc["tokens"]) - 1
    first = run_json("generate", "Hi there", "-m", llama, "--chat", "--system", "Be brief.", "-n", "1", "--json")
    assert doc["layers"][-1]["top"][0]["id"] == first["steps"][0]["id"]
    user = run_json("lens", "Hi there", "-m", llama, "--chat", "--json")
    assert user["text"] == "<s><|user|>Hi there</s><|assistant|>"
