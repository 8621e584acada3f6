"""Weights kept de-quantized up to a memory budget (`loading.budget`, `generate --max-memory`):
the numbers are the same bit for bit whatever the budget (0: every tensor de-quantized again at
each step; unlimited: every tensor once), on tiny GGUF files of several quantizations and on the
real packaged decoders; the budget is never exceeded; the LM head is read in blocks."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf_helpers import packaged_gguf, write_gguf
from option_registry import covers, run_json, runner

from attn_cli.compute.decoding import decode
from attn_cli.errors import OptionError
from attn_cli.loading import budget
from attn_cli.loading.budget import BudgetedWeights, parse_size
from attn_cli.loading.gguf import GGUFWeights
from attn_cli.loading.model import kept, load_model
from attn_cli.models import base

UNLIMITED = 1 << 50
TEXT = "The cat sat on the mat because it was"


def run(model, ids, n: int = 4):
    """(ids, logits, every step's attention weights, q and k) of greedy decoding over the KV cache."""
    steps = list(decode(model, ids, n))
    return [s.id for s in steps], [s.logits for s in steps], [[(t.rows()[2], t.q, t.k) for t in s.traces] for s in steps]


def assert_identical(a, b) -> None:
    assert a[0] == b[0]
    for x, y in zip(a[1], b[1], strict=True):
        np.testing.assert_array_equal(x, y)
    for step_a, step_b in zip(a[2], b[2], strict=True):
        for layer_a, layer_b in zip(step_a, step_b, strict=True):
            for x, y in zip(layer_a, layer_b, strict=True):
                np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(("source", "qtype"), [("qwen2", Q.Q8_0), ("qwen2", Q.Q4_0), ("llama", Q.Q5_0), ("llama", Q.F16)], ids=lambda x: getattr(x, "name", x))
def test_tiny_gguf_generates_the_same_with_any_budget(tmp_path, source, qtype):
    model = load_model(write_gguf(tmp_path / "m.gguf", source, qtype))
    ids = np.array(model.tokenizer.encode(TEXT).ids)
    nothing, everything = kept(model, 0), kept(model, UNLIMITED)
    assert_identical(run(nothing, ids), run(everything, ids))
    assert nothing.weights.used == 0 and everything.weights.used > 0
    assert_identical(run(everything, ids), run(everything, ids))  # the second run reads the kept copies


def test_a_budget_keeps_the_first_tensors_read_and_never_more(tmp_path):
    model = load_model(write_gguf(tmp_path / "m.gguf", "qwen2", Q.Q8_0))
    ids = np.array(model.tokenizer.encode(TEXT).ids)
    whole = kept(model, UNLIMITED)
    run(whole, ids, 1)
    sizes = {key: a.nbytes for key, a in whole.weights._kept.items()}  # in the order first read
    half = sum(sizes.values()) // 2
    some = kept(model, half)
    assert_identical(run(some, ids), run(whole, ids))
    assert 0 < some.weights.used <= half
    first = []
    for key, size in sizes.items():
        if sum(sizes[k] for k in first) + size > half:
            break
        first.append(key)
    assert list(some.weights._kept)[: len(first)] == first  # the layers read first stay; the rest is de-quantized each step
    assert "layers.0.self_attn.q_proj.weight" in some.weights._kept
    assert "layers.1.mlp.down_proj.weight" not in some.weights._kept


def test_the_lm_head_in_blocks_is_the_same_whatever_is_kept(tmp_path, monkeypatch):
    """A head of several blocks (a real vocabulary's: 32 MiB of float32 each): blocks kept and
    blocks de-quantized again give the same logits, equal to the head read whole within float32's rounding."""
    model = load_model(write_gguf(tmp_path / "m.gguf", "qwen2", Q.Q8_0))
    ids = np.array(model.tokenizer.encode(TEXT).ids)
    whole = run(kept(model, UNLIMITED), ids, 2)
    vocab, hidden = model.weights.shape("embed_tokens.weight")
    monkeypatch.setattr(base, "HEAD_BLOCK_BYTES", 4 * hidden * 50)  # 50 rows a block
    head = base.lm_head(model.weights, model.spec)
    blocks = list(head.blocks())
    assert [len(b) for b in blocks] == [50] * (vocab // 50) + [vocab % 50]
    np.testing.assert_array_equal(np.concatenate(blocks), model.weights["embed_tokens.weight"])
    np.testing.assert_array_equal(head.row(7), model.weights["embed_tokens.weight"][7])
    unlimited, nothing = kept(model, UNLIMITED), kept(model, 0)
    blocked = run(unlimited, ids, 2)
    assert_identical(run(nothing, ids, 2), blocked)
    assert sum(isinstance(k, tuple) for k in unlimited.weights._kept) == len(blocks)
    assert blocked[0] == whole[0]
    np.testing.assert_allclose(blocked[1][0], whole[1][0], rtol=0, atol=1e-5)


def test_inspect_holds_one_layer_and_reads_the_same(tmp_path):
    """A single pass (inspect) keeps nothing: each layer is de-quantized when reached and let go after it."""
    model = load_model(write_gguf(tmp_path / "m.gguf", "llama", Q.Q8_0))
    assert isinstance(model.weights, GGUFWeights) and model.release_weights
    ids = np.array(model.tokenizer.encode(TEXT).ids)
    held = []
    for trace in model.trace(ids):
        held.append(sorted(model.weights._cache))
        assert all(name.startswith(f"layers.{trace.layer}.") for name in held[-1])
    assert model.weights._cache == {}  # released after the last layer
    for a, b in zip(model.trace(ids), kept(model, UNLIMITED).trace(ids), strict=True):
        np.testing.assert_array_equal(a.rows()[2], b.rows()[2])


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_real_decoders_generate_the_same_with_any_budget(name):
    model = load_model(packaged_gguf(name))
    ids = np.array(model.tokenizer.encode("The capital of France is").ids)
    assert_identical(run(kept(model, 0), ids, 3), run(kept(model, UNLIMITED), ids, 3))


def test_sizes_parse():
    assert parse_size("0") == 0
    assert parse_size("800M") == 800 << 20
    assert parse_size("2G") == parse_size("2g") == parse_size("2GiB") == parse_size("2 GB") == 2 << 30
    assert parse_size("1.5G") == 3 << 29
    assert parse_size("123456") == 123456
    for bad in ("", "2X", "-1G", "G", "1e9"):
        with pytest.raises(OptionError, match="max_memory"):
            parse_size(bad)


def test_the_default_is_half_the_available_ram_at_most_1g(monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda: 1 << 30)
    assert budget.default_budget() == 1 << 29
    monkeypatch.setattr(budget, "available_memory", lambda: 64 << 30)
    assert budget.default_budget() == 1 << 30
    monkeypatch.setattr(budget, "available_memory", lambda: None)
    assert budget.default_budget() == 1 << 30
    monkeypatch.undo()
    assert 0 < budget.available_memory()


def test_kept_rewraps_for_another_budget(tmp_path):
    model = load_model(write_gguf(tmp_path / "m.gguf", "qwen2", Q.Q8_0))
    one = kept(model, 1000)
    assert kept(one) is one and kept(one, 1000) is one
    other = kept(one, 2000)
    assert isinstance(other.weights, BudgetedWeights) and other.weights.budget == 2000
    assert isinstance(other.weights.weights, GGUFWeights)


@covers("generate --max-memory")
def test_max_memory_changes_no_number(tmp_path):
    path = str(write_gguf(tmp_path / "m.gguf", "qwen2", Q.Q4_0))
    docs = [run_json("generate", TEXT, "-m", path, "-n", "4", "--max-memory", size, "--json") for size in ("0", "100K", "1G")]
    assert docs[0]["steps"] == docs[1]["steps"] == docs[2]["steps"]
    assert [s["id"] for s in docs[0]["steps"]] == run(kept(load_model(path), 0), np.array([t["id"] for t in docs[0]["tokens"][: docs[0]["prompt_tokens"]]]))[0]
    from attn_cli.cli import app

    bad = runner.invoke(app, ["generate", TEXT, "-m", path, "--max-memory", "lots"])
    assert bad.exit_code == 2 and "--max-memory" in bad.stderr and "800M" in bad.stderr and bad.stdout == ""
