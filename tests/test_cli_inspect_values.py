"""`attn inspect`'s options, each passed through the CLI, against values computed without the
code under test: transformers' reference tensors (tests/fixtures), the weight files read with
the `safetensors` library, and hand-written groupings."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest
from option_registry import MINILM, TINY, close, covers, invoke, ref, run_json
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from attn_cli.loading.model import bundled_model_path

ARCHS = ["bert", "roberta", "distilbert", "gpt2", "llama", "llama3rope", "mistral", "qwen2", "qwen3"]
MAKING = dict(np.load(MINILM / "making.npz"))
SENTENCE = str(MAKING["text"])
# all-MiniLM-L6-v2's tokens of SENTENCE, by hand: "Transformer" is transform ##er (2, 3).
MINILM_WORDS = [[0], [1], [2, 3], [4], [5], [6], [7], [8], [9], [10], [11], [12]]


def minilm_weights() -> dict:
    return load_file(str(bundled_model_path() / "model.safetensors"))


def shortest(s: str) -> bool:
    """`s` is the shortest decimal that reads back to float32(s): no decimal with fewer
    significant digits does (a second formula, not numpy's str of a float32)."""
    if re.search(r"\.\d*[1-9]0+($|e)", s):  # trailing zeros are not shortest
        return False
    v = np.float32(s)
    digits = len(s.lstrip("-").replace(".", "").split("e")[0].lstrip("0").rstrip("0") or "0")
    return all(np.float32(f"{float(v):.{p - 1}e}") != v for p in range(1, digits))


def test_shortest_is_a_real_check():
    assert shortest("0.08") and shortest("0.3") and shortest("1.5e-06") and shortest("0")
    assert not shortest("0.07999999821186066") and not shortest("0.10000000")


@pytest.mark.parametrize("name", ARCHS)
@covers("inspect TEXT", "inspect --model", "inspect --json", "inspect --query-index", "inspect --layer", "inspect --head")
def test_every_architecture_through_the_cli_equals_transformers(name):
    """weights[j] == attentions[l][0, h, i, j] for a query counted from the end, in layer 0, for
    every head; scores are q·k from the reference q and k (masked ones null); kv_head = h // group."""
    r = ref(name, 1)
    n = r["attentions"].shape[-1]
    group = r["q"].shape[1] // r["k"].shape[1]
    doc = run_json("inspect", str(r["text"]), "-m", str(TINY / name), "-i", "-2", "--layer", "0", "--head", "1", "--json")
    i = n - 2
    assert doc["query"]["token_indices"] == [i]
    (layer,) = doc["layers"]
    assert layer["layer"] == 0 and layer["focus"] == [1] and layer["auto_head"] is None
    for h in range(4):
        got = layer["heads"][h]
        assert got["head"] == h and got["kv_head"] == h // group
        assert close(got["weights"], r["attentions"][0, h, i])
        assert got["first_token_weight"] == got["weights"][0]
        assert abs(got["first_token_weight"] - r["attentions"][0, h, i, 0]) <= 1e-5
        raw = r["q"][0, h, i] @ r["k"][0, h // group].T
        raw = np.where(r["attentions"][0, h, i] > 0, raw, np.nan) if name not in ("bert", "roberta", "distilbert") else raw
        if name == "mistral":  # the window, not the weight, decides what is masked
            raw = r["q"][0, h, i] @ r["k"][0, h // group].T
            raw = np.where((np.arange(n) <= i) & (np.arange(n) > i - 4), raw, np.nan)
        assert close(got["scores"], raw, 1e-4)
        assert close(got["scaled_scores"], raw * float(r["scaling"]), 1e-5)
    assert close(layer["heads"][4]["weights"], r["attentions"][0, :, i].mean(axis=0))


@covers("inspect --query")
def test_split_decoder_query_is_the_mean_of_its_rows():
    """Llama's "Every" is ▁ + Every (tokens 1, 2): its weights are the mean of both rows, its
    scores the mean over the rows that see each key (key 2 only by row 2)."""
    r = ref("llama", 1)
    doc = run_json("inspect", str(r["text"]), "-m", str(TINY / "llama"), "-q", "every", "--layer", "all", "--head", "all", "--json")
    assert doc["query"]["token_indices"] == [1, 2]
    assert any("2 tokens" in note for note in doc["notes"])
    for layer in range(2):
        for h in range(4):
            got = doc["layers"][layer]["heads"][h]
            assert close(got["weights"], r["attentions"][layer, h, [1, 2]].mean(axis=0))
            raw = r["q"][layer, h, [1, 2]] @ r["k"][layer, h // 2].T  # (2, seq)
            want = np.full(raw.shape[1], np.nan)
            want[:2] = raw[:, :2].mean(axis=0)
            want[2] = raw[1, 2]
            assert close(got["scores"], want, 1e-4)


def _ranking(weights: np.ndarray, labels: list[str], keep) -> list[tuple[str, float]]:
    order = sorted((j for j in range(len(labels)) if keep(j)), key=lambda j: -weights[j])
    return [(labels[j], float(weights[j])) for j in order]


@covers("inspect --top", "inspect --special", "inspect --no-special")
def test_top_and_special_tokens():
    r = ref("bert", 0)  # [CLS] the cat sat . [SEP]: every token its own word
    labels = ["[CLS]", "The", "cat", "sat", ".", "[SEP]"]
    base = ["inspect", str(r["text"]), "-m", str(TINY / "bert"), "-q", "cat", "--layer", "all", "--head", "all", "--top", "2", "--json"]
    with_special, without = run_json(*base, "--special"), run_json(*base, "--no-special")
    specials_seen = 0
    for layer in range(2):
        for h in range(4):
            row = r["attentions"][layer, h, 2]
            for doc, keep in ((with_special, lambda j: True), (without, lambda j: 0 < j < 5)):
                top = doc["layers"][layer]["heads"][h]["top"]
                want = _ranking(row, labels, keep)[:2]
                assert [t["text"] for t in top] == [w[0] for w in want]
                assert close([t["weight"] for t in top], [w[1] for w in want])
            specials_seen += with_special["layers"][layer]["heads"][h]["top"][0]["special"]
    assert specials_seen  # some head's top word is special, so --no-special changes something
    assert with_special["include_special"] is True and without["include_special"] is False


@covers("inspect --level")
def test_word_level_rows_sum_split_words():
    doc = run_json("inspect", SENTENCE, "-q", "making", "--layer", "5", "--head", "6", "--level", "word", "--json")
    assert doc["level"] == "word"
    assert [u["token_indices"] for u in doc["units"]] == MINILM_WORDS
    got = doc["layers"][0]["heads"][6]
    row = MAKING["attentions"][5, 6, 5]
    assert close(got["weights"], [row[g].sum() for g in MINILM_WORDS])
    assert got["scores"] is None and got["scaled_scores"] is None


def _minilm_norms(layer: int, h: int, groups) -> tuple[np.ndarray, np.ndarray]:
    """‖Σ_{j∈g} α_j v_j‖ and ‖Σ_{j∈g} α_j v_j W_hᵀ‖ per group g, W_h = the head's columns of
    the stored (out, in) output dense weight."""
    w = minilm_weights()[f"encoder.layer.{layer}.attention.output.dense.weight"][:, h * 32 : (h + 1) * 32]
    a, v = MAKING["attentions"][layer, h, 5], MAKING["v"][layer, h]
    added = a[:, None] * v
    value = np.array([np.linalg.norm(added[g].sum(axis=0)) for g in groups])
    output = np.array([np.linalg.norm(added[g].sum(axis=0) @ w.T) for g in groups])
    return value, output


@covers("inspect --norms")
def test_value_and_output_norms_from_the_weight_file():
    doc = run_json("inspect", SENTENCE, "-q", "making", "--layer", "5", "--head", "all", "--norms", "--json")
    tokens = [[j] for j in range(13)]
    for h in range(12):
        got = doc["layers"][0]["heads"][h]
        value, output = _minilm_norms(5, h, tokens)
        assert close(got["value_norms"], value, 1e-4)
        assert close(got["output_norms"], output, 1e-4)
        value_w, output_w = _minilm_norms(5, h, MINILM_WORDS)
        for t in got["top"]:
            k = MINILM_WORDS.index(t["token_indices"])
            assert abs(t["value_norm"] - value_w[k]) <= 1e-4 and abs(t["output_norm"] - output_w[k]) <= 1e-4


@covers("inspect --norms")
def test_value_norms_under_grouped_query_attention():
    """Query head h reads value head h // 2: the norms use that head's v and its o_proj columns."""
    r = ref("llama", 1)
    o_proj = load_file(str(TINY / "llama" / "model.safetensors"))["layers.1.self_attn.o_proj.weight"]
    doc = run_json("inspect", str(r["text"]), "-m", str(TINY / "llama"), "-i", "7", "--layer", "1", "--head", "all", "--norms", "--json")
    for h in range(4):
        a, v = r["attentions"][1, h, 7], r["v"][1, h // 2]
        added = a[:, None] * v
        got = doc["layers"][0]["heads"][h]
        assert close(got["value_norms"], np.linalg.norm(added, axis=-1), 1e-4)
        assert close(got["output_norms"], np.linalg.norm(added @ o_proj[:, h * 16 : (h + 1) * 16].T, axis=-1), 1e-4)


@pytest.mark.parametrize("by", ["value_norm", "output_norm"])
@covers("inspect --rank-by")
def test_rank_by_orders_top_words_by_that_norm(by):
    doc = run_json("inspect", SENTENCE, "-q", "making", "--layer", "5", "--head", "all", "--rank-by", by, "--top", "12", "--json")
    assert doc["rank_by"] == by
    differs = 0
    for h in range(12):
        value, output = _minilm_norms(5, h, MINILM_WORDS)
        key = value if by == "value_norm" else output
        other = output if by == "value_norm" else value
        want = list(np.argsort(-key, kind="stable"))
        got = [MINILM_WORDS.index(t["token_indices"]) for t in doc["layers"][0]["heads"][h]["top"]]
        assert got == want
        differs += want != list(np.argsort(-other, kind="stable"))
    assert differs  # the two norms rank differently somewhere, so the choice matters


@covers("inspect --steps")
def test_steps_are_the_reference_vectors():
    for name in ("bert", "llama"):
        r = ref(name, 0)
        doc = run_json("inspect", str(r["text"]), "-m", str(TINY / name), "-q", "sat", "--head", "3", "--steps", "--json")
        i = 3
        got = doc["layers"][0]["heads"][3]["steps"]
        kv = 3 // (r["q"].shape[1] // r["k"].shape[1])
        assert close(got["query"], r["q"][1, 3, i], 1e-4)
        assert close(np.array(got["keys"]), r["k"][1, kv], 1e-4) and close(np.array(got["values"]), r["v"][1, kv], 1e-4)
        assert close(got["output"], r["attentions"][1, 3, i] @ r["v"][1, kv], 1e-4)
        if name == "llama":
            assert close(got["query_pre_rope"], r["q_pre_rope"][1, 3, i], 1e-4)
            assert close(np.array(got["keys_pre_rope"]), r["k_pre_rope"][1, kv], 1e-4)
        assert "steps" not in doc["layers"][0]["heads"][2]


@covers("inspect --truncate")
def test_truncate_keeps_the_first_tokens():
    text = " ".join(["the cat sat on the mat ."] * 30)
    total = len(Tokenizer.from_file(str(TINY / "bert" / "tokenizer.json")).encode(text).ids)
    assert total > 128
    doc = run_json("inspect", text, "-m", str(TINY / "bert"), "-i", "1", "--truncate", "--json")
    assert doc["truncated_from"] == total and len(doc["tokens"]) == 128
    assert [t["text"] for t in doc["tokens"][1:4]] == ["the", "cat", "sat"]


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@covers("inspect --format")
def test_csv_columns_kv_heads_and_numbers():
    r = ref("llama", 0)
    out = invoke("inspect", str(r["text"]), "-m", str(TINY / "llama"), "-i", "2", "--layer", "all", "--head", "all", "--format", "csv").stdout
    rows = _csv(out)
    assert rows[0] == ["layer", "head", "kv_head", "token_index", "token", "word", "special", "score", "scaled_score", "weight"]
    body = rows[1:]
    assert len(body) == 2 * 5 * 5  # layers × (heads + mean) × tokens
    for layer, head, kv, j, _token, _word, _special, score, scaled, weight in body:
        layer, j = int(layer), int(j)
        if head == "mean":
            assert kv == "" and score == ""
            assert abs(float(weight) - r["attentions"][layer, :, 2, j].mean()) <= 1e-5
            continue
        h = int(head)
        assert kv == str(h // 2)
        assert abs(float(weight) - r["attentions"][layer, h, 2, j]) <= 1e-5
        assert (score == "") == (j > 2)  # the future is masked: empty cells
        for cell in (score, scaled, weight):
            assert cell == "" or shortest(cell), cell
    assert {(row[4], row[6]) for row in body if row[3] == "0"} == {("<s>", "1")}
    args = ("inspect", str(r["text"]), "-m", str(TINY / "llama"), "-i", "2")
    assert run_json(*args, "--format", "json") == run_json(*args, "--json")


@covers("inspect --format", "inspect --level")
def test_csv_at_word_level_has_one_row_per_word():
    """A split word is one row whose weight is the sum of its tokens' (it was once each token's
    row reading the units' weights by token index, and an IndexError half-way)."""
    out = invoke("inspect", SENTENCE, "-q", "making", "--layer", "5", "--level", "word", "--format", "csv").stdout  # every head
    rows = [row for row in _csv(out)[1:] if row[1] == "6"]
    row = MAKING["attentions"][5, 6, 5]
    assert [[int(i) for i in r[3].split()] for r in rows] == [list(g) for g in MINILM_WORDS]  # a word's tokens
    assert [r[4] for r in rows][:4] == ["[CLS]", "The", "Transformer", "is"]
    assert np.allclose([float(r[9]) for r in rows], [row[g].sum() for g in MINILM_WORDS], atol=1e-5)
    assert all(r[7] == r[8] == "" for r in rows)


def test_json_floats_are_the_shortest_decimals_of_float32():
    out = invoke("inspect", SENTENCE, "-q", "making", "--layer", "all", "--head", "all", "--norms", "--json").stdout
    raw: list[str] = []
    json.loads(out, parse_float=lambda s: raw.append(s) or float(s))
    assert len(raw) > 6 * 13 * 13 * 3
    bad = [s for s in raw if not shortest(s)]
    assert not bad, bad[:5]
