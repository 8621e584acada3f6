"""`attn stats --ablate`: head ablation (`attn ablate`) over a corpus, in every engine. Each text's
sweep is `ablate.head_sweep` at its last position; the statistic is the mean over texts. Checked
against transformers' sweep (tests/fixtures/causal, as tests/test_causal.py) on the tiny gpt2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import tied_copy
from option_registry import covers
from test_causal import FIXTURES, TOLERANCE
from test_stats_corpus import need_ray
from typer.testing import CliRunner

from attn_cli.cli import app
from attn_cli.compute.ablate import ablate
from attn_cli.compute.knockout import knockout
from attn_cli.compute.stats import corpus_statistics, head_statistics
from attn_cli.errors import InputError
from attn_cli.loading.model import load_model

runner = CliRunner()
OTHER = ["A dog runs in the park", "The lazy fox sleeps"]


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> tuple[Path, dict, Path]:
    """(model folder, transformers' reference, a corpus: the reference's text twice, then OTHER)."""
    folder = tied_copy("gpt2", tmp_path_factory.mktemp("causal"))
    ref = np.load(FIXTURES / "gpt2.npz")
    corpus = folder.parent / "corpus.txt"
    corpus.write_text("\n".join([str(ref["text"]), *OTHER, str(ref["text"])]) + "\n", encoding="utf-8")
    return folder, ref, corpus


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_ablation_is_the_mean_of_each_texts_sweep(gpt2, mode):
    folder, ref, corpus = gpt2
    model = load_model(folder)
    result = corpus_statistics(str(folder), str(corpus), ablate=mode)
    others = [ablate(model, text, mode=mode).changes.astype(np.float64) for text in OTHER]  # tests/test_causal.py holds `ablate` to transformers
    want = (2 * ref[f"ablate.{mode}"] + sum(others)) / 4
    assert np.abs(result.metrics["ablation"] - want).max() <= TOLERANCE
    assert result.ablation.mode == mode and result.ablation.measure == "logprob" and result.ablation.texts == 4
    # The reference text alone: transformers' sweep itself.
    alone = head_statistics(model, [(None, str(ref["text"]))], ablate=mode)
    assert np.abs(alone.metrics["ablation"] - ref[f"ablate.{mode}"]).max() <= TOLERANCE


def test_merged_shards_and_every_engine_equal_one_run(gpt2, monkeypatch):
    from attn_cli.compute import stats_shard

    folder, _, corpus = gpt2
    one = corpus_statistics(str(folder), str(corpus), ablate="zero")
    monkeypatch.setattr(stats_shard, "SHARD_LINES", 1)  # four shards, merged
    sharded = corpus_statistics(str(folder), str(corpus), ablate="zero")
    workers = corpus_statistics(str(folder), str(corpus), ablate="zero", workers=2)
    for other in (sharded, workers):
        np.testing.assert_allclose(other.metrics["ablation"], one.metrics["ablation"], rtol=1e-5, atol=1e-6)
        assert other.ablation == one.ablation
    ray = need_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024, logging_level="ERROR")
    try:
        on_ray = corpus_statistics(str(folder), str(corpus), ablate="zero", engine="ray", workers=2)
    finally:
        ray.shutdown()
    np.testing.assert_allclose(on_ray.metrics["ablation"], one.metrics["ablation"], rtol=1e-5, atol=1e-6)


def test_an_encoder_measures_cosine_distance(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The cat sat on the mat.\nA dog ran.\n", encoding="utf-8")
    result = corpus_statistics(None, str(corpus), ablate="zero")
    model = load_model(None)
    want = np.mean([ablate(model, t, query_index=-1).changes for t in ("The cat sat on the mat.", "A dog ran.")], axis=0)
    np.testing.assert_allclose(result.metrics["ablation"], want, rtol=1e-5, atol=1e-7)
    assert result.ablation.measure == "cosine_distance" and (result.metrics["ablation"] >= 0).all()


@covers("stats --ablate")
def test_ablate_through_the_cli(gpt2, schema):
    from helpers import validate

    folder, ref, corpus = gpt2
    out = runner.invoke(app, ["stats", "--file", str(corpus), "-m", str(folder), "--ablate", "mean", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    validate(doc, schema, "stats")
    assert doc["ablation"] == {"mode": "mean", "measure": "logprob", "texts": 4}
    grid = np.array([[h["ablation"] for h in layer["heads"]] for layer in doc["layers"]])
    model = load_model(folder)
    others = [ablate(model, text, mode="mean").changes.astype(np.float64) for text in OTHER]
    assert np.abs(grid - (2 * ref["ablate.mean"] + sum(others)) / 4).max() <= TOLERANCE
    plain = json.loads(runner.invoke(app, ["stats", "--file", str(corpus), "-m", str(folder), "--json"]).stdout)
    assert plain["ablation"] is None and plain["layers"][0]["heads"][0]["ablation"] is None
    table = runner.invoke(app, ["stats", "--file", str(corpus), "-m", str(folder), "--ablate", "zero", "--metric", "ablation"], env={"COLUMNS": "80"})
    assert table.exit_code == 0 and "ablation (mean change" in table.stdout
    bad = runner.invoke(app, ["stats", "--file", str(corpus), "-m", str(folder), "--ablate", "half"])
    assert bad.exit_code == 2 and "--ablate 'half' is not a mode" in bad.output
    with pytest.raises(InputError, match="not a mode"):
        head_statistics(model, [(None, "a b")], ablate="one")


def test_knockout_by_distance_is_transformers_sweep_and_merges(gpt2, monkeypatch):
    from attn_cli.compute import stats_shard

    folder, ref, _ = gpt2
    window = int(ref["window"])
    corpus = folder.parent / "knockout.txt"
    corpus.write_text("\n".join([str(ref["text"]), *OTHER, str(ref["text"])]) + "\n", encoding="utf-8")
    result = corpus_statistics(str(folder), str(corpus), knockout=window)
    model = load_model(folder)
    # Row d: the word d back from the last. The reference text's rows are transformers' sweep,
    # reversed; OTHER's come from `attn knockout` (tests/test_causal.py holds it to transformers).
    rows: dict[int, list[np.ndarray]] = {}
    others = [np.stack([s.changes for s in knockout(model, t, window=window).sources]) for t in OTHER]
    for changes in (ref["knockout.changes"], ref["knockout.changes"], *others):
        for d, row in enumerate(changes[::-1]):
            rows.setdefault(d, []).append(np.asarray(row, np.float64))
    k = result.knockout
    assert (k.window, k.texts) == (window, 4) and k.words.tolist() == [len(rows[d]) for d in range(len(rows))]
    assert np.abs(k.changes - np.stack([np.mean(rows[d], axis=0) for d in range(len(rows))])).max() <= TOLERANCE
    monkeypatch.setattr(stats_shard, "SHARD_LINES", 1)  # four shards merged, and two worker processes: one run's numbers
    for other in (corpus_statistics(str(folder), str(corpus), knockout=window), corpus_statistics(str(folder), str(corpus), knockout=window, workers=2)):
        assert other.knockout.words.tolist() == k.words.tolist()
        np.testing.assert_allclose(other.knockout.changes, k.changes, rtol=1e-5, atol=1e-6)


@covers("stats --knockout")
def test_knockout_through_the_cli(gpt2, schema):
    from helpers import validate

    folder, ref, corpus = gpt2
    out = runner.invoke(app, ["stats", "--file", str(corpus), "-m", str(folder), "--knockout", "1", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    validate(doc, schema, "stats")
    assert doc["knockout"]["window"] == 1 and doc["knockout"]["texts"] == 4
    first = doc["knockout"]["distances"][0]  # the last word of each text
    model = load_model(folder)
    want = np.mean([knockout(model, t, window=1).sources[-1].changes for t in [str(ref["text"]), *OTHER, str(ref["text"])]], axis=0)
    assert first["distance"] == 0 and first["words"] == 4 and np.abs(np.array(first["changes"]) - want).max() <= TOLERANCE
    table = runner.invoke(app, ["stats", "--file", str(corpus), "-m", str(folder), "--knockout", "1"], env={"COLUMNS": "100"})
    assert table.exit_code == 0 and "Knockout (Geva et al.; window 1 layers; 4 texts)" in table.stdout
    encoder = runner.invoke(app, ["stats", "--file", str(corpus), "--knockout", "9"])
    assert encoder.exit_code == 2 and "is an encoder" in encoder.output
    one_word = folder.parent / "one.txt"
    one_word.write_text("The cat sat\nfox\n", encoding="utf-8")
    bad = runner.invoke(app, ["stats", "--file", str(one_word), "-m", str(folder), "--knockout", "1"])
    assert bad.exit_code == 2 and "line 2: the text has one word" in bad.output
    assert runner.invoke(app, ["stats", "--file", str(corpus), "-m", str(folder), "--knockout", "0"]).exit_code == 2
