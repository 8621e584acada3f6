"""attn_cli.views.plot: heat maps as PNG, SVG and HTML. Pixels are read back and checked against the
colour map at the cells' computed centres; writes are checked to be all-or-nothing."""

from __future__ import annotations

import builtins
import importlib.util
import os
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from attn_cli.errors import AttnError, InputError, MissingExtra
from attn_cli.views import plot
from attn_cli.views.palette import heat_rgb, weight_text
from attn_cli.views.plot import cell_centres, heatmap_figure, write_heatmap

needs_mpl = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")

# 3 × 4: cell (0, 1) hot, (2, 3) cold, (1, 2) masked; row 1 is the query.
VALUES = np.array([[0.02, 0.95, 0.30, 0.10], [0.40, 0.05, 0.50, 0.05], [0.25, 0.25, 0.50, 0.0]])
MASKED = np.zeros((3, 4), bool)
MASKED[1, 2] = True
ROWS = ["<s>", "cat", "$x$"]  # markup and mathtext characters must come out literally
COLS = ["the", "cat", "sat", "down"]
ARGS = dict(values=VALUES, row_labels=ROWS, col_labels=COLS, title="layer 2 · head 5", highlight_rows={1}, masked=MASKED)
DARK_BLUE, GREY = (20, 24, 48), (154, 154, 154)


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image  # a dependency of matplotlib

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _close(pixel, rgb, tol: int = 4) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel) - np.asarray(rgb)) <= tol))


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """The PNG of ARGS without cell text, and the centres of its cells (from the same layout)."""
    path = tmp_path_factory.mktemp("png") / "grid.png"
    write_heatmap(path, **ARGS, cell_text=False)
    fig = heatmap_figure(**ARGS, cell_text=False)
    return path, _rgb(path), cell_centres(fig), fig


# ---- colour map -------------------------------------------------------------------------------


def test_colour_map_is_the_terminals():
    from attn_cli.views.terminal.inspect import heat

    for w in np.linspace(0, 1, 101):
        assert heat_rgb(float(w)) == heat(float(w)).bgcolor.get_truecolor()
    assert heat_rgb(0.0) == DARK_BLUE and heat_rgb(1.0) == (250, 220, 80)
    assert heat_rgb(-1.0) == heat_rgb(0.0) and heat_rgb(2.0) == heat_rgb(1.0)


def test_weight_text_is_three_characters():
    assert [weight_text(w) for w in (0.0, 0.05, 0.634, 0.994, 0.995, 1.0)] == [".00", ".05", ".63", ".99", "1.0", "1.0"]


# ---- PNG --------------------------------------------------------------------------------------


@needs_mpl
def test_png_size_matches_the_figure_and_grows_with_the_grid(drawn):
    path, image, centres, fig = drawn
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = image.shape
    assert (width, height) == (round(fig.bbox.width), round(fig.bbox.height))
    assert 300 <= width <= 1200 and 250 <= height <= 1000
    big = heatmap_figure(np.full((30, 30), 0.1), [f"t{i}" for i in range(30)], [f"t{i}" for i in range(30)], "big")
    assert big.bbox.width > 2 * width and big.bbox.height > 2 * height


@needs_mpl
def test_png_is_not_blank(drawn):
    _, image, _, _ = drawn
    colours = {tuple(p) for p in image.reshape(-1, 3)[::7]}
    assert len(colours) > 20
    white = np.all(image == 255, axis=2).mean()
    assert 0.2 < white < 0.9  # margins and labels around a coloured grid


@needs_mpl
def test_png_cells_have_their_colours_at_their_centres(drawn):
    _, image, centres, _ = drawn
    (rows, cols, _), (height, width, _) = centres.shape, image.shape
    assert (rows, cols) == VALUES.shape
    assert np.all((centres[..., 0] > 0) & (centres[..., 0] < width) & (centres[..., 1] > 0) & (centres[..., 1] < height))

    def at(r, c):
        x, y = centres[r, c]
        return image[int(y), int(x)]

    hot, cold = at(0, 1), at(2, 3)
    assert hot[0] > 200 and hot[0] > hot[2] + 80  # warm: red/yellow
    assert max(cold) < 60 and cold[2] > cold[0]  # dark blue
    for r in range(rows):
        for c in range(cols):
            expected = GREY if MASKED[r, c] else heat_rgb(VALUES[r, c])
            assert _close(at(r, c), expected), (r, c, at(r, c), expected)
    # Row 0 is on top and columns run left to right, as in the table.
    assert centres[0, 0, 1] < centres[1, 0, 1] < centres[2, 0, 1]
    assert centres[0, 0, 0] < centres[0, 1, 0] < centres[0, 3, 0]


