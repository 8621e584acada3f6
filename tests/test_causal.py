"""`knockout` (Geva et al. 2023's attention knockout) and `ablate` (head ablation, zero or mean)
against the same sweeps made inside transformers' eager attention (tests/fixtures/causal, made by
scripts/make_causal_fixtures.py): the tiny gpt2 and gemma3 with tied LM heads, and SmolLM2-135M
(the GGUF attn ships as `-m smollm2`); and what they refuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SENTENCE
from gguf_helpers import packaged_gguf
from helpers import tied_copy

from attn_cli.compute.ablate import ablate
from attn_cli.compute.knockout import knockout
from attn_cli.errors import InputError
from attn_cli.loading.model import kept, load_model

FIXTURES = Path(__file__).parent / "fixtures" / "causal"

# Relative changes of p and Δ log p agree within 1e-4 (measured: ≤ 4.1e-5, gemma3's runner-up,
# whose log p ≈ -11.4 sits on logits of ~30; ≤ 1.5e-5 SmolLM2; ≤ 4.2e-6 gpt2), and within 0.1% of
# the sweep's largest effect, so that a sweep whose effects are all tiny (gemma3's top-1 has
# p = 0.99999, hence |changes| ≤ 4.3e-5) is not passed by any numbers below 1e-4. In float32 a
# relative change c carries Δ log p's error (≤ 2.5e-5) times 1 + c: where c is large 1e-4 cannot
# hold (SmolLM2's runner-up: c = 12, off by 1.04e-4; see tests/fixtures/causal/README.md).
TOLERANCE = 1e-4
SHARE = 1e-3

# (model, target): "" the model's top-1, "runner_up." the second most likely token, given by id.
# The runner-up gives the tiny gemma3 (a random model with tied embeddings, which predicts its own
# last token at p ≈ 1) effects worth comparing. SmolLM2's top-1 (" Paris", p 0.77) moves enough;
# its runner-up is left out: its changes reach 12 (see above) and each SmolLM2 sweep takes ~20 s.
RUNS = [("gpt2", ""), ("gpt2", "runner_up."), ("gemma3", ""), ("gemma3", "runner_up."), ("smollm2", "")]


@pytest.fixture(scope="module")
def load(tmp_path_factory):
    """load(name) -> (model, reference), each model loaded once."""
    loaded: dict = {}

    def get(name: str):
        if name not in loaded:
            path = packaged_gguf(name) if name == "smollm2" else tied_copy(name, tmp_path_factory.mktemp("causal"))
            loaded[name] = kept(load_model(path)), np.load(FIXTURES / f"{name}.npz")
        return loaded[name]

    return get


def _close(ours: np.ndarray, ref: np.ndarray) -> None:
    worst = float(np.abs(ours.astype(np.float64) - ref).max())
    assert worst <= min(TOLERANCE, SHARE * float(np.abs(ref).max())), f"max |attn - transformers| = {worst:.2e}"


def _target(ref, which: str) -> int | None:
    return None if which == "" else int(ref[f"{which}target"])


@pytest.mark.parametrize("name, which", RUNS)
def test_knockout_equals_transformers(load, name, which):
    model, ref = load(name)
    result = knockout(model, str(ref["text"]), target_id=_target(ref, which), window=int(ref["window"]))
    assert result.tokenization.ids.tolist() == ref["input_ids"].tolist()
    assert result.position == int(ref["position"]) == len(ref["input_ids"]) - 1
    assert result.target.id == int(ref[f"{which}target"])
    assert result.target.chosen == ("top-1" if which == "" else "given")
    assert abs(result.target.logprob - float(ref[f"{which}logprob"])) <= TOLERANCE
    assert result.window == int(ref["window"])
    assert [list(s.token_indices) for s in result.sources] == json.loads(str(ref["words"]))
    assert [s.text for s in result.sources] == json.loads(str(ref["word_texts"]))
    _close(np.stack([s.changes for s in result.sources]), ref[f"{which}knockout.changes"])


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize("name, which", RUNS)
def test_ablate_equals_transformers(load, name, which, mode):
    model, ref = load(name)
    result = ablate(model, str(ref["text"]), target_id=_target(ref, which), mode=mode)
    assert (result.measure, result.mode, result.position) == ("logprob", mode, int(ref["position"]))
    assert result.target.id == int(ref[f"{which}target"])
    assert abs(result.target.logprob - float(ref[f"{which}logprob"])) <= TOLERANCE
    assert result.changes.shape == (model.spec.layers, model.spec.heads) == ref[f"{which}ablate.{mode}"].shape
    _close(result.changes, ref[f"{which}ablate.{mode}"])


def test_a_window_over_every_layer_runs_once_per_word_with_the_per_layer_numbers(load, monkeypatch):
    """A window of 2·layers - 1 or more blocks every layer from every column: one rerun per word,
    the same numbers as rerunning it for each layer (as before)."""
    from attn_cli.compute import knockout as module
    from attn_cli.compute.prediction import Reruns
    from attn_cli.models import Interventions, Knockout

    model, ref = load("gpt2")
    layers = model.spec.layers
    text = str(ref["text"])
    calls = []
    plain_output_with = Reruns.output_with
    monkeypatch.setattr(Reruns, "output_with", lambda self, iv, first: calls.append(first) or plain_output_with(self, iv, first))
    result = knockout(model, text, window=2 * layers - 1)
    assert calls == [0] * len(result.sources)
    monkeypatch.undo()
    reruns = Reruns(model, result.tokenization.ids, result.position)
    p = np.exp(np.float64(result.target.logprob))
    for source in result.sources:
        want = []
        for layer in range(layers):  # the per-layer computation, each column's window rerun
            blocked = module.window_layers(layer, 2 * layers - 1, layers)
            assert blocked == tuple(range(layers))
            out = reruns.output_with(Interventions(knockouts=(Knockout(blocked, (result.position,), source.token_indices),)), blocked[0])
            want.append(np.float32((np.exp(np.float64(reruns.logprobs(out)[result.target.id])) - p) / p))
        assert np.array_equal(source.changes, np.array(want, dtype=np.float32))
    assert np.array_equal(knockout(model, text, window=4 * layers).sources[0].changes, result.sources[0].changes)


def test_knockout_refuses_a_text_of_one_word(load):
    model, _ = load("gpt2")
    with pytest.raises(InputError, match="one word"):
        knockout(model, "fox", window=1)


def test_knockout_refuses_an_encoder(model):
    """The bundled MiniLM predicts no next token (require_decoder)."""
    with pytest.raises(InputError, match="is an encoder"):
        knockout(model, SENTENCE)


@pytest.mark.parametrize("command", [knockout, ablate])
def test_a_target_of_two_tokens_is_refused(load, command):
    model, ref = load("gpt2")
    assert len(model.tokenizer.encode(" brown", add_special_tokens=False).ids) == 2
    with pytest.raises(InputError, match="is 2 tokens, not one"):
        command(model, str(ref["text"]), target=" brown")


def test_ablate_on_an_encoder_measures_cosine_distance(model):
    result = ablate(model, SENTENCE, query="making")
    assert result.measure == "cosine_distance" and result.target is None
    assert result.changes.shape == (model.spec.layers, model.spec.heads)
    assert (result.changes >= 0).all() and result.changes.max() > 0
    assert result.to_json()["measure"] == "cosine_distance"
    with pytest.raises(InputError, match="is an encoder"):
        ablate(model, SENTENCE, target=" the")


def test_ablate_on_an_encoder_needs_a_query_not_its_last_token(model):
    """Without a query, an encoder's ablation measured [SEP] (the last token) without a word about
    it; now it asks for a query, as `inspect` and `contrib` do, naming the words to pick."""
    with pytest.raises(InputError, match="no query given") as info:
        ablate(model, SENTENCE)
    assert "making" in info.value.fix


DATASET = ["A dog runs in the park", "The lazy fox sleeps", "Quick brown dogs look at cats all day long"]


def test_ablate_mean_over_a_dataset_is_a_replace_by_its_means(load):
    """--mean-over: each head replaced, at every position, by its output averaged over every
    position of every text of the dataset; not the text's own mean."""
    from attn_cli.models import HeadEdit, Interventions

    model, ref = load("gpt2")
    text = str(ref["text"])
    result = ablate(model, text, mode="mean", mean_over=DATASET)
    outputs = [np.stack([t.head_output for t in model.trace(model.tokenizer.encode(t).ids)]) for t in DATASET]
    means = np.concatenate(outputs, axis=2).astype(np.float64).mean(axis=2)  # (layers, heads, head_dim)
    ids = result.tokenization.ids
    base = list(model.trace(ids))[-1].hidden
    plain = _logprobs(model, base, result.position)
    target = result.target.id
    for layer in range(model.spec.layers):
        for head in range(model.spec.heads):
            value = np.broadcast_to(means[layer, head].astype(np.float32), (len(ids), means.shape[-1]))
            edit = Interventions(head_edits=(HeadEdit(layer, head, "replace", value=value),))
            hidden = list(model.trace(ids, interventions=edit))[-1].hidden
            want = _logprobs(model, hidden, result.position)[target] - plain[target]
            assert abs(result.changes[layer, head] - want) <= 1e-5, (layer, head)
    own = ablate(model, text, mode="mean")
    assert np.abs(result.changes - own.changes).max() > 1e-3  # the dataset's mean is not the text's


def _logprobs(model, hidden, position):
    from attn_cli.maths.sampling import log_softmax
    from attn_cli.models.base import lm_head, logits

    final = model.arch.final_norm(model.weights, model.spec, hidden[position : position + 1])
    return log_softmax(logits(final, lm_head(model.weights, model.spec), model.spec)[0])


@pytest.mark.parametrize(
    "mode, texts, message", [("zero", DATASET, r"^`mean_over` needs `mode='mean'` \(the mode is 'zero'\)$"), ("mean", ["", "  "], "empty")]
)
def test_ablate_mean_over_is_refused_without_mode_mean_or_texts(load, mode, texts, message):
    model, ref = load("gpt2")
    with pytest.raises(InputError, match=message):
        ablate(model, str(ref["text"]), mode=mode, mean_over=texts)
