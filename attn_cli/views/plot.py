"""Heat maps of attention weights as files: PNG and SVG through matplotlib (the `plot` extra),
HTML as a hand-built table that needs nothing but the standard library.

Pure drawing: a grid of weights in [0, 1] and its labels in, a file out. What the rows and
columns mean (tokens, heads, layers) is the caller's business. The colours are the terminal's
(`render.heat`): dark blue at 0, red, yellow at 1, with a square-root spread.
"""

from __future__ import annotations

import html
import math
import sys
import textwrap
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from ..errors import InputError, MissingExtra
from .files import _destination, write_file
from .palette import heat_rgb, text_is_dark, weight_text

if TYPE_CHECKING:  # matplotlib is optional: imported only when a PNG or SVG is drawn
    from matplotlib.figure import Figure

FORMATS = (".png", ".svg", ".html")
DPI = 100
MAX_ANNOTATED = 40  # cells carry their weight as text only up to 40 × 40: beyond, it is noise
_VECTOR_CELLS = 10_000

_MASKED_RGB = (154, 154, 154)
_AXES_LABEL = "attn-heatmap"  # finds the grid's axes again, whatever else the figure holds
_LABEL_CHARS = 18  # longer labels are cut, like the terminal's token column


def write_heatmap(
    path: Path,
    values: np.ndarray,
    row_labels: list[str],
    col_labels: list[str],
    title: str,
    highlight_rows: Collection[int] = frozenset(),
    masked: np.ndarray | None = None,
    cell_text: bool = True,
    legend: str = "weight",
    force: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Write the heat map of `values` (rows, cols) to `path`, in the format its extension names
    (.png, .svg, .html). `masked` (rows, cols) bool marks cells drawn grey with no number (NaN
    values are masked too); `highlight_rows` get bold labels. The file appears whole or not at
    all. `legend` names what the colour measures. A symlink is written through (its target is
    replaced); a read-only file is refused unless `force`. Characters that no font on the system
    has are named once through `warn` (PNG and SVG; see `fonts`). Returns `path`."""
    path = Path(path)
    suffix = _format(path)
    _destination(path, force)  # a path that names no file fails before anything is drawn
    if suffix == ".html":
        page = heatmap_html(values, row_labels, col_labels, title, highlight_rows, masked, cell_text, legend)
        return write_file(path, lambda f: f.write(page.encode("utf-8")), force)
    _matplotlib()  # before any file exists: a missing extra leaves nothing behind
    from . import fonts

    families, missing = fonts.choose([title, *row_labels, *col_labels])
    if missing and warn is not None:
        warn(fonts.missing_message(missing, path))

    def draw(f: IO[bytes]) -> None:
        with _style(families), fonts.quiet():
            fig = heatmap_figure(values, row_labels, col_labels, title, highlight_rows, masked, cell_text, legend)
            # No date and no version stamp, so the same grid gives the same bytes.
            metadata = {"Title": title, "Software": None} if suffix == ".png" else {"Title": title, "Date": None}
            fig.savefig(f, format=suffix[1:], dpi=fig.dpi, metadata=metadata)

    return write_file(path, draw, force)


def heatmap_figure(
    values: np.ndarray,
    row_labels: list[str],
    col_labels: list[str],
    title: str,
    highlight_rows: Collection[int] = frozenset(),
    masked: np.ndarray | None = None,
    cell_text: bool = True,
    legend: str = "weight",
) -> Figure:
    """The matplotlib Figure `write_heatmap` saves as PNG or SVG (same arguments), laid out and
    ready to save at `fig.dpi`. Raises MissingExtra without matplotlib."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    from . import fonts

    weights, hidden = _checked(values, row_labels, col_labels, masked, highlight_rows)
    rows, cols = weights.shape
    cell, font = _cell_inches(rows, cols), _font_points(rows, cols)
    xrot = 0 if max(map(len, col_labels)) <= 3 else 45
    width, height = _figsize(rows, cols, cell, font, row_labels, col_labels, xrot)
    families, _ = fonts.choose([title, *row_labels, *col_labels])
    with _style(families), fonts.quiet():
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)  # our own canvas: pyplot and its global figure list are never involved
        ax = fig.add_subplot(label=_AXES_LABEL)
        colours = [np.array(heat_rgb(x)) / 255 for x in np.linspace(0, 1, 1024)]
        cmap = ListedColormap(colours).with_extremes(bad=np.array(_MASKED_RGB) / 255)
        # pcolormesh, not imshow: SVG gets one vector square per cell instead of an embedded
        # bitmap (rasterized past _VECTOR_CELLS, where the squares would weigh megabytes).
        seams = max(rows, cols) <= MAX_ANNOTATED  # white seams between cells big enough to have them
        mesh = ax.pcolormesh(
            np.arange(cols + 1) - 0.5,
            np.arange(rows + 1) - 0.5,
            np.ma.masked_array(weights, hidden),
            cmap=cmap,
            vmin=0,
            vmax=1,
            edgecolors="white" if seams else "face",
            linewidth=1 if seams else 0,
            rasterized=rows * cols > _VECTOR_CELLS,
        )
        ax.set_xlim(-0.5, cols - 0.5)
        ax.set_ylim(rows - 0.5, -0.5)  # row 0 at the top, as in a table
        ax.set_xticks(range(cols), labels=[_tick_label(s) for s in col_labels], fontsize=font)
        ax.set_yticks(range(rows), labels=[_tick_label(s) for s in row_labels], fontsize=font)
        if xrot:
            ax.tick_params(axis="x", labelrotation=xrot)
            for label in ax.get_xticklabels():
                label.set(ha="right", rotation_mode="anchor")
        for i in highlight_rows:
            ax.get_yticklabels()[i].set_fontweight("bold")
        ax.tick_params(length=0)
        ax.spines[:].set_visible(False)
        if cell_text and rows <= MAX_ANNOTATED and cols <= MAX_ANNOTATED:
            _annotate(ax, weights, hidden, font)
        ax.set_title(_wrapped(title, width, font + 2).replace("$", r"\$"), fontsize=font + 2, loc="left")
        # A bar about 0.2 in wide that spans the grid's full height, however tall the grid.
        bar = fig.colorbar(mesh, ax=ax, fraction=min(0.15, 0.6 / width), aspect=max(20.0, rows * cell / 0.2), pad=0.02)
        bar.set_ticks([0, 0.25, 0.5, 0.75, 1], labels=["0", ".25", ".5", ".75", "1"])
        bar.ax.tick_params(labelsize=font)
        bar.set_label(legend, fontsize=font)
        fig.tight_layout()
        fig.set_layout_engine("none")  # freeze it: savefig must not lay out again, or cell_centres could lie
    return fig


