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
    want = np.mean([ablate(model, t).changes for t in ("The cat sat on the mat.", "A dog ran.")], axis=0)
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
