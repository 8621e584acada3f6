"""`attn generate`'s decoding: the KV cache equals the full pass, generation equals transformers'
`generate` (tests/fixtures/generate, made by scripts/make_generate_fixtures.py), EOS and sampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import tied_copy

from attn_cli.compute.decoding import Sampling, bad_words, banned, decode, eos_ids, forced_eos
from attn_cli.compute.generate import generate
from attn_cli.errors import ModelError
from attn_cli.loading.model import kept, load_model
from attn_cli.maths.sampling import filtered_logits, log_softmax, sample, top_tokens
from attn_cli.models import KVCache
from attn_cli.models.cache import cache_bytes

TINY = Path(__file__).parent / "fixtures" / "tiny"
FIXTURES = Path(__file__).parent / "fixtures" / "generate"
DECODERS = ("gpt2", "llama", "mistral", "qwen2", "qwen3", "llama3rope", "gemma3", "gpt_neox", "olmo2", "phi3", "mixtral", "qwen3_moe", "gemma2")
OWN_HEAD = ("gpt_neox",)  # saved with their untied LM head (as Pythia is): loaded as saved


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-lm")
    return {name: kept(load_model(TINY / name if name in OWN_HEAD else tied_copy(name, root))) for name in DECODERS}


def step_rows(step) -> np.ndarray:
    """(layers, heads, seq): the last query row of each layer of one decode step, by position
    (a sliding layer's cache keeps only its window: the positions before `key_start` get 0)."""
    rows = [t.rows([t.q.shape[1] - 1])[2][:, 0] for t in step.traces]
    seq = max(t.key_start + r.shape[-1] for t, r in zip(step.traces, rows))
    out = np.zeros((len(rows), rows[0].shape[0], seq), dtype=np.float32)
    for layer, (t, r) in enumerate(zip(step.traces, rows)):
        out[layer, :, t.key_start : t.key_start + r.shape[-1]] = r
    return out


@pytest.mark.parametrize("name", DECODERS)
def test_cache_equals_the_full_pass(tiny, name):
    """Every step's attention rows and logits through the cache equal those of a forward pass
    over the whole sequence, at every layer (and equal generation without the cache)."""
    model = tiny[name]
    prompt = np.load(TINY / name / "ref_1.npz")["input_ids"]
    cached = list(decode(model, prompt, 10))
    uncached = list(decode(model, prompt, 10, use_cache=False))
    assert [s.id for s in cached] == [s.id for s in uncached]
    sequence = np.concatenate([prompt, [s.id for s in cached]])
    full = list(model.trace(sequence))
    for step, plain in zip(cached, uncached):
        position = step.position - 1  # the row that chose the token
        want = np.stack([t.rows([position])[2][:, 0, : position + 1] for t in full])
        np.testing.assert_allclose(step_rows(step), want, atol=1e-5)
        np.testing.assert_allclose(step_rows(plain), want, atol=1e-5)
        assert np.abs(step.logits - plain.logits).max() <= 1e-4 * np.abs(plain.logits).max()
    assert cached[1].traces[0].q.shape[1] == 1  # after the prompt, one token per step


@pytest.mark.parametrize("name", DECODERS)
def test_greedy_equals_transformers_generate(tiny, name):
    ref = np.load(FIXTURES / f"tiny-{name}-plain.npz")
    model = tiny[name]
    steps = list(decode(model, ref["input_ids"], len(ref["generated"]), eos=eos_ids(model)))
    assert [s.id for s in steps] == ref["generated"].tolist()
    check_steps(steps, ref)


def check_steps(steps, ref) -> None:
    """Top-5 log-probs within 1e-3 and attention rows of each step within 1e-5 of transformers'."""
    for n, step in enumerate(steps):
        logprobs = log_softmax(step.logits)
        top = top_tokens(logprobs, 5)
        assert set(top.tolist()) == set(ref["top_ids"][n].tolist()) or np.allclose(logprobs[top], ref["top_logprobs"][n], atol=1e-3)
        np.testing.assert_allclose(logprobs[ref["top_ids"][n]], ref["top_logprobs"][n], atol=1e-3)
        rows = step_rows(step)  # (layers, heads, seq)
        for layer, want in enumerate(ref["rows"][n]):
            keys = int(np.isfinite(want[0]).sum())  # transformers keeps only a sliding layer's window of keys
            np.testing.assert_allclose(rows[layer, :, rows.shape[-1] - keys :], want[:, :keys], atol=1e-5)
            assert not rows[layer, :, : rows.shape[-1] - keys].any()  # what it dropped had weight 0 here


def test_the_cache_holds_keys_after_rope_per_kv_head(tiny):
    model = tiny["llama"]  # 2 layers, 2 kv heads of 16 dims
    ids = np.load(TINY / "llama" / "ref_0.npz")["input_ids"]
    cache = KVCache(model.spec, len(ids) + 3)
    traces = list(model.trace(ids, cache))
    assert cache.length == len(ids) and [k.shape for k in cache.k] == [(2, len(ids) + 3, 16)] * 2
    np.testing.assert_array_equal(cache.k[1][:, : len(ids)], traces[1].k)
    ref = np.load(TINY / "llama" / "ref_0.npz")
    np.testing.assert_allclose(np.stack([k[:, : len(ids)] for k in cache.k]), ref["k"], atol=1e-5)
    assert cache.nbytes == cache_bytes(model.spec, len(ids) + 3) == 2 * 2 * (len(ids) + 3) * 16 * 2 * 4


def test_generation_stops_at_any_eos_id_and_keeps_it(tmp_path):
    folder = tied_copy("llama", tmp_path)
    free = generate(load_model(folder), "The cat sat.", 8)
    third = free.steps[2].id
    assert third not in [s.id for s in free.steps[:2]]
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [12345, third]}))
    r = generate(load_model(folder), "The cat sat.", 8)
    assert [s.id for s in r.steps] == [s.id for s in free.steps[:3]]
    assert r.stop_reason == "eos" and free.stop_reason == "length" and r.eos_ids == (12345, third)
    assert r.tokenization.tokens[-1].id == third and len(r.tokenization.tokens) == r.prompt_tokens + 3


