"""`attn stats --contributions`: `attn contrib`'s matrices over a corpus, in every engine. The
statistic (docs/stats.md): per layer, the mean over every token of every text of the share of
the token's row on itself, the first token, special tokens, punctuation, the previous and the
next token. Checked against `attn contrib` row by row (tests/test_contrib.py holds it to the
methods' reference code) and, for the text of tests/fixtures/contrib/minilm.npz, against that
reference itself; on MiniLM and the tiny gpt2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from option_registry import covers
from test_stats_corpus import need_ray
from typer.testing import CliRunner

from attn_cli.cli import app
from attn_cli.compute.contrib import contributions
from attn_cli.compute.stats import corpus_statistics, head_statistics
from attn_cli.errors import InputError, OptionError
from attn_cli.loading.model import load_model
from attn_cli.loading.tokenizer import tokenize
from attn_cli.maths.headsums import MASS_KINDS

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"
GPT2 = FIXTURES / "tiny" / "gpt2"
TOLERANCE = 1e-5
REFERENCE_TEXT = "The cat sat on the mat because it was tired."  # tests/fixtures/contrib/minilm.npz's input_ids
TEXTS = [REFERENCE_TEXT, "A dog runs, fast!", "Why?"]


def by_hand(rows_of_texts: list[tuple[list[np.ndarray], list[bool], list[bool]]]) -> dict[str, np.ndarray]:
    """kind -> (layers,) mean over every row of every text, from (per layer (seq, seq) matrix,
    special, punctuation) of each text, counted row by row."""
    totals: dict[str, list] = {kind: [] for kind in MASS_KINDS}
    for layers, special, punct in rows_of_texts:
        seq = len(special)
        for i in range(seq):
            totals["self"].append([c[i, i] for c in layers])
            totals["first_token"].append([c[i, 0] for c in layers])
            totals["special"].append([sum(c[i, j] for j in range(seq) if special[j]) for c in layers])
            totals["punctuation"].append([sum(c[i, j] for j in range(seq) if punct[j]) for c in layers])
            if i > 0:
                totals["previous_token"].append([c[i, i - 1] for c in layers])
            if i < seq - 1:
                totals["next_token"].append([c[i, i + 1] for c in layers])
    return {kind: np.mean(np.array(rows, np.float64), axis=0) for kind, rows in totals.items()}


def contrib_rows(model, text: str, method: str) -> tuple[list[np.ndarray], list[bool], list[bool]]:
    """The text's matrices built row by row from `attn contrib --method METHOD -i i`, and its
    special and punctuation tokens (punctuation: tokens whose text is one of .,!?)."""
    tok = tokenize(model.tokenizer, text)
    seq = len(tok.ids)
    rows = [contributions(model, text, query_index=i, method=method).rows for i in range(seq)]  # each (layers, seq)
    layers = [np.stack([rows[i][n] for i in range(seq)]).astype(np.float64) for n in range(model.spec.layers)]
    punct = [not t.special and text[t.start : t.end].strip() in {".", ",", "!", "?"} for t in tok.tokens]
    return layers, [t.special for t in tok.tokens], punct


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("contributions") / "corpus.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("model_path", "method"), [(None, "value-zeroing"), (None, "alti"), (None, "norms"), (GPT2, "value-zeroing"), (GPT2, "alti")])
def test_the_mean_share_of_each_kind_is_contribs_rows_averaged(corpus, model_path, method):
    model = load_model(model_path)
    result = corpus_statistics(None if model_path is None else str(model_path), str(corpus), contributions=method)
    want = by_hand([contrib_rows(model, text, method) for text in TEXTS])
    c = result.contributions
    assert (c.method, c.texts) == (method, 3)
    for kind in MASS_KINDS:
        assert np.abs(c.shares[kind] - want[kind]).max() <= TOLERANCE, kind
        # beside it, the layer's attention: the mean over its heads of the per-head statistic
        np.testing.assert_allclose(c.attention[kind], result.metrics[kind].mean(axis=1))


def test_one_text_is_the_reference_codes_matrices_reduced():
    """MiniLM on the contrib fixture's text: hmohebbi/ValueZeroing's matrices (tests/fixtures/contrib), reduced by hand."""
    model = load_model(None)
    ref = np.load(FIXTURES / "contrib" / "minilm.npz")
    tok = tokenize(model.tokenizer, REFERENCE_TEXT)
    assert tok.ids.tolist() == ref["input_ids"].tolist()
    punct = [t.text == "." for t in tok.tokens]
    want = by_hand([(list(ref["value_zeroing"].astype(np.float64)), [t.special for t in tok.tokens], punct)])
    got = head_statistics(model, [(None, REFERENCE_TEXT)], contributions="value-zeroing").contributions
    for kind in MASS_KINDS:
        assert np.abs(got.shares[kind] - want[kind]).max() <= TOLERANCE, kind
    # [CLS] takes attention but gives little: in the last layer, its mean attention mass is well above its share.
    assert got.attention["first_token"][-1] > 0.3 > 0.05 > got.shares["first_token"][-1]


def test_merged_shards_and_every_engine_equal_one_run(corpus, monkeypatch):
    from attn_cli.compute import stats_shard

    one = corpus_statistics(str(GPT2), str(corpus), contributions="value-zeroing")
    monkeypatch.setattr(stats_shard, "SHARD_LINES", 1)  # three shards, merged
    sharded = corpus_statistics(str(GPT2), str(corpus), contributions="value-zeroing")
    workers = corpus_statistics(str(GPT2), str(corpus), contributions="value-zeroing", workers=2)
    ray = need_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024, logging_level="ERROR")
    try:
        on_ray = corpus_statistics(str(GPT2), str(corpus), contributions="value-zeroing", engine="ray", workers=2)
    finally:
        ray.shutdown()
    for other in (sharded, workers, on_ray):
        assert other.contributions.texts == 3
        for kind in MASS_KINDS:
            np.testing.assert_allclose(other.contributions.shares[kind], one.contributions.shares[kind], rtol=1e-5, atol=1e-6)


def test_refusals(corpus):
    with pytest.raises(InputError, match="--contributions 'rollout' is not a method"):
        corpus_statistics(None, str(corpus), contributions="rollout")
    with pytest.raises(OptionError, match="ALTI is not defined here for gemma3"):
        head_statistics(load_model(FIXTURES / "tiny" / "gemma3"), [(None, "a b c")], contributions="alti")


@covers("stats --contributions")
def test_contributions_through_the_cli(corpus, schema):
    from helpers import validate

    out = runner.invoke(app, ["stats", "--file", str(corpus), "--contributions", "value-zeroing", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    validate(doc, schema, "stats")
    c = doc["contributions"]
    assert (c["method"], c["texts"], len(c["layers"])) == ("value-zeroing", 3, 6)
    want = by_hand([contrib_rows(load_model(None), text, "value-zeroing") for text in TEXTS])
    got = np.array([[layer["contributions"][kind] for kind in MASS_KINDS] for layer in c["layers"]])
    assert np.abs(got - np.stack([want[kind] for kind in MASS_KINDS], axis=1)).max() <= TOLERANCE
    attention = np.array([[layer["attention"][kind] for kind in MASS_KINDS] for layer in c["layers"]])
    heads = np.array([[np.mean([h[kind] for h in layer["heads"]]) for kind in MASS_KINDS] for layer in doc["layers"]])
    np.testing.assert_allclose(attention, heads, rtol=1e-6)
    plain = json.loads(runner.invoke(app, ["stats", "--file", str(corpus), "--json"]).stdout)
    assert plain["contributions"] is None
    table = runner.invoke(app, ["stats", "--file", str(corpus), "--contributions", "value-zeroing"], env={"COLUMNS": "100"})
    assert table.exit_code == 0 and "Contributions (value-zeroing; 3 texts) · per layer and kind of token" in table.stdout
    first = next(line for line in table.stdout.splitlines() if line.startswith("  0 "))
    assert first.split()[:3] == ["0", f"{c['layers'][0]['attention']['self']:.2f}"[1:], f"{c['layers'][0]['contributions']['self']:.2f}"[1:]]
    bad = runner.invoke(app, ["stats", "--file", str(corpus), "--contributions", "attention"])
    assert bad.exit_code == 2 and "--contributions 'attention' is not a method" in bad.output
