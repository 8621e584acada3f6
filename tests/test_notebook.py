"""Results in a notebook: `_repr_html_` (the page, or the command's screen, in a sandboxed
iframe), a short `repr`, and `attn.show`."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
from conftest import SENTENCE
from option_registry import TINY
from page_helpers import page_blobs, unpacked

import attn_cli as attn
from attn_cli.views import notebook

SRCDOC = re.compile(r'<iframe class="attn-frame" sandbox="allow-scripts" [^>]*srcdoc="([^"]*)"></iframe>')


def framed_document(cell: str) -> str:
    """The document inside a cell's one iframe."""
    (doc,) = SRCDOC.findall(cell)
    return html.unescape(doc)


def test_an_inspect_result_shows_as_the_page_with_its_own_numbers(model):
    r = attn.inspect(model, SENTENCE, query="making", layer="all", head="all")
    blob = page_blobs(framed_document(r._repr_html_()))[0]
    assert blob["rows"] == [5] and blob["query"] == 5 and blob["tokens"][5] == "making"
    assert [info["layer"] for info in blob["layer_info"]] == list(range(6))
    for layer in r.layers:
        for h in layer.heads:
            column = 12 if h.head == "mean" else h.head
            np.testing.assert_array_equal(np.float32(blob["exact"][layer.layer][column]["w"]), h.weights)  # the exact float32 numbers
    weights = unpacked(blob["weights"])
    assert (weights[:, :, 5] == np.rint(np.stack([[h.weights * 100 for h in lr.heads[:12]] for lr in r.layers]))).all()
    assert (np.delete(weights, 5, axis=2) == 255).all()  # the other rows are not in an InspectResult
    assert blob["auto_head"] == 6 and blob["start_layer"] == 5  # README's screen: layer 5, head 6, by --head auto


def test_a_word_level_result_of_some_layers_shows_its_units_and_layer_numbers(model):
    r = attn.inspect(model, SENTENCE, query="Transformer", layer=2, head=3, level="word")
    blob = page_blobs(framed_document(r._repr_html_()))[0]
    assert blob["tokens"] == [u.text for u in r.units] and blob["query"] == 2 and blob["tokens"][2] == "Transformer"
    assert [info["layer"] for info in blob["layer_info"]] == [2] and blob["auto_head"] == 3
    assert blob["keys"] is None  # no steps kept: no keys, no neuron view
    np.testing.assert_array_equal(np.float32(blob["exact"][0][3]["w"]), r.layers[0].head(3).weights)


def test_two_outputs_share_nothing(model):
    a = attn.inspect(model, "The cat sat.", query="cat")._repr_html_()
    b = attn.page(attn.load_model(TINY / "llama"), "The cat sat on the mat.", query="sat")._repr_html_()
    cell = a + b  # one notebook page
    assert cell.count("<iframe") == 2 and ' id="' not in framed_document(a) and ' id="' not in framed_document(b)
    first, second = (page_blobs(html.unescape(doc))[0] for doc in SRCDOC.findall(cell))
    assert first["model"]["name"] == "all-MiniLM-L6-v2" and second["model"]["architecture"] == "llama" and second["rows"] is None
    assert "<script" not in cell.replace(html.escape("<script"), "")  # every script is inside a frame's srcdoc


@pytest.mark.parametrize("make", ["heads", "rollout", "stats"])
def test_every_other_result_shows_its_screen_and_a_short_repr(model, make):
    if make == "heads":
        r = attn.heads(model, "The cat sat on the mat because it was tired.", query="it", key="cat", metric="weight")
        number = "." + f"{r.values[5, 11]:.2f}".split(".")[1]
    elif make == "rollout":
        r = attn.rollout(model, "The cat sat.", query="sat")
        number = f"{r.top[0].weight:.2f}"
    else:
        r = attn.stats(model, ["The cat sat.", "It was tired."])
        number = "all-MiniLM-L6-v2"
    text = html.unescape(re.sub(r"<[^>]+>", "", framed_document(r._repr_html_())))
    assert number in text
    assert len(repr(r)) < 3000 and "array(" not in repr(r) and repr(r).startswith(type(r).__name__ + "(")


def test_show_writes_the_page_and_opens_it(model, tmp_path):
    r = attn.inspect(model, "The cat sat.", query="cat")
    opened = []
    path = notebook.show(r, open_browser=opened.append)
    try:
        assert opened == [path.as_uri()] and path.suffix == ".html"
        blob = page_blobs(path.read_text(encoding="utf-8"))[0]
        np.testing.assert_array_equal(np.float32(blob["exact"][0][0]["w"]), r.layers[0].heads[0].weights)
    finally:
        path.unlink()
    assert repr(attn.page(model, "The cat sat.", query="cat")) == "PageResult(model='all-MiniLM-L6-v2', query='cat', layers=6, heads=12, tokens=6)"
