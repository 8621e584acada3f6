"""`attn compare` on encoder–decoder models (`--target`, `--target-b`, `--attention`): both sides'
word weights equal the sums, over each key word's tokens, of transformers' own
`encoder_attentions`, `decoder_attentions` and `cross_attentions` (tests/fixtures/seq2seq/
ref_<i>.npz, teacher-forced with `labels`), placed on the word alignment as compare places them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import attn, validate
from option_registry import close, covers, run_json
from test_seq2seq import SEQ2SEQ, ref

from attn_cli.compute.result import json_schema
from attn_cli.compute.seq2seq import pair
from attn_cli.loading.model import load_model
from attn_cli.loading.tokenizer import tokenize

NAMES = ("t5", "bart", "marian")
ATTENTIONS = {"encoder": "encoder_attentions", "decoder": "decoder_attentions", "cross": "cross_attentions"}


def key_groups(name: str, r: dict, kind: str) -> list[tuple[int, ...]]:
    """Each key word's token indices (every token in one word unit): the source's for encoder
    and cross, the decoder's input's for decoder, its ids checked against transformers'."""
    model = load_model(SEQ2SEQ / name)
    if kind == "encoder":
        keys, want = tokenize(model.tokenizer, str(r["source"])), r["input_ids"]
    else:
        p = pair(model, str(r["source"]), str(r["target"]))
        keys, want = (p.decoder, r["decoder_input_ids"]) if kind == "decoder" else (p.source, r["input_ids"])
    assert list(keys.ids) == want.tolist()
    return [u.token_indices for u in keys.word_units]


def word_weights(attentions: np.ndarray, rows: list[int], groups) -> np.ndarray:
    """(layers, heads, words): the query's row (the mean of its tokens' rows) summed over each word's tokens."""
    row = attentions[:, :, rows].mean(axis=2).astype(np.float64)
    return np.stack([row[..., list(g)].sum(axis=-1) for g in groups], axis=-1)


def assert_matches(doc: dict, kind: str, a: tuple[str, int], b: tuple[str, int]) -> None:
    """Every layer's and head's weights_a, weights_b, diff and change against transformers'."""
    (name, i), (_, j) = a, b
    ra, rb = ref(name, i), ref(name, j)
    wa = word_weights(ra[ATTENTIONS[kind]], doc["query_a"]["token_indices"], key_groups(name, ra, kind))
    wb = word_weights(rb[ATTENTIONS[kind]], doc["query_b"]["token_indices"], key_groups(name, rb, kind))
    assert len(doc["words_a"]) == wa.shape[-1] and len(doc["words_b"]) == wb.shape[-1]
    assert len(doc["layers"]) == len(ra[ATTENTIONS[kind]])  # the decoder's layers for decoder and cross
    for entry in doc["layers"]:
        layer = entry["layer"]
        for h in entry["heads"]:
            want_a = [0.0 if x is None else wa[layer, h["head"], x] for x, _ in doc["alignment"]]
            want_b = [0.0 if y is None else wb[layer, h["head"], y] for _, y in doc["alignment"]]
            assert close(h["weights_a"], np.array(want_a)) and close(h["weights_b"], np.array(want_b))
            assert close(h["diff"], np.array(want_b) - np.array(want_a))
            assert abs(h["change"] - np.abs(np.array(want_b) - np.array(want_a)).sum()) <= 1e-5
    validate(doc, json_schema(), "compare")


