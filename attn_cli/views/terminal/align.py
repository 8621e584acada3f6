"""The Rich view of `AlignResult`: the target × source heat table, then the alignment."""

from __future__ import annotations

from rich.table import Table as RichTable
from rich.text import Text

from ...compute.align import AlignResult
from ..palette import weight_text
from ..text import printable
from .inspect import heat

CELL = 4  # " .63"


def align_view(result: AlignResult, width: int, colour: bool = True) -> list:
    """Rows: target units; columns: source units (as many as fit `width`, the rest in further
    blocks of columns); each cell the weight, coloured by it; the argmax of each row marked.
    Without colour, the marks (*) carry what colour would."""
    m = result.model
    head = "mean over heads" if result.head == "mean" else f"head {result.head}"
    parts: list = [
        Text.assemble((m.name, "bold magenta"), f" ({m.architecture}, {m.layers} decoder layers × {m.heads} heads) · cross-attention"),
        Text(f"Layer {result.layer} · {head} · rows: the target {result.level}s it writes · columns: the source's", style="bold underline"),
    ]
    labels = [printable(u.label or u.text) for u in result.rows]
    label_width = min(max((len(s) for s in labels), default=4), 16)
    per_block = max(1, (width - label_width - 1) // (CELL + 1))
    best = {a.target: a.source for a in result.alignment}
    for first in range(0, len(result.columns), per_block):
        block = range(first, min(first + per_block, len(result.columns)))
        table = RichTable(box=None, show_edge=False, pad_edge=False, padding=(0, 0), header_style="dim")
        table.add_column("", no_wrap=True, overflow="crop", max_width=label_width, min_width=label_width)
        for j in block:
            name = printable(result.columns[j].label or result.columns[j].text)
            table.add_column(Text(name[: CELL + 1], style="dim" if result.columns[j].special else "bold"), justify="right", width=CELL + 1, no_wrap=True)
        for i, label in enumerate(labels):
            cells = []
            for j in block:
                w = float(result.weights[i, j])
                mark = "*" if best.get(i) == j and not colour else " "
                cells.append(Text(mark + weight_text(w), style=heat(w) if colour else ("bold" if best.get(i) == j else "")))
            table.add_row(Text(label[:label_width], style="dim" if result.rows[i].special else "bold cyan"), *cells)
        if first:
            parts.append(Text(""))
        parts.append(table)
    parts.append(Text("\nAlignment (each target word → the source word it weighs most)", style="bold underline"))
    for a in result.alignment:
        parts.append(Text.assemble(
            (f"  {labels[a.target]}", "bold cyan"), " → ", (printable(result.columns[a.source].label or result.columns[a.source].text), "bold"),
            (f" {a.weight:.2f}", "dim"),
        ))
    left_out = "" if result.include_special else "; special tokens (</s>, <s>) left out of the alignment (--special keeps them)"
    parts.append(Text(f"a row sums to 1 over the source{left_out}", style="dim"))
    return parts