@needs_mpl
def test_png_cell_text_is_drawn_on_the_cells_and_can_be_turned_off(drawn, tmp_path):
    _, plain, centres, _ = drawn
    path = write_heatmap(tmp_path / "text.png", **ARGS)
    with_text = _rgb(path)
    assert with_text.shape == plain.shape

    def light_pixels(image, r, c):  # near-white pixels in the middle of cell (r, c)
        x, y = centres[r, c].astype(int)
        window = image[y - 4 : y + 5, x - 10 : x + 11]
        return int(np.all(window > 180, axis=2).sum())

    assert light_pixels(with_text, 2, 3) > 3  # white ".00" on dark blue
    assert light_pixels(plain, 2, 3) == 0
    assert light_pixels(with_text, 1, 2) == 0  # masked: grey, no number


@needs_mpl
def test_figure_labels_text_and_query_row(monkeypatch):
    fig = heatmap_figure(**ARGS)
    ax = next(a for a in fig.axes if a.get_label() == plot._AXES_LABEL)
    labels = ax.get_yticklabels()
    assert [t.get_text() for t in labels] == ["<s>", "cat", r"\$x\$"]  # escaped: no mathtext
    assert [t.get_fontweight() for t in labels] == ["normal", "bold", "normal"]
    assert [t.get_text() for t in ax.get_xticklabels()] == COLS
    assert sorted(t.get_text() for t in ax.texts) == sorted(weight_text(v) for v in VALUES[~MASKED])
    monkeypatch.setattr(plot, "MAX_ANNOTATED", 3)  # a 3 × 4 grid is now "too big" for numbers
    assert len(heatmap_figure(**ARGS).axes[0].texts) == 0


@needs_mpl
def test_png_and_svg_are_byte_for_byte_reproducible(tmp_path):
    small = dict(ARGS, values=VALUES[:2, :2], row_labels=ROWS[:2], col_labels=COLS[:2], masked=None, highlight_rows=set())
    for ext in ("png", "svg"):
        a = write_heatmap(tmp_path / f"a.{ext}", **small).read_bytes()
        b = write_heatmap(tmp_path / f"b.{ext}", **small).read_bytes()
        assert a == b and len(a) > 1000


# ---- SVG --------------------------------------------------------------------------------------


@needs_mpl
def test_svg_is_xml_with_labels_as_text(tmp_path):
    path = write_heatmap(tmp_path / "grid.SVG", **ARGS)  # the extension's case does not matter
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for label in [*ROWS, *COLS, "layer 2 · head 5", ".95", "weight"]:
        assert label in texts, label
    bold = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if "font-weight: 700" in t.get("style", "")]
    assert bold == ["cat"]
    assert root.find("{http://www.w3.org/2000/svg}title").text == "layer 2 · head 5"


# ---- HTML -------------------------------------------------------------------------------------