@covers("compare --target", "compare --target-b", "compare --attention")
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["cross", "decoder"])
def test_a_target_tokens_weights_in_two_pairs_are_transformers(name, kind):
    r0, r1 = ref(name, 0), ref(name, 1)
    doc = run_json(
        "compare", str(r0["source"]), str(r1["source"]), "-m", str(SEQ2SEQ / name), "--json", "-q", "cat",
        "--target", str(r0["target"]), "--target-b", str(r1["target"]), "--attention", kind,
    )
    assert doc["attention"] == kind and doc["text_a"] == str(r0["source"]) and doc["text_b"] == str(r1["source"])
    assert doc["target_a"] == str(r0["target"]) and doc["target_b"] == str(r1["target"])
    assert doc["model"]["layers"] == len(r0["decoder_attentions"])
    assert_matches(doc, kind, (name, 0), (name, 1))
    # "cat" is a target word in both: A's "A lazy cat sat.", B's first cat of "The dog looks at the cat, …"
    model = load_model(SEQ2SEQ / name)
    for q, r in ((doc["query_a"], r0), (doc["query_b"], r1)):
        decoder = pair(model, str(r["source"]), str(r["target"])).decoder
        assert "cat" in "".join(decoder.tokens[t].text for t in q["token_indices"]).lower()
    # cross: the keys are the sources' words, aligned; decoder: the targets'
    keys_a = doc["words_a"]
    assert ("mat" in keys_a) == (kind == "cross") and ("lazy" in keys_a) == (kind == "decoder")


@covers("compare --target")
@pytest.mark.parametrize("name", NAMES)
def test_target_b_defaults_to_target_and_decoder_is_the_default(name):
    """Without --target-b, B is taught A's target; with the same source too B's side is A's
    model run again, each side's query its own position."""
    r = ref(name, 1)
    source, target = str(r["source"]), str(r["target"])
    doc = run_json("compare", source, source, "-m", str(SEQ2SEQ / name), "--json", "-t", target, "-q", "@3", "--query-b", "@9", "--layer", "-1")
    assert doc["attention"] == "decoder" and doc["target_b"] == target == doc["target_a"]
    assert doc["query_a"]["token_indices"] == [3] and doc["query_b"]["token_indices"] == [9]
    assert [e["layer"] for e in doc["layers"]] == [len(r["decoder_attentions"]) - 1]
    groups = key_groups(name, r, "decoder")
    w = word_weights(r["decoder_attentions"], [3], groups)[-1], word_weights(r["decoder_attentions"], [9], groups)[-1]
    for h in doc["layers"][0]["heads"]:
        assert close(h["weights_a"], w[0][h["head"]]) and close(h["weights_b"], w[1][h["head"]])
        assert h["weights_a"][-1] == 0.0  # the query at 3 sees nothing after it (causal)


def test_without_a_target_compare_shows_the_encoder_and_says_so():
    r0, r2 = ref("marian", 0), ref("marian", 2)
    done = attn("compare", str(r0["source"]), str(r2["source"]), "-m", str(SEQ2SEQ / "marian"), "-q", "The", "--json")
    assert done.returncode == 0 and "encoder–decoder model: this is its encoder's self-attention" in done.stderr
    doc = json.loads(done.stdout)
    assert doc["attention"] == "encoder" and "target_a" not in doc
    assert_matches(doc, "encoder", ("marian", 0), ("marian", 2))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--target", "Ein Hund."], "has no cross-attention"),  # the bundled MiniLM
        (["--attention", "cross"], "has no cross-attention"),
        (["-m", str(SEQ2SEQ / "t5"), "--target-b", "Ein Hund."], "--target-b is text B's target, and text A has none — add --target TEXT"),
        (["-m", str(SEQ2SEQ / "t5"), "--attention", "cross"], "no target was given — add --target TEXT"),
        (["-m", str(SEQ2SEQ / "t5"), "-t", "A cat.", "--attention", "self"], "--attention 'self' is not valid"),
    ],
)
def test_targets_and_kinds_are_refused_as_inspect_refuses_them(args, says):
    done = attn("compare", "The cat sat.", "The dog sat.", "-q", "The", *args)
    assert done.returncode == 2 and done.stdout == "" and says in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1


def test_a_query_missing_from_a_target_names_it():
    r = ref("bart", 0)
    done = attn("compare", str(r["source"]), str(r["source"]), "-m", str(SEQ2SEQ / "bart"), "-t", str(r["target"]), "--target-b", "A dog.", "-q", "cat")
    assert done.returncode == 3 and "not found in text B's target" in done.stderr
