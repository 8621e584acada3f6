"""The interactive page in a real browser (headless Chromium, tests/browser.py): it loads from
file:// without an error or a request, and what it shows after a reader's clicks is what
`attn inspect --json` prints."""

from __future__ import annotations

import pytest
from browser import Opened, browser  # noqa: F401  (the fixture)
from conftest import SENTENCE
from option_registry import TINY, invoke, run_json

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
