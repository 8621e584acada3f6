"""Encoder–decoder models (T5, BART, Marian) against transformers, on tiny random-weight models.

tests/fixtures/seq2seq/<name>/ holds a model folder and ref_<i>.npz, made by
scripts/make_seq2seq_fixtures.py (transformers, eager attention, teacher-forced with `labels`):
the encoder's self-attention, the decoder's causal self-attention and the cross-attention of
every layer and head, T5's position bias, the encoder's output and the logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attn_cli.loading.model import load_model
from attn_cli.loading.tokenizer import tokenize
from attn_cli.models import KVCache, cross_attention_models
from attn_cli.models.seq2seq import decoder_input

SEQ2SEQ = Path(__file__).parent / "fixtures" / "seq2seq"
NAMES = ("t5", "bart", "marian")
TOLERANCE = 1e-5
CASES = [(name, i) for name in NAMES for i in range(3)]


def ref(name: str, i: int) -> dict:
    return dict(np.load(SEQ2SEQ / name / f"ref_{i}.npz"))


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}/ref_{c[1]}")
def case(request):
    name, i = request.param
    model, r = load_model(SEQ2SEQ / name), ref(name, i)
    source = tokenize(model.tokenizer, str(r["source"])).ids
    labels = tokenize(model.tokenizer, str(r["target"])).ids
    encoder = list(model.trace(source))
    memory = model.memory(source)
    decoder = list(model.trace_decoder(decoder_input(labels, model.spec.seq2seq.decoder_start), memory))
    return model, r, source, labels, encoder, decoder


def test_every_encoder_decoder_family_has_a_fixture():
    assert cross_attention_models() == sorted(NAMES)


def test_source_and_labels_are_tokenized_as_transformers_does(case):
    """T5 and Marian append </s> to the labels, BART wraps them in <s> … </s>; the decoder reads
    them shifted right behind decoder_start_token_id."""
    model, r, source, labels, _, _ = case
    assert source.tolist() == r["input_ids"].tolist()
    assert labels.tolist() == r["labels"].tolist()
    assert decoder_input(labels, model.spec.seq2seq.decoder_start).tolist() == r["decoder_input_ids"].tolist()


def test_encoder_self_attention_every_layer_and_head(case):
    _, r, _, _, encoder, _ = case
    assert np.abs(np.stack([t.rows()[2] for t in encoder]) - r["encoder_attentions"]).max() <= TOLERANCE


def test_decoder_self_attention_is_causal_and_exact(case):
    _, r, _, _, _, decoder = case
    ours = np.stack([t.rows()[2] for t in decoder])
    assert np.abs(ours - r["decoder_attentions"]).max() <= TOLERANCE
    assert not np.triu(ours, 1).any()  # no weight on a later target token


def test_cross_attention_every_layer_and_head(case):
    """Each target position over the source: (decoder layers, heads, m, n)."""
    _, r, source, _, _, decoder = case
    ours = np.stack([t.cross.rows()[2] for t in decoder])
    assert ours.shape[-1] == len(source)
    assert np.abs(ours - r["cross_attentions"]).max() <= TOLERANCE
    assert all(t.cross.key_positions.tolist() == list(range(len(source))) for t in decoder)


def test_encoder_output_and_logits(case):
    model, r, _, _, encoder, decoder = case
    encoded = model.arch.final_norm(model.weights, model.spec, encoder[-1].hidden)
    assert np.abs(encoded - r["encoder_last_hidden_state"]).max() <= 1e-4
    logits = model.decoder_logits(decoder[-1].hidden)
    assert np.abs(logits - r["logits"]).max() <= 1e-4


def test_t5_position_bias_is_the_score_term_transformers_adds():
    """T5's relative position bias: two-sided buckets in the encoder, one-sided in the decoder,
    the same term in every layer, shown as `score_bias`; Q·Kᵀ is not scaled (query_scale 1)."""
    model = load_model(SEQ2SEQ / "t5")
    for i in range(3):
        r = ref("t5", i)
        memory = model.memory(r["input_ids"])
        encoder = list(model.trace(r["input_ids"]))
        decoder = list(model.trace_decoder(r["decoder_input_ids"], memory))
        for t in encoder:
            assert np.array_equal(t.score_bias, r["encoder_bias"])
            assert t.adjusts == "bias"
        for t in decoder:
            assert np.array_equal(t.score_bias, r["decoder_bias"])
            assert t.cross.score_bias is None
    assert model.spec.scale == 1.0 and model.spec.seq2seq.buckets == 8 and model.spec.seq2seq.max_distance == 12
    assert model.spec.seq2seq.decoder.layers == 3 != model.spec.layers  # a decoder deeper than the encoder


@pytest.mark.parametrize("name", NAMES)
def test_kv_cache_steps_equal_the_whole_pass(name):
    """Writing the target one token at a time through the decoder's KV cache (the encoder's keys
    and values computed once) gives the rows of the teacher-forced pass."""
    model, r = load_model(SEQ2SEQ / name), ref(name, 1)
    memory = model.memory(r["input_ids"])
    ids = r["decoder_input_ids"]
    whole = list(model.trace_decoder(ids, memory))
    cache = KVCache(model.spec.seq2seq.decoder, len(ids))
    for t in range(len(ids)):
        steps = list(model.trace_decoder(ids[t : t + 1], memory, cache))
        for layer, (step, full) in enumerate(zip(steps, whole, strict=True)):
            assert np.abs(step.rows()[2][:, 0, : t + 1] - full.rows(slice(t, t + 1))[2][:, 0, : t + 1]).max() <= TOLERANCE, (t, layer)
            assert np.abs(step.cross.rows()[2][:, 0] - r["cross_attentions"][layer, :, t]).max() <= TOLERANCE, (t, layer)
        assert np.abs(model.decoder_logits(steps[-1].hidden)[0] - r["logits"][t]).max() <= 1e-4


def test_a_t5_with_its_own_lm_head_uses_it(tmp_path):
    """Flan-T5's layout: an LM head of its own in the checkpoint and tie_word_embeddings false:
    the logits are that head's, unscaled, as transformers computes them."""
    import json
    import shutil

    from helpers import write_safetensors
    from safetensors.numpy import load_file

    r = ref("t5", 0)
    folder = tmp_path / "flan"
    shutil.copytree(SEQ2SEQ / "t5", folder)
    write_safetensors(folder / "model.safetensors", load_file(folder / "model.safetensors") | {"lm_head.weight": r["untied_lm_head"]})
    config = json.loads((folder / "config.json").read_text())
    config.pop("scale_decoder_outputs")
    (folder / "config.json").write_text(json.dumps(config | {"tie_word_embeddings": False}))
    model = load_model(folder)
    assert model.spec.seq2seq.output_scale == 1.0
    decoder = list(model.trace_decoder(r["decoder_input_ids"], model.memory(r["input_ids"])))
    assert np.abs(model.decoder_logits(decoder[-1].hidden) - r["untied_logits"]).max() <= 1e-4


