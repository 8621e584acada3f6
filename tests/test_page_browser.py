"""The interactive page in a real browser (headless Chromium, tests/browser.py): it loads from
file:// without an error or a request, and what it shows after a reader's clicks is what
`attn inspect --json` prints."""

from __future__ import annotations

import pytest
from browser import Opened, browser  # noqa: F401  (the fixture)
from conftest import SENTENCE
from option_registry import TINY, invoke, run_json
from test_seq2seq import SEQ2SEQ, ref

CAT = "The cat sat on the mat because it was tired."


@pytest.fixture(scope="module")
def minilm_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "making.html"
    invoke("plot", SENTENCE, "-q", "making", "-o", str(out))
    return out


@pytest.fixture(scope="module")
def llama_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "llama.html"
    invoke("plot", CAT, "-q", "it", "-m", str(TINY / "llama"), "-o", str(out))
    return out


def test_the_page_loads_with_no_error_and_no_request(browser, minilm_page):  # noqa: F811
    opened = Opened(browser, minilm_page)
    assert opened.errors == []
    assert opened.requests and all(u.startswith(("file:", "data:")) for u in opened.requests), opened.requests
    p = opened.page
    assert p.get_by_label("Layer").input_value() == "5" and p.get_by_label("Head").input_value() == "6"  # the last layer, the head --head auto picks
    assert [o for o in p.get_by_label("Head").locator("option").all_inner_texts()] == [*map(str, range(12)), "mean", "all"]
    assert p.locator(".modelview canvas").count() == 6 * 12
    # README's screen: "making" in layer 5, head 6 gives language 0.297, understand 0.119
    assert p.locator("ol.top li").all_inner_texts()[:2] == ["language 0.30", "understand 0.12"]
    p.close()


@pytest.mark.parametrize("layer, head, token", [(2, 7, 1), (0, 3, 5), (4, 11, 9)])
def test_a_layer_a_head_and_a_clicked_token_show_inspects_weights(browser, minilm_page, layer, head, token):  # noqa: F811
    opened = Opened(browser, minilm_page)
    p = opened.page
    p.get_by_label("Layer").select_option(str(layer))
    p.get_by_label("Head").select_option(str(head))
    p.locator(f'.column.left .tok[data-i="{token}"]').click()
    doc = run_json("inspect", SENTENCE, "-i", str(token), "--layer", str(layer), "--head", "all", "--json")
    want = [f"{w:.2f}" for w in doc["layers"][0]["heads"][head]["weights"]]
    assert opened.weights() == want
    assert p.locator(f'.column.left .tok[data-i="{token}"]').get_attribute("class").endswith("query")
    assert opened.errors == []
    p.close()


def test_a_decoder_shows_its_masked_keys_as_masked(browser, llama_page):  # noqa: F811
    opened = Opened(browser, llama_page)
    p = opened.page
    p.get_by_label("Layer").select_option("0")
    p.get_by_label("Head").select_option("3")
    p.locator('.column.left .tok[data-i="4"]').click()
    doc = run_json("inspect", CAT, "-i", "4", "-m", str(TINY / "llama"), "--layer", "0", "--head", "all", "--json")
    weights, visible = doc["layers"][0]["heads"][3]["weights"], doc["layers"][0]["visible"]
    assert opened.weights() == [f"{w:.2f}" if seen else "masked" for w, seen in zip(weights, visible)]
    assert p.locator(".column.right .tok.masked").count() == len(visible) - sum(visible)
    # the query "it" keeps its steps: Q·K per key, masked ones marked, the softmax to 4 decimals
    # ("it" is tokens 15 and 16 in this tokenizer: the page's query is the first of them)
    it = run_json("inspect", CAT, "-i", "15", "-m", str(TINY / "llama"), "--layer", "0", "--head", "all", "--json")["layers"][0]["heads"][3]
    p.locator('.column.left .tok[data-i="15"]').hover()
    rows = p.locator(".steps table tr[data-j]")
    assert rows.count() == len(it["weights"]) and p.locator(".column.left .tok.query").get_attribute("data-i") == "15"
    assert rows.nth(2).locator("td").all_inner_texts()[-1] == f"{it['weights'][2]:.4f}"
    assert rows.nth(2).locator("td").all_inner_texts()[2] == f"{it['scores'][2]:.2f}"
    assert "masked" in rows.nth(len(it["weights"]) - 1).inner_text()
    assert opened.errors == []
    p.close()