def test_eos_comes_from_generation_config_then_config(tmp_path):
    folder = tied_copy("llama", tmp_path)
    assert eos_ids(load_model(folder)) == (2,)  # config.json
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 7}))
    assert eos_ids(load_model(folder)) == (7,)


def test_bad_words_come_from_config_without_a_generation_config_and_are_never_candidates(tmp_path):
    """config.json's `bad_words_ids` (no generation_config.json): a banned token gets -inf, the
    others' log-probabilities are renormalized over what is left; `[eos]` alone is dropped, as
    transformers' NoBadWordsLogitsProcessor does (the real Marian against it: test_opus_mt_real.py)."""
    folder = tied_copy("llama", tmp_path)
    (folder / "generation_config.json").unlink(missing_ok=True)
    plain = load_model(folder)
    free = next(decode(plain, plain.tokenizer.encode("The cat sat.").ids, 1))
    first = free.id
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"bad_words_ids": [[first], [2], [first, 5]]}))
    model = load_model(folder)
    assert bad_words(model) == ((first,), (first, 5))
    r = generate(model, "The cat sat.", 3)
    raw = free.logits.astype(np.float64).copy()
    raw[first] = -np.inf
    expected = log_softmax(raw)
    assert r.steps[0].id == int(np.argmax(raw)) != first
    assert [c.id for c in r.steps[0].top] == top_tokens(expected, 5).tolist()
    assert np.abs(np.array([c.logprob for c in r.steps[0].top]) - expected[top_tokens(expected, 5)]).max() <= 1e-6
    assert first not in [c.id for s in r.steps for c in s.top]
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))  # transformers 5 then reads it alone
    assert bad_words(load_model(folder)) == ()


