"""`attn stats` packs a shard's texts into one forward pass, as `attn batch` packs lines
(compute/packed.py): the statistics must not depend on how the texts were packed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attn_cli.compute import packed, stats_shard
from attn_cli.compute.stats import corpus_statistics
from attn_cli.loading.model import load_model
from attn_cli.maths.headsums import METRICS, DetectorOptions

TINY = Path(__file__).parent / "fixtures" / "tiny"
# Real sentences (KJV verses, as docs/corpus.md), with texts too short to pack (< MIN_PACK_TOKENS)
# and a long one, so that packs are cut by PACK_TOKENS too.
TEXTS = [
    "In the beginning God created the heaven and the earth.",
    "And the earth was without form, and void; and darkness was upon the face of the deep.",
    "God",
    "And God said, Let there be light: and there was light.",
    " ".join(["And God saw the light, that it was good: and God divided the light from the darkness."] * 2),
    "Jesus",
    "And the evening and the morning were the first day.",
    "And God called the firmament Heaven. And the evening and the morning were the second day.",
]


def shard_sums(model, options):
    return stats_shard.shard_sums(model, list(enumerate(TEXTS, start=1)), options)


def assert_same_sums(a, b) -> None:
    assert (a.texts, a.tokens) == (b.texts, b.tokens)
    for name in METRICS:
        # Float64 sums of float32 weights added in another order: ~1e-16 relative. Allow float32's.
        np.testing.assert_allclose(a.sums[name], b.sums[name], rtol=1e-6, atol=1e-9, err_msg=name)
        assert a.counts[name] == b.counts[name], name
    assert (a.histogram == b.histogram).all()


@pytest.mark.parametrize("name", ["bundled", "mpnet", "llama"])
def test_packed_statistics_equal_each_text_alone(name, monkeypatch):
    from attn_cli.loading.packaged import is_installed

    if name == "mpnet" and not is_installed("mpnet"):
        pytest.skip("mpnet not installed (`uv sync --group models`)")
    model = load_model(None if name == "bundled" else name if name == "mpnet" else TINY / name, release_weights=False)
    runs = []
    calls = []
    real = type(model).trace_packed_layers
    monkeypatch.setattr(type(model), "trace_packed_layers", lambda self, texts: calls.append(len(texts)) or real(self, texts))
    options = DetectorOptions(exclude_bos=True)
    monkeypatch.setattr(packed, "PACK_TOKENS", 60)  # several packs, one text over the budget alone
    runs.append(shard_sums(model, stats_shard.CorpusOptions(options)))
    monkeypatch.setattr(packed, "PACK_TOKENS", 0)  # every text by itself
    runs.append(shard_sums(model, stats_shard.CorpusOptions(options)))
    if model.packs:  # encoders pack; a decoder's texts run one by one (and must give the same sums)
        assert calls == [3, 2]  # [0, 1, 3], [4, 6]: the texts of 3 tokens run alone, and [7] is left over
    else:
        assert calls == [] and name == "llama"
    assert_same_sums(*runs)
    one_by_one = None
    for line, text in enumerate(TEXTS, start=1):  # against the one-text path, text by text
        part = stats_shard.shard_sums(model, [(line, text)], stats_shard.CorpusOptions(options))
        one_by_one = part if one_by_one is None else one_by_one.merge(part)
    assert_same_sums(runs[0], one_by_one)


def test_pack_groups_cut_by_tokens_and_leave_short_texts_alone():
    model = load_model(None)
    assert packed.pack_groups(model, [10, 2, 10, 10, 3, 700, 400, 5], max_tokens=1024) == [[0, 2, 3, 5], [1], [4], [6, 7]]
    assert packed.pack_groups(model, [10, 10], max_tokens=0) == [[0], [1]]
    decoder = load_model(TINY / "llama")
    assert packed.pack_groups(decoder, [10, 10, 10]) == [[0], [1], [2]]


def test_every_engine_packs(tmp_path, monkeypatch):
    # The engines all map `shard_sums`: packed in this process and in workers, the same numbers.
    path = tmp_path / "kjv.txt"
    path.write_text("\n".join(TEXTS * 9) + "\n", encoding="utf-8")
    calls = []
    real = stats_shard.add_packed
    monkeypatch.setattr(stats_shard, "add_packed", lambda *a: calls.append(len(a[1])) or real(*a))
    one = corpus_statistics(None, str(path))
    assert sum(calls) > len(TEXTS)  # packed (texts of 1-3 tokens run alone)
    two = corpus_statistics(None, str(path), workers=2)  # spawned workers run the same shard_sums
    assert (one.texts, one.tokens) == (two.texts, two.tokens) == (72, one.tokens)
    for name in METRICS:
        np.testing.assert_allclose(one.metrics[name], two.metrics[name], rtol=1e-5, atol=1e-7, equal_nan=True, err_msg=name)


@pytest.mark.parametrize("name", ["bundled", "mpnet", "llama", "gemma2", "gemma3"])
def test_a_texts_layers_reduced_at_once_equal_layer_by_layer(name, monkeypatch):
    # TextSums makes a short text's maps of every layer in one attention_rows call and reduces
    # them in one layer_sums call: bit for bit the sums of each layer's rows() reduced alone,
    # with a position bias (MPNet), grouped kv heads (Llama), a soft-cap (Gemma 2) and sliding
    # layers (Gemma 3: a text longer than the window is reduced layer by layer either way).
    model = load_model(None if name == "bundled" else TINY / name, release_weights=False)
    options = stats_shard.CorpusOptions(DetectorOptions(exclude_current_token=True))
    stacked = shard_sums(model, options)
    monkeypatch.setattr(stats_shard, "STACK_TOKENS", 0)  # every layer by itself
    alone = shard_sums(model, options)
    assert_same_sums(stacked, alone)
    for metric in METRICS:
        np.testing.assert_array_equal(stacked.sums[metric], alone.sums[metric], err_msg=metric)


def test_induction_prompts_packed_equal_each_alone(monkeypatch):
    # The induction prompts run in one packed pass where the model packs: the same sums as one by one.
    model = load_model(None, release_weights=False)
    options = DetectorOptions(exclude_bos=True)
    calls = []
    real = type(model).trace_packed_layers
    monkeypatch.setattr(type(model), "trace_packed_layers", lambda self, texts: calls.append(len(texts)) or real(self, texts))
    together = stats_shard.induction_sums(model, options, seed=1)
    assert calls == [stats_shard.INDUCTION_SEQUENCES]
    monkeypatch.setattr(type(model), "packs", property(lambda self: False))
    alone = stats_shard.induction_sums(model, options, seed=1)
    assert calls == [stats_shard.INDUCTION_SEQUENCES]
    for name in ("induction_mul", "induction_abs"):
        np.testing.assert_array_equal(together.sums[name], alone.sums[name], err_msg=name)
        assert together.counts[name] == alone.counts[name] == stats_shard.INDUCTION_SEQUENCES