def test_a_model_view_thumbnail_click_selects_its_head(browser, minilm_page):  # noqa: F811
    opened = Opened(browser, minilm_page)
    p = opened.page
    p.locator('.modelview canvas[data-layer="1"][data-head="4"]').click()
    assert p.get_by_label("Layer").input_value() == "1" and p.get_by_label("Head").input_value() == "4"
    assert p.locator(".modelview canvas.selected").count() == 1
    assert p.locator('.modelview canvas[data-layer="1"][data-head="4"]').get_attribute("class") == "selected"
    doc = run_json("inspect", SENTENCE, "-q", "making", "--layer", "1", "--head", "all", "--json")
    assert opened.weights() == [f"{w:.2f}" for w in doc["layers"][0]["heads"][4]["weights"]]
    assert "layer 1, head 4" in p.locator(".numbers h2").inner_text()
    p.close()


def test_two_notebook_outputs_run_each_in_its_frame(browser, tmp_path):  # noqa: F811
    import attn_cli as attn

    model = attn.load_model()
    word = attn.inspect(model, SENTENCE, query="Transformer", layer=2, head=3, level="word")
    steps = attn.inspect(model, CAT, query="it", layer="all", head="all", steps=True)
    cell = tmp_path / "cell.html"
    cell.write_text(f"<!DOCTYPE html><meta charset='utf-8'><body>{word._repr_html_()}{steps._repr_html_()}</body>", encoding="utf-8")
    opened = Opened.__new__(Opened)
    opened.errors, opened.requests = [], []
    p = opened.page = browser.new_page(viewport={"width": 1400, "height": 1000})
    p.on("console", lambda m: opened.errors.append(m.text) if m.type in ("error", "warning") else None)
    p.on("pageerror", lambda e: opened.errors.append(str(e)))
    p.goto(cell.resolve().as_uri())
    first, second = (p.frame_locator("iframe.attn-frame").nth(i) for i in range(2))
    for frame in (first, second):
        frame.locator(".attn-page[data-ready=true]").wait_for(timeout=30_000)
    assert first.get_by_label("Layer").locator("option").all_inner_texts() == ["2"]  # the result's one layer, by its number
    assert first.locator("table.weights td.weight").all_inner_texts() == [f"{w:.2f}" for w in word.layers[0].head(3).weights]
    assert first.locator(".column.left .tok.query").inner_text() == "Transformer"
    second.get_by_label("Layer").select_option("4")
    second.get_by_label("Head").select_option("7")
    assert second.locator("table.weights td.weight").all_inner_texts() == [f"{w:.2f}" for w in steps.layers[4].heads[7].weights]
    second.locator('table.weights tr[data-j="2"]').click()  # a key: its k vector and the neuron view
    assert second.locator("svg.neuron-view rect").count() == steps.model.head_dim
    assert first.get_by_label("Layer").input_value() == "0"  # untouched by the other output
    assert opened.errors == []
    p.close()


def test_the_neuron_view_is_q_times_k_after_rope_per_dimension(browser, tmp_path):  # noqa: F811
    import numpy as np
    from option_registry import ref

    r = ref("llama", 0)  # 4 query heads share 2 key/value heads; RoPE
    out = tmp_path / "llama.html"
    invoke("plot", str(r["text"]), "-m", str(TINY / "llama"), "-i", "3", "-o", str(out))
    opened = Opened(browser, out)
    p = opened.page
    p.get_by_label("Layer").select_option("1")
    p.get_by_label("Head").select_option("3")
    p.locator('.steps table tr[data-j="2"]').click()
    assert "reads key/value head 1 (grouped-query attention: 2 query heads share it)" in p.locator(".steps").inner_text()
    shown = [float(t.rsplit("= ", 1)[1]) for t in p.locator("svg.neuron-view rect title").all_text_contents()]
    want = r["q"][1, 3, 3] * r["k"][1, 1, 2]  # per dimension, after RoPE: head 3 reads kv head 1
    np.testing.assert_allclose(shown, want, atol=2e-3, rtol=2e-3)  # k is float16 in the page
    assert f"Q·K = {float(want.sum()):.2f}" in p.locator(".steps").inner_text()
    assert opened.errors == []
    p.close()


