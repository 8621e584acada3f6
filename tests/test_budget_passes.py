"""`attn batch` and `attn stats` keep a GGUF model's de-quantized weights up to `--max-memory`
(`loading.model.load_for_passes`, `budgeted`), as `attn generate` does, each worker its share:
the documents are the same bit for bit whatever the budget, on the packaged SmolLM2 GGUF, and
equal `attn inspect`'s of each line; the budget is never exceeded and no layer is kept beyond it."""

from __future__ import annotations

import json

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf_helpers import packaged_gguf, write_gguf
from option_registry import covers, run_json, runner

from attn_cli.compute import batch, stats_shard
from attn_cli.compute.stats_shard import CorpusOptions
from attn_cli.loading import budget
from attn_cli.loading.budget import BudgetedWeights, share
from attn_cli.loading.gguf import GGUFWeights
from attn_cli.loading.model import budgeted, is_quantized, load_for_passes, load_model
from attn_cli.loading.tokenizer import tokenize
from attn_cli.maths.headsums import METRICS, NO_EXCLUSIONS

LINES = ["The cat sat on the mat.", "It rained all day in the city."]


def _ndjson(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


@covers("batch --max-memory")
def test_batch_documents_do_not_depend_on_the_budget(tmp_path):
    from attn_cli.cli import app

    path = str(packaged_gguf("smollm2"))
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(LINES) + "\n")
    outs = []
    for size in ("0", "1G"):
        result = runner.invoke(app, ["batch", str(lines), "-m", path, "-i", "-1", "--max-memory", size])
        assert result.exit_code == 0, result.stderr
        outs.append(result.stdout)
    assert outs[0] == outs[1]  # the same bytes: every number equal
    docs = _ndjson(outs[0])
    assert [d["line"] for d in docs] == [1, 2]
    for doc, text in zip(docs, LINES, strict=True):  # each line's document is inspect's of it (tested against transformers in test_gguf.py)
        assert {k: v for k, v in doc.items() if k != "line"} == run_json("inspect", text, "-m", path, "-i", "-1", "--json")
    bad = runner.invoke(app, ["batch", str(lines), "-m", path, "-i", "-1", "--max-memory", "lots"])
    assert bad.exit_code == 2 and "--max-memory" in bad.stderr and "800M" in bad.stderr and bad.stdout == ""


@covers("stats --max-memory")
def test_stats_corpus_does_not_depend_on_the_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(stats_shard, "INDUCTION_SEQUENCES", 2)  # the induction prompts run too, fewer of them
    path = str(packaged_gguf("smollm2"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES) + "\n")
    nothing, everything = (run_json("stats", "--file", str(corpus), "-m", path, "--max-memory", size, "--json") for size in ("0", "1G"))
    assert nothing == everything  # every statistic equal
    tokenizer = load_model(path).tokenizer
    assert nothing["texts"] == 2 and nothing["tokens"] == sum(len(tokenize(tokenizer, text).ids) for text in LINES)
    assert [len(layer["heads"]) for layer in nothing["layers"]] == [9] * 30 and nothing["detectors"]["induction"]["sequences"] == 2


def test_a_gguf_model_for_many_passes_keeps_at_most_its_budget(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", "qwen2", Q.Q8_0)
    ids = np.array(load_model(path).tokenizer.encode("The cat sat on the mat").ids)
    model = load_for_passes(path, 5000)
    assert isinstance(model.weights, BudgetedWeights) and model.weights.budget == 5000 and is_quantized(model)
    assert model.release_weights  # each layer's float32 beyond the budget is let go after it
    for _ in range(2):  # a second pass reads what was kept, and keeps nothing more
        for trace in model.trace(ids):  # beyond the budget, one layer at a time
            assert all(name.startswith(f"layers.{trace.layer}.") for name in model.weights.weights._cache)
        assert model.weights.weights._cache == {} and 0 < model.weights.used <= 5000
        assert list(model.weights._kept)[:2] == ["layers.0.input_layernorm.weight", "layers.0.post_attention_layernorm.weight"]  # the first read that fit
        assert "layers.0.self_attn.q_proj.weight" not in model.weights._kept  # 64 × 64 float32: over the budget
    unlimited = load_for_passes(path, 1 << 50)
    for a, b in zip(model.trace(ids), unlimited.trace(ids), strict=True):
        np.testing.assert_array_equal(a.rows()[2], b.rows()[2])
    assert budgeted(model, 5000) is model and budgeted(model, 9000).weights.budget == 9000


def test_a_model_that_is_not_quantized_is_left_as_it_was():
    model = load_for_passes(None, 0)  # the bundled safetensors model: its float32 pages are the weights
    assert not is_quantized(model) and not isinstance(model.weights, BudgetedWeights) and not model.release_weights


def test_workers_share_the_budget(tmp_path, monkeypatch):
    assert share(1000, 1) == 1000 and share(1000, 3) == 333 and share(0, 2) == 0
    monkeypatch.setattr(budget, "default_budget", lambda: 1 << 30)
    assert share(None, 4) == 1 << 28  # the parent measures the default once, then splits it
    path = str(write_gguf(tmp_path / "m.gguf", "llama", Q.Q4_0))
    model, *_ = batch._load_worker(path, None, None, 333)
    assert isinstance(model.weights.weights, GGUFWeights) and model.weights.budget == 333
    model, options = stats_shard._load_worker(path, CorpusOptions(NO_EXCLUSIONS), 333)
    assert model.weights.budget == 333 and options == CorpusOptions(NO_EXCLUSIONS)


def test_workers_with_a_budget_give_the_numbers_of_one_process(tmp_path):
    """`stats --workers 2` and `batch --workers 2` on a GGUF file, each worker keeping its
    share: the numbers of one process with the whole budget (to float32 rounding, as BLAS's
    threads differ: compute/workers.py)."""
    from attn_cli.compute.stats import corpus_statistics

    path = str(write_gguf(tmp_path / "m.gguf", "llama", Q.Q4_0))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES * 3) + "\n")
    one = corpus_statistics(path, str(corpus), max_memory=1 << 30)
    two = corpus_statistics(path, str(corpus), workers=2, max_memory=0)
    assert (one.texts, one.tokens) == (two.texts, two.tokens) == (6, one.tokens)
    for name in METRICS:
        np.testing.assert_allclose(one.metrics[name], two.metrics[name], rtol=1e-5, atol=1e-7, equal_nan=True, err_msg=name)
    from attn_cli.compute.options import InspectOptions

    options = InspectOptions(query_index=-1)
    alone = list(batch.run_batch(path, LINES * 3, options, max_memory=1 << 30))
    shared = list(batch.run_batch(path, LINES * 3, options, workers=2, max_memory=0))
    assert [d["line"] for d in shared] == [1, 2, 3, 4, 5, 6] and not any("error" in d for d in shared)
    for a, b in zip(alone, shared, strict=True):
        assert a["tokens"] == b["tokens"]
        for layer_a, layer_b in zip(a["layers"], b["layers"], strict=True):
            for head_a, head_b in zip(layer_a["heads"], layer_b["heads"], strict=True):
                np.testing.assert_allclose(head_a["weights"], head_b["weights"], rtol=1e-5, atol=1e-7)
