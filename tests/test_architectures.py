"""Every architecture attn claims, against transformers, on tiny random-weight models.

tests/fixtures/tiny/<name>/ holds a model folder (config.json, tokenizer.json, safetensors)
and ref_<i>.npz reference tensors, made by scripts/make_tiny_models.py (transformers, eager
attention). Every parameter is random, so no bias or norm is near identity and a wrong
formula cannot hide. These tests need no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attn_cli.loading.model import load_model
from attn_cli.loading.tokenizer import tokenize
from attn_cli.models import ARCHITECTURES

TINY = Path(__file__).parent / "fixtures" / "tiny"
MODELS = sorted(p for p in TINY.iterdir() if (p / "config.json").is_file()) if TINY.is_dir() else []
TOLERANCE = 1e-5


def test_every_architecture_has_a_tiny_model():
    import json

    seq2seq = sorted(p for p in (TINY.parent / "seq2seq").iterdir() if (p / "config.json").is_file())  # tests/test_seq2seq.py
    covered = {json.loads((p / "config.json").read_text())["model_type"] for p in MODELS + seq2seq}
    assert covered == set(ARCHITECTURES)
    names = {p.name for p in MODELS}
    assert {"llama-bf16", "gpt2-sharded", "llama3rope"} <= names


CASES = [(m, r) for m in MODELS for r in sorted(m.glob("ref_*.npz"))]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0].name}/{c[1].stem}")
def case(request):
    folder, ref_path = request.param
    model = load_model(folder)
    ref = dict(np.load(ref_path))
    tok = tokenize(model.tokenizer, str(ref["text"]))
    traces = list(model.arch.forward(model.weights, model.spec, tok.ids))
    return model, ref, tok, traces


def _close(ours: np.ndarray, want: np.ndarray) -> float:
    """Largest difference, relative to the tensor's scale when that exceeds 1."""
    assert ours.shape == want.shape
    return float(np.max(np.abs(ours - want)) / max(1.0, float(np.abs(want).max())))


def test_tokenization(case):
    _, ref, tok, _ = case
    assert tok.ids.tolist() == ref["input_ids"].tolist()


def test_attention_weights_every_layer_and_head(case):
    _, ref, _, traces = case
    ours = np.stack([t.rows()[2] for t in traces])
    assert ours.shape == ref["attentions"].shape
    assert np.max(np.abs(ours - ref["attentions"])) <= TOLERANCE


def test_vectors_as_they_enter_the_product(case):
    """q, k (after RoPE for rotary models), v; and for rotary models q and k before RoPE."""
    model, ref, _, traces = case
    names = ["q", "k", "v"] + (["q_pre_rope", "k_pre_rope"] if model.spec.rotary else [])
    assert ("q_pre_rope" in ref) == model.spec.rotary
    for name in names:
        ours = np.stack([getattr(t, name) for t in traces])
        assert _close(ours, ref[name]) <= TOLERANCE, name


def test_experts_each_token_went_to(case):
    """Mixture-of-experts models: in each layer with experts, the experts the router chose for
    every token (most probable first) and their weights, as transformers' router returned
    them; every other layer and model: no routing."""
    _, ref, _, traces = case
    routed = [t for t in traces if t.routing is not None]
    assert [t.layer for t in routed] == ref["router_layers"].tolist() if "router_layers" in ref else not routed
    for t, experts, weights in zip(routed, ref.get("router_experts", []), ref.get("router_weights", [])):
        assert np.array_equal(t.routing.experts, experts), t.layer
        assert np.max(np.abs(t.routing.weights - weights)) <= TOLERANCE


def test_last_hidden_state(case):
    model, ref, _, traces = case
    ours = model.arch.final_norm(model.weights, model.spec, traces[-1].hidden)
    assert _close(ours, ref["last_hidden_state"]) <= 1e-4