class _Cells(HTMLParser):
    """Collects <td class="cell ..."> (classes, style, text) and row headers (class, text)."""

    def __init__(self):
        super().__init__()
        self.cells, self.rows, self._open = [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "cell" in a.get("class", "").split():
            self._open = {"class": a["class"].split(), "style": a.get("style", ""), "text": ""}
            self.cells.append(self._open)
        elif tag == "th" and "row" in a.get("class", "").split():
            self._open = {"class": a["class"].split(), "text": ""}
            self.rows.append(self._open)

    def handle_endtag(self, tag):
        self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data


def _parse_html(text: str) -> _Cells:
    parser = _Cells()
    parser.feed(text)
    return parser


def test_html_has_one_coloured_cell_per_value(tmp_path):
    values = VALUES.copy()
    values[0, 0], values[2, 3] = 1.0, 0.0
    path = write_heatmap(tmp_path / "grid.html", **dict(ARGS, values=values))
    page = _parse_html(path.read_text(encoding="utf-8"))
    assert len(page.cells) == values.size
    cell = {(i // 4, i % 4): c for i, c in enumerate(page.cells)}
    assert "background:#fadc50" in cell[0, 0]["style"] and "color:#000" in cell[0, 0]["style"]
    assert cell[0, 0]["text"] == "1.0"
    assert "background:#141830" in cell[2, 3]["style"] and "color:#fff" in cell[2, 3]["style"]
    assert cell[2, 3]["text"] == ".00"
    assert f"background:{plot._hex(heat_rgb(0.3))}" in cell[0, 2]["style"] and cell[0, 2]["text"] == ".30"
    assert "masked" in cell[1, 2]["class"] and cell[1, 2]["text"] == "" and "#9a9a9a" in cell[1, 2]["style"]
    assert [r["text"] for r in page.rows] == ROWS  # "<s>" escaped, "$x$" verbatim
    assert ["query" in r["class"] for r in page.rows] == [False, True, False]


def test_html_is_self_contained(tmp_path):
    text = write_heatmap(tmp_path / "grid.html", **ARGS).read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "http" not in text and "<script" not in text.lower() and "@import" not in text and "url(" not in text
    assert "&lt;s&gt;" in text and "<s>" not in text


def test_html_cell_text_off_and_large_grids_without_numbers(tmp_path):
    page = _parse_html(write_heatmap(tmp_path / "a.html", **ARGS, cell_text=False).read_text(encoding="utf-8"))
    assert [c["text"] for c in page.cells] == [""] * VALUES.size
    n = 41
    big = write_heatmap(tmp_path / "b.html", np.full((n, n), 0.5), [str(i) for i in range(n)], [str(i) for i in range(n)], "t")
    page = _parse_html(big.read_text(encoding="utf-8"))
    assert len(page.cells) == n * n and {c["text"] for c in page.cells} == {""}


def test_html_needs_no_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    path = write_heatmap(tmp_path / "grid.html", **ARGS)
    assert len(_parse_html(path.read_text(encoding="utf-8")).cells) == VALUES.size


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("block", ["sys.modules", "__import__"])
def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch, block):
    if block == "sys.modules":
        monkeypatch.setitem(sys.modules, "matplotlib", None)
    else:
        real = builtins.__import__

        def fake(name, *args, **kwargs):
            if name == "matplotlib" or name.startswith("matplotlib."):
                raise ImportError(f"No module named {name!r}")
            return real(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(MissingExtra) as caught:
        write_heatmap(tmp_path / "grid.png", **ARGS)
    err = caught.value
    assert isinstance(err, AttnError) and err.code == "missing_extra"
    assert err.message == "matplotlib is not installed"
    assert "attn-cli[plot]" in err.fix and "--extra plot" in err.fix
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["grid.pdf", "grid", "grid.png.bak"])
def test_unknown_extension_names_the_supported_ones(tmp_path, name):
    with pytest.raises(InputError) as caught:
        write_heatmap(tmp_path / name, **ARGS)
    assert ".png, .svg, .html" in caught.value.fix
    assert _leftovers(tmp_path) == []


def test_missing_directory_is_an_input_error_with_a_fix(tmp_path):
    target = tmp_path / "no" / "such" / "grid.html"
    with pytest.raises(InputError) as caught:
        write_heatmap(target, **ARGS)
    assert "does not exist" in caught.value.message and f"mkdir -p {target.parent}" in caught.value.fix
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is not a directory"):
        write_heatmap(tmp_path / "file" / "grid.html", **ARGS)
    (tmp_path / "dir.html").mkdir()
    with pytest.raises(InputError, match="it is a directory"):
        write_heatmap(tmp_path / "dir.html", **ARGS)


def test_inconsistent_shapes_are_caller_bugs():
    with pytest.raises(ValueError, match="labels"):
        plot.heatmap_html(VALUES, ROWS[:2], COLS, "t")
    with pytest.raises(ValueError, match="masked"):
        plot.heatmap_html(VALUES, ROWS, COLS, "t", masked=np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="highlight_rows"):
        plot.heatmap_html(VALUES, ROWS, COLS, "t", highlight_rows={3})
    with pytest.raises(ValueError, match="2-D"):
        plot.heatmap_html(np.zeros(3), ROWS, COLS, "t")


# ---- atomic writes ----------------------------------------------------------------------------


@needs_mpl
def test_a_failed_drawing_leaves_no_file(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(plot, "heatmap_figure", boom)
    with pytest.raises(RuntimeError, match="drawing failed"):
        write_heatmap(tmp_path / "grid.png", **ARGS)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_write_interrupted_halfway_keeps_the_old_file(tmp_path, monkeypatch, error):
    target = tmp_path / "grid.html"
    target.write_text("old plot")
    real = plot.write_file

    def half_then_fail(path, write, force=False):
        def partial(f):
            f.write(b"<!DOCTYPE html><html><body><table>")  # half a page already on disk...
            raise error  # ...then the write dies

        return real(path, partial, force)

    monkeypatch.setattr(plot, "write_file", half_then_fail)
    from attn_cli.errors import OutputFailed

    with pytest.raises(OutputFailed if isinstance(error, OSError) else type(error)):  # a failed write is reported, exit 7
        write_heatmap(target, **ARGS)
    assert _leftovers(tmp_path) == ["grid.html"]
    assert target.read_text() == "old plot"


def test_a_new_file_gets_ordinary_permissions_and_replaces_the_old(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_heatmap(tmp_path / "grid.html", **ARGS)
    finally:
        os.umask(umask)
    assert path == tmp_path / "grid.html"
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's owner-only 0o600
    path.chmod(0o640)
    write_heatmap(path, **dict(ARGS, title="second"))
    assert path.stat().st_mode & 0o777 == 0o640 and "second" in path.read_text(encoding="utf-8")
    assert _leftovers(tmp_path) == ["grid.html"]