def test_banned_tokens_are_left_out_of_a_top_longer_than_what_is_left(tmp_path):
    """All but ids 0, 1, 2 banned: `top=10` shows those three, whose probabilities sum to 1, and
    the JSON has no -Infinity."""
    folder = tied_copy("llama", tmp_path)
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 2, "bad_words_ids": [[i] for i in range(3, 403)]}))
    r = generate(load_model(folder), "The cat sat.", 2, top=10)
    assert [sorted(c.id for c in s.top) for s in r.steps] == [[0, 1, 2]] * len(r.steps) and r.steps[0].id in (0, 1, 2)
    assert abs(np.logaddexp.reduce([c.logprob for c in r.steps[0].top]) - 0.0) <= 1e-6
    json.dumps(r.to_json(), allow_nan=False)


def test_forced_eos_ids_make_the_last_new_token_and_nothing_before(tmp_path):
    """`forced_eos_token_id` [a, b]: the last of max_new_tokens is a (the first on the tie), each
    at probability 1/2; the tokens before are the free run's (the real Marian against
    transformers: test_opus_mt_real.py)."""
    folder = tied_copy("llama", tmp_path)
    free = generate(load_model(folder), "The cat sat.", 3)
    a, b = 7, 11
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 2, "forced_eos_token_id": [a, b]}))
    model = load_model(folder)
    assert forced_eos(model) == (a, b)
    r = generate(model, "The cat sat.", 3)
    assert [s.id for s in r.steps[:2]] == [s.id for s in free.steps[:2]] and r.steps[2].id == a
    assert [(c.id, round(c.logprob, 6)) for c in r.steps[2].top] == [(a, round(-np.log(2), 6)), (b, round(-np.log(2), 6))]
    (folder / "generation_config.json").write_text(json.dumps({"forced_eos_token_id": "2"}))
    with pytest.raises(ModelError, match="forced_eos_token_id"):
        forced_eos(load_model(folder))


def test_a_longer_bad_word_is_banned_only_after_its_prefix():
    assert banned([5, 7], ((7, 9), (5, 8), (3,), (1, 5, 7, 4), (5, 7, 6), (9, 9, 9, 9))) == [9, 3, 6]
    assert banned([], ((3,), (4, 5))) == [3]


@pytest.mark.parametrize("value", [[3], [[]], [[-1]], [[True]], "3"])
def test_bad_words_that_are_not_lists_of_ids_are_a_model_error(tmp_path, value):
    folder = tied_copy("llama", tmp_path)
    (folder / "generation_config.json").write_text(json.dumps({"bad_words_ids": value}))
    with pytest.raises(ModelError, match="bad_words_ids"):
        bad_words(load_model(folder))


def test_a_bad_word_past_the_vocabulary_is_a_model_error(tmp_path):
    folder = tied_copy("llama", tmp_path)
    (folder / "generation_config.json").write_text(json.dumps({"bad_words_ids": [[10**6]]}))
    with pytest.raises(ModelError, match="bans token 1000000"):
        generate(load_model(folder), "The cat sat.", 2)


def test_sampling_is_reproducible_and_top_k_1_is_greedy(tiny):
    model = tiny["qwen3"]
    draw = lambda seed, **kw: [s.id for s in generate(model, "The cat sat.", 8, Sampling(True, seed=seed, **kw)).steps]  # noqa: E731
    assert draw(1) == draw(1)
    assert draw(1) != draw(2) or draw(1) != draw(3)
    assert draw(5, top_k=1) == [s.id for s in generate(model, "The cat sat.", 8).steps]


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    kept_p = np.isfinite(filtered_logits(logits, top_p=0.75))
    assert kept_p.tolist() == [True, True, False, False]
    assert np.isfinite(filtered_logits(logits, top_p=0.85)).sum() == 3
    assert np.isfinite(filtered_logits(logits, top_p=0.1)).tolist() == [True, False, False, False]
    assert np.isfinite(filtered_logits(logits, top_k=2)).tolist() == [True, True, False, False]
    rng = np.random.default_rng(0)
    counts = np.bincount([sample(logits, rng, temperature=1.0) for _ in range(4000)], minlength=4) / 4000
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    sharp = np.bincount([sample(logits, rng, temperature=0.25) for _ in range(2000)], minlength=4) / 2000
    assert sharp[0] > 0.8  # p^(1/T) renormalised: 0.5^4 / Σ ≈ 0.87


