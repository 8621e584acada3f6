"""`attn contrib`'s numbers: value zeroing, ALTI and norms against the authors' definitions as
scripts/make_contrib_fixtures.py computes them from transformers' own pass (float64 maths on
transformers' float32 tensors), every row of every layer within 1e-5, and the rollout.

attn's forward pass agrees with transformers to ~1e-6 in float32, and the three measures are
smooth in it: the largest deviation measured is 2.3e-6 (mixtral's ALTI; value zeroing, whose
cosine distances of nearly equal outputs amplify the last float32 bits most, 1.9e-6), well
inside 1e-5. ALTI-Logit (in logits, not shares): 2.1e-6 on gpt2 (of ∆logits up to 1.5) and
mixtral, 6.9e-7 on llama, at most 1.5e-6 on phi3, gpt_neox-sequential and qwen3_moe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import tied_copy

from attn_cli.compute import contrib_matrices
from attn_cli.compute.contrib import contributions
from attn_cli.compute.contrib_matrices import MATRICES, alti_logit_rows, cosine_distances
from attn_cli.errors import InputError, ModelError, OptionError
from attn_cli.loading.model import load_model

FIXTURES = Path(__file__).parent / "fixtures"
DECODERS = ("gpt2", "llama", "phi3", "gpt_neox-sequential", "mixtral", "qwen3_moe")  # ALTI-Logit's too
MODELS = {"minilm": None} | {name: FIXTURES / "tiny" / name for name in ("bert", "mpnet", "nomic_bert", "modernbert", *DECODERS)}
METHODS = ("value-zeroing", "alti", "norms")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def models():
    return {name: load_model(path) for name, path in MODELS.items()}


def reference(name: str) -> dict:
    with np.load(FIXTURES / "contrib" / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


def matrices(model, ref: dict, method: str) -> np.ndarray:
    ids = ref["input_ids"]
    return np.stack(MATRICES[method](model, ids, list(range(len(ids))), model.spec.layers - 1))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", MODELS)
def test_every_row_of_every_layer_is_the_reference(models, name, method):
    ref = reference(name)
    got = matrices(models[name], ref, method)
    want = ref[method.replace("-", "_")]
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= TOLERANCE
    assert np.allclose(got.sum(axis=-1), 1.0)  # normalised rows
    assert (got >= 0).all()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["bert", "llama"])
def test_the_query_row_and_its_rollout_through_each_layer(models, name, method):
    ref = reference(name)
    model = models[name]
    text = str(np.load(MODELS[name] / "ref_2.npz")["text"])
    query = 5
    r = contributions(model, text, query_index=query, method=method, rollout=True)
    assert list(r.tokenization.ids) == list(ref["input_ids"])
    key = method.replace("-", "_")
    assert np.abs(r.rows - ref[key][:, query]).max() <= TOLERANCE
    assert np.abs(r.rollout - ref[f"{key}_rollout"][:, query]).max() <= TOLERANCE
    assert np.abs(r.whole - ref[f"{key}_rollout"][-1, query]).max() <= TOLERANCE
    if model.spec.causal:  # a decoder's token reads nothing after itself
        assert not r.rows[:, query + 1 :].any() and not r.whole[query + 1 :].any()
    one = contributions(model, text, query_index=query, method=method, layer="1")
    # Without the rollout only the query's attention row is computed (with it, every row): the
    # same softmax up to float32 rounding of the smaller product.
    assert one.layers == (1,) and one.rollout is None and np.allclose(one.rows[0], r.rows[1], rtol=0, atol=1e-6)


def _wrong(monkeypatch, mutation: str) -> None:
    """Replace one step of the definitions by a plausible mistake."""
    real = contrib_matrices.normalised
    if mutation == "not normalised":
        monkeypatch.setattr(contrib_matrices, "normalised", lambda c: c)
    elif mutation == "special tokens left out of the sum":  # [CLS] and [SEP] of the bert fixture's text
        monkeypatch.setattr(contrib_matrices, "normalised", lambda c: real(np.concatenate([c[:, :1] * 0, c[:, 1:-1], c[:, -1:] * 0], axis=1)))
    elif mutation == "unbiased std":  # transformer-contributions' `(x + eps).std()`, not LN1's own
        monkeypatch.setattr(contrib_matrices, "ln_std", lambda x, eps: float(np.std(x + eps, ddof=1)))


@pytest.mark.parametrize(
    "mutation, method",
    [("not normalised", "alti"), ("not normalised", "value-zeroing"), ("not normalised", "norms"),
     ("special tokens left out of the sum", "value-zeroing"), ("unbiased std", "alti")],
)
def test_a_wrong_definition_fails_the_reference(models, monkeypatch, mutation, method):
    """The fixtures tell the definitions apart: each plausible mistake moves rows past the tolerance."""
    ref = reference("bert")
    _wrong(monkeypatch, mutation)
    got = matrices(models["bert"], ref, method)
    assert np.abs(got - ref[method.replace("-", "_")]).max() > 10 * TOLERANCE


def test_rollout_multiplies_the_later_layer_on_the_left():
    a = np.array([[1.0, 0.0], [0.5, 0.5]])
    b = np.array([[0.2, 0.8], [0.0, 1.0]])
    assert np.allclose(contrib_matrices.rollout_rows([a, b], [0]), (b @ a)[0])
    assert not np.allclose((b @ a)[0], (a @ b)[0])


def test_cosine_distance_is_exact_near_zero_and_clipped():
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    assert cosine_distances(x, x)[0] == 0.0
    assert cosine_distances(x, -x)[0] == 2.0
    tiny = x + np.float32(1e-3) * np.array([[0.0, 1.0, 0.0]], np.float32)
    a, b = x[0].astype(np.float64), tiny[0].astype(np.float64)
    want = 1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert cosine_distances(tiny, x)[0] == pytest.approx(want, rel=1e-6)  # 1 - cos in float32 gives 0 here
    assert 1 - float(x[0] @ tiny[0] / np.linalg.norm(x[0]) / np.linalg.norm(tiny[0])) != pytest.approx(want, rel=1e-2)


def test_refusals(models):
    with pytest.raises(InputError, match="method 'attention'"):
        contributions(models["bert"], "a b c", method="attention")
    gemma = load_model(FIXTURES / "tiny" / "gemma3")
    with pytest.raises(OptionError, match="ALTI is not defined here for gemma3") as refused:
        contributions(gemma, "a b c", method="alti")
    assert refused.value.fix == "use `method='value-zeroing'` or `method='norms'`"
    assert contributions(gemma, "hello there friend", query_index=1, method="norms").rows.shape[0] == gemma.spec.layers


def test_alti_refuses_the_parallel_residual_and_says_why(models):
    """Pythia's layer adds attention and MLP to x side by side: no x + attention for ALTI to
    decompose. The sequential GPT-NeoX (checked above) is the same family with that sum."""
    pythia = load_model(FIXTURES / "tiny" / "gpt_neox")
    for method in ("alti", "alti-logit"):
        with pytest.raises(OptionError, match=r"parallel residual \(use_parallel_residual, as every Pythia\).*never forms x \+ attention") as refused:
            contributions(pythia, "hello there friend", query_index=1, method=method)
        assert refused.value.fix == "use `method='value-zeroing'` or `method='norms'`"
    vz = contributions(pythia, "hello there friend", query_index=1, method="value-zeroing")
    assert vz.rows.shape[0] == pythia.spec.layers and np.allclose(vz.rows.sum(axis=-1), 1.0)


# --- ALTI-Logit ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm_models(tmp_path_factory):
    """The tiny gpt2 and llama as causal LMs, their heads tied to the embeddings (their files hold no lm_head)."""
    root = tmp_path_factory.mktemp("alti-logit")
    return {name: load_model(tied_copy(name, root)) for name in DECODERS}


@pytest.mark.parametrize("name", DECODERS)
def test_alti_logit_is_the_reference_per_layer_and_after_the_rollout(lm_models, name):
    """Target (the top prediction) and foil (the second), every layer, before and after the rollout."""
    ref = reference(name)
    ids = ref["input_ids"]
    direct, rolled, heads = alti_logit_rows(lm_models[name], ids, len(ids) - 1, tuple(int(t) for t in ref["alti_logit_ids"]))
    assert np.abs(heads - ref["alti_logit_heads"]).max() <= TOLERANCE  # logit-explanations' aff_x_j_h: each head's part
    assert direct.shape == rolled.shape == ref["alti_logit"].shape
    assert np.abs(direct - ref["alti_logit_direct"]).max() <= TOLERANCE
    assert np.abs(rolled - ref["alti_logit"]).max() <= TOLERANCE
    assert np.array_equal(rolled[:, 0], direct[:, 0])  # the first layer's inputs are the tokens


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_alti_logit_result_target_contrast_and_total(lm_models, name):
    ref = reference(name)
    model = lm_models[name]
    text = str(np.load(MODELS[name] / "ref_2.npz")["text"])
    top, second = (int(t) for t in ref["alti_logit_ids"])
    r = contributions(model, text, method="alti-logit")
    assert list(r.tokenization.ids) == list(ref["input_ids"]) and r.query.token_indices == (len(ref["input_ids"]) - 1,)
    assert r.logit.target.id == top and r.logit.target.chosen == "top-1" and r.logit.foil is None
    assert np.abs(r.rows - ref["alti_logit"][0]).max() <= TOLERANCE
    assert np.abs(r.logit.direct - ref["alti_logit_direct"][0]).max() <= TOLERANCE
    assert np.abs(r.whole - ref["alti_logit"][0].sum(axis=0)).max() <= TOLERANCE
    c = contributions(model, text, method="alti-logit", target_id=top, contrast_id=second, layer="1")
    assert c.layers == (1,) and c.logit.foil.id == second and c.logit.target.chosen == "given"
    want = ref["alti_logit"][0] - ref["alti_logit"][1]
    assert np.abs(c.rows[0] - want[1]).max() <= TOLERANCE and np.abs(c.whole - want.sum(axis=0)).max() <= TOLERANCE
    assert np.abs(c.logit.heads[0] - (ref["alti_logit_heads"][0, 1] - ref["alti_logit_heads"][1, 1])).max() <= TOLERANCE
    assert c.logit.logit == pytest.approx(c.logit.target.logprob - c.logit.foil.logprob, abs=1e-4)  # a logit difference
    foil = " the" if name == "gpt2" else "the"
    by_text = contributions(model, text, method="alti-logit", contrast=foil)
    assert by_text.logit.foil.id == model.tokenizer.encode(foil, add_special_tokens=False).ids[0] and by_text.logit.foil.chosen == "given"


def test_alti_logit_at_a_query_reads_nothing_after_it(lm_models):
    model = lm_models["llama"]
    text = str(np.load(MODELS["llama"] / "ref_2.npz")["text"])
    r = contributions(model, text, query_index=5, method="alti-logit")
    assert r.logit.position == 5 and not r.rows[:, 6:].any() and not r.whole[6:].any()
    ids = reference("llama")["input_ids"]
    _, rolled, _ = alti_logit_rows(model, ids, 5, (r.logit.target.id,))
    assert np.allclose(r.whole[:6], rolled[0].sum(axis=0), atol=1e-6)


def test_alti_logit_refusals(models, lm_models):
    with pytest.raises(OptionError, match="ALTI-Logit explains a decoder's next token; bert is an encoder and predicts none") as refused:
        contributions(models["bert"], "a b c", method="alti-logit")
    assert refused.value.fix == "use `method='alti'`"
    with pytest.raises(InputError, match="--contrast explain a logit"):
        contributions(lm_models["gpt2"], "a b c", query_index=1, method="alti", target_id=3)
    with pytest.raises(InputError, match="not one"):
        contributions(lm_models["gpt2"], "a b c", method="alti-logit", target="hello there friend")


@pytest.mark.parametrize("mutation", ["no rollout", "final norm not linearised", "the final norm's own std unbiased"])
def test_a_wrong_alti_logit_fails_the_reference(lm_models, monkeypatch, mutation):
    """The fixtures tell ALTI-Logit's steps apart: each plausible mistake moves gpt2's rows past the tolerance."""
    ref = reference("gpt2")
    ids = ref["input_ids"]
    if mutation == "no rollout":  # every C the identity: each layer's ∆ left on its own inputs
        monkeypatch.setattr(contrib_matrices, "alti_matrices", lambda m, ids, rows, last: [np.eye(len(ids))] * (last + 1))
    elif mutation == "final norm not linearised":  # γ·u as the direction, without 1/σ
        monkeypatch.setattr(contrib_matrices, "ln_std", lambda x, eps: 1.0)
    else:
        monkeypatch.setattr(contrib_matrices, "ln_std", lambda x, eps: float(np.std(x, ddof=1)))
    _, rolled, _ = alti_logit_rows(lm_models["gpt2"], ids, len(ids) - 1, tuple(int(t) for t in ref["alti_logit_ids"]))
    assert np.abs(rolled - ref["alti_logit"]).max() > 10 * TOLERANCE


def test_alti_logit_needs_an_lm_head(models):
    with pytest.raises(ModelError, match="no LM head"):
        contributions(models["llama"], "a b c", method="alti-logit")  # the tiny llama's file holds no lm_head.weight
