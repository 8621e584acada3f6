"""The options of heads, rollout, stats, compare, tokens, models, batch and --version, each
passed through the CLI, against values computed from transformers' reference tensors
(tests/fixtures/tiny) with NumPy written here, never with attn's helpers."""

from __future__ import annotations

import json
import re
from importlib.metadata import version

import numpy as np
from option_registry import TINY, close, covers, invoke, ref, run_json
from tokenizers import Tokenizer


def entropy(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(axis=-1)


@covers("heads TEXT", "heads --query-index", "heads --key", "heads --model", "heads --json")
def test_heads_weight_on_a_target():
    r = ref("gpt2", 0)  # The cat sat .
    doc = run_json("heads", str(r["text"]), "-m", str(TINY / "gpt2"), "-i", "2", "--key", "cat", "--json")
    assert doc["metric"] == "weight" and doc["target"]["token_indices"] == [1]
    values = np.array([[h["value"] for h in layer["heads"]] for layer in doc["layers"]])
    assert close(values, r["attentions"][:, :, 2, 1])


@covers("heads --query", "heads --metric")
def test_heads_entropy():
    r = ref("llama", 1)
    doc = run_json("heads", str(r["text"]), "-m", str(TINY / "llama"), "-q", "looks", "--metric", "entropy", "--json")
    values = np.array([[h["value"] for h in layer["heads"]] for layer in doc["layers"]])
    assert doc["query"]["token_indices"] == [4]
    assert close(values, entropy(r["attentions"][:, :, 4]))


@covers("heads --special", "heads --no-special")
def test_heads_top_word_with_and_without_special_tokens():
    r = ref("bert", 0)
    labels = ["[CLS]", "The", "cat", "sat", ".", "[SEP]"]
    base = ["heads", str(r["text"]), "-m", str(TINY / "bert"), "-q", "cat", "--metric", "top", "--json"]
    for flag, columns in (("--special", range(6)), ("--no-special", range(1, 5))):
        doc = run_json(*base, flag)
        for layer in range(2):
            for h in range(4):
                row = r["attentions"][layer, h, 2]
                best = max(columns, key=lambda j: row[j])
                cell = doc["layers"][layer]["heads"][h]
                assert cell["top"]["text"] == labels[best] and abs(cell["value"] - row[best]) <= 1e-5
    with_special = run_json(*base, "--special")
    assert any(h["top"]["special"] for layer in with_special["layers"] for h in layer["heads"])  # the flag matters


def rollout_matrix(attentions: np.ndarray) -> np.ndarray:
    """R = Â_L···Â_1, Â = (A + I)/2 with rows renormalised, A the mean over heads (Abnar &
    Zuidema 2020), written out here in float64."""
    result = np.eye(attentions.shape[-1])
    for a in attentions.mean(axis=1).astype(np.float64):
        a_hat = 0.5 * a + 0.5 * np.eye(len(a))
        result = (a_hat / a_hat.sum(axis=-1, keepdims=True)) @ result
    return result


@covers("rollout TEXT", "rollout --query", "rollout --full", "rollout --top", "rollout --model", "rollout --json")
def test_rollout_row_and_full_matrix():
    r = ref("bert", 1)
    full = rollout_matrix(r["attentions"])
    doc = run_json("rollout", str(r["text"]), "-m", str(TINY / "bert"), "-q", "head", "--full", "--top", "3", "--json")
    assert close(doc["rollout"], full[2]) and close(np.array(doc["full"]), full)
    assert close(doc["last_layer_mean"], r["attentions"][-1, :, 2].mean(axis=0))
    want = list(np.argsort(-full[2], kind="stable")[:3])
    assert [t["token_indices"] for t in doc["top"]] == [[int(j)] for j in want]
    assert run_json("rollout", str(r["text"]), "-m", str(TINY / "bert"), "-q", "head", "--json")["full"] is None


@covers("rollout --query-index", "rollout --level", "rollout --special", "rollout --no-special")
def test_rollout_word_level_of_a_decoder():
    r = ref("llama", 1)  # <s> ▁ Every ▁head ...: "Every" is tokens 1 and 2
    full = rollout_matrix(r["attentions"])
    groups = [[0], [1, 2], *[[j] for j in range(3, 10)]]
    base = ["rollout", str(r["text"]), "-m", str(TINY / "llama"), "-i", "5", "--level", "word", "--full", "--json"]
    doc = run_json(*base, "--special")
    assert [u["token_indices"] for u in doc["units"]] == groups
    assert close(doc["rollout"], [full[5, g].sum() for g in groups])
    words = np.array([[full[np.ix_(gi, gj)].sum(axis=1).mean() for gj in groups] for gi in groups])
    assert close(np.array(doc["full"]), words)
    assert np.allclose(np.triu(words, 1), 0)  # still causal
    order = sorted(range(len(groups)), key=lambda k: -words[4, k])
    assert doc["top"][0]["token_indices"] == groups[order[0]] and doc["top"][0]["special"]  # <s> gets the most
    no_special = run_json(*base, "--no-special")
    assert no_special["top"][0]["token_indices"] == groups[next(k for k in order if k)]


def _stats_of(att: np.ndarray, special: np.ndarray, punct: np.ndarray) -> dict:
    """Per (layer, head): the mean over rows, written out here."""
    n = att.shape[-1]
    return {
        "entropy": entropy(att).mean(axis=-1),
        "special": att[..., special].sum(axis=-1).mean(axis=-1),
        "first_token": att[..., 0].mean(axis=-1),
        "punctuation": att[..., punct].sum(axis=-1).mean(axis=-1),
        "previous_token": np.stack([att[..., i, i - 1] for i in range(1, n)], -1).mean(axis=-1),
        "self": np.stack([att[..., i, i] for i in range(n)], -1).mean(axis=-1),
        "next_token": np.stack([att[..., i, i + 1] for i in range(n - 1)], -1).mean(axis=-1),
    }


BERT_0 = (np.array([1, 0, 0, 0, 0, 1], bool), np.array([0, 0, 0, 0, 1, 0], bool))  # [CLS] the cat sat . [SEP]
BERT_1 = (np.array([1] + [0] * 8 + [1], bool), np.array([0] * 8 + [1, 0], bool))


@covers("stats TEXT", "stats --model", "stats --json", "stats --threshold")
def test_stats_and_threshold():
    r = ref("bert", 0)
    want = _stats_of(r["attentions"], *BERT_0)
    for threshold in (0.3, 0.6):
        doc = run_json("stats", str(r["text"]), "-m", str(TINY / "bert"), "--threshold", str(threshold), "--json")
        assert doc["threshold"] == threshold
        for layer in range(2):
            for h in range(4):
                got = doc["layers"][layer]["heads"][h]
                for name, values in want.items():
                    assert abs(got[name] - values[layer, h]) <= 1e-5, name
        kinds = {"previous_token": "previous-token", "self": "self", "next_token": "next-token", "special": "special-token",
                 "first_token": "first-token", "punctuation": "punctuation"}
        named = {(n["layer"], n["head"], n["kind"]) for n in doc["named"]}
        expected = {(layer, h, kinds[k]) for k in kinds for layer in range(2) for h in range(4) if want[k][layer, h] >= threshold}
        assert named == expected and expected
    assert len(run_json("stats", str(r["text"]), "-m", str(TINY / "bert"), "--threshold", "0.3", "--json")["named"]) > len(doc["named"])


@covers("stats --file")
def test_stats_over_a_file_pools_rows(tmp_path):
    r0, r1 = ref("bert", 0), ref("bert", 1)
    path = tmp_path / "texts.txt"
    path.write_text(f"{r0['text']}\n\n{r1['text']}\n", encoding="utf-8")
    doc = run_json("stats", "--file", str(path), "-m", str(TINY / "bert"), "--json")
    a, b = _stats_of(r0["attentions"], *BERT_0), _stats_of(r1["attentions"], *BERT_1)
    pooled = (a["entropy"] * 6 + b["entropy"] * 10) / 16
    got = np.array([[h["entropy"] for h in layer["heads"]] for layer in doc["layers"]])
    assert close(got, pooled)
    assert doc["tokens"] == 16


@covers("compare TEXT_A", "compare TEXT_B", "compare --query", "compare --query-b", "compare --layer", "compare --model", "compare --json")
def test_compare_weights_of_two_texts():
    a, b = ref("gpt2", 0), ref("gpt2", 1)
    doc = run_json("compare", str(a["text"]), str(b["text"]), "-q", "sat", "--query-b", "head", "-m", str(TINY / "gpt2"), "--layer", "1", "--json")
    assert doc["query_a"]["token_indices"] == [2] and doc["query_b"]["token_indices"] == [1]
    (layer,) = doc["layers"]
    assert layer["layer"] == 1
    for h in range(4):
        row_a, row_b = a["attentions"][1, h, 2], b["attentions"][1, h, 1]
        got = layer["heads"][h]
        want_a = [0.0 if i is None else row_a[i] for i, _ in doc["alignment"]]
        want_b = [0.0 if j is None else row_b[j] for _, j in doc["alignment"]]
        assert close(got["weights_a"], want_a) and close(got["weights_b"], want_b)
        assert close(got["diff"], np.array(want_b) - np.array(want_a))
        assert abs(got["change"] - np.abs(np.array(want_b) - want_a).sum()) <= 1e-5
    assert sorted(p[0] for p in doc["alignment"] if p[0] is not None) == list(range(4))


@covers("compare --top")
def test_compare_top_details_that_many_heads():
    a, b = ref("gpt2", 0), ref("gpt2", 1)
    for top in (1, 3):
        out = invoke("compare", str(a["text"]), str(b["text"]), "-q", "sat", "--query-b", "head", "-m", str(TINY / "gpt2"), "--top", str(top)).stdout
        assert f"({top} of 8)" in out
        assert len(re.findall(r"^Layer \d+ · head \d+ · Σ\|Δ\| ", out, re.M)) == top


@covers("tokens TEXT", "tokens --model", "tokens --json")
def test_tokens_are_the_tokenizers():
    text = "The quick brown fox, naïvely."
    for name in ("bert", "llama", "qwen2"):
        encoding = Tokenizer.from_file(str(TINY / name / "tokenizer.json")).encode(text)
        doc = run_json("tokens", text, "-m", str(TINY / name), "--json")
        assert [t["id"] for t in doc["tokens"]] == encoding.ids
        offsets = [o for o, special in zip(encoding.offsets, encoding.special_tokens_mask) if not special]
        assert [(t["start"], t["end"]) for t in doc["tokens"] if not t["special"]] == offsets


@covers("models --json")
def test_models_lists_attn_model(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTN_MODEL", str(TINY / "qwen3"))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    doc = run_json("models", "--json")
    # the packaged ones are tested elsewhere: smollm2, gemma3 in tests/test_gguf.py; mpnet, nomic-embed, opus-mt-fr-en in tests/test_*_real.py
    listed = [(m["source"], m["architecture"], m["usable"]) for m in doc["models"] if m["source"] != "packaged"]
    assert listed == [("bundled", "bert", True), ("ATTN_MODEL", "qwen3", True)]
    assert doc["models"][1]["path"] == str(TINY / "qwen3")


@covers("attn --version")
def test_version():
    assert invoke("--version").stdout == f"attn {version('attn-cli')}\n"


def _batch(tmp_path, lines: list[str], *args: str) -> list[dict]:
    path = tmp_path / "in.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [json.loads(line) for line in invoke("batch", str(path), *args).stdout.splitlines()]


@covers(
    "batch FILE", "batch --model", "batch --query-index", "batch --layer", "batch --head", "batch --top", "batch --no-special",
    "batch --norms", "batch --fields",
)
def test_batch_plain_lines(tmp_path):
    refs = [ref("llama", 0), ref("llama", 1)]
    docs = _batch(tmp_path, [str(r["text"]) for r in refs], "-m", str(TINY / "llama"), "-i", "3", "--layer", "0", "--head", "1",
                  "--top", "2", "--no-special", "--norms", "--fields", "query,layers")
    assert [d["line"] for d in docs] == [1, 2]
    for d, r in zip(docs, refs):
        assert set(d) == {"line", "schema_version", "query", "layers"}
        assert d["query"]["token_indices"] == [3]
        (layer,) = d["layers"]
        assert layer["layer"] == 0 and layer["focus"] == [1]
        for h in range(4):
            got = layer["heads"][h]
            row = r["attentions"][0, h, 3]
            assert close(got["weights"], row)
            assert close(got["value_norms"], row * np.linalg.norm(r["v"][0, h // 2], axis=-1), 1e-4)
            assert len(got["top"]) == 2 and not any(t["special"] for t in got["top"])


@covers("batch --query", "batch --steps", "batch --special", "batch --rank-by", "batch --workers")
def test_batch_steps_rank_by_and_workers(tmp_path):
    refs = [ref("gpt2", 0), ref("gpt2", 1), ref("gpt2", 0)]
    lines = [str(r["text"]) for r in refs]
    args = ["-m", str(TINY / "gpt2"), "-q", ".", "--head", "2", "--steps", "--special", "--rank-by", "value_norm", "--top", "8"]
    one, two = _batch(tmp_path, lines, *args), _batch(tmp_path, lines, *args, "--workers", "2")
    assert one == two
    for d, r in zip(one, refs):
        i = r["attentions"].shape[-1] - 1
        assert d["query"]["token_indices"] == [i]
        got = d["layers"][0]["heads"][2]
        assert close(got["steps"]["query"], r["q"][1, 2, i], 1e-4)
        norms = r["attentions"][1, 2, i] * np.linalg.norm(r["v"][1, 2], axis=-1)
        assert [t["token_indices"][0] for t in got["top"]] == [int(j) for j in np.argsort(-norms, kind="stable")]


@covers("batch --truncate", "batch --level")
def test_batch_truncate_and_word_level(tmp_path):
    r = ref("llama", 1)
    long = " ".join([str(r["text"])] * 30)
    total = len(Tokenizer.from_file(str(TINY / "llama" / "tokenizer.json")).encode(long).ids)
    assert total > 128
    docs = _batch(tmp_path, [str(r["text"]), long], "-m", str(TINY / "llama"), "-q", "every", "--level", "word", "--truncate", "--layer", "0", "--head", "0")
    groups = [[0], [1, 2], *[[j] for j in range(3, 10)]]
    for d in docs:
        assert d["level"] == "word" and [u["token_indices"] for u in d["units"][:9]] == groups
        want = r["attentions"][0, 0, [1, 2]].mean(axis=0)  # the causal mask: the rest of the text cannot change it
        assert close(d["layers"][0]["heads"][0]["weights"][:9], [want[g].sum() for g in groups])
    assert docs[0]["truncated_from"] is None
    assert docs[1]["truncated_from"] == total and len(docs[1]["tokens"]) == 128