def test_generated_tokens_extend_the_tokenization(tiny):
    r = generate(tiny["gpt2"], "The cat sat.", 5, top=3)
    tok = r.tokenization
    assert len(tok.tokens) == r.prompt_tokens + 5 and tok.text == "The cat sat." + r.continuation
    for step, token in zip(r.steps, tok.tokens[r.prompt_tokens :]):
        assert token.id == step.id and token.index == step.position
        assert token.special or tok.text[token.start : token.end] == step.text
        assert len(step.top) == 3 and step.top[0].logprob >= step.top[1].logprob >= step.top[2].logprob
        assert step.logprob <= step.top[0].logprob + 1e-6
    assert r.steps[0].top[0].id == r.steps[0].id  # greedy writes the most likely token
    doc = r.to_json()
    assert [t["generated"] for t in doc["tokens"]] == [False] * r.prompt_tokens + [True] * 5


def test_query_view_of_a_generated_token_is_inspects_over_the_whole_sequence(tiny):
    from attn_cli.compute.inspect import inspect_tokens
    from attn_cli.compute.options import InspectOptions

    model = tiny["mistral"]
    options = InspectOptions(query_index=-2, layer="all", head="all")
    r = generate(model, "The cat sat.", 4, inspect=options)
    assert r.inspect.query.token_indices == (len(r.tokenization.tokens) - 2,)
    again = inspect_tokens(model, r.tokenization, options)
    for a, b in zip(r.inspect.layers, again.layers):
        np.testing.assert_array_equal(a.head(0).weights, b.head(0).weights)
    weights = r.inspect.layers[0].head(1).weights
    assert weights[-1] == 0 and abs(weights.sum() - 1) < 1e-5  # the last token is in its future


def test_auto_head_ignores_a_decoders_first_token_sink(tiny):
    from attn_cli.compute.inspect import auto_head
    from attn_cli.compute.query import resolve_query
    from attn_cli.loading.tokenizer import tokenize

    tok = tokenize(tiny["gpt2"].tokenizer, "The cat sat.")  # GPT-2 adds no BOS: token 0 is "The"
    q = resolve_query(tok, query_index=-1)
    rows = np.zeros((2, len(tok.tokens)), dtype=np.float32)
    rows[0, 0] = 0.9  # a sink head
    rows[1, 1] = 0.3  # a head that reads "cat"
    assert auto_head(rows, tok, q, causal=True) == 1
    assert auto_head(rows, tok, q, causal=False) == 0


SLIDING = ("gemma3", "gemma2", "mistral", "phi3")  # their tiny fixtures slide with windows of 4


@pytest.mark.parametrize("name", SLIDING)
def test_sliding_layers_cache_only_their_window(tiny, name):
    """A sliding layer of window w keeps w - 1 past positions and the new one, a global layer
    every position; generation longer than the windows still equals the run without a cache:
    the same ids, and each layer's rows over its kept keys equal the full pass's rows there."""
    model = tiny[name]
    spec = model.spec
    prompt = np.load(TINY / name / "ref_1.npz")["input_ids"]
    new = 12
    windows = [spec.window(layer) for layer in range(spec.layers)]
    assert 4 in windows and len(prompt) + new > 3 * max(w for w in windows if w is not None)
    cached = list(decode(model, prompt, new))
    uncached = list(decode(model, prompt, new, use_cache=False))
    assert [s.id for s in cached] == [s.id for s in uncached]
    for step, plain in zip(cached[1:], uncached[1:]):
        for t, full in zip(step.traces, plain.traces):
            w = spec.window(t.layer)
            keys = step.position if w is None else w  # keys up to the querying position, step.position - 1
            assert t.k.shape[1] == keys and t.v.shape[1] == keys and t.key_start == step.position - keys
            np.testing.assert_array_equal(t.key_positions, np.arange(step.position - keys, step.position))
            row = t.rows([0])[2][:, 0]
            want = full.rows([step.position - 1])[2][:, 0]
            np.testing.assert_allclose(row, want[:, t.key_start :], atol=1e-5)
            assert not want[:, : t.key_start].any()  # what the cache dropped had weight 0
            np.testing.assert_allclose(t.k, full.k[:, t.key_start :], atol=1e-5)
    cache = KVCache(spec, len(prompt) + new)
    kept = sum(len(prompt) + new if w is None else w for w in windows)
    assert cache.nbytes == cache_bytes(spec, len(prompt) + new) == kept * spec.kv_heads * spec.head_dim * 2 * 4


