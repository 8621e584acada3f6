"""The Rich view of `AlignResult`: the target × source heat table, then the alignment."""

from __future__ import annotations

from rich.table import Table as RichTable
from rich.text import Text

from ...compute.align import AlignResult
from ..palette import weight_text
from ..text import printable
from .fit import cut, width_of
from .inspect import heat

CELL = 4  # ".63": a weight, after the one-space gap
HEADER_MAX = 12  # a source word's header at most this wide, cut with … beyond


def _blocks(widths: list[int], room: int) -> list[range]:
    """Consecutive columns (each `widths[j]` plus a one-space gap) in blocks of at most `room`
    cells (at least one column a block)."""
    blocks, first, used = [], 0, 0
    for j, w in enumerate(widths):
        if j > first and used + w + 1 > room:
            blocks.append(range(first, j))
            first, used = j, 0
        used += w + 1
    return [*blocks, range(first, len(widths))] if widths else []


def header_plan(names: list[str], room: int) -> tuple[list[str], list[int], list[range]]:
    """The source words' headers, their column widths and the blocks of columns, for `room`
    cells beside the row labels. A column is as wide as its word (up to HEADER_MAX), so
    that headers never run together ("estassis"), unless that folds the table into more
    blocks than columns of CELL cells would: then words longer than CELL are cut with …
    (`cut_legend` names them whole)."""
    whole = [cut(n, HEADER_MAX) for n in names]
    wide = [max(CELL, width_of(n)) for n in whole]
    narrow = [CELL] * len(names)
    if len(_blocks(wide, room)) <= len(_blocks(narrow, room)):
        return whole, wide, _blocks(wide, room)
    return [cut(n, CELL) for n in names], narrow, _blocks(narrow, room)


def cut_legend(names: list[str], shown: list[str]) -> str | None:
    """`headers cut: ass… assis · tap… tapis`, for the headers shown shorter than their word."""
    pairs = dict.fromkeys(f"{s} {n}" for n, s in zip(names, shown) if s != n)
    return f"headers cut: {' · '.join(pairs)}" if pairs else None


def align_view(result: AlignResult, width: int, colour: bool = True) -> list:
    """Rows: target units; columns: source units (as many as fit `width`, the rest in further
    blocks of columns), each headed by its word, whole where the width allows; each cell the
    weight, coloured by it; the argmax of each row marked. Without colour, the marks (*)
    carry what colour would."""
    m = result.model
    head = "mean over heads" if result.head == "mean" else f"head {result.head}"
    parts: list = [
        Text.assemble((m.name, "bold magenta"), f" ({m.architecture}, {m.layers} decoder layers × {m.heads} heads) · cross-attention"),
        Text(f"Layer {result.layer} · {head} · rows: the target {result.level}s it writes · columns: the source's", style="bold underline"),
    ]
    labels = [printable(u.label or u.text) for u in result.rows]
    label_width = min(max((width_of(s) for s in labels), default=4), 16)
    names = [printable(c.label or c.text) for c in result.columns]
    shown, widths, blocks = header_plan(names, width - label_width)
    best = {a.target: a.source for a in result.alignment}
    for n, block in enumerate(blocks):
        table = RichTable(box=None, show_edge=False, pad_edge=False, padding=(0, 0), header_style="dim")
        table.add_column("", no_wrap=True, overflow="crop", max_width=label_width, min_width=label_width)
        for j in block:
            table.add_column(Text(shown[j], style="dim" if result.columns[j].special else "bold"), justify="right", width=widths[j] + 1, no_wrap=True)
        for i, label in enumerate(labels):
            cells = []
            for j in block:
                w = float(result.weights[i, j])
                mark = "*" if best.get(i) == j and not colour else " "
                cells.append(Text(mark + weight_text(w), style=heat(w) if colour else ("bold" if best.get(i) == j else "")))
            table.add_row(Text(cut(label, label_width), style="dim" if result.rows[i].special else "bold cyan"), *cells)
        if n:
            parts.append(Text(""))
        parts.append(table)
    if (legend := cut_legend(names, shown)) is not None:
        parts.append(Text(legend, style="dim"))
    parts.append(Text("\nAlignment (each target word → the source word it weighs most)", style="bold underline"))
    for a in result.alignment:
        parts.append(Text.assemble(
            (f"  {labels[a.target]}", "bold cyan"), " → ", (names[a.source], "bold"),
            (f" {a.weight:.2f}", "dim"),
        ))
    left_out = "" if result.include_special else "; special tokens (</s>, <s>) left out of the alignment (--special keeps them)"
    parts.append(Text(f"a row sums to 1 over the source{left_out}", style="dim"))
    return parts
