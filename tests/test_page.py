"""The interactive page (`attn plot -o page.html`): the numbers in its data are transformers'.

Every query row of every head is stored in hundredths (checked against the reference weights of
the tiny models); the chosen query's rows, q vectors and scores are exact; the keys (float16)
are transformers' keys after RoPE. What the browser makes of them: test_page_browser.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from option_registry import TINY, covers, invoke, ref, runner
from page_helpers import page_blob, unpacked

from attn_cli.cli import ExitStatus, app

CAUSAL = {"llama": True, "gpt2": True, "gemma2": True, "bert": False, "mpnet": False}


@pytest.mark.parametrize("name", ["llama", "gpt2", "gemma2", "bert", "mpnet"])
def test_every_row_of_every_head_is_transformers_weight_in_hundredths(tmp_path, name):
    r = ref(name, 0)
    out = tmp_path / "page.html"
    assert invoke("plot", str(r["text"]), "-m", str(TINY / name), "-i", "3", "-o", str(out)).stdout == f"{out}\n"
    blob, want = page_blob(out), r["attentions"].astype(np.float64)  # (layers, heads, seq, seq)
    weights = unpacked(blob["weights"])
    assert weights.shape == want.shape
    masked = weights == 255
    if CAUSAL[name]:
        assert np.array_equal(masked, want == 0)  # a decoder's future keys (and those past a window) are masked, nothing else
    else:
        assert not masked.any()
    assert np.all(np.abs(weights[~masked] / 100 - want[~masked]) <= 0.005 + 1e-6)  # rounded to 0.01, not worse
    assert blob["query"] == 3 and blob["start_layer"] == want.shape[0] - 1


@pytest.mark.parametrize("name", ["llama", "gemma2", "mpnet"])
def test_the_query_keeps_exact_rows_q_scores_and_keys(tmp_path, name):
    r = ref(name, 0)
    out = tmp_path / "page.html"
    invoke("plot", str(r["text"]), "-m", str(TINY / name), "-i", "3", "-o", str(out))
    blob = page_blob(out)
    layers, heads = r["attentions"].shape[:2]
    keys = unpacked(blob["keys"]).astype(np.float64)  # (layers, kv_heads, seq, d), float16
    np.testing.assert_allclose(keys, r["k"], rtol=2e-3, atol=2e-3)
    for layer in range(layers):
        mean = blob["exact"][layer][heads]  # after every head: the mean over heads
        np.testing.assert_allclose(mean["w"], r["attentions"][layer, :, 3].mean(axis=0), atol=1e-5)
        for h in range(heads):
            e = blob["exact"][layer][h]
            np.testing.assert_allclose(e["w"], r["attentions"][layer, h, 3], atol=1e-5)
            np.testing.assert_allclose(e["q"], r["q"][layer, h, 3], atol=1e-5)
            kv = e["kv"]
            assert kv == h // (heads // r["k"].shape[1])  # grouped-query: the key/value head this head reads
            seen = [j for j, s in enumerate(e["qk"]) if s is not None]
            np.testing.assert_allclose([e["qk"][j] for j in seen], r["k"][layer, kv, seen] @ r["q"][layer, h, 3], rtol=1e-4, atol=1e-4)
            assert ("adj" in e) == (name in ("gemma2", "mpnet"))  # Gemma 2's soft-cap, MPNet's position bias: their own column
    assert blob["model"]["kv_heads"] == r["k"].shape[1]


@covers("plot --static")
def test_static_keeps_the_table_and_the_page_refuses_its_options(tmp_path):
    r = ref("gpt2", 1)
    static, page = tmp_path / "s.html", tmp_path / "p.html"
    invoke("plot", str(r["text"]), "-m", str(TINY / "gpt2"), "-i", "3", "--layer", "0", "--static", "-o", str(static))
    text = static.read_text()
    assert "<script" not in text and text.count('<td class="cell') == 8 * 5  # tokens × (heads + mean), the static table
    invoke("plot", str(r["text"]), "-m", str(TINY / "gpt2"), "-i", "3", "--layer", "0", "-o", str(page))
    text = page.read_text()
    assert 'class="attn-data"' in text and page_blob(page)["start_layer"] == 0
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text and " src=" not in text  # nothing to fetch
    refused = runner.invoke(app, ["plot", str(r["text"]), "-m", str(TINY / "gpt2"), "-i", "3", "--view", "grid", "-o", str(tmp_path / "g.html")])
    assert refused.exit_code == ExitStatus.USAGE and not (tmp_path / "g.html").exists()
    why = "--view shapes the static table; the interactive page shows every layer, head and token"
    assert refused.stderr == f"attn: error: {why} — add --static, or drop --view\n"
    png = runner.invoke(app, ["plot", str(r["text"]), "-m", str(TINY / "gpt2"), "--static", "-o", str(tmp_path / "x.png")])
    assert png.exit_code == ExitStatus.USAGE and "--static is for .html files" in png.stderr


def test_a_128_token_minilm_page_is_under_5_mb(tmp_path):
    import attn_cli as attn

    words = (Path(__file__).parent.parent / "sample_inputs" / "sentences.txt").read_text(encoding="utf-8").split() * 2

    model = attn.load_model()
    n = next(n for n in range(60, len(words)) if len(attn.tokenize(model, " ".join(words[:n])).tokens) >= 128)
    text = " ".join(words[:n])
    out = tmp_path / "page.html"
    invoke("plot", text, "-q", "it", "-o", str(out))
    blob = page_blob(out)
    assert len(blob["tokens"]) >= 128 and unpacked(blob["weights"]).shape == (6, 12, len(blob["tokens"]), len(blob["tokens"]))
    assert out.stat().st_size < 5_000_000


@covers("generate --html")
def test_generate_html_holds_each_written_tokens_row(tmp_path):
    from test_generate import tied_copy

    folder = tied_copy("llama", tmp_path)
    out = tmp_path / "written.html"
    # the row of the position before the 3rd written token, as generate's own inspect view computes it
    doc = json.loads(invoke("generate", "The cat sat.", "-m", str(folder), "-n", "4", "--html", str(out), "--json").stdout)
    third = doc["steps"][2]["position"] - 1
    view = json.loads(invoke("generate", "The cat sat.", "-m", str(folder), "-n", "4", "-i", str(third), "--layer", "all", "--head", "all", "--json").stdout)
    blob = page_blob(out)
    assert [(w["position"], w["text"]) for w in blob["written"]] == [(s["position"], s["text"]) for s in doc["steps"]]
    assert blob["query"] == doc["prompt_tokens"] - 1 and len(blob["tokens"]) == len(doc["tokens"])
    weights = unpacked(blob["weights"])
    for layer in view["layers"]:
        for h in layer["heads"][:-1]:
            row, want = weights[layer["layer"], h["head"], third], np.array(h["weights"])
            seen = np.array(layer["visible"])
            assert (row[~seen] == 255).all() and np.all(np.abs(row[seen] / 100 - want[seen]) <= 0.005 + 1e-6)


def test_a_text_over_256_tokens_keeps_the_querys_rows(tmp_path, model):
    import attn_cli as attn

    words = (Path(__file__).parent.parent / "sample_inputs" / "sentences.txt").read_text(encoding="utf-8").split() * 5
    text = " ".join(words[:290])
    assert 256 < len(attn.tokenize(model, text).tokens) <= 512
    out = tmp_path / "long.html"
    invoke("plot", text, "-q", "it", "-o", str(out))
    blob = page_blob(out)
    r = attn.inspect(model, text, query="it", layer="all", head="all")
    query = r.query.token_indices[0]
    assert blob["rows"] == [query] and blob["keys"] is None and any("tokens long: the page holds the query's rows only" in n for n in blob["notes"])
    for layer in r.layers:
        for h in layer.heads[:-1]:
            np.testing.assert_array_equal(np.float32(blob["exact"][layer.layer][h.head]["w"]), h.weights)
    assert (np.delete(unpacked(blob["weights"]), query, axis=2) == 255).all()