def test_a_prompt_longer_than_the_window_then_several_tokens_a_step(tiny):
    """The cache's shifting buffer: a prompt past the window, then passes of 1 and 3 tokens,
    each layer's keys and rows those of the whole sequence from its key_start on."""
    model = tiny["gemma3"]
    ids = np.load(TINY / "gemma3" / "ref_1.npz")["input_ids"]
    ids = np.concatenate([ids, ids])
    cache = KVCache(model.spec, len(ids), step=3)
    full = list(model.trace(ids))
    at = 0
    for n in (len(ids) - 7, 1, 3, 3):
        traces = list(model.trace(ids[at : at + n], cache))
        for t, f in zip(traces, full):
            assert t.key_start <= cache.key_starts[t.layer] and t.k.shape[1] == at + n - t.key_start
            np.testing.assert_allclose(t.k, f.k[:, t.key_start : at + n], atol=1e-5)
            np.testing.assert_allclose(t.rows()[2], f.rows(slice(at, at + n))[2][..., t.key_start : at + n], atol=1e-5)
        at += n
    assert at == len(ids) and cache.length == len(ids)


def test_gemma3_270m_cache_keeps_8000_positions_of_3_global_layers_and_512_of_15_sliding():
    """Gemma 3 270M's shape: 18 layers (every sixth global, the others sliding, window 512),
    1 kv head of 256: a cache for 8,000 positions is 3 × 8,000 + 15 × 512 positions of 2 KiB."""
    from attn_cli.models.hyper import Hyper

    windows = tuple(None if (layer + 1) % 6 == 0 else 512 for layer in range(18))
    spec = Hyper("gemma3_text", 18, 4, 1, 256, 640, 32768, True, 1e-6, windows=windows)
    cache = KVCache(spec, 8000)
    per_position = 1 * 256 * 2 * 4  # kv heads × head_dim × (k, v) × float32
    assert cache.nbytes == cache_bytes(spec, 8000) == (3 * 8000 + 15 * 512) * per_position == 64_880_640
    assert 18 * 8000 * per_position == 294_912_000  # every layer keeping every position, as before
    assert cache_bytes(spec, 8001) - cache_bytes(spec, 8000) == 3 * per_position  # 6 KiB a token, past the window


def test_knockouts_and_value_zeroing_place_a_sliding_caches_keys_by_position(tiny):
    """Through a sliding layer's cache, key column j is position key_start + j: a knockout of
    a position in the window and zeroed values there give the full pass's rows and output."""
    from attn_cli.models import Interventions, Knockout, ValueZeroing

    model = tiny["mistral"]  # every layer slides, window 4
    ids = np.load(TINY / "mistral" / "ref_1.npz")["input_ids"]
    last = len(ids) - 1
    iv = Interventions(knockouts=(Knockout((0, 1), (last,), (last - 2,)),), value_zeroing=(ValueZeroing(1, (last - 1,)),))
    cache = KVCache(model.spec, len(ids))
    list(model.trace(ids[:-1], cache, interventions=iv))
    step = list(model.trace(ids[-1:], cache, interventions=iv))
    full = list(model.trace(ids, interventions=iv))
    for t, f in zip(step, full):
        assert t.key_start == len(ids) - 4
        np.testing.assert_allclose(t.rows()[2], f.rows([last])[2][..., t.key_start :], atol=1e-5)
        assert not t.rows()[2][..., 1].any()  # position last - 2, knocked out
        np.testing.assert_allclose(t.head_output, f.head_output[:, -1:], atol=1e-5)
    np.testing.assert_allclose(step[-1].hidden, full[-1].hidden[-1:], atol=1e-4)