def cell_centres(fig: Figure) -> np.ndarray:
    """(rows, cols, 2): the pixel (x, y) of each cell's centre in the PNG of `fig` saved at
    `fig.dpi`, measured from the image's top-left corner; cell (r, c) is image[int(y), int(x)]."""
    ax = next(a for a in fig.axes if a.get_label() == _AXES_LABEL)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    rows, cols = round(y0 - y1), round(x1 - x0)  # the limits are the grid's outer edges
    c, r = np.meshgrid(np.arange(cols), np.arange(rows))
    xy = ax.transData.transform(np.column_stack([c.ravel(), r.ravel()]))  # cell (r, c) is centred on (c, r)
    xy[:, 1] = fig.bbox.height - xy[:, 1]  # display y grows upwards, image rows downwards
    return xy.reshape(rows, cols, 2)


def heatmap_html(
    values: np.ndarray,
    row_labels: list[str],
    col_labels: list[str],
    title: str,
    highlight_rows: Collection[int] = frozenset(),
    masked: np.ndarray | None = None,
    cell_text: bool = True,
    legend: str = "weight",
) -> str:
    """One self-contained HTML page: a table whose cells carry their colour inline. No script,
    no external link, so it opens anywhere, offline, and can be mailed as is."""
    weights, hidden = _checked(values, row_labels, col_labels, masked, highlight_rows)
    rows, cols = weights.shape
    show_text = cell_text and rows <= MAX_ANNOTATED and cols <= MAX_ANNOTATED
    e = html.escape
    head = "".join(f'<th class="col" title="{e(s)}">{e(_short(s))}</th>' for s in col_labels)
    body = []
    for r in range(rows):
        cls = "row query" if r in highlight_rows else "row"
        cells = [f'<th class="{cls}" title="{e(row_labels[r])}">{e(_short(row_labels[r]))}</th>']
        for c in range(cols):
            where = f"{e(row_labels[r])} · {e(col_labels[c])}"
            if hidden[r, c]:
                cells.append(f'<td class="cell masked" style="background:{_hex(_MASKED_RGB)}" title="{where}: masked"></td>')
                continue
            w = float(weights[r, c])
            style = f"background:{_hex(heat_rgb(w))};color:{'#000' if text_is_dark(w) else '#fff'}"
            text = weight_text(w) if show_text else ""
            cells.append(f'<td class="cell" style="{style}" title="{where}: {w:.4f}">{text}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    stops = ", ".join(f"{_hex(heat_rgb(x))} {x * 100:g}%" for x in np.linspace(0, 1, 21))
    return _PAGE.format(title=e(title), head=head, body="\n".join(body), stops=stops, size="2.6em" if show_text else "1.2em", legend=e(legend))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }}
