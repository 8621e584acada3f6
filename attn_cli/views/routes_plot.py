"""The routes graph as a picture (`attn routes -o FILE`): .svg or self-contained .html, written
without matplotlib; .png through matplotlib (attn-cli[plot]). One drawing, two back ends.

Layout, as the LLM Transparency Tool draws it: a column per position the routes touch, in text
order; rows from the bottom: the token embeddings, then per layer its attention sum and its
output. Attention edges run from a source's row into the target's attention sum, residual
edges straight up, each feed-forward is a square beside the column between the two; the
stroke grows with the edge's weight."""

from __future__ import annotations

import html
from pathlib import Path

from ..compute.routes import RoutesResult
from ..errors import InputError
from .plot import _matplotlib, write_file
from .text import printable

FORMATS = (".svg", ".html", ".png")
COLOURS = {"attention": "#d9480f", "residual": "#868e96", "ffn": "#1c7ed6"}
COL, ROW, LEFT, BOTTOM, TOP = 56, 30, 64, 110, 40  # pixels


def write_routes(result: RoutesResult, path: Path, force: bool = False) -> Path:
    """Write the routes picture to `path` (its extension picks the format); the path written."""
    suffix = check_format(path)
    shapes, width, height = drawing(result)
    if suffix == ".png":
        _matplotlib()  # MissingExtra without attn-cli[plot]
        return write_file(path, lambda f: _png(shapes, width, height, f), force)
    svg = _svg(shapes, width, height)
    if suffix == ".html":
        title = html.escape(f"attn routes · {result.model.name} · {printable(result.tokenization.tokens[result.position].text)}")
        svg = f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n<body style="margin:0">\n{svg}\n</body></html>\n'
    return write_file(path, lambda f: f.write(svg.encode()), force)


def check_format(path: Path) -> str:
    """The file's format (its lower-case extension); InputError for one attn does not write."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        got = f'"{path.suffix}"' if path.suffix else "no extension"
        raise InputError(f"cannot write the routes to {path.name}: {got}", f"end the file name in one of {', '.join(FORMATS)}")
    return suffix


def drawing(result: RoutesResult) -> tuple[list[tuple], int, int]:
    """(shapes, width, height): ("line", x1, y1, x2, y2, colour, width), ("node", x, y, colour),
    ("box", x, y, colour), ("text", x, y, text, anchor, rotate) in pixels, y downwards."""
    columns = sorted({p for e in result.edges for p in (e.source, e.target)} | {result.position})
    col = {p: LEFT + COL * (n + 0.5) for n, p in enumerate(columns)}
    levels = 2 * result.model.layers + 1
    width, height = int(LEFT + COL * len(columns) + 20), int(TOP + ROW * (levels - 1) + BOTTOM)

    def y(level: float) -> float:  # level 0 the embeddings, 2l + 1 layer l's attention sum, 2l + 2 its output
        return TOP + ROW * (levels - 1 - level)

    shapes: list[tuple] = []
    nodes: set[tuple[int, int]] = {(result.position, levels - 1)}
    for e in result.edges:
        stroke = 0.6 + 5.0 * e.weight
        low, mid, high = 2 * e.layer, 2 * e.layer + 1, 2 * e.layer + 2
        if e.into == "output":  # a parallel layer: every edge runs from the input straight to the output
            mid = low if e.kind != "attention" else high
        if e.kind == "attention" or e.into == "attention":
            shapes.append(("line", col[e.source], y(low), col[e.target], y(mid), COLOURS[e.kind], stroke))
            nodes |= {(e.source, low), (e.target, mid)}
        elif e.kind == "residual":
            shapes.append(("line", col[e.target], y(mid), col[e.target], y(high), COLOURS["residual"], stroke))
        else:
            box = (col[e.target] + COL * 0.3, y((mid + high) / 2))
            shapes += [("line", col[e.target], y(mid), *box, COLOURS["ffn"], stroke), ("line", *box, col[e.target], y(high), COLOURS["ffn"], stroke)]
            shapes.append(("box", *box, COLOURS["ffn"]))
    shapes += [("node", col[p], y(level), "#212529") for p, level in sorted(nodes)]
    for layer in range(result.model.layers):
        shapes.append(("text", LEFT - 8, y(2 * layer + 1.5) + 4, f"L{layer}", "end", 0))
    for p in columns:
        label = printable(result.tokenization.tokens[p].text)
        shapes.append(("text", col[p] + 4, y(0) + 14, f"{p} {label[:14]}", "end", -60))
    return shapes, width, height


def _svg(shapes: list[tuple], width: int, height: int) -> str:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for s in shapes:
        if s[0] == "line":
            ends = f'x1="{s[1]:.1f}" y1="{s[2]:.1f}" x2="{s[3]:.1f}" y2="{s[4]:.1f}"'
            out.append(f'<line {ends} stroke="{s[5]}" stroke-width="{s[6]:.2f}" stroke-opacity="0.75"/>')
        elif s[0] == "node":
            out.append(f'<circle cx="{s[1]:.1f}" cy="{s[2]:.1f}" r="3" fill="{s[3]}"/>')
        elif s[0] == "box":
            out.append(f'<rect x="{s[1] - 4:.1f}" y="{s[2] - 4:.1f}" width="8" height="8" fill="{s[3]}"/>')
        else:
            turn = f' transform="rotate({s[5]} {s[1]:.1f} {s[2]:.1f})"' if s[5] else ""
            out.append(f'<text x="{s[1]:.1f}" y="{s[2]:.1f}" text-anchor="{s[4]}"{turn}>{html.escape(s[3])}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _png(shapes: list[tuple], width: int, height: int, f) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    for s in shapes:
        if s[0] == "line":
            ax.plot([s[1], s[3]], [s[2], s[4]], color=s[5], linewidth=s[6] * 0.75, alpha=0.75, solid_capstyle="round")
        elif s[0] in ("node", "box"):
            ax.scatter([s[1]], [s[2]], s=12 if s[0] == "node" else 40, c=s[3], marker="o" if s[0] == "node" else "s", zorder=3)
        else:
            ax.text(s[1], s[2], s[3], ha="right" if s[4] == "end" else "left", rotation=-s[5], rotation_mode="anchor", fontsize=8)
    fig.savefig(f, format="png")