@pytest.mark.parametrize("folder", MODELS, ids=lambda p: p.name)
def test_a_pass_cut_short_stops_at_its_layer_with_the_same_attention_inputs(folder):
    """`through` (what inspect asks for): layers 0 … L as in the whole pass, the last of them
    only up to q, k, v (the same numbers), its head outputs and output never computed."""
    model = load_model(folder)
    ids = tokenize(model.tokenizer, "The cat sat on the mat because it was tired.").ids
    whole = list(model.trace(ids))
    last = model.spec.layers // 2
    cut = list(model.trace(ids, through=last))
    assert [t.layer for t in cut] == list(range(last + 1))
    for ours, full in zip(cut, whole):
        for name in ("q", "k", "v", "q_pre_rope", "k_pre_rope"):
            a, b = getattr(ours, name), getattr(full, name)
            assert (a is None) == (b is None) and (a is None or np.array_equal(a, b)), name
        assert ours.layer == last or np.array_equal(ours.hidden, full.hidden)
    assert cut[-1].head_output is None and cut[-1].hidden is None
    np.testing.assert_array_equal(cut[-1].rows()[2], whole[last].rows()[2])


def test_a_cut_past_the_last_layer_is_the_last_layer():
    from attn_cli.models.base import layer_plan

    assert list(layer_plan(3)) == [(0, True), (1, True), (2, True)]
    assert list(layer_plan(3, 1)) == [(0, True), (1, False)]
    assert list(layer_plan(3, 7)) == [(0, True), (1, True), (2, False)]


def test_gemma2_soft_cap_bites_on_the_tiny_model():
    """Gemma 2's cap·tanh(s/cap) (cap 5 on the tiny model, whose scaled scores reach ~40) is what
    makes attn's weights transformers': the same pass without it is far off."""
    from dataclasses import replace

    model = load_model(TINY / "gemma2")
    ref = np.load(TINY / "gemma2" / "ref_2.npz")
    traces = list(model.trace(ref["input_ids"]))
    assert model.spec.attn_softcap == float(ref["softcap"]) == 5.0 and model.spec.final_softcap == 3.0
    capped = np.stack([t.rows()[2] for t in traces])
    uncapped = np.stack([replace(t, spec=replace(model.spec, attn_softcap=None)).rows()[2] for t in traces])
    assert np.abs(capped - ref["attentions"]).max() <= TOLERANCE
    assert np.abs(uncapped - ref["attentions"]).max() > 0.5
    assert [t.adjusts for t in traces] == ["cap", "cap"]


def test_mpnet_position_bias_is_transformers_and_shared_by_every_layer():
    """MPNet's relative position term, bucket by bucket, as transformers computes it once and adds in every layer."""
    from attn_cli.models.mpnet import relative_buckets

    model = load_model(TINY / "mpnet")
    for path in sorted((TINY / "mpnet").glob("ref_*.npz")):
        ref = np.load(path)
        traces = list(model.trace(ref["input_ids"]))
        np.testing.assert_array_equal(traces[0].score_bias, ref["position_bias"])
        assert all(t.score_bias is traces[0].score_bias and t.adjusts == "bias" for t in traces)
    # T5's buckets: exact up to 8 either way, logarithmic to 128, capped beyond; keys after the query in 16-31
    offsets = np.array([0, -1, -7, -8, -12, -16, -127, -128, -1000, 1, 7, 8, 16, 128, 1000])
    assert relative_buckets(offsets).tolist() == [0, 1, 7, 8, 9, 10, 15, 15, 15, 17, 23, 24, 26, 31, 31]


def test_modernbert_reads_the_hubs_transformers_4_config_as_its_5_form():
    """ModernBERT-base's config.json (transformers 4) has no layer_types or rope_parameters:
    global_attn_every_n_layers, global_rope_theta and local_rope_theta say the same; the local
    window is local_attention/2 + 1 (transformers masks |i - j| > local_attention/2)."""
    import json

    from attn_cli.models import modernbert

    v5 = json.loads((TINY / "modernbert" / "config.json").read_text())
    v4 = {k: v for k, v in v5.items() if k not in ("layer_types", "rope_parameters")} | {"global_rope_theta": 160000.0, "local_rope_theta": 10000.0}
    a, b = modernbert.parse(v5), modernbert.parse(v4)
    assert a.windows == b.windows == (None, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a.inv_freq, b.inv_freq, strict=True))
    assert not np.array_equal(a.inv_freq[0], a.inv_freq[1])  # each kind its own θ
    base = modernbert.parse({k: v for k, v in v4.items() if k != "global_attn_every_n_layers"} | {"num_hidden_layers": 22, "local_attention": 128})
    assert base.windows == tuple(None if i % 3 == 0 else 65 for i in range(22))  # ModernBERT-base