def test_the_step_slider_of_generate_html_walks_the_written_tokens(browser, tmp_path):  # noqa: F811
    import json

    from test_generate import tied_copy

    folder = tied_copy("llama", tmp_path)
    out = tmp_path / "written.html"
    doc = json.loads(invoke("generate", "The cat sat.", "-m", str(folder), "-n", "4", "--html", str(out), "--json").stdout)
    opened = Opened(browser, out)
    p = opened.page
    assert p.locator(".column.left .tok.query").get_attribute("data-i") == str(doc["prompt_tokens"] - 1)
    p.get_by_label("Step").fill("2")  # the third written token
    chooser = doc["steps"][2]["position"] - 1
    assert p.locator(".column.left .tok.query").get_attribute("data-i") == str(chooser)
    assert f'step 3 of 4: wrote "{doc["steps"][2]["text"]}"' in p.locator(".stepnote").inner_text()
    p.get_by_label("Head").select_option("1")
    view = json.loads(invoke("generate", "The cat sat.", "-m", str(folder), "-n", "4", "-i", str(chooser), "--head", "all", "--json").stdout)
    layer = view["layers"][0]
    assert opened.weights() == [f"{w:.2f}" if seen else "masked" for w, seen in zip(layer["heads"][1]["weights"], layer["visible"])]
    assert opened.errors == []
    p.close()


# --- encoder–decoder models (tests/fixtures/seq2seq): the decoder's page and cross-attention's ---

def test_the_decoder_page_in_a_browser_shows_transformers_weights(browser, tmp_path):  # noqa: F811
    """The page of T5's decoder self-attention loads without an error, and a clicked target
    token's weights are transformers' (to the page's two decimals), the later ones masked."""
    r = ref("t5", 1)
    out = tmp_path / "decoder.html"
    invoke("plot", str(r["source"]), "-m", str(SEQ2SEQ / "t5"), "--target", str(r["target"]), "-i", "3", "-o", str(out))
    opened = Opened(browser, out)
    p = opened.page
    p.get_by_label("Layer").select_option("1")
    p.get_by_label("Head").select_option("2")
    p.locator('.column.left .tok[data-i="5"]').click()
    want = r["decoder_attentions"][1, 2, 5]
    assert opened.weights() == [f"{w:.2f}" if j <= 5 else "masked" for j, w in enumerate(want)]
    assert opened.errors == []
    p.close()


def test_the_cross_attention_page_in_a_browser_shows_transformers_weights(browser, tmp_path):  # noqa: F811
    """Target tokens on the left, source tokens on the right: a clicked target token's weights
    over the source, and its steps (the query given) with one row per source token."""
    r = ref("marian", 1)
    out = tmp_path / "cross.html"
    invoke("plot", str(r["source"]), "-m", str(SEQ2SEQ / "marian"), "--target", str(r["target"]), "-i", "2", "--attention", "cross", "-o", str(out))
    opened = Opened(browser, out)
    p = opened.page
    assert p.locator(".column.left .tok").count() == len(r["decoder_input_ids"]) and p.locator(".column.right .tok").count() == len(r["input_ids"])
    p.get_by_label("Layer").select_option("0")
    p.get_by_label("Head").select_option("1")
    assert p.locator(".steps table tr[data-j]").count() == len(r["input_ids"])
    p.locator('.column.left .tok[data-i="4"]').click()
    assert opened.weights() == [f"{w:.2f}" for w in r["cross_attentions"][0, 1, 4]]
    assert p.locator(".modelview canvas").first.get_attribute("width") == str(len(r["input_ids"]))
    assert opened.errors == []
    p.close()
