"""The memory promises of the docs (docs/speed.md#memory), checked deterministically (no timing, no RSS):
only the text's rows of the embedding table are read, weight pages are released between
layers, and a long decoder text never holds an n×n attention map."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tracemalloc

import numpy as np
import pytest
from option_registry import TINY

import attn_cli.loading.weights as weights_module
from attn_cli.compute.inspect import inspect
from attn_cli.loading.model import load_model
from attn_cli.loading.tokenizer import tokenize

EMBEDDINGS = {"embeddings.word_embeddings.weight", "wte.weight", "embed_tokens.weight"}
LAYER = re.compile(r"(?:^|\.)(?:layer|layers|h)\.(\d+)\.")
NAMES = ["bert", "roberta", "distilbert", "gpt2", "llama", "mistral", "qwen2", "qwen3"]


class SpyWeights:
    """The model's Weights, logging every read and release in order."""

    def __init__(self, inner) -> None:
        self.inner, self.log = inner, []

    def __contains__(self, name: str) -> bool:
        return name in self.inner

    def __getitem__(self, name: str) -> np.ndarray:
        self.log.append(("get", name))
        return self.inner[name]

    def rows(self, name: str, indices) -> np.ndarray:
        self.log.append(("rows", name, tuple(int(i) for i in indices)))
        return self.inner.rows(name, indices)

    def release(self) -> None:
        self.log.append(("release",))
        self.inner.release()


def spied(name: str):
    model = load_model(TINY / name)
    spy = SpyWeights(model.weights)
    return dataclasses.replace(model, weights=spy), spy


@pytest.mark.parametrize("name", NAMES)
def test_only_the_texts_embedding_rows_are_read(name):
    model, spy = spied(name)
    text = "Every head looks at the other tokens."
    ids = tuple(int(i) for i in tokenize(model.tokenizer, text).ids)
    inspect(model, text, query_index=1, layer=-1, head="all", norms=True)
    assert not [e for e in spy.log if e[0] == "get" and e[1] in EMBEDDINGS]  # never the whole table
    (word_rows,) = [e for e in spy.log if e[0] == "rows" and e[1] in EMBEDDINGS]
    assert word_rows[2] == ids


def test_the_file_reader_converts_only_those_rows(monkeypatch):
    """Below the Weights interface: `rows` converts (and so reads) len(ids) rows of the
    memory-mapped table, not the table."""
    converted = []
    real = weights_module._to_float32
    monkeypatch.setattr(weights_module, "_to_float32", lambda a, d: converted.append(a.shape) or real(a, d))
    model = load_model(TINY / "llama")
    table = model.weights.rows("embed_tokens.weight", np.array([5, 7, 5]))
    assert converted == [(3, 64)] and table.shape == (3, 64)


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama"])
def test_pages_are_released_between_layers(name):
    model, spy = spied(name)
    inspect(model, "The cat sat.", query_index=1, layer="all", head="all")
    layer_of = [int(m.group(1)) if e[0] != "release" and (m := LAYER.search(e[1])) else None for e in spy.log]
    for layer in range(1, model.spec.layers):
        first = layer_of.index(layer)
        last_before = max(i for i, x in enumerate(layer_of) if x == layer - 1)
        assert ("release",) in spy.log[last_before:first], f"no release between layer {layer - 1} and {layer}"


def test_batch_keeps_pages_but_a_run_releases_them():
    model = load_model(TINY / "llama", release_weights=False)
    spy = SpyWeights(model.weights)
    inspect(dataclasses.replace(model, weights=spy), "The cat sat.", query_index=1, layer="all")
    assert ("release",) not in spy.log


def test_a_long_decoder_text_holds_no_n_by_n_map(tmp_path):
    """~4,000 tokens through a tiny Llama whose config allows them (RoPE has no position
    table): the peak of Python-tracked memory (NumPy reports its buffers to tracemalloc)
    stays far below one layer's (heads, n, n) float32 map."""
    folder = tmp_path / "llama-long"
    shutil.copytree(TINY / "llama", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"max_position_embeddings": 8192}))
    model = load_model(folder)
    text = " ".join(["The quick brown fox looks at the lazy dog."] * 400)
    n = len(tokenize(model.tokenizer, text, max_tokens=8192).ids)
    assert n > 3500
    full_map = model.spec.heads * n * n * 4
    tracemalloc.start()
    try:
        result = inspect(model, text, query_index=-1, layer="all", head="all", norms=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Blocks of query rows hold at most ~2^23 scores (32 MiB) at a time: ~86 MB peak here, where
    # one full map is ~310 MB and computing it (or keeping it) would at least reach that.
    assert peak < full_map / 2, (peak, full_map)
    kept = [h.weights for layer in result.layers for h in layer.heads]
    assert all(w.shape == (n,) for w in kept)