h1 {{ font-size: 1.1em; font-weight: 600; }}
table {{ border-collapse: separate; border-spacing: 1px; }}
th {{ font-weight: normal; font-size: 12px; white-space: nowrap; }}
th.row {{ text-align: right; padding-right: 0.5em; }}
th.query {{ font-weight: bold; }}
th.col {{ writing-mode: vertical-rl; transform: rotate(180deg); text-align: left; padding-top: 0.4em; }}
td.cell {{ min-width: {size}; height: 1.6em; text-align: center; font: 11px ui-monospace, monospace; }}
.legend {{ display: flex; align-items: center; gap: 0.5em; margin-top: 1em; font-size: 12px; }}
.legend .bar {{ width: 16em; height: 0.9em; background: linear-gradient(to right, {stops}); }}
.legend .masked {{ width: 0.9em; height: 0.9em; background: #9a9a9a; margin-left: 1em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<table>
<thead><tr><th></th>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<div class="legend"><span>0</span><span class="bar"></span><span>1 ({legend})</span><span class="masked"></span><span>masked</span></div>
</body>
</html>
"""


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        got = f'"{path.suffix}"' if path.suffix else "no extension"
        raise InputError(f"cannot write a heat map to {path.name}: {got}", f"end the file name in one of {', '.join(FORMATS)}")
    return suffix


def _matplotlib():
    """The matplotlib module, or MissingExtra naming the extra that provides it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtra("matplotlib is not installed", "install the plot extra: pip install 'attn-cli[plot]' (or uv sync --extra plot)") from exc
    # We draw on an Agg canvas of our own, so the backend only matters in keeping any GUI toolkit
    # unimported. Switching it under a live pyplot session would close the user's figures.
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    return matplotlib


def _style(families: list[str] | None = None):
    """matplotlib's defaults, not the user's matplotlibrc, so a grid always looks (and hashes)
    the same; SVG text stays text (searchable, selectable) and its ids stay stable. `families`:
    the fonts to draw with, in order (`fonts.choose`)."""
    from matplotlib import style  # a submodule: `import matplotlib` alone does not load it

    return style.context(["default", {"svg.fonttype": "none", "svg.hashsalt": "attn", "font.family": families or ["DejaVu Sans"]}])


def _checked(values, row_labels, col_labels, masked, highlight_rows) -> tuple[np.ndarray, np.ndarray]:
    """(weights clipped to [0, 1] with hidden cells at 0, hidden (rows, cols) bool); ValueError
    on shapes that disagree, which is a bug in the caller rather than bad user input."""
    weights = np.asarray(values, dtype=np.float64)
    if weights.ndim != 2 or 0 in weights.shape:
        raise ValueError(f"values must be a non-empty 2-D array, got shape {weights.shape}")
    rows, cols = weights.shape
    if (len(row_labels), len(col_labels)) != (rows, cols):
        raise ValueError(f"{len(row_labels)} row and {len(col_labels)} column labels for a {rows} × {cols} grid")
    hidden = np.isnan(weights)
    if masked is not None:
        masked = np.asarray(masked, dtype=bool)
        if masked.shape != weights.shape:
            raise ValueError(f"masked has shape {masked.shape}, values {weights.shape}")
        hidden |= masked
    if any(not 0 <= i < rows for i in highlight_rows):
        raise ValueError(f"highlight_rows {sorted(highlight_rows)} out of range for {rows} rows")
    return np.where(hidden, 0.0, np.clip(np.nan_to_num(weights), 0.0, 1.0)), hidden


def _cell_inches(rows: int, cols: int) -> float:
    """Cells big enough for '.63' up to 40 × 40, smaller beyond so a long text stays a few
    thousand pixels wide."""
    return max(0.12, min(0.45, 18 / max(rows, cols)))


def _font_points(rows: int, cols: int) -> float:
    return max(5.0, min(10.0, _cell_inches(rows, cols) * 72 * 0.6))


def _figsize(rows, cols, cell, font, row_labels, col_labels, xrot) -> tuple[float, float]:
    """A first guess (inches) that keeps cells about square once tight_layout has fitted the
    labels; rounded to whole pixels so the PNG is exactly width × height."""
    char = font * 0.62 / 72  # inches per character, roughly, in DejaVu Sans
    longest_col = max(len(_short(s)) for s in col_labels)
    left = max(len(_short(s)) for s in row_labels) * char + 0.3
    bottom = (longest_col * char * math.sin(math.radians(xrot)) if xrot else char) + 0.4
    width = max(4.0, left + cols * cell + 1.2)  # 1.2: colour bar and its labels
    height = max(3.0, bottom + rows * cell + 0.7)  # 0.7: the title
    return round(width * DPI) / DPI, round(height * DPI) / DPI


def _annotate(ax, weights: np.ndarray, hidden: np.ndarray, font: float) -> None:
    rows, cols = weights.shape
    for r in range(rows):
        for c in range(cols):
            if hidden[r, c]:
                continue
            w = float(weights[r, c])
            ax.text(c, r, weight_text(w), ha="center", va="center", fontsize=font - 1, color="black" if text_is_dark(w) else "white")


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…"


def _tick_label(label: str) -> str:
    """Cut, and with "$" escaped: two dollars in a token would otherwise turn on mathtext."""
    return _short(label).replace("$", r"\$")


def _wrapped(title: str, width_inches: float, font: float) -> str:
    return textwrap.fill(title, width=max(30, int(width_inches * 72 / (font * 0.6))))


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)
