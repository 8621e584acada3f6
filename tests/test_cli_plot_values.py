"""`attn plot`'s options through the CLI: the picture holds transformers' weights (read back
from the HTML cells' titles and from the PNG's pixels), not just some colour of the map."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from option_registry import TINY, covers, invoke, ref

from attn_cli.views.palette import heat_rgb

needs_mpl = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
CELL = re.compile(r'<td class="cell[^"]*"[^>]*title="([^"]*)"')


def html_cells(path) -> list[list[float | None]]:
    """The grid of an HTML plot: each row's cells, the weight in its title (None if masked)."""
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", path.read_text(encoding="utf-8"), re.S):
        cells = CELL.findall(tr)
        if cells:
            rows.append([None if t.endswith(": masked") else float(t.rsplit(": ", 1)[1]) for t in cells])
    return rows


@covers("plot TEXT", "plot --output", "plot --query-index", "plot --layer", "plot --model")
def test_html_cells_are_the_query_row_of_every_head(tmp_path):
    r = ref("gpt2", 1)
    out = tmp_path / "p.html"
    assert invoke("plot", str(r["text"]), "-m", str(TINY / "gpt2"), "-i", "3", "--layer", "0", "--static", "-o", str(out)).stdout == f"{out}\n"
    cells = html_cells(out)
    assert len(cells) == 8 and all(len(row) == 5 for row in cells)  # tokens × (heads + mean)
    for j, row in enumerate(cells):
        if j > 3:
            assert row == [None] * 5  # the future is masked
            continue
        want = [*r["attentions"][0, :, 3, j], r["attentions"][0, :, 3, j].mean()]
        assert np.allclose(row, want, atol=6e-5), (j, row, want)


@covers("plot --query", "plot --level")
def test_html_word_level_sums_split_words(tmp_path):
    r = ref("llama", 1)  # "Every" is tokens 1 and 2
    out = tmp_path / "p.html"
    invoke("plot", str(r["text"]), "-m", str(TINY / "llama"), "-q", "looks", "--level", "word", "--static", "-o", str(out))
    cells = html_cells(out)
    groups = [[0], [1, 2], *[[j] for j in range(3, 10)]]
    assert len(cells) == len(groups)
    for row, g in zip(cells, groups):
        if g[0] > 4:
            assert row == [None] * 5
            continue
        per_head = r["attentions"][1][:, 4][:, g].sum(axis=-1)  # (heads,)
        want = [*per_head, per_head.mean()]
        assert np.allclose(row, want, atol=6e-5)


@covers("plot --view", "plot --key", "plot --metric")
def test_grid_view_weight_and_entropy(tmp_path):
    r = ref("bert", 0)
    out = tmp_path / "g.html"
    invoke("plot", str(r["text"]), "-m", str(TINY / "bert"), "-q", "sat", "--view", "grid", "--metric", "weight", "--key", "cat", "--static", "-o", str(out))
    assert np.allclose(html_cells(out), r["attentions"][:, :, 3, 2], atol=6e-5)
    invoke("plot", str(r["text"]), "-m", str(TINY / "bert"), "-q", "sat", "--view", "grid", "--metric", "entropy", "--static", "-o", str(out))
    p = r["attentions"][:, :, 3].astype(np.float64)
    h = -(p * np.log(p)).sum(axis=-1)
    # focus = 1 - H / ln(keys the query sees): 1 is one-hot, 0 uniform (an encoder sees them all)
    assert np.allclose(html_cells(out), 1 - h / np.log(p.shape[-1]), atol=6e-5)


@needs_mpl
def test_png_pixels_are_the_weights_colours(tmp_path):
    from PIL import Image

    from attn_cli.views.plot import cell_centres, heatmap_figure

    r = ref("gpt2", 0)
    out = tmp_path / "p.png"
    invoke("plot", str(r["text"]), "-m", str(TINY / "gpt2"), "-i", "3", "--layer", "1", "-o", str(out))
    want = np.column_stack([r["attentions"][1, :, 3].T, r["attentions"][1, :, 3].mean(axis=0)])  # (tokens, heads + mean)
    # Only the geometry is taken from the figure: where each cell's centre lands in the image
    # (with the plot's own row labels, whose width sets the left margin).
    from attn_cli.loading.model import load_model
    from attn_cli.loading.tokenizer import tokenize

    labels = [t.text for t in tokenize(load_model(TINY / "gpt2").tokenizer, str(r["text"])).tokens]
    centres = cell_centres(heatmap_figure(want, labels, ["0", "1", "2", "3", "mean"], 'gpt2 · layer 1: weights of "." in every head', {3}))
    with Image.open(out) as im:
        image = np.asarray(im.convert("RGB")).astype(int)
    assert abs(image.shape[1] - 2 * centres[0, 0, 0]) > 0  # the figure really was laid out
    step = np.array([centres[0, 1, 0] - centres[0, 0, 0], centres[1, 0, 1] - centres[0, 0, 1]])  # one cell, in pixels
    spread = 0
    for t in range(4):
        for c in range(5):
            x, y = centres[t, c] - 0.3 * step  # off the centre, where the cell's number is drawn
            pixel = image[int(y), int(x)]
            assert np.abs(pixel - np.array(heat_rgb(want[t, c]))).max() <= 12, (t, c, pixel, heat_rgb(want[t, c]))
            spread = max(spread, abs(want[t, c] - want[0, 0]))
    assert spread > 0.3  # the weights differ enough that 1 − weight would show