def test_interventions_reach_cross_attention_through_the_shared_attend():
    """A knockout of decoder layer 1 blocks its cross-attention's edges (query = a target
    position, key = a source position), and a head edit zeroes the cross head's output: the same
    `attend` applies them, to the layer's self-attention as well (its key positions being target
    positions). attn's own semantics, not checked against transformers."""
    from attn_cli.models import HeadEdit, Interventions, Knockout

    model, r = load_model(SEQ2SEQ / "bart"), ref("bart", 1)
    memory = model.memory(r["input_ids"])
    blocked = Interventions(knockouts=(Knockout(layers=(1,), queries=(4,), keys=(2, 3)),))
    cross = list(model.trace_decoder(r["decoder_input_ids"], memory, interventions=blocked))[1].cross
    weights = cross.rows([4])[2][:, 0]
    assert not weights[:, [2, 3]].any() and np.allclose(weights.sum(axis=-1), 1, atol=1e-6)
    assert np.abs(weights - r["cross_attentions"][1, :, 4]).max() > 1e-2  # the pass changed
    zeroed = Interventions(head_edits=(HeadEdit(layer=0, head=2),))
    cross = list(model.trace_decoder(r["decoder_input_ids"], memory, interventions=zeroed))[0].cross
    assert not cross.head_output[2].any() and cross.head_output[1].any()
